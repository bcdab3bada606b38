//! Where played audio comes from: text spoken by a [`TtsEngine`] (espeak-ng by default, no
//! network needed) and audio files fetched from `streamUrl` (WAV or MP3 over http/https), each
//! decoded to a [`Clip`] and cached, so a prompt every caller hears is made once.
//!
//! Limits: a fetched file may be at most [`Limits::max_bytes`] and arrive within
//! [`Limits::fetch_timeout`]; decoded clips at most [`Limits::max_seconds`] long. The cache holds
//! at most [`Limits::cache_bytes`] of decoded audio, honours `Cache-Control` (`no-store`,
//! `no-cache`, `max-age`) for fetched files and keeps speech until evicted.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domains::media::PlaySource;

use crate::audio::{Clip, RATE};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no text-to-speech voice speaks {0}")]
    NoVoice(String),
    #[error("text-to-speech failed: {0}")]
    Tts(String),
    #[error("fetching the audio failed: {0}")]
    Fetch(String),
    #[error("the audio URL answered HTTP {0}")]
    Status(u16),
    #[error("the audio file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the audio could not be decoded: {0}")]
    Decode(String),
}

/// An audio file's bytes with what is known of its format.
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// A file extension or MIME type, to help the decoder guess.
    pub hint: Option<String>,
}

type Synthesis<'a> = Pin<Box<dyn Future<Output = Result<Encoded, SourceError>> + Send + 'a>>;

/// A text-to-speech engine: text (or SSML) and a voice in, an audio file out.
pub trait TtsEngine: Send + Sync {
    fn synthesize<'a>(&'a self, text: &'a str, voice: &'static str, style: u32) -> Synthesis<'a>;
}

/// espeak-ng (GPL-3.0-or-later, run as a helper process, not linked), Debian's `espeak-ng`.
/// `style` picks one of its voice variants, so applications can tell prompts apart.
pub struct Espeak {
    pub program: String,
}

impl Espeak {
    const VARIANTS: [&'static str; 5] = ["", "+f3", "+m3", "+f2", "+m7"];
}

impl TtsEngine for Espeak {
    fn synthesize<'a>(&'a self, text: &'a str, voice: &'static str, style: u32) -> Synthesis<'a> {
        Box::pin(async move {
            let variant = Self::VARIANTS.get(style as usize % Self::VARIANTS.len()).copied().unwrap_or_default();
            let file =
                tempfile::Builder::new().suffix(".wav").tempfile().map_err(|e| SourceError::Tts(e.to_string()))?;
            let mut cmd = tokio::process::Command::new(&self.program);
            cmd.arg("-v").arg(format!("{voice}{variant}")).arg("-w").arg(file.path()).arg("--stdin");
            if text.trim_start().starts_with("<speak") {
                cmd.arg("-m");
            }
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| SourceError::Tts(format!("{}: {e}", self.program)))?;
            if let Some(mut stdin) = child.stdin.take() {
                use tokio::io::AsyncWriteExt;
                stdin.write_all(text.as_bytes()).await.map_err(|e| SourceError::Tts(e.to_string()))?;
            }
            let out = child.wait_with_output().await.map_err(|e| SourceError::Tts(e.to_string()))?;
            if !out.status.success() {
                return Err(SourceError::Tts(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
            }
            let bytes = tokio::fs::read(file.path()).await.map_err(|e| SourceError::Tts(e.to_string()))?;
            Ok(Encoded { bytes, hint: Some("wav".into()) })
        })
    }
}

/// A text-to-speech service speaking the OpenAI-compatible `POST /v1/audio/speech` form
/// (`{model, input, voice, response_format: "wav"}` in, an audio file out): the HTTP engine
/// beside espeak-ng, for better voices where such a service runs (a hosted one, or a local
/// server such as openedai-speech, Kokoro-FastAPI or LocalAI). Its voice is configured; the
/// language the NCCO asked for goes along as `language` (espeak-ng's voice name for it).
pub struct HttpTts {
    pub service: crate::service::HttpService,
    pub model: String,
    pub voice: String,
}

/// The most a text-to-speech service may answer.
const MAX_TTS_BYTES: usize = 32 << 20;

impl TtsEngine for HttpTts {
    fn synthesize<'a>(&'a self, text: &'a str, voice: &'static str, _style: u32) -> Synthesis<'a> {
        Box::pin(async move {
            let body = serde_json::json!({"model": self.model, "input": text, "voice": self.voice,
                                          "response_format": "wav", "language": voice});
            let response = self.service.post(|post| post.json(&body)).await.map_err(SourceError::Tts)?;
            let hint = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
                .or_else(|| Some("wav".into()));
            let bytes = response.bytes().await.map_err(|e| SourceError::Tts(self.service.unreadable(e)))?;
            if bytes.len() > MAX_TTS_BYTES {
                return Err(SourceError::TooLarge(MAX_TTS_BYTES as u64));
            }
            Ok(Encoded { bytes: bytes.to_vec(), hint })
        })
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    pub fetch_timeout: Duration,
    pub max_seconds: u32,
    pub cache_bytes: usize,
    /// How long a fetched file without `Cache-Control` stays cached.
    pub default_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 << 20,
            fetch_timeout: Duration::from_secs(10),
            max_seconds: 3600,
            cache_bytes: 128 << 20,
            default_ttl: Duration::from_secs(300),
        }
    }
}

struct Cached {
    clip: Clip,
    expires: Option<Instant>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<String, Cached>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Clip> {
        let entry = self.map.get(key)?;
        if entry.expires.is_some_and(|e| e <= Instant::now()) {
            self.remove(key);
            return None;
        }
        Some(entry.clip.clone())
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(old.clip.len() * 2);
            self.order.retain(|k| k != key);
        }
    }

    fn insert(&mut self, key: String, clip: Clip, expires: Option<Instant>, budget: usize) {
        let size = clip.len() * 2;
        if size > budget {
            return;
        }
        self.remove(&key);
        while self.bytes + size > budget {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(old) = self.map.remove(&oldest) {
                self.bytes = self.bytes.saturating_sub(old.clip.len() * 2);
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.map.insert(key, Cached { clip, expires });
    }
}

/// Makes and caches the clips `play` plays.
pub struct Sources {
    tts: Box<dyn TtsEngine>,
    http: reqwest::Client,
    limits: Limits,
    cache: Mutex<Cache>,
}

impl Sources {
    pub fn new(tts: Box<dyn TtsEngine>, limits: Limits) -> Sources {
        let http = reqwest::Client::builder()
            .timeout(limits.fetch_timeout)
            .user_agent(concat!("voxbridge-media/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Sources { tts, http, limits, cache: Mutex::new(Cache::default()) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The decoded audio of `source`, from the cache when it is there.
    pub async fn clip(&self, source: &PlaySource) -> Result<Clip, SourceError> {
        // Speech stays until evicted; a file as long as its `Cache-Control` allows; a tone is
        // made, not cached.
        let (key, encoded, keep) = match source {
            PlaySource::Tone { freqs, ms } => {
                let ms = (*ms).min(self.limits.max_seconds.saturating_mul(1000));
                return Ok(crate::audio::tone(freqs, 8000.0, ms).into());
            }
            PlaySource::Speech { text, language, style } => {
                let key = format!("tts\u{0}{language}\u{0}{style}\u{0}{text}");
                if let Some(clip) = self.cache().get(&key) {
                    return Ok(clip);
                }
                let voice =
                    domains::voices::voice_for(language).ok_or_else(|| SourceError::NoVoice(language.clone()))?;
                (key, self.tts.synthesize(text, voice, *style).await?, Some(None))
            }
            PlaySource::Url { url } => {
                let key = format!("url\u{0}{url}");
                if let Some(clip) = self.cache().get(&key) {
                    return Ok(clip);
                }
                let (encoded, ttl) = self.fetch(url).await?;
                (key, encoded, ttl.map(|t| Some(Instant::now() + t)))
            }
        };
        let max_samples = self.limits.max_seconds as usize * RATE as usize;
        let clip: Clip = tokio::task::spawn_blocking(move || decode(encoded, max_samples))
            .await
            .map_err(|e| SourceError::Decode(e.to_string()))??
            .into();
        if let Some(expires) = keep {
            self.cache().insert(key, clip.clone(), expires, self.limits.cache_bytes);
        }
        Ok(clip)
    }

    /// The file at `url` and how long it may be cached (`None`: not at all).
    async fn fetch(&self, url: &str) -> Result<(Encoded, Option<Duration>), SourceError> {
        let mut response = self.http.get(url).send().await.map_err(|e| SourceError::Fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(SourceError::Status(response.status().as_u16()));
        }
        let max = self.limits.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(SourceError::TooLarge(max));
        }
        let ttl = cache_lifetime(
            response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            self.limits.default_ttl,
        );
        let hint = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|m| m.split(';').next().unwrap_or_default().trim().to_owned())
            .or_else(|| url.rsplit('.').next().map(str::to_owned));
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| SourceError::Fetch(e.to_string()))? {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(SourceError::TooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((Encoded { bytes, hint }, ttl))
    }
}

/// How long a response may be cached by `Cache-Control`; `None` = not at all.
fn cache_lifetime(cache_control: Option<&str>, default: Duration) -> Option<Duration> {
    let Some(cc) = cache_control else { return Some(default) };
    let mut ttl = Some(default);
    for directive in cc.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" || lower == "private" {
            return None;
        }
        if let Some(secs) = lower.strip_prefix("max-age=").and_then(|v| v.trim_matches('"').parse::<u64>().ok()) {
            ttl = (secs > 0).then(|| Duration::from_secs(secs));
        }
    }
    ttl
}

/// Decodes any file symphonia reads (WAV, MP3, …) to mono at [`RATE`].
pub fn decode(encoded: Encoded, max_samples: usize) -> Result<Vec<i16>, SourceError> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let bad = |e: Error| SourceError::Decode(e.to_string());
    let stream = MediaSourceStream::new(Box::new(std::io::Cursor::new(encoded.bytes)), Default::default());
    let hint_text = encoded.hint;
    let mut hint = Hint::new();
    match hint_text.as_deref() {
        Some(h) if h.contains('/') => {
            hint.mime_type(h);
        }
        Some(ext) => {
            hint.with_extension(ext);
        }
        None => {}
    }
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(bad)?;
    let mut format = probed.format;
    let track = format.default_track().ok_or_else(|| SourceError::Decode("no audio track".into()))?;
    let track_id = track.id;
    let mut decoder =
        symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default()).map_err(bad)?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(RATE);
    let mut mono: Vec<f32> = Vec::new();
    // The source rate's sample budget for `max_samples` at ours.
    let budget = |rate: u32| max_samples.saturating_mul(rate as usize) / RATE as usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A corrupt frame is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(bad(e)),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        samples.copy_interleaved_ref(decoded);
        mono.extend(samples.samples().chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32));
        if mono.len() > budget(rate) {
            return Err(SourceError::Decode(format!("longer than {} s", max_samples / RATE as usize)));
        }
    }
    if mono.is_empty() {
        return Err(SourceError::Decode("no audio in the file".into()));
    }
    let resampled = resample(&mono, rate, RATE).map_err(SourceError::Decode)?;
    Ok(resampled.iter().map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16).collect())
}

/// Converts mono `input` from `from` Hz to `to` Hz with rubato's FFT resampler.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    use rubato::{FftFixedIn, Resampler};
    if from == to {
        return Ok(input.to_vec());
    }
    const CHUNK: usize = 1024;
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).map_err(|e| e.to_string())?;
    let delay = resampler.output_delay();
    let expected = input.len() * to as usize / from as usize;
    let mut out = Vec::with_capacity(expected + CHUNK);
    let mut rest = input;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let frames = resampler.process(&[chunk], None).map_err(|e| e.to_string())?;
        out.extend(frames.into_iter().next().unwrap_or_default());
        rest = tail;
    }
    // Flush what is left and the filter's delay.
    let frames = resampler.process_partial(Some(&[rest]), None).map_err(|e| e.to_string())?;
    out.extend(frames.into_iter().next().unwrap_or_default());
    while out.len() < expected + delay {
        let frames = resampler.process_partial::<&[f32]>(None, None).map_err(|e| e.to_string())?;
        let Some(f) = frames.into_iter().next().filter(|f| !f.is_empty()) else { break };
        out.extend(f);
    }
    Ok(out.into_iter().skip(delay).take(expected).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for i in 0..(rate as f32 * seconds) as usize {
            let v = (10000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()) as i16;
            for _ in 0..channels {
                w.write_sample(v).unwrap();
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn wav_at_any_rate_becomes_8k_mono_of_the_same_length() {
        for (rate, ch) in [(8000, 1), (16000, 1), (22050, 1), (44100, 2), (48000, 2)] {
            let pcm = decode(Encoded { bytes: wav(rate, ch, 1.5), hint: Some("wav".into()) }, 1_000_000).unwrap();
            assert!((pcm.len() as i64 - 12000).abs() <= 1, "{rate} Hz × {ch}: {} samples", pcm.len());
            let level = crate::audio::rms(&pcm[1000..11000]);
            assert!((6000.0..8000.0).contains(&level), "{rate} Hz: level {level}");
        }
    }

    #[test]
    fn bad_files_and_long_files_are_errors() {
        let junk = Encoded { bytes: b"this is not audio".to_vec(), hint: Some("audio/wav".into()) };
        assert!(matches!(decode(junk, 1_000_000), Err(SourceError::Decode(_))));
        let long = Encoded { bytes: wav(8000, 1, 3.0), hint: None };
        assert!(matches!(decode(long, 8000), Err(SourceError::Decode(m)) if m.contains("longer")));
    }

    #[test]
    fn cache_control_rules() {
        let d = Duration::from_secs(300);
        assert_eq!(cache_lifetime(None, d), Some(d));
        assert_eq!(cache_lifetime(Some("public, max-age=60"), d), Some(Duration::from_secs(60)));
        assert_eq!(cache_lifetime(Some("no-store"), d), None);
        assert_eq!(cache_lifetime(Some("max-age=0"), d), None);
        assert_eq!(cache_lifetime(Some("No-Cache"), d), None);
    }

    #[test]
    fn cache_evicts_oldest_within_its_budget() {
        let mut c = Cache::default();
        let clip = |n: usize| -> Clip { vec![0i16; n].into() };
        c.insert("a".into(), clip(100), None, 500);
        c.insert("b".into(), clip(100), None, 500);
        c.insert("c".into(), clip(100), None, 500);
        assert!(c.get("a").is_none() && c.get("b").is_some() && c.get("c").is_some());
        c.insert("x".into(), clip(1000), None, 500);
        assert!(c.get("x").is_none(), "larger than the budget: not kept");
        c.insert("old".into(), clip(1), Some(Instant::now()), 500);
        assert!(c.get("old").is_none(), "expired");
    }
}
