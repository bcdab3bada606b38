//! Provisioning read through a cache, so that admitting a call costs no database round trip:
//! SIP domains (with their digest-user count), domain users, numbers and applications.
//!
//! Any provisioning write through this node's API bumps a generation that invalidates every
//! entry at once (writes are rare, reads are per call); entries also expire after a TTL, which
//! bounds how stale another node's write can look (several api nodes may share PostgreSQL).
//! Absent rows are cached too, so a flood naming unknown domains does not reach the database;
//! the tables are bounded and emptied when full.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use super::entity::{account, application, number, psip_domain, psip_user, registration, trunk};

/// Entries a table holds before it is emptied.
const MAX_ENTRIES: usize = 50_000;

/// A domain as admission needs it, its ACL parsed once.
#[derive(Debug, Clone)]
pub struct DomainEntry {
    pub domain: psip_domain::Model,
    pub acl: domains::acl::Acl,
    pub digest_users: u64,
}

struct Table<K, V> {
    entries: Mutex<HashMap<K, (Instant, u64, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Table<K, V> {
    fn new() -> Self {
        Table { entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K, generation: u64, ttl: Duration) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, gen_at, v) = entries.get(key)?;
        (*gen_at == generation && at.elapsed() < ttl).then(|| v.clone())
    }

    fn put(&self, key: K, generation: u64, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), generation, value));
        }
    }
}

pub struct ProvisioningCache {
    db: DatabaseConnection,
    ttl: Duration,
    generation: AtomicU64,
    domains: Table<String, Option<DomainEntry>>,
    users: Table<(String, String), Option<psip_user::Model>>,
    numbers: Table<String, Option<number::Model>>,
    applications: Table<String, Option<application::Model>>,
    dialling: Table<(), std::sync::Arc<domains::call::Dialling>>,
}

impl ProvisioningCache {
    /// The database behind the cache, for what is written at SIP speed (registrations).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn new(db: DatabaseConnection, ttl: Duration) -> Self {
        ProvisioningCache {
            db,
            ttl,
            generation: AtomicU64::new(0),
            domains: Table::new(),
            users: Table::new(),
            numbers: Table::new(),
            applications: Table::new(),
            dialling: Table::new(),
        }
    }

    /// Forgets everything (a provisioning write happened).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    async fn read<K, V, F, Fut>(&self, table: &Table<K, V>, key: K, load: F) -> Result<V, DbErr>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: FnOnce(DatabaseConnection, K) -> Fut,
        Fut: Future<Output = Result<V, DbErr>>,
    {
        // The generation is read before loading: a write racing the load leaves an entry that
        // is already invalid.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(v) = table.get(&key, generation, self.ttl) {
            metrics::counter!("voxbridge_provisioning_cache_total", "result" => "hit").increment(1);
            return Ok(v);
        }
        metrics::counter!("voxbridge_provisioning_cache_total", "result" => "miss").increment(1);
        let value = load(self.db.clone(), key.clone()).await?;
        table.put(key, generation, value.clone());
        Ok(value)
    }

    pub async fn domain(&self, name: &str) -> Result<Option<DomainEntry>, DbErr> {
        self.read(&self.domains, name.to_owned(), |db, name| async move {
            let Some(domain) = psip_domain::Entity::find_by_id(name.clone()).one(&db).await? else {
                return Ok(None);
            };
            let digest_users = if domain.digest_auth {
                psip_user::Entity::find().filter(psip_user::Column::DomainName.eq(name)).count(&db).await?
            } else {
                0
            };
            let acl_entries: Vec<String> = serde_json::from_value(domain.acl.clone()).unwrap_or_default();
            let acl = domains::acl::Acl::parse("acl", &acl_entries).unwrap_or_default();
            Ok(Some(DomainEntry { domain, acl, digest_users }))
        })
        .await
    }

    pub async fn user(&self, domain: &str, user: &str) -> Result<Option<psip_user::Model>, DbErr> {
        self.read(&self.users, (domain.to_owned(), user.to_owned()), |db, key| async move {
            psip_user::Entity::find_by_id(key).one(&db).await
        })
        .await
    }

    pub async fn number(&self, e164: &str) -> Result<Option<number::Model>, DbErr> {
        self.read(&self.numbers, e164.to_owned(), |db, n| async move { number::Entity::find_by_id(n).one(&db).await })
            .await
    }

    /// The account's trunks and numbers, as calls place outbound legs with them.
    pub async fn dialling(&self) -> Result<std::sync::Arc<domains::call::Dialling>, DbErr> {
        self.read(&self.dialling, (), |db, ()| async move {
            let trunks = trunk::Entity::find()
                .all(&db)
                .await?
                .into_iter()
                .map(|t| domains::trunk::Trunk {
                    gateways: serde_json::from_value(t.gateways).unwrap_or_default(),
                    prefixes: serde_json::from_value(t.prefixes).unwrap_or_default(),
                    credentials: t.username.zip(t.password),
                    pbx: t.pbx,
                    name: t.name,
                })
                .collect();
            let numbers = number::Entity::find().all(&db).await?.into_iter().map(|n| n.number).collect();
            let by_domain: std::collections::HashMap<String, (String, String)> = psip_domain::Entity::find()
                .all(&db)
                .await?
                .into_iter()
                .map(|d| (d.name, (d.application_id, d.srtp)))
                .collect();
            let now = chrono::Utc::now().timestamp();
            let registered = registration::Entity::find()
                .filter(registration::Column::ExpiresAt.gt(now))
                .all(&db)
                .await?
                .into_iter()
                .map(|r| domains::call::Registered {
                    application_id: by_domain.get(&r.domain_name).map(|(app, _)| app.clone()),
                    srtp: by_domain
                        .get(&r.domain_name)
                        .map(|(_, srtp)| domains::psip::Policy::from_db(srtp))
                        .unwrap_or_default(),
                    flow: domains::registrar::flow_back(&r.flow),
                    domain: r.domain_name,
                    user: r.user_key,
                    contact: r.contact,
                })
                .collect();
            let account = account::Entity::find_by_id(1).one(&db).await?;
            let default_application_id = account.as_ref().and_then(|a| a.default_application_id.clone());
            let account_sid = account.and_then(|a| a.account_sid);
            Ok(std::sync::Arc::new(domains::call::Dialling {
                trunks,
                numbers,
                registered,
                default_application_id,
                account_sid,
            }))
        })
        .await
    }

    pub async fn application(&self, id: &str) -> Result<Option<application::Model>, DbErr> {
        self.read(&self.applications, id.to_owned(), |db, id| async move {
            application::Entity::find_by_id(id).one(&db).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    #[tokio::test]
    async fn reads_are_cached_until_invalidated_or_expired() {
        let dir = std::env::temp_dir().join(format!("vb-cache-{}", uuid::Uuid::new_v4().simple()));
        let db =
            super::super::connect(&format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display())).await.unwrap();
        let cache = ProvisioningCache::new(db.clone(), Duration::from_secs(60));
        assert!(cache.number("14155550100").await.unwrap().is_none());
        let now = chrono::Utc::now();
        let row = number::Model {
            number: "14155550100".into(),
            application_id: None,
            voice_callback_type: Some("sip".into()),
            voice_callback_value: Some("sip:a@b".into()),
            created_at: now,
            updated_at: now,
        };
        row.into_active_model().insert(&db).await.unwrap();
        assert!(cache.number("14155550100").await.unwrap().is_none(), "the absent row is cached");
        cache.invalidate();
        assert!(cache.number("14155550100").await.unwrap().is_some(), "a write invalidates");
        let short = ProvisioningCache::new(db, Duration::ZERO);
        assert!(short.number("14155550100").await.unwrap().is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
