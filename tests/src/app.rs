//! A fake application on a loopback port: answers answer_url with a configured NCCO and records
//! every answer request and event, so tests can assert what voxbridge sent. An application is
//! outside voxbridge, so faking it here is legitimate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Value,
    /// The pairs of a form-encoded body (TwiML callbacks), else empty.
    pub form: Vec<(String, String)>,
    /// `X-Twilio-Signature`, when sent.
    pub twilio_signature: Option<String>,
    /// `X-SignalWire-Signature`, as SignalWire's compatibility API signs.
    pub signalwire_signature: Option<String>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A field of the form-encoded body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A file the fake application serves: content type, extra headers, bytes.
type File = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
struct State {
    ncco: Mutex<Value>,
    /// HTTP status for /answer (200 unless set).
    answer_status: Mutex<u16>,
    answers: Mutex<Vec<Recorded>>,
    events: Mutex<Vec<Recorded>>,
    /// Other paths that answer with a document (an `onAnswer` NCCO, …), by path.
    documents: Mutex<std::collections::HashMap<String, Value>>,
    /// Paths that serve a file (audio for `stream`): content type, extra headers and bytes.
    files: Mutex<std::collections::HashMap<String, File>>,
    /// How many times each file path was fetched.
    fetches: Mutex<std::collections::HashMap<String, usize>>,
}

pub struct FakeApp {
    pub base: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<State>>) -> HttpResponse {
    let query: Vec<(String, String)> = url_decode_pairs(req.query_string());
    let rec = Recorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query,
        authorization: req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        twilio_signature: req.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok()).map(str::to_owned),
        signalwire_signature: req
            .headers()
            .get("x-signalwire-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: match req.content_type() {
            "application/x-www-form-urlencoded" => url_decode_pairs(&String::from_utf8_lossy(&body)),
            _ => Vec::new(),
        },
    };
    let file = state.files.lock().unwrap().get(req.path()).cloned();
    let answer = req.path().starts_with("/answer");
    if file.is_some() && answer {
        // A document other than JSON (TwiML) served as a file is an answer all the same.
        state.answers.lock().unwrap().push(rec.clone());
    } else if file.is_some() && req.method() == actix_web::http::Method::POST {
        // A callback answered with a TwiML document.
        state.events.lock().unwrap().push(rec.clone());
    }
    if let Some((content_type, headers, bytes)) = file {
        *state.fetches.lock().unwrap().entry(req.path().to_owned()).or_default() += 1;
        let mut reply = HttpResponse::Ok();
        reply.content_type(content_type);
        for h in headers {
            reply.insert_header(h);
        }
        return reply.body(bytes);
    }
    if answer {
        state.answers.lock().unwrap().push(rec);
        let status = *state.answer_status.lock().unwrap();
        if status != 200 {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish();
        }
        HttpResponse::Ok().json(state.ncco.lock().unwrap().clone())
    } else {
        let document = state.documents.lock().unwrap().get(req.path()).cloned();
        state.events.lock().unwrap().push(rec);
        match document {
            Some(doc) => HttpResponse::Ok().json(doc),
            None => HttpResponse::Ok().finish(),
        }
    }
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeApp {
    pub async fn start(ncco: Value) -> FakeApp {
        let state = Arc::new(State { ncco: Mutex::new(ncco), answer_status: Mutex::new(200), ..Default::default() });
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(record)))
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeApp { base: format!("http://127.0.0.1:{port}"), state, handle }
    }

    pub fn set_ncco(&self, ncco: Value) {
        *self.state.ncco.lock().unwrap() = ncco;
    }

    /// Requests to `path` (recorded with the events) get `document` as their JSON reply.
    pub fn set_document(&self, path: &str, document: Value) {
        self.state.documents.lock().unwrap().insert(path.to_owned(), document);
    }

    /// Requests to `path` get `bytes` as `content_type`, with extra response `headers`.
    pub fn set_file(&self, path: &str, content_type: &str, headers: &[(&str, &str)], bytes: Vec<u8>) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.state.files.lock().unwrap().insert(path.to_owned(), (content_type.to_owned(), headers, bytes));
    }

    /// How many times `path` (a file) was fetched.
    pub fn fetches(&self, path: &str) -> usize {
        self.state.fetches.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn set_answer_status(&self, status: u16) {
        *self.state.answer_status.lock().unwrap() = status;
    }

    pub fn answers(&self) -> Vec<Recorded> {
        self.state.answers.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Recorded> {
        self.state.events.lock().unwrap().clone()
    }

    /// The uuid of the first `direction` leg an event was received for.
    pub fn leg_uuid(&self, direction: &str) -> Option<String> {
        self.events()
            .into_iter()
            .find(|e| e.body["direction"] == direction)
            .and_then(|e| e.body["uuid"].as_str().map(str::to_owned))
    }

    /// Statuses of the events received for `direction` legs, in order.
    pub fn statuses(&self, direction: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e.body["direction"] == direction)
            .filter_map(|e| e.body["status"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until an event with `status` for `direction` arrived.
    pub async fn wait_status(&self, direction: &str, status: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.statuses(direction).iter().any(|s| s == status) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for FakeApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
