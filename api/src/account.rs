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
    /// Twilio-style identity (`AC` and 32 hex digits) and auth token, generated once and kept:
    /// the token signs TwiML callbacks as Twilio signs them.
    pub twilio: TwilioCredentials,
    /// How PBXs prove the API key and secret by digest on the trunk host; `None` when the
    /// secret was not given at a start since the realm last changed (it is stored hashed only).
    pub trunk: Option<TrunkDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: String,
}

impl TwilioCredentials {
    fn stored_or_new(stored: Option<&account::Model>) -> TwilioCredentials {
        match stored.and_then(|a| a.account_sid.clone().zip(a.auth_token.clone())) {
            Some((account_sid, auth_token)) => TwilioCredentials { account_sid, auth_token },
            None => TwilioCredentials {
                account_sid: format!("AC{}", hex::encode(rand::random::<[u8; 16]>())),
                auth_token: hex::encode(rand::random::<[u8; 16]>()),
            },
        }
    }
}

/// The account's digest credentials in the trunk realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkDigest {
    pub realm: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl TrunkDigest {
    fn new(key: &str, realm: &str, secret: &str) -> TrunkDigest {
        use domains::digest::{DigestAlgorithm, ha1};
        TrunkDigest {
            realm: realm.to_owned(),
            ha1_md5: ha1(DigestAlgorithm::Md5, key, realm, secret),
            ha1_sha256: ha1(DigestAlgorithm::Sha256, key, realm, secret),
        }
    }
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

/// `a == b`, in a time that does not depend on where they differ (for secrets).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        constant_time_eq(&sha256_hex(secret), &self.api_secret_sha256) & (key == self.api_key)
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
        let realm = config.addressing().trunk_realm().to_owned();
        let (api_secret_sha256, trunk) = match (&config.api_secret, &stored) {
            (Some(secret), _) => (sha256_hex(secret), Some(TrunkDigest::new(&api_key, &realm, secret))),
            (None, Some(a)) => {
                let trunk = match (&a.trunk_realm, &a.trunk_ha1_md5, &a.trunk_ha1_sha256) {
                    (Some(r), Some(md5), Some(sha256)) if *r == realm && a.api_key == api_key => {
                        Some(TrunkDigest { realm: r.clone(), ha1_md5: md5.clone(), ha1_sha256: sha256.clone() })
                    }
                    _ => None,
                };
                (a.api_secret_sha256.clone(), trunk)
            }
            (None, None) => {
                let secret = random_string(16);
                let digest = sha256_hex(&secret);
                let trunk = Some(TrunkDigest::new(&api_key, &realm, &secret));
                generated.api_secret = Some(secret);
                (digest, trunk)
            }
        };
        if trunk.is_none() {
            tracing::warn!(
                %realm,
                "PBXs cannot authenticate on the trunk host until the API secret is given again \
                 (VOXBRIDGE_API_SECRET): the stored digest was made for another realm or key"
            );
        }
        let signature_secret = config
            .signature_secret
            .clone()
            .or_else(|| stored.as_ref().map(|a| a.signature_secret.clone()))
            .unwrap_or_else(|| {
                let secret = random_string(48);
                generated.signature_secret = Some(secret.clone());
                secret
            });
        let twilio = TwilioCredentials::stored_or_new(stored.as_ref());
        let account = Account { api_key, api_secret_sha256, signature_secret, twilio, trunk };
        let row = account::Model {
            id: 1,
            api_key: account.api_key.clone(),
            api_secret_sha256: account.api_secret_sha256.clone(),
            signature_secret: account.signature_secret.clone(),
            trunk_realm: account.trunk.as_ref().map(|t| t.realm.clone()),
            trunk_ha1_md5: account.trunk.as_ref().map(|t| t.ha1_md5.clone()),
            trunk_ha1_sha256: account.trunk.as_ref().map(|t| t.ha1_sha256.clone()),
            // Set through the API (`PUT /v1/account`), kept across starts.
            default_application_id: stored.as_ref().and_then(|a| a.default_application_id.clone()),
            account_sid: Some(account.twilio.account_sid.clone()),
            auth_token: Some(account.twilio.auth_token.clone()),
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
                active.trunk_realm = Set(row.trunk_realm);
                active.trunk_ha1_md5 = Set(row.trunk_ha1_md5);
                active.trunk_ha1_sha256 = Set(row.trunk_ha1_sha256);
                active.account_sid = Set(row.account_sid);
                active.auth_token = Set(row.auth_token);
                active.update(db).await?;
            }
            Some(_) => {}
        }
        Ok((account, generated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config(secret: Option<&str>, base: &str) -> Config {
        let s = Settings {
            api_key: Some("key1".into()),
            api_secret: secret.map(str::to_owned),
            sip_base_domain: Some(base.into()),
            ..Default::default()
        };
        Config::resolve(s).unwrap()
    }

    #[tokio::test]
    async fn the_trunk_digest_survives_a_restart_without_the_secret_and_not_a_new_realm() {
        let dir = std::env::temp_dir().join(format!("vb-account-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
        let db = crate::store::connect(&url).await.unwrap();
        let (first, _) = Account::bootstrap(&db, &config(Some("s3cret"), "sip.example.com")).await.unwrap();
        let digest = first.trunk.clone().expect("made from the given secret");
        let md5 = domains::digest::ha1(domains::digest::DigestAlgorithm::Md5, "key1", "sip.example.com", "s3cret");
        assert_eq!((digest.realm.as_str(), digest.ha1_md5.as_str()), ("sip.example.com", md5.as_str()));
        let (again, _) = Account::bootstrap(&db, &config(None, "sip.example.com")).await.unwrap();
        assert_eq!(again.trunk, Some(digest), "read back from the store");
        assert!(again.verify("key1", "s3cret"));
        let (moved, _) = Account::bootstrap(&db, &config(None, "sip.other.net")).await.unwrap();
        assert_eq!(moved.trunk, None, "a HA1 of another realm cannot verify");
        let _ = std::fs::remove_dir_all(dir);
    }
}
