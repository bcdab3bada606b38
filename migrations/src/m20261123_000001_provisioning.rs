//! Provisioning: the account, applications, Programmable SIP domains and their digest users,
//! numbers and trunks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
    ApiKey,
    ApiSecretSha256,
    SignatureSecret,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Applications {
    Table,
    Id,
    Name,
    Capabilities,
    PublicKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PsipDomains {
    Table,
    Name,
    ApplicationId,
    Acl,
    Tls,
    Srtp,
    DigestAuth,
    DomainType,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PsipUsers {
    Table,
    DomainName,
    Key,
    Ha1Md5,
    Ha1Sha256,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Numbers {
    Table,
    Number,
    ApplicationId,
    VoiceCallbackType,
    VoiceCallbackValue,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Trunks {
    Table,
    Id,
    Name,
    Gateways,
    Prefixes,
    Username,
    Password,
    Pbx,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Account::Table)
                .if_not_exists()
                .col(integer(Account::Id).primary_key())
                .col(string(Account::ApiKey))
                .col(string(Account::ApiSecretSha256))
                .col(string(Account::SignatureSecret))
                .col(timestamp_with_time_zone(Account::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Applications::Table)
                .if_not_exists()
                .col(string(Applications::Id).primary_key())
                .col(string(Applications::Name))
                .col(json(Applications::Capabilities))
                .col(text(Applications::PublicKey))
                .col(timestamp_with_time_zone(Applications::CreatedAt))
                .col(timestamp_with_time_zone(Applications::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_applications_created")
                .table(Applications::Table)
                .col(Applications::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PsipDomains::Table)
                .if_not_exists()
                .col(string(PsipDomains::Name).primary_key())
                .col(string(PsipDomains::ApplicationId))
                .col(json(PsipDomains::Acl))
                .col(string(PsipDomains::Tls))
                .col(string(PsipDomains::Srtp))
                .col(boolean(PsipDomains::DigestAuth))
                .col(string(PsipDomains::DomainType))
                .col(timestamp_with_time_zone(PsipDomains::CreatedAt))
                .col(timestamp_with_time_zone(PsipDomains::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_psip_domains_application")
                        .from(PsipDomains::Table, PsipDomains::ApplicationId)
                        .to(Applications::Table, Applications::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PsipUsers::Table)
                .if_not_exists()
                .col(string(PsipUsers::DomainName))
                .col(string(PsipUsers::Key))
                .col(string(PsipUsers::Ha1Md5))
                .col(string(PsipUsers::Ha1Sha256))
                .col(timestamp_with_time_zone(PsipUsers::CreatedAt))
                .primary_key(Index::create().col(PsipUsers::DomainName).col(PsipUsers::Key))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_psip_users_domain")
                        .from(PsipUsers::Table, PsipUsers::DomainName)
                        .to(PsipDomains::Table, PsipDomains::Name)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Numbers::Table)
                .if_not_exists()
                .col(string(Numbers::Number).primary_key())
                .col(string_null(Numbers::ApplicationId))
                .col(string_null(Numbers::VoiceCallbackType))
                .col(text_null(Numbers::VoiceCallbackValue))
                .col(timestamp_with_time_zone(Numbers::CreatedAt))
                .col(timestamp_with_time_zone(Numbers::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_numbers_application")
                        .from(Numbers::Table, Numbers::ApplicationId)
                        .to(Applications::Table, Applications::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Trunks::Table)
                .if_not_exists()
                .col(string(Trunks::Id).primary_key())
                .col(string(Trunks::Name).unique_key())
                .col(json(Trunks::Gateways))
                .col(json(Trunks::Prefixes))
                .col(string_null(Trunks::Username))
                .col(string_null(Trunks::Password))
                .col(boolean(Trunks::Pbx))
                .col(timestamp_with_time_zone(Trunks::CreatedAt))
                .col(timestamp_with_time_zone(Trunks::UpdatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Trunks::Table.into_iden(),
            Numbers::Table.into_iden(),
            PsipUsers::Table.into_iden(),
            PsipDomains::Table.into_iden(),
            Applications::Table.into_iden(),
            Account::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
