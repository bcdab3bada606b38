//! [`WebhookSender`] over HTTP(S) with reqwest.
//!
//! * `answer_url`: GET (params in the query string) or POST (params as a JSON object), with the
//!   webhook's connect and socket timeouts; tried twice on a connection failure, a timeout or
//!   HTTP 429/503/504, then `fallback_answer_url` the same way with `reason` and
//!   `original_request` added (Vonage: answer_url twice, then fallback twice).
//! * `event_url`: one queue per call, drained by one task, so a call's events arrive in the
//!   order they were sent. Each is retried with exponential backoff while the application is
//!   unreachable or answers 5xx/429, then logged and dropped. The task ends once the call's
//!   terminal event is through, or after an idle period.
//! * Signed applications get `Authorization: Bearer <JWT>` on every request ([`signing`]).

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use domains::application::{Dialect, HttpMethod, Webhook};
use domains::events::is_terminal_event;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{Accept, AnswerError, AnswerParams, AppHooks, Document, WebhookSender, signing};

/// Milliseconds to establish a connection when the webhook does not say.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 1000;
/// Milliseconds to wait for answer_url's response when the webhook does not say.
pub const DEFAULT_ANSWER_SOCKET_TIMEOUT_MS: u32 = 5000;
/// Milliseconds to wait for event_url's response when the webhook does not say.
pub const DEFAULT_EVENT_SOCKET_TIMEOUT_MS: u32 = 10000;
/// Attempts per URL for answer_url and its fallback.
pub const ANSWER_ATTEMPTS: u32 = 2;
/// Largest answer body accepted (an NCCO is a few kilobytes).
pub const MAX_ANSWER_BODY: usize = 1024 * 1024;
/// What answer_url and action webhooks may answer: NCCO JSON, or TwiML/cXML.
const DOCUMENT_TYPES: &str = "application/json, application/xml;q=0.9, text/xml;q=0.9";
/// Bytes of an event response read (and discarded) so the connection can be reused.
const MAX_EVENT_RESPONSE_BODY: usize = 64 * 1024;

/// Tunables of event delivery; the defaults suit production.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Wait before the second attempt of an event; doubled after each further failure.
    pub event_first_backoff: Duration,
    /// Attempts per event before it is dropped.
    pub event_max_attempts: u32,
    /// A call's queue task ends after this long without events.
    pub event_queue_idle: Duration,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` from the environment.
    pub use_env_proxy: bool,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            event_first_backoff: Duration::from_millis(250),
            event_max_attempts: 5,
            event_queue_idle: Duration::from_secs(60),
            use_env_proxy: true,
        }
    }
}

/// The production [`WebhookSender`]. Cheap to share behind an `Arc`; event queue tasks run on
/// the tokio runtime of the caller of [`WebhookSender::send_event`].
pub struct HttpWebhooks {
    inner: Arc<Inner>,
    /// Where the requests run (the current runtime when `None`).
    background: Option<crate::background::Background>,
}

struct Inner {
    signature_secret: String,
    api_key: String,
    /// The Account SID and auth token of TwiML callbacks (the API key, unsigned, without).
    twilio: Option<crate::account::TwilioCredentials>,
    options: WebhookOptions,
    /// One client per (connect timeout, socket timeout) pair: reqwest sets both per client.
    clients: Mutex<HashMap<(u32, u32), reqwest::Client>>,
    /// Webhook URLs parsed once: an application's few URLs are asked thousands of times.
    urls: Mutex<HashMap<String, reqwest::Url>>,
    /// The open event queue of each call. A sender is only used, and an entry only removed,
    /// with this lock held, so an event can never be pushed into a queue whose task has ended.
    queues: Mutex<HashMap<String, Queue>>,
    next_queue_id: AtomicU64,
}

struct Queue {
    id: u64,
    tx: mpsc::UnboundedSender<QueuedEvent>,
}

struct QueuedEvent {
    hooks: AppHooks,
    event: Value,
}

/// What is sent: query parameters (GET) or a JSON body (POST).
enum Payload {
    Query(Vec<(String, String)>),
    Json(Vec<u8>),
    /// A TwiML callback: a form (POST) or the query (GET), signed as Twilio signs them when
    /// the account has an auth token.
    Twiml {
        pairs: Vec<(String, String)>,
        post: bool,
        signature: Option<String>,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HttpWebhooks {
    /// Signs TwiML callbacks with the account's auth token, and names its Account SID in them.
    pub fn with_twilio(mut self, twilio: crate::account::TwilioCredentials) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.twilio = Some(twilio);
        }
        self
    }

    /// `signature_secret` signs the JWT of signed applications; `api_key` is its `api_key` claim.
    pub fn new(signature_secret: String, api_key: String) -> Self {
        Self::with_options(signature_secret, api_key, WebhookOptions::default())
    }

    pub fn with_options(signature_secret: String, api_key: String, options: WebhookOptions) -> Self {
        HttpWebhooks {
            inner: Arc::new(Inner {
                signature_secret,
                api_key,
                twilio: None,
                options,
                clients: Mutex::new(HashMap::new()),
                urls: Mutex::new(HashMap::new()),
                queues: Mutex::new(HashMap::new()),
                next_queue_id: AtomicU64::new(1),
            }),
            background: None,
        }
    }

    /// Runs every request on the background runtime.
    pub fn on(mut self, background: crate::background::Background) -> Self {
        self.background = Some(background);
        self
    }

    /// Runs `fut` where the requests run.
    async fn offload<T: Send + 'static>(
        &self,
        url: &str,
        fut: impl std::future::Future<Output = Result<T, AnswerError>> + Send + 'static,
    ) -> Result<T, AnswerError> {
        match &self.background {
            None => fut.await,
            Some(bg) => bg.run(fut.instrument(tracing::Span::current())).await.unwrap_or_else(|| {
                Err(AnswerError::Connect { url: url.to_owned(), reason: "the webhook task failed".into() })
            }),
        }
    }

    /// `fetch_answer_from` where the requests run.
    async fn answer_from(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        params: &AnswerParams,
        original: Option<(&str, &str)>,
    ) -> Result<Document, AnswerError> {
        let (inner, hooks, hook, params) = (self.inner.clone(), hooks.clone(), hook.clone(), params.clone());
        let original = original.map(|(reason, url)| (reason.to_owned(), url.to_owned()));
        let url = hook.address.clone();
        self.offload(&url, async move {
            let original = original.as_ref().map(|(r, u)| (r.as_str(), u.as_str()));
            inner.fetch_answer_from(&hooks, &hook, &params, original).await
        })
        .await
    }

    /// Sends `payload` to an action's `hook` and returns the document answered, if any.
    async fn post_payload(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        payload: Payload,
    ) -> Result<Option<Document>, AnswerError> {
        let (inner, hooks, hook) = (self.inner.clone(), hooks.clone(), hook.clone());
        let url = hook.address.clone();
        self.offload(&url, async move {
            let response = inner.send(&hooks, &hook, DEFAULT_ANSWER_SOCKET_TIMEOUT_MS, &payload, true).await?;
            let (content_type, body) = success_body(&hook.address, response).await?;
            // Anything but a program (an empty body, `{}`, text) means "go on with the NCCO".
            Ok(Document::from_body(content_type.as_deref(), &body).ok().filter(Document::is_program))
        })
        .await
    }

    /// Calls whose event queue is open (events pending or recently sent).
    pub fn open_event_queues(&self) -> usize {
        lock(&self.inner.queues).len()
    }
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn fetch_answer(
        &self,
        hooks: &AppHooks,
        params: &AnswerParams,
        accept: Accept<'_>,
    ) -> Result<Document, AnswerError> {
        let call_uuid = params.iter().find(|(k, _)| k == "uuid").map(|(_, v)| v.as_str()).unwrap_or_default();
        let span = tracing::info_span!("answer_url", call_uuid = %call_uuid);
        async {
            let judged = |url: &str, result: Result<Document, AnswerError>| -> Result<Document, AnswerError> {
                let doc = result?;
                accept(&doc).map_err(|reason| AnswerError::Invalid { url: url.to_owned(), reason })?;
                Ok(doc)
            };
            let first = self.answer_from(hooks, &hooks.answer, params, None).await;
            let err = match judged(&hooks.answer.address, first) {
                Ok(ncco) => return Ok(ncco),
                Err(e) => e,
            };
            let Some(fallback) = &hooks.fallback_answer else {
                tracing::warn!(error = %err, "answer_url failed and there is no fallback_answer_url");
                return Err(err);
            };
            let reason = err.reason();
            tracing::warn!(error = %err, %reason, "answer_url failed; trying fallback_answer_url");
            let original = (reason.as_str(), hooks.answer.address.as_str());
            let result = self.answer_from(hooks, fallback, params, Some(original)).await;
            let result = judged(&fallback.address, result);
            if let Err(e) = &result {
                tracing::warn!(error = %e, "fallback_answer_url failed too");
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn post_document(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        body: Value,
    ) -> Result<Option<Document>, AnswerError> {
        let payload = match hook.http_method.unwrap_or(HttpMethod::Post) {
            HttpMethod::Get => Payload::Query(query_pairs(&body)),
            _ => Payload::Json(serde_json::to_vec(&body).unwrap_or_default()),
        };
        self.post_payload(hooks, hook, payload).await
    }

    async fn post_form(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        params: Vec<(String, String)>,
    ) -> Result<Option<Document>, AnswerError> {
        let payload = self.inner.twiml_payload(hook, params);
        self.post_payload(hooks, hook, payload).await
    }

    fn websocket_token(&self, hooks: &AppHooks) -> String {
        signing::sign(
            &self.inner.signature_secret,
            &self.inner.api_key,
            &hooks.application_id,
            None,
            chrono::Utc::now().timestamp(),
        )
    }

    fn send_event(&self, hooks: &AppHooks, call_uuid: &str, event: Value) {
        let mut job = QueuedEvent { hooks: hooks.clone(), event };
        let mut queues = lock(&self.inner.queues);
        if let Some(queue) = queues.get(call_uuid) {
            match queue.tx.send(job) {
                Ok(()) => return,
                // The task is gone without closing its queue (it panicked): start a new one.
                Err(mpsc::error::SendError(back)) => job = back,
            }
        }
        let runtime = match &self.background {
            Some(bg) => bg.handle().clone(),
            None => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime,
                Err(_) => {
                    tracing::error!(call_uuid, "event dropped: send_event called outside a tokio runtime");
                    return;
                }
            },
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if tx.send(job).is_err() {
            return; // unreachable: `rx` is alive
        }
        let id = self.inner.next_queue_id.fetch_add(1, Ordering::Relaxed);
        queues.insert(call_uuid.to_owned(), Queue { id, tx });
        drop(queues);
        let span = tracing::info_span!("event_url", call_uuid = %call_uuid);
        runtime.spawn(run_queue(self.inner.clone(), call_uuid.to_owned(), id, rx).instrument(span));
    }
}

/// Drains one call's events in order until its terminal event is through or it stays idle.
async fn run_queue(inner: Arc<Inner>, call_uuid: String, id: u64, mut rx: mpsc::UnboundedReceiver<QueuedEvent>) {
    let mut next = None;
    // Each leg's status callbacks are numbered (`SequenceNumber`), from 0.
    let mut sequences: HashMap<String, u64> = HashMap::new();
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match tokio::time::timeout(inner.options.event_queue_idle, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_idle) => match inner.close_queue_if_empty(&call_uuid, id, &mut rx) {
                    Some(job) => job,
                    None => {
                        tracing::debug!("event queue idle; closed");
                        return;
                    }
                },
            },
        };
        let terminal = is_terminal_event(&job.event);
        let leg = job.event.get("uuid").and_then(Value::as_str).unwrap_or_default().to_owned();
        let sequence = sequences.entry(leg).or_default();
        inner.deliver_event(&job, *sequence).await;
        *sequence += 1;
        if terminal {
            match inner.close_queue_if_empty(&call_uuid, id, &mut rx) {
                Some(job) => next = Some(job),
                None => {
                    tracing::debug!("terminal event sent; event queue closed");
                    return;
                }
            }
        }
    }
}

impl Inner {
    fn client(&self, connect_ms: u32, socket_ms: u32) -> Result<reqwest::Client, String> {
        let mut clients = lock(&self.clients);
        if let Some(client) = clients.get(&(connect_ms, socket_ms)) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect_ms.into()))
            .read_timeout(Duration::from_millis(socket_ms.into()))
            .redirect(reqwest::redirect::Policy::limited(5));
        if !self.options.use_env_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        clients.insert((connect_ms, socket_ms), client.clone());
        Ok(client)
    }

    fn parse_url(&self, url: &str) -> Result<reqwest::Url, AnswerError> {
        const KEPT: usize = 4096;
        let mut urls = lock(&self.urls);
        if let Some(parsed) = urls.get(url) {
            return Ok(parsed.clone());
        }
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| AnswerError::Connect { url: url.to_owned(), reason: format!("bad URL: {e}") })?;
        if urls.len() >= KEPT {
            urls.clear();
        }
        urls.insert(url.to_owned(), parsed.clone());
        Ok(parsed)
    }

    /// Removes this call's queue when nothing is waiting in it, else hands back the next event.
    /// Runs under the queues lock, which `send_event` also holds while pushing.
    fn close_queue_if_empty(
        &self,
        call_uuid: &str,
        id: u64,
        rx: &mut mpsc::UnboundedReceiver<QueuedEvent>,
    ) -> Option<QueuedEvent> {
        let mut queues = lock(&self.queues);
        if let Ok(job) = rx.try_recv() {
            return Some(job);
        }
        if queues.get(call_uuid).is_some_and(|q| q.id == id) {
            queues.remove(call_uuid);
        }
        None
    }

    /// One request; `Ok` is any HTTP response, `Err` a transport failure or timeout.
    async fn send(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        default_socket_ms: u32,
        payload: &Payload,
        accept_json: bool,
    ) -> Result<reqwest::Response, AnswerError> {
        let url = &hook.address;
        let connect_ms = hook.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        let socket_ms = hook.socket_timeout.unwrap_or(default_socket_ms);
        let client =
            self.client(connect_ms, socket_ms).map_err(|reason| AnswerError::Connect { url: url.clone(), reason })?;
        let total = Duration::from_millis(u64::from(connect_ms) + u64::from(socket_ms));
        let parsed = self.parse_url(url)?;
        let mut request = match payload {
            Payload::Query(pairs) => client.get(parsed).query(pairs),
            Payload::Json(body) => client
                .post(parsed)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone()),
            Payload::Twiml { pairs, post: false, .. } => client.get(parsed).query(pairs),
            Payload::Twiml { pairs, post: true, .. } => client
                .post(parsed)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"))
                .body(form_urlencoded(pairs)),
        };
        if let Payload::Twiml { signature: Some(signature), .. } = payload {
            request = request.header("X-Twilio-Signature", signature).header("X-SignalWire-Signature", signature);
        }
        request = request
            .timeout(total)
            .header(USER_AGENT, concat!("voxbridge/", env!("CARGO_PKG_VERSION")))
            .header(ACCEPT, if accept_json { DOCUMENT_TYPES } else { "*/*" });
        if hooks.signed && !matches!(payload, Payload::Twiml { .. }) {
            let body = match payload {
                Payload::Json(body) => Some(body.as_slice()),
                _ => None,
            };
            let now = chrono::Utc::now().timestamp();
            let token = signing::sign(&self.signature_secret, &self.api_key, &hooks.application_id, body, now);
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send().await.map_err(|e| transport_error(url, &e))
    }

    /// A TwiML request's payload: `params` with the account's `AccountSid`, as a form (POST)
    /// or the query (GET), with its Twilio signature when the account has an auth token.
    fn twiml_payload(&self, hook: &Webhook, mut params: Vec<(String, String)>) -> Payload {
        let twilio = self.twilio.as_ref();
        let account_sid = twilio.map_or_else(|| self.api_key.clone(), |t| t.account_sid.clone());
        params.insert(1.min(params.len()), ("AccountSid".to_owned(), account_sid));
        let post = hook.http_method.unwrap_or(HttpMethod::Post) == HttpMethod::Post;
        let signature = twilio.map(|t| {
            // A GET's parameters are signed as part of the URL they are sent in.
            let url = match (post, reqwest::Url::parse(&hook.address)) {
                (false, Ok(mut url)) => {
                    url.query_pairs_mut().extend_pairs(&params);
                    url.to_string()
                }
                _ => hook.address.clone(),
            };
            domains::twiml::signature::sign(&t.auth_token, &url, if post { &params } else { &[] })
        });
        Payload::Twiml { pairs: params, post, signature }
    }

    /// answer_url or fallback_answer_url, tried [`ANSWER_ATTEMPTS`] times on retryable errors.
    /// `original` is `(reason, answer_url)` when this is the fallback.
    async fn fetch_answer_from(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        params: &AnswerParams,
        original: Option<(&str, &str)>,
    ) -> Result<Document, AnswerError> {
        let payload = match hooks.dialect {
            Dialect::Twiml => self.twiml_payload(hook, params.clone()),
            Dialect::Ncco => answer_payload(hook.http_method.unwrap_or(HttpMethod::Get), params, original),
        };
        let mut attempt = 1;
        loop {
            let result = self.fetch_answer_once(hooks, hook, &payload).await;
            match result {
                Err(e) if e.is_retryable() && attempt < ANSWER_ATTEMPTS => {
                    tracing::info!(url = %hook.address, attempt, error = %e, "answer request failed; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn fetch_answer_once(
        &self,
        hooks: &AppHooks,
        hook: &Webhook,
        payload: &Payload,
    ) -> Result<Document, AnswerError> {
        let url = &hook.address;
        let response = self.send(hooks, hook, DEFAULT_ANSWER_SOCKET_TIMEOUT_MS, payload, true).await?;
        let (content_type, body) = success_body(url, response).await?;
        Document::from_body(content_type.as_deref(), &body)
            .map_err(|reason| AnswerError::NotADocument { url: url.clone(), reason })
    }

    /// Sends one event, retrying with exponential backoff; gives up (and logs) after
    /// `event_max_attempts`.
    async fn deliver_event(&self, job: &QueuedEvent, sequence: u64) {
        let hook = &job.hooks.event;
        let status = job.event.get("status").and_then(Value::as_str).unwrap_or("");
        let payload = match (job.hooks.dialect, hook.http_method.unwrap_or(HttpMethod::Post)) {
            (Dialect::Twiml, _) => {
                // Status callbacks: call-status events only, in Twilio's words.
                let event = serde_json::from_value::<domains::events::CallEvent>(job.event.clone()).ok();
                let wanted = |e: &domains::events::CallEvent| {
                    let kind = domains::twiml::status::twilio_status(e.status).map(|(kind, _)| kind);
                    job.hooks
                        .status_events
                        .as_ref()
                        .is_none_or(|events| events.iter().any(|k| Some(k.as_str()) == kind))
                };
                let event = event.filter(wanted);
                match event
                    .and_then(|e| domains::twiml::status::callback(&e, sequence, job.hooks.parent_call.as_deref()))
                {
                    Some(form) => self.twiml_payload(hook, form),
                    None => return,
                }
            }
            (Dialect::Ncco, HttpMethod::Get) => Payload::Query(query_pairs(&job.event)),
            (Dialect::Ncco, HttpMethod::Post) => match serde_json::to_vec(&job.event) {
                Ok(body) => Payload::Json(body),
                Err(e) => {
                    tracing::error!(error = %e, "event dropped: not serialisable");
                    return;
                }
            },
        };
        let attempts = self.options.event_max_attempts.max(1);
        let mut backoff = self.options.event_first_backoff;
        for attempt in 1..=attempts {
            match self.send(&job.hooks, hook, DEFAULT_EVENT_SOCKET_TIMEOUT_MS, &payload, false).await {
                Ok(mut response) => {
                    let code = response.status();
                    // Read (a bounded part of) the body so the connection can be reused.
                    let _ = read_capped(&mut response, MAX_EVENT_RESPONSE_BODY).await;
                    if code.is_success() {
                        tracing::debug!(url = %hook.address, status, attempt, "event delivered");
                        return;
                    }
                    if code.is_client_error() && code != StatusCode::TOO_MANY_REQUESTS {
                        tracing::warn!(url = %hook.address, status, http = code.as_u16(), "event refused by the application");
                        return;
                    }
                    tracing::info!(url = %hook.address, status, attempt, http = code.as_u16(), "event not accepted; will retry");
                }
                Err(e) => {
                    tracing::info!(url = %hook.address, status, attempt, error = %e, "event not delivered; will retry")
                }
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        tracing::error!(url = %hook.address, status, attempts, "event dropped after every attempt failed");
    }
}

impl AnswerError {
    /// The `reason` given to fallback_answer_url: `connection refused`, `timeout`, `http 500`,
    /// `not json`, …
    pub fn reason(&self) -> String {
        match self {
            AnswerError::Connect { reason, .. } => reason.clone(),
            AnswerError::Timeout { .. } => "timeout".to_owned(),
            AnswerError::Status { status, .. } => format!("http {status}"),
            AnswerError::NotADocument { .. } => "not json".to_owned(),
            AnswerError::Invalid { reason, .. } => reason.clone(),
        }
    }

    /// Whether Vonage's rules retry this failure on the same URL: connection failure,
    /// timeout, HTTP 429, 503 or 504.
    pub fn is_retryable(&self) -> bool {
        match self {
            AnswerError::Connect { .. } | AnswerError::Timeout { .. } => true,
            AnswerError::Status { status, .. } => matches!(status, 429 | 503 | 504),
            AnswerError::NotADocument { .. } | AnswerError::Invalid { .. } => false,
        }
    }
}

/// The params of an answer request, plus `reason` and `original_request` for the fallback.
fn answer_payload(method: HttpMethod, params: &AnswerParams, original: Option<(&str, &str)>) -> Payload {
    match method {
        HttpMethod::Get => {
            let mut pairs = params.clone();
            if let Some((reason, url)) = original {
                pairs.push(("reason".into(), reason.into()));
                pairs.push(("original_request.url".into(), url.into()));
                pairs.push(("original_request.type".into(), "answer".into()));
            }
            Payload::Query(pairs)
        }
        HttpMethod::Post => {
            let mut body: Map<String, Value> =
                params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            if let Some((reason, url)) = original {
                body.insert("reason".into(), Value::String(reason.into()));
                body.insert("original_request".into(), serde_json::json!({ "url": url, "type": "answer" }));
            }
            // A map of strings always serialises.
            Payload::Json(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
        }
    }
}

/// An event as query parameters: nested objects flattened with dotted names
/// (`original_request.url`), arrays as JSON text, nulls left out.
fn query_pairs(event: &Value) -> Vec<(String, String)> {
    fn walk(name: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if name.is_empty() { k.clone() } else { format!("{name}.{k}") };
                    walk(&key, v, out);
                }
            }
            Value::String(s) => out.push((name.to_owned(), s.clone())),
            other => out.push((name.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    match event {
        Value::Object(_) => walk("", event, &mut out),
        other => walk("payload", other, &mut out),
    }
    out
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// The body of a 2xx document response (at most [`MAX_ANSWER_BODY`] bytes); any other status
/// is an error.
fn form_urlencoded(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// A 2xx response's `Content-Type` and body (capped).
async fn success_body(url: &str, mut response: reqwest::Response) -> Result<(Option<String>, Vec<u8>), AnswerError> {
    let status = response.status();
    if !status.is_success() {
        return Err(AnswerError::Status { url: url.to_owned(), status: status.as_u16() });
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_capped(&mut response, MAX_ANSWER_BODY).await.map_err(|e| match e {
        ReadError::Transport(e) => transport_error(url, &e),
        ReadError::TooLarge => AnswerError::NotADocument {
            url: url.to_owned(),
            reason: format!("body larger than {MAX_ANSWER_BODY} bytes"),
        },
    })?;
    Ok((content_type, body))
}

async fn read_capped(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Classifies a reqwest failure: a timeout, or a connection problem named the way the
/// fallback's `reason` names it.
fn transport_error(url: &str, e: &reqwest::Error) -> AnswerError {
    if e.is_timeout() {
        return AnswerError::Timeout { url: url.to_owned() };
    }
    let mut source = e.source();
    let mut deepest = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let reason = match io.kind() {
                ConnectionRefused => Some("connection refused"),
                ConnectionReset => Some("connection reset"),
                ConnectionAborted => Some("connection aborted"),
                TimedOut => return AnswerError::Timeout { url: url.to_owned() },
                _ => None,
            };
            if let Some(reason) = reason {
                return AnswerError::Connect { url: url.to_owned(), reason: reason.to_owned() };
            }
        }
        deepest = s.to_string();
        source = s.source();
    }
    let reason =
        if e.is_connect() { format!("connection failed: {deepest}") } else { format!("request failed: {deepest}") };
    AnswerError::Connect { url: url.to_owned(), reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use serde_json::json;

    use super::*;

    trait NccoOf {
        fn ncco(self) -> Value;
    }

    impl NccoOf for Document {
        fn ncco(self) -> Value {
            match self {
                Document::Ncco(v) => v,
                other => panic!("expected NCCO JSON, got {other:?}"),
            }
        }
    }

    const SECRET: &str = "test-signature-secret";

    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        query: Vec<(String, String)>,
        authorization: Option<String>,
        content_type: Option<String>,
        body: Vec<u8>,
        status: u16,
    }

    impl Seen {
        fn param(&self, name: &str) -> Option<&str> {
            self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    #[derive(Default)]
    struct ServerState {
        seen: Mutex<Vec<Seen>>,
        flaky_hits: AtomicUsize,
    }

    struct TestServer {
        addr: SocketAddr,
        state: Arc<ServerState>,
    }

    impl TestServer {
        async fn start() -> TestServer {
            let state = Arc::new(ServerState::default());
            let data = web::Data::from(state.clone());
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(handle)))
                .workers(2)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
            actix_web::rt::spawn(server);
            TestServer { addr, state }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn seen(&self) -> Vec<Seen> {
            lock(&self.state.seen).clone()
        }

        fn seen_at(&self, path: &str) -> Vec<Seen> {
            self.seen().into_iter().filter(|s| s.path == path).collect()
        }

        /// Waits (up to 20 s) until `n` requests to `path` were answered 2xx.
        async fn wait_for_ok(&self, path: &str, n: usize) -> Vec<Seen> {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let ok: Vec<_> = self.seen_at(path).into_iter().filter(|s| s.status == 200).collect();
                if ok.len() >= n || Instant::now() > deadline {
                    return ok;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<ServerState>) -> HttpResponse {
        let path = req.path().to_owned();
        let (status, response) = match path.as_str() {
            "/answer" => (200, Some(json!([{"action": "talk", "text": "hello"}]))),
            "/fallback" => (200, Some(json!([{"action": "talk", "text": "fallback"}]))),
            "/error500" => (500, None),
            "/notjson" => (200, None),
            "/slow" => {
                actix_web::rt::time::sleep(Duration::from_secs(3)).await;
                (200, Some(json!([])))
            }
            "/flaky" => {
                let hit = state.flaky_hits.fetch_add(1, Ordering::SeqCst);
                (if hit < 2 { 503 } else { 200 }, None)
            }
            "/events" => (200, None),
            _ => (404, None),
        };
        let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        lock(&state.seen).push(Seen {
            method: req.method().to_string(),
            path,
            query,
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: body.to_vec(),
            status,
        });
        let mut builder = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
        match response {
            Some(json) => builder.json(json),
            None => builder.body("plain text"),
        }
    }

    fn hook(address: String, method: HttpMethod) -> Webhook {
        Webhook { address, http_method: Some(method), connect_timeout: None, socket_timeout: None }
    }

    fn hooks(answer: Webhook, fallback: Option<Webhook>, event: Webhook, signed: bool) -> AppHooks {
        AppHooks {
            application_id: "app-1".into(),
            answer,
            fallback_answer: fallback,
            event,
            signed,
            dialect: domains::application::Dialect::Ncco,
            sip_transport: domains::sip_uri::Transport::Udp,
            status_events: None,
            parent_call: None,
        }
    }

    fn sender() -> HttpWebhooks {
        let options =
            WebhookOptions { use_env_proxy: false, event_queue_idle: Duration::from_secs(2), ..Default::default() };
        HttpWebhooks::with_options(SECRET.into(), "api-key-1".into(), options)
    }

    fn params() -> AnswerParams {
        [
            ("to", "447700900001"),
            ("from", "447700900000"),
            ("uuid", "aaaaaaaa-0000-0000-0000-000000000001"),
            ("conversation_uuid", "CON-aaaaaaaa-0000-0000-0000-000000000001"),
            ("SipHeader_X-UserId", "1938ND9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// A port nothing listens on.
    fn closed_port_url(path: &str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}{path}")
    }

    #[actix_web::test]
    async fn webhooks_get_answer_sends_query_params() {
        let srv = TestServer::start().await;
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Get), None, hook(srv.url("/events"), HttpMethod::Post), false);
        let ncco = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(ncco, json!([{"action": "talk", "text": "hello"}]));
        let seen = srv.seen_at("/answer");
        assert_eq!(seen.len(), 1);
        let s = &seen[0];
        assert_eq!(s.method, "GET");
        assert_eq!(s.param("SipHeader_X-UserId"), Some("1938ND9"));
        assert_eq!(s.param("to"), Some("447700900001"));
        assert_eq!(s.param("conversation_uuid"), Some("CON-aaaaaaaa-0000-0000-0000-000000000001"));
        assert!(s.body.is_empty());
        assert_eq!(s.authorization, None, "unsigned application");
    }

    #[actix_web::test]
    async fn webhooks_post_answer_sends_json_body() {
        let srv = TestServer::start().await;
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Post), None, hook(srv.url("/events"), HttpMethod::Post), false);
        let ncco = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(ncco[0]["action"], "talk");
        let s = &srv.seen_at("/answer")[0];
        assert_eq!(s.method, "POST");
        assert_eq!(s.content_type.as_deref(), Some("application/json"));
        assert!(s.query.is_empty());
        let body = s.json();
        assert_eq!(body["SipHeader_X-UserId"], "1938ND9");
        assert_eq!(body["uuid"], "aaaaaaaa-0000-0000-0000-000000000001");
        assert!(body.get("reason").is_none());
    }

    #[actix_web::test]
    async fn webhooks_signed_requests_carry_verifiable_jwt() {
        let srv = TestServer::start().await;
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Post), None, hook(srv.url("/events"), HttpMethod::Post), true);
        let webhooks = sender();
        webhooks.fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        let s = &srv.seen_at("/answer")[0];
        let token = s.authorization.as_deref().unwrap().strip_prefix("Bearer ").unwrap();
        let claims = signing::verify(SECRET, token, Some(&s.body)).unwrap();
        assert_eq!(claims.payload_hash.as_deref(), Some(signing::payload_hash(&s.body).as_str()));
        assert_eq!(claims.api_key, "api-key-1");
        assert_eq!(claims.application_id.as_deref(), Some("app-1"));
        assert_eq!(claims.iss, "voxbridge");
        assert_eq!(claims.exp, claims.iat + 300);
        assert!(signing::verify("wrong secret", token, Some(&s.body)).is_err());

        // A signed GET: no body, so no payload_hash.
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Get), None, hook(srv.url("/events"), HttpMethod::Post), true);
        webhooks.fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        let s = &srv.seen_at("/answer")[1];
        let token = s.authorization.as_deref().unwrap().strip_prefix("Bearer ").unwrap();
        assert_eq!(signing::verify(SECRET, token, None).unwrap().payload_hash, None);

        // Events are signed too, with the hash of the exact event body.
        webhooks.send_event(&h, "call-signed", json!({"status": "completed", "uuid": "call-signed"}));
        let ok = srv.wait_for_ok("/events", 1).await;
        assert_eq!(ok.len(), 1);
        let token = ok[0].authorization.as_deref().unwrap().strip_prefix("Bearer ").unwrap();
        assert!(signing::verify(SECRET, token, Some(&ok[0].body)).unwrap().payload_hash.is_some());
    }

    #[actix_web::test]
    async fn webhooks_answer_500_uses_fallback_with_reason() {
        let srv = TestServer::start().await;
        let h = hooks(
            hook(srv.url("/error500"), HttpMethod::Get),
            Some(hook(srv.url("/fallback"), HttpMethod::Get)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let ncco = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(ncco[0]["text"], "fallback");
        assert_eq!(srv.seen_at("/error500").len(), 1, "HTTP 500 is not retried on the same URL");
        let f = &srv.seen_at("/fallback")[0];
        assert_eq!(f.param("reason"), Some("http 500"));
        assert_eq!(f.param("original_request.url"), Some(srv.url("/error500").as_str()));
        assert_eq!(f.param("original_request.type"), Some("answer"));
        assert_eq!(f.param("SipHeader_X-UserId"), Some("1938ND9"));
    }

    #[actix_web::test]
    async fn webhooks_answer_not_json_uses_post_fallback() {
        let srv = TestServer::start().await;
        let h = hooks(
            hook(srv.url("/notjson"), HttpMethod::Get),
            Some(hook(srv.url("/fallback"), HttpMethod::Post)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        let body = srv.seen_at("/fallback")[0].json();
        assert_eq!(body["reason"], "not json");
        assert_eq!(body["original_request"], json!({"url": srv.url("/notjson"), "type": "answer"}));
        assert_eq!(body["to"], "447700900001");
    }

    #[actix_web::test]
    async fn webhooks_answer_refused_uses_fallback() {
        let srv = TestServer::start().await;
        let refused = closed_port_url("/answer");
        let h = hooks(
            hook(refused.clone(), HttpMethod::Get),
            Some(hook(srv.url("/fallback"), HttpMethod::Get)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let ncco = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(ncco[0]["text"], "fallback");
        let f = &srv.seen_at("/fallback")[0];
        assert_eq!(f.param("reason"), Some("connection refused"));
        assert_eq!(f.param("original_request.url"), Some(refused.as_str()));
    }

    fn accept_any(_: &Document) -> Result<(), String> {
        Ok(())
    }

    #[actix_web::test]
    async fn webhooks_refused_document_uses_fallback_once() {
        let srv = TestServer::start().await;
        let h = hooks(
            hook(srv.url("/answer"), HttpMethod::Post),
            Some(hook(srv.url("/fallback"), HttpMethod::Post)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let only_fallback = |doc: &Document| {
            let fallback = matches!(doc, Document::Ncco(v) if v[0]["text"] == "fallback");
            if fallback { Ok(()) } else { Err("invalid NCCO: /0/text: not the fallback".to_owned()) }
        };
        let ncco = sender().fetch_answer(&h, &params(), &only_fallback).await.unwrap().ncco();
        assert_eq!(ncco[0]["text"], "fallback");
        assert_eq!(srv.seen_at("/answer").len(), 1, "a refused document is not retried");
        let fallbacks = srv.seen_at("/fallback");
        assert_eq!(fallbacks.len(), 1);
        let body = fallbacks[0].json();
        assert_eq!(body["reason"], "invalid NCCO: /0/text: not the fallback");
        assert_eq!(body["original_request"], json!({"url": srv.url("/answer"), "type": "answer"}));

        let refuse_all = |_: &Document| Err("nothing is good".to_owned());
        let err = sender().fetch_answer(&h, &params(), &refuse_all).await.unwrap_err();
        assert_eq!(err, AnswerError::Invalid { url: srv.url("/fallback"), reason: "nothing is good".into() });
    }

    #[actix_web::test]
    async fn webhooks_answer_and_fallback_failing_is_an_error() {
        let srv = TestServer::start().await;
        let h = hooks(
            hook(closed_port_url("/answer"), HttpMethod::Get),
            Some(hook(srv.url("/error500"), HttpMethod::Get)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let err = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap_err();
        assert_eq!(err, AnswerError::Status { url: srv.url("/error500"), status: 500 });

        let h = hooks(
            hook(closed_port_url("/answer"), HttpMethod::Post),
            Some(hook(closed_port_url("/fallback"), HttpMethod::Post)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let err = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap_err();
        assert!(matches!(&err, AnswerError::Connect { reason, .. } if reason == "connection refused"), "{err:?}");

        // No fallback: answer_url's own error.
        let h =
            hooks(hook(srv.url("/error500"), HttpMethod::Get), None, hook(srv.url("/events"), HttpMethod::Post), false);
        let err = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap_err();
        assert_eq!(err.reason(), "http 500");
    }

    #[actix_web::test]
    async fn webhooks_answer_socket_timeout_honoured() {
        let srv = TestServer::start().await;
        let mut slow = hook(srv.url("/slow"), HttpMethod::Get);
        slow.socket_timeout = Some(1000);
        let h = hooks(
            slow,
            Some(hook(srv.url("/fallback"), HttpMethod::Get)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        let started = Instant::now();
        let ncco = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(ncco[0]["text"], "fallback");
        assert_eq!(srv.seen_at("/fallback")[0].param("reason"), Some("timeout"));
        // Two attempts of about one second each, well under the server's three-second sleep twice.
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());

        let mut slow = hook(srv.url("/slow"), HttpMethod::Post);
        slow.socket_timeout = Some(1000);
        let h = hooks(slow, None, hook(srv.url("/events"), HttpMethod::Post), false);
        let err = sender().fetch_answer(&h, &params(), &accept_any).await.unwrap_err();
        assert_eq!(err, AnswerError::Timeout { url: srv.url("/slow") });
    }

    #[actix_web::test]
    async fn webhooks_answer_503_is_retried_once() {
        let srv = TestServer::start().await;
        // /flaky answers 503 twice: answer_url gets its two attempts, then the fallback.
        let h = hooks(
            hook(srv.url("/flaky"), HttpMethod::Get),
            Some(hook(srv.url("/fallback"), HttpMethod::Get)),
            hook(srv.url("/events"), HttpMethod::Post),
            false,
        );
        sender().fetch_answer(&h, &params(), &accept_any).await.unwrap().ncco();
        assert_eq!(srv.seen_at("/flaky").len(), 2);
        assert_eq!(srv.seen_at("/fallback")[0].param("reason"), Some("http 503"));
    }

    #[actix_web::test]
    async fn webhooks_events_in_order_across_retries() {
        let srv = TestServer::start().await;
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Get), None, hook(srv.url("/flaky"), HttpMethod::Post), false);
        let webhooks = sender();
        for seq in 0..20 {
            let status = if seq == 19 { "completed" } else { "ringing" };
            webhooks.send_event(&h, "call-1", json!({"uuid": "call-1", "status": status, "seq": seq}));
        }
        let ok = srv.wait_for_ok("/flaky", 20).await;
        let order: Vec<_> = ok.iter().map(|s| s.json()["seq"].as_i64().unwrap()).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        let all = srv.seen_at("/flaky");
        assert_eq!(all.len(), 22, "two 503s retried");
        assert_eq!(all[0].json()["seq"], 0);
        assert_eq!(all[1].json()["seq"], 0);
        assert!(all.iter().all(|s| s.method == "POST" && s.authorization.is_none()));
        // The terminal event closes the queue.
        let deadline = Instant::now() + Duration::from_secs(10);
        while webhooks.open_event_queues() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(webhooks.open_event_queues(), 0);
    }

    #[actix_web::test]
    async fn webhooks_events_of_several_calls_each_in_order() {
        let srv = TestServer::start().await;
        let h =
            hooks(hook(srv.url("/answer"), HttpMethod::Get), None, hook(srv.url("/events"), HttpMethod::Post), false);
        let webhooks = sender();
        for seq in 0..10 {
            for call in ["a", "b", "c"] {
                webhooks.send_event(&h, call, json!({"uuid": call, "status": "ringing", "seq": seq}));
            }
        }
        let ok = srv.wait_for_ok("/events", 30).await;
        assert_eq!(ok.len(), 30);
        for call in ["a", "b", "c"] {
            let order: Vec<_> =
                ok.iter().map(|s| s.json()).filter(|v| v["uuid"] == call).map(|v| v["seq"].as_i64().unwrap()).collect();
            assert_eq!(order, (0..10).collect::<Vec<_>>(), "call {call}");
        }
        // Without a terminal event the queues close when idle (2 s in these tests).
        let deadline = Instant::now() + Duration::from_secs(10);
        while webhooks.open_event_queues() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(webhooks.open_event_queues(), 0);
        // A later event opens a new queue and is still delivered.
        webhooks.send_event(&h, "a", json!({"uuid": "a", "status": "completed", "seq": 10}));
        assert_eq!(srv.wait_for_ok("/events", 31).await.len(), 31);
    }

    #[actix_web::test]
    async fn webhooks_events_to_get_webhook_use_query_params() {
        let srv = TestServer::start().await;
        let h = hooks(hook(srv.url("/answer"), HttpMethod::Get), None, hook(srv.url("/events"), HttpMethod::Get), true);
        let webhooks = sender();
        let event = domains::events::CallEvent::new(
            "call-get",
            "CON-get",
            domains::events::CallStatus::Answered,
            domains::events::Direction::Inbound,
            "447700900000",
            "447700900001",
            "2026-01-02T03:04:05.678Z",
        );
        webhooks.send_event(&h, "call-get", event.to_json());
        webhooks.send_event(
            &h,
            "call-get",
            json!({"status": "completed", "uuid": "call-get", "sip_code": 200, "x": {"y": "z"}}),
        );
        let ok = srv.wait_for_ok("/events", 2).await;
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|s| s.method == "GET" && s.body.is_empty()));
        assert_eq!(ok[0].param("status"), Some("answered"));
        assert_eq!(ok[0].param("direction"), Some("inbound"));
        assert_eq!(ok[0].param("timestamp"), Some("2026-01-02T03:04:05.678Z"));
        assert_eq!(ok[1].param("status"), Some("completed"));
        assert_eq!(ok[1].param("sip_code"), Some("200"));
        assert_eq!(ok[1].param("x.y"), Some("z"));
        let token = ok[1].authorization.as_deref().unwrap().strip_prefix("Bearer ").unwrap();
        assert!(signing::verify(SECRET, token, None).is_ok());
    }

    #[actix_web::test]
    async fn webhooks_event_dropped_after_max_attempts() {
        let webhooks = HttpWebhooks::with_options(
            SECRET.into(),
            "k".into(),
            WebhookOptions {
                event_first_backoff: Duration::from_millis(10),
                event_max_attempts: 3,
                event_queue_idle: Duration::from_secs(2),
                use_env_proxy: false,
            },
        );
        let dead = hook(closed_port_url("/events"), HttpMethod::Post);
        let h = hooks(dead.clone(), None, dead, false);
        webhooks.send_event(&h, "call-dead", json!({"status": "failed"}));
        assert_eq!(webhooks.open_event_queues(), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while webhooks.open_event_queues() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(webhooks.open_event_queues(), 0, "queue ends after the terminal event is dropped");
    }

    #[test]
    fn webhooks_query_pairs_flatten_events() {
        let pairs = query_pairs(&json!({"a": "1", "b": 2, "c": null, "d": {"e": true}, "f": [1, 2]}));
        assert_eq!(
            pairs,
            [("a", "1"), ("b", "2"), ("d.e", "true"), ("f", "[1,2]")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .to_vec()
        );
    }

    #[test]
    fn webhooks_answer_error_reasons_and_retries() {
        let url = String::from("http://x");
        assert_eq!(AnswerError::Timeout { url: url.clone() }.reason(), "timeout");
        assert_eq!(AnswerError::Status { url: url.clone(), status: 404 }.reason(), "http 404");
        assert!(AnswerError::Status { url: url.clone(), status: 429 }.is_retryable());
        assert!(AnswerError::Status { url: url.clone(), status: 504 }.is_retryable());
        assert!(!AnswerError::Status { url: url.clone(), status: 500 }.is_retryable());
        assert!(!AnswerError::NotADocument { url, reason: "x".into() }.is_retryable());
    }

    #[test]
    fn webhooks_send_event_outside_runtime_does_not_panic() {
        let webhooks = sender();
        let h = hooks(
            hook("http://127.0.0.1:1/a".into(), HttpMethod::Get),
            None,
            hook("http://127.0.0.1:1/e".into(), HttpMethod::Post),
            false,
        );
        webhooks.send_event(&h, "c", json!({"status": "started"}));
        assert_eq!(webhooks.open_event_queues(), 0);
    }
}
