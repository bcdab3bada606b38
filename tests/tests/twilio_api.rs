//! The Twilio-compatible calls API driven by the official `twilio` Python library
//! (`tests/python/twilio_calls.py`), pointed at voxbridge by its base URL only: it creates a
//! call to SIPp with inline TwiML and status callbacks, fetches it until it is in progress,
//! lists calls, completes it; a wrong auth token gets Twilio's 401 (20003), a caller ID the
//! account does not own a 400 (21213), an unknown call a 404 (20404). The status callbacks
//! come for the subscribed events only, in order.

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::python::{self, step};
use vbtest::sipp::Sipp;

#[tokio::test]
async fn the_twilio_library_creates_fetches_lists_and_completes_a_call() {
    let bob = Sipp::uas("uas_answer.xml", &[]);
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let (status, body) =
        env.server.post_json("/v1/numbers", json!({"number": "+14155550100", "application_id": env.app_id})).await;
    assert_eq!(status, 201, "{body}");
    let (status, account) = env.server.put_json("/v1/account", json!({"default_application_id": env.app_id})).await;
    assert_eq!(status, 200, "{account}");
    let args = [
        python::script("twilio_calls.py"),
        env.server.url(""),
        account["account_sid"].as_str().unwrap_or_default().to_owned(),
        account["auth_token"].as_str().unwrap_or_default().to_owned(),
        format!("sip:bob@127.0.0.1:{}", bob.port),
        "+14155550100".to_owned(),
        format!("{}/status", env.app.base),
    ];
    let steps = python::steps(&python::python(), &args, &[]).await;
    let created = step(&steps, "created");
    assert_eq!((created["status"].as_str(), created["direction"].as_str()), (Some("queued"), Some("outbound-api")));
    let sid = created["sid"].as_str().expect("a sid").to_owned();
    assert!(sid.starts_with("CA") && sid.len() == 34, "Twilio's sid form: {sid}");
    assert_eq!(step(&steps, "answered")["status"], "in-progress", "{steps:?}");
    assert_eq!(step(&steps, "answered")["account_sid"], account["account_sid"]);
    assert!(step(&steps, "listed").as_array().is_some_and(|l| l.iter().any(|s| s == sid.as_str())), "{steps:?}");
    assert_eq!(step(&steps, "ended")["status"], "completed", "{steps:?}");
    assert_eq!(step(&steps, "denied"), &json!({"status": 401, "code": 20003}));
    let refused = step(&steps, "refused");
    assert_eq!((refused["status"].as_i64(), refused["code"].as_i64()), (Some(400), Some(21213)), "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().contains("not one of the account's numbers"), "{refused}");
    assert_eq!(step(&steps, "missing"), &json!({"status": 404, "code": 20404}));

    // Pages and filters, as the library's `list`/`page` read them.
    let (account_sid, token) = (account["account_sid"].as_str().unwrap_or_default(), account["auth_token"].as_str());
    let page = |query: &str| {
        let url = env.server.url(&format!("/2010-04-01/Accounts/{account_sid}/Calls.json?{query}"));
        let request = env.server.client.get(url).basic_auth(account_sid, token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mine = page("PageSize=1&Page=0&From=%2B14155550100").await;
    let sids: Vec<&str> = mine["calls"].as_array().into_iter().flatten().filter_map(|c| c["sid"].as_str()).collect();
    assert_eq!(sids, [sid.as_str()], "{mine}");
    assert_eq!(mine["next_page_uri"], Value::Null, "one call, one page: {mine}");
    let beyond = page("PageSize=1&Page=1&From=%2B14155550100").await;
    assert_eq!(beyond["calls"], json!([]), "{beyond}");
    let previous = beyond["previous_page_uri"].as_str().unwrap_or_default();
    assert!(previous.contains("Page=0") && previous.contains("From=%2B14155550100"), "{beyond}");
    assert_eq!(page("From=%2B19999999999").await["calls"], json!([]), "another caller ID's calls are not listed");

    let bob = bob.finish(Duration::from_secs(30)).await;
    assert!(bob.success, "SIPp answered and got the BYE: {}\n{}", bob.errors, bob.messages);
    // Status callbacks: the subscribed events only (no `ringing`), in order.
    let statuses = vbtest::eventually(Duration::from_secs(15), || async {
        let mine: Vec<String> = env
            .app
            .events()
            .into_iter()
            .filter(|e| e.path == "/status" && e.field("CallSid") == Some(sid.as_str()))
            .filter_map(|e| e.field("CallStatus").map(str::to_owned))
            .collect();
        if mine.last().map(String::as_str) == Some("completed") { Ok(mine) } else { Err(mine) }
    })
    .await;
    assert_eq!(statuses.as_deref().ok(), Some(&["initiated".to_owned(), "in-progress".into(), "completed".into()][..]));
}
