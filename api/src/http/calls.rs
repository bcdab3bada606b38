//! `/v1/calls` (Voice API, JWT): the calls of the authenticated application, as Vonage lists
//! and shows them (HAL, `record_index` paging).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthenticatedApplication;
use super::pagination::Href;
use super::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::store::entity::call;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(fetch);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// 1–100, default 10.
    pub page_size: Option<u64>,
    /// Offset of the first record, default 0.
    pub record_index: Option<u64>,
    /// asc (default) or desc by creation time.
    pub order: Option<String>,
    pub status: Option<String>,
    pub conversation_uuid: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Party {
    #[serde(rename = "type")]
    pub kind: String,
    /// The number or SIP user.
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallLinks {
    #[serde(rename = "self")]
    pub this: Href,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallResponse {
    pub uuid: String,
    pub conversation_uuid: String,
    pub to: Party,
    pub from: Party,
    pub status: String,
    pub direction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds, as a string (Vonage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    pub _links: CallLinks,
}

impl From<call::Model> for CallResponse {
    fn from(m: call::Model) -> Self {
        CallResponse {
            _links: CallLinks { this: Href { href: format!("/v1/calls/{}", m.uuid) } },
            uuid: m.uuid,
            conversation_uuid: m.conversation_uuid,
            to: Party { kind: m.to_type, number: m.to_number },
            from: Party { kind: m.from_type, number: m.from_number },
            status: m.status,
            direction: m.direction,
            detail: m.detail,
            start_time: m.start_time,
            end_time: m.end_time,
            duration: m.duration.map(|d| d.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallListLinks {
    #[serde(rename = "self")]
    pub this: Href,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<Href>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallsEmbedded {
    pub calls: Vec<CallResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    pub count: u64,
    pub page_size: u64,
    pub record_index: u64,
    pub _links: CallListLinks,
    pub _embedded: CallsEmbedded,
}

fn application(req: &HttpRequest) -> Result<AuthenticatedApplication, ApiError> {
    req.extensions()
        .get::<AuthenticatedApplication>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("JWT middleware did not run".into()))
}

#[utoipa::path(
    operation_id = "listCalls",
    tag = "calls",
    params(CallQuery),
    responses(
        (status = 200, description = "Calls of the authenticated application (HAL)", body = CallList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
#[get("")]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CallQuery>,
) -> Result<HttpResponse, ApiError> {
    let app = application(&req)?;
    let size = q.page_size.unwrap_or(10);
    if !(1..=100).contains(&size) {
        return Err(ApiError::invalid("page_size", "must be 1 to 100"));
    }
    let index = q.record_index.unwrap_or(0);
    let mut query = call::Entity::find().filter(call::Column::ApplicationId.eq(app.id.clone()));
    if let Some(s) = &q.status {
        query = query.filter(call::Column::Status.eq(s.clone()));
    }
    if let Some(c) = &q.conversation_uuid {
        query = query.filter(call::Column::ConversationUuid.eq(c.clone()));
    }
    query = match q.order.as_deref() {
        None | Some("asc") => query.order_by_asc(call::Column::CreatedAt),
        Some("desc") => query.order_by_desc(call::Column::CreatedAt),
        Some(_) => return Err(ApiError::invalid("order", "must be asc or desc")),
    };
    let count = query.clone().count(&state.db).await?;
    let rows = query.offset(index).limit(size).all(&state.db).await?;
    let href = |i: u64| Href { href: format!("/v1/calls?page_size={size}&record_index={i}") };
    Ok(HttpResponse::Ok().json(CallList {
        count,
        page_size: size,
        record_index: index,
        _links: CallListLinks {
            this: href(index),
            next: (index + size < count).then(|| href(index + size)),
            prev: (index > 0).then(|| href(index.saturating_sub(size))),
        },
        _embedded: CallsEmbedded { calls: rows.into_iter().map(CallResponse::from).collect() },
    }))
}

#[utoipa::path(
    operation_id = "getCall",
    tag = "calls",
    params(("uuid" = String, Path, description = "Call leg uuid")),
    responses(
        (status = 200, body = CallResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
#[get("/{uuid}")]
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let app = application(&req)?;
    let row = call::Entity::find_by_id(uuid.clone())
        .filter(call::Column::ApplicationId.eq(app.id))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("call {uuid}")))?;
    Ok(HttpResponse::Ok().json(CallResponse::from(row)))
}
