//! Account: the application that gets the events of calls no application answers (a PBX's
//! calls out through a trunk), as Vonage's account-level default voice application.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Account {
    Table,
    DefaultApplicationId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key: SQLite cannot add one to an existing table; a default that names a
        // deleted application is ignored when calls look it up.
        m.alter_table(
            Table::alter().table(Account::Table).add_column(string_null(Account::DefaultApplicationId)).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Account::Table).drop_column(Account::DefaultApplicationId).to_owned()).await
    }
}
