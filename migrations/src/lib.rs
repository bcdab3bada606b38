//! Database schema of voxbridge, one migration per change; a migration that has landed is
//! never edited.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_provisioning;
mod m20261123_000002_calls;
mod m20261202_000001_call_quality;
mod m20261202_000002_registrations;
mod m20261203_000001_call_sip_code;
mod m20261203_000002_account_trunk_digest;
mod m20261203_000003_registrations_any_realm;
mod m20261203_000004_account_default_application;
mod m20261203_000005_account_twilio;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_provisioning::Migration),
            Box::new(m20261123_000002_calls::Migration),
            Box::new(m20261202_000001_call_quality::Migration),
            Box::new(m20261202_000002_registrations::Migration),
            Box::new(m20261203_000001_call_sip_code::Migration),
            Box::new(m20261203_000002_account_trunk_digest::Migration),
            Box::new(m20261203_000003_registrations_any_realm::Migration),
            Box::new(m20261203_000004_account_default_application::Migration),
            Box::new(m20261203_000005_account_twilio::Migration),
        ]
    }
}
