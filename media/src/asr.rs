//! Speech recognition for `input`'s speech part: the [`AsrEngine`] trait (an utterance's audio
//! in, a transcript out) and the engine voxbridge ships, [`HttpAsr`], which posts the utterance
//! as a WAV file to a speech-to-text service speaking the OpenAI-compatible
//! `POST /v1/audio/transcriptions` form (whisper.cpp's server, faster-whisper-server, LocalAI,
//! vLLM and the hosted services all do). No engine configured: `transcribe` is refused and the
//! call reports that, never a made-up transcript.

use std::future::Future;
use std::io::Cursor;
use std::pin::Pin;

/// What the recogniser is told besides the audio.
#[derive(Debug, Clone)]
pub struct AsrRequest {
    /// BCP 47 (`en-US`), as the NCCO gave it.
    pub language: String,
    /// Words and phrases to expect.
    pub context: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// 0–1, when the engine says.
    pub confidence: Option<f64>,
}

pub type Recognition<'a> = Pin<Box<dyn Future<Output = Result<Transcript, String>> + Send + 'a>>;

/// A speech recogniser: one utterance (8 kHz mono samples) in, its text out.
pub trait AsrEngine: Send + Sync {
    fn transcribe(&self, pcm: Vec<i16>, request: AsrRequest) -> Recognition<'_>;
}

/// An OpenAI-compatible transcription endpoint (the service's URL is the full
/// `…/v1/audio/transcriptions` address).
pub struct HttpAsr {
    pub service: crate::service::HttpService,
    pub model: String,
}

/// The utterance as a 16-bit WAV file.
pub fn wav_bytes(pcm: Vec<i16>) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    crate::recorder::write_wav(&mut out, &[pcm])?;
    Ok(out.into_inner())
}

#[derive(serde::Deserialize)]
struct TranscriptionReply {
    text: String,
}

impl AsrEngine for HttpAsr {
    fn transcribe(&self, pcm: Vec<i16>, request: AsrRequest) -> Recognition<'_> {
        Box::pin(async move {
            let wav = wav_bytes(pcm)?;
            let file = reqwest::multipart::Part::bytes(wav)
                .file_name("utterance.wav")
                .mime_str("audio/wav")
                .map_err(|e| e.to_string())?;
            // ISO 639-1, the language part of the BCP 47 tag, is what these services take.
            let language = request.language.split('-').next().unwrap_or_default().to_ascii_lowercase();
            let mut form = reqwest::multipart::Form::new()
                .part("file", file)
                .text("model", self.model.clone())
                .text("response_format", "json");
            if !language.is_empty() {
                form = form.text("language", language);
            }
            if !request.context.is_empty() {
                form = form.text("prompt", request.context.join(", "));
            }
            let response = self.service.post(|post| post.multipart(form)).await?;
            let reply: TranscriptionReply = response.json().await.map_err(|e| self.service.unreadable(e))?;
            Ok(Transcript { text: reply.text.trim().to_owned(), confidence: None })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utterances_travel_as_wav() {
        let pcm = crate::audio::tone(&[440.0], 8000.0, 500);
        let bytes = wav_bytes(pcm.clone()).unwrap();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!((reader.spec().sample_rate, reader.spec().channels), (8000, 1));
        let back: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, pcm);
    }
}
