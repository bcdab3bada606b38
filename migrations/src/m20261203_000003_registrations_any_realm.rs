//! Registrations: no longer tied to a domain user by a foreign key, because PBXs register on the
//! trunk host too (under the trunk realm and the account's API key, which no `psip_users` row
//! holds). The table is rebuilt without the key (SQLite cannot drop a constraint), its live
//! bindings copied; removing a user or a domain now deletes its bindings explicitly.

use sea_orm_migration::sea_orm::{ConnectionTrait, TransactionTrait};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
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
enum RegistrationsNext {
    Table,
}

const COLUMNS: [Registrations; 8] = [
    Registrations::DomainName,
    Registrations::UserKey,
    Registrations::Contact,
    Registrations::ExpiresAt,
    Registrations::CallId,
    Registrations::Cseq,
    Registrations::Flow,
    Registrations::UpdatedAt,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let create = Table::create()
            .table(RegistrationsNext::Table)
            .col(string(Registrations::DomainName))
            .col(string(Registrations::UserKey))
            .col(string(Registrations::Contact))
            .col(big_integer(Registrations::ExpiresAt))
            .col(string(Registrations::CallId))
            .col(big_integer(Registrations::Cseq))
            .col(string(Registrations::Flow))
            .col(timestamp_with_time_zone(Registrations::UpdatedAt))
            .primary_key(
                Index::create().col(Registrations::DomainName).col(Registrations::UserKey).col(Registrations::Contact),
            )
            .to_owned();
        let copy = Query::insert()
            .into_table(RegistrationsNext::Table)
            .columns(COLUMNS)
            .select_from(Query::select().columns(COLUMNS).from(Registrations::Table).to_owned())
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        let drop = Table::drop().table(Registrations::Table).to_owned();
        let rename = Table::rename().table(RegistrationsNext::Table, Registrations::Table).to_owned();
        // One transaction on one connection: statements spread over a pool's SQLite
        // connections raced (the rename saw the dropped table still there).
        let db = m.get_connection();
        let txn = db.begin().await?;
        txn.execute(&create).await?;
        txn.execute(&copy).await?;
        txn.execute(&drop).await?;
        txn.execute(&rename).await?;
        txn.commit().await
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        // The bindings of PBXs could not go back under the foreign key: nothing is undone.
        Ok(())
    }
}
