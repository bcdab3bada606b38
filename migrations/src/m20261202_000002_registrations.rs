//! Registrations: the contacts a domain user's phones registered (RFC 3261 §10), with their
//! expiry, the Call-ID/CSeq that last wrote them, and the flow they came over (requests to the
//! contact go back the same way, through the NAT that carried the REGISTER).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Registrations {
    Table,
    DomainName,
    UserKey,
    Contact,
    ExpiresAt,
    CallId,
    Cseq,
    Flow,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PsipUsers {
    Table,
    DomainName,
    Key,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Registrations::Table)
                .if_not_exists()
                .col(string(Registrations::DomainName))
                .col(string(Registrations::UserKey))
                .col(string(Registrations::Contact))
                .col(big_integer(Registrations::ExpiresAt))
                .col(string(Registrations::CallId))
                .col(big_integer(Registrations::Cseq))
                .col(string(Registrations::Flow))
                .col(timestamp_with_time_zone(Registrations::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(Registrations::DomainName)
                        .col(Registrations::UserKey)
                        .col(Registrations::Contact),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_registrations_user")
                        .from(Registrations::Table, (Registrations::DomainName, Registrations::UserKey))
                        .to(PsipUsers::Table, (PsipUsers::DomainName, PsipUsers::Key))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Registrations::Table).if_exists().to_owned()).await
    }
}
