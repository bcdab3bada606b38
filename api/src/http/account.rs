//! `/v1/account`: the account as SIP peers see it (the API key PBXs register with, the trunk
//! host), as Twilio-style applications see it (Account SID and auth token), and its default
//! application: the one told of calls no application answers, such as a PBX's calls out
//! through a trunk.

use actix_web::{HttpResponse, get, put, web};
use domains::problem::InvalidParameter;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Body;
use super::problem::{ApiError, BadRequest, InternalError, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use crate::state::AppState;
use crate::store::entity::{account, application};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(fetch).service(update);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountResponse {
    /// The user name PBXs register and authenticate with on the trunk host.
    pub api_key: String,
    /// Where PBXs point their trunk (`sip.BASE`; `sip-REGION.BASE` works too).
    #[schema(example = "sip.voxbridge.local")]
    pub trunk_host: String,
    /// Gets the events of calls no application answers (PBX calls out through a trunk).
    pub default_application_id: Option<String>,
    /// Twilio-style Account SID (`AC` and 32 hex digits): `AccountSid` in TwiML callbacks.
    #[schema(example = "AC0123456789abcdef0123456789abcdef")]
    pub account_sid: String,
    /// Signs TwiML callbacks (`X-Twilio-Signature`), as a Twilio auth token does.
    pub auth_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    /// An application id, or `null` for none.
    #[serde(default)]
    pub default_application_id: Option<String>,
}

async fn row(state: &AppState) -> Result<account::Model, ApiError> {
    account::Entity::find_by_id(1).one(&state.db).await?.ok_or_else(|| ApiError::Internal("no account row".into()))
}

fn response(state: &AppState, row: account::Model) -> AccountResponse {
    AccountResponse {
        api_key: row.api_key,
        trunk_host: state.config.addressing().trunk_realm().to_owned(),
        default_application_id: row.default_application_id,
        account_sid: state.account.twilio.account_sid.clone(),
        auth_token: state.account.twilio.auth_token.clone(),
    }
}

#[utoipa::path(
    operation_id = "getAccount",
    tag = "account",
    responses(
        (status = 200, body = AccountResponse),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn fetch(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(response(&state, row(&state).await?)))
}

#[utoipa::path(
    operation_id = "updateAccount",
    tag = "account",
    request_body = AccountUpdate,
    responses(
        (status = 200, body = AccountResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[put("")]
async fn update(state: web::Data<AppState>, Body(body): Body<AccountUpdate>) -> Result<HttpResponse, ApiError> {
    if let Some(id) = &body.default_application_id
        && application::Entity::find_by_id(id.clone()).one(&state.db).await?.is_none()
    {
        let reason = format!("no application {id}");
        return Err(ApiError::Validation(vec![InvalidParameter::new("default_application_id", reason)]));
    }
    let mut active = row(&state).await?.into_active_model();
    active.default_application_id = Set(body.default_application_id);
    let saved = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(response(&state, saved)))
}
