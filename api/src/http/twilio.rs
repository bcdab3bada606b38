//! The Twilio-compatible calls API, `/2010-04-01/Accounts/{AccountSid}/Calls`, for the
//! applications that create calls the way Twilio's REST API does: HTTP Basic
//! `AccountSid:AuthToken` (the account's, from `GET /v1/account`), form-encoded bodies,
//! Twilio's JSON shapes and error bodies (`code`, `message`, `more_info`, `status`). A call is
//! placed, steered and listed through the same edge, call core and records as the Voice
//! API's: the request becomes a `POST /v1/calls` body (so one validator judges both), its `Url`
//! or `Twiml` the call's document, its `StatusCallback` the call's status callbacks.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, get, post, web};
use base64::Engine;
use chrono::{DateTime, Utc};
use domains::call::{Control, TransferTo};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::outbound::CallCreate;
use super::problem::ApiError;
use crate::sip::edge::HookOverrides;
use crate::state::AppState;
use crate::store::entity::call;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(fetch).service(update);
}

/// Where SignalWire's compatibility API lives on a Space (`/api/laml/2010-04-01/…`), so
/// that its helper library's `Client(signalwire_space_url=…)` reaches the same handlers.
pub const SIGNALWIRE_SCOPE: &str = "/api/laml/2010-04-01/Accounts/{account_sid}";

/// The same handlers under [`SIGNALWIRE_SCOPE`]; left out of the OpenAPI document, which
/// would otherwise list every operation twice under one operationId.
pub fn signalwire_routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(create).service(list).service(fetch).service(update);
}

/// An error as Twilio's API writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioError {
    /// Twilio's error code (`20003` authentication, `20404` not found, `21201` no To, …).
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
}

impl TwilioError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError {
            code,
            message: message.into(),
            more_info: format!("https://www.twilio.com/docs/errors/{code}"),
            status,
        }
    }
}

impl std::fmt::Display for TwilioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl ResponseError for TwilioError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.status == 401 {
            res.insert_header(("WWW-Authenticate", "Basic realm=\"Twilio API\""));
        }
        res.json(self)
    }
}

/// The Voice API's refusals, in Twilio's words: the first invalid parameter, named as the
/// Twilio request names it.
impl From<ApiError> for TwilioError {
    fn from(e: ApiError) -> TwilioError {
        match e {
            ApiError::Validation(problems) => {
                let first = problems.first();
                let (name, reason) = first.map_or(("", ""), |p| (p.name.as_str(), p.reason.as_str()));
                let (code, param) = match name.split(['.', '/']).next().unwrap_or_default() {
                    "to" => (21201, "To"),
                    "from" => (21213, "From"),
                    "answer_url" | "ncco" => (21205, "Url"),
                    "ringing_timer" => (21216, "Timeout"),
                    "length_timer" => (21217, "TimeLimit"),
                    _ => (21200, "the request"),
                };
                TwilioError::new(400, code, format!("{param}: {reason}"))
            }
            ApiError::NotFound(m) => TwilioError::new(404, 20404, m),
            ApiError::TooManyRequests(m) => TwilioError::new(429, 20429, m),
            ApiError::BadRequest { detail, .. } => TwilioError::new(400, 21220, detail),
            other => TwilioError::new(500, 20500, other.to_string()),
        }
    }
}

impl From<sea_orm::DbErr> for TwilioError {
    fn from(e: sea_orm::DbErr) -> TwilioError {
        TwilioError::from(ApiError::from(e))
    }
}

/// HTTP Basic with the account's Account SID and auth token, and the path's `AccountSid` the
/// account's own; checked before a byte of the body is read.
pub async fn require_twilio_basic(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| TwilioError::new(500, 20500, "application state missing"))?;
    let twilio = &state.account.twilio;
    let denied = || TwilioError::new(401, 20003, "Authenticate");
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(denied)?;
    let expected = format!("{}:{}", twilio.account_sid, twilio.auth_token);
    if !crate::account::constant_time_eq(&given, &expected) {
        return Err(denied().into());
    }
    if req.match_info().get("account_sid") != Some(twilio.account_sid.as_str()) {
        return Err(TwilioError::new(404, 20404, "The requested resource was not found").into());
    }
    next.call(req).await
}

/// A call as Twilio's API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioCall {
    /// `CA` and the leg's uuid's 32 hex digits (a voxbridge call id is a UUID).
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub to: String,
    pub from: String,
    /// queued, ringing, in-progress, completed, busy, failed, no-answer, canceled.
    #[schema(example = "in-progress")]
    pub status: String,
    /// inbound, outbound-api, outbound-dial.
    pub direction: String,
    pub api_version: String,
    /// RFC 2822, as Twilio writes dates.
    pub date_created: String,
    pub date_updated: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// Whole seconds.
    pub duration: Option<String>,
    pub answered_by: Option<String>,
    pub price: Option<String>,
    pub price_unit: String,
    pub uri: String,
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.to_rfc2822()
}

/// Twilio's word for a Vonage call status.
fn status(vonage: &str) -> String {
    let known = domains::events::CallStatus::ALL.into_iter().find(|s| s.as_str() == vonage);
    match known {
        Some(domains::events::CallStatus::Started) | None => "queued".into(),
        Some(s) => domains::twiml::status::twilio_status(s).map_or("completed", |(_, status)| status).into(),
    }
}

impl TwilioCall {
    fn of(m: call::Model, account_sid: &str, first_leg: bool) -> TwilioCall {
        let direction = match (m.direction.as_str(), first_leg) {
            ("inbound", _) => "inbound",
            (_, true) => "outbound-api",
            _ => "outbound-dial",
        };
        let sid = domains::twiml::sid::of(domains::twiml::sid::CALL, &m.uuid);
        TwilioCall {
            uri: format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json"),
            sid,
            account_sid: account_sid.to_owned(),
            parent_call_sid: None,
            to: m.to_number,
            from: m.from_number,
            status: status(&m.status),
            direction: direction.into(),
            api_version: domains::twiml::API_VERSION.into(),
            date_created: rfc2822(m.created_at),
            date_updated: rfc2822(m.updated_at),
            start_time: m.start_time.map(rfc2822),
            end_time: m.end_time.map(rfc2822),
            duration: m.duration.map(|d| d.to_string()),
            answered_by: None,
            price: None,
            price_unit: "USD".into(),
        }
    }
}

/// The pairs of a form-encoded body; a name given several times keeps every value.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The form fields of `POST …/Calls.json`, for the OpenAPI document: the handler reads the
/// pairs themselves (`StatusCallbackEvent` may be repeated).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TwilioCallCreate {
    /// A number (E.164) or a SIP URI (`sip:alice@pbx.example.com;transport=tcp`).
    #[schema(rename = "To")]
    pub to: String,
    /// One of the account's numbers.
    #[schema(rename = "From")]
    pub from: String,
    /// Where the call's TwiML (or NCCO) is fetched once answered; or give `Twiml`.
    #[schema(rename = "Url")]
    pub url: Option<String>,
    #[schema(rename = "Method", example = "POST")]
    pub method: Option<String>,
    /// The document itself.
    #[schema(rename = "Twiml")]
    pub twiml: Option<String>,
    #[schema(rename = "StatusCallback")]
    pub status_callback: Option<String>,
    #[schema(rename = "StatusCallbackMethod")]
    pub status_callback_method: Option<String>,
    /// Space-separated (or repeated): initiated ringing answered completed; default completed.
    #[schema(rename = "StatusCallbackEvent")]
    pub status_callback_event: Option<String>,
    /// Seconds to ring (1–120 here), default 60.
    #[schema(rename = "Timeout")]
    pub timeout: Option<u32>,
    /// Longest call in seconds, default 14400.
    #[schema(rename = "TimeLimit")]
    pub time_limit: Option<u32>,
    /// The application the call belongs to; else the account's default application.
    #[schema(rename = "ApplicationSid")]
    pub application_sid: Option<String>,
}

/// The form of `POST …/Calls/{Sid}.json`, for the OpenAPI document (read as pairs).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TwilioCallUpdate {
    /// `completed` (or `canceled`) hangs the call up.
    #[schema(rename = "Status")]
    pub status: Option<String>,
    /// A new document for the call, fetched now.
    #[schema(rename = "Url")]
    pub url: Option<String>,
    #[schema(rename = "Twiml")]
    pub twiml: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioCallPage {
    pub calls: Vec<TwilioCall>,
    pub page: u64,
    pub page_size: u64,
    pub start: u64,
    pub end: u64,
    pub uri: String,
    pub first_page_uri: String,
    pub next_page_uri: Option<String>,
    pub previous_page_uri: Option<String>,
}

/// The StatusCallbackEvents asked for (Twilio: `completed` only when none is named).
fn status_events(form: &[(String, String)]) -> Result<Vec<String>, TwilioError> {
    let mut events: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .flat_map(|(_, v)| v.split([' ', ',']).filter(|e| !e.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if let Some(bad) = events.iter().find(|e| !domains::twiml::status::EVENTS.contains(&e.as_str())) {
        let known = domains::twiml::status::EVENTS.join(", ");
        return Err(TwilioError::new(400, 21626, format!("StatusCallbackEvent {bad} is not one of {known}")));
    }
    if events.is_empty() {
        events.push("completed".into());
    }
    Ok(events)
}

/// `Twiml` as the call's program; a bad document is the request's error.
fn inline_twiml(xml: &str) -> Result<domains::ncco::Ncco, TwilioError> {
    domains::twiml::parse(xml)
        .map_err(|problems| TwilioError::new(400, 21220, format!("Twiml: {}", domains::document::describe(&problems))))
}

#[utoipa::path(
    operation_id = "twilioCreateCall",
    tag = "twilio",
    params(("account_sid" = String, Path, description = "The account's Account SID")),
    request_body(content = TwilioCallCreate, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, body = TwilioCall),
        (status = 400, body = TwilioError),
        (status = 401, body = TwilioError),
        (status = 429, body = TwilioError),
    ),
    security(("basicAuth" = []))
)]
#[post("/Calls.json")]
async fn create(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, TwilioError> {
    let form = form(&body);
    let to = field(&form, "To").ok_or_else(|| TwilioError::new(400, 21201, "No 'To' number is specified"))?;
    let from = field(&form, "From").ok_or_else(|| TwilioError::new(400, 21213, "No 'From' number is specified"))?;
    let dialling = state.provisioning.dialling().await?;
    let application_id = field(&form, "ApplicationSid")
        .map(str::to_owned)
        .or_else(|| dialling.default_application_id.clone())
        .ok_or_else(|| {
            TwilioError::new(
                400,
                21205,
                "give ApplicationSid, or set the account's default application (PUT /v1/account)",
            )
        })?;
    let endpoint = if to.starts_with("sip:") || to.starts_with("sips:") {
        json!({"type": "sip", "uri": to})
    } else {
        json!({"type": "phone", "number": to.trim_start_matches('+')})
    };
    let program = field(&form, "Twiml").map(inline_twiml).transpose()?;
    let numbers = |v: Option<&str>| v.map(|v| Value::from(v.to_owned()));
    let request = CallCreate {
        to: json!([endpoint]),
        from: Some(json!({"type": "phone", "number": from})),
        random_from_number: None,
        ncco: None,
        answer_url: field(&form, "Url").map(|u| vec![u.to_owned()]),
        answer_method: Some(field(&form, "Method").unwrap_or("POST").to_owned()),
        event_url: field(&form, "StatusCallback").map(|u| vec![u.to_owned()]),
        event_method: Some(field(&form, "StatusCallbackMethod").unwrap_or("POST").to_owned()),
        machine_detection: None,
        advanced_machine_detection: None,
        length_timer: numbers(field(&form, "TimeLimit")).or(Some(json!(14400))),
        ringing_timer: numbers(field(&form, "Timeout")),
    };
    let placement = request.validate(&dialling.numbers, 0, program)?;
    let overrides =
        HookOverrides { answer: placement.answer, event: placement.event, twiml: Some(status_events(&form)?) };
    let placed = state
        .edge
        .originate(&application_id, placement.originate, overrides)
        .await
        .map_err(|e| TwilioError::from(super::outbound::originate_error(e)))?;
    let (row, _) = find(&state, &placed.uuid).await?;
    Ok(HttpResponse::Created().json(TwilioCall::of(row, &state.account.twilio.account_sid, true)))
}

/// The call `sid` of the account; and whether it is its conversation's first leg (the
/// call the API or the caller started, not one a `<Dial>` placed).
async fn find(state: &AppState, sid: &str) -> Result<(call::Model, bool), TwilioError> {
    let missing = || TwilioError::new(404, 20404, format!("The requested resource /Calls/{sid}.json was not found"));
    let uuid = domains::twiml::sid::uuid(domains::twiml::sid::CALL, sid).ok_or_else(missing)?;
    state.records.flush().await;
    let row = call::Entity::find_by_id(uuid).one(&state.db).await?.ok_or_else(missing)?;
    let first = first_legs(state, std::slice::from_ref(&row)).await?;
    let is_first = first.contains(&row.uuid);
    Ok((row, is_first))
}

/// Of `rows`, the uuids that start their conversation.
async fn first_legs(state: &AppState, rows: &[call::Model]) -> Result<Vec<String>, TwilioError> {
    Ok(super::calls::conversation_starters(&state.db, rows).await?)
}

#[utoipa::path(
    operation_id = "twilioFetchCall",
    tag = "twilio",
    params(
        ("account_sid" = String, Path, description = "The account's Account SID"),
        ("sid" = String, Path, description = "The call's sid"),
    ),
    responses((status = 200, body = TwilioCall), (status = 401, body = TwilioError), (status = 404, body = TwilioError)),
    security(("basicAuth" = []))
)]
#[get("/Calls/{sid}.json")]
async fn fetch(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, TwilioError> {
    let (row, first) = find(&state, &path.1).await?;
    Ok(HttpResponse::Ok().json(TwilioCall::of(row, &state.account.twilio.account_sid, first)))
}

#[utoipa::path(
    operation_id = "twilioListCalls",
    tag = "twilio",
    params(
        ("account_sid" = String, Path, description = "The account's Account SID"),
        ("PageSize" = Option<u64>, Query, description = "Calls per page, 1 to 1000 (default 50)"),
        ("Page" = Option<u64>, Query, description = "Which page, from 0 (newest calls first)"),
        ("To" = Option<String>, Query, description = "Only calls to this number or URI"),
        ("From" = Option<String>, Query, description = "Only calls from this number or URI"),
    ),
    responses((status = 200, body = TwilioCallPage), (status = 401, body = TwilioError)),
    security(("basicAuth" = []))
)]
#[get("/Calls.json")]
async fn list(
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, TwilioError> {
    let number = |name: &str| query.get(name).and_then(|s| s.parse::<u64>().ok());
    let page_size = number("PageSize").unwrap_or(50).clamp(1, 1000);
    let page = number("Page").unwrap_or(0).min(u64::MAX / 1000 - 1);
    let mut select = call::Entity::find();
    for (name, column) in [("To", call::Column::ToNumber), ("From", call::Column::FromNumber)] {
        if let Some(value) = query.get(name) {
            // Twilio shows numbers with `+`; the records hold the digits.
            select = select.filter(column.eq(value.trim_start_matches('+')));
        }
    }
    state.records.flush().await;
    // One row past the page says whether a next page exists.
    let mut rows = select
        .order_by_desc(call::Column::CreatedAt)
        .offset(page * page_size)
        .limit(page_size + 1)
        .all(&state.db)
        .await?;
    let more = rows.len() as u64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let first = first_legs(&state, &rows).await?;
    let account_sid = &state.account.twilio.account_sid;
    let calls: Vec<TwilioCall> = rows
        .into_iter()
        .map(|r| {
            let is_first = first.contains(&r.uuid);
            TwilioCall::of(r, account_sid, is_first)
        })
        .collect();
    let filters: String = ["To", "From"]
        .iter()
        .filter_map(|name| query.get(*name).map(|v| format!("&{name}={}", urlencoding(v))))
        .collect();
    let page_uri =
        |n: u64| format!("/2010-04-01/Accounts/{account_sid}/Calls.json?PageSize={page_size}&Page={n}{filters}");
    let start = page * page_size;
    Ok(HttpResponse::Ok().json(TwilioCallPage {
        page,
        page_size,
        start,
        end: (start + calls.len() as u64).saturating_sub(1),
        calls,
        first_page_uri: page_uri(0),
        uri: page_uri(page),
        next_page_uri: more.then(|| page_uri(page + 1)),
        previous_page_uri: (page > 0).then(|| page_uri(page - 1)),
    }))
}

/// `value` encoded for a query string.
fn urlencoding(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[utoipa::path(
    operation_id = "twilioUpdateCall",
    tag = "twilio",
    params(
        ("account_sid" = String, Path, description = "The account's Account SID"),
        ("sid" = String, Path, description = "The call's sid"),
    ),
    request_body(content = TwilioCallUpdate, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TwilioCall),
        (status = 400, body = TwilioError),
        (status = 401, body = TwilioError),
        (status = 404, body = TwilioError),
    ),
    security(("basicAuth" = []))
)]
#[post("/Calls/{sid}.json")]
async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, TwilioError> {
    let form = form(&body);
    let sid = path.1.clone();
    let uuid = domains::twiml::sid::uuid(domains::twiml::sid::CALL, &sid).unwrap_or_else(|| sid.clone());
    let control = match (field(&form, "Status"), field(&form, "Url"), field(&form, "Twiml")) {
        (Some("completed" | "canceled"), None, None) => Control::Hangup { uuid: uuid.clone() },
        (None, Some(url), None) => {
            let url = reqwest::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| TwilioError::new(400, 21205, "Url must be an http(s) URL"))?;
            Control::Transfer { uuid: uuid.clone(), to: TransferTo::Url(url) }
        }
        (None, None, Some(xml)) => Control::Transfer { uuid: uuid.clone(), to: TransferTo::Ncco(inline_twiml(xml)?) },
        (Some(other), None, None) => {
            return Err(TwilioError::new(400, 21220, format!("Status {other}: only completed or canceled")));
        }
        _ => return Err(TwilioError::new(400, 21220, "give one of Status, Url and Twiml")),
    };
    let (row, first) = find(&state, &sid).await?;
    super::calls::steer(&state, &row, control).await?;
    let (row, _) = find(&state, &sid).await?;
    Ok(HttpResponse::Ok().json(TwilioCall::of(row, &state.account.twilio.account_sid, first)))
}
