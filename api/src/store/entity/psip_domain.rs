//! Programmable SIP domains.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "psip_domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub application_id: String,
    /// Canonical CIDR strings.
    #[sea_orm(column_type = "Json")]
    pub acl: Json,
    pub tls: String,
    pub srtp: String,
    pub digest_auth: bool,
    pub domain_type: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
