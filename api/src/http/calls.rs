//! `/v1/calls` (Voice API, JWT): the calls of the authenticated application, as Vonage lists
//! and shows them (HAL, `record_index` paging).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, put, web};
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
    cfg.service(super::outbound::create)
        .service(list)
        .service(fetch)
        .service(update)
        .service(talk)
        .service(stop_talk)
        .service(stream)
        .service(stop_stream)
        .service(dtmf);
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
    /// Only calls created at or after this time (ISO 8601).
    #[param(value_type = Option<String>, format = DateTime)]
    pub date_start: Option<String>,
    /// Only calls created at or before this time (ISO 8601).
    #[param(value_type = Option<String>, format = DateTime)]
    pub date_end: Option<String>,
}

/// A leg's party as Vonage shows it: `{"type": "phone", "number": …}`, or a `uri` (or SIP
/// user) for `sip` and `websocket`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Party {
    #[serde(rename = "type")]
    pub kind: String,
    /// A `phone` party's E.164 number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// A `sip` or `websocket` party's URI (or SIP user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

impl Party {
    fn new(kind: String, party: String) -> Party {
        match kind.as_str() {
            "phone" => Party { kind, number: Some(party), uri: None },
            // A SIP user alone (an inbound caller's) is shown as a URI, as clients expect.
            "sip" if !party.starts_with("sip:") && !party.starts_with("sips:") => {
                Party { kind, number: None, uri: Some(format!("sip:{party}")) }
            }
            _ => Party { kind, number: None, uri: Some(party) },
        }
    }
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
    /// The final SIP response to the leg's INVITE (200 once answered), once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
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
            to: Party::new(m.to_type, m.to_number),
            from: Party::new(m.from_type, m.from_number),
            status: m.status,
            direction: m.direction,
            detail: m.detail,
            start_time: m.start_time,
            end_time: m.end_time,
            duration: m.duration.map(|d| d.to_string()),
            quality: m.quality.as_deref().and_then(|q| serde_json::from_str(q).ok()),
            sip_code: m.sip_code.and_then(|c| u16::try_from(c).ok()),
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

pub(super) fn application(req: &HttpRequest) -> Result<AuthenticatedApplication, ApiError> {
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
    let start = params::datetime(&mut p, "date_start", q.date_start.as_deref());
    let end = params::datetime(&mut p, "date_end", q.date_end.as_deref());
    if let (Some(a), Some(b)) = (start, end)
        && a > b
    {
        p.push("date_end", "must not be before date_start");
    }
    p.finish(())?;
    state.records.flush().await;
    let mut query = call::Entity::find().filter(call::Column::ApplicationId.eq(app.id.clone()));
    if let Some(s) = status {
        query = query.filter(call::Column::Status.eq(s));
    }
    if let Some(c) = conversation {
        query = query.filter(call::Column::ConversationUuid.eq(c));
    }
    if let Some(t) = start {
        query = query.filter(call::Column::CreatedAt.gte(t));
    }
    if let Some(t) = end {
        query = query.filter(call::Column::CreatedAt.lte(t));
    }
    query = match order {
        Some("desc") => query.order_by_desc(call::Column::CreatedAt),
        _ => query.order_by_asc(call::Column::CreatedAt),
    };
    let count = query.clone().count(&state.db).await?;
    let rows = query.offset(index).limit(size).all(&state.db).await?;
    // The links keep the filters, so following them pages through the same selection.
    let filters: Vec<(&str, &str)> = [
        ("order", order),
        ("status", status),
        ("conversation_uuid", conversation),
        ("date_start", q.date_start.as_deref()),
        ("date_end", q.date_end.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let href = |i: u64| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("page_size", &size.to_string()).append_pair("record_index", &i.to_string());
        query.extend_pairs(filters.iter().copied());
        Href { href: format!("/v1/calls?{}", query.finish()) }
    };
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

/// What to do with a live call: `hangup`, `mute`/`unmute`, `earmuff`/`unearmuff`, or
/// `transfer` of the call's own leg to a new NCCO (`destination`).
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
            "mute" | "unmute" => Ok(domains::call::Control::Mute { uuid, muted: self.action == "mute" }),
            "earmuff" | "unearmuff" => {
                Ok(domains::call::Control::Earmuff { uuid, earmuffed: self.action == "earmuff" })
            }
            other => Err(ApiError::invalid(
                "action",
                format!("'{other}' is not an action; one of hangup, mute, unmute, earmuff, unearmuff, transfer"),
            )),
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
    if matches!(control, domains::call::Control::Transfer { .. }) && !starts_its_conversation(&state, &row).await? {
        return Err(ApiError::invalid("action", "transfer of a connect's outbound leg is not supported yet"));
    }
    steer(&state, &row, control).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// True for a call's own leg (the inbound caller, or the party a `POST /v1/calls` rang): the
/// first leg of its conversation, where a `connect`'s legs come after it.
async fn starts_its_conversation(state: &AppState, row: &call::Model) -> Result<bool, ApiError> {
    Ok(conversation_starters(&state.db, std::slice::from_ref(row)).await?.contains(&row.uuid))
}

/// The uuids of the legs that start the conversations of `rows` (see
/// [`starts_its_conversation`]), with one query.
pub(super) async fn conversation_starters(
    db: &sea_orm::DatabaseConnection,
    rows: &[call::Model],
) -> Result<Vec<String>, sea_orm::DbErr> {
    let conversations: Vec<String> = rows.iter().map(|r| r.conversation_uuid.clone()).collect();
    let legs = call::Entity::find()
        .filter(call::Column::ConversationUuid.is_in(conversations))
        .order_by_asc(call::Column::CreatedAt)
        .all(db)
        .await?;
    let mut seen: Vec<&str> = Vec::new();
    let mut first = Vec::new();
    for leg in &legs {
        if !seen.contains(&leg.conversation_uuid.as_str()) {
            seen.push(&leg.conversation_uuid);
            first.push(leg.uuid.clone());
        }
    }
    Ok(first)
}

/// Hands `control` to the live call the leg `row` belongs to: the call's own task applies it,
/// nothing is changed behind its back. An ended leg, or one on another node, is refused.
pub(super) async fn steer(
    state: &AppState,
    row: &call::Model,
    control: domains::call::Control,
) -> Result<(), ApiError> {
    let uuid = &row.uuid;
    if CallStatus::ALL.iter().any(|s| s.as_str() == row.status && s.is_terminal()) {
        return Err(ApiError::BadRequest {
            detail: format!("call {uuid} has ended ({})", row.status),
            invalid: vec![],
        });
    }
    // A call another node runs is not steerable from here (yet): as unknown as no call.
    let gone = || ApiError::NotFound(format!("call {uuid} is not in progress on this node"));
    let live = state.calls.get(&domains::call::Key::Uuid(uuid.clone())).ok_or_else(gone)?;
    let (verdict, accepted) = tokio::sync::oneshot::channel();
    live.send(crate::calls::CallInput::Control(control, verdict)).map_err(|_| gone())?;
    match accepted.await {
        Ok(Ok(())) => Ok(()),
        // Vonage answers 400 to a control of a call that is not active.
        Ok(Err(refused)) => Err(ApiError::BadRequest { detail: refused.to_string(), invalid: vec![] }),
        Err(_) => Err(gone()),
    }
}

/// What `PUT …/talk`, `…/stream` and `…/dtmf` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResult {
    #[schema(example = "Talk started")]
    pub message: String,
    pub uuid: String,
}

fn started(message: &str, uuid: &str) -> HttpResponse {
    HttpResponse::Ok().json(ActionResult { message: message.to_owned(), uuid: uuid.to_owned() })
}

/// Text spoken into a live call (Vonage's `PUT /v1/calls/{uuid}/talk`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TalkRequest {
    #[schema(max_length = 1500)]
    pub text: String,
    /// BCP-47; a language without a voice is refused.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub style: Option<u32>,
    #[serde(default)]
    pub premium: Option<bool>,
    /// Deprecated by Vonage; accepted and ignored.
    #[serde(default)]
    pub voice_name: Option<String>,
    #[serde(flatten)]
    pub play: PlayControls,
}

/// `loop` and `level` of a talk or stream, as Vonage takes them: numbers, or numbers in strings.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlayControls {
    /// Times to play, 0 = until stopped.
    #[serde(default, rename = "loop")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 100)]
    pub loop_count: Option<serde_json::Value>,
    /// -1 to 1.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = -1, maximum = 1)]
    pub level: Option<serde_json::Value>,
}

/// An audio file played into a live call (Vonage's `PUT /v1/calls/{uuid}/stream`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamRequest {
    /// One http(s) URL of an MP3 or WAV file.
    pub stream_url: Vec<String>,
    #[serde(flatten)]
    pub play: PlayControls,
}

/// Digits sent into a live call (Vonage's `PUT /v1/calls/{uuid}/dtmf`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct DtmfRequest {
    /// 0-9, *, #, A-D; `p` is a 500 ms pause.
    #[schema(max_length = 64)]
    pub digits: String,
}

impl PlayControls {
    /// The validated `loop` (default 1) and `level` (default 0).
    fn read(&self, p: &mut Problems) -> (u32, f64) {
        loop_and_level(p, self.loop_count.as_ref(), self.level.as_ref())
    }
}

fn loop_and_level(
    p: &mut Problems,
    loop_count: Option<&serde_json::Value>,
    level: Option<&serde_json::Value>,
) -> (u32, f64) {
    let number = |v: &serde_json::Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
    let loops = match loop_count.map(number) {
        None => 1,
        Some(Some(n)) if n.fract() == 0.0 && (0.0..=100.0).contains(&n) => n as u32,
        Some(_) => {
            p.push("loop", "must be an integer from 0 (until stopped) to 100");
            1
        }
    };
    let level = match level.map(number) {
        None => 0.0,
        Some(Some(l)) if (-1.0..=1.0).contains(&l) => l,
        Some(_) => {
            p.push("level", "must be a number from -1 to 1");
            0.0
        }
    };
    (loops, level)
}

macro_rules! call_media_path {
    ($name:ident, $method:ident, $path:literal, $id:literal, $summary:literal, $body:ty, $ok:literal) => {
        #[utoipa::path(
                                                    operation_id = $id,
                                                    tag = "calls",
                                                    summary = $summary,
                                                    params(("uuid" = String, Path, description = "Call leg uuid")),
                                                    request_body = $body,
                                                    responses(
                                                        (status = 200, description = $ok, body = ActionResult),
                                                        (status = 400, response = BadRequest),
                                                        (status = 401, response = Unauthorized),
                                                        (status = 404, response = NotFound),
                                                        (status = 413, response = PayloadTooLarge),
                                                        (status = 415, response = UnsupportedMediaType),
                                                        (status = 500, response = InternalError),
                                                    ),
                                                    security(("bearerAuth" = []))
                                                )]
        #[$method($path)]
        async fn $name(
            req: HttpRequest,
            state: web::Data<AppState>,
            uuid: web::Path<String>,
            Body(body): Body<$body>,
        ) -> Result<HttpResponse, ApiError> {
            let control = body.control(&uuid)?;
            let row = own_call(&req, &state, &uuid).await?;
            steer(&state, &row, control).await?;
            Ok(started($ok, &uuid))
        }
    };
}

impl TalkRequest {
    fn control(&self, uuid: &str) -> Result<domains::call::Control, ApiError> {
        let mut p = Problems::new();
        if self.text.trim().is_empty() || self.text.chars().count() > 1500 {
            p.push("text", "must be 1 to 1500 characters");
        }
        let language = self.language.clone().unwrap_or_else(|| "en-US".to_owned());
        if domains::voices::voice_for(&language).is_none() {
            p.push("language", format!("no text-to-speech voice speaks {language}"));
        }
        let (loop_count, level) = self.play.read(&mut p);
        p.finish(())?;
        let source =
            domains::media::PlaySource::Speech { text: self.text.clone(), language, style: self.style.unwrap_or(0) };
        Ok(domains::call::Control::Play { uuid: uuid.to_owned(), source, loop_count, level })
    }
}

impl StreamRequest {
    fn control(&self, uuid: &str) -> Result<domains::call::Control, ApiError> {
        let mut p = Problems::new();
        let url = match self.stream_url.as_slice() {
            [one] => reqwest::Url::parse(one).ok().filter(|u| matches!(u.scheme(), "http" | "https")),
            _ => None,
        };
        if url.is_none() {
            p.push("stream_url", "must be an array of one http(s) URL");
        }
        let (loop_count, level) = self.play.read(&mut p);
        p.finish(())?;
        let source = domains::media::PlaySource::Url { url: url.map(|u| u.to_string()).unwrap_or_default() };
        Ok(domains::call::Control::Play { uuid: uuid.to_owned(), source, loop_count, level })
    }
}

impl DtmfRequest {
    fn control(&self, uuid: &str) -> Result<domains::call::Control, ApiError> {
        if self.digits.len() > 64 || !domains::dtmf::valid_digits(&self.digits) {
            return Err(ApiError::invalid("digits", "1 to 64 of 0-9, *, #, A-D and p (a 500 ms pause)"));
        }
        Ok(domains::call::Control::Dtmf { uuid: uuid.to_owned(), digits: self.digits.clone() })
    }
}

/// Stops what a `PUT …/talk` or `…/stream` started.
async fn stop_play(req: &HttpRequest, state: &AppState, uuid: &str, message: &str) -> Result<HttpResponse, ApiError> {
    let row = own_call(req, state, uuid).await?;
    steer(state, &row, domains::call::Control::StopPlay { uuid: uuid.to_owned() }).await?;
    Ok(started(message, uuid))
}

macro_rules! call_stop_path {
    ($name:ident, $path:literal, $id:literal, $summary:literal, $ok:literal) => {
        #[utoipa::path(
                                                    operation_id = $id,
                                                    tag = "calls",
                                                    summary = $summary,
                                                    params(("uuid" = String, Path, description = "Call leg uuid")),
                                                    responses(
                                                        (status = 200, description = $ok, body = ActionResult),
                                                        (status = 400, response = BadRequest),
                                                        (status = 401, response = Unauthorized),
                                                        (status = 404, response = NotFound),
                                                        (status = 500, response = InternalError),
                                                    ),
                                                    security(("bearerAuth" = []))
                                                )]
        #[delete($path)]
        async fn $name(
            req: HttpRequest,
            state: web::Data<AppState>,
            uuid: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            stop_play(&req, &state, &uuid, $ok).await
        }
    };
}

call_stop_path!(stop_talk, "/{uuid}/talk", "stopTalk", "Stop the talk playing into a call", "Talk stopped");
call_stop_path!(stop_stream, "/{uuid}/stream", "stopStream", "Stop the stream playing into a call", "Stream stopped");

call_media_path!(talk, put, "/{uuid}/talk", "startTalk", "Speak text into a call", TalkRequest, "Talk started");
call_media_path!(
    stream,
    put,
    "/{uuid}/stream",
    "startStream",
    "Play audio into a call",
    StreamRequest,
    "Stream started"
);
call_media_path!(dtmf, put, "/{uuid}/dtmf", "sendDtmf", "Send DTMF into a call", DtmfRequest, "DTMF sent");

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
