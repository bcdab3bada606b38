//! `POST /v1/calls` (Voice API, JWT): a call placed by the application, in Vonage's shape.
//! The request's `to` endpoint, `from`, timers and machine detection become the equivalent
//! `connect` action, so that one parser validates an endpoint wherever it is written (NCCO or
//! REST) and the call core rings it exactly as it rings a `connect`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use domains::ncco::{Action, Ncco};
use domains::problem::{InvalidParameter, Problems};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::json::Body;
use super::problem::{
    ApiError, BadRequest, InternalError, PayloadTooLarge, TooManyRequests, Unauthorized, UnsupportedMediaType,
};
use crate::sip::edge::{HookOverrides, OriginateError};
use crate::state::AppState;

/// `ringing_timer` bounds (seconds) and default.
pub const RINGING_TIMER: std::ops::RangeInclusive<u32> = 1..=120;
pub const DEFAULT_RINGING_TIMER: u32 = 60;
/// `length_timer` bounds (seconds) and default.
pub const LENGTH_TIMER: std::ops::RangeInclusive<u32> = 1..=86_400;
pub const DEFAULT_LENGTH_TIMER: u32 = 7200;

/// A call to create (Vonage's `POST /v1/calls` body).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CallCreate {
    /// One endpoint, as in a `connect` action: `{"type":"phone","number":"14155550101"}`,
    /// `{"type":"sip","uri":"sip:alice@example.com"}`, `vbc`, …
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1)]
    pub to: Value,
    /// `{"type":"phone","number":"…"}`: one of the account's numbers.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub from: Option<Value>,
    /// Use one of the account's numbers as `from`.
    #[serde(default)]
    pub random_from_number: Option<bool>,
    /// The NCCO run when the call answers (or give `answer_url`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub ncco: Option<Value>,
    /// One URL asked for the NCCO when the call answers.
    #[serde(default)]
    #[schema(max_items = 1)]
    pub answer_url: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "GET")]
    pub answer_method: Option<String>,
    /// One URL the call's events go to (else the application's event_url).
    #[serde(default)]
    #[schema(max_items = 1)]
    pub event_url: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "POST")]
    pub event_method: Option<String>,
    /// `continue` or `hangup`.
    #[serde(default)]
    pub machine_detection: Option<String>,
    /// `{"behavior":"continue|hangup","mode":"detect|detect_beep","beep_timeout":45}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub advanced_machine_detection: Option<Value>,
    /// Longest call in seconds once answered.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 86400, default = 7200)]
    pub length_timer: Option<Value>,
    /// Seconds to ring before giving up.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 120, default = 60)]
    pub ringing_timer: Option<Value>,
}

/// The call created (Vonage's 201 body).
#[derive(Debug, Serialize, ToSchema)]
pub struct CallCreated {
    pub uuid: String,
    #[schema(example = "started")]
    pub status: String,
    #[schema(example = "outbound")]
    pub direction: String,
    pub conversation_uuid: String,
}

/// A request, validated: what the call core and the edge take.
pub struct Placement {
    pub originate: domains::call::Originate,
    pub answer: Option<domains::application::Webhook>,
    pub event: Option<domains::application::Webhook>,
}

#[utoipa::path(
    operation_id = "createCall",
    tag = "calls",
    request_body = CallCreate,
    responses(
        (status = 201, description = "The call is placed: it rings `to`, and runs its NCCO once answered", body = CallCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
    ),
    security(("bearerAuth" = []))
)]
#[post("")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<CallCreate>,
) -> Result<HttpResponse, ApiError> {
    let app = super::calls::application(&req)?;
    let numbers = state.provisioning.dialling().await?.numbers.clone();
    let placement = body.validate(&numbers, rand::random(), None)?;
    let overrides = HookOverrides { answer: placement.answer, event: placement.event, twiml: None };
    let placed = state.edge.originate(&app.id, placement.originate, overrides).await.map_err(originate_error)?;
    Ok(HttpResponse::Created().json(CallCreated {
        uuid: placed.uuid,
        status: "started".into(),
        direction: "outbound".into(),
        conversation_uuid: placed.conversation_uuid,
    }))
}

/// Why the edge did not place a call, as the Voice API answers it.
pub fn originate_error(e: OriginateError) -> ApiError {
    match e {
        OriginateError::Budget(b) => ApiError::TooManyRequests(b.to_string()),
        OriginateError::Application(why) => ApiError::BadRequest { detail: why.to_owned(), invalid: vec![] },
        OriginateError::Refused(f) => {
            let name = if f.detail.as_deref() == Some("invalid_caller_id") { "from" } else { "to" };
            ApiError::invalid(name, f.reason.unwrap_or_else(|| "cannot be called".into()))
        }
        OriginateError::Internal(e) => ApiError::Internal(e),
    }
}

impl CallCreate {
    /// Every field checked (each refusal named); `numbers` are the account's (E.164 digits),
    /// `pick` chooses among them for `random_from_number`; `program` is a document already
    /// parsed (the Twilio API's inline `Twiml`), in place of `ncco`.
    pub fn validate(self, numbers: &[String], pick: usize, program: Option<Ncco>) -> Result<Placement, ApiError> {
        let mut p = Problems::new();
        let to = match self.to.as_array().map(Vec::as_slice) {
            Some([one]) if one.is_object() => Some(one.clone()),
            _ => {
                p.push("to", "must be an array of exactly one endpoint object");
                None
            }
        };
        let from = self.caller_id(&mut p, numbers, pick);
        let ringing = timer(&mut p, "ringing_timer", self.ringing_timer.as_ref(), RINGING_TIMER, DEFAULT_RINGING_TIMER);
        let length = timer(&mut p, "length_timer", self.length_timer.as_ref(), LENGTH_TIMER, DEFAULT_LENGTH_TIMER);
        let answer = webhook(&mut p, "answer", self.answer_url.as_deref(), self.answer_method.as_deref(), "GET");
        let event = webhook(&mut p, "event", self.event_url.as_deref(), self.event_method.as_deref(), "POST");
        let ncco = match (&self.ncco, &answer) {
            _ if program.is_some() && answer.is_some() => {
                p.push("answer_url", "give either a document or its URL, not both");
                None
            }
            _ if program.is_some() => program,
            (Some(_), Some(_)) => {
                p.push("ncco", "give either ncco or answer_url, not both");
                None
            }
            (None, None) => {
                p.push("answer_url", "one of ncco and answer_url is required");
                None
            }
            (Some(doc), None) => match Ncco::parse(doc) {
                Ok(n) => Some(n),
                Err(problems) => {
                    p.extend(problems.into_iter().map(|q| InvalidParameter::new(format!("ncco{}", q.name), q.reason)));
                    None
                }
            },
            (None, Some(_)) => None,
        };
        let mut connect = serde_json::Map::new();
        connect.insert("action".into(), json!("connect"));
        connect.insert("endpoint".into(), json!([to.clone().unwrap_or(Value::Null)]));
        if let Some(from) = &from {
            connect.insert("from".into(), json!(from));
        }
        if let Some(md) = &self.machine_detection {
            connect.insert("machineDetection".into(), json!(md));
        }
        if let Some(amd) = &self.advanced_machine_detection {
            connect.insert("advanced_machine_detection".into(), amd.clone());
        }
        let connect = match Ncco::parse(&json!([connect])).map(|mut n| n.0.pop()) {
            Ok(Some(Action::Connect(c))) => Some(c),
            Ok(_) => None,
            Err(problems) if to.is_some() => {
                p.extend(problems.into_iter().map(|q| InvalidParameter::new(rest_name(&q.name), q.reason)));
                None
            }
            Err(_) => None,
        };
        let problems = p.into_vec();
        match connect {
            Some(mut connect) if problems.is_empty() => {
                connect.timeout = ringing;
                connect.limit = length;
                Ok(Placement { originate: domains::call::Originate { connect, ncco }, answer, event })
            }
            _ => Err(ApiError::Validation(problems)),
        }
    }

    /// `from.number`, or one of the account's numbers for `random_from_number`; either way a
    /// number the account owns, so that nothing leaves with a caller ID it may not use.
    fn caller_id(&self, p: &mut Problems, numbers: &[String], pick: usize) -> Option<String> {
        match (&self.from, self.random_from_number.unwrap_or(false)) {
            (Some(_), true) => {
                p.push("random_from_number", "give either from or random_from_number, not both");
                None
            }
            (None, true) => match numbers.get(pick % numbers.len().max(1)) {
                Some(n) => Some(n.clone()),
                None => {
                    p.push("random_from_number", "the account has no numbers to call from");
                    None
                }
            },
            (None, false) => {
                p.push("from", "required (or set random_from_number)");
                None
            }
            (Some(from), false) => {
                if from.get("type").and_then(Value::as_str) != Some("phone") {
                    p.push("from.type", "must be phone");
                }
                let number = from.get("number").and_then(Value::as_str).unwrap_or_default();
                let digits = number.trim_start_matches('+');
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
                    p.push("from.number", "must be an E.164 number");
                    None
                } else if !numbers.iter().any(|n| n == digits) {
                    p.push("from.number", format!("{number} is not one of the account's numbers"));
                    None
                } else {
                    Some(digits.to_owned())
                }
            }
        }
    }
}

/// A problem of the equivalent `connect`, named as the request names it.
fn rest_name(pointer: &str) -> String {
    let rest = pointer.strip_prefix("/0").unwrap_or(pointer);
    if let Some(endpoint) = rest.strip_prefix("/endpoint/0") {
        return format!("to/0{endpoint}");
    }
    match rest {
        "/from" => "from.number".into(),
        "/machineDetection" => "machine_detection".into(),
        other => other.trim_start_matches('/').replace('/', "."),
    }
}

/// `length_timer` / `ringing_timer`: an integer (or one in a string, as Vonage takes it) in
/// `range`.
fn timer(
    p: &mut Problems,
    name: &str,
    value: Option<&Value>,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> u32 {
    let Some(v) = value else { return default };
    let n = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
    match n.and_then(|n| u32::try_from(n).ok()).filter(|n| range.contains(n)) {
        Some(n) => n,
        None => {
            p.push(name, format!("must be an integer from {} to {}", range.start(), range.end()));
            default
        }
    }
}

/// `answer_url`/`event_url` (one http(s) URL) with its method.
fn webhook(
    p: &mut Problems,
    kind: &str,
    urls: Option<&[String]>,
    method: Option<&str>,
    default_method: &str,
) -> Option<domains::application::Webhook> {
    let method = method.unwrap_or(default_method).to_ascii_uppercase();
    let http_method = match method.as_str() {
        "GET" => domains::application::HttpMethod::Get,
        "POST" => domains::application::HttpMethod::Post,
        _ => {
            p.push(format!("{kind}_method"), "must be GET or POST");
            return None;
        }
    };
    let url = match urls? {
        [one] => reqwest::Url::parse(one).ok().filter(|u| matches!(u.scheme(), "http" | "https")),
        _ => None,
    };
    let Some(url) = url else {
        p.push(format!("{kind}_url"), "must be an array of one http(s) URL");
        return None;
    };
    Some(domains::application::Webhook {
        address: url.to_string(),
        http_method: Some(http_method),
        connect_timeout: None,
        socket_timeout: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CallCreate {
        serde_json::from_value(v).unwrap()
    }

    fn names(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(list) => list.into_iter().map(|p| p.name).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    const OURS: &str = "14155550100";

    #[test]
    fn a_complete_request_becomes_a_connect() {
        let b = body(json!({
            "to": [{"type": "sip", "uri": "sip:bob@example.com"}],
            "from": {"type": "phone", "number": "+14155550100"},
            "ncco": [{"action": "talk", "text": "hi"}],
            "ringing_timer": 20, "length_timer": "300", "machine_detection": "hangup",
            "event_url": ["https://app.example/events"],
        }));
        let placed = b.validate(&[OURS.into()], 0, None).unwrap();
        let c = &placed.originate.connect;
        assert_eq!((c.timeout, c.limit), (20, 300));
        assert_eq!(c.from.as_ref().map(ToString::to_string).as_deref(), Some(OURS));
        assert!(placed.originate.ncco.is_some() && placed.answer.is_none());
        assert_eq!(placed.event.map(|w| w.address).as_deref(), Some("https://app.example/events"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let b = body(json!({
            "to": [{"type": "sip", "uri": "not a uri"}],
            "from": {"type": "phone", "number": "15550009999"},
            "ncco": [{"action": "talk"}],
            "answer_url": ["ftp://x"],
            "ringing_timer": 0, "length_timer": 86401, "event_method": "PATCH",
        }));
        let mut n = names(b.validate(&[OURS.into()], 0, None).err().unwrap());
        n.sort();
        assert_eq!(
            n,
            ["answer_url", "event_method", "from.number", "length_timer", "ncco/0/text", "ringing_timer", "to/0/uri"]
        );
    }

    #[test]
    fn ncco_xor_answer_url_and_random_from_number() {
        let b = body(json!({"to": [{"type": "phone", "number": "15551230000"}], "random_from_number": true}));
        assert_eq!(names(b.validate(&[OURS.into()], 7, None).err().unwrap()), ["answer_url"]);
        let b = body(json!({"to": [{"type": "phone", "number": "15551230000"}], "random_from_number": true,
            "answer_url": ["https://app.example/answer"]}));
        let placed = b.validate(&[OURS.into()], 7, None).unwrap();
        assert_eq!(placed.originate.connect.from.map(|f| f.to_string()).as_deref(), Some(OURS));
        assert_eq!(placed.answer.map(|w| w.http_method), Some(Some(domains::application::HttpMethod::Get)));
        let b = body(json!({"to": [], "random_from_number": true, "answer_url": ["https://a/b"]}));
        assert_eq!(names(b.validate(&[], 0, None).err().unwrap()), ["to", "random_from_number"]);
    }
}
