//! TwiML documents run by the call core, on a virtual clock: `<Dial action>` reports the
//! dial's outcome Twilio's way, `<Gather>` with no digit goes on to the next verb, and
//! `<Hangup>`/`<Reject>` refuse an unanswered caller with their codes.

use std::time::Duration;

use serde_json::json;

use super::harness::*;
use crate::call::Route;
use crate::sip::Method;

const S: Duration = Duration::from_secs(1);

fn run(xml: &str, callees: Vec<Callee>) -> CallHarness {
    let ncco = crate::twiml::parse(xml).unwrap();
    let route = Route::Program { ncco, application_id: Some("twiml-app".into()) };
    let mut h = CallHarness::with(json!([]), callees, invite("twiml@caller", ""), route);
    h.drive_until(10 * S);
    h
}

/// `xml` run with a callee that answers, then hangs up after ten seconds.
fn answered_dial(xml: &str) -> CallHarness {
    let ncco = crate::twiml::parse(xml).unwrap();
    let route = Route::Program { ncco, application_id: Some("twiml-app".into()) };
    let callee = Callee::Answers { ring: Duration::from_millis(100), answer: Duration::from_millis(300) };
    let mut h = CallHarness::with(json!([]), vec![callee], invite("dialled@caller", ""), route);
    h.media_plays = true;
    h.drive_until(10 * S);
    let bye = callee_in_dialog(&h, Method::Bye, 1);
    h.schedule(Duration::ZERO, crate::call::Input::Sip { flow: callee_flow(), msg: bye });
    h.drive_until(15 * S);
    h
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn dial_action_gets_the_outcome_and_the_verbs_after_the_dial_never_run() {
    let xml = format!(
        r#"<Response><Dial action="https://app.example/after"><Sip>sip:bob@{CALLEE}</Sip></Dial>
           <Say>Never said.</Say></Response>"#
    );
    let h = run(&xml, vec![Callee::Rejects { code: 486, after: Duration::from_millis(200) }]);
    let invite = h.requests_to(&callee_flow(), Method::Invite).first().map(|s| s.msg.clone()).expect("INVITE");
    assert_eq!(h.forms.len(), 1, "{:?}", h.forms);
    let (url, params) = &h.forms[0];
    assert_eq!(url, "https://app.example/after");
    assert_eq!(field(params, "DialCallStatus"), Some("busy"));
    assert_eq!(field(params, "DialSipResponseCode"), Some("486"));
    assert_eq!(field(params, "DialSipCallId"), Some(invite.call_id()));
    assert_eq!(field(params, "CallStatus"), Some("ringing"), "the caller was never answered");
    assert!(!h.media_commands().contains(&"play"), "the <Say> after the <Dial> did not run");
    assert_eq!(h.caller_codes().last(), Some(&486), "the action answered nothing: the call ends as the dial did");
}

#[test]
fn gather_without_digits_goes_on_with_the_next_verb() {
    let h = run(
        r#"<Response><Gather action="https://app.example/g" timeout="1"><Say>Code?</Say></Gather>
           <Reject reason="busy"/></Response>"#,
        vec![],
    );
    assert!(h.forms.is_empty(), "no digit, no request: {:?}", h.forms);
    assert!(
        h.statuses(crate::events::Direction::Inbound).contains(&"completed"),
        "answered by the prompt, then hung up"
    );
}

#[test]
fn hangup_and_reject_refuse_an_unanswered_caller() {
    assert_eq!(run("<Response><Hangup/></Response>", vec![]).caller_codes().last(), Some(&603));
    assert_eq!(run(r#"<Response><Reject reason="busy"/></Response>"#, vec![]).caller_codes().last(), Some(&486));
    assert_eq!(run("<Response><Reject/></Response>", vec![]).caller_codes().last(), Some(&404));
}

#[test]
fn a_sip_session_timer_is_offered_and_refreshed_when_the_callee_names_us() {
    let xml = format!(r#"<Response><Dial><Sip sessionTimeout="120">sip:bob@{CALLEE}</Sip></Dial></Response>"#);
    let ncco = crate::twiml::parse(&xml).unwrap();
    let route = Route::Program { ncco, application_id: Some("twiml-app".into()) };
    let mut h =
        CallHarness::with(json!([]), vec![Callee::AnswersWithTimer { se: 120 }], invite("timer@caller", ""), route);
    h.drive_until(50 * S);
    let invite = h.requests_to(&callee_flow(), Method::Invite).first().map(|s| s.msg.clone()).expect("INVITE");
    assert_eq!(invite.header("Session-Expires"), Some("120"));
    assert!(invite.header("Supported").is_some_and(|s| s.contains("timer")), "{invite:?}");
    assert!(h.requests_to(&callee_flow(), Method::Update).is_empty(), "not before half the interval");
    h.drive_until(65 * S);
    let updates = h.requests_to(&callee_flow(), Method::Update);
    let first = updates.first().expect("a refresh at half the interval");
    assert!((60 * S..62 * S).contains(&first.at), "{:?}", first.at);
    assert_eq!(first.msg.header("Session-Expires"), Some("120;refresher=uac"));
}

#[test]
fn a_sip_nouns_status_callback_gets_its_legs_chosen_events_and_the_invite_names_the_call() {
    let xml = format!(
        r#"<Response><Dial><Sip statusCallback="https://app.example/leg" statusCallbackEvent="ringing answered completed"
           >sip:bob@{CALLEE}</Sip></Dial></Response>"#
    );
    let h = answered_dial(&xml);
    let invite = h.requests_to(&callee_flow(), Method::Invite).first().map(|s| s.msg.clone()).expect("INVITE");
    let caller_uuid = h.events.first().map(|e| e.uuid.clone()).expect("the caller's events");
    let caller_sid = crate::twiml::sid::of(crate::twiml::sid::CALL, &caller_uuid);
    assert_eq!(invite.header("X-Twilio-CallSid"), Some(caller_sid.as_str()));
    assert_eq!(invite.header("X-Twilio-AccountSid"), Some("AC0123456789abcdef0123456789abcdef"));
    assert_eq!(invite.header("X-Twilio-ApiVersion"), Some("2010-04-01"));
    let statuses: Vec<_> = h.leg_events.iter().map(|(_, e)| e.status.as_str()).collect();
    assert_eq!(statuses, ["started", "ringing", "answered", "completed"], "every event of the leg, none to event_url");
    let (hook, _) = &h.leg_events[0];
    assert_eq!(hook.webhook.url.as_str(), "https://app.example/leg");
    assert_eq!(
        hook.events.as_deref(),
        Some(&["ringing".to_owned(), "answered".to_owned(), "completed".to_owned()][..])
    );
    assert_eq!(hook.parent.as_deref(), Some(caller_uuid.as_str()));
    assert!(
        h.events.iter().all(|e| e.direction == crate::events::Direction::Inbound),
        "the callee's events went to its own callback only"
    );
}

#[test]
fn a_recorded_dial_tells_its_action_and_status_callback_the_recording_once_written() {
    let xml = format!(
        r#"<Response><Dial action="https://app.example/after" record="record-from-answer-dual"
           recordingStatusCallback="https://app.example/rec"><Sip>sip:bob@{CALLEE}</Sip></Dial></Response>"#
    );
    let h = answered_dial(&xml);
    let (split, record_id) = h
        .media_log
        .iter()
        .find_map(|c| match c {
            crate::media::Command::RecordStart { split, record_id, .. } => Some((*split, record_id.clone())),
            _ => None,
        })
        .expect("the answered dial is recorded");
    assert!(split, "-dual: a channel per party");
    let stopped = |c: &crate::media::Command| matches!(c, crate::media::Command::RecordStop { record_id: r, .. } if *r == record_id);
    assert!(
        h.media_log.iter().any(stopped),
        "the recording stops with the dial: {:?} {:?}",
        h.media_commands(),
        h.forms
    );
    let form = |url: &str| h.forms.iter().find(|(u, _)| u == url).map(|(_, p)| p.clone());
    let action = form("https://app.example/after").expect("the dial action");
    assert_eq!(field(&action, "DialCallStatus"), Some("completed"));
    let sid = crate::twiml::sid::of(crate::twiml::sid::RECORDING, &record_id);
    assert_eq!(field(&action, "RecordingSid"), Some(sid.as_str()));
    assert_eq!(field(&action, "RecordingDuration"), Some("1"));
    assert!(field(&action, "RecordingUrl").is_some_and(|u| u.ends_with(&sid)), "{action:?}");
    let status = form("https://app.example/rec").expect("the recording status callback");
    assert_eq!(field(&status, "RecordingStatus"), Some("completed"));
    assert_eq!(field(&status, "RecordingChannels"), Some("2"));
    assert_eq!(field(&status, "RecordingSource"), Some("DialVerb"));
    assert!(h.posts.is_empty(), "no Vonage record event for a TwiML recording: {:?}", h.posts);
}

#[test]
fn a_dial_time_limit_hangs_up_the_callee_and_the_document_goes_on() {
    let xml =
        format!(r#"<Response><Dial timeLimit="5"><Sip>sip:bob@{CALLEE}</Sip></Dial><Say>Still here.</Say></Response>"#);
    let ncco = crate::twiml::parse(&xml).unwrap();
    let route = Route::Program { ncco, application_id: Some("twiml-app".into()) };
    let callee = Callee::Answers { ring: Duration::from_millis(100), answer: Duration::from_millis(300) };
    let mut h = CallHarness::with(json!([]), vec![callee], invite("limited@caller", ""), route);
    h.media_plays = true;
    h.drive_until(7 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "the callee is hung up at the limit");
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "the caller stays");
    assert!(h.media_commands().contains(&"play"), "the <Say> after the <Dial> runs");
}

#[test]
fn answer_on_bridge_false_answers_the_caller_before_the_dial_rings() {
    let xml = format!(
        r#"<Response><Dial answerOnBridge="false" action="https://app.example/after"><Sip>sip:bob@{CALLEE}</Sip></Dial></Response>"#
    );
    let h = run(&xml, vec![Callee::Rejects { code: 486, after: Duration::from_millis(200) }]);
    assert_eq!(h.caller_codes().first(), Some(&200), "answered before the dial: {:?}", h.caller_codes());
    let (_, params) = h.forms.first().expect("the dial action");
    assert_eq!(field(params, "DialCallStatus"), Some("busy"));
    assert_eq!(field(params, "CallStatus"), Some("in-progress"), "the caller was answered");
}

#[test]
fn a_callee_that_keeps_the_refresher_must_refresh_or_the_session_ends() {
    let xml = format!(r#"<Response><Dial><Sip sessionTimeout="120">sip:bob@{CALLEE}</Sip></Dial></Response>"#);
    let start = |xml: &str| {
        let ncco = crate::twiml::parse(xml).unwrap();
        let route = Route::Program { ncco, application_id: Some("twiml-app".into()) };
        let callee = Callee::AnswersRefreshingItself { se: 120 };
        CallHarness::with(json!([]), vec![callee], invite("policed@caller", ""), route)
    };
    // It never refreshes: once the interval is over, both legs get BYE (RFC 4028 §10).
    let mut h = start(&xml);
    h.drive_until(100 * S);
    assert!(h.requests_to(&callee_flow(), Method::Update).is_empty(), "the callee refreshes, not us");
    assert!(h.requests_to(&callee_flow(), Method::Bye).is_empty(), "not before the interval");
    h.drive_until(125 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "expired: the callee gets BYE");
    assert_eq!(h.requests_to(&caller_flow(), Method::Bye).len(), 1, "and the caller");
    // It refreshes at 60 s with an UPDATE: the session lives past 120 s.
    let mut h = start(&xml);
    h.drive_until(60 * S);
    let mut update = callee_in_dialog(&h, Method::Update, 2);
    update.push_header("Session-Expires", "120;refresher=uas");
    h.schedule(Duration::ZERO, crate::call::Input::Sip { flow: callee_flow(), msg: update });
    h.drive_until(150 * S);
    assert!(h.requests_to(&callee_flow(), Method::Bye).is_empty(), "refreshed at 60 s: alive at 150 s");
    h.drive_until(185 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "no second refresh: over at 180 s");
}
