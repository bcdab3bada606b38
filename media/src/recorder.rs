//! One recording of an endpoint: what the far end sent (decoded received audio) and what was
//! sent to it (relayed or played) or, in a conference, each other member it hears, every source
//! placed on a timeline of its own by arrival time, so gaps in the packet stream become silence
//! and the file's length is the call's. Written as WAV (hound) or MP3 (LAME through
//! mp3lame-encoder) when the recording ends: mono (every source mixed), or `split` into up to
//! 32 channels, one per party (the far end first, then the others in the order first heard;
//! parties beyond the last channel share it, as Vonage's `channels` says).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audio::{self, FRAME, RATE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wav,
    Mp3,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "wav" => Some(Format::Wav),
            "mp3" => Some(Format::Mp3),
            _ => None,
        }
    }
}

/// Whose audio a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Heard from the far end (the leg recorded).
    Received,
    /// Sent to the far end: the bridged party, or what we play.
    Sent,
    /// One member of the conference the leg hears, by its member id.
    Party(&'a str),
}

/// A source's track key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Track {
    Received,
    Sent,
    Party(String),
}

impl Track {
    fn is(&self, source: Source<'_>) -> bool {
        match (self, source) {
            (Track::Received, Source::Received) | (Track::Sent, Source::Sent) => true,
            (Track::Party(a), Source::Party(b)) => a == b,
            _ => false,
        }
    }
}

/// The most channels a recording has (Vonage's `channels` limit).
pub const MAX_CHANNELS: usize = 32;

/// The channels of a recording: one unless `split`, then `channels` (0: two), at most 32.
pub fn channel_count(split: bool, channels: u32) -> usize {
    match (split, channels) {
        (false, _) => 1,
        (true, 0) => 2,
        (true, n) => usize::try_from(n).unwrap_or(MAX_CHANNELS).min(MAX_CHANNELS),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub format: Format,
    /// 1: every source mixed; more: one channel per party.
    pub channels: usize,
    pub end_on_silence: Option<Duration>,
    pub end_on_key: Option<char>,
    pub limit: Duration,
}

pub struct Recorder {
    pub id: String,
    pub path: PathBuf,
    pub settings: Settings,
    started: Instant,
    /// One timeline per source, in the order first heard.
    tracks: Vec<(Track, Vec<i16>)>,
    /// When the far end was last heard above the silence threshold.
    last_voice: Instant,
}

/// A written recording.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    pub duration_ms: u64,
}

/// Why a recording ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Limit,
    Silence,
}

impl Recorder {
    pub fn new(id: String, path: PathBuf, settings: Settings, now: Instant) -> Recorder {
        Recorder { id, path, settings, started: now, tracks: Vec::new(), last_voice: now }
    }

    /// Adds a frame of `source` heard or sent at `now`.
    pub fn push(&mut self, source: Source<'_>, now: Instant, pcm: &[i16]) {
        let elapsed = now.saturating_duration_since(self.started);
        // Rounded down to whole frames, one frame of slack: packets a little early or late keep
        // their order, a gap longer than a frame becomes silence.
        let position = (elapsed.as_millis() as usize * RATE as usize / 1000 / FRAME).saturating_sub(1) * FRAME;
        let index = match self.tracks.iter().position(|(t, _)| t.is(source)) {
            Some(i) => i,
            None => {
                let track = match source {
                    Source::Received => Track::Received,
                    Source::Sent => Track::Sent,
                    Source::Party(id) => Track::Party(id.to_owned()),
                };
                self.tracks.push((track, Vec::new()));
                self.tracks.len() - 1
            }
        };
        let Some((_, track)) = self.tracks.get_mut(index) else { return };
        if track.len() < position {
            track.resize(position, 0);
        }
        track.extend_from_slice(pcm);
        if source == Source::Received && audio::rms(pcm) >= audio::SILENCE_RMS {
            self.last_voice = now;
        }
    }

    /// The channel of each track: the far end on the first, what it was sent on the second,
    /// conference members from the second on in the order first heard; all on the last channel
    /// once they run out (all on one for a mono recording).
    fn channel_of_tracks(&self) -> Vec<usize> {
        let last = self.settings.channels.clamp(1, MAX_CHANNELS) - 1;
        let mut parties = 0;
        self.tracks
            .iter()
            .map(|(t, _)| {
                let wanted = match t {
                    Track::Received => 0,
                    Track::Sent => 1,
                    Track::Party(_) => {
                        parties += 1;
                        parties
                    }
                };
                wanted.min(last)
            })
            .collect()
    }

    /// Whether the recording should end by itself at `now`.
    pub fn ending(&self, now: Instant) -> Option<Ending> {
        if now.saturating_duration_since(self.started) >= self.settings.limit {
            return Some(Ending::Limit);
        }
        match self.settings.end_on_silence {
            Some(quiet) if now.saturating_duration_since(self.last_voice) >= quiet => Some(Ending::Silence),
            _ => None,
        }
    }

    /// Writes the file (blocking I/O: run it off the packet path).
    pub fn write(self, now: Instant) -> Result<Written, String> {
        let total = (now.saturating_duration_since(self.started).as_millis() as usize * RATE as usize / 1000)
            .max(self.tracks.iter().map(|(_, t)| t.len()).max().unwrap_or(0));
        let mut sums = vec![vec![0i32; total]; self.settings.channels.clamp(1, MAX_CHANNELS)];
        for (channel, (_, track)) in self.channel_of_tracks().into_iter().zip(&self.tracks) {
            let Some(sum) = sums.get_mut(channel) else { continue };
            for (acc, s) in sum.iter_mut().zip(track) {
                *acc += i32::from(*s);
            }
        }
        let channels: Vec<Vec<i16>> = sums
            .into_iter()
            .map(|sum| sum.into_iter().map(|v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16).collect())
            .collect();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        match self.settings.format {
            Format::Wav => {
                let file = std::fs::File::create(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
                write_wav(std::io::BufWriter::new(file), &channels)?
            }
            Format::Mp3 => write_mp3(&self.path, &channels)?,
        }
        let size = std::fs::metadata(&self.path).map_err(|e| e.to_string())?.len();
        Ok(Written { size, duration_ms: total as u64 * 1000 / u64::from(RATE) })
    }
}

/// Writes `channels` (of equal length) as a 16-bit WAV at the recording rate to `out`: the
/// recorder's files, and the utterances the speech recogniser is sent.
pub fn write_wav<W: std::io::Write + std::io::Seek>(out: W, channels: &[Vec<i16>]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: u16::try_from(channels.len()).map_err(|e| e.to_string())?,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(out, spec).map_err(|e| e.to_string())?;
    let len = channels.first().map_or(0, Vec::len);
    for i in 0..len {
        for ch in channels {
            w.write_sample(ch.get(i).copied().unwrap_or(0)).map_err(|e| e.to_string())?;
        }
    }
    w.finalize().map_err(|e| e.to_string())
}

fn write_mp3(path: &std::path::Path, channels: &[Vec<i16>]) -> Result<(), String> {
    use mp3lame_encoder::{Builder, DualPcm, FlushNoGap, MonoPcm};
    let mut builder = Builder::new().ok_or("LAME could not start")?;
    builder.set_num_channels(u8::try_from(channels.len()).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    builder.set_sample_rate(RATE).map_err(|e| e.to_string())?;
    builder.set_brate(mp3lame_encoder::Bitrate::Kbps32).map_err(|e| e.to_string())?;
    builder.set_quality(mp3lame_encoder::Quality::Good).map_err(|e| e.to_string())?;
    let mut encoder = builder.build().map_err(|e| e.to_string())?;
    let len = channels.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(len));
    match channels {
        [mono] => encoder.encode_to_vec(MonoPcm(mono.as_slice()), &mut out),
        [left, right] => encoder.encode_to_vec(DualPcm { left, right }, &mut out),
        _ => return Err("MP3 holds one or two channels".into()),
    }
    .map_err(|e| e.to_string())?;
    out.reserve(7200);
    encoder.flush_to_vec::<FlushNoGap>(&mut out).map_err(|e| e.to_string())?;
    std::fs::write(path, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(format: Format, split: bool) -> Settings {
        Settings {
            format,
            channels: if split { 2 } else { 1 },
            end_on_silence: Some(Duration::from_secs(2)),
            end_on_key: None,
            limit: Duration::from_secs(10),
        }
    }

    #[test]
    fn frames_land_on_a_timeline_and_files_have_its_length() {
        let dir = tempfile::tempdir().unwrap();
        for (format, split) in [(Format::Wav, false), (Format::Wav, true), (Format::Mp3, false)] {
            let t0 = Instant::now();
            let path = dir.path().join(format!("r-{split}-{format:?}"));
            let mut r = Recorder::new("r".into(), path.clone(), settings(format, split), t0);
            let tone = audio::tone(&[440.0], 8000.0, 20);
            // 1 s of received audio, then 1 s with nothing, then 1 s of sent audio.
            for i in 0..50 {
                r.push(Source::Received, t0 + Duration::from_millis(20 * i), &tone);
            }
            for i in 100..150 {
                r.push(Source::Sent, t0 + Duration::from_millis(20 * i), &tone);
            }
            let written = r.write(t0 + Duration::from_secs(3)).unwrap();
            assert_eq!(written.duration_ms, 3000);
            assert!(written.size > 0);
            if format == Format::Wav {
                let reader = hound::WavReader::open(&path).unwrap();
                assert_eq!(reader.spec().channels, if split { 2 } else { 1 });
                assert_eq!(reader.duration(), 24000);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let pcm = crate::sources::decode(crate::sources::Encoded { bytes, hint: Some("mp3".into()) }, 100_000)
                    .unwrap();
                assert!((pcm.len() as i64 - 24000).abs() < 2000, "mp3 decodes to about 3 s: {}", pcm.len());
            }
        }
    }

    #[test]
    fn channel_counts() {
        assert_eq!(
            [channel_count(false, 5), channel_count(true, 0), channel_count(true, 1), channel_count(true, 40)],
            [1, 2, 1, 32]
        );
    }

    #[test]
    fn silence_and_limit_end_a_recording() {
        let t0 = Instant::now();
        let mut r = Recorder::new("r".into(), PathBuf::from("/nonexistent"), settings(Format::Wav, false), t0);
        r.push(Source::Received, t0 + Duration::from_millis(500), &audio::tone(&[440.0], 8000.0, 20));
        assert_eq!(r.ending(t0 + Duration::from_millis(2400)), None);
        r.push(Source::Received, t0 + Duration::from_millis(1000), &[0; 160]);
        assert_eq!(r.ending(t0 + Duration::from_millis(2600)), Some(Ending::Silence));
        assert_eq!(r.ending(t0 + Duration::from_secs(11)), Some(Ending::Limit));
    }

    #[test]
    fn parties_get_channels_in_the_order_heard_and_share_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let path = dir.path().join("parties.wav");
        let settings = Settings { channels: 3, ..settings(Format::Wav, true) };
        let mut r = Recorder::new("r".into(), path.clone(), settings, t0);
        for i in 1..50 {
            let at = t0 + Duration::from_millis(20 * i);
            r.push(Source::Received, at, &[100; FRAME]);
            r.push(Source::Party("b"), at, &[20; FRAME]);
            r.push(Source::Party("c"), at, &[3; FRAME]);
            r.push(Source::Party("d"), at, &[1; FRAME]);
        }
        r.write(t0 + Duration::from_secs(1)).unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 3);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        // A frame in the middle: the far end, b, then c and d sharing the last channel.
        assert_eq!(&samples[3 * 4000..3 * 4000 + 3], &[100, 20, 4]);
    }
}
