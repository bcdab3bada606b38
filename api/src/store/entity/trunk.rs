//! Outbound SIP trunks. The password is kept because outbound digest needs it in clear; it is
//! never returned by the API.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trunks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    #[sea_orm(column_type = "Json")]
    pub gateways: Json,
    #[sea_orm(column_type = "Json")]
    pub prefixes: Json,
    pub username: Option<String>,
    pub password: Option<String>,
    pub pbx: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
