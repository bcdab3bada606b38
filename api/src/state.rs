//! What every request handler shares: the database, the configuration and the account.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::account::Account;
use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub account: Arc<Account>,
    /// Flushed before the Voice API reads call records, so it sees every change made so far.
    pub records: crate::store::records::CallRecords,
    /// Invalidated by every provisioning write (see `http::invalidate_provisioning`).
    pub provisioning: Arc<crate::store::cache::ProvisioningCache>,
    /// The live calls of this node, for the Voice API's control of them.
    pub calls: Arc<crate::calls::CallRegistry>,
    /// Places the calls the Voice API creates.
    pub edge: Arc<crate::sip::Edge>,
}
