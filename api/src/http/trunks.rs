//! `/v1/trunks`: outbound SIP trunks used by `phone` (longest E.164 prefix) and `vbc`
//! (the trunk flagged `pbx`) endpoints.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::Utc;
use domains::problem::Problems;
use domains::trunk::{self, Gateway};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Body;
use super::problem::{
    ApiError, BadRequest, InternalError, NotFound, PayloadTooLarge, Problem, Unauthorized, UnsupportedMediaType,
};
use super::schemas::{self, GatewaySchema};
use crate::state::AppState;
use crate::store::entity::trunk as entity;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(fetch).service(update).service(remove);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkRequest {
    /// Unique name: 1–64 letters, digits, `-`, `_`, `.`.
    #[schema(example = "carrier-a", pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// Tried in order of priority, then by weight.
    #[schema(value_type = Vec<GatewaySchema>, min_items = 1, max_items = 16)]
    pub gateways: Vec<Gateway>,
    /// Digest credentials voxbridge answers the trunk's challenges with.
    #[serde(default)]
    pub credentials: Option<TrunkCredentials>,
    #[serde(default)]
    #[schema(schema_with = schemas::prefixes)]
    pub prefixes: Vec<String>,
    /// This trunk reaches the PBX that `vbc` extensions dial.
    #[serde(default)]
    pub pbx: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkCredentials {
    #[schema(min_length = 1, max_length = 128)]
    pub username: String,
    /// Never returned.
    #[schema(min_length = 1, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkCredentialsOut {
    pub username: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkResponse {
    pub id: String,
    pub name: String,
    #[schema(value_type = Vec<GatewaySchema>)]
    pub gateways: Vec<Gateway>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<TrunkCredentialsOut>,
    #[schema(schema_with = schemas::prefixes)]
    pub prefixes: Vec<String>,
    pub pbx: bool,
    /// What the OPTIONS probes say of each gateway, in `gateways` order.
    pub gateway_health: Vec<GatewayHealthOut>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayHealthOut {
    /// `host:port/transport`.
    #[schema(example = "sbc1.carrier.example:5060/udp")]
    pub gateway: String,
    pub health: domains::trunk_health::Health,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkList {
    pub count: usize,
    pub trunks: Vec<TrunkResponse>,
}

impl TrunkResponse {
    /// The stored trunk, with its gateways' health as the edge's probes found it.
    fn of(m: entity::Model, state: &AppState) -> Self {
        let gateways: Vec<Gateway> = serde_json::from_value(m.gateways).unwrap_or_default();
        let gateway_health = gateways
            .iter()
            .map(|g| GatewayHealthOut { gateway: domains::trunk_health::key(g), health: state.edge.health.health(g) })
            .collect();
        TrunkResponse {
            id: m.id,
            name: m.name,
            gateways,
            gateway_health,
            credentials: m.username.map(|username| TrunkCredentialsOut { username }),
            prefixes: serde_json::from_value(m.prefixes).unwrap_or_default(),
            pbx: m.pbx,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

struct Validated {
    prefixes: Vec<String>,
    username: Option<String>,
    password: Option<String>,
}

fn validate(body: &TrunkRequest) -> Result<Validated, ApiError> {
    let mut p = Problems::new();
    let name_ok = !body.name.is_empty()
        && body.name.len() <= 64
        && body.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        p.push("name", "must be 1 to 64 characters: letters, digits, '-', '_', '.'");
    }
    let prefixes = p.absorb(trunk::validate(&body.gateways, &body.prefixes)).unwrap_or_default();
    if let Some(c) = &body.credentials {
        if !(1..=128).contains(&c.username.chars().count()) {
            p.push("credentials.username", "must be 1 to 128 characters");
        }
        if !(1..=128).contains(&c.password.chars().count()) {
            p.push("credentials.password", "must be 1 to 128 characters");
        }
    }
    p.finish(Validated {
        prefixes,
        username: body.credentials.as_ref().map(|c| c.username.clone()),
        password: body.credentials.as_ref().map(|c| c.password.clone()),
    })
    .map_err(ApiError::Validation)
}

async fn name_taken(state: &AppState, name: &str, except_id: Option<&str>) -> Result<bool, ApiError> {
    let found = entity::Entity::find().filter(entity::Column::Name.eq(name)).one(&state.db).await?;
    Ok(found.is_some_and(|t| Some(t.id.as_str()) != except_id))
}

async fn find(state: &AppState, id: &str) -> Result<entity::Model, ApiError> {
    entity::Entity::find_by_id(id.to_owned())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("trunk {id}")))
}

#[utoipa::path(
    operation_id = "createTrunk",
    tag = "trunks",
    request_body = TrunkRequest,
    responses(
        (status = 201, body = TrunkResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[post("")]
async fn create(state: web::Data<AppState>, Body(body): Body<TrunkRequest>) -> Result<HttpResponse, ApiError> {
    let v = validate(&body)?;
    if name_taken(&state, &body.name, None).await? {
        return Err(ApiError::Conflict(format!("a trunk named {} already exists", body.name)));
    }
    let now = Utc::now();
    let model = entity::Model {
        id: uuid::Uuid::new_v4().to_string(),
        name: body.name,
        gateways: serde_json::to_value(&body.gateways).map_err(|e| ApiError::Internal(e.to_string()))?,
        prefixes: serde_json::json!(v.prefixes),
        username: v.username,
        password: v.password,
        pbx: body.pbx,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(&state.db)
    .await?;
    Ok(HttpResponse::Created().json(TrunkResponse::of(model, &state)))
}

#[utoipa::path(
    operation_id = "listTrunks",
    tag = "trunks",
    responses(
        (status = 200, body = TrunkList),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = entity::Entity::find().order_by_asc(entity::Column::Name).all(&state.db).await?;
    let trunks: Vec<TrunkResponse> = rows.into_iter().map(|m| TrunkResponse::of(m, &state)).collect();
    Ok(HttpResponse::Ok().json(TrunkList { count: trunks.len(), trunks }))
}

#[utoipa::path(
    operation_id = "getTrunk",
    tag = "trunks",
    params(("id" = String, Path, description = "Trunk id")),
    responses(
        (status = 200, body = TrunkResponse),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{id}")]
async fn fetch(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TrunkResponse::of(find(&state, &id).await?, &state)))
}

#[utoipa::path(
    operation_id = "updateTrunk",
    tag = "trunks",
    params(("id" = String, Path, description = "Trunk id")),
    request_body = TrunkRequest,
    responses(
        (status = 200, body = TrunkResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[put("/{id}")]
async fn update(
    state: web::Data<AppState>,
    id: web::Path<String>,
    Body(body): Body<TrunkRequest>,
) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &id).await?;
    let v = validate(&body)?;
    if name_taken(&state, &body.name, Some(&existing.id)).await? {
        return Err(ApiError::Conflict(format!("a trunk named {} already exists", body.name)));
    }
    let mut active = existing.into_active_model();
    active.name = Set(body.name);
    active.gateways = Set(serde_json::to_value(&body.gateways).map_err(|e| ApiError::Internal(e.to_string()))?);
    active.prefixes = Set(serde_json::json!(v.prefixes));
    active.username = Set(v.username);
    active.password = Set(v.password);
    active.pbx = Set(body.pbx);
    active.updated_at = Set(Utc::now());
    let model = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(TrunkResponse::of(model, &state)))
}

#[utoipa::path(
    operation_id = "deleteTrunk",
    tag = "trunks",
    params(("id" = String, Path, description = "Trunk id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[delete("/{id}")]
async fn remove(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &id).await?;
    entity::Entity::delete_by_id(existing.id).exec(&state.db).await?;
    Ok(HttpResponse::NoContent().finish())
}
