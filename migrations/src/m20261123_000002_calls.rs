//! Calls: one row per leg, with the conversation that groups the legs of one call.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Calls {
    Table,
    Uuid,
    ConversationUuid,
    ApplicationId,
    Direction,
    Status,
    FromType,
    FromNumber,
    ToType,
    ToNumber,
    SipCallId,
    Detail,
    StartTime,
    EndTime,
    Duration,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Calls::Table)
                .if_not_exists()
                .col(string(Calls::Uuid).primary_key())
                .col(string(Calls::ConversationUuid))
                .col(string_null(Calls::ApplicationId))
                .col(string(Calls::Direction))
                .col(string(Calls::Status))
                .col(string(Calls::FromType))
                .col(string(Calls::FromNumber))
                .col(string(Calls::ToType))
                .col(string(Calls::ToNumber))
                .col(string(Calls::SipCallId))
                .col(string_null(Calls::Detail))
                .col(timestamp_with_time_zone_null(Calls::StartTime))
                .col(timestamp_with_time_zone_null(Calls::EndTime))
                .col(integer_null(Calls::Duration))
                .col(timestamp_with_time_zone(Calls::CreatedAt))
                .col(timestamp_with_time_zone(Calls::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_calls_application_created")
                .table(Calls::Table)
                .col(Calls::ApplicationId)
                .col(Calls::CreatedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Calls::Table).if_exists().to_owned()).await
    }
}
