//! A fake application on a loopback port: answers answer_url with a configured NCCO and records
//! every answer request and event, so tests can assert what voxbridge sent. An application is
//! outside voxbridge, so faking it here is legitimate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    ncco: Mutex<Value>,
    /// HTTP status for /answer (200 unless set).
    answer_status: Mutex<u16>,
    answers: Mutex<Vec<Recorded>>,
    events: Mutex<Vec<Recorded>>,
    /// Other paths that answer with a document (an `onAnswer` NCCO, …), by path.
    documents: Mutex<std::collections::HashMap<String, Value>>,
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
    };
    if req.path().starts_with("/answer") {
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
