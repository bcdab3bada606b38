//! The account: its API key and secret (HTTP Basic for provisioning) and the signature secret
//! for webhooks. Configured values win; otherwise stored ones are used; otherwise new ones are
//! generated, stored, and shown once.

use chrono::Utc;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, Set};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::entity::account;

#[derive(Debug, Clone)]
pub struct Account {
    pub api_key: String,
    api_secret_sha256: String,
    pub signature_secret: String,
}

/// Credentials generated at this start, to be shown to the operator once.
#[derive(Debug, Default)]
pub struct Generated {
    pub api_key: Option<String>,
    pub api_secret: Option<String>,
    pub signature_secret: Option<String>,
}

impl Generated {
    pub fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.api_secret.is_none() && self.signature_secret.is_none()
    }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_string(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

impl Account {
    /// True when `key`/`secret` are the account's. Compares digests in constant time.
    pub fn verify(&self, key: &str, secret: &str) -> bool {
        let given = sha256_hex(secret);
        let same_secret = given.len() == self.api_secret_sha256.len()
            && given.bytes().zip(self.api_secret_sha256.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same_secret & (key == self.api_key)
    }

    pub async fn bootstrap(db: &DatabaseConnection, config: &Config) -> Result<(Account, Generated), DbErr> {
        let stored = account::Entity::find_by_id(1).one(db).await?;
        let mut generated = Generated::default();
        let api_key =
            config.api_key.clone().or_else(|| stored.as_ref().map(|a| a.api_key.clone())).unwrap_or_else(|| {
                let key = hex::encode(rand::random::<[u8; 4]>());
                generated.api_key = Some(key.clone());
                key
            });
        let api_secret_sha256 = match (&config.api_secret, &stored) {
            (Some(secret), _) => sha256_hex(secret),
            (None, Some(a)) => a.api_secret_sha256.clone(),
            (None, None) => {
                let secret = random_string(16);
                let digest = sha256_hex(&secret);
                generated.api_secret = Some(secret);
                digest
            }
        };
        let signature_secret = config
            .signature_secret
            .clone()
            .or_else(|| stored.as_ref().map(|a| a.signature_secret.clone()))
            .unwrap_or_else(|| {
                let secret = random_string(48);
                generated.signature_secret = Some(secret.clone());
                secret
            });
        let account = Account { api_key, api_secret_sha256, signature_secret };
        let row = account::Model {
            id: 1,
            api_key: account.api_key.clone(),
            api_secret_sha256: account.api_secret_sha256.clone(),
            signature_secret: account.signature_secret.clone(),
            created_at: stored.as_ref().map_or_else(Utc::now, |a| a.created_at),
        };
        match stored {
            None => {
                account::Entity::insert(row.into_active_model()).exec(db).await?;
            }
            Some(old) if old != row => {
                let mut active = old.into_active_model();
                active.api_key = Set(row.api_key);
                active.api_secret_sha256 = Set(row.api_secret_sha256);
                active.signature_secret = Set(row.signature_secret);
                active.update(db).await?;
            }
            Some(_) => {}
        }
        Ok((account, generated))
    }
}
