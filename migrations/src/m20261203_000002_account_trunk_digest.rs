//! Account: the digest HA1s of its API key and secret in the trunk realm (the SIP base domain),
//! so that PBXs authenticate with them after a restart (the secret itself is never stored).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Account {
    Table,
    TrunkRealm,
    TrunkHa1Md5,
    TrunkHa1Sha256,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [Account::TrunkRealm, Account::TrunkHa1Md5, Account::TrunkHa1Sha256] {
            m.alter_table(Table::alter().table(Account::Table).add_column(string_null(column)).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Account::TrunkRealm, Account::TrunkHa1Md5, Account::TrunkHa1Sha256] {
            m.alter_table(Table::alter().table(Account::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
