//! `/v2/applications`: create, list (paged), get, update and delete applications, in the
//! shape of Vonage's Application API v2.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::Utc;
use domains::application::Capabilities;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Body;
use super::pagination::{Href, PageLinks, PageQuery, total_pages};
use super::problem::{
    ApiError, BadRequest, InternalError, NotFound, PayloadTooLarge, Problem, Unauthorized, UnsupportedMediaType,
};
use super::schemas::CapabilitiesSchema;
use crate::keys;
use crate::state::AppState;
use crate::store::entity::{application, number, psip_domain};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(fetch).service(update).service(remove);
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplicationRequest {
    /// 1–200 characters, not only spaces (stored trimmed).
    #[schema(example = "My voice app", min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = CapabilitiesSchema)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub keys: Option<KeysRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysRequest {
    /// RSA public key (PEM) that verifies the application's RS256 JWTs. When omitted at
    /// creation, a key pair is generated and the private key returned once.
    pub public_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeysResponse {
    pub public_key: String,
    /// Only in the response that generated it; never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SelfLink {
    #[serde(rename = "self")]
    pub this: Href,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationResponse {
    pub id: String,
    pub name: String,
    pub keys: KeysResponse,
    #[schema(value_type = CapabilitiesSchema)]
    pub capabilities: Capabilities,
    pub _links: SelfLink,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationsEmbedded {
    pub applications: Vec<ApplicationResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationList {
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: u64,
    #[schema(minimum = 1, maximum = 10000000)]
    pub page: u64,
    pub total_items: u64,
    pub total_pages: u64,
    pub _embedded: ApplicationsEmbedded,
    pub _links: PageLinks,
}

const BASE: &str = "/v2/applications";

fn to_response(m: application::Model, private_key: Option<String>) -> ApplicationResponse {
    ApplicationResponse {
        _links: SelfLink { this: Href { href: format!("{BASE}/{}", m.id) } },
        capabilities: serde_json::from_value(m.capabilities).unwrap_or_default(),
        keys: KeysResponse { public_key: m.public_key, private_key },
        id: m.id,
        name: m.name,
    }
}

/// Validated pieces of a create/update body.
struct Validated {
    name: String,
    capabilities: serde_json::Value,
    public_key: Option<String>,
}

fn validate(state: &AppState, body: ApplicationRequest) -> Result<Validated, ApiError> {
    let mut problems = domains::problem::Problems::new();
    // The length is that of the name as sent, so that it is the documented maxLength.
    let name = body.name.trim().to_owned();
    if name.is_empty() || body.name.chars().count() > 200 {
        problems.push("name", "must be 1 to 200 characters, not only spaces");
    }
    let caps = problems.absorb(body.capabilities.normalise(&state.config.regions));
    let public_key = body.keys.and_then(|k| k.public_key);
    if let Some(pem) = &public_key {
        problems.check("keys.public_key", keys::check_public_key(pem));
    }
    let caps = problems.finish(caps)?.unwrap_or_default();
    let capabilities = serde_json::to_value(caps).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Validated { name, capabilities, public_key })
}

#[utoipa::path(
    operation_id = "createApplication",
    tag = "applications",
    request_body = ApplicationRequest,
    responses(
        (status = 201, description = "Created; `keys.private_key` present when generated", body = ApplicationResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[post("")]
async fn create(state: web::Data<AppState>, Body(body): Body<ApplicationRequest>) -> Result<HttpResponse, ApiError> {
    let v = validate(&state, body)?;
    let (public_key, private_key) = match v.public_key {
        Some(pk) => (pk, None),
        None => {
            let pair = web::block(keys::generate_rsa)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(ApiError::Internal)?;
            (pair.public_pem, Some(pair.private_pem))
        }
    };
    let now = Utc::now();
    let model = application::Model {
        id: uuid::Uuid::new_v4().to_string(),
        name: v.name,
        capabilities: v.capabilities,
        public_key,
        created_at: now,
        updated_at: now,
    };
    let model = model.into_active_model().insert(&state.db).await?;
    Ok(HttpResponse::Created().json(to_response(model, private_key)))
}

#[utoipa::path(
    operation_id = "listApplications",
    tag = "applications",
    params(PageQuery),
    responses(
        (status = 200, body = ApplicationList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let page = query.resolve()?;
    let all =
        application::Entity::find().order_by_asc(application::Column::CreatedAt).order_by_asc(application::Column::Id);
    let total_items = all.clone().count(&state.db).await?;
    let items = all.offset(page.offset).limit(page.size).all(&state.db).await?;
    let pages = total_pages(total_items, page.size);
    Ok(HttpResponse::Ok().json(ApplicationList {
        page_size: page.size,
        page: page.number,
        total_items,
        total_pages: pages,
        _embedded: ApplicationsEmbedded { applications: items.into_iter().map(|m| to_response(m, None)).collect() },
        _links: PageLinks::new(BASE, page.size, page.number, pages),
    }))
}

async fn find(state: &AppState, id: &str) -> Result<application::Model, ApiError> {
    application::Entity::find_by_id(id.to_owned())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("application {id}")))
}

#[utoipa::path(
    operation_id = "getApplication",
    tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    responses(
        (status = 200, body = ApplicationResponse),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{id}")]
async fn fetch(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(to_response(find(&state, &id).await?, None)))
}

#[utoipa::path(
    operation_id = "updateApplication",
    tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    request_body = ApplicationRequest,
    responses(
        (status = 200, body = ApplicationResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
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
    Body(body): Body<ApplicationRequest>,
) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &id).await?;
    let v = validate(&state, body)?;
    let mut active = existing.into_active_model();
    active.name = Set(v.name);
    active.capabilities = Set(v.capabilities);
    if let Some(pk) = v.public_key {
        active.public_key = Set(pk);
    }
    active.updated_at = Set(Utc::now());
    let model = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(to_response(model, None)))
}

#[utoipa::path(
    operation_id = "deleteApplication",
    tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "Still used by a domain or number", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[delete("/{id}")]
async fn remove(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &id).await?;
    let in_use = |what: &str| ApiError::Conflict(format!("application {id} is still used by {what}"));
    let app_id = existing.id.clone();
    let domains = psip_domain::Entity::find().filter(psip_domain::Column::ApplicationId.eq(app_id.clone()));
    if domains.count(&state.db).await? > 0 {
        return Err(in_use("a SIP domain"));
    }
    if number::Entity::find().filter(number::Column::ApplicationId.eq(app_id)).count(&state.db).await? > 0 {
        return Err(in_use("a number"));
    }
    // The foreign keys still guard against a domain or number linked meanwhile.
    application::Entity::delete_by_id(existing.id).exec(&state.db).await?;
    Ok(HttpResponse::NoContent().finish())
}
