//! `/v1/calls` (Voice API, JWT): the calls of the authenticated application, as Vonage lists
//! and shows them (HAL, `record_index` paging).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, put, web};
use domains::events::CallStatus;
use domains::problem::{InvalidParameter, Problems};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthenticatedApplication;
use super::json::Body;
use super::pagination::{DEFAULT_PAGE_SIZE, Href, MAX_PAGE_SIZE};
use super::params;
use super::problem::{
    ApiError, BadRequest, InternalError, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType,
};
use crate::state::AppState;
use crate::store::entity::call;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(fetch).service(update);
}

/// The highest `record_index`.
pub const MAX_RECORD_INDEX: u64 = 1_000_000_000;
/// The longest `conversation_uuid` filter.
pub const MAX_CONVERSATION_UUID: usize = 128;
const ORDERS: [&str; 2] = ["asc", "desc"];

fn statuses() -> [&'static str; CallStatus::ALL.len()] {
    CallStatus::ALL.map(CallStatus::as_str)
}

fn order_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ORDERS))
        .default(Some("asc".into()))
        .description(Some("By creation time."))
        .build()
}

fn status_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(statuses()))
        .description(Some("Only calls with this status."))
        .build()
}

/// The values are kept as text and parsed in [`list`], which names the parameter it refuses.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Calls per page.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100, default = 10)]
    pub page_size: Option<String>,
    /// Offset of the first call returned.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 1000000000, default = 0)]
    pub record_index: Option<String>,
    #[param(schema_with = order_schema)]
    pub order: Option<String>,
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Only the calls of this conversation.
    #[param(value_type = Option<String>, max_length = 128)]
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
    /// The leg's media quality (packets, loss, jitter, round trip, estimated MOS), once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<domains::quality::Quality>,
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
            quality: m.quality.as_deref().and_then(|q| serde_json::from_str(q).ok()),
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
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: u64,
    #[schema(minimum = 0, maximum = 1000000000)]
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
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 500, response = InternalError),
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
    let mut p = Problems::new();
    let size = params::integer(&mut p, "page_size", q.page_size.as_deref(), 1..=MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE);
    let index = params::integer(&mut p, "record_index", q.record_index.as_deref(), 0..=MAX_RECORD_INDEX, 0);
    let order = params::one_of(&mut p, "order", q.order.as_deref(), &ORDERS);
    let status = params::one_of(&mut p, "status", q.status.as_deref(), &statuses());
    let conversation = params::text(&mut p, "conversation_uuid", q.conversation_uuid.as_deref(), MAX_CONVERSATION_UUID);
    p.finish(())?;
    state.records.flush().await;
    let mut query = call::Entity::find().filter(call::Column::ApplicationId.eq(app.id.clone()));
    if let Some(s) = status {
        query = query.filter(call::Column::Status.eq(s));
    }
    if let Some(c) = conversation {
        query = query.filter(call::Column::ConversationUuid.eq(c));
    }
    query = match order {
        Some("desc") => query.order_by_desc(call::Column::CreatedAt),
        _ => query.order_by_asc(call::Column::CreatedAt),
    };
    let count = query.clone().count(&state.db).await?;
    let rows = query.offset(index).limit(size).all(&state.db).await?;
    let href = |i: u64| Href { href: format!("/v1/calls?page_size={size}&record_index={i}") };
    // A next link only where a valid record_index leads.
    let next = index.checked_add(size).filter(|n| *n < count && *n <= MAX_RECORD_INDEX);
    Ok(HttpResponse::Ok().json(CallList {
        count,
        page_size: size,
        record_index: index,
        _links: CallListLinks {
            this: href(index),
            next: next.map(href),
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
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    ),
    security(("bearerAuth" = []))
)]
#[get("/{uuid}")]
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = own_call(&req, &state, &uuid).await?;
    Ok(HttpResponse::Ok().json(CallResponse::from(row)))
}

/// The authenticated application's call `uuid`, every record change so far included; another
/// application's call is as unknown as one that never was.
async fn own_call(req: &HttpRequest, state: &AppState, uuid: &str) -> Result<call::Model, ApiError> {
    let app = application(req)?;
    state.records.flush().await;
    call::Entity::find_by_id(uuid.to_owned())
        .filter(call::Column::ApplicationId.eq(app.id))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("call {uuid}")))
}

/// What to do with a live call: `hangup`, or `transfer` of the caller's leg to a new NCCO
/// (`destination`). The other actions of Vonage's API come with the Voice API work.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CallUpdate {
    #[schema(example = "hangup")]
    pub action: String,
    /// For `transfer`: `{"type": "ncco", "ncco": [...]}` (inline) or
    /// `{"type": "ncco", "url": ["https://…"]}` (fetched with GET; `type: "url"` is accepted too).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub destination: Option<serde_json::Value>,
}

impl CallUpdate {
    /// The control this update asks of the call, once validated.
    fn control(&self, uuid: &str) -> Result<domains::call::Control, ApiError> {
        let uuid = uuid.to_owned();
        match self.action.as_str() {
            "hangup" => Ok(domains::call::Control::Hangup { uuid }),
            "transfer" => Ok(domains::call::Control::Transfer { uuid, to: self.transfer_to()? }),
            other => {
                Err(ApiError::invalid("action", format!("'{other}' is not supported yet; supported: hangup, transfer")))
            }
        }
    }

    fn transfer_to(&self) -> Result<domains::call::TransferTo, ApiError> {
        let Some(destination) = self.destination.as_ref().and_then(serde_json::Value::as_object) else {
            return Err(ApiError::invalid("destination", "a transfer needs a destination object"));
        };
        if !matches!(destination.get("type").and_then(serde_json::Value::as_str), Some("ncco" | "url")) {
            return Err(ApiError::invalid("destination.type", "must be ncco"));
        }
        match (destination.get("ncco"), destination.get("url")) {
            (Some(ncco), None) => {
                domains::ncco::Ncco::parse(ncco).map(domains::call::TransferTo::Ncco).map_err(|problems| {
                    ApiError::Validation(
                        problems
                            .into_iter()
                            .map(|p| InvalidParameter::new(format!("destination.ncco{}", p.name), p.reason))
                            .collect(),
                    )
                })
            }
            (None, Some(url)) => {
                let url = match url.as_array().map(Vec::as_slice) {
                    Some([one]) => one.as_str(),
                    _ => None,
                };
                url.and_then(|u| reqwest::Url::parse(u).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .map(domains::call::TransferTo::Url)
                    .ok_or_else(|| ApiError::invalid("destination.url", "must be an array of one http(s) URL"))
            }
            _ => Err(ApiError::invalid("destination", "give exactly one of ncco and url")),
        }
    }
}

#[utoipa::path(
    operation_id = "updateCall",
    tag = "calls",
    params(("uuid" = String, Path, description = "Call leg uuid")),
    request_body = CallUpdate,
    responses(
        (status = 204, description = "Done: the leg is being hung up, or transferred"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
    ),
    security(("bearerAuth" = []))
)]
#[put("/{uuid}")]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    uuid: web::Path<String>,
    Body(body): Body<CallUpdate>,
) -> Result<HttpResponse, ApiError> {
    let control = body.control(&uuid)?;
    let row = own_call(&req, &state, &uuid).await?;
    if matches!(control, domains::call::Control::Transfer { .. }) && row.direction != "inbound" {
        return Err(ApiError::invalid("action", "transfer of an outbound leg is not supported yet"));
    }
    // The request goes to the call's own task: nothing is changed behind its back.
    let live = state.calls.get(&domains::call::Key::Uuid(uuid.clone()));
    let control = crate::calls::CallInput::Control(control);
    match live.map(|tx| tx.send(control).is_ok()) {
        Some(true) => Ok(HttpResponse::NoContent().finish()),
        _ => Err(ApiError::BadRequest {
            detail: format!("call {uuid} is not in progress on this node"),
            invalid: vec![],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bounds_are_the_enforced_ones() {
        let doc = serde_json::to_value(<CallQuery as IntoParams>::into_params(|| None)).unwrap();
        assert_eq!(doc[0]["schema"]["maximum"], MAX_PAGE_SIZE);
        assert_eq!(doc[1]["schema"]["maximum"], MAX_RECORD_INDEX);
        assert_eq!(doc[3]["schema"]["enum"].as_array().map(Vec::len), Some(CallStatus::ALL.len()));
        assert_eq!(doc[4]["schema"]["maxLength"], MAX_CONVERSATION_UUID);
    }
}
