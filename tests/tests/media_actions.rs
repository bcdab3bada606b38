//! NCCO actions that make or consume audio, end to end on real RTP: a caller (a raw SIP socket
//! with its own RTP socket, or SIPp playing pcaps) calls voxbridge, the fake application answers
//! with an NCCO, and the test checks what the caller hears (packets counted, decoded, not
//! silence), which digits reach `input` (RFC 4733 events, in-band tones, SIPp's DTMF pcap), and
//! the recording a call leaves (a WAV or MP3 of the right length, downloadable with the
//! application's JWT and refused without it).

use std::time::Duration;

use serde_json::{Value, json};
use vbtest::SipEnv;
use vbtest::rtp::{Packet, RawCall, decode_pcmu, pcmu_only_offer, rms, tone, tone_wav};
use vbtest::sipp::Sipp;

const T: Duration = Duration::from_secs(15);
const URI: &str = "sip:+14155550100@acme-sip.sip-us.sip.voxbridge.local";

/// A server and application answering `ncco`, where `APP/` stands for the application's base URL.
async fn env(ncco: Value) -> SipEnv {
    let env = SipEnv::start(Value::Null, &["127.0.0.1"], None).await;
    let text = ncco.to_string().replace("APP/", &format!("{}/", env.app.base));
    env.app.set_ncco(serde_json::from_str(&text).unwrap());
    env
}

/// Collects what the caller hears until `idle` passes without a packet (after the first).
async fn hear(call: &RawCall, within: Duration, idle: Duration) -> Vec<Packet> {
    let mut heard: Vec<Packet> = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 2048];
    loop {
        let wait =
            if heard.is_empty() { deadline.saturating_duration_since(tokio::time::Instant::now()) } else { idle };
        match tokio::time::timeout(wait, call.rtp.sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => heard.extend(Packet::parse(&buf[..n], std::time::Instant::now())),
            _ => return heard,
        }
        if tokio::time::Instant::now() >= deadline {
            return heard;
        }
    }
}

/// What an event with `field` posted to the application says, waiting for it.
async fn event_with(env: &SipEnv, field: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(e) = env.app.events().into_iter().find(|e| e.body.get(field).is_some()) {
            return Some(e.body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One stream: contiguous sequence numbers and timestamps 160 apart (our own SSRC), arriving
/// spread over time rather than in a burst.
fn assert_one_paced_stream(heard: &[Packet]) {
    let first = heard.first().expect("packets");
    assert!(heard.iter().all(|p| p.ssrc == first.ssrc && p.payload_type == 0 && p.payload.len() == 160));
    for w in heard.windows(2) {
        assert_eq!(w[1].sequence.wrapping_sub(w[0].sequence), 1, "contiguous sequence numbers");
        assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 160, "20 ms of samples per packet");
    }
    let span = heard.last().unwrap().at.duration_since(first.at);
    let nominal = Duration::from_millis(20) * (heard.len() as u32 - 1);
    assert!(span * 2 >= nominal, "{} packets arrived within {span:?}: sent in a burst, not paced", heard.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_is_spoken_to_the_caller() {
    let env =
        env(json!([{"action": "talk", "text": "Hello. This is voxbridge speaking. Thank you for calling."}])).await;
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let heard = hear(&call, T, Duration::from_millis(800)).await;
    assert!(heard.len() >= 75, "at least 1.5 s of speech, heard {} packets", heard.len());
    assert_one_paced_stream(&heard);
    let level = rms(&decode_pcmu(&heard));
    assert!(level > 300.0, "speech, not silence: RMS {level}");
    assert!(call.expect_bye(T).await, "the NCCO ended after the talk: voxbridge hangs up");
    assert!(env.app.wait_status("inbound", "completed", T).await, "{:?}", env.app.statuses("inbound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_in_an_unknown_language_is_refused_before_the_call_is_answered() {
    let env = env(json!([{"action": "talk", "text": "hi", "language": "tlh-QQ"}])).await;
    let sip = vbtest::raw::RawSip::new(&env.sip).await;
    sip.send(&sip.invite(URI, "bad-language", 1, "", 40000)).await;
    let reply = sip.final_response(T).await.expect("a final response");
    assert!(reply.status().is_some_and(|s| s >= 400), "{}", reply.0);
    assert!(env.app.wait_status("inbound", "failed", T).await);
}

/// A 16 kHz WAV (resampled to the call's 8 kHz) of a 1 kHz tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_plays_a_wav_cached_and_a_bad_file_is_reported_and_skipped() {
    let env = env(json!([
        {"action": "stream", "streamUrl": ["APP/broken.wav"]},
        {"action": "stream", "streamUrl": ["APP/tone.wav"]},
        {"action": "stream", "streamUrl": ["APP/tone.wav"], "level": -1}
    ]))
    .await;
    env.app.set_file("/tone.wav", "audio/wav", &[("Cache-Control", "max-age=60")], tone_wav(1.0));
    env.app.set_file("/broken.wav", "audio/wav", &[], b"RIFF not really".to_vec());
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let heard = hear(&call, T, Duration::from_millis(800)).await;
    assert!((95..=105).contains(&heard.len()), "two 1 s plays: {} packets", heard.len());
    assert_one_paced_stream(&heard);
    let pcm = decode_pcmu(&heard);
    let (first, second) = pcm.split_at(pcm.len() / 2);
    let (loud, quiet) = (rms(&first[800..7200]), rms(&second[800..7200]));
    assert!(loud > 4000.0, "the tone at level 0: RMS {loud}");
    assert!(quiet < loud / 3.0 && quiet > 500.0, "level -1 is 12 dB quieter: {quiet} vs {loud}");
    assert_eq!(env.app.fetches("/tone.wav"), 1, "fetched once, then played from the cache");
    let failed = event_with(&env, "reason", T).await.expect("an event for the broken file");
    assert_eq!(failed["status"], "failed");
    assert!(failed["reason"].as_str().unwrap().contains("decoded"), "{failed}");
    assert!(call.expect_bye(T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_collects_rfc4733_digits_and_the_first_stops_a_barge_in_talk() {
    let env = env(json!([
        {"action": "talk", "text": "Please enter your four digit code, then press hash.", "bargeIn": true, "loop": 0},
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 4, "submitOnHash": true, "timeOut": 10},
         "eventUrl": ["APP/input"]}
    ]))
    .await;
    env.app.set_document("/input", json!([]));
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let before = hear(&call, Duration::from_secs(1), Duration::from_millis(200)).await;
    assert!(!before.is_empty(), "the prompt plays");
    for d in ['7', '3', '#'] {
        call.rtp.send_event(d).await;
    }
    let input = event_with(&env, "dtmf", T).await.expect("the input event");
    assert_eq!(input["dtmf"], json!({"digits": "73", "timed_out": false}), "{input}");
    // The looping prompt stopped at the first digit: the caller hears nothing more.
    let after = hear(&call, Duration::from_millis(500), Duration::from_millis(300)).await;
    assert!(after.len() < 10, "{} packets after the input", after.len());
    assert!(call.expect_bye(T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_hears_in_band_tones_from_a_caller_without_telephone_event() {
    let env = env(json!([
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 3, "timeOut": 10}, "eventUrl": ["APP/input"]}
    ]))
    .await;
    env.app.set_document("/input", json!([]));
    let mut call = RawCall::place(&env.sip, URI, pcmu_only_offer).await;
    assert!(!call.ok.body().contains("telephone-event"), "{}", call.ok.body());
    let mut audio = Vec::new();
    for d in ['9', '5', '1'] {
        let (lo, hi) = domains::dtmf::tone_frequencies(d).unwrap();
        audio.extend(tone(&[lo, hi], 6000.0, 120));
        audio.extend(vec![0i16; 800]);
    }
    call.rtp.send_pcmu(&audio, None).await;
    let input = event_with(&env, "dtmf", T).await.expect("the input event");
    assert_eq!(input["dtmf"]["digits"], "951", "{input}");
    assert!(call.expect_bye(T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_collects_the_digit_of_sipps_rfc2833_pcap() {
    let env = env(json!([
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 1, "timeOut": 10}, "eventUrl": ["APP/input"]}
    ]))
    .await;
    env.app.set_document("/input", json!([{"action": "wait", "timeout": 30}]));
    let caller = Sipp::pcap_caller(&env.sip, &env.host);
    let input = event_with(&env, "dtmf", Duration::from_secs(30)).await.expect("the input event");
    assert_eq!(input["dtmf"], json!({"digits": "1", "timed_out": false}), "{input}");
    let caller = caller.finish(Duration::from_secs(30)).await;
    assert!(caller.success, "{}", caller.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_a_wav_of_the_call_downloadable_with_the_jwt_only() {
    let env = env(json!([
        {"action": "record", "format": "wav", "beepStart": true, "eventUrl": ["APP/recording"]},
        {"action": "wait", "timeout": 3}
    ]))
    .await;
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    // 2 s of tone from the caller, then silence until the NCCO ends at 3 s.
    let sent = call.rtp.send_pcmu(&tone(&[600.0], 8000.0, 2000), None).await;
    assert_eq!(sent, 100);
    assert!(call.expect_bye(T).await);
    let event = event_with(&env, "recording_url", T).await.expect("the record event");
    let url = event["recording_url"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("/v1/files/{}", event["recording_uuid"].as_str().unwrap())), "{url}");
    assert!(event["size"].as_u64().unwrap() > 40_000, "{event}");
    let client = &env.server.client;
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401, "no JWT, no recording");
    let response = client.get(&url).bearer_auth(env.jwt()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, event["size"].as_u64().unwrap());
    let mut wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("a valid WAV");
    assert_eq!((wav.spec().sample_rate, wav.spec().channels), (8000, 1));
    let seconds = wav.duration() as f64 / 8000.0;
    assert!((2.8..4.0).contains(&seconds), "the call's 3 s: {seconds} s");
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let tone_part = rms(&samples[8000..12000]);
    let quiet_part = rms(&samples[(samples.len() - 3000)..]);
    assert!(tone_part > 2000.0, "the caller's tone is in the recording: RMS {tone_part}");
    assert!(quiet_part < 200.0, "then silence: RMS {quiet_part}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_reordered_on_the_way_are_recorded_in_their_order() {
    let env = env(json!([
        {"action": "record", "format": "wav", "split": "conversation", "eventUrl": ["APP/recording"]},
        {"action": "wait", "timeout": 3}
    ]))
    .await;
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    // 60 packets, each one level (a staircase, 100 steps of μ-law apart); every third pair
    // arrives the other way round.
    let staircase: Vec<i16> = (0..60).flat_map(|k| vec![1000 + 200 * k as i16; 160]).collect();
    call.rtp.send_pcmu_reordered(&staircase, 3).await;
    assert!(call.expect_bye(T).await);
    let event = event_with(&env, "recording_url", T).await.expect("the record event");
    let url = event["recording_url"].as_str().unwrap().to_owned();
    let bytes = env.server.client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    let mut wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("a valid WAV");
    let channels = usize::from(wav.spec().channels);
    // The caller's channel: the levels of its frames that carry the staircase, in order.
    let received: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).step_by(channels).collect();
    let levels: Vec<i16> = received.chunks_exact(160).map(|f| f[80]).filter(|l| *l >= 900).collect();
    assert!(levels.len() >= 55, "the staircase was recorded: {} frames", levels.len());
    let descents: Vec<(i16, i16)> = levels.windows(2).filter(|w| w[1] + 50 < w[0]).map(|w| (w[0], w[1])).collect();
    assert!(descents.is_empty(), "every step after the one before: {descents:?} in {levels:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp3_recording_ends_on_its_key_and_other_applications_cannot_fetch_it() {
    let env = env(json!([
        {"action": "record", "endOnKey": "#", "eventUrl": ["APP/recording"]},
        {"action": "wait", "timeout": 10}
    ]))
    .await;
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    call.rtp.send_pcmu(&tone(&[440.0], 8000.0, 1000), None).await;
    call.rtp.send_event('#').await;
    let event = event_with(&env, "recording_url", T).await.expect("the record event, before the call ends");
    assert!(env.app.statuses("inbound").iter().all(|s| s != "completed"), "the key ended the recording, not the call");
    let url = event["recording_url"].as_str().unwrap();
    let response = env.server.client.get(url).bearer_auth(env.jwt()).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let bytes = response.bytes().await.unwrap().to_vec();
    let seconds = mp3_seconds(bytes);
    assert!((0.9..2.0).contains(&seconds), "about 1.2 s recorded: {seconds}");
    // Another application of the same account sees no such file.
    let (other_id, other_key) = env.server.create_application(&env.app.base).await;
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"application_id": other_id, "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string()});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(other_key.as_bytes()).unwrap();
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap();
    let (status, body) = vbtest::send(env.server.client.get(url).bearer_auth(jwt)).await;
    vbtest::assert_problem(status, &body, 404, &[]);
    call.hang_up().await;
}

/// Seconds of audio in an MP3 file.
fn mp3_seconds(bytes: Vec<u8>) -> f64 {
    let (pcm, rate) = mp3_decode(bytes);
    pcm.len() as f64 / f64::from(rate)
}

/// The samples (first channel) and sample rate of an MP3 file.
fn mp3_decode(bytes: Vec<u8>) -> (Vec<i16>, u32) {
    use symphonia::core::{
        audio::SampleBuffer, codecs::DecoderOptions, formats::FormatOptions, io::MediaSourceStream,
        meta::MetadataOptions, probe::Hint,
    };
    let stream = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &FormatOptions::default(), &MetadataOptions::default())
        .expect("an MP3");
    let mut format = probed.format;
    let track = format.default_track().unwrap().clone();
    let mut decoder = symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default()).unwrap();
    let (mut pcm, mut rate) = (Vec::new(), 8000);
    while let Ok(packet) = format.next_packet() {
        if let Ok(decoded) = decoder.decode(&packet) {
            let spec = *decoded.spec();
            rate = spec.rate;
            let mut samples = SampleBuffer::<i16>::new(decoded.capacity() as u64, spec);
            samples.copy_interleaved_ref(decoded);
            pcm.extend(samples.samples().iter().step_by(spec.channels.count().max(1)));
        }
    }
    (pcm, rate)
}

/// What the application's WebSocket server got: the handshake's `Authorization`, the first
/// message, and the binary frames' arrival times and bytes.
type WebsocketReceived = (Option<String>, Value, Vec<(std::time::Instant, Vec<u8>)>);

/// The application's WebSocket server: checks the first message, then takes `frames` binary
/// frames (echoing each back), then closes.
async fn websocket_server(listener: tokio::net::TcpListener, rate: u32, frames: usize) -> WebsocketReceived {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let (tcp, _) = listener.accept().await.unwrap();
    let authorization = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = authorization.clone();
    #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback type returns its ErrorResponse")]
    let callback = move |req: &Request, res: Response| {
        let value = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        *seen.lock().unwrap() = value;
        Ok(res)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback).await.unwrap();
    let authorization = authorization.lock().unwrap().clone();
    let first = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap(),
        other => panic!("the first message is text, got {other:?}"),
    };
    assert_eq!(first["content-type"], format!("audio/l16;rate={rate}"));
    let mut got = Vec::new();
    while got.len() < frames {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => {
                got.push((std::time::Instant::now(), b.to_vec()));
                ws.send(Message::Binary(b)).await.unwrap();
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("audio frames are binary, got {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
    (authorization, first, got)
}

/// A caller bridged to the application's WebSocket at `rate`; `signed`: the connect asks for
/// Vonage's token in the handshake (`authorization: {"type": "vonage"}`).
async fn websocket_round_trip(rate: u32, signed: bool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut endpoint = json!({"type": "websocket", "uri": format!("ws://127.0.0.1:{port}/socket"),
                              "content-type": format!("audio/l16;rate={rate}"), "headers": {"app": "demo", "n": 1}});
    if signed && let Some(e) = endpoint.as_object_mut() {
        e.insert("authorization".into(), json!({"type": "vonage"}));
    }
    let env = env(json!([
        {"action": "connect", "endpoint": [endpoint]},
        {"action": "talk", "text": "The socket closed. Goodbye."}
    ]))
    .await;
    let server = tokio::spawn(websocket_server(listener, rate, 150));
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let sending = tokio::spawn(async move {
        call.rtp.send_pcmu(&tone(&[600.0], 8000.0, 2000), None).await;
        call
    });
    let (authorization, first, frames) = server.await.unwrap();
    let call = sending.await.unwrap();
    match authorization.as_deref().map(|a| a.strip_prefix("Bearer ")) {
        Some(Some(token)) if signed => {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.required_spec_claims.clear();
            let key = jsonwebtoken::DecodingKey::from_secret(vbtest::SIGNATURE_SECRET.as_bytes());
            let claims =
                jsonwebtoken::decode::<Value>(token, &key, &validation).expect("signed with the secret").claims;
            assert_eq!(claims["application_id"], env.app_id.as_str(), "{claims}");
        }
        None if !signed => {}
        other => panic!("signed {signed}, handshake Authorization {other:?}"),
    }
    assert_eq!(
        (first["event"].as_str(), first["app"].as_str(), first["n"].as_i64()),
        (Some("websocket:connected"), Some("demo"), Some(1))
    );
    let size = rate as usize / 50 * 2;
    assert!(frames.iter().all(|(_, b)| b.len() == size), "every frame is 20 ms of 16-bit PCM: {size} bytes");
    let span = frames.last().unwrap().0.duration_since(frames[0].0);
    assert!(span >= Duration::from_millis(1500), "150 frames paced over ~3 s, not sent in a burst: {span:?}");
    let loud = frames
        .iter()
        .filter(|(_, b)| {
            let pcm: Vec<i16> = b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
            rms(&pcm) > 2000.0
        })
        .count();
    assert!(loud >= 80, "the caller's 2 s tone reached the socket: {loud} loud frames of {}", frames.len());
    // The echo is played to the caller, then the closing socket ends the leg and the talk runs.
    let heard = hear(&call, T, Duration::from_millis(1500)).await;
    let pcm = decode_pcmu(&heard);
    let echoed = pcm.chunks(160).filter(|f| rms(f) > 2000.0).count();
    assert!(echoed >= 60, "the echoed tone reached the caller: {echoed} loud packets of {}", heard.len());
    assert!(call.expect_bye(T).await);
    let ws_leg = env
        .app
        .events()
        .into_iter()
        .filter(|e| e.body["to"].as_str().is_some_and(|t| t.starts_with("ws://")))
        .map(|e| e.body["status"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(ws_leg, ["started", "answered", "disconnected", "completed"], "the WebSocket leg's events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_at_8_khz_gets_paced_frames_and_its_audio_reaches_the_caller() {
    websocket_round_trip(8000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_at_16_khz_with_vonages_token_gets_paced_frames_and_its_audio_reaches_the_caller() {
    websocket_round_trip(16000, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_conversation_gives_its_event_url_an_mp3_of_what_its_member_heard() {
    let env = env(json!([{"action": "conversation", "name": "taped", "record": true,
                          "eventUrl": ["APP/conversation-recording"]}]))
    .await;
    let a = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    env.app.set_ncco(json!([{"action": "conversation", "name": "taped"}]));
    let mut b = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    b.rtp.send_pcmu(&tone(&[700.0], 5000.0, 2000), None).await;
    a.hang_up().await;
    b.hang_up().await;
    let recorded = vbtest::eventually(T, || async {
        let events = env.app.events();
        events.into_iter().find(|e| e.path == "/conversation-recording").ok_or(())
    })
    .await
    .expect("the conversation's record event");
    let url = recorded.body["recording_url"].as_str().expect("recording_url").to_owned();
    assert!(recorded.body["start_time"].is_string() && recorded.body["end_time"].is_string(), "{}", recorded.body);
    let client = &env.server.client;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401, "no JWT, no recording");
    let mp3 = client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    let (pcm, rate) = mp3_decode(mp3.to_vec());
    assert_eq!(rate, 8000);
    assert!(pcm.len() >= 8000 * 2, "at least the two seconds B spoke: {} samples", pcm.len());
    let power = vbtest::rtp::tone_power(&pcm, 700.0);
    assert!(power > 1.0e4, "A's recording holds B's 700 Hz tone (what A heard): {power:.0}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_recording_of_a_conversation_gives_each_party_its_own_channel() {
    use vbtest::rtp::tone_power;
    let env = env(json!([
        {"action": "record", "format": "wav", "split": "conversation", "channels": 3, "eventUrl": ["APP/recording"]},
        {"action": "conversation", "name": "panel"}
    ]))
    .await;
    let a = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    env.app.set_ncco(json!([{"action": "conversation", "name": "panel"}]));
    let b = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let c = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let talking: Vec<_> = [a, b, c]
        .into_iter()
        .zip([500.0f32, 900.0, 1400.0])
        .map(|(mut call, f)| {
            tokio::spawn(async move {
                call.rtp.send_pcmu(&tone(&[f], 5000.0, 2500), None).await;
                call
            })
        })
        .collect();
    for call in futures_util::future::join_all(talking).await {
        call.unwrap().hang_up().await;
    }
    let event = event_with(&env, "recording_url", T).await.expect("the record event");
    let url = event["recording_url"].as_str().unwrap().to_owned();
    let bytes = env.server.client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    let mut wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("a valid WAV");
    assert_eq!((wav.spec().channels, wav.spec().sample_rate), (3, 8000));
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let channel = |n: usize| -> Vec<i16> { samples.iter().skip(n).step_by(3).copied().collect() };
    let (ch0, ch1, ch2) = (channel(0), channel(1), channel(2));
    assert!(ch0.len() > 16000, "{} samples a channel", ch0.len());
    let power = |pcm: &[i16], f: f32| tone_power(&pcm[4000..pcm.len().min(16000)], f);
    let only = |pcm: &[i16], f: f32, others: [f32; 2]| {
        power(pcm, f) > 1.0e5 && others.iter().all(|o| power(pcm, *o) < power(pcm, f) / 100.0)
    };
    assert!(only(&ch0, 500.0, [900.0, 1400.0]), "the recorded caller alone on the first channel");
    // The other two, each on its own channel, in the order first heard.
    let b_then_c = only(&ch1, 900.0, [500.0, 1400.0]) && only(&ch2, 1400.0, [500.0, 900.0]);
    let c_then_b = only(&ch1, 1400.0, [500.0, 900.0]) && only(&ch2, 900.0, [500.0, 1400.0]);
    assert!(
        b_then_c || c_then_b,
        "one party a channel: ch1 900 Hz {:.0} 1400 Hz {:.0}; ch2 900 Hz {:.0} 1400 Hz {:.0}",
        power(&ch1, 900.0),
        power(&ch1, 1400.0),
        power(&ch2, 900.0),
        power(&ch2, 1400.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_callers_in_a_conversation_hear_the_others_and_nobody_hears_the_muted_one() {
    use vbtest::rtp::{receive_for, tone_power};
    let env = env(json!([{"action": "conversation", "name": "standup"}])).await;
    let a = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let b = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    env.app.set_ncco(json!([{"action": "conversation", "name": "standup", "mute": true}]));
    let c = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let freqs = [500.0f32, 900.0, 1400.0];
    let mut listening = Vec::new();
    let mut talking = Vec::new();
    for (mut call, f) in [a, b, c].into_iter().zip(freqs) {
        let ear = call.rtp.listener();
        listening.push(tokio::spawn(async move { receive_for(&ear, Duration::from_millis(2600)).await }));
        talking.push(tokio::spawn(async move {
            call.rtp.send_pcmu(&tone(&[f], 5000.0, 2500), None).await;
            call
        }));
    }
    let mut heard = Vec::new();
    for l in listening {
        heard.push(decode_pcmu(&l.await.unwrap()));
    }
    let calls: Vec<RawCall> = futures_util::future::join_all(talking).await.into_iter().map(Result::unwrap).collect();
    let hears = |who: usize, f: f32| {
        let pcm = &heard[who];
        // The middle second, when everyone talks.
        let part = &pcm[pcm.len().min(4000)..pcm.len().min(12000)];
        tone_power(part, f)
    };
    let loud = 1.0e5;
    for (who, expect, never) in [
        (0, vec![900.0], vec![500.0, 1400.0]),
        (1, vec![500.0], vec![900.0, 1400.0]),
        (2, vec![500.0, 900.0], vec![1400.0]),
    ] {
        assert!(heard[who].len() > 8000, "caller {who} heard {} samples", heard[who].len());
        for f in expect {
            assert!(hears(who, f) > loud, "caller {who} hears {f} Hz: {:.0}", hears(who, f));
        }
        for f in never {
            assert!(hears(who, f) < loud / 50.0, "caller {who} must not hear {f} Hz: {:.0}", hears(who, f));
        }
    }
    for call in &calls {
        call.hang_up().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_of_a_call_with_induced_loss_shows_the_loss() {
    let env = env(json!([{"action": "wait", "timeout": 4}])).await;
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    // 3 s of audio with every 10th packet dropped (and its sequence number skipped).
    let sent = call.rtp.send_pcmu(&tone(&[440.0], 6000.0, 3000), Some(10)).await;
    assert_eq!(sent, 135);
    assert!(call.expect_bye(T).await);
    assert!(env.app.wait_status("inbound", "completed", T).await);
    let completed = env.app.events().into_iter().find(|e| e.body["status"] == "completed").unwrap().body;
    let q = &completed["quality"];
    assert_eq!(q["packets_received"], 135, "{completed}");
    assert_eq!(q["packets_lost"], 14, "15 dropped, the last one not yet known lost: {q}");
    let loss = q["loss_percent"].as_f64().unwrap();
    assert!((9.0..=10.5).contains(&loss), "{q}");
    let mos = q["mos"].as_f64().unwrap();
    assert!((2.5..4.0).contains(&mos), "10% loss costs MOS: {q}");
    assert!(q["jitter_ms"].as_f64().unwrap() < 20.0, "{q}");
    // The same figures on the call's record.
    let uuid = completed["uuid"].as_str().unwrap();
    let (status, call_json) =
        vbtest::send(env.server.client.get(env.server.url(&format!("/v1/calls/{uuid}"))).bearer_auth(env.jwt())).await;
    assert_eq!(status, 200);
    assert_eq!(call_json["quality"], *q);
}

/// A caller in another codec (`codec`: G722, opus, L16 at 16 kHz, or G729) bridged to a PCMU
/// far end: each hears the other's tone, so the media process decodes, resamples and re-encodes
/// both ways.
async fn transcoded_bridge(codec: &str) {
    use vbtest::rtp::{answer_as_far_end, receive_for, tone_power};
    let far = vbtest::raw::RawSip::new("127.0.0.1:9").await;
    let far_rtp = vbtest::rtp::RtpPeer::bind().await;
    let far_port = far_rtp.local_addr().unwrap().port();
    let env =
        env(json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:bob@{}", far.local)}]}]))
            .await;
    let (pt, rtpmap, ticks) = match codec {
        "G722" => (9u8, "G722/8000", 160u32),
        "L16" => (96, "L16/16000", 320),
        "G729" => (18, "G729/8000", 160),
        _ => (111, "opus/48000/2", 960),
    };
    let offer = move |port: u16| {
        format!(
            "v=0\r\no=wide 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {rtpmap}\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
        )
    };
    let sip = env.sip.clone();
    let placing = tokio::spawn(async move { RawCall::place(&sip, URI, offer).await });
    let (invite, _, _) = answer_as_far_end(&far, far_port, T).await;
    let call = placing.await.unwrap();
    assert!(call.ok.body().contains(rtpmap), "the caller's codec is answered: {}", call.ok.body());
    assert!(
        invite.body().contains("RTP/AVP 0") || invite.body().contains(&format!("RTP/AVP {pt}")),
        "{}",
        invite.body()
    );
    let b_leg = vbtest::raw::sdp_rtp_addr(invite.body()).unwrap();

    // The caller encodes a 500 Hz tone in its codec; the far end sends 900 Hz in PCMU.
    let mut g722 = ezk_g722::libg722::encoder::Encoder::new(ezk_g722::libg722::Bitrate::Mode1_64000, false, false);
    let mut opus_enc = opus::Encoder::new(16000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let mut g729 = g729_sys::Encoder::new(false);
    let wide_tone: Vec<i16> = (0..16000 * 2)
        .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * 500.0 * i as f32 / 16000.0).sin()) as i16)
        .collect();
    let caller_sock = call.rtp.listener();
    let remote = call.rtp.remote;
    let caller_ear = call.rtp.listener();
    // The far end sends from the port its SDP named (symmetric RTP latches it).
    let far = vbtest::rtp::RtpPeer::new(far_rtp, b_leg);
    let far_ear = far.listener();
    let mut far_mouth = far;
    let caller_sends = tokio::spawn(async move {
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for (i, frame) in wide_tone.chunks(320).enumerate() {
            clock.tick().await;
            let payload = if pt == 9 {
                g722.encode(frame)
            } else if pt == 96 {
                frame.iter().flat_map(|s| s.to_be_bytes()).collect()
            } else if pt == 18 {
                // 8 kHz: two 10 ms frames of 80 samples.
                let narrow: Vec<i16> = frame.iter().step_by(2).copied().collect();
                narrow.chunks(80).flat_map(|f| g729.encode(f.try_into().unwrap())).collect()
            } else {
                let mut buf = [0u8; 400];
                let n = opus_enc.encode(frame, &mut buf).unwrap();
                buf[..n].to_vec()
            };
            let mut p = vec![0x80, pt];
            p.extend((i as u16).to_be_bytes());
            p.extend((i as u32 * ticks).to_be_bytes());
            p.extend(0x1234_5678u32.to_be_bytes());
            p.extend(payload);
            caller_sock.send_to(&p, remote).await.unwrap();
        }
    });
    let far_sends = tokio::spawn(async move { far_mouth.send_pcmu(&tone(&[900.0], 6000.0, 2000), None).await });
    let (at_far, at_caller) = tokio::join!(
        receive_for(&far_ear, Duration::from_millis(2500)),
        receive_for(&caller_ear, Duration::from_millis(2500))
    );
    caller_sends.await.unwrap();
    far_sends.await.unwrap();

    let far_pcm = decode_pcmu(&at_far);
    assert!(at_far.iter().all(|p| p.payload_type == 0), "the far end gets PCMU");
    assert!(far_pcm.len() > 8000, "{} samples reached the far end", far_pcm.len());
    let part = &far_pcm[2000..far_pcm.len().min(12000)];
    assert!(
        tone_power(part, 500.0) > 100.0 * tone_power(part, 900.0).max(1.0),
        "the far end hears the caller's 500 Hz"
    );
    assert!(tone_power(part, 500.0) > 1.0e5, "{}", tone_power(part, 500.0));

    assert!(at_caller.iter().all(|p| p.payload_type == pt), "the caller gets its own codec");
    let mut caller_pcm = Vec::new();
    let mut g722_dec = ezk_g722::libg722::decoder::Decoder::new(ezk_g722::libg722::Bitrate::Mode1_64000, false, false);
    let mut opus_dec = opus::Decoder::new(16000, opus::Channels::Mono).unwrap();
    let mut g729_dec = g729_sys::Decoder::new();
    for p in &at_caller {
        if pt == 9 {
            caller_pcm.extend(g722_dec.decode(&p.payload));
        } else if pt == 18 {
            assert_eq!(p.payload.len(), 20, "two 10-byte G.729 frames");
            for f in p.payload.chunks(10) {
                // Back to the 16 kHz the checks below read, sample by sample.
                caller_pcm.extend(g729_dec.decode(f, false, false, false).iter().flat_map(|s| [*s, *s]));
            }
        } else if pt == 96 {
            assert_eq!(p.payload.len(), 640, "20 ms of 16-bit samples at 16 kHz");
            caller_pcm.extend(p.payload.chunks(2).map(|b| i16::from_be_bytes([b[0], b[1]])));
        } else {
            let mut out = [0i16; 1920];
            let n = opus_dec.decode(&p.payload, &mut out, false).unwrap();
            caller_pcm.extend_from_slice(&out[..n]);
        }
    }
    if let [a, b] = at_caller.get(..2).unwrap_or_default() {
        assert_eq!(b.timestamp.wrapping_sub(a.timestamp), ticks, "timestamps in the caller's clock");
    }
    assert!(caller_pcm.len() > 16000, "{} samples (16 kHz) reached the caller", caller_pcm.len());
    // At 16 kHz a 900 Hz tone looks like 450 Hz to an 8 kHz Goertzel: downsample by two first.
    let narrow: Vec<i16> = caller_pcm.iter().step_by(2).copied().collect();
    let part = &narrow[2000..narrow.len().min(12000)];
    assert!(tone_power(part, 900.0) > 1.0e5, "the caller hears the far end's 900 Hz: {}", tone_power(part, 900.0));
    assert!(tone_power(part, 900.0) > 100.0 * tone_power(part, 500.0).max(1.0), "and not its own tone");
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g722_caller_bridged_to_a_pcmu_callee_is_transcoded_both_ways() {
    transcoded_bridge("G722").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_caller_bridged_to_a_pcmu_callee_is_transcoded_both_ways() {
    transcoded_bridge("opus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g729_caller_bridged_to_a_pcmu_callee_is_transcoded_both_ways() {
    transcoded_bridge("G729").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l16_wideband_caller_bridged_to_a_pcmu_callee_is_transcoded_both_ways() {
    transcoded_bridge("L16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_collects_digits_sent_as_sip_info() {
    let env = env(json!([
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 2, "timeOut": 10}, "eventUrl": ["APP/input"]}
    ]))
    .await;
    env.app.set_document("/input", json!([]));
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    for (cseq, (content_type, body)) in
        [("application/dtmf-relay", "Signal=4\r\nDuration=160\r\n"), ("application/dtmf", "2")].into_iter().enumerate()
    {
        let info = call.in_dialog("INFO", 10 + cseq as u32).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
        );
        call.sip.send(&info).await;
        let (reply, _) = call.sip.recv(T).await.expect("a reply to INFO");
        assert_eq!(reply.status(), Some(200), "{}", reply.0);
    }
    let input = event_with(&env, "dtmf", T).await.expect("the input event");
    assert_eq!(input["dtmf"], json!({"digits": "42", "timed_out": false}), "{input}");
    assert!(call.expect_bye(T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_api_talk_stream_dtmf_and_mute_act_on_a_live_call() {
    let env = env(json!([{"action": "wait", "timeout": 20}])).await;
    env.app.set_file("/tone.wav", "audio/wav", &[], tone_wav(0.6));
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    assert!(env.app.wait_status("inbound", "answered", T).await);
    let uuid = env.app.leg_uuid("inbound").unwrap();
    let client = &env.server.client;
    let url = |path: &str| env.server.url(&format!("/v1/calls/{uuid}{path}"));
    let put = |path: &str, body: Value| client.put(url(path)).bearer_auth(env.jwt()).json(&body);

    // Refused before anything happens, each with the field named.
    let (status, body) = vbtest::send(put("/talk", json!({"text": "", "language": "xx-XX", "loop": 1000}))).await;
    vbtest::assert_problem(status, &body, 400, &["text", "language", "loop"]);
    let (status, body) = vbtest::send(put("/stream", json!({"stream_url": ["ftp://x/a.mp3"], "level": 3}))).await;
    vbtest::assert_problem(status, &body, 400, &["stream_url", "level"]);
    let (status, body) = vbtest::send(put("/dtmf", json!({"digits": "12x"}))).await;
    vbtest::assert_problem(status, &body, 400, &["digits"]);

    let (status, body) =
        vbtest::send(put("/talk", json!({"text": "Your call is important to us.", "loop": "0"}))).await;
    assert_eq!(
        (status, body["message"].as_str(), body["uuid"].as_str()),
        (200, Some("Talk started"), Some(uuid.as_str()))
    );
    let speech = hear(&call, Duration::from_secs(1), Duration::from_millis(500)).await;
    assert!(speech.len() >= 40 && rms(&decode_pcmu(&speech)) > 300.0, "{} packets of speech", speech.len());
    let (status, body) = vbtest::send(client.delete(url("/talk")).bearer_auth(env.jwt())).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Talk stopped")));
    let after = hear(&call, Duration::from_millis(600), Duration::from_millis(300)).await;
    assert!(after.len() < 10, "the looping talk stopped: {} packets after", after.len());

    let (status, body) =
        vbtest::send(put("/stream", json!({"stream_url": [format!("{}/tone.wav", env.app.base)]}))).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Stream started")));
    let streamed = hear(&call, T, Duration::from_millis(500)).await;
    assert!((25..=35).contains(&streamed.len()), "0.6 s of stream: {} packets", streamed.len());
    assert!(rms(&decode_pcmu(&streamed)) > 3000.0);

    let (status, body) = vbtest::send(put("/dtmf", json!({"digits": "1p9#"}))).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("DTMF sent")));
    let events = hear(&call, T, Duration::from_millis(800)).await;
    let mut rx = domains::dtmf::EventReceiver::default();
    let digits: String = events
        .iter()
        .filter(|p| p.payload_type == 101)
        .filter_map(|p| rx.on_packet(p.ssrc, p.timestamp, &p.payload))
        .collect();
    assert_eq!(digits, "19#", "RFC 4733 events reached the caller");

    for action in ["mute", "unmute", "earmuff", "unearmuff"] {
        let (status, body) = vbtest::send(put("", json!({"action": action}))).await;
        assert_eq!(status, 204, "{action}: {body}");
    }
    call.hang_up().await;
    assert!(env.app.wait_status("inbound", "completed", T).await);
    let (status, body) = vbtest::send(put("/talk", json!({"text": "too late"}))).await;
    vbtest::assert_problem(status, &body, 400, &[]);
}

/// Speech by espeak-ng at 8 kHz (nearest-sample decimation is enough for a level detector).
fn spoken(text: &str) -> Vec<i16> {
    let path = std::env::temp_dir().join(format!("vb-amd-{}.wav", uuid::Uuid::new_v4().simple()));
    let ok = std::process::Command::new("espeak-ng").arg("-w").arg(&path).arg(text).status().unwrap().success();
    assert!(ok, "espeak-ng speaks");
    let mut wav = hound::WavReader::open(&path).unwrap();
    let rate = wav.spec().sample_rate as usize;
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let _ = std::fs::remove_file(&path);
    (0..samples.len() * 8000 / rate).map(|i| samples[i * rate / 8000]).collect()
}

/// A callee that answers and plays `audio` then silence, detected as `detection` asks (the
/// connect's `machineDetection` or `advancedMachineDetection` field): the detection events
/// once `wanted` of them came (or the wait ran out), and whether voxbridge hung up on it.
async fn machine_detection(audio: Vec<i16>, detection: Value, wanted: usize) -> (Vec<Value>, bool) {
    use vbtest::rtp::answer_as_far_end;
    let far = vbtest::raw::RawSip::new("127.0.0.1:9").await;
    let far_rtp = vbtest::rtp::RtpPeer::bind().await;
    let far_port = far_rtp.local_addr().unwrap().port();
    let mut connect = json!({"action": "connect", "eventUrl": ["APP/connect-events"],
                             "endpoint": [{"type": "sip", "uri": format!("sip:bob@{}", far.local)}]});
    if let (Some(c), Some(d)) = (connect.as_object_mut(), detection.as_object()) {
        c.extend(d.clone());
    }
    let env = env(json!([connect, {"action": "talk", "text": "The callee was a machine."}])).await;
    let sip = env.sip.clone();
    let placing = tokio::spawn(async move { RawCall::place(&sip, URI, vbtest::raw::sdp_offer).await });
    let (invite, _, _) = answer_as_far_end(&far, far_port, T).await;
    let call = placing.await.unwrap();
    let mut far_peer = vbtest::rtp::RtpPeer::new(far_rtp, vbtest::raw::sdp_rtp_addr(invite.body()).unwrap());
    let mut stream = audio;
    stream.extend(vec![0i16; 8000 * 3]);
    let sending = tokio::spawn(async move { far_peer.send_pcmu(&stream, None).await });
    let verdicts = vbtest::eventually(Duration::from_secs(15), || async {
        let got: Vec<Value> =
            env.app.events().into_iter().filter(|e| e.body.get("call_uuid").is_some()).map(|e| e.body).collect();
        if got.len() >= wanted { Ok(got) } else { Err(got) }
    })
    .await
    .unwrap_or_else(|got| got);
    let hung_up = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match far.recv(Duration::from_secs(2)).await {
                Some((m, _)) if m.method() == Some("BYE") => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    sending.abort();
    call.hang_up().await;
    (verdicts, hung_up)
}

/// The `status` of the first detection event.
fn first_status(events: &[Value]) -> &str {
    events.first().and_then(|e| e["status"].as_str()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_detection_tells_a_recorded_greeting_from_a_short_hello() {
    let greeting = spoken(
        "Hi, you have reached Sam Jones. I cannot take your call right now, please leave a message after the tone.",
    );
    let hang_up = json!({"machineDetection": "hangup"});
    let (events, hung_up) = machine_detection(greeting, hang_up.clone(), 1).await;
    assert_eq!((first_status(&events), hung_up), ("machine", true), "a greeting is a machine, hung up as asked");
    let (events, hung_up) = machine_detection(spoken("Hello?"), hang_up, 1).await;
    assert_eq!((first_status(&events), hung_up), ("human", false), "a short hello is a person, kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advanced_machine_detection_hears_the_beep_after_the_greeting() {
    let mut audio = spoken("Hi, you have reached Sam Jones. Please leave a message after the tone.");
    audio.extend(vec![0i16; 8000 / 2]);
    audio.extend(tone(&[1000.0], 8000.0, 500));
    let detection =
        json!({"advancedMachineDetection": {"behavior": "continue", "mode": "default", "beep_timeout": 45}});
    let (events, hung_up) = machine_detection(audio, detection, 2).await;
    let states: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["status"].as_str().unwrap_or_default(), e["sub_state"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(states, [("machine", ""), ("machine", "beep_start")], "{events:?}");
    assert!(!hung_up, "behavior continue keeps the callee");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_input_is_transcribed_by_the_configured_recogniser() {
    let (asr, env) = vbtest::speech::FakeSpeech::with_platform().await;
    let input = |start_timeout: u32| {
        let ncco = json!([
            {"action": "input", "type": ["speech"], "eventUrl": ["APP/input"],
             "speech": {"language": "en-GB", "context": ["sales", "support"], "endOnSilence": 1,
                        "startTimeout": start_timeout, "maxDuration": 10}},
            {"action": "wait", "timeout": 1}
        ]);
        serde_json::from_str::<Value>(&ncco.to_string().replace("APP/", &format!("{}/", env.app.base))).unwrap()
    };
    env.app.set_ncco(input(5));
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    call.rtp.send_pcmu(&vbtest::speech::FakeSpeech::word(440.0), None).await;
    let posted = vbtest::eventually(T, || async {
        env.app.events().into_iter().find(|e| e.path == "/input").map(|e| e.body).ok_or(())
    })
    .await
    .expect("the input's result");
    assert_eq!(posted["speech"]["results"][0]["text"], "sales", "{posted}");
    assert_eq!(posted["speech"]["timeout_reason"], "end_on_silence_timeout", "{posted}");
    assert!(posted["speech"].get("error").is_none(), "{posted}");
    let heard = asr.heard();
    assert_eq!(heard.len(), 1, "one utterance, one request");
    let utterance = &heard[0];
    assert_eq!((utterance.field("model"), utterance.field("language")), (Some("whisper-1"), Some("en")));
    assert_eq!(utterance.field("prompt"), Some("sales, support"));
    let seconds = utterance.samples.len() as f64 / f64::from(utterance.rate);
    assert!((1.2..2.8).contains(&seconds), "the word and the silence that ended it: {seconds} s");
    call.hang_up().await;

    // Nobody speaks: the start timeout ends it, and the recogniser is not asked.
    env.app.set_ncco(input(1));
    let mut quiet = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    quiet.rtp.send_pcmu(&vec![0i16; 8000 * 2], None).await;
    let posted = vbtest::eventually(T, || async {
        let inputs: Vec<Value> = env.app.events().into_iter().filter(|e| e.path == "/input").map(|e| e.body).collect();
        inputs.get(1).cloned().ok_or(())
    })
    .await
    .expect("the second input's result");
    assert_eq!(posted["speech"]["timeout_reason"], "start_timeout", "{posted}");
    assert_eq!(posted["speech"]["results"], json!([]), "nothing said, nothing made up");
    assert_eq!(asr.heard().len(), 1);
    quiet.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_member_hears_music_on_hold_until_the_host_joins_and_leaves_when_the_host_does() {
    use vbtest::rtp::{receive_for, tone_power};
    let env = env(json!([
        {"action": "conversation", "name": "lobby", "startOnEnter": false, "musicOnHoldUrl": ["APP/hold.wav"]},
        {"action": "talk", "text": "The meeting has ended. Goodbye."}
    ]))
    .await;
    // The hold music: a 1 kHz tone (looped until the conversation starts).
    env.app.set_file("/hold.wav", "audio/wav", &[], tone_wav(1.0));
    let guest = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let ear = guest.rtp.listener();
    let waiting = decode_pcmu(&receive_for(&ear, Duration::from_millis(1500)).await);
    assert!(waiting.len() > 8000, "the guest hears something while waiting: {} samples", waiting.len());
    assert!(tone_power(&waiting[2000..], 1000.0) > 1.0e5, "the hold music");

    // The host starts the conversation (startOnEnter by default) and ends it on exit.
    env.app.set_ncco(json!([{"action": "conversation", "name": "lobby", "endOnExit": true}]));
    let mut host = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let listening = tokio::spawn(async move { receive_for(&ear, Duration::from_millis(2000)).await });
    host.rtp.send_pcmu(&tone(&[600.0], 5000.0, 2000), None).await;
    let meeting = decode_pcmu(&listening.await.unwrap());
    let part = &meeting[meeting.len().min(4000)..meeting.len().min(12000)];
    assert!(tone_power(part, 600.0) > 1.0e5, "the guest hears the host: {:.0}", tone_power(part, 600.0));
    assert!(tone_power(part, 1000.0) < tone_power(part, 600.0) / 100.0, "and no more hold music");

    // The host leaves: the conversation ends for the guest, whose NCCO goes on to its goodbye.
    host.hang_up().await;
    let goodbye = hear(&guest, T, Duration::from_millis(800)).await;
    assert!(goodbye.len() >= 25 && rms(&decode_pcmu(&goodbye)) > 300.0, "the goodbye is spoken: {}", goodbye.len());
    assert!(guest.expect_bye(T).await, "then the guest's call ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_plays_an_mp3() {
    use vbtest::rtp::tone_power;
    let env = env(json!([{"action": "stream", "streamUrl": ["APP/tone.mp3"]}])).await;
    env.app.set_file("/tone.mp3", "audio/mpeg", &[], vbtest::rtp::tone_mp3(700.0, 1.0));
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let heard = hear(&call, T, Duration::from_millis(800)).await;
    assert!((45..=60).contains(&heard.len()), "a second of audio: {} packets", heard.len());
    assert_one_paced_stream(&heard);
    let pcm = decode_pcmu(&heard);
    assert!(tone_power(&pcm[800..7200], 700.0) > 1.0e5, "the MP3's 700 Hz: {:.0}", tone_power(&pcm[800..7200], 700.0));
    assert!(call.expect_bye(T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_ends_on_silence_while_the_call_goes_on() {
    let env = env(json!([
        {"action": "record", "format": "wav", "endOnSilence": 3, "eventUrl": ["APP/recording"]},
        {"action": "wait", "timeout": 15}
    ]))
    .await;
    let mut call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let mut said = tone(&[440.0], 6000.0, 1000);
    said.extend(vec![0i16; 8000 * 5]);
    call.rtp.send_pcmu(&said, None).await;
    let event = event_with(&env, "recording_url", T).await.expect("the record event");
    assert!(env.app.statuses("inbound").iter().all(|s| s != "completed"), "silence ended the recording, not the call");
    let url = event["recording_url"].as_str().unwrap().to_owned();
    let bytes = env.server.client.get(&url).bearer_auth(env.jwt()).send().await.unwrap().bytes().await.unwrap();
    let wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("a valid WAV");
    let seconds = wav.duration() as f64 / 8000.0;
    assert!((3.6..5.0).contains(&seconds), "the second of speech and three of silence: {seconds} s");
    call.hang_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_can_be_spoken_by_an_http_text_to_speech_service() {
    use vbtest::rtp::tone_power;
    let (tts, env) = vbtest::speech::FakeSpeech::with_platform().await;
    env.app.set_ncco(json!([{"action": "talk", "text": "Your parcel arrives today.", "language": "en-GB"}]));
    let call = RawCall::place(&env.sip, URI, vbtest::raw::sdp_offer).await;
    let heard = hear(&call, T, Duration::from_millis(800)).await;
    assert!((45..=60).contains(&heard.len()), "the service's second of audio: {} packets", heard.len());
    let pcm = decode_pcmu(&heard);
    assert!(tone_power(&pcm[800..7200], 600.0) > 1.0e5, "its 600 Hz, not espeak-ng's voice");
    let asked = tts.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        (asked[0]["input"].as_str(), asked[0]["voice"].as_str(), asked[0]["model"].as_str()),
        (Some("Your parcel arrives today."), Some("nova"), Some("tts-1"))
    );
    assert_eq!(asked[0]["response_format"], "wav");
    assert!(call.expect_bye(T).await);
}
