//! Account: a Twilio-style Account SID and auth token, alongside the API key: the token
//! signs TwiML callbacks (`X-Twilio-Signature`) and, with the SID, authenticates the
//! Twilio-compatible API.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Account {
    Table,
    #[sea_orm(iden = "account_sid")]
    Sid,
    AuthToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [Account::Sid, Account::AuthToken] {
            m.alter_table(Table::alter().table(Account::Table).add_column(string_null(column)).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Account::Sid, Account::AuthToken] {
            m.alter_table(Table::alter().table(Account::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
