//! baresip (Debian's `baresip-core`, headless: a sine source, ALSA's null sink, sndfile dumps of
//! what it sends and hears) as the far end of a `connect`: the call completes with audio both
//! ways. The caller is a raw socket sending a 440 Hz tone; baresip sends 600 Hz. And baresip as a
//! phone: it registers as a domain user (`regint`, `auth_user`/`auth_pass`) and takes an `app`
//! call placed over the Voice API, hearing its talk. And baresip with SRTP (`mediaenc=srtp-mand`:
//! `RTP/SAVP` keyed by `a=crypto`, libre's own SRTP): a secure caller into a domain that requires
//! SRTP, connected to a secure callee (`;media=srtp`), each hearing the other.

use std::time::Duration;

use serde_json::json;
use vbtest::SipEnv;
use vbtest::rtp::{RawCall, decode_pcmu, receive_for, tone, tone_power};

const URI: &str = "sip:+14155550100@acme-sip.sip-us.sip.voxbridge.local";

/// Starts baresip answering on a free port; it quits by itself after `secs`.
fn baresip(dir: &std::path::Path, port: u16, secs: u32) -> std::process::Child {
    let account = format!("<sip:peer@127.0.0.1:{port}>;regint=0;answermode=auto;audio_codecs=PCMU");
    baresip_as(dir, port, secs, &account, 600.0, None)
}

/// [`baresip`] with its own account line and tone; with `dial`, it calls that URI at start.
fn baresip_as(
    dir: &std::path::Path,
    port: u16,
    secs: u32,
    account: &str,
    tone_hz: f32,
    dial: Option<&str>,
) -> std::process::Child {
    let cfg = dir.join("cfg");
    let rec = dir.join("rec");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(&rec).unwrap();
    // Its source: a tone longer than the call (baresip hangs up at the file's end).
    let source = dir.join("tone.wav");
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&source, spec).unwrap();
    for s in tone(&[tone_hz], 6000.0, 1000 * (secs + 5)) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    // RTP ports above the media ranges the other tests' servers use (10000-29999).
    let rtp = 31000 + (port % 50) * 20;
    let config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{port}\naudio_player alsa,null\naudio_alert alsa,null\n\
         audio_source aufile,{}\nausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
         rtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
         module alsa.so\nmodule sndfile.so\nmodule srtp.so\nmodule_tmp uuid.so\nmodule_tmp account.so\nsnd_path {}\n",
        source.display(),
        rtp + 19,
        rec.display()
    );
    // The menu module holds the `/dial` command.
    let config = if dial.is_some() { format!("{config}module menu.so\n") } else { config };
    std::fs::write(cfg.join("config"), config).unwrap();
    std::fs::write(cfg.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(cfg.join("contacts"), "").unwrap();
    let mut command = std::process::Command::new("baresip");
    if let Some(uri) = dial {
        command.arg("-e").arg(format!("/dial {uri}"));
    }
    command
        .arg("-f")
        .arg(&cfg)
        .arg("-t")
        .arg(secs.to_string())
        .arg("-v")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.join("baresip.log")).unwrap())
        .spawn()
        .expect("baresip (apt-get install baresip-core)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_completes_a_call_with_audio_both_ways() {
    let dir = vbtest::tempdir::Dir::new();
    let port = vbtest::sipp::free_port();
    let mut peer = baresip(dir.path(), port, 7);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let env = SipEnv::start(
        json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": format!("sip:peer@127.0.0.1:{port}")}]}]),
        &["127.0.0.1"],
        None,
    )
    .await;
    let log = || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    let mut call =
        RawCall::try_place(&env.sip, URI, vbtest::raw::sdp_offer).await.unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let ear = call.rtp.listener();
    let listening = tokio::spawn(async move { receive_for(&ear, Duration::from_secs(3)).await });
    call.rtp.send_pcmu(&tone(&[440.0], 6000.0, 3000), None).await;
    let heard = decode_pcmu(&listening.await.unwrap());
    assert!(heard.len() > 16000, "the caller heard {} samples from baresip", heard.len());
    let part = &heard[8000..16000];
    assert!(tone_power(part, 600.0) > 1.0e5, "baresip's 600 Hz reached the caller: {}", tone_power(part, 600.0));
    // baresip hangs up when its time is over: the call completes.
    assert!(call.expect_bye(Duration::from_secs(15)).await, "baresip's BYE came through");
    let _ = tokio::task::spawn_blocking(move || peer.wait()).await;
    assert!(
        env.app.wait_status("outbound", "completed", Duration::from_secs(10)).await,
        "{:?}",
        env.app.statuses("outbound")
    );
    // What baresip heard (its decoder's dump) holds the caller's 440 Hz.
    let narrow = heard_by(dir.path());
    assert!(narrow.len() > 16000, "{} samples at 8 kHz", narrow.len());
    let part = &narrow[4000..narrow.len().min(16000)];
    assert!(tone_power(part, 440.0) > 1.0e5, "baresip heard the caller's 440 Hz: {}", tone_power(part, 440.0));
}

/// What baresip in `dir` heard (its decoder's dump), at 8 kHz.
fn heard_by(dir: &std::path::Path) -> Vec<i16> {
    let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
    written_dump(dir).unwrap_or_else(|| panic!("baresip's dump of what it heard: {log}"))
}

/// baresip's dump of what it heard, at 8 kHz, once the file is written (sndfile writes it as
/// the call's audio closes).
fn written_dump(dir: &std::path::Path) -> Option<Vec<i16>> {
    let dump = std::fs::read_dir(dir.join("rec"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))?;
    let mut wav = hound::WavReader::open(&dump).ok()?;
    let samples: Vec<i16> = wav.samples::<i16>().map_while(Result::ok).collect();
    let rate = wav.spec().sample_rate as usize;
    Some(samples.iter().step_by((rate / 8000).max(1)).copied().collect()).filter(|s: &Vec<i16>| !s.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_caller_and_callee_talk_through_a_domain_that_requires_srtp() {
    let callee_dir = vbtest::tempdir::Dir::new();
    let callee_port = vbtest::sipp::free_port();
    let secure = "regint=0;audio_codecs=PCMU;mediaenc=srtp-mand";
    let callee_account = format!("<sip:peer@127.0.0.1:{callee_port}>;answermode=auto;{secure}");
    let mut callee = baresip_as(callee_dir.path(), callee_port, 14, &callee_account, 440.0, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let callee_uri = format!("sip:peer@127.0.0.1:{callee_port};media=srtp");
    let env = SipEnv::start(
        json!([{"action": "connect", "endpoint": [{"type": "sip", "uri": callee_uri}]}]),
        &["127.0.0.1"],
        None,
    )
    .await;
    let domain = json!({"name": "acme-sip", "application_id": env.app_id, "acl": ["127.0.0.1"], "srtp": "always"});
    let (status, body) = env.server.put_json("/v1/psip/acme-sip", domain).await;
    assert_eq!((status, body["srtp"].as_str()), (200, Some("always")), "{body}");

    // A plain RTP/AVP offer is refused where SRTP is required.
    let refused =
        RawCall::try_place(&env.sip, URI, vbtest::raw::sdp_offer).await.err().expect("a plain offer is refused");
    assert!(refused.starts_with("SIP/2.0 488"), "{refused}");

    // A secure caller (RTP/SAVP, its own key) reaches the secure callee.
    let caller_dir = vbtest::tempdir::Dir::new();
    let caller_port = vbtest::sipp::free_port();
    let caller_account = format!("<sip:alice@127.0.0.1:{caller_port}>;outbound=\"sip:{}\";{secure}", env.sip);
    let mut caller = baresip_as(caller_dir.path(), caller_port, 7, &caller_account, 600.0, Some(URI));
    let log = |dir: &vbtest::tempdir::Dir| std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert!(
        env.app.wait_status("outbound", "answered", Duration::from_secs(15)).await,
        "the secure callee answered: caller {}\ncallee {}",
        log(&caller_dir),
        log(&callee_dir)
    );
    let _ = tokio::task::spawn_blocking(move || caller.wait()).await;
    assert!(
        env.app.wait_status("outbound", "completed", Duration::from_secs(15)).await,
        "{:?}",
        env.app.statuses("outbound")
    );
    // The callee closes its dump once it has taken the BYE; killed before that, it is empty.
    let _ = vbtest::eventually(Duration::from_secs(5), || async { written_dump(callee_dir.path()).ok_or(()) }).await;
    let _ = callee.kill();
    let _ = tokio::task::spawn_blocking(move || callee.wait()).await;
    for dir in [&caller_dir, &callee_dir] {
        let said = log(dir);
        assert!(said.contains("mediaenc event 'Secure' (audio,AES_CM_128_HMAC_SHA1_80)"), "SRTP negotiated: {said}");
    }
    // Each heard the other's tone: decrypted on the way in, encrypted again on the way out.
    for (dir, hz) in [(&caller_dir, 440.0), (&callee_dir, 600.0)] {
        let heard = heard_by(dir.path());
        assert!(heard.len() > 16000, "{} samples at 8 kHz: {}", heard.len(), log(dir));
        let part = &heard[8000..16000];
        assert!(tone_power(part, hz) > 1.0e5, "{hz} Hz heard: {} ({})", tone_power(part, hz), log(dir));
    }
}

/// The unexpired bindings of alice, as the API lists them.
async fn alice_registrations(env: &SipEnv) -> Vec<serde_json::Value> {
    let (status, listed) = env.server.get("/v1/psip/acme-sip/users/alice/registrations").await;
    assert_eq!(status, 200, "{listed}");
    listed.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_as_a_domain_user_and_takes_an_app_call_with_audio() {
    registered_phone_takes_an_app_call(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_of_a_domain_that_requires_srtp_is_called_with_srtp() {
    registered_phone_takes_an_app_call(true).await;
}

/// baresip registers as alice and takes an `app` call placed over the Voice API, hearing its
/// talk; with `srtp`, its domain requires SRTP and the phone accepts nothing else.
async fn registered_phone_takes_an_app_call(srtp: bool) {
    // baresip 1.0 (libre) fails a registration whose 401 also offers SHA-256 (ENOSYS): MD5 only.
    let md5 = vec![("VOXBRIDGE_SIP_DIGEST_ALGORITHMS".to_owned(), "MD5".to_owned())];
    let env = SipEnv::start_with_env(json!([]), &[], Some(("alice", "s3cr3t-long")), md5).await;
    let (status, body) =
        env.server.post_json("/v1/numbers", json!({"number": "+14155550100", "application_id": env.app_id})).await;
    assert_eq!(status, 201, "{body}");
    if srtp {
        let domain = json!({"name": "acme-sip", "application_id": env.app_id, "acl": [], "digest_auth": true,
                            "srtp": "always"});
        let (status, body) = env.server.put_json("/v1/psip/acme-sip", domain).await;
        assert_eq!(status, 200, "{body}");
    }
    let dir = vbtest::tempdir::Dir::new();
    let port = vbtest::sipp::free_port();
    let account = format!(
        "<sip:alice@acme-sip.sip-us.sip.voxbridge.local>;auth_user=alice;auth_pass=s3cr3t-long;\
         outbound=\"sip:{}\";regint=600;answermode=auto;audio_codecs=PCMU{}",
        env.sip,
        if srtp { ";mediaenc=srtp-mand" } else { "" }
    );
    let mut phone = baresip_as(dir.path(), port, 20, &account, 600.0, None);
    let log = || std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alice_registrations(&env).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "baresip registered: {}", log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let create = env.server.client.post(env.server.url("/v1/calls")).bearer_auth(env.jwt()).json(&json!({
        "to": [{"type": "app", "user": "alice"}], "from": {"type": "phone", "number": "14155550100"},
        "ncco": [{"action": "talk", "text": "Hello Alice. This call reached the phone you registered."}]
    }));
    let (status, created) = vbtest::send(create).await;
    assert_eq!(status, 201, "{created}");
    assert!(env.app.wait_status("outbound", "answered", Duration::from_secs(15)).await, "{}", log());
    assert!(env.app.wait_status("outbound", "completed", Duration::from_secs(20)).await, "the talk ended the call");
    // baresip closes its dump when it has taken the BYE; killed before that, the file is empty.
    let written = vbtest::eventually(Duration::from_secs(5), || async { written_dump(dir.path()).ok_or(()) }).await;
    let _ = phone.kill();
    let _ = tokio::task::spawn_blocking(move || phone.wait()).await;
    if srtp {
        assert!(log().contains("mediaenc event 'Secure'"), "the phone was called with SRTP: {}", log());
    }
    // What baresip heard holds the talk: speech, not silence.
    let samples = written.unwrap_or_else(|()| heard_by(dir.path()));
    let loud = samples.chunks(160).filter(|f| vbtest::rtp::rms(f) > 500.0).count();
    assert!(loud >= 20, "baresip heard the talk: {loud} loud 20 ms frames of {}", samples.len() / 160);
}
