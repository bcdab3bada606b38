//! Calls the Voice API places, on a virtual clock: the party rung, answered, the NCCO run on
//! it, failover under one uuid, and what ends such a call.

use std::time::Duration;

use serde_json::json;

use super::harness::*;
use crate::call::{Control, Input, RecordUpdate};
use crate::events::Direction;
use crate::sip::Method;

const S: Duration = Duration::from_secs(1);

fn answers() -> Callee {
    Callee::Answers { ring: Duration::from_millis(100), answer: Duration::from_millis(300) }
}

fn to_sip() -> serde_json::Value {
    json!({"action": "connect", "from": "14155550100", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{CALLEE}")}]})
}

fn talk() -> serde_json::Value {
    json!([{"action": "talk", "text": "hello"}])
}

#[test]
fn an_inline_ncco_runs_on_the_answered_party_and_hangs_up_when_exhausted() {
    let mut h = CallHarness::originated(to_sip(), Some(talk()), json!([]), vec![answers()]).unwrap();
    h.media_plays = true;
    let uuid = h.call.uuid().to_owned();
    h.drive();
    // One leg, outbound, under the call's uuid, with Vonage's lifecycle.
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "answered", "completed"]);
    assert!(h.statuses(Direction::Inbound).is_empty());
    assert!(h.events.iter().all(|e| e.uuid == uuid));
    let done = h.events.last().unwrap();
    assert_eq!(done.disconnected_by.as_deref(), Some("platform"));
    // Played to the callee's endpoint after the answer, then BYE (the fake plays for 2 s).
    let play = h.media_log.iter().find_map(|c| match c {
        crate::media::Command::Play { endpoint_id, .. } => Some(endpoint_id.clone()),
        _ => None,
    });
    assert_eq!(play.as_deref(), Some("ep1"));
    let bye = h.requests_to(&callee_flow(), Method::Bye);
    assert_eq!(bye.len(), 1);
    assert!(bye[0].at >= 2 * S && bye[0].at < 3 * S, "BYE at {:?}", bye[0].at);
    // The record: started once (when placed), answered, finished once; answer_url not asked.
    let started = h.records.iter().filter(|r| matches!(r, RecordUpdate::Started { .. })).count();
    let finished = h.records.iter().filter(|r| matches!(r, RecordUpdate::Finished { .. })).count();
    assert_eq!((started, finished), (1, 1));
    assert!(h.answer_asked.is_empty());
    let invite = &h.requests_to(&callee_flow(), Method::Invite)[0].msg;
    assert!(invite.header("From").unwrap().starts_with("<sip:14155550100@"));
    assert_eq!(invite.header("Max-Forwards"), Some("70"));
}

#[test]
fn answer_url_is_asked_when_the_party_answers() {
    let mut h = CallHarness::originated(to_sip(), None, talk(), vec![answers()]).unwrap();
    h.media_plays = true;
    h.drive_until(5 * S);
    assert_eq!(h.answer_asked.len(), 1);
    let answered = h.events.iter().find(|e| e.status.as_str() == "answered").unwrap();
    assert!(h.answer_asked[0] >= Duration::from_millis(300), "asked at {:?}", h.answer_asked[0]);
    assert_eq!(answered.direction, Direction::Outbound);
    assert!(h.media_commands().contains(&"play"));
}

#[test]
fn the_party_hanging_up_ends_the_call_as_the_user() {
    let ncco = json!([{"action": "wait", "timeout": 60}]);
    let mut h = CallHarness::originated(to_sip(), Some(ncco), json!([]), vec![answers()]).unwrap();
    h.drive_until(5 * S);
    let bye = callee_in_dialog(&h, Method::Bye, 1);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: bye });
    h.drive();
    let done = h.events.last().unwrap();
    assert_eq!(done.status.as_str(), "completed");
    assert_eq!(done.disconnected_by.as_deref(), Some("user"));
    assert!(h.call.is_done());
    assert!(h.requests_to(&callee_flow(), Method::Bye).is_empty(), "no BYE back to who hung up");
}

#[test]
fn a_rest_hangup_while_ringing_cancels_the_party() {
    let mut h = CallHarness::originated(to_sip(), Some(talk()), json!([]), vec![Callee::RingsForever]).unwrap();
    h.drive_until(2 * S);
    let uuid = h.call.uuid().to_owned();
    h.schedule(Duration::ZERO, Input::Control(Control::Hangup { uuid }));
    h.drive();
    assert_eq!(h.requests_to(&callee_flow(), Method::Cancel).len(), 1);
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "cancelled"]);
}

#[test]
fn length_timer_hangs_up_the_answered_call() {
    let mut to = to_sip();
    to["limit"] = json!(30);
    let ncco = json!([{"action": "wait", "timeout": 600}]);
    let mut h = CallHarness::originated(to, Some(ncco), json!([]), vec![answers()]).unwrap();
    h.drive();
    let bye = h.requests_to(&callee_flow(), Method::Bye);
    assert_eq!(bye.len(), 1);
    assert!(bye[0].at >= 30 * S && bye[0].at < 31 * S, "BYE at {:?}", bye[0].at);
}

#[test]
fn a_phone_call_fails_over_between_gateways_under_one_uuid() {
    let to =
        json!({"action": "connect", "from": "14155550100", "endpoint": [{"type": "phone", "number": "15551230000"}]});
    let mut h = CallHarness::originated(to, Some(talk()), json!([]), vec![answers()]).unwrap();
    h.media_plays = true;
    let uuid = h.call.uuid().to_owned();
    h.drive();
    let first = h.sent.iter().find(|s| s.msg.method() == Some(&Method::Invite)).unwrap();
    assert!(first.msg.request_uri().unwrap().starts_with("sip:15551230000@192.0.2.2:5090"), "the silent gateway first");
    assert_eq!(h.requests_to(&callee_flow(), Method::Invite).len(), 1, "then the one that answers");
    // The silent gateway's failure is not the call's end: one lifecycle, one record.
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "answered", "completed"]);
    assert!(h.events.iter().all(|e| e.uuid == uuid));
    let finished = h.records.iter().filter(|r| matches!(r, RecordUpdate::Finished { .. })).count();
    assert_eq!(finished, 1);
}

#[test]
fn a_caller_id_the_account_does_not_own_is_refused_before_anything_is_sent() {
    let to =
        json!({"action": "connect", "from": "15550009999", "endpoint": [{"type": "phone", "number": "15551230000"}]});
    let refused = CallHarness::originated(to, Some(talk()), json!([]), vec![answers()]).err().unwrap();
    assert!(refused.reason.unwrap().contains("not one of the account's numbers"));
}

#[test]
fn an_unanswered_party_ends_the_call_with_its_status() {
    let mut h =
        CallHarness::originated(to_sip(), Some(talk()), json!([]), vec![Callee::Rejects { code: 486, after: S }])
            .unwrap();
    h.drive();
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "busy"]);
    assert!(h.call.is_done());
}

#[test]
fn a_transfer_moves_the_answered_party_to_a_new_ncco_without_releasing_it() {
    let ncco = json!([{"action": "wait", "timeout": 60}]);
    let mut h = CallHarness::originated(to_sip(), Some(ncco), json!([]), vec![answers()]).unwrap();
    h.drive_until(2 * S);
    let uuid = h.call.uuid().to_owned();
    let to =
        crate::call::TransferTo::Ncco(crate::ncco::Ncco::parse(&json!([{"action": "wait", "timeout": 3}])).unwrap());
    h.schedule(Duration::ZERO, Input::Control(Control::Transfer { uuid, to }));
    h.drive();
    let bye = h.requests_to(&callee_flow(), Method::Bye);
    assert_eq!(bye.len(), 1);
    assert!(bye[0].at >= 5 * S && bye[0].at < 6 * S, "the new NCCO ran on the party: BYE at {:?}", bye[0].at);
    assert!(h.posts.iter().any(|p| p.get("conversation_uuid_to").is_some()), "a transfer event");
}

fn to_websocket() -> serde_json::Value {
    json!({"action": "connect", "from": "14155550100", "endpoint": [{"type": "websocket",
        "uri": "ws://127.0.0.1:9/audio", "content-type": "audio/l16;rate=16000", "headers": {"app": "x"}}]})
}

fn ws_event(endpoint: &str, closed: Option<Option<&str>>) -> Input {
    let endpoint = endpoint.to_owned();
    Input::Media(match closed {
        None => crate::call::MediaEvent::WsConnected { endpoint },
        Some(reason) => crate::call::MediaEvent::WsClosed { endpoint, reason: reason.map(str::to_owned) },
    })
}

#[test]
fn a_websocket_party_is_answered_by_its_handshake_and_hung_up_by_its_server() {
    let ncco = json!([{"action": "talk", "text": "hello"}, {"action": "wait", "timeout": 60}]);
    let mut h = CallHarness::originated(to_websocket(), Some(ncco), json!([]), vec![]).unwrap();
    h.media_plays = true;
    let uuid = h.call.uuid().to_owned();
    h.schedule(Duration::from_millis(200), ws_event("ep1", None));
    h.schedule(10 * S, ws_event("ep1", Some(None)));
    h.drive();
    // The media process was asked for a WebSocket party, with the NCCO's content type and
    // headers, and the talk played on it once the handshake was done.
    let Some(crate::media::Command::CreateWebsocketEndpoint { call_uuid, target }) = h.media_log.first() else {
        panic!("no create_websocket_endpoint first: {:?}", h.media_commands())
    };
    assert_eq!((call_uuid.as_str(), target.uri.as_str()), (uuid.as_str(), "ws://127.0.0.1:9/audio"));
    assert_eq!((target.content_type.as_str(), target.headers["app"].as_str()), ("audio/l16;rate=16000", Some("x")));
    assert!(h.media_commands().contains(&"play"));
    assert!(h.sent.is_empty(), "no SIP at all: {:?}", h.sent.iter().map(|s| s.msg.method()).collect::<Vec<_>>());
    // One outbound leg under the call's uuid, to the socket, with Vonage's lifecycle.
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "answered", "disconnected", "completed"]);
    assert!(h.events.iter().all(|e| e.uuid == uuid && e.to == "ws://127.0.0.1:9/audio"));
    let done = h.events.last().unwrap();
    assert_eq!(done.disconnected_by.as_deref(), Some("user"));
    assert_eq!(done.duration.as_deref(), Some("9"), "answered at 0.2 s, closed at 10 s");
    assert!(h.media_commands().contains(&"destroy_endpoint"));
    let started =
        h.records.iter().filter(|r| matches!(r, RecordUpdate::Started { direction: Direction::Outbound, .. }));
    let finished = h.records.iter().filter(|r| matches!(r, RecordUpdate::Finished { answered: Some(_), .. }));
    assert_eq!((started.count(), finished.count()), (1, 1));
    assert!(h.call.is_done());
}

#[test]
fn a_websocket_that_never_connects_fails_the_call_with_the_reason() {
    let mut h = CallHarness::originated(to_websocket(), None, talk(), vec![]).unwrap();
    h.schedule(S, ws_event("ep1", Some(Some("connection refused"))));
    h.drive();
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "failed"]);
    assert_eq!(h.events.last().unwrap().reason.as_deref(), Some("connection refused"));
    assert!(h.answer_asked.is_empty(), "answer_url is asked only once the party answers");
    assert!(h.call.is_done());
}

#[test]
fn a_websocket_party_runs_answer_url_and_ends_at_the_length_timer() {
    let to = json!({"action": "connect", "from": "14155550100", "limit": 30, "endpoint": [{"type": "websocket",
        "uri": "wss://example.com/a", "content-type": "audio/l16;rate=8000"}]});
    let ncco = json!([{"action": "wait", "timeout": 3600}]);
    let mut h = CallHarness::originated(to, None, ncco, vec![]).unwrap();
    h.schedule(S, ws_event("ep1", None));
    h.drive();
    assert_eq!(h.answer_asked, [S]);
    let done = h.events.last().unwrap();
    assert_eq!((done.status.as_str(), done.disconnected_by.as_deref()), ("completed", Some("platform")));
    assert_eq!(done.duration.as_deref(), Some("30"));
}

#[test]
fn controls_wait_for_the_answer_except_hangup_and_end_with_the_call() {
    let ncco = json!([{"action": "wait", "timeout": 60}]);
    let mut h = CallHarness::originated(to_sip(), Some(ncco), json!([]), vec![answers()]).unwrap();
    let uuid = h.call.uuid().to_owned();
    let dtmf = Control::Dtmf { uuid: uuid.clone(), digits: "1".into() };
    let hangup = Control::Hangup { uuid: uuid.clone() };
    h.drive_until(Duration::from_millis(150));
    assert_eq!(h.call.check_control(&dtmf), Err(crate::call::ControlRefused::NotAnswered(uuid.clone())));
    assert_eq!(h.call.check_control(&hangup), Ok(()));
    h.drive_until(S);
    assert_eq!(h.call.check_control(&dtmf), Ok(()));
    h.schedule(Duration::ZERO, Input::Control(hangup.clone()));
    h.drive_until(2 * S);
    assert_eq!(h.call.check_control(&hangup), Err(crate::call::ControlRefused::Ended(uuid)));
}
