//! Call legs as the Voice API shows them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: String,
    pub conversation_uuid: String,
    pub application_id: Option<String>,
    pub direction: String,
    pub status: String,
    pub from_type: String,
    pub from_number: String,
    pub to_type: String,
    pub to_number: String,
    pub sip_call_id: String,
    pub detail: Option<String>,
    pub start_time: Option<DateTimeUtc>,
    pub end_time: Option<DateTimeUtc>,
    pub duration: Option<i32>,
    /// `domains::quality::Quality` as JSON, once the leg has ended.
    #[sea_orm(column_type = "Text", nullable)]
    pub quality: Option<String>,
    /// The final response to the leg's INVITE (200 once answered), once it has ended.
    pub sip_code: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
