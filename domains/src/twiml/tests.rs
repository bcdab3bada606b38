use super::*;
use crate::ncco::endpoint::{Endpoint, SipTarget};

fn names_of(xml: &str) -> Vec<String> {
    parse(xml).unwrap_err().into_iter().map(|p| format!("{}: {}", p.name, p.reason)).collect()
}

fn connect(xml: &str) -> crate::ncco::Connect {
    match parse(xml).unwrap().0.pop() {
        Some(Action::Connect(c)) => c,
        other => panic!("expected connect, got {other:?}"),
    }
}

#[test]
fn say_play_pause_hangup_in_order() {
    let ncco = parse(
        r#"<?xml version="1.0" encoding="UTF-8"?>
        <Response>
          <Say voice="woman" language="en-GB" loop="2">Hello &amp; welcome</Say>
          <Play loop="0">https://example.com/hold.wav</Play>
          <Pause length="3"/>
          <Hangup/>
        </Response>"#,
    )
    .unwrap();
    let names: Vec<&str> = ncco.0.iter().map(Action::name).collect();
    assert_eq!(names, ["talk", "stream", "wait", "hangup"]);
    let Action::Talk(t) = &ncco.0[0] else { unreachable!() };
    assert_eq!((t.text.as_str(), t.language.as_str(), t.loop_count), ("Hello & welcome", "en-GB", 2));
    let Action::Stream(s) = &ncco.0[1] else { unreachable!() };
    assert_eq!((s.stream_url.as_str(), s.loop_count), ("https://example.com/hold.wav", 0));
    let Action::Wait(w) = &ncco.0[2] else { unreachable!() };
    assert_eq!(w.timeout, 3.0);
}

#[test]
fn dial_sip_with_uri_headers_uui_and_transport() {
    let c = connect(
        r#"<Response><Dial timeout="10" callerId="+14155550100" timeLimit="60">
             <Sip>sip:bob@pbx.example.com;transport=tcp?x-account=42&amp;X-Note=a%20b&amp;User-to-User=56a390f3d2b7310023a2;encoding=hex</Sip>
           </Dial></Response>"#,
    );
    assert_eq!((c.timeout, c.limit), (10, 60));
    let caller_id = |c: &crate::ncco::Connect| c.twiml.as_ref().and_then(|t| t.sip_caller_id.clone());
    assert_eq!(caller_id(&c).as_deref(), Some("+14155550100"), "for SIP the caller ID is a string");
    let named = connect(r#"<Response><Dial callerId="support.desk"><Sip>sip:a@b</Sip></Dial></Response>"#);
    assert_eq!(caller_id(&named).as_deref(), Some("support.desk"));
    let problems = names_of(r#"<Response><Dial callerId="two words"><Sip>sip:a@b</Sip></Dial></Response>"#);
    assert!(problems[0].starts_with("Response/Dial[1]@callerId: for <Sip> must be"), "{problems:?}");
    let Endpoint::Sip(sip) = &c.endpoint else { panic!("{:?}", c.endpoint) };
    let SipTarget::Uri(uri) = &sip.target else { panic!() };
    assert_eq!(uri.uri, "sip:bob@pbx.example.com;transport=tcp");
    let headers = sip.sip_headers();
    for header in [("x-account", "42"), ("X-Note", "a b"), ("User-to-User", "56a390f3d2b7310023a2;encoding=hex")] {
        assert!(headers.contains(&(header.0.to_owned(), header.1.to_owned())), "{header:?} in {headers:?}");
    }
    assert_eq!(headers.len(), 3);
    let uui = connect("<Response><Dial><Sip>sip:b@h?X-User-to-User=abc</Sip></Dial></Response>");
    let Endpoint::Sip(sip) = &uui.endpoint else { panic!() };
    assert_eq!(sip.user_to_user.as_deref(), Some("abc"), "X-User-to-User is the UUI too");
}

#[test]
fn sip_credentials_and_codecs_are_kept_for_each_noun() {
    let c = connect(
        r#"<Response><Dial>
             <Sip username="alice" password="s3cret" codecs="opus,PCMU">sip:a@b</Sip>
             <Sip codecs="PCMA" url="https://app.example/screen" method="GET">sip:c@d</Sip>
           </Dial></Response>"#,
    );
    let Endpoint::Sip(first) = &c.endpoint else { panic!() };
    assert_eq!(first.credentials, Some(("alice".to_owned(), "s3cret".to_owned())));
    assert_eq!(first.codecs, ["OPUS", "PCMU"]);
    assert_eq!((c.forks[0].credentials.as_ref(), c.forks[0].codecs.as_slice()), (None, &["PCMA".to_owned()][..]));
    let screen = c.forks[0].screen.as_ref().expect("the screening document");
    assert_eq!((screen.url.as_str(), screen.method), ("https://app.example/screen", HttpMethod::Get));
    assert!(first.screen.is_none());
    assert_eq!((first.session_expires, c.forks[0].session_expires), (Some(600), Some(600)), "SignalWire's default");
    let timed = connect(r#"<Response><Dial><Sip sessionTimeout="1800">sip:a@b</Sip></Dial></Response>"#);
    let Endpoint::Sip(timed) = &timed.endpoint else { panic!() };
    assert_eq!(timed.session_expires, Some(1800));
    assert!(
        names_of(r#"<Response><Dial><Sip sessionTimeout="30">sip:a@b</Sip></Dial></Response>"#)[0]
            .contains("at least 90")
    );
}

#[test]
fn ten_sip_nouns_ring_together_and_defaults_hold() {
    let nouns: String = (0..10).map(|i| format!("<Sip>sip:agent{i}@10.0.0.{i}</Sip>")).collect();
    let c = connect(&format!("<Response><Dial>{nouns}</Dial></Response>"));
    assert_eq!(c.forks.len(), 9);
    assert_eq!((c.timeout, c.limit), (30, 7200), "Twilio's 30 s ringing; 4 h capped to the 2 h limit");
    let eleven: String = (0..11).map(|i| format!("<Sip>sip:agent{i}@10.0.0.{i}</Sip>")).collect();
    assert!(names_of(&format!("<Response><Dial>{eleven}</Dial></Response>"))[0].contains("at most 10"));
}

#[test]
fn dial_numbers() {
    let c = connect(r#"<Response><Dial><Number sendDigits="ww1234">+447700900000</Number></Dial></Response>"#);
    let Endpoint::Phone(p) = &c.endpoint else { panic!() };
    assert_eq!((p.number.to_string().as_str(), p.dtmf_answer.as_deref()), ("447700900000", Some("pp1234")));
    let bare = connect("<Response><Dial>447700900001</Dial></Response>");
    assert!(matches!(bare.endpoint, Endpoint::Phone(_)));
}

#[test]
fn reject_and_redirect() {
    let ncco = parse(
        r#"<Response><Reject reason="busy"/><Reject/><Redirect method="GET">https://app.example/next</Redirect></Response>"#,
    )
    .unwrap();
    assert_eq!(ncco.0[0], Action::Reject(Reject { code: 486 }));
    assert_eq!(ncco.0[1], Action::Reject(Reject::REJECTED));
    let Action::Redirect(r) = &ncco.0[2] else { panic!() };
    assert_eq!((r.webhook.url.as_str(), r.webhook.method), ("https://app.example/next", HttpMethod::Get));
}

#[test]
fn every_problem_is_named_by_its_element() {
    let problems = names_of(
        r#"<Response>
             <Say voice="robot"></Say>
             <Dance/>
             <Dial><Sip>sip:a@b</Sip><Number>14155550100</Number></Dial>
             <Dial hangupOnStar="maybe" colour="red"><Sip username="u" codecs="G723">sip:a@b?Contact=x</Sip></Dial>
             <Reject reason="maybe"/>
             <Pause length="soon"/>
             <Dial><Sip>http://not-sip</Sip></Dial>
             <Play digits="12x4"/>
             <Hangup>now</Hangup>
           </Response>"#,
    );
    let expect = [
        "Response/Say[1]@voice: unknown voice 'robot'",
        "Response/Say[1]: <Say> needs the words to say as its text",
        "Response/Dance[2]: unknown verb <Dance>",
        "Response/Dial[3]: <Sip> cannot be mixed",
        "Response/Dial[4]@hangupOnStar: must be true or false",
        "Response/Dial[4]@colour: unknown attribute of <Dial>",
        "Response/Dial[4]/Sip[1]@username: username and password go together",
        "Response/Dial[4]/Sip[1]@codecs: unknown codec 'G723'",
        "Response/Dial[4]/Sip[1]: header 'Contact': only X- headers and User-to-User",
        "Response/Reject[5]@reason: must be busy or rejected",
        "Response/Pause[6]@length: must be a whole number",
        "Response/Dial[7]/endpoint/0/uri: must be a SIP URI",
        "Response/Play[8]@digits: '12x4': only 0-9",
        "Response/Hangup[9]: <Hangup> takes no text",
    ];
    for e in expect {
        assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e} in {problems:#?}");
    }
    assert!(names_of("<Say>hi</Say>")[0].contains("must be <Response>"));
    assert!(names_of("<Response><Say>hi</Response>")[0].contains("malformed XML"));
    let long = "x".repeat(1030);
    assert!(names_of(&format!("<Response><Dial><Sip>sip:a@b?x-a={long}</Sip></Dial></Response>"))[0].contains("1024"));
}

#[test]
fn gather_speech_listens_with_its_language_hints_and_timeouts() {
    let ncco = parse(
        r#"<Response>
             <Gather input="dtmf speech" timeout="4" speechTimeout="2" language="en-GB" hints="sales, support"
                     action="https://app.example/heard"/>
           </Response>"#,
    )
    .unwrap();
    let Action::Input(i) = &ncco.0[0] else { unreachable!() };
    let speech = i.speech.clone().unwrap();
    assert_eq!((speech.start_timeout, speech.end_on_silence, speech.language.as_str()), (4, 2.0, "en-GB"));
    assert_eq!(speech.context, ["sales", "support"]);
    assert_eq!(i.dtmf.unwrap().time_out, 4, "digits too");
    let auto = parse(r#"<Response><Gather input="speech" speechTimeout="auto"/></Response>"#).unwrap();
    let Action::Input(i) = &auto.0[0] else { unreachable!() };
    assert_eq!((i.dtmf.is_none(), i.speech.clone().unwrap().end_on_silence), (true, 1.5));
}

#[test]
fn gather_prompts_then_collects_and_the_last_prompt_barges_in() {
    let ncco = parse(
        r#"<Response>
             <Gather numDigits="4" timeout="7" action="https://app.example/pin" method="POST">
               <Say>Welcome.</Say><Play>https://app.example/enter-pin.wav</Play>
             </Gather>
             <Say>We did not hear you.</Say>
           </Response>"#,
    )
    .unwrap();
    let names: Vec<&str> = ncco.0.iter().map(Action::name).collect();
    assert_eq!(names, ["talk", "stream", "input", "talk"]);
    assert!(ncco.0[0].is_blocking() && !ncco.0[1].is_blocking(), "the last prompt stops at the first digit");
    let Action::Input(i) = &ncco.0[2] else { unreachable!() };
    let dtmf = i.dtmf.unwrap();
    assert_eq!((dtmf.max_digits, dtmf.time_out, dtmf.submit_on_hash), (4, 7, true));
    assert_eq!(
        i.twiml_action.as_ref().and_then(|w| w.url.as_ref()).map(|u| u.as_str()),
        Some("https://app.example/pin")
    );
    let problems = names_of(
        r#"<Response><Gather input="speech touch" speechTimeout="soon" finishOnKey="*"><Dial>1</Dial></Gather></Response>"#,
    );
    for e in [
        "Response/Gather[1]@input: must be dtmf, speech or both",
        "Response/Gather[1]@speechTimeout: must be a whole number of seconds or auto",
        "Response/Gather[1]@finishOnKey: only '#' or ''",
        "Response/Gather[1]/Dial[1]: <Gather> can contain <Say>, <Play> and <Pause>, not <Dial>",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e} in {problems:#?}");
    }
}

#[test]
fn dial_action_is_kept_for_the_end_of_the_dial() {
    let c = connect(
        r#"<Response><Dial action="https://app.example/after" method="GET"><Sip>sip:a@b</Sip></Dial></Response>"#,
    );
    let action = c.twiml.and_then(|t| t.action).unwrap();
    assert_eq!((action.url.as_str(), action.method), ("https://app.example/after", HttpMethod::Get));
    assert!(
        names_of(r#"<Response><Dial action="ftp://x"><Sip>sip:a@b</Sip></Dial></Response>"#)[0]
            .starts_with("Response/Dial[1]@action: must be a URL")
    );
}

#[test]
fn record_waits_and_reports_to_its_action() {
    let ncco = parse(
        r#"<Response><Record action="https://app.example/vm" maxLength="20" finishOnKey="*" timeout="4"/></Response>"#,
    )
    .unwrap();
    let Some(Action::Record(r)) = ncco.0.first() else { panic!("{ncco:?}") };
    assert_eq!((r.time_out, r.end_on_key, r.end_on_silence, r.beep_start), (Some(20), Some('*'), Some(4), true));
    assert_eq!(
        r.twiml_action.as_ref().and_then(|w| w.url.as_ref()).map(|u| u.as_str()),
        Some("https://app.example/vm")
    );
    let problems = names_of(r#"<Response><Record playBeep="loud" transcribe="true"/></Response>"#);
    for e in [
        "Response/Record[1]@playBeep: must be true or false",
        "Response/Record[1]@transcribe: transcribe=\"true\" is not supported",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(e)), "missing {e} in {problems:#?}");
    }
}

#[test]
fn play_digits_sends_dtmf_with_twilios_waits() {
    let ncco = parse(r#"<Response><Play digits="wW1#"/></Response>"#).unwrap();
    assert_eq!(ncco.0, [Action::SendDigits("ppp1#".into())]);
    assert!(names_of(r#"<Response><Play digits="1">https://x/y.wav</Play></Response>"#)[0].contains("not both"));
}

#[test]
fn noun_status_callbacks_and_number_screening() {
    let c = connect(
        r#"<Response><Dial><Number url="https://app.example/whisper" method="GET"
             statusCallback="https://app.example/leg" statusCallbackEvent="answered completed"
             statusCallbackMethod="GET">+14155550123</Number></Dial></Response>"#,
    );
    let t = c.twiml.expect("the dial's TwiML part");
    let status = t.status.first().cloned().flatten().expect("the number's callback");
    assert_eq!(status.webhook.url.as_str(), "https://app.example/leg");
    assert_eq!(status.webhook.method, crate::ncco::common::HttpMethod::Get);
    assert_eq!(status.events, ["answered", "completed"]);
    assert_eq!(t.number_method, crate::ncco::common::HttpMethod::Get);
    let Endpoint::Phone(p) = c.endpoint else { panic!("a phone endpoint") };
    assert_eq!(p.on_answer.map(|o| o.url.to_string()).as_deref(), Some("https://app.example/whisper"));
    // Without statusCallbackEvent, `completed` alone, as Twilio does.
    let c = connect(
        r#"<Response><Dial><Sip statusCallback="https://app.example/leg">sip:a@b.example</Sip></Dial></Response>"#,
    );
    assert_eq!(c.twiml.and_then(|t| t.status[0].clone()).map(|s| s.events), Some(vec!["completed".to_owned()]));
    assert_eq!(
        names_of(r#"<Response><Dial><Sip statusCallbackEvent="answered">sip:a@b.example</Sip></Dial></Response>"#),
        ["Response/Dial[1]/Sip[1]@statusCallbackEvent: needs a statusCallback to send the events to"]
    );
    assert_eq!(
        names_of(
            r#"<Response><Dial><Sip statusCallback="https://x.example/s" statusCallbackEvent="hungup">sip:a@b.example</Sip></Dial></Response>"#
        ),
        [
            "Response/Dial[1]/Sip[1]@statusCallbackEvent: unknown event 'hungup' (initiated, ringing, answered, completed)"
        ]
    );
}

#[test]
fn edge_and_region_are_checked_and_not_sent_on() {
    let c = connect(
        r#"<Response><Dial><Sip>sip:bob@pbx.example;edge=ashburn;transport=tcp;region=ie1?X-A=1</Sip></Dial></Response>"#,
    );
    let Endpoint::Sip(sip) = c.endpoint else { panic!("a sip endpoint") };
    let SipTarget::Uri(u) = sip.target else { panic!("a URI") };
    assert_eq!(u.uri, "sip:bob@pbx.example;transport=tcp");
    assert_eq!(
        names_of(r#"<Response><Dial><Sip>sip:bob@pbx.example;edge=mars</Sip></Dial></Response>"#),
        [
            "Response/Dial[1]/Sip[1]: unknown edge 'mars' (ashburn, umatilla, dublin, frankfurt, singapore, tokyo, sao-paulo, sydney)"
        ]
    );
}
