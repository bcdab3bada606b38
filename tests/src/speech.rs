//! Speech services on a loopback port, speaking the OpenAI-compatible forms voxbridge's HTTP
//! engines use: `POST /v1/audio/transcriptions` (speech to text) and `POST /v1/audio/speech`
//! (text to speech). Cloud speech services are outside the machine, so they are played here,
//! and they really work on the audio: the recogniser reads the uploaded WAV and "recognises"
//! the tone in it from a small vocabulary (440 Hz says "sales", 880 Hz "support"), so the
//! transcript a test sees depends on what the caller sent; the voice answers every text with a
//! second of a 600 Hz tone (so a test can tell its audio from espeak-ng's). Both keep what they
//! were asked.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

/// One request as the service saw it.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The form's text fields (`model`, `language`, `prompt`, …).
    pub fields: Vec<(String, String)>,
    /// The uploaded file's samples and rate.
    pub samples: Vec<i16>,
    pub rate: u32,
}

impl Heard {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Seen {
    heard: Mutex<Vec<Heard>>,
    asked: Mutex<Vec<Value>>,
}

pub struct FakeSpeech {
    /// The full transcription URL.
    pub asr_url: String,
    /// The full speech URL.
    pub tts_url: String,
    seen: Arc<Seen>,
    handle: actix_web::dev::ServerHandle,
}

/// The multipart parts of `body`: (name, bytes).
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some(boundary) = content_type.split("boundary=").nth(1) else { return vec![] };
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let text = body;
    let mut out = Vec::new();
    let mut rest: &[u8] = text;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let after = &rest[head_end + 4..];
        let end = find(after, format!("\r\n{delimiter}").as_bytes()).unwrap_or(after.len());
        let name = head.split("name=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
        out.push((name, after[..end].to_vec()));
        rest = &after[end..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The word a tone stands for, if the audio holds one clearly.
fn recognise(samples: &[i16], rate: u32) -> String {
    let narrow: Vec<i16> = samples.iter().step_by((rate / 8000).max(1) as usize).copied().collect();
    let power = |f: f32| crate::rtp::tone_power(&narrow, f);
    let (sales, support) = (power(440.0), power(880.0));
    if sales.max(support) < 1.0e5 {
        return String::new();
    }
    if sales > support { "sales".into() } else { "support".into() }
}

async fn transcribe(req: HttpRequest, body: web::Bytes, seen: web::Data<Arc<Seen>>) -> HttpResponse {
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut fields = Vec::new();
    let mut wav = None;
    for (name, bytes) in parts(&content_type, &body) {
        if name == "file" {
            wav = Some(bytes);
        } else {
            fields.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    let Some(reader) = wav.and_then(|w| hound::WavReader::new(std::io::Cursor::new(w)).ok()) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": {"message": "no WAV file"}}));
    };
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader.into_samples::<i16>().filter_map(Result::ok).collect();
    let text = recognise(&samples, rate);
    seen.heard.lock().unwrap().push(Heard { fields, samples, rate });
    HttpResponse::Ok().json(serde_json::json!({ "text": text }))
}

async fn speak(body: web::Json<Value>, seen: web::Data<Arc<Seen>>) -> HttpResponse {
    seen.asked.lock().unwrap().push(body.into_inner());
    HttpResponse::Ok().content_type("audio/wav").body(crate::rtp::tone_wav_at(600.0, 1.0))
}

impl FakeSpeech {
    /// The services, and a platform whose media process uses them (`VOXBRIDGE_ASR_URL`,
    /// `VOXBRIDGE_TTS_URL`) with a domain admitting loopback callers.
    pub async fn with_platform() -> (FakeSpeech, crate::SipEnv) {
        let speech = FakeSpeech::start().await;
        let env = vec![
            ("VOXBRIDGE_ASR_URL".to_owned(), speech.asr_url.clone()),
            ("VOXBRIDGE_TTS_URL".to_owned(), speech.tts_url.clone()),
            ("VOXBRIDGE_TTS_VOICE".to_owned(), "nova".to_owned()),
        ];
        let platform = crate::SipEnv::start_with_env(Value::Null, &["127.0.0.1"], None, env).await;
        (speech, platform)
    }

    /// What a caller says to the recogniser: a pause, one "word" (a second of `hz`: 440 Hz is
    /// "sales", 880 Hz "support"), then quiet long enough to end the utterance.
    pub fn word(hz: f32) -> Vec<i16> {
        let mut said = vec![0i16; 2400];
        said.extend(crate::rtp::tone(&[hz], 5000.0, 1000));
        said.extend(vec![0i16; 8000 * 2]);
        said
    }

    pub async fn start() -> FakeSpeech {
        let seen: Arc<Seen> = Arc::default();
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/v1/audio/transcriptions", web::post().to(transcribe))
                .route("/v1/audio/speech", web::post().to(speak))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the fake speech services");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let base = format!("http://127.0.0.1:{port}/v1/audio");
        FakeSpeech { asr_url: format!("{base}/transcriptions"), tts_url: format!("{base}/speech"), seen, handle }
    }

    /// The utterances the recogniser was given.
    pub fn heard(&self) -> Vec<Heard> {
        self.seen.heard.lock().unwrap().clone()
    }

    /// The JSON bodies the voice was sent.
    pub fn asked(&self) -> Vec<Value> {
        self.seen.asked.lock().unwrap().clone()
    }
}

impl Drop for FakeSpeech {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
