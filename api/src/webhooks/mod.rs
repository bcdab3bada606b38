//! Calls from voxbridge to applications: fetching `answer_url` (with fallback) and delivering
//! call events to `event_url` in order per call, retried with backoff. Every request can be
//! signed with an HS256 JWT (the account's signature secret), as Vonage's signed callbacks.

pub mod http;
pub mod signing;

use async_trait::async_trait;
use domains::application::Webhook;

pub use http::{HttpWebhooks, WebhookOptions};

pub use domains::document::Document;

/// Judges a fetched document; `Err` carries the reason it is refused.
pub type Accept<'a> = &'a (dyn Fn(&Document) -> Result<(), String> + Send + Sync);

/// Parameters of an answer_url request (query string for GET, JSON body for POST).
pub type AnswerParams = Vec<(String, String)>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AnswerError {
    #[error("could not connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("timed out waiting for {url}")]
    Timeout { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} returned a body that is not a document: {reason}")]
    NotADocument { url: String, reason: String },
    #[error("{url} returned a document the caller refused: {reason}")]
    Invalid { url: String, reason: String },
}

/// Where and how to reach an application for one call.
#[derive(Debug, Clone)]
pub struct AppHooks {
    pub application_id: String,
    pub answer: Webhook,
    pub fallback_answer: Option<Webhook>,
    pub event: Webhook,
    pub signed: bool,
    /// Twilio's requests (forms, status callbacks, `X-Twilio-Signature`) for `twiml`.
    pub dialect: domains::application::Dialect,
    /// The transport of a document's `<Sip>` URI that names none (the application's setting).
    pub sip_transport: domains::sip_uri::Transport,
    /// The `StatusCallbackEvent`s status callbacks are sent for (`None`: every one).
    pub status_events: Option<Vec<String>>,
    /// For a child leg's own status callbacks (`<Sip statusCallback>`): the parent call's
    /// `CallSid`, sent as `ParentCallSid`.
    pub parent_call: Option<String>,
}

impl AppHooks {
    /// The hooks of a callee leg whose events go to its own webhook.
    pub fn for_leg(&self, leg: &domains::call::LegHook) -> AppHooks {
        let method = match leg.webhook.method {
            domains::ncco::common::HttpMethod::Get => domains::application::HttpMethod::Get,
            domains::ncco::common::HttpMethod::Post => domains::application::HttpMethod::Post,
        };
        AppHooks {
            event: Webhook {
                address: leg.webhook.url.to_string(),
                http_method: Some(method),
                connect_timeout: self.event.connect_timeout,
                socket_timeout: self.event.socket_timeout,
            },
            status_events: leg.events.clone(),
            parent_call: leg.parent.clone(),
            // A TwiML noun's callbacks are status callbacks, whatever sent the document.
            dialect: if leg.parent.is_some() { domains::application::Dialect::Twiml } else { self.dialect },
            ..self.clone()
        }
    }
}

#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// GETs/POSTs answer_url (retrying once on connect failure/timeout/429/503/504), then
    /// fallback_answer_url the same way (with `reason` and `original_request`); returns the
    /// document (NCCO JSON or TwiML, to be parsed by the caller) or the last error.
    /// `accept` judges the document (an NCCO parse): a refused document counts as a failure
    /// of that URL, so the fallback is asked once, with the refusal as its `reason`.
    async fn fetch_answer(
        &self,
        hooks: &AppHooks,
        params: &AnswerParams,
        accept: Accept<'_>,
    ) -> Result<Document, AnswerError>;

    /// Sends an action's result (an `input`'s digits, a `notify` payload) to `hook` and returns
    /// the document the application answered with, if it answered with one (an NCCO array or
    /// a TwiML `<Response>`).
    async fn post_document(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        body: serde_json::Value,
    ) -> Result<Option<Document>, AnswerError>;

    /// Sends a TwiML callback's `params` the way Twilio does (a form for POST, the query for
    /// GET) with the account's `AccountSid`, and returns the document answered, if any.
    async fn post_form(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        params: Vec<(String, String)>,
    ) -> Result<Option<Document>, AnswerError>;

    /// Queues an event for `call_uuid`; events of one call are delivered in order, each retried
    /// with backoff while the application is down. Never blocks the caller.
    fn send_event(&self, hooks: &AppHooks, call_uuid: &str, event: serde_json::Value);

    /// A token for the application's WebSocket handshakes (`authorization: {"type":
    /// "vonage"}`): the JWT signed webhooks carry, without a payload hash.
    fn websocket_token(&self, hooks: &AppHooks) -> String;
}
