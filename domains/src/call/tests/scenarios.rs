//! The call core's behaviour, on a virtual clock: the end-to-end scenarios of
//! `tests/tests/sip_calls.rs` plus what real time makes impractical.

use std::time::Duration;

use serde_json::json;

use super::harness::*;
use crate::call::timers::TimerKey;
use crate::call::{Input, Key, MediaEvent, TransferTo};
use crate::events::{CallStatus, Direction};
use crate::ncco::Ncco;
use crate::sip::Method;
use crate::sip::timers::{T1, TIMEOUT_64_T1};

const S: Duration = Duration::from_secs(1);

fn connect_sip(extra: serde_json::Value) -> serde_json::Value {
    let mut connect = json!({"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{CALLEE}")}]});
    if let (Some(c), Some(e)) = (connect.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!([connect])
}

fn answers() -> Callee {
    Callee::Answers { ring: Duration::from_millis(100), answer: Duration::from_millis(300) }
}

#[test]
fn bridged_call_reports_both_legs_in_order_and_ends_on_the_callee_bye() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(10 * S);
    // Callee hangs up after 10 s.
    let bye = callee_in_dialog(&h, Method::Bye, 1);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: bye });
    h.drive();
    assert_eq!(h.statuses(Direction::Inbound), ["started", "ringing", "answered", "completed"]);
    assert_eq!(h.statuses(Direction::Outbound), ["started", "ringing", "answered", "completed"]);
    let done = h.events.iter().find(|e| e.direction == Direction::Inbound && e.status.as_str() == "completed").unwrap();
    assert_eq!(done.disconnected_by.as_deref(), Some("user"));
    assert_eq!(done.duration.as_deref(), Some("9"));
    // The caller heard 180 then 200, and got the BYE; the callee got INVITE, ACK and a 200 to its BYE.
    assert_eq!(h.caller_codes().first(), Some(&180));
    assert!(h.caller_codes().contains(&200));
    assert_eq!(h.requests_to(&caller_flow(), Method::Bye).len(), 1);
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 1);
    let invite = &h.requests_to(&callee_flow(), Method::Invite)[0].msg;
    assert_eq!(invite.header("Max-Forwards"), Some("69"), "one hop fewer than the caller's INVITE");
    // Media: both endpoints, the callee's answer, the bridge, both released.
    assert_eq!(
        h.media_commands(),
        ["create_endpoint", "create_endpoint", "update_endpoint", "bridge", "destroy_endpoint", "destroy_endpoint"]
    );
    // Records: two legs started, answered and finished.
    let finished = h.records.iter().filter(|r| matches!(r, crate::call::RecordUpdate::Finished { .. })).count();
    assert_eq!(finished, 2);
    assert!(h.unlistened.contains(&Key::CallId("a-call@caller".into())));
    assert!(h.dialled.iter().all(|d| *d < Duration::from_millis(10)), "added delay: {:?}", h.dialled);
}

#[test]
fn connect_limit_7200_sends_bye_to_both_legs() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive();
    let byes_a = h.requests_to(&caller_flow(), Method::Bye);
    let byes_b = h.requests_to(&callee_flow(), Method::Bye);
    assert_eq!((byes_a.len(), byes_b.len()), (1, 1));
    let at = byes_a[0].at;
    assert!(at >= Duration::from_secs(7200) && at < Duration::from_secs(7201), "BYE at {at:?}");
    let done = h.events.iter().find(|e| e.direction == Direction::Inbound && e.status.as_str() == "completed").unwrap();
    assert_eq!(done.disconnected_by.as_deref(), Some("platform"));
}

#[test]
fn ringing_timeout_cancels_callee_and_reports_timeout() {
    let mut h = CallHarness::new(connect_sip(json!({"timeout": 20})), Callee::RingsForever);
    h.drive();
    let cancel = h.requests_to(&callee_flow(), Method::Cancel);
    assert_eq!(cancel.len(), 1);
    assert!(cancel[0].at >= 20 * S && cancel[0].at < 21 * S);
    // The 487 is ACKed; the caller hears 480 and the legs report timeout / unanswered.
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 1);
    assert!(h.caller_codes().contains(&480), "{:?}", h.caller_codes());
    assert_eq!(h.statuses(Direction::Outbound).last(), Some(&"timeout"));
    assert_eq!(h.statuses(Direction::Inbound).last(), Some(&"timeout"));
}

#[test]
fn cancel_during_answer_url_fetch_gets_487_and_frees_media() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.answer_delay = 5 * S;
    let cancel = {
        let mut c = invite("a-call@caller", "");
        c.start = crate::sip::StartLine::Request { method: Method::Cancel, uri: c.request_uri().unwrap().to_owned() };
        c.set_header("CSeq", "1 CANCEL");
        c.body.clear();
        c.remove_header("Content-Type");
        c
    };
    h.caller_sends(S, cancel);
    h.drive();
    let codes = h.caller_codes();
    assert!(codes.contains(&200) && codes.contains(&487), "{codes:?}");
    assert!(h.to_callee().is_empty(), "no outbound leg after the caller left");
    assert_eq!(h.media_commands(), ["create_endpoint", "destroy_endpoint"]);
    assert_eq!(h.statuses(Direction::Inbound), ["started", "ringing", "cancelled"]);
}

#[test]
fn late_200_after_cancel_is_acked_and_byed() {
    let mut h = CallHarness::new(connect_sip(json!({"timeout": 10})), Callee::AnswersTheCancel);
    h.drive();
    assert_eq!(h.requests_to(&callee_flow(), Method::Cancel).len(), 1);
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 1, "the late 2xx is ACKed");
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "and hung up at once");
    assert!(h.caller_codes().contains(&480));
}

#[test]
fn retransmitted_200_gets_the_same_ack() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(2 * S);
    let invite = h.requests_to(&callee_flow(), Method::Invite)[0].msg.clone();
    let again = callee_response(&invite, 200, "callee1", true);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: again });
    h.drive_until(3 * S);
    let acks = h.requests_to(&callee_flow(), Method::Ack);
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].msg.to_bytes(), acks[1].msg.to_bytes());
}

#[test]
fn failure_response_waits_64_t1_on_udp() {
    let mut h = CallHarness::new(connect_sip(json!({})), Callee::Rejects { code: 486, after: S });
    h.caller_acks = false;
    h.drive();
    let busy: Vec<Duration> = h.to_caller().iter().filter(|s| s.msg.status() == Some(486)).map(|s| s.at).collect();
    assert!(busy.len() >= 7, "Timer G resends: {busy:?}");
    let first = busy[0];
    assert_eq!(busy[1] - first, T1);
    assert_eq!(busy[2] - first, T1 * 3);
    // Timer H: the transaction ends 64·T1 after the first 486.
    assert!(h.elapsed() >= first + TIMEOUT_64_T1 && h.elapsed() < first + TIMEOUT_64_T1 + S);
    assert_eq!(h.statuses(Direction::Outbound).last(), Some(&"busy"));
    assert_eq!(h.statuses(Direction::Inbound).last(), Some(&"busy"));
}

#[test]
fn callee_silent_fires_timer_b_after_seven_invites() {
    let mut h = CallHarness::new(connect_sip(json!({"timeout": 60})), Callee::Silent);
    h.drive();
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 7, "T1, 2T1 … 32T1 (Timer A) within Timer B");
    assert!(h.caller_codes().contains(&408), "{:?}", h.caller_codes());
}

#[test]
fn second_hold_raises_origin_version_again() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(2 * S);
    for (i, dir) in ["sendonly", "sendrecv", "sendonly"].into_iter().enumerate() {
        let cseq = 2 + i as u32;
        let reinvite = caller_in_dialog(&h, Method::Invite, cseq, Some(sdp(2 + cseq, 40000, dir)));
        h.caller_sends(Duration::ZERO, reinvite);
        h.drive_until(h.elapsed() + S);
    }
    let reinvites: Vec<String> = h
        .requests_to(&callee_flow(), Method::Invite)
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(&s.msg.body).into_owned())
        .collect();
    assert_eq!(reinvites.len(), 3, "hold, resume, hold reflected to the callee");
    let versions: Vec<u64> = reinvites
        .iter()
        .map(|b| b.lines().find(|l| l.starts_with("o=")).unwrap().split(' ').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[1] > w[0]), "o= versions {versions:?}");
    assert!(
        reinvites[0].contains("a=sendonly")
            && reinvites[1].contains("a=sendrecv")
            && reinvites[2].contains("a=sendonly")
    );
    // Each re-INVITE of the caller got a 200 with SDP; each of ours got an ACK.
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 4);
}

#[test]
fn unsupported_talk_answers_then_ends_naming_the_action() {
    let mut h = CallHarness::new(json!([{"action": "talk", "text": "hello"}]), answers());
    h.drive();
    assert!(h.caller_codes().contains(&200));
    assert_eq!(h.requests_to(&caller_flow(), Method::Bye).len(), 1);
    let done = h.events.iter().find(|e| e.status.as_str() == "completed").unwrap();
    assert!(done.reason.as_deref().unwrap().contains("talk"), "{done:?}");
}

#[test]
fn talk_blocks_until_played_then_the_ncco_goes_on() {
    let mut h =
        CallHarness::new(json!([{"action": "talk", "text": "hello"}, {"action": "wait", "timeout": 3}]), answers());
    h.media_plays = true;
    h.drive();
    // Played for 2 s (the fake's playback), waited 3 s, then hung up: the NCCO was exhausted.
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 5 * S && bye < 6 * S, "BYE at {bye:?}");
    assert!(h.media_commands().contains(&"play"));
}

#[test]
fn input_stops_at_max_digits_or_timeout() {
    let ncco = json!([{"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 2, "timeOut": 5}, "eventUrl": ["http://app/input"]}]);
    let mut h = CallHarness::new(ncco.clone(), answers());
    h.drive_until(S);
    for (i, d) in ['1', '2', '3'].into_iter().enumerate() {
        h.schedule(S * i as u32, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: d }));
    }
    h.drive();
    assert_eq!(h.posts[0]["dtmf"], json!({"digits": "12", "timed_out": false}));

    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(S);
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '7' }));
    h.drive();
    assert_eq!(h.posts[0]["dtmf"], json!({"digits": "7", "timed_out": true}));
    let posted = h.to_caller().iter().find(|s| s.msg.method() == Some(&Method::Bye)).unwrap().at;
    assert!(posted >= 5 * S && posted < 7 * S);
}

#[test]
fn input_result_ncco_replaces_the_rest() {
    let ncco = json!([
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 1}},
        {"action": "wait", "timeout": 100}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.post_replies.push_back(Some(json!([{"action": "wait", "timeout": 1}])));
    h.drive_until(S);
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '5' }));
    h.drive();
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye < 5 * S, "the 100 s wait was replaced: BYE at {bye:?}");
}

#[test]
fn notify_posts_its_payload_and_goes_on() {
    let ncco = json!([
        {"action": "notify", "payload": {"step": 1}, "eventUrl": ["http://app/notify"]},
        {"action": "wait", "timeout": 2}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive();
    assert_eq!(h.posts, [json!({"step": 1})]);
    assert_eq!(h.requests_to(&caller_flow(), Method::Bye).len(), 1);
}

#[test]
fn ncco_without_answering_action_is_refused() {
    let mut h = CallHarness::new(json!([{"action": "notify", "payload": {}, "eventUrl": ["http://app/n"]}]), answers());
    h.drive();
    assert!(h.caller_codes().contains(&480));
    assert_eq!(h.statuses(Direction::Inbound).last(), Some(&"failed"));
}

#[test]
fn busy_callee_then_the_ncco_goes_on() {
    let ncco = json!([
        {"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{CALLEE}")}]},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, Callee::Rejects { code: 486, after: S });
    h.drive();
    // The wait answered the caller after the failed connect, then the NCCO ended.
    assert!(h.caller_codes().contains(&200));
    assert_eq!(h.statuses(Direction::Outbound).last(), Some(&"busy"));
}

#[test]
fn forwarded_number_fails_over_on_5xx_and_the_second_answers() {
    let targets =
        crate::forward::parse_targets(&format!("sip:one@{CALLEE};timeout=3000, sip:two@{CALLEE};timeout=3000"))
            .unwrap();
    let route = crate::call::Route::Forward { targets };
    let mut h = CallHarness::with(
        json!([]),
        vec![Callee::Rejects { code: 503, after: Duration::from_millis(10) }, answers()],
        invite("fwd@caller", ""),
        route,
    );
    h.drive_until(5 * S);
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 2);
    assert!(invites[1].msg.request_uri().unwrap().starts_with("sip:two@"));
    assert!(h.caller_codes().contains(&200));
    assert!(h.events.is_empty(), "forwarded numbers have no application to tell");
}

#[test]
fn a_forwarded_aors_contacts_ring_together_and_the_next_target_waits_for_both() {
    let mut targets =
        crate::forward::parse_targets(&format!("sip:desk@{CALLEE}, sip:soft@{CALLEE}, sip:voicemail@{CALLEE}"))
            .unwrap();
    // The first two are one AOR's contacts (`forward::to_registered_contacts` forks them).
    targets[0].fork = Some(0);
    targets[1].fork = Some(0);
    let route = crate::call::Route::Forward { targets };
    let busy = Callee::Rejects { code: 503, after: Duration::from_millis(500) };
    let mut h = CallHarness::with(
        json!([]),
        vec![busy, Callee::Rejects { code: 503, after: Duration::from_secs(1) }, answers()],
        invite("fork@caller", ""),
        route,
    );
    h.drive_until(5 * S);
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 3, "{invites:?}");
    assert!(invites[1].at < Duration::from_millis(500), "the AOR's second contact rings with the first");
    assert!(invites[1].msg.request_uri().unwrap().starts_with("sip:soft@"));
    assert!(invites[2].at >= S, "the next target only once both contacts failed: {:?}", invites[2].at);
    assert!(invites[2].msg.request_uri().unwrap().starts_with("sip:voicemail@"));
    assert!(h.caller_codes().contains(&200));
}

#[test]
fn caller_bye_while_bridged_hangs_up_the_callee() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(3 * S);
    let bye = caller_in_dialog(&h, Method::Bye, 2, None);
    h.caller_sends(Duration::ZERO, bye);
    h.drive();
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1);
    assert!(h.to_caller().iter().any(|s| s.msg.status() == Some(200) && s.msg.cseq().unwrap().1 == Method::Bye));
    let b_done =
        h.events.iter().find(|e| e.direction == Direction::Outbound && e.status.as_str() == "completed").unwrap();
    assert_eq!(b_done.disconnected_by.as_deref(), Some("platform"));
    let a_done =
        h.events.iter().find(|e| e.direction == Direction::Inbound && e.status.as_str() == "completed").unwrap();
    assert_eq!(a_done.disconnected_by.as_deref(), Some("user"));
}

#[test]
fn rtp_timeout_and_media_loss_end_the_call() {
    for event in [MediaEvent::RtpTimeout { endpoint: "ep2".into() }, MediaEvent::ProcessLost] {
        let mut h = CallHarness::new(connect_sip(json!({})), answers());
        h.drive_until(2 * S);
        h.schedule(Duration::ZERO, Input::Media(event));
        h.drive();
        assert_eq!(h.requests_to(&caller_flow(), Method::Bye).len(), 1);
        assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1);
    }
}

#[test]
fn session_interval_below_min_se_gets_422() {
    let mut h = CallHarness::with(
        connect_sip(json!({})),
        vec![answers()],
        invite("st@caller", "Session-Expires: 30\r\nSupported: timer\r\n"),
        route(),
    );
    h.drive();
    let resp = h.to_caller().into_iter().find(|s| s.msg.status() == Some(422)).unwrap();
    assert_eq!(resp.msg.header("Min-SE"), Some("90"));
    assert!(h.media_log.is_empty(), "nothing allocated");
}

#[test]
fn session_timer_is_honoured_in_the_200() {
    let mut h = CallHarness::with(
        connect_sip(json!({})),
        vec![answers()],
        invite("st2@caller", "Session-Expires: 1800\r\nSupported: timer\r\n"),
        route(),
    );
    h.drive_until(2 * S);
    let ok = h.to_caller().into_iter().find(|s| s.msg.status() == Some(200)).unwrap();
    assert_eq!(ok.msg.header("Session-Expires"), Some("1800;refresher=uac"));
    assert_eq!(ok.msg.header("Require"), Some("timer"));
    // The caller's refresh (an UPDATE without SDP) is answered.
    let update = caller_in_dialog(&h, Method::Update, 2, None);
    h.caller_sends(Duration::ZERO, update);
    h.drive_until(3 * S);
    assert!(h.to_caller().iter().any(|s| s.msg.status() == Some(200) && s.msg.cseq().unwrap().1 == Method::Update));
}

#[test]
fn info_dtmf_is_relayed_to_the_bridged_leg() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(2 * S);
    let mut info = caller_in_dialog(&h, Method::Info, 2, None);
    info.push_header("Content-Type", "application/dtmf-relay");
    info.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
    h.caller_sends(Duration::ZERO, info);
    h.drive_until(3 * S);
    assert!(h.media_log.iter().any(|c| matches!(c, crate::media::Command::SendDtmf { endpoint_id, digits } if endpoint_id == "ep2" && digits == "5")));
}

#[test]
fn retransmitted_invite_gets_the_last_provisional_and_2xx_is_resent_until_ack() {
    let mut h =
        CallHarness::new(connect_sip(json!({})), Callee::Answers { ring: Duration::from_millis(100), answer: 3 * S });
    h.caller_acks = false;
    h.drive_until(S);
    h.caller_sends(Duration::ZERO, invite("a-call@caller", ""));
    h.drive_until(2 * S);
    assert_eq!(h.caller_codes().iter().filter(|c| **c == 180).count(), 2);
    h.drive_until(10 * S);
    let oks = h.caller_codes().iter().filter(|c| **c == 200).count();
    assert!(oks >= 4, "2xx resent until the ACK: {oks}");
    assert!(h.call.cx.timers.is_set(TimerKey::Server(crate::call::LegRef::A)));
}

#[test]
fn random_input_sequences_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..300 {
        let mut h = CallHarness::new(connect_sip(json!({})), answers());
        h.media_plays = round % 2 == 0;
        for _ in 0..40 {
            let after = Duration::from_millis(rng.gen_range(0..3000));
            let input = match rng.gen_range(0..8) {
                0 => Input::Sip { flow: caller_flow(), msg: invite("a-call@caller", "") },
                1 => {
                    let mut m = invite("a-call@caller", "");
                    let method = ["CANCEL", "BYE", "ACK", "INFO", "UPDATE", "PRACK", "FOO"][rng.gen_range(0..7)];
                    m.start = crate::sip::StartLine::Request { method: Method::parse(method), uri: "sip:x@y".into() };
                    m.set_header("CSeq", format!("{} {method}", rng.gen_range(0..4)));
                    Input::Sip { flow: caller_flow(), msg: m }
                }
                2 => {
                    let inv = invite("a-call@caller", "");
                    let code = [100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603][rng.gen_range(0..11)];
                    Input::Sip { flow: callee_flow(), msg: callee_response(&inv, code, "x", rng.gen_bool(0.5)) }
                }
                3 => Input::MediaReply {
                    op: crate::call::OpId(rng.gen_range(0..12)),
                    result: Err(crate::call::MediaFailure { code: None, message: "x".into() }),
                },
                4 => Input::Media(MediaEvent::ProcessLost),
                5 => Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '1' }),
                6 => Input::Document { op: crate::call::OpId(rng.gen_range(0..12)), result: Err("x".into()) },
                _ => Input::Resolved { op: crate::call::OpId(rng.gen_range(0..12)), result: Err("x".into()) },
            };
            h.schedule(after, input);
        }
        h.drive();
        // Whatever came in, the call ends: no leg is left waiting with no timer to end it.
        assert!(h.call.is_done(), "round {round}: the call never ended");
    }
}

fn phone(extra: serde_json::Value) -> serde_json::Value {
    let mut connect = json!({"action": "connect", "endpoint": [{"type": "phone", "number": "15551230000"}]});
    if let (Some(c), Some(e)) = (connect.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!([connect])
}

#[test]
fn phone_goes_through_the_longest_prefix_trunk_and_fails_over_from_a_silent_gateway() {
    // The first gateway (priority 0, port 5090) is not the fake callee: it never answers.
    let mut h = CallHarness::new(phone(json!({})), answers());
    h.drive_until(10 * S);
    let invites: Vec<String> = h
        .sent
        .iter()
        .filter(|s| s.msg.method() == Some(&Method::Invite))
        .map(|s| s.msg.request_uri().unwrap().to_owned())
        .collect();
    assert!(invites.first().unwrap().starts_with("sip:15551230000@192.0.2.2:5090"), "{invites:?}");
    let second = h.requests_to(&callee_flow(), Method::Invite);
    assert!(!second.is_empty(), "failed over to the second gateway: {invites:?}");
    assert!(second[0].at >= crate::call::connect::GATEWAY_NO_RESPONSE);
    let from = second[0].msg.header("From").unwrap();
    assert!(from.starts_with("<sip:14155550100@"), "caller ID is the account's number: {from}");
    assert!(h.caller_codes().contains(&200));
}

#[test]
fn unknown_caller_id_never_reaches_the_trunk() {
    let mut h = CallHarness::new(phone(json!({"from": "15550009999"})), answers());
    h.drive();
    assert!(h.sent.iter().all(|s| s.msg.method() != Some(&Method::Invite)), "no INVITE to any trunk");
    let failed = h.events.iter().find(|e| e.status.as_str() == "failed").unwrap();
    assert!(failed.reason.as_deref().unwrap().contains("not one of the account's numbers"));
}

#[test]
fn number_no_trunk_serves_is_refused() {
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "phone", "number": "447700900123"}]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive();
    assert!(h.sent.iter().all(|s| s.msg.method() != Some(&Method::Invite)));
    assert!(h.caller_codes().contains(&480));
}

#[test]
fn vbc_extension_goes_to_the_pbx_trunk() {
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "vbc", "extension": "1234"}]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(3 * S);
    let invite = &h.requests_to(&callee_flow(), Method::Invite)[0].msg;
    assert_eq!(invite.request_uri(), Some("sip:1234@192.0.2.2:5080"));
}

#[test]
fn proxy_challenge_is_answered_once_with_the_trunk_credentials() {
    let ncco =
        json!([{"action": "connect", "endpoint": [{"type": "sip", "domain": "carrier", "user": "15551230000"}]}]);
    let mut h = CallHarness::new(ncco, Callee::Silent);
    h.drive_until(Duration::from_millis(100));
    // Answer the INVITE to the first gateway with a 407 by hand.
    let first = h.sent.iter().find(|s| s.msg.method() == Some(&Method::Invite)).unwrap().msg.clone();
    let mut challenge = first.response(407, Some("carrier"));
    challenge.push_header("Proxy-Authenticate", "Digest realm=\"carrier.test\", nonce=\"n1\", qop=\"auth\"");
    let gw = crate::sip::flow::Flow::Udp("192.0.2.2:5090".parse().unwrap());
    h.schedule(Duration::ZERO, Input::Sip { flow: gw.clone(), msg: challenge.clone() });
    h.drive_until(Duration::from_millis(120));
    let invites: Vec<_> = h.requests_to(&gw, Method::Invite).into_iter().map(|s| s.msg.clone()).collect();
    assert_eq!(invites.len(), 2);
    assert_eq!(h.requests_to(&gw, Method::Ack).len(), 1, "the 407 is ACKed");
    let auth = invites[1].header("Proxy-Authorization").expect("credentials");
    let creds = crate::digest::Credentials::parse(auth).unwrap();
    assert_eq!((creds.username.as_str(), creds.realm.as_str()), ("trunkuser", "carrier.test"));
    let ha1 = crate::digest::ha1(crate::digest::DigestAlgorithm::Md5, "trunkuser", "carrier.test", "s3cret");
    assert_eq!(creds.expected_response("INVITE", &ha1), creds.response);
    assert_eq!(invites[1].cseq().unwrap().0, invites[0].cseq().unwrap().0 + 1);
    assert_eq!(invites[1].call_id(), invites[0].call_id());
    // A second challenge is not answered again: the leg fails; 4xx is not a reason to fail over.
    let mut again = invites[1].response(407, Some("carrier"));
    again.push_header("Proxy-Authenticate", "Digest realm=\"carrier.test\", nonce=\"n2\", qop=\"auth\"");
    h.schedule(Duration::ZERO, Input::Sip { flow: gw.clone(), msg: again });
    h.drive_until(Duration::from_millis(140));
    assert_eq!(h.requests_to(&gw, Method::Invite).len(), 2);
    assert!(h.requests_to(&callee_flow(), Method::Invite).is_empty());
    h.drive();
    assert!(h.caller_codes().contains(&480), "the hop-by-hop 407 is not relayed: {:?}", h.caller_codes());
}

#[test]
fn the_authenticated_invite_has_each_header_once() {
    let ncco =
        json!([{"action": "connect", "endpoint": [{"type": "sip", "domain": "carrier", "user": "15551230000"}]}]);
    let mut h = CallHarness::new(ncco, Callee::Silent);
    h.drive_until(Duration::from_millis(100));
    let first = h.sent.iter().find(|s| s.msg.method() == Some(&Method::Invite)).unwrap().msg.clone();
    let mut challenge = first.response(401, Some("carrier"));
    challenge.push_header("WWW-Authenticate", "Digest realm=\"carrier.test\", nonce=\"n1\"");
    let gw = crate::sip::flow::Flow::Udp("192.0.2.2:5090".parse().unwrap());
    h.schedule(Duration::ZERO, Input::Sip { flow: gw.clone(), msg: challenge });
    h.drive_until(Duration::from_millis(120));
    let second = h.requests_to(&gw, Method::Invite)[1].msg.clone();
    for name in ["Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Authorization"] {
        let n = second.headers.iter().filter(|(h, _)| h.eq_ignore_ascii_case(name)).count();
        assert_eq!(n, 1, "{name} once in {}", String::from_utf8_lossy(&second.to_bytes()));
    }
    assert_eq!(second.header("Max-Forwards"), first.header("Max-Forwards"));
}

#[test]
fn parallel_sip_endpoints_first_answer_wins_and_the_others_are_cancelled() {
    let ncco = json!([{"action": "connect", "endpoint": [
        {"type": "sip", "uri": format!("sip:first@{CALLEE}")},
        {"type": "sip", "uri": format!("sip:second@{CALLEE}")},
    ]}]);
    let mut h = CallHarness::new(ncco, Callee::RingsForever);
    h.callees = vec![Callee::RingsForever, answers()];
    h.drive_until(3 * S);
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 2, "both rung at once");
    assert!(invites[1].at - invites[0].at < Duration::from_millis(10));
    let cancels = h.requests_to(&callee_flow(), Method::Cancel);
    assert_eq!(cancels.len(), 1, "the loser is cancelled");
    assert_eq!(cancels[0].msg.call_id(), invites[0].msg.call_id());
    let outbound = h.statuses(Direction::Outbound);
    assert!(outbound.contains(&"cancelled") && outbound.contains(&"answered"), "{outbound:?}");
    assert!(h.caller_codes().contains(&200), "the caller is bridged to the winner");
}

#[test]
fn dtmf_answer_is_sent_to_the_callee_once_it_answers() {
    let ncco = phone(json!({"endpoint": [{"type": "phone", "number": "15551230000", "dtmfAnswer": "12p3"}]}));
    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(10 * S);
    assert!(
        h.media_log.iter().any(|c| matches!(c, crate::media::Command::SendDtmf { digits, .. } if digits == "12p3")),
        "{:?}",
        h.media_log
    );
}

#[test]
fn parallel_endpoints_cannot_include_a_domain() {
    let ncco = json!([{"action": "connect", "endpoint": [
        {"type": "sip", "uri": format!("sip:first@{CALLEE}")},
        {"type": "sip", "domain": "pbx", "user": "100"},
    ]}, {"action": "wait", "timeout": 1}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive();
    assert!(h.requests_to(&callee_flow(), Method::Invite).is_empty(), "nothing rung");
    let failed = h
        .events
        .iter()
        .any(|e| e.status == CallStatus::Failed && e.reason.as_deref().is_some_and(|r| r.contains("parallel")));
    assert!(failed, "{:?}", h.events);
}

#[test]
fn srv_candidates_fail_over_to_the_next_server() {
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": "sip:bob@srv.test"}]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(10 * S);
    let silent = crate::sip::flow::Flow::Udp("192.0.2.2:5090".parse().unwrap());
    assert!(!h.requests_to(&silent, Method::Invite).is_empty(), "first SRV server tried");
    let second = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(second.len(), 1, "then the next one");
    assert!(second[0].at >= crate::call::connect::GATEWAY_NO_RESPONSE);
    assert!(h.caller_codes().contains(&200));
}

#[test]
fn session_expires_without_a_refresh_and_lives_on_with_one() {
    let st = "Session-Expires: 120\r\nSupported: timer\r\n";
    let mut h = CallHarness::with(connect_sip(json!({})), vec![answers()], invite("st3@caller", st), route());
    h.drive();
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 120 * S && bye < 122 * S, "BYE at {bye:?}");
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1);

    let mut h = CallHarness::with(connect_sip(json!({})), vec![answers()], invite("st4@caller", st), route());
    h.drive_until(60 * S);
    let refresh = caller_in_dialog(&h, Method::Update, 2, None);
    h.caller_sends(Duration::ZERO, refresh);
    h.drive_until(150 * S);
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "refreshed at 60 s: lives past 120 s");
    h.drive();
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 180 * S && bye < 182 * S, "BYE at {bye:?}");
}

#[test]
fn reliable_provisionals_are_pracked_once_each() {
    let mut h = CallHarness::new(connect_sip(json!({})), Callee::Silent);
    h.drive_until(Duration::from_millis(100));
    let invite = h.requests_to(&callee_flow(), Method::Invite)[0].msg.clone();
    assert!(invite.header("Supported").is_some_and(|s| s.contains("100rel")));
    let mut ringing = callee_response(&invite, 183, "callee1", true);
    ringing.push_header("Require", "100rel");
    ringing.push_header("RSeq", "1");
    for _ in 0..2 {
        h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: ringing.clone() });
    }
    h.drive_until(Duration::from_millis(200));
    let pracks = h.requests_to(&callee_flow(), Method::Prack);
    assert_eq!(pracks.len(), 1, "one PRACK for RSeq 1, not one per retransmission");
    assert_eq!(pracks[0].msg.header("RAck"), Some("1 1 INVITE"));
    assert!(pracks[0].msg.header("To").unwrap().contains("tag=callee1"), "in the early dialog");
    assert!(h.caller_codes().contains(&183));
}

#[test]
fn ringback_tone_plays_to_the_caller_until_answer() {
    let mut h = CallHarness::new(connect_sip(json!({"ringbackTone": "https://example.com/ring.mp3"})), answers());
    h.media_plays = true;
    h.drive_until(3 * S);
    let codes = h.caller_codes();
    assert_eq!(codes.first(), Some(&183), "early media for the tone: {codes:?}");
    let names = h.media_commands();
    let play = names.iter().position(|n| *n == "play").expect("played");
    let stop = names.iter().position(|n| *n == "stop_play").expect("stopped on answer");
    assert!(play < stop && names.iter().position(|n| *n == "bridge").unwrap() < stop, "{names:?}");
}

#[test]
fn a_retransmitted_failure_gets_the_ack_again_during_timer_d() {
    let ncco = json!([
        {"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{CALLEE}")}]},
        {"action": "wait", "timeout": 60}
    ]);
    let mut h = CallHarness::new(ncco, Callee::Rejects { code: 486, after: S });
    h.drive_until(2 * S);
    let invite = h.requests_to(&callee_flow(), Method::Invite)[0].msg.clone();
    let busy = callee_response(&invite, 486, "callee1", false);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: busy.clone() });
    h.drive_until(3 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 2);
    // After Timer D the leg is gone: a late copy reaches no one.
    h.schedule(40 * S, Input::Sip { flow: callee_flow(), msg: busy });
    h.drive_until(45 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Ack).len(), 2);
    assert!(h.unlistened.iter().any(|k| matches!(k, Key::CallId(c) if c == invite.call_id())));
}

#[test]
fn asked_to_refresh_we_send_update_at_half_the_interval() {
    let st = "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\n";
    let mut h =
        CallHarness::with(connect_sip(json!({"limit": 300})), vec![answers()], invite("st5@caller", st), route());
    h.drive_until(200 * S);
    let ok = h.to_caller().into_iter().find(|s| s.msg.status() == Some(200)).unwrap();
    assert_eq!(ok.msg.header("Session-Expires"), Some("120;refresher=uas"));
    let updates = h.requests_to(&caller_flow(), Method::Update);
    assert!(updates.len() >= 3, "refreshes every 60 s: {}", updates.len());
    assert!(updates[0].at >= 60 * S && updates[0].at < 61 * S, "first refresh at {:?}", updates[0].at);
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "the session lives on");
}

#[test]
fn a_caller_requiring_100rel_gets_reliable_provisionals_and_the_2xx_waits_for_the_prack() {
    let inv = invite("rel@caller", "Require: 100rel\r\n");
    let mut h = CallHarness::with(
        connect_sip(json!({})),
        vec![Callee::EarlyMedia { answer: Duration::from_millis(300) }],
        inv,
        route(),
    );
    h.caller_pracks = Some(S);
    h.drive_until(5 * S);
    let early: Vec<&Sent> = h.to_caller().into_iter().filter(|s| s.msg.status() == Some(183)).collect();
    assert!(early.len() >= 2, "resent until the PRACK: {}", early.len());
    assert_eq!(early[0].msg.header("RSeq"), Some("1"));
    assert_eq!(early[0].msg.header("Require"), Some("100rel"));
    let prack_ok = h.to_caller().into_iter().find(|s| s.msg.cseq().is_some_and(|c| c.1 == Method::Prack)).unwrap();
    assert_eq!(prack_ok.msg.status(), Some(200));
    let ok = h
        .to_caller()
        .into_iter()
        .find(|s| s.msg.status() == Some(200) && s.msg.cseq().unwrap().1 == Method::Invite)
        .unwrap();
    assert!(ok.at >= prack_ok.at, "the 2xx after the PRACK of the SDP-bearing 183: {:?} vs {:?}", ok.at, prack_ok.at);
    let retransmits_after = h.to_caller().iter().filter(|s| s.msg.status() == Some(183) && s.at > prack_ok.at).count();
    assert_eq!(retransmits_after, 0, "the PRACK stopped the retransmissions");
}

#[test]
fn no_prack_for_a_reliable_provisional_ends_the_call() {
    let inv = invite("rel2@caller", "Require: 100rel\r\n");
    let mut h = CallHarness::with(connect_sip(json!({"timeout": 60})), vec![Callee::RingsForever], inv, route());
    h.caller_pracks = None;
    h.drive();
    assert!(h.caller_codes().contains(&504), "{:?}", h.caller_codes());
    assert_eq!(h.requests_to(&callee_flow(), Method::Cancel).len(), 1);
}

#[test]
fn record_runs_alongside_and_its_event_is_posted_when_done() {
    let ncco = json!([
        {"action": "record", "eventUrl": ["http://app/recording"]},
        {"action": "wait", "timeout": 5}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(2 * S);
    let (record_id, path, format) = h
        .media_log
        .iter()
        .find_map(|c| match c {
            crate::media::Command::RecordStart { record_id, path, format, .. } => {
                Some((record_id.clone(), path.clone(), format.clone()))
            }
            _ => None,
        })
        .expect("recording started");
    assert_eq!(format, "mp3", "Vonage's default format");
    assert!(path.ends_with(&format!("/{record_id}.mp3")) && crate::recordings::is_safe_relative(&path), "{path}");
    let done = MediaEvent::RecordDone {
        endpoint: "ep1".into(),
        record_id: record_id.clone(),
        size: 4096,
        duration_ms: 1500,
        error: None,
    };
    h.schedule(Duration::ZERO, Input::Media(done));
    h.drive();
    let posted = h.posts.iter().find(|p| p["recording_uuid"] == record_id.as_str()).expect("record event");
    assert_eq!(posted["recording_url"], format!("http://127.0.0.1:3000/v1/files/{record_id}"));
    assert_eq!(posted["size"], 4096);
    assert!(posted["start_time"].as_str() < posted["end_time"].as_str(), "{posted}");
    // The wait still ran its 5 s: the recording did not block the NCCO.
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 5 * S && bye < 6 * S, "BYE at {bye:?}");
}

#[test]
fn voice_api_hangup_of_the_callee_ends_the_connect_and_the_ncco_goes_on() {
    let ncco = json!([
        {"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{CALLEE}")}]},
        {"action": "wait", "timeout": 3}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(2 * S);
    let b_uuid = h.events.iter().find(|e| e.direction == Direction::Outbound).unwrap().uuid.clone();
    h.schedule(Duration::ZERO, Input::Control(crate::call::Control::Hangup { uuid: b_uuid }));
    h.drive();
    let bye_b = h.requests_to(&callee_flow(), Method::Bye)[0].at;
    let bye_a = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye_b < 3 * S && bye_a >= bye_b + 3 * S - Duration::from_millis(10), "B at {bye_b:?}, A at {bye_a:?}");
    let mut h2 = CallHarness::new(connect_sip(json!({})), answers());
    h2.drive_until(2 * S);
    let a2 = h2.call.uuid().to_owned();
    h2.schedule(Duration::ZERO, Input::Control(crate::call::Control::Hangup { uuid: a2 }));
    h2.drive();
    assert!(h2.elapsed() < 10 * S, "the whole call ended at once");
    assert_eq!(h2.requests_to(&callee_flow(), Method::Bye).len(), 1);
}

fn whispered(on_answer: serde_json::Value) -> serde_json::Value {
    phone(json!({"endpoint": [{"type": "phone", "number": "15551230000", "onAnswer": on_answer}]}))
}

#[test]
fn on_answer_whispers_to_the_callee_before_the_bridge() {
    let mut h = CallHarness::new(
        whispered(json!({"url": "https://app.test/whisper", "ringbackTone": "https://app.test/ring.wav"})),
        answers(),
    );
    h.media_plays = true;
    h.post_replies.push_back(Some(json!([{"action": "talk", "text": "A call from the support line"}])));
    h.drive_until(20 * S);
    let callee_answered = h.requests_to(&callee_flow(), Method::Ack).first().map(|s| s.at);
    let bridged = h.media_log.iter().position(|c| matches!(c, crate::media::Command::Bridge { .. }));
    let played = h
        .media_log
        .iter()
        .position(|c| matches!(c, crate::media::Command::Play { endpoint_id, .. } if endpoint_id != "ep1"));
    assert!(
        played.is_some() && bridged.is_some() && played < bridged,
        "whisper before bridge: {:?} {:?}",
        h.media_commands(),
        h.events
    );
    assert_eq!(h.posts.first().map(|p| p["to"].clone()), Some(json!("15551230000")), "the whisper URL was asked");
    // The caller's 200 comes after the whisper (2 s of fake playback).
    let caller_200 = h.to_caller().iter().find(|s| s.msg.status() == Some(200)).map(|s| s.at);
    assert!(caller_200.zip(callee_answered).is_none_or(|(c, a)| c >= a + 2 * S), "{caller_200:?} {callee_answered:?}");
    assert!(caller_200.is_some());
    // Meanwhile the caller heard the ringback tone, stopped at the bridge.
    let ringback = h.media_log.iter().any(
        |c| matches!(c, crate::media::Command::Play { endpoint_id, source: crate::media::PlaySource::Url { url }, .. } if endpoint_id == "ep1" && url.ends_with("ring.wav")),
    );
    assert!(ringback && h.media_commands().contains(&"stop_play"), "{:?}", h.media_commands());
    assert_eq!(h.statuses(Direction::Outbound).iter().filter(|s| **s == "answered").count(), 1);
}

#[test]
fn a_whisper_that_cannot_run_releases_the_callee_and_the_ncco_goes_on() {
    let mut ncco = whispered(json!({"url": "https://app.test/whisper"}));
    if let Some(actions) = ncco.as_array_mut() {
        actions.push(json!({"action": "wait", "timeout": 1}));
    }
    let mut h = CallHarness::new(ncco, answers());
    h.post_replies.push_back(Some(json!([{"action": "input", "type": ["dtmf"]}])));
    h.drive();
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "the callee is released");
    // Answered, then released: its completed event names the reason.
    let released = h.events.iter().rev().find(|e| e.direction == Direction::Outbound);
    let reason = released.and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(reason.contains("input") && reason.contains("onAnswer"), "{reason}");
    assert!(!h.media_commands().contains(&"bridge"));
    assert!(h.caller_codes().contains(&200), "the wait after the connect answered the caller");
}

#[test]
fn a_callee_hanging_up_during_the_whisper_ends_the_connect() {
    let mut h = CallHarness::new(whispered(json!({"url": "https://app.test/whisper"})), answers());
    h.post_replies.push_back(Some(json!([{"action": "wait", "timeout": 30}])));
    h.drive_until(8 * S);
    let bye = callee_in_dialog(&h, Method::Bye, 1);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: bye });
    h.drive();
    assert!(!h.media_commands().contains(&"bridge"));
    assert!(h.call.is_done(), "the call ended");
    assert!(h.caller_codes().iter().any(|c| *c >= 400), "the unanswered caller is rejected: {:?}", h.caller_codes());
    assert!(h.statuses(Direction::Outbound).contains(&"completed"));
}

#[test]
fn answer_url_is_asked_while_media_prepares_and_a_document_that_comes_first_waits() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    // The document is back before the caller's endpoint (media answers after 1 ms).
    h.answer_delay = Duration::ZERO;
    h.drive_until(5 * S);
    let endpoint_ready = h.media_answered.iter().find(|(_, name)| *name == "create_endpoint").map(|(at, _)| *at);
    let asked = h.answer_asked.first().copied();
    assert!(
        asked.zip(endpoint_ready).is_some_and(|(a, e)| a < e),
        "asked at {asked:?}, endpoint at {endpoint_ready:?}"
    );
    assert_eq!(h.requests_to(&callee_flow(), Method::Invite).len(), 1, "the NCCO ran once the endpoint was ready");
    assert!(h.caller_codes().contains(&200));
    assert_eq!(&h.statuses(Direction::Inbound)[..2], ["started", "ringing"]);
}

#[test]
fn a_transfer_releases_the_callee_and_runs_the_new_ncco_in_a_new_conversation() {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.drive_until(5 * S);
    let uuid = h.call.uuid().to_owned();
    let ncco = Ncco::parse(&json!([{"action": "wait", "timeout": 2}])).unwrap();
    h.schedule(Duration::ZERO, Input::Control(crate::call::Control::Transfer { uuid, to: TransferTo::Ncco(ncco) }));
    h.drive();
    let bye_b = h.requests_to(&callee_flow(), Method::Bye)[0].at;
    let bye_a = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye_a >= bye_b + 2 * S, "the new NCCO ran after the callee was released: {bye_b:?} {bye_a:?}");
    let transfer = h.posts.iter().find(|p| p.get("conversation_uuid_to").is_some()).expect("a transfer event");
    assert_ne!(transfer["conversation_uuid_from"], transfer["conversation_uuid_to"]);
    let done = h.events.iter().find(|e| e.direction == Direction::Inbound && e.status == CallStatus::Completed);
    assert_eq!(done.map(|e| json!(e.conversation_uuid)), Some(transfer["conversation_uuid_to"].clone()));
}

#[test]
fn a_transfer_to_a_url_runs_the_ncco_it_gives_and_a_url_without_one_ends_the_call() {
    let mut h = CallHarness::new(json!([{"action": "wait", "timeout": 60}]), answers());
    h.drive_until(2 * S);
    let url = url::Url::parse("https://app.test/transfer").unwrap();
    h.post_replies.push_back(None); // the transfer event
    h.post_replies.push_back(Some(json!([{"action": "wait", "timeout": 1}])));
    let uuid = h.call.uuid().to_owned();
    h.schedule(
        Duration::ZERO,
        Input::Control(crate::call::Control::Transfer { uuid, to: TransferTo::Url(url.clone()) }),
    );
    h.drive();
    let bye_a = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye_a >= 3 * S && bye_a < 4 * S, "the fetched NCCO's 1 s wait, not the 60 s one: {bye_a:?}");

    let mut h = CallHarness::new(json!([{"action": "wait", "timeout": 60}]), answers());
    h.drive_until(2 * S);
    let uuid = h.call.uuid().to_owned();
    h.schedule(Duration::ZERO, Input::Control(crate::call::Control::Transfer { uuid, to: TransferTo::Url(url) }));
    h.drive();
    let done = h.events.iter().find(|e| e.direction == Direction::Inbound && e.status == CallStatus::Completed);
    assert!(done.is_some_and(|e| e.reason.as_deref().is_some_and(|r| r.contains("no NCCO"))), "{:?}", h.events);
}

#[test]
fn the_first_digit_stops_a_barge_in_talk() {
    let ncco = json!([
        {"action": "talk", "text": "press a key", "bargeIn": true, "loop": 0},
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 2}, "eventUrl": ["http://app/input"]}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(S / 2);
    assert!(!h.media_commands().contains(&"stop_play"));
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '4' }));
    h.schedule(S / 10, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '2' }));
    h.drive();
    assert_eq!(h.media_commands().iter().filter(|c| **c == "stop_play").count(), 1, "{:?}", h.media_commands());
    assert_eq!(h.posts[0]["dtmf"], json!({"digits": "42", "timed_out": false}));
}

#[test]
fn a_play_that_fails_is_reported_and_the_ncco_goes_on() {
    let ncco = json!([
        {"action": "stream", "streamUrl": ["http://app/missing.mp3"]},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(S / 2);
    let play_id = h
        .media_log
        .iter()
        .find_map(|c| match c {
            crate::media::Command::Play { play_id, .. } => Some(play_id.clone()),
            _ => None,
        })
        .expect("a play");
    let failed = MediaEvent::PlaybackDone {
        endpoint: "ep1".into(),
        play_id,
        error: Some("the audio URL answered HTTP 404".into()),
    };
    h.schedule(Duration::ZERO, Input::Media(failed));
    h.drive();
    let event = h.posts.iter().find(|p| p["status"] == "failed").expect("a failed event");
    assert_eq!(event["reason"], "the audio URL answered HTTP 404");
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= S + S / 2 && bye < 2 * S, "the wait ran after the failed stream: BYE at {bye:?}");
}

#[test]
fn a_recording_running_at_hangup_is_reported_after_the_call() {
    let ncco = json!([
        {"action": "record", "format": "wav", "eventUrl": ["http://app/recording"]},
        {"action": "wait", "timeout": 2}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(3 * S);
    assert!(h.requests_to(&caller_flow(), Method::Bye).len() == 1, "the NCCO ended");
    assert!(h.media_commands().contains(&"destroy_endpoint"));
    assert!(!h.call.is_done(), "the call waits for its recording");
    assert!(!h.unlistened.contains(&crate::call::Key::Endpoint("ep1".into())), "still listening to its endpoint");
    let record_id = h
        .media_log
        .iter()
        .find_map(|c| match c {
            crate::media::Command::RecordStart { record_id, .. } => Some(record_id.clone()),
            _ => None,
        })
        .unwrap();
    let done =
        MediaEvent::RecordDone { endpoint: "ep1".into(), record_id, size: 48_044, duration_ms: 3000, error: None };
    h.schedule(Duration::ZERO, Input::Media(done));
    h.drive();
    let event = h.posts.iter().find(|p| p.get("recording_url").is_some()).expect("the record event");
    assert_eq!(event["size"], 48_044);
    assert!(h.call.is_done());
    assert!(h.unlistened.contains(&crate::call::Key::Endpoint("ep1".into())));
}

#[test]
fn recordings_never_reported_do_not_keep_the_call_forever() {
    let ncco = json!([{"action": "record"}, {"action": "wait", "timeout": 1}]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive();
    assert!(h.call.is_done(), "given up after the grace period");
    assert!(h.elapsed() >= 30 * S);
}

#[test]
fn a_websocket_leg_lives_until_the_server_closes_it_then_the_ncco_goes_on() {
    let ncco = json!([
        {"action": "connect", "endpoint": [{"type": "websocket", "uri": "wss://ws.example/audio",
            "content-type": "audio/l16;rate=16000", "headers": {"who": "test"}}]},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(2 * S);
    let connect = h.media_log.iter().find(|c| matches!(c, crate::media::Command::ConnectWebsocket { .. }));
    let Some(crate::media::Command::ConnectWebsocket {
        target: crate::media::WebsocketTarget { headers, content_type, .. },
        ..
    }) = connect
    else {
        panic!("no connect_websocket in {:?}", h.media_commands())
    };
    assert_eq!((headers["who"].as_str(), content_type.as_str()), (Some("test"), "audio/l16;rate=16000"));
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "streaming until the server closes");
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::WsClosed { endpoint: "ep1".into(), reason: None }));
    h.drive();
    let ws: Vec<&str> = h.events.iter().filter(|e| e.to.starts_with("wss://")).map(|e| e.status.as_str()).collect();
    assert_eq!(ws, ["started", "answered", "disconnected", "completed"]);
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 3 * S && bye < 4 * S, "the wait ran after the socket closed: BYE at {bye:?}");
}

#[test]
fn a_conversation_is_joined_per_application_and_its_end_lets_the_ncco_go_on() {
    let ncco = json!([
        {"action": "conversation", "name": "room", "startOnEnter": false, "endOnExit": true,
         "musicOnHoldUrl": ["https://app.example/hold.mp3"], "canHear": ["leg-x"]},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(2 * S);
    let join = h.media_log.iter().find(|c| matches!(c, crate::media::Command::ConferenceJoin { .. })).cloned();
    let Some(crate::media::Command::ConferenceJoin {
        conference,
        member,
        hears,
        start_on_enter,
        end_on_exit,
        music_on_hold,
        ..
    }) = join
    else {
        panic!("no conference_join in {:?}", h.media_commands())
    };
    assert!(conference.ends_with(":room") && conference.len() > ":room".len(), "{conference}");
    assert_eq!(member, h.events[0].uuid);
    assert_eq!(hears, Some(vec!["leg-x".to_owned()]));
    assert_eq!((start_on_enter, end_on_exit), (false, true));
    assert_eq!(music_on_hold.as_deref(), Some("https://app.example/hold.mp3"));
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "in the conversation until it ends");
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::ConferenceEnded { endpoint: "ep1".into() }));
    h.drive();
    let bye = h.requests_to(&caller_flow(), Method::Bye)[0].at;
    assert!(bye >= 3 * S && bye < 4 * S, "BYE at {bye:?}");
}

#[test]
fn the_final_event_and_record_carry_the_media_quality() {
    let mut h = CallHarness::new(json!([{"action": "wait", "timeout": 2}]), answers());
    let quality = crate::quality::Quality {
        packets_received: 90,
        packets_lost: 10,
        loss_percent: 10.0,
        mos: 3.6,
        ..Default::default()
    };
    h.quality = Some(quality.clone());
    h.drive();
    let completed = h.events.iter().find(|e| e.status == crate::events::CallStatus::Completed).expect("completed");
    assert_eq!(completed.quality.as_ref(), Some(&quality));
    let finished = h.records.iter().find_map(|r| match r {
        crate::call::RecordUpdate::Finished { quality, .. } => Some(quality.clone()),
        _ => None,
    });
    assert_eq!(finished, Some(Some(quality)));
    assert!(h.call.is_done());
}

#[test]
fn speech_input_without_an_engine_reports_the_error_and_the_ncco_goes_on() {
    let ncco = json!([
        {"action": "input", "type": ["speech"], "eventUrl": ["http://app/input"]},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive();
    let posted = &h.posts[0];
    assert_eq!(posted["speech"]["error"], crate::events::NO_SPEECH_ENGINE);
    assert_eq!(posted["speech"]["results"], json!([]), "never a made-up transcript");
    let completed = h.events.iter().find(|e| e.status == CallStatus::Completed).expect("the call completed");
    assert!(completed.reason.is_none(), "not a failure: {completed:?}");
    let mut h = CallHarness::new(
        json!([{"action": "input", "type": ["dtmf", "speech"], "dtmf": {"maxDigits": 1}, "eventUrl": ["http://app/i"]}]),
        answers(),
    );
    h.drive_until(S);
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '3' }));
    h.drive();
    assert_eq!((h.posts[0]["dtmf"]["digits"].as_str(), h.posts[0]["speech"]["error"].is_string()), (Some("3"), true));
}

#[test]
fn speech_input_waits_for_the_recogniser_and_digits_end_a_mixed_input_and_its_listening() {
    let ncco = json!([
        {"action": "input", "type": ["speech"], "eventUrl": ["http://app/input"],
         "speech": {"endOnSilence": 1.5, "startTimeout": 4, "maxDuration": 20, "language": "de-DE"}},
        {"action": "wait", "timeout": 1}
    ]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(5 * S);
    let asked = h.media_log.iter().find_map(|c| match c {
        crate::media::Command::Transcribe {
            transcribe_id,
            language,
            start_timeout_ms,
            end_on_silence_ms,
            max_duration_ms,
            ..
        } => Some((transcribe_id.clone(), language.clone(), *start_timeout_ms, *end_on_silence_ms, *max_duration_ms)),
        _ => None,
    });
    let (id, language, start, silence, max) = asked.expect("the media process listens");
    assert_eq!((language.as_str(), start, silence, max), ("de-DE", 4000, 1500, 20_000));
    assert!(h.posts.is_empty(), "the input waits for the utterance, digits aside");
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '5' }));
    h.drive_until(6 * S);
    assert!(h.posts.is_empty(), "keys are no input to a speech-only input");
    let result = crate::events::SpeechResult::recognised(
        "end_on_silence_timeout".into(),
        Some(" Guten Tag ".into()),
        Some(0.5),
        None,
    );
    h.schedule(
        Duration::ZERO,
        Input::Media(MediaEvent::SpeechDone { endpoint: "ep1".into(), transcribe_id: id, result }),
    );
    h.drive();
    let posted = &h.posts[0];
    assert_eq!(posted["speech"]["results"], json!([{"text": "Guten Tag", "confidence": "0.5"}]));
    assert_eq!(posted["speech"]["timeout_reason"], "end_on_silence_timeout");
    assert_eq!(posted["dtmf"]["digits"], "");

    // DTMF and speech: the digits finish first, and the listening is stopped.
    let ncco = json!([{"action": "input", "type": ["dtmf", "speech"], "dtmf": {"maxDigits": 1}, "eventUrl": ["http://app/i"]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.media_plays = true;
    h.drive_until(S);
    h.schedule(Duration::ZERO, Input::Media(MediaEvent::Dtmf { endpoint: "ep1".into(), digit: '7' }));
    h.drive();
    assert_eq!(h.posts[0]["dtmf"]["digits"], "7");
    assert_eq!(h.posts[0]["speech"], json!({"results": []}), "no transcript, no error");
    assert!(h.media_log.iter().any(|c| matches!(c, crate::media::Command::StopTranscribe { .. })), "listening stopped");
}

#[test]
fn an_app_user_rings_every_registered_contact_over_its_flow_and_the_first_answer_wins() {
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "app", "user": "alice"}]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive_until(5 * S);
    let invites: Vec<_> = h.sent.iter().filter(|s| s.msg.method() == Some(&Method::Invite)).collect();
    let softphone = crate::sip::flow::Flow::Udp("192.0.2.3:5060".parse().unwrap());
    assert!(invites.iter().any(|s| s.flow == callee_flow()), "the desk phone's flow");
    assert!(invites.iter().any(|s| s.flow == softphone), "the softphone's flow");
    assert!(
        invites.iter().all(|s| s.msg.request_uri().unwrap().starts_with("sip:alice@10.0.0.")),
        "to the contact URIs"
    );
    // The desk phone (the fake callee) answered: the softphone, still silent, is cancelled
    // once it has sent a provisional, or its INVITE is given up.
    assert!(h.caller_codes().contains(&200));
    assert_eq!(h.statuses(Direction::Outbound).iter().filter(|s| **s == "answered").count(), 1);
}

#[test]
fn an_app_user_who_is_not_registered_fails_the_connect_with_the_reason() {
    let ncco = json!([{"action": "connect", "endpoint": [{"type": "app", "user": "bob"}]}]);
    let mut h = CallHarness::new(ncco, answers());
    h.drive();
    assert!(h.sent.iter().all(|s| s.msg.method() != Some(&Method::Invite)));
    let failed = h.events.iter().find(|e| e.status.as_str() == "failed").unwrap();
    assert!(failed.reason.as_deref().unwrap().contains("bob is not registered"), "{failed:?}");
}

#[test]
fn a_platform_program_connects_a_pbx_call_through_the_trunk_without_an_application() {
    let ncco = json!([{"action": "connect", "from": "14155550100",
        "endpoint": [{"type": "phone", "number": "9912345678"}]}]);
    let ncco = crate::ncco::Ncco::parse(&ncco).unwrap();
    let route = crate::call::Route::Program { ncco: ncco.clone(), application_id: None };
    let mut h = CallHarness::with(json!([]), vec![answers()], invite("pbx@caller", ""), route.clone());
    h.drive_until(5 * S);
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].msg.request_uri(), Some("sip:9912345678@192.0.2.2:5080"));
    assert!(invites[0].msg.header("From").unwrap().starts_with("<sip:14155550100@"));
    assert!(h.caller_codes().contains(&200));
    assert!(h.answer_asked.is_empty() && h.events.is_empty(), "no application is asked or told");
    // The carrier's refusal is the PBX's answer.
    let mut h = CallHarness::with(
        json!([]),
        vec![Callee::Rejects { code: 486, after: Duration::from_millis(10) }],
        invite("pbx-busy@caller", ""),
        route,
    );
    h.drive_until(5 * S);
    assert_eq!(h.caller_codes().last(), Some(&486));
    // With the account's default application set, it is told of both legs.
    let route = crate::call::Route::Program { ncco, application_id: Some("default-app".into()) };
    let mut h = CallHarness::with(json!([]), vec![answers()], invite("pbx-told@caller", ""), route);
    h.drive_until(5 * S);
    assert!(h.answer_asked.is_empty(), "the platform's NCCO runs, no answer_url");
    assert_eq!(h.statuses(crate::events::Direction::Inbound)[..2], ["started", "ringing"]);
    assert!(h.statuses(crate::events::Direction::Outbound).contains(&"answered"));
}

/// A bridged call whose callee (a PBX) sends REFER with `refer_to` once bridged.
fn referred(refer_to: &str, target: Callee) -> CallHarness {
    let mut h = CallHarness::new(connect_sip(json!({})), answers());
    h.callees.push(target);
    h.drive_until(2 * S);
    assert_eq!(h.requests_to(&callee_flow(), Method::Invite).len(), 1, "bridged to the first callee");
    let mut refer = callee_in_dialog(&h, Method::Refer, 2);
    refer.push_header("Refer-To", refer_to);
    h.schedule(Duration::ZERO, Input::Sip { flow: callee_flow(), msg: refer });
    h.drive_until(6 * S);
    h
}

fn notify_bodies(h: &CallHarness) -> Vec<(String, String)> {
    h.requests_to(&callee_flow(), Method::Notify)
        .iter()
        .map(|n| {
            let state = n.msg.header("Subscription-State").unwrap_or_default().to_owned();
            (String::from_utf8_lossy(&n.msg.body).trim().to_owned(), state)
        })
        .collect()
}

#[test]
fn a_bridged_callee_blind_transfers_the_caller_by_refer() {
    let h = referred(&format!("<sip:carol@{CALLEE}>"), answers());
    let accepted = h.sent.iter().any(|s| s.flow == callee_flow() && s.msg.status() == Some(202));
    assert!(accepted, "the REFER is accepted");
    let invites = h.requests_to(&callee_flow(), Method::Invite);
    assert_eq!(invites.len(), 2);
    assert!(invites[1].msg.request_uri().unwrap().starts_with("sip:carol@"), "the target is rung");
    let notifies = notify_bodies(&h);
    assert_eq!(notifies.len(), 2, "{notifies:?}");
    assert_eq!((notifies[0].0.as_str(), notifies[1].0.as_str()), ("SIP/2.0 100 Trying", "SIP/2.0 200 OK"));
    assert!(notifies[1].1.starts_with("terminated"), "{notifies:?}");
    // The referrer is released (BYE on its dialog); the caller stays, bridged to the target.
    let first_call_id = invites[0].msg.call_id().to_owned();
    let byes = h.requests_to(&callee_flow(), Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].msg.call_id(), first_call_id);
    assert!(h.requests_to(&caller_flow(), Method::Bye).is_empty(), "the caller is not hung up");
    let bridges = h.media_log.iter().filter(|c| matches!(c, crate::media::Command::Bridge { .. })).count();
    assert_eq!(bridges, 2, "bridged to the callee, then to the target");
}

#[test]
fn a_failed_transfer_tells_the_referrer_and_a_number_is_refused() {
    let h = referred(&format!("<sip:carol@{CALLEE}>"), Callee::Rejects { code: 486, after: Duration::from_millis(50) });
    let notifies = notify_bodies(&h);
    assert_eq!(notifies.last().map(|n| n.0.as_str()), Some("SIP/2.0 486 Busy Here"), "{notifies:?}");
    assert_eq!(h.requests_to(&callee_flow(), Method::Bye).len(), 1, "the referrer is released");

    // A REFER to a number never places a leg: trunk legs come from NCCOs only.
    let h = referred("<sip:+15551230000@192.0.2.9>", answers());
    let refused = h.sent.iter().find(|s| s.flow == callee_flow() && s.msg.status().is_some_and(|c| c >= 200));
    assert_eq!(refused.and_then(|s| s.msg.status()), Some(403));
    assert_eq!(h.requests_to(&callee_flow(), Method::Invite).len(), 1, "nothing else is rung");
    assert!(notify_bodies(&h).is_empty());
}
