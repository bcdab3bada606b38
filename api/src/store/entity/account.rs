//! The single account row: API credentials and the webhook signature secret.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub api_key: String,
    /// Hex SHA-256 of the API secret: the secret itself is shown once and never stored.
    pub api_secret_sha256: String,
    pub signature_secret: String,
    /// The realm the trunk HA1s were made for (the SIP base domain then).
    pub trunk_realm: Option<String>,
    /// Digest HA1s of `api_key:realm:secret`, MD5 and SHA-256 (RFC 7616), for PBXs.
    pub trunk_ha1_md5: Option<String>,
    pub trunk_ha1_sha256: Option<String>,
    /// The application told of calls no application answers (a PBX's trunk calls).
    pub default_application_id: Option<String>,
    /// Twilio-style `AC…` Account SID and auth token (signs TwiML callbacks).
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
