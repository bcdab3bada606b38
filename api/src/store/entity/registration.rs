//! Contacts registered by a domain's digest users (see `domains::registrar`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub domain_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_key: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: i64,
    /// `udp:ADDR`, `tcp:ADDR` or `tls:ADDR`: where the REGISTER came from.
    pub flow: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
