//! One task per call, the counterpart of quinn's `ConnectionDriver`: it feeds the call core
//! its inputs (SIP from the registry, media events, the results of the operations it asked
//! for, timeouts) and carries out its outputs. Operations run concurrently as futures of this
//! task, so the core hears a CANCEL or BYE whatever is outstanding.

use std::sync::Arc;
use std::time::Instant;

use domains::call::{Call, DocumentRequest, Input, Key, MediaFailure, Now, OpId, Output, RecordUpdate, Resolved};
use domains::document::Document;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::registry::{CallInput, CallRegistry, CallSender};
use crate::media::{MediaControl, MediaError, MediaEvent};
use crate::sip::resolve::SipResolver;
use crate::sip::transport::{Incoming, Transport};
use crate::store::entity::call as call_row;
use crate::store::records::CallRecords;
use crate::store::records::Finish;
use crate::webhooks::{AppHooks, WebhookSender};

/// What a driver does I/O with.
#[derive(Clone)]
pub struct Io {
    pub transport: Arc<Transport>,
    pub media: Arc<dyn MediaControl>,
    pub webhooks: Arc<dyn WebhookSender>,
    pub records: CallRecords,
    pub registry: Arc<CallRegistry>,
    pub resolver: Arc<SipResolver>,
    /// Where a message the call gives back goes: the edge admits it anew.
    pub readmit: Arc<dyn Fn(Incoming) + Send + Sync>,
}

pub fn now() -> Now {
    Now { at: Instant::now(), utc: chrono::Utc::now() }
}

/// Runs `call` to its end. `tx` is the sender of `inbox`, which the registry routes to.
pub async fn drive(
    call: Call,
    hooks: Option<AppHooks>,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    tx: CallSender,
    io: Io,
) {
    let span = tracing::info_span!("call", call_uuid = %call.uuid());
    // The edge registered the caller's Call-ID before admission; it leaves with the call.
    let keys = vec![Key::CallId(call.call_id().to_owned())];
    Driver::new(call, hooks, io, tx, keys, None).run(inbox).instrument(span).await;
}

/// Starts a call the Voice API placed. Its first outputs (the call's record, the keys it
/// listens on, its `started` event, the resolution of its target) are carried out before this
/// returns, so that the API's `201` is true at once: the call is found by `GET` and steered by
/// `PUT`. The rest runs on `runtime` (the SIP edge's), holding `slot` until the call ends.
pub async fn launch(
    call: Call,
    hooks: Option<AppHooks>,
    io: Io,
    runtime: &tokio::runtime::Handle,
    slot: super::outbound::OutboundSlot,
) {
    let span = tracing::info_span!("call", call_uuid = %call.uuid());
    let (tx, inbox) = mpsc::unbounded_channel();
    let key = Key::Uuid(call.uuid().to_owned());
    io.registry.insert(key.clone(), tx.clone());
    let mut driver = Driver::new(call, hooks, io, tx, vec![key], Some(slot));
    driver.flush().instrument(span.clone()).await;
    runtime.spawn(driver.run(inbox).instrument(span));
}

struct Driver {
    call: Call,
    hooks: Option<AppHooks>,
    io: Io,
    tx: CallSender,
    /// Keys this call listens on, removed when it ends whatever it said.
    keys: Vec<Key>,
    pending: FuturesUnordered<BoxFuture<'static, Input>>,
    /// The URL of the document the call runs: where a TwiML `<Gather>` or `<Record>` without
    /// `action` sends its result (Twilio's default).
    document_url: Arc<std::sync::Mutex<Option<String>>>,
    /// A call created over the Voice API holds its place in the outbound budget.
    _slot: Option<super::outbound::OutboundSlot>,
}

/// Whatever the call said, and even if a bug panicked it, its keys leave the registry with it,
/// so the edge never routes to a call that is gone.
impl Drop for Driver {
    fn drop(&mut self) {
        for key in std::mem::take(&mut self.keys) {
            self.io.registry.remove_if(&key, &self.tx);
        }
        metrics::gauge!("voxbridge_sip_active_calls").decrement(1.0);
    }
}

impl Driver {
    fn new(
        call: Call,
        hooks: Option<AppHooks>,
        io: Io,
        tx: CallSender,
        keys: Vec<Key>,
        slot: Option<super::outbound::OutboundSlot>,
    ) -> Driver {
        // Decremented when the driver drops, however it ends.
        metrics::gauge!("voxbridge_sip_active_calls").increment(1.0);
        let document_url = Arc::new(std::sync::Mutex::new(None));
        Driver { call, hooks, io, tx, keys, pending: FuturesUnordered::new(), document_url, _slot: slot }
    }

    /// Carries out what the call has said so far.
    async fn flush(&mut self) {
        while let Some(out) = self.call.poll_output() {
            self.output(out).await;
        }
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<CallInput>) {
        // One timer per call, moved only when the call's next deadline changes.
        let sleep = tokio::time::sleep(std::time::Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            self.flush().await;
            if self.call.is_done() {
                // Webhooks the call posted last (a record event, the final status) are still on
                // their way: they finish without the call.
                let pending = std::mem::take(&mut self.pending);
                if !pending.is_empty() {
                    tokio::spawn(async move {
                        let drained = pending.for_each(|_| async {});
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), drained).await;
                    });
                }
                break;
            }
            let wake = self.call.poll_timeout();
            if wake != armed {
                if let Some(at) = wake {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                }
                armed = wake;
            }
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(CallInput::Sip(inc)) => self.call.handle_input(now(), Input::Sip { flow: inc.flow, msg: inc.msg }),
                    Some(CallInput::Media(MediaEvent::Call(event))) => self.call.handle_input(now(), Input::Media(event)),
                    Some(CallInput::Media(MediaEvent::ProcessLost)) => {
                        self.call.handle_input(now(), Input::Media(domains::call::MediaEvent::ProcessLost))
                    }
                    Some(CallInput::Media(MediaEvent::ProcessReady)) => {}
                    Some(CallInput::Control(control, verdict)) => {
                        let accepted = self.call.check_control(&control);
                        let ok = accepted.is_ok();
                        let _ = verdict.send(accepted);
                        if ok {
                            self.call.handle_input(now(), Input::Control(control));
                        }
                    }
                    None => break,
                },
                Some(input) = self.pending.next(), if !self.pending.is_empty() => self.call.handle_input(now(), input),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.call.handle_timeout(now());
                }
            }
        }
    }

    async fn output(&mut self, out: Output) {
        match out {
            Output::Sip { flow, msg } => {
                if let Err(e) = self.io.transport.send(&flow, &msg).await {
                    tracing::info!(peer = %flow.peer(), error = %e, "sending SIP");
                }
            }
            Output::Resolve { op, target, attempt } => {
                let (transport, resolver) = (self.io.transport.clone(), self.io.resolver.clone());
                self.pending.push(Box::pin(async move {
                    Input::Resolved { op, result: resolve(&transport, &resolver, &target, attempt).await }
                }));
            }
            Output::Media { op, mut command } => {
                use domains::media::Command as C;
                if let (C::CreateWebsocketEndpoint { target, .. } | C::ConnectWebsocket { target, .. }, Some(hooks)) =
                    (&mut command, &self.hooks)
                    && target.signed
                {
                    target.authorization = Some(format!("Bearer {}", self.io.webhooks.websocket_token(hooks)));
                }
                let media = self.io.media.clone();
                self.pending.push(Box::pin(async move {
                    let result = media.command(command).await.map_err(failure);
                    Input::MediaReply { op, result }
                }));
            }
            Output::FetchDocument { op, request } => self.fetch(op, request),
            Output::Event(ev) => {
                if let Some(hooks) = &self.hooks {
                    self.io.webhooks.send_event(hooks, &ev.uuid, ev.to_json());
                }
            }
            Output::LegEvent { event, hook } => {
                if let Some(hooks) = &self.hooks {
                    self.io.webhooks.send_event(&hooks.for_leg(&hook), &event.uuid, event.to_json());
                }
            }
            Output::Record(update) => self.record(update),
            Output::Listen(key) => {
                self.io.registry.insert(key.clone(), self.tx.clone());
                self.keys.push(key);
            }
            Output::Unlisten(key) => {
                self.io.registry.remove_if(&key, &self.tx);
                self.keys.retain(|k| *k != key);
            }
            Output::Dialled { total, added } => {
                metrics::histogram!("voxbridge_sip_post_dial_delay_seconds").record(total.as_secs_f64());
                metrics::histogram!("voxbridge_sip_added_delay_seconds").record(added.as_secs_f64());
            }
            Output::Unmatched { flow, msg } => {
                let key = Key::CallId(msg.call_id().to_owned());
                self.io.registry.remove_if(&key, &self.tx);
                self.keys.retain(|k| *k != key);
                (self.io.readmit)(Incoming { msg, flow, received: Instant::now() });
            }
        }
    }

    fn fetch(&mut self, op: OpId, request: DocumentRequest) {
        let Some(hooks) = self.hooks.clone() else {
            self.pending.push(Box::pin(async move { Input::Document { op, result: Err("no application".into()) } }));
            return;
        };
        let webhooks = self.io.webhooks.clone();
        let document_url = self.document_url.clone();
        let running = || document_url.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Where the request goes (a TwiML callback without `action`: the running document).
        let url = match &request {
            DocumentRequest::Answer { .. } => Some(hooks.answer.address.clone()),
            DocumentRequest::Post { webhook, .. } => {
                Some(webhook.as_ref().map_or_else(|| hooks.event.address.clone(), |w| w.url.to_string()))
            }
            DocumentRequest::Form { callback, .. } => callback.url.as_ref().map(ToString::to_string).or_else(running),
        };
        self.pending.push(Box::pin(async move {
            let result = match (request, url.clone()) {
                (DocumentRequest::Answer { params }, _) => {
                    let accept = |doc: &Document| doc.program().map(|_| ());
                    match webhooks.fetch_answer(&hooks, &params, &accept).await {
                        Ok(doc) => doc.program().map(Some),
                        Err(e) => Err(e.to_string()),
                    }
                }
                (DocumentRequest::Post { webhook, body }, _) => {
                    let hook = webhook.map_or_else(|| hooks.event.clone(), app_webhook);
                    program_of(webhooks.post_document(&hooks, &hook, body).await)
                }
                (DocumentRequest::Form { callback, params }, Some(address)) => {
                    let hook = app_webhook_at(address, callback.method);
                    program_of(webhooks.post_form(&hooks, &hook, params).await)
                }
                (DocumentRequest::Form { .. }, None) => Err("no document URL to send the verb's result to".into()),
            };
            if let (Ok(Some(_)), Some(url)) = (&result, url) {
                *document_url.lock().unwrap_or_else(|e| e.into_inner()) = Some(url);
            }
            Input::Document { op, result }
        }));
    }

    fn record(&self, update: RecordUpdate) {
        let records = &self.io.records;
        match update {
            RecordUpdate::Started { uuid, conversation_uuid, application_id, direction, from, to, sip_call_id, at } => {
                records.insert(call_row::Model {
                    uuid,
                    conversation_uuid,
                    application_id,
                    direction: direction.as_str().into(),
                    status: domains::events::CallStatus::Started.as_str().into(),
                    from_type: domains::events::party_type(&from).into(),
                    from_number: from,
                    to_type: domains::events::party_type(&to).into(),
                    to_number: to,
                    sip_call_id,
                    detail: None,
                    start_time: None,
                    end_time: None,
                    duration: None,
                    quality: None,
                    sip_code: None,
                    created_at: at,
                    updated_at: at,
                })
            }
            RecordUpdate::Answered { uuid, at } => records.answered(&uuid, at),
            RecordUpdate::Finished { uuid, status, detail, answered, ended, quality, sip_code } => records.finished(
                &uuid,
                Finish { status: status.as_str(), detail, answered, ended, quality: quality.as_ref(), sip_code },
            ),
        }
    }
}

fn failure(e: MediaError) -> MediaFailure {
    let code = match &e {
        MediaError::Unavailable => None,
        MediaError::Negotiation(_) => Some(domains::media::ErrorCode::Negotiation),
        MediaError::Refused { code, .. } => Some(*code),
        MediaError::Other(_) => Some(domains::media::ErrorCode::Internal),
    };
    MediaFailure { code, message: e.to_string() }
}

/// DNS (RFC 3263) and the connection to an outbound leg's next hop: candidate `attempt`, or
/// the next one that accepts a connection.
async fn resolve(
    transport: &Arc<Transport>,
    resolver: &SipResolver,
    target: &domains::sip_uri::SipUri,
    attempt: usize,
) -> Result<Resolved, String> {
    let candidates = resolver.candidates(target).await?;
    let mut last = format!("{} has no server left to try", target.host);
    for (i, c) in candidates.iter().enumerate().skip(attempt) {
        match transport.flow_to(c.addr, c.transport, &target.host).await {
            Ok(flow) => return Ok(Resolved { flow, next_attempt: (i + 1 < candidates.len()).then_some(i + 1) }),
            Err(e) => last = format!("connecting {}: {e}", c.addr),
        }
    }
    Err(last)
}

/// An action's webhook as the application's webhooks are written.
fn app_webhook(w: domains::ncco::Webhook) -> domains::application::Webhook {
    app_webhook_at(w.url.to_string(), w.method)
}

fn app_webhook_at(address: String, method: domains::ncco::HttpMethod) -> domains::application::Webhook {
    domains::application::Webhook {
        address,
        http_method: Some(match method {
            domains::ncco::HttpMethod::Get => domains::application::HttpMethod::Get,
            domains::ncco::HttpMethod::Post => domains::application::HttpMethod::Post,
        }),
        connect_timeout: None,
        socket_timeout: None,
    }
}

/// The program in an action webhook's reply, if it answered one.
fn program_of(
    reply: Result<Option<Document>, crate::webhooks::AnswerError>,
) -> Result<Option<domains::ncco::Ncco>, String> {
    match reply {
        Ok(Some(doc)) => doc.program().map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
