//! Digest users of a domain. Only HA1 values are kept (per algorithm, realm = domain name),
//! which is all digest verification needs; the secret itself is never stored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "psip_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub domain_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
