//! `/v1/numbers`: E.164 numbers linked to an application or forwarded to SIP URIs.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::Utc;
use domains::e164::E164;
use domains::problem::Problems;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Body;
use super::problem::{
    ApiError, BadRequest, InternalError, NotFound, PayloadTooLarge, Problem, Unauthorized, UnsupportedMediaType,
};
use crate::state::AppState;
use crate::store::entity::{application, number};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(fetch).service(update).service(remove);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoiceCallbackType {
    /// Forward calls to the SIP URI(s) in `voice_callback_value`.
    Sip,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberRequest {
    /// E.164 digits (a leading + is accepted and dropped). Required at creation; on update,
    /// when given, it must equal the path's number.
    #[schema(example = "14155550100", pattern = r"^\+?[1-9][0-9]{6,14}$")]
    pub number: Option<String>,
    /// Run this application for calls to the number.
    pub application_id: Option<String>,
    /// `sip` to forward calls instead of running an application.
    pub voice_callback_type: Option<VoiceCallbackType>,
    /// Comma-separated SIP URIs, tried in order; URI parameters `;timeout=2000..20000` (ms,
    /// ringing timeout, default 5000), `;transport=tls`, `;media=srtp`.
    #[schema(example = "sip:reception@pbx.example.com;transport=tls;timeout=8000")]
    pub voice_callback_value: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberResponse {
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_callback_type: Option<VoiceCallbackType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_callback_value: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberList {
    pub count: usize,
    pub numbers: Vec<NumberResponse>,
}

impl From<number::Model> for NumberResponse {
    fn from(m: number::Model) -> Self {
        NumberResponse {
            number: m.number,
            application_id: m.application_id,
            voice_callback_type: m.voice_callback_type.map(|_| VoiceCallbackType::Sip),
            voice_callback_value: m.voice_callback_value,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

struct Target {
    application_id: Option<String>,
    forward: Option<String>,
}

async fn validate(state: &AppState, body: &NumberRequest, path: Option<&str>) -> Result<(String, Target), ApiError> {
    let mut p = Problems::new();
    let number = match (path, body.number.as_deref()) {
        (None, None) => {
            p.push("number", "is required");
            None
        }
        (None, Some(n)) => p.check("number", E164::parse(n)).map(|n| n.to_string()),
        (Some(path), Some(n)) if E164::parse(n).map(|n| n.to_string()).as_deref() != Ok(path) => {
            p.push("number", "cannot be changed; it must equal the number in the path");
            None
        }
        (Some(path), _) => Some(path.to_owned()),
    };
    match (&body.application_id, body.voice_callback_type, &body.voice_callback_value) {
        (Some(app), None, None) => {
            if application::Entity::find_by_id(app.clone()).one(&state.db).await?.is_none() {
                p.push("application_id", format!("application '{app}' does not exist"));
            }
        }
        (None, Some(VoiceCallbackType::Sip), Some(value)) => {
            p.check("voice_callback_value", domains::forward::parse_targets(value));
        }
        (None, Some(VoiceCallbackType::Sip), None) => {
            p.push("voice_callback_value", "is required with voice_callback_type sip");
        }
        (None, None, Some(_)) => p.push("voice_callback_type", "must be 'sip' when voice_callback_value is set"),
        (None, None, None) => p.push("application_id", "either application_id or voice_callback_type sip is required"),
        (Some(_), _, _) => p.push("application_id", "cannot be combined with voice_callback_type/voice_callback_value"),
    }
    let number = p.finish(number)?.ok_or_else(|| ApiError::Internal("validated number missing".into()))?;
    let forward = body.voice_callback_value.as_ref().map(|v| v.trim().to_owned());
    Ok((number, Target { application_id: body.application_id.clone(), forward }))
}

async fn find(state: &AppState, number: &str) -> Result<number::Model, ApiError> {
    let key = E164::parse(number).map(|n| n.to_string()).unwrap_or_else(|_| number.to_owned());
    number::Entity::find_by_id(key)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("number {number}")))
}

#[utoipa::path(
    operation_id = "createNumber",
    tag = "numbers",
    request_body = NumberRequest,
    responses(
        (status = 201, body = NumberResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, description = "Number exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[post("")]
async fn create(state: web::Data<AppState>, Body(body): Body<NumberRequest>) -> Result<HttpResponse, ApiError> {
    let (num, target) = validate(&state, &body, None).await?;
    if number::Entity::find_by_id(num.clone()).one(&state.db).await?.is_some() {
        return Err(ApiError::Conflict(format!("number {num} already exists")));
    }
    let now = Utc::now();
    let model = number::Model {
        number: num,
        voice_callback_type: target.forward.as_ref().map(|_| "sip".to_owned()),
        application_id: target.application_id,
        voice_callback_value: target.forward,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(&state.db)
    .await?;
    Ok(HttpResponse::Created().json(NumberResponse::from(model)))
}

#[utoipa::path(
    operation_id = "listNumbers",
    tag = "numbers",
    responses(
        (status = 200, body = NumberList),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = number::Entity::find().order_by_asc(number::Column::Number).all(&state.db).await?;
    let numbers: Vec<NumberResponse> = rows.into_iter().map(NumberResponse::from).collect();
    Ok(HttpResponse::Ok().json(NumberList { count: numbers.len(), numbers }))
}

#[utoipa::path(
    operation_id = "getNumber",
    tag = "numbers",
    params(("number" = String, Path, description = "E.164 number", example = "14155550100")),
    responses(
        (status = 200, body = NumberResponse),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{number}")]
async fn fetch(state: web::Data<AppState>, number: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(NumberResponse::from(find(&state, &number).await?)))
}

#[utoipa::path(
    operation_id = "updateNumber",
    tag = "numbers",
    params(("number" = String, Path, description = "E.164 number", example = "14155550100")),
    request_body = NumberRequest,
    responses(
        (status = 200, body = NumberResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "The application was deleted meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[put("/{number}")]
async fn update(
    state: web::Data<AppState>,
    number: web::Path<String>,
    Body(body): Body<NumberRequest>,
) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &number).await?;
    let (_, target) = validate(&state, &body, Some(&existing.number)).await?;
    let mut active = existing.into_active_model();
    active.voice_callback_type = Set(target.forward.as_ref().map(|_| "sip".to_owned()));
    active.application_id = Set(target.application_id);
    active.voice_callback_value = Set(target.forward);
    active.updated_at = Set(Utc::now());
    let model = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(NumberResponse::from(model)))
}

#[utoipa::path(
    operation_id = "deleteNumber",
    tag = "numbers",
    params(("number" = String, Path, description = "E.164 number", example = "14155550100")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[delete("/{number}")]
async fn remove(state: web::Data<AppState>, number: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &number).await?;
    number::Entity::delete_by_id(existing.number).exec(&state.db).await?;
    Ok(HttpResponse::NoContent().finish())
}
