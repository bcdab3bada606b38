//! REGISTER (RFC 3261 §10.3) for Programmable SIP domain users, and for PBXs on the account's
//! trunk host (user: the API key, password: the API secret, as `register =>
//! KEY:SECRET@sip.BASE`): digest authentication with the same nonces and brute-force budgets as
//! INVITE, the To user bound only by that user, the bindings changed by `domains::registrar`
//! and kept in the store with the flow they came over (a trunk registration under the trunk
//! realm, which no domain name can be).

use std::sync::Arc;

use domains::registrar::{self, Binding, ExpiresPolicy, RegisterError, Registration};
use domains::sip::admission::Admitted;
use domains::sip::headers::NameAddr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::{Addressed, Edge, Refusal, now_unix};
use crate::config::LimitAction;
use crate::sip::transport::Incoming;
use crate::store::entity::registration;

/// Why a REGISTER was not done, besides the admission refusals.
enum Failure {
    Refused(Refusal),
    Rule(RegisterError),
    /// 403: the To names another user than the one authenticated.
    NotYours(String),
    /// 416: the address-of-record is not a SIP URI.
    Scheme,
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Refused(r)
    }
}

impl Edge {
    pub(super) async fn register(self: Arc<Self>, inc: Incoming) {
        let now = now_unix() as i64;
        match self.registration(&inc, now).await {
            Ok(bindings) => {
                let mut extra: Vec<(&str, String)> =
                    registrar::contact_headers(&bindings, now).into_iter().map(|c| ("Contact", c)).collect();
                extra.push(("Date", chrono::Utc::now().to_rfc2822().replace("+0000", "GMT")));
                self.reply(&inc, 200, &extra).await;
            }
            Err(Failure::Rule(RegisterError::TooBrief(min))) => {
                self.reply(&inc, 423, &[("Min-Expires", min.to_string())]).await;
            }
            Err(Failure::Rule(e)) => {
                tracing::info!(peer = %inc.flow.peer(), reason = %e, "REGISTER refused");
                self.reply(&inc, e.status(), &[]).await;
            }
            Err(Failure::NotYours(user)) => {
                tracing::info!(peer = %inc.flow.peer(), %user, "REGISTER for another user refused");
                self.reply(&inc, 403, &[]).await;
            }
            Err(Failure::Scheme) => self.reply(&inc, 416, &[]).await,
            Err(Failure::Refused(Refusal::Challenge { realm, stale, proxy })) => {
                let (code, extra) = self.challenge(&realm, stale, proxy);
                self.reply(&inc, code, &extra).await;
            }
            Err(Failure::Refused(Refusal::Limited(refused))) => {
                metrics::counter!("voxbridge_sip_requests_refused_total", "reason" => refused.reason).increment(1);
                if refused.action == LimitAction::Reject {
                    self.reply(&inc, 403, &[]).await;
                }
            }
            Err(Failure::Refused(Refusal::Error(e))) => {
                tracing::info!(peer = %inc.flow.peer(), reason = %e, "REGISTER refused");
                self.reply(&inc, e.status(), &[]).await;
            }
            Err(Failure::Refused(Refusal::Unavailable(_))) => self.reply(&inc, 480, &[]).await,
            Err(Failure::Refused(Refusal::Internal(e))) => {
                tracing::error!(error = %e, "REGISTER failed");
                self.reply(&inc, 500, &[]).await;
            }
        }
    }

    /// The bindings after the request, authenticated and stored.
    async fn registration(&self, inc: &Incoming, now: i64) -> Result<Vec<Binding>, Failure> {
        let aor = inc.msg.header("To").and_then(|t| NameAddr::parse(t).ok()).ok_or(Failure::Scheme)?;
        if !(aor.uri.starts_with("sip:") || aor.uri.starts_with("sips:")) {
            return Err(Failure::Scheme);
        }
        // A registrar challenges with 401 on the trunk host too.
        let domain = match self.addressed(inc).await? {
            Addressed::Domain { entry, .. } => entry.domain.name.clone(),
            Addressed::TrunkHost { .. } => self.config.addressing().trunk_realm().to_owned(),
        };
        // Registration binds a user: an ACL alone says where a PBX is, not who registers.
        let Admitted::Digest { user } = self.authenticate(inc, &domain, false).await? else {
            return Err(Failure::Refused(Refusal::Internal("digest admitted without a user".into())));
        };
        if aor.user() != Some(user.as_str()) {
            return Err(Failure::NotYours(user));
        }
        let request = registrar::parse(&inc.msg, ExpiresPolicy::default()).map_err(Failure::Rule)?;
        let (call_id, cseq) = (inc.msg.call_id().to_owned(), inc.msg.cseq().map_or(0, |c| c.0));
        let flow = registrar::flow_text(&inc.flow);
        let db = self.provisioning.db();
        let stored = |d: String, u: String| {
            registration::Entity::find()
                .filter(registration::Column::DomainName.eq(d))
                .filter(registration::Column::UserKey.eq(u))
        };
        let txn = db.begin().await.map_err(Refusal::internal)?;
        let rows = stored(domain.clone(), user.clone()).all(&txn).await.map_err(Refusal::internal)?;
        let mut bindings: Vec<Binding> = rows
            .iter()
            .map(|r| Binding {
                contact: r.contact.clone(),
                expires_at: r.expires_at,
                call_id: r.call_id.clone(),
                cseq: u32::try_from(r.cseq).unwrap_or(0),
            })
            .collect();
        let before = bindings.clone();
        registrar::apply(&mut bindings, &request, &call_id, cseq, now).map_err(Failure::Rule)?;
        if bindings != before || request != Registration::Query {
            registration::Entity::delete_many()
                .filter(registration::Column::DomainName.eq(domain.clone()))
                .filter(registration::Column::UserKey.eq(user.clone()))
                .exec(&txn)
                .await
                .map_err(Refusal::internal)?;
            let flows: std::collections::HashMap<&str, &str> =
                rows.iter().map(|r| (r.contact.as_str(), r.flow.as_str())).collect();
            for b in &bindings {
                // A binding this request wrote came over this flow; the others keep theirs.
                let written = b.call_id == call_id && b.cseq == cseq;
                let flow = if written {
                    flow.clone()
                } else {
                    flows.get(b.contact.as_str()).map_or(flow.clone(), |f| (*f).to_owned())
                };
                registration::Entity::insert(registration::ActiveModel {
                    domain_name: Set(domain.clone()),
                    user_key: Set(user.clone()),
                    contact: Set(b.contact.clone()),
                    expires_at: Set(b.expires_at),
                    call_id: Set(b.call_id.clone()),
                    cseq: Set(i64::from(b.cseq)),
                    flow: Set(flow),
                    updated_at: Set(chrono::Utc::now()),
                })
                .exec(&txn)
                .await
                .map_err(Refusal::internal)?;
            }
        }
        txn.commit().await.map_err(Refusal::internal)?;
        let contacts = |b: &[Binding]| b.iter().map(|b| b.contact.clone()).collect::<Vec<_>>();
        if contacts(&bindings) != contacts(&before) {
            // Calls to the user ring the new contact set at once, not after the cache's TTL.
            self.provisioning.invalidate();
        }
        tracing::info!(%domain, %user, bindings = bindings.len(), "REGISTER done");
        Ok(bindings)
    }
}
