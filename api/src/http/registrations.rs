//! Live registrations: a domain user's (under `/v1/psip`), and the account's PBX registrations
//! on the trunk host (`GET /v1/registrations`).

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::problem::{ApiError, InternalError, Unauthorized};
use crate::state::AppState;
use crate::store::entity::registration;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(trunk_registrations);
}

/// A contact a phone or PBX registered (REGISTER, RFC 3261 §10).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationResponse {
    /// The registered user: a domain user, or the account's API key on the trunk host.
    #[schema(example = "alice")]
    pub user: String,
    #[schema(example = "sip:alice@192.0.2.10:5060")]
    pub contact: String,
    /// Seconds left.
    pub expires: i64,
    /// Where requests to the contact go: the transport and address the REGISTER came from.
    #[schema(example = "udp:203.0.113.7:41234")]
    pub flow: String,
    pub call_id: String,
    pub updated_at: chrono::DateTime<Utc>,
    /// What the OPTIONS probes (`VOXBRIDGE_TRUNK_QUALIFY_SECS`) found; a contact that is
    /// `down` is not rung while another of its address of record is up.
    pub health: domains::trunk_health::Health,
}

/// The unexpired bindings of `user` in `domain` (a domain name, or the trunk realm).
pub async fn live(state: &AppState, domain: &str, user: &str) -> Result<Vec<RegistrationResponse>, ApiError> {
    let now = Utc::now().timestamp();
    let rows = registration::Entity::find()
        .filter(registration::Column::DomainName.eq(domain))
        .filter(registration::Column::UserKey.eq(user))
        .filter(registration::Column::ExpiresAt.gt(now))
        .order_by_asc(registration::Column::Contact)
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| RegistrationResponse {
            health: state.edge.health.contact_health(&r.domain_name, &r.user_key, &r.contact),
            user: r.user_key,
            contact: r.contact,
            expires: r.expires_at - now,
            flow: r.flow,
            call_id: r.call_id,
            updated_at: r.updated_at,
        })
        .collect())
}

#[utoipa::path(
    operation_id = "listTrunkRegistrations",
    tag = "trunks",
    responses(
        (status = 200, description = "The PBX registrations on the account's trunk host (user: the API key)", body = Vec<RegistrationResponse>),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn trunk_registrations(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let realm = state.config.addressing().trunk_realm().to_owned();
    Ok(HttpResponse::Ok().json(live(&state, &realm, &state.account.api_key).await?))
}
