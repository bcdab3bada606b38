//! `/v1/psip`: Programmable SIP domains and their digest users.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::Utc;
use domains::acl::Acl;
use domains::digest::{DigestAlgorithm, ha1};
use domains::problem::Problems;
use domains::psip::{DomainType, Policy, RegionalUri, SipDomainName};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::Body;
use super::params;
use super::problem::{
    ApiError, BadRequest, InternalError, NotFound, PayloadTooLarge, Problem, Unauthorized, UnsupportedMediaType,
};
use super::schemas;
use crate::state::AppState;
use crate::store::entity::{application, psip_domain, psip_user, registration};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(fetch)
        .service(update)
        .service(remove)
        .service(create_user)
        .service(list_users)
        .service(fetch_user)
        .service(registrations)
        .service(update_user)
        .service(remove_user);
}

/// Vonage's limit of digest users per domain.
pub const MAX_USERS: u64 = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRequest {
    /// 5–32 characters: lower-case letters, digits, hyphens. Required at creation; on update,
    /// when given, it must equal the path's name.
    #[schema(example = "acme-pbx", pattern = "^[a-z0-9][a-z0-9-]{3,30}[a-z0-9]$")]
    pub name: Option<String>,
    /// The application whose answer_url handles this domain's calls.
    pub application_id: String,
    #[schema(schema_with = schemas::acl)]
    pub acl: Vec<String>,
    #[serde(default)]
    pub tls: Policy,
    #[serde(default)]
    pub srtp: Policy,
    /// Allow digest users on this domain.
    #[serde(default)]
    pub digest_auth: bool,
    #[serde(default)]
    pub domain_type: DomainType,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainResponse {
    pub name: String,
    pub application_id: String,
    #[schema(schema_with = schemas::acl)]
    pub acl: Vec<String>,
    pub tls: Policy,
    pub srtp: Policy,
    pub digest_auth: bool,
    pub domain_type: DomainType,
    /// The domain's address in every configured region.
    pub sip_uris: Vec<RegionalUri>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the domain's users (otherwise a domain with users is not deleted).
    #[param(value_type = Option<bool>, default = false)]
    pub cascade: Option<String>,
}

fn to_response(state: &AppState, m: psip_domain::Model) -> DomainResponse {
    DomainResponse {
        sip_uris: state.config.addressing().regional_uris(&m.name),
        acl: serde_json::from_value(m.acl).unwrap_or_default(),
        tls: Policy::from_db(&m.tls),
        srtp: Policy::from_db(&m.srtp),
        domain_type: DomainType::from_db(&m.domain_type),
        name: m.name,
        application_id: m.application_id,
        digest_auth: m.digest_auth,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// Checks a domain body; `path_name` is set on update.
async fn validate(
    state: &AppState,
    body: &DomainRequest,
    path_name: Option<&str>,
) -> Result<(String, Vec<String>), ApiError> {
    let mut p = Problems::new();
    let name = match (path_name, body.name.as_deref()) {
        (None, None) => {
            p.push("name", "is required");
            None
        }
        (None, Some(n)) => p.check("name", SipDomainName::parse(n)).map(|n| n.to_string()),
        (Some(path), Some(n)) if n != path => {
            p.push("name", "cannot be changed; it must equal the domain name in the path");
            None
        }
        (Some(path), _) => Some(path.to_owned()),
    };
    let acl = p.absorb(Acl::parse("acl", &body.acl)).map(|acl| acl.to_strings());
    if application::Entity::find_by_id(body.application_id.clone()).one(&state.db).await?.is_none() {
        p.push("application_id", format!("application '{}' does not exist", body.application_id));
    }
    match p.finish((name, acl))? {
        (Some(name), Some(acl)) => Ok((name, acl)),
        _ => Err(ApiError::Internal("validated domain lacks a field".into())),
    }
}

async fn find(state: &AppState, name: &str) -> Result<psip_domain::Model, ApiError> {
    psip_domain::Entity::find_by_id(name.to_owned())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("SIP domain {name}")))
}

#[utoipa::path(
    operation_id = "createDomain",
    tag = "psip",
    request_body = DomainRequest,
    responses(
        (status = 201, body = DomainResponse),
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
async fn create(state: web::Data<AppState>, Body(body): Body<DomainRequest>) -> Result<HttpResponse, ApiError> {
    let (name, acl) = validate(&state, &body, None).await?;
    if psip_domain::Entity::find_by_id(name.clone()).one(&state.db).await?.is_some() {
        return Err(ApiError::Conflict(format!("SIP domain {name} already exists")));
    }
    let now = Utc::now();
    let model = psip_domain::Model {
        name,
        application_id: body.application_id,
        acl: serde_json::json!(acl),
        tls: body.tls.as_str().into(),
        srtp: body.srtp.as_str().into(),
        digest_auth: body.digest_auth,
        domain_type: body.domain_type.as_str().into(),
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(&state.db)
    .await?;
    Ok(HttpResponse::Created().json(to_response(&state, model)))
}

#[utoipa::path(
    operation_id = "listDomains",
    tag = "psip",
    responses(
        (status = 200, body = Vec<DomainResponse>),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("")]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = psip_domain::Entity::find().order_by_asc(psip_domain::Column::Name).all(&state.db).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(|m| to_response(&state, m)).collect::<Vec<_>>()))
}

#[utoipa::path(
    operation_id = "getDomain",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx")),
    responses(
        (status = 200, body = DomainResponse),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{name}")]
async fn fetch(state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(to_response(&state, find(&state, &name).await?)))
}

#[utoipa::path(
    operation_id = "updateDomain",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx")),
    request_body = DomainRequest,
    responses(
        (status = 200, body = DomainResponse),
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
#[put("/{name}")]
async fn update(
    state: web::Data<AppState>,
    name: web::Path<String>,
    Body(body): Body<DomainRequest>,
) -> Result<HttpResponse, ApiError> {
    let existing = find(&state, &name).await?;
    let (_, acl) = validate(&state, &body, Some(&name)).await?;
    let mut active = existing.into_active_model();
    active.application_id = Set(body.application_id);
    active.acl = Set(serde_json::json!(acl));
    active.tls = Set(body.tls.as_str().into());
    active.srtp = Set(body.srtp.as_str().into());
    active.digest_auth = Set(body.digest_auth);
    active.domain_type = Set(body.domain_type.as_str().into());
    active.updated_at = Set(Utc::now());
    let model = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(to_response(&state, model)))
}

#[utoipa::path(
    operation_id = "deleteDomain",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "Domain has users and cascade is not set", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[delete("/{name}")]
async fn remove(
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut p = Problems::new();
    let cascade = params::boolean(&mut p, "cascade", query.cascade.as_deref()).unwrap_or(false);
    p.finish(())?;
    let existing = find(&state, &name).await?;
    let txn = state.db.begin().await?;
    let users =
        psip_user::Entity::find().filter(psip_user::Column::DomainName.eq(existing.name.clone())).count(&txn).await?;
    if users > 0 && !cascade {
        return Err(ApiError::Conflict(format!(
            "SIP domain {name} has {users} user(s); delete them first or pass cascade=true"
        )));
    }
    registration::Entity::delete_many()
        .filter(registration::Column::DomainName.eq(existing.name.clone()))
        .exec(&txn)
        .await?;
    psip_user::Entity::delete_many().filter(psip_user::Column::DomainName.eq(existing.name.clone())).exec(&txn).await?;
    psip_domain::Entity::delete_by_id(existing.name).exec(&txn).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- users ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// Digest username: 1–64 letters, digits and `-_.!~*'()&=+$,;?/`. Required at creation;
    /// on update, when given, it must equal the path's.
    #[schema(example = "alice", pattern = r"^[A-Za-z0-9_.!~*'()&=+$,;?/-]{1,64}$")]
    pub key: Option<String>,
    /// Digest password. Never returned.
    #[schema(min_length = 8, max_length = 128)]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub key: String,
    pub domain: String,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<psip_user::Model> for UserResponse {
    fn from(m: psip_user::Model) -> Self {
        UserResponse { key: m.key, domain: m.domain_name, created_at: m.created_at }
    }
}

/// RFC 3261 `user` characters minus the escapes, which no digest client needs.
fn check_user_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b));
    if ok { Ok(()) } else { Err("must be 1 to 64 characters: letters, digits and -_.!~*'()&=+$,;?/".into()) }
}

fn check_secret(secret: &str) -> Result<(), String> {
    let n = secret.chars().count();
    if (8..=128).contains(&n) { Ok(()) } else { Err(format!("must be 8 to 128 characters, found {n}")) }
}

fn validate_user(body: &UserRequest, path_key: Option<&str>) -> Result<String, ApiError> {
    let mut p = Problems::new();
    let key = match (path_key, body.key.as_deref()) {
        (None, None) => {
            p.push("key", "is required");
            None
        }
        (None, Some(k)) => p.check("key", check_user_key(k)).map(|_| k.to_owned()),
        (Some(path), Some(k)) if k != path => {
            p.push("key", "cannot be changed; it must equal the user in the path");
            None
        }
        (Some(path), _) => Some(path.to_owned()),
    };
    p.check("secret", check_secret(&body.secret));
    p.finish(key)?.ok_or_else(|| ApiError::Internal("validated user lacks a key".into()))
}

/// HA1 for both algorithms; the realm is the domain name, stable across regions and base
/// domain changes.
fn ha1s(domain: &str, key: &str, secret: &str) -> (String, String) {
    (ha1(DigestAlgorithm::Md5, key, domain, secret), ha1(DigestAlgorithm::Sha256, key, domain, secret))
}

async fn find_user(state: &AppState, domain: &str, key: &str) -> Result<psip_user::Model, ApiError> {
    psip_user::Entity::find_by_id((domain.to_owned(), key.to_owned()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("user {key} of SIP domain {domain}")))
}

#[utoipa::path(
    operation_id = "createDomainUser",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx")),
    request_body = UserRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "User exists, digest_auth is off, or the domain has 200 users", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[post("/{name}/users")]
async fn create_user(
    state: web::Data<AppState>,
    name: web::Path<String>,
    Body(body): Body<UserRequest>,
) -> Result<HttpResponse, ApiError> {
    let domain = find(&state, &name).await?;
    let key = validate_user(&body, None)?;
    if !domain.digest_auth {
        return Err(ApiError::Conflict(format!("SIP domain {name} has digest_auth disabled; enable it to add users")));
    }
    let count = psip_user::Entity::find()
        .filter(psip_user::Column::DomainName.eq(domain.name.clone()))
        .count(&state.db)
        .await?;
    if count >= MAX_USERS {
        return Err(ApiError::Conflict(format!("SIP domain {name} already has {MAX_USERS} users")));
    }
    if psip_user::Entity::find_by_id((domain.name.clone(), key.clone())).one(&state.db).await?.is_some() {
        return Err(ApiError::Conflict(format!("user {key} already exists in SIP domain {name}")));
    }
    let (ha1_md5, ha1_sha256) = ha1s(&domain.name, &key, &body.secret);
    let model = psip_user::Model { domain_name: domain.name, key, ha1_md5, ha1_sha256, created_at: Utc::now() }
        .into_active_model()
        .insert(&state.db)
        .await?;
    Ok(HttpResponse::Created().json(UserResponse::from(model)))
}

#[utoipa::path(
    operation_id = "listDomainUsers",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx")),
    responses(
        (status = 200, body = Vec<UserResponse>),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{name}/users")]
async fn list_users(state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let domain = find(&state, &name).await?;
    let rows = psip_user::Entity::find()
        .filter(psip_user::Column::DomainName.eq(domain.name))
        .order_by_asc(psip_user::Column::Key)
        .all(&state.db)
        .await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(UserResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(
    operation_id = "getDomainUser",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx"), ("key" = String, Path, description = "User", example = "alice")),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{name}/users/{key}")]
async fn fetch_user(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    Ok(HttpResponse::Ok().json(UserResponse::from(find_user(&state, &name, &key).await?)))
}

#[utoipa::path(
    operation_id = "listDomainUserRegistrations",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx"), ("key" = String, Path, description = "User", example = "alice")),
    responses(
        (status = 200, description = "The user's live registrations", body = Vec<super::registrations::RegistrationResponse>),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[get("/{name}/users/{key}/registrations")]
async fn registrations(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    let user = find_user(&state, &name, &key).await?;
    let live = super::registrations::live(&state, &user.domain_name, &user.key).await?;
    Ok(HttpResponse::Ok().json(live))
}

#[utoipa::path(
    operation_id = "updateDomainUser",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx"), ("key" = String, Path, description = "User", example = "alice")),
    request_body = UserRequest,
    responses(
        (status = 200, body = UserResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[put("/{name}/users/{key}")]
async fn update_user(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    Body(body): Body<UserRequest>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    let existing = find_user(&state, &name, &key).await?;
    validate_user(&body, Some(&key))?;
    let (md5, sha256) = ha1s(&existing.domain_name, &existing.key, &body.secret);
    let mut active = existing.into_active_model();
    active.ha1_md5 = Set(md5);
    active.ha1_sha256 = Set(sha256);
    let model = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(model)))
}

#[utoipa::path(
    operation_id = "deleteDomainUser",
    tag = "psip",
    params(("name" = String, Path, description = "Domain name", example = "acme-pbx"), ("key" = String, Path, description = "User", example = "alice")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("basicAuth" = []))
)]
#[delete("/{name}/users/{key}")]
async fn remove_user(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    let existing = find_user(&state, &name, &key).await?;
    let txn = state.db.begin().await?;
    registration::Entity::delete_many()
        .filter(registration::Column::DomainName.eq(existing.domain_name.clone()))
        .filter(registration::Column::UserKey.eq(existing.key.clone()))
        .exec(&txn)
        .await?;
    psip_user::Entity::delete_by_id((existing.domain_name, existing.key)).exec(&txn).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
