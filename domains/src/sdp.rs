//! SDP offer/answer (RFC 4566, RFC 3264) for `RTP/AVP` audio, and `RTP/SAVP` keyed by SDES
//! (RFC 4568, `a=crypto`) when the leg's [`SrtpPolicy`] allows it: parsing a remote offer or
//! answer, choosing a codec plus RFC 4733 `telephone-event/8000`, mirroring the stream
//! direction, and writing our own SDP.
//!
//! What this module owns:
//! - A lenient parser: it reads the lines we need (`v=`, `o=`, `c=`, `m=`, `a=rtpmap`, `a=fmtp`,
//!   `a=ptime`, the four direction attributes) and ignores every other line, so unusual but valid
//!   offers still negotiate. A line that is not `x=value`, or a needed line with broken fields, is
//!   a typed [`SdpError`].
//! - Negotiation as answerer ([`answer_offer`]) and as offerer ([`accept_answer`]): one audio
//!   codec per leg, the remote side's payload type numbers kept (telephone-event is dynamic and
//!   differs between peers; the media process rewrites it when relaying).
//! - Writing SDP ([`build_offer`], [`build_answer`]) with an `o=` line whose version the caller
//!   bumps for every changed description ([`LocalSdp::next_version`]).
//!
//! Hand-written rather than built on `ezk-sdp-types`: the subset above is about two hundred lines,
//! `domains` then needs no new dependency (it stays free of the SIP crates' tree), and the parser
//! can be exactly as lenient as interop needs (ignore unknown lines, accept `\n` endings) while
//! reporting the errors that matter in our own types.
//!
//! No I/O: addresses, ports and session ids are passed in.

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

use crate::srtp::{Crypto, CryptoSuite, MasterKey, SrtpPolicy};

/// The payload type we offer for `telephone-event/8000` (any dynamic number works; 101 is usual).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Packetisation time we offer when the remote side names none (ms).
pub const DEFAULT_PTIME: u32 = 20;

/// Audio codecs this module negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722 wideband, static payload type 9 (its RTP clock is 8000 by RFC 3551's erratum).
    G722,
    /// Opus, dynamic payload type, `opus/48000/2` (RFC 7587), sent mono.
    Opus,
    /// G.729 (CS-ACELP, 8 kbit/s), static payload type 18; sent without Annex B
    /// (`annexb=no`), Annex B comfort-noise frames from the far end decoded.
    G729,
    /// Linear 16-bit PCM, network byte order (RFC 3551 §4.5.11), mono at 8 kHz: `L16/8000`.
    L16,
    /// The same at 16 kHz: `L16/16000`.
    L16Wide,
}

impl Codec {
    /// What we offer when nobody states a preference: G.711, which every peer has.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
    /// Every codec we decode and encode, so an offer of any of them is answered (transcoding
    /// to the other leg when it differs), in the order we prefer them.
    pub const SUPPORTED: [Codec; 7] =
        [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus, Codec::G729, Codec::L16Wide, Codec::L16];

    /// The payload type we offer for it (Opus: our dynamic number).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::Opus => 111,
            Codec::G729 => 18,
            Codec::L16 => 118,
            Codec::L16Wide => 119,
        }
    }

    /// The codec's name in the control protocol and configuration (unique per variant).
    pub fn name(self) -> &'static str {
        match self {
            Codec::L16Wide => "L16/16000",
            other => other.encoding(),
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
            Codec::G729 => "G729",
            Codec::L16 | Codec::L16Wide => "L16",
        }
    }

    /// The `a=rtpmap` value: encoding, RTP clock rate and, for Opus, channels.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::G722 => "G722/8000",
            Codec::Opus => "opus/48000/2",
            Codec::G729 => "G729/8000",
            Codec::L16 => "L16/8000",
            Codec::L16Wide => "L16/16000",
        }
    }

    /// The `a=fmtp` parameters we write for it.
    pub fn fmtp(self) -> Option<&'static str> {
        match self {
            // We send no Annex B silence frames (RFC 4856 §2.1.9).
            Codec::G729 => Some("annexb=no"),
            _ => None,
        }
    }

    /// The RTP timestamp clock (Hz).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            Codec::L16Wide => 16000,
            _ => 8000,
        }
    }

    /// Whether it is one of the G.711 laws (transcoded in place, byte for byte).
    pub fn is_g711(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma)
    }

    /// Every supported codec's name, for messages that list them.
    pub fn names() -> String {
        Codec::SUPPORTED.map(Codec::name).join(", ")
    }

    /// Reads a codec name as the control protocol or an `a=rtpmap` carries it (case-insensitive).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" | "G711U" | "G711_ULAW" => Some(Codec::Pcmu),
            "PCMA" | "G711A" | "G711_ALAW" => Some(Codec::Pcma),
            "G722" => Some(Codec::G722),
            "OPUS" => Some(Codec::Opus),
            "G729" => Some(Codec::G729),
            "L16" | "L16/8000" => Some(Codec::L16),
            "L16/16000" => Some(Codec::L16Wide),
            _ => None,
        }
    }

    fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        let codec = Codec::SUPPORTED
            .into_iter()
            .find(|c| c.encoding().eq_ignore_ascii_case(&map.encoding) && c.clock_rate() == map.clock_rate)?;
        let channels_ok = match codec {
            Codec::Opus => map.channels.is_none_or(|c| c == 2 || c == 1),
            _ => map.channels.unwrap_or(1) == 1,
        };
        channels_ok.then_some(codec)
    }

    fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            18 => Some(Codec::G729),
            _ => None,
        }
    }
}

/// A stream's direction attribute (RFC 3264 §5.1); absent means `sendrecv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answer gives to an offer with this direction (`sendonly` ↔ `recvonly`).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same direction with receiving taken away (`c=0.0.0.0` hold: "send me nothing").
    fn without_receiving(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }

    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("not an SDP body: it does not start with v=0")]
    NotSdp,
    #[error("SDP line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("no audio stream in the SDP")]
    NoAudio,
    #[error("no RTP/AVP audio stream, nor RTP/SAVP with a supported a=crypto (transports offered: {0})")]
    UnsupportedTransport(String),
    #[error("SRTP is required here, and the SDP offers only plain RTP/AVP")]
    SrtpRequired,
    #[error("SRTP is not allowed here, and the SDP offers only RTP/SAVP")]
    SrtpRefused,
    #[error("the audio stream has no connection address (c=)")]
    NoConnection,
    #[error("no common codec: the remote side has {0}; we support {names}", names = Codec::names())]
    NoCommonCodec(String),
}

/// The `o=` line of a parsed description. Ids stay text: peers write numbers wider than 64 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub proto: String,
    /// The format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<(u8, String)>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
    /// The usable `a=crypto` lines, in the writer's order of preference.
    pub cryptos: Vec<Crypto>,
}

impl MediaDescription {
    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok())
    }

    fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps.iter().find(|(p, _)| *p == pt).map(|(_, v)| v.as_str())
    }

    /// The codec a payload type carries here: its rtpmap, else the static assignment.
    fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(map) => Codec::from_rtpmap(map),
            None => Codec::from_static_payload_type(pt),
        }
    }

    fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|m| m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000)
        })
    }

    /// `RTP/SAVP` (SDES-keyed SRTP) rather than `RTP/AVP`; `None` for any other transport.
    fn secure(&self) -> Option<bool> {
        if self.proto.eq_ignore_ascii_case("RTP/AVP") {
            Some(false)
        } else if self.proto.eq_ignore_ascii_case("RTP/SAVP") {
            Some(true)
        } else {
            None
        }
    }
}

/// A parsed session description: what negotiation needs, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Option<Origin>,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, l)) if l.trim() == "v=0" => {}
            _ => return Err(SdpError::NotSdp),
        }
        let mut sdp = SessionDescription { origin: None, connection: None, direction: None, media: Vec::new() };
        for (line, text) in lines {
            let malformed = |reason: &str| SdpError::Malformed { line, reason: reason.to_owned() };
            let (kind, value) = match text.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k, v.trim()),
                _ => return Err(malformed("expected <type>=<value>")),
            };
            match kind {
                "o" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    let [username, session_id, session_version, _, _, _] = f.as_slice() else {
                        return Err(malformed("o= needs six fields"));
                    };
                    sdp.origin = Some(Origin {
                        username: (*username).to_owned(),
                        session_id: (*session_id).to_owned(),
                        session_version: (*session_version).to_owned(),
                    });
                }
                "c" => {
                    let addr = parse_connection(value).map_err(|r| malformed(&r))?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sdp.connection = Some(addr),
                    }
                }
                "m" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    let [media, port, proto, formats @ ..] = f.as_slice() else {
                        return Err(malformed("m= needs media, port and proto"));
                    };
                    let port = port.split('/').next().unwrap_or_default();
                    let port = port.parse::<u16>().map_err(|_| malformed("m= port is not a number"))?;
                    sdp.media.push(MediaDescription {
                        media: (*media).to_owned(),
                        port,
                        proto: (*proto).to_owned(),
                        formats: formats.iter().map(|s| (*s).to_owned()).collect(),
                        connection: None,
                        rtpmaps: Vec::new(),
                        fmtps: Vec::new(),
                        direction: None,
                        ptime: None,
                        cryptos: Vec::new(),
                    });
                }
                "a" => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n, Some(a.trim())),
                        None => (value, None),
                    };
                    if let (Some(dir), None) = (Direction::from_attribute(name), arg) {
                        match sdp.media.last_mut() {
                            Some(m) => m.direction = Some(dir),
                            None => sdp.direction = Some(dir),
                        }
                        continue;
                    }
                    // Media-level attributes only; at session level they mean nothing to us.
                    let (Some(media), Some(arg)) = (sdp.media.last_mut(), arg) else { continue };
                    match name {
                        "rtpmap" => media.rtpmaps.push(parse_rtpmap(arg).map_err(|r| malformed(&r))?),
                        "fmtp" => {
                            let (pt, params) = arg.split_once(' ').unwrap_or((arg, ""));
                            if let Ok(pt) = pt.parse::<u8>() {
                                media.fmtps.push((pt, params.trim().to_owned()));
                            }
                        }
                        "ptime" => media.ptime = arg.parse::<u32>().ok().filter(|p| (1..=1000).contains(p)),
                        "crypto" => media.cryptos.extend(Crypto::parse(arg)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(sdp)
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, String> {
    let f: Vec<&str> = value.split_whitespace().collect();
    let &["IN", addr_type, addr] = f.as_slice() else {
        return Err("c= must be `IN IP4|IP6 <address>`".into());
    };
    let addr = addr.split('/').next().unwrap_or_default();
    let ip: IpAddr = addr.parse().map_err(|_| format!("c= address '{addr}' is not an IP address"))?;
    match (addr_type, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(format!("c= address type {addr_type} does not match '{addr}'")),
    }
}

fn parse_rtpmap(arg: &str) -> Result<RtpMap, String> {
    let bad = || format!("bad rtpmap '{arg}'");
    let (pt, rest) = arg.split_once(' ').ok_or_else(bad)?;
    let payload_type = pt.parse::<u8>().map_err(|_| bad())?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty()).ok_or_else(bad)?.to_owned();
    let clock_rate = parts.next().and_then(|c| c.parse::<u32>().ok()).ok_or_else(bad)?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse::<u8>().map_err(|_| bad())?),
        None => None,
    };
    Ok(RtpMap { payload_type, encoding, clock_rate, channels })
}

/// The outcome of negotiating one leg: what the relay needs to send and receive on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Payload type carrying `codec` on this leg (both directions use the remote side's number).
    pub codec_pt: u8,
    /// The remote side's payload type for `telephone-event/8000`, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Where the remote side wants RTP (before symmetric-RTP latching); unspecified on a
    /// `c=0.0.0.0` hold.
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// Our direction towards this leg: `sends()` means we may send RTP to it.
    pub direction: Direction,
    pub ptime: Option<u32>,
    /// Index of the negotiated `m=` section.
    pub media_index: usize,
    /// The far end's SRTP suite and key (its `a=crypto`), when the stream is `RTP/SAVP`; ours
    /// is [`LocalSdp::key`] with the same tag and suite.
    pub srtp: Option<Crypto>,
}

/// Our side of a session: the `o=` ids and the address and port we receive RTP on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    pub session_id: u64,
    pub version: u64,
    pub address: IpAddr,
    pub port: u16,
    /// Whether this leg may, must or must not use SRTP.
    pub srtp: SrtpPolicy,
    /// Our SRTP master key and salt (random, per endpoint), sent in our `a=crypto` lines.
    pub key: MasterKey,
}

impl LocalSdp {
    /// Every new description of the same session gets a higher `o=` version (RFC 3264 §8).
    pub fn next_version(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    fn write_session_head(&self, out: &mut String) {
        let family = if self.address.is_ipv4() { "IP4" } else { "IP6" };
        let _ = write!(
            out,
            "v=0\r\no=voxbridge {} {} IN {family} {}\r\ns=voxbridge\r\nc=IN {family} {}\r\nt=0 0\r\n",
            self.session_id, self.version, self.address, self.address
        );
    }
}

/// The first audio stream `policy` accepts: `RTP/AVP`, or `RTP/SAVP` with a crypto line we
/// can use. The errors say why none is.
fn audio_candidates(sdp: &SessionDescription, policy: SrtpPolicy) -> Result<(usize, &MediaDescription), SdpError> {
    let audio: Vec<(usize, &MediaDescription)> =
        sdp.media.iter().enumerate().filter(|(_, m)| m.media.eq_ignore_ascii_case("audio") && m.port != 0).collect();
    if audio.is_empty() {
        return Err(SdpError::NoAudio);
    }
    let usable = |m: &MediaDescription| match m.secure() {
        Some(true) => policy.accepts(true) && !m.cryptos.is_empty(),
        Some(false) => policy.accepts(false),
        None => false,
    };
    if let Some(found) = audio.iter().copied().find(|(_, m)| usable(m)) {
        return Ok(found);
    }
    let all = |secure: bool| audio.iter().all(|(_, m)| m.secure() == Some(secure));
    Err(match policy {
        SrtpPolicy::Always if all(false) => SdpError::SrtpRequired,
        SrtpPolicy::Never if all(true) => SdpError::SrtpRefused,
        _ => SdpError::UnsupportedTransport(audio.iter().map(|(_, m)| m.proto.as_str()).collect::<Vec<_>>().join(", ")),
    })
}

fn remote_direction(sdp: &SessionDescription, media: &MediaDescription, ip: IpAddr) -> Direction {
    let dir = media.direction.or(sdp.direction).unwrap_or_default();
    if ip.is_unspecified() { dir.without_receiving() } else { dir }
}

fn codec_names(media: &MediaDescription) -> String {
    let names: Vec<String> = media
        .payload_types()
        .map(|pt| media.rtpmap(pt).map(|m| m.encoding.clone()).unwrap_or_else(|| pt.to_string()))
        .collect();
    if names.is_empty() { "no formats".into() } else { names.join(", ") }
}

/// Negotiates a remote offer: the first `RTP/AVP` audio stream, the first codec of `prefer` the
/// offer has (then the offer's own order), telephone-event with the offer's payload type, and our
/// direction mirrored from the offer's.
/// An `RTP/SAVP` stream is answered with the offer's first usable crypto line (its tag and
/// suite, our key).
pub fn answer_offer(offer: &SessionDescription, prefer: &[Codec], srtp: SrtpPolicy) -> Result<Negotiated, SdpError> {
    let (media_index, media) = audio_candidates(offer, srtp)?;
    let remote_ip = media.connection.or(offer.connection).ok_or(SdpError::NoConnection)?;
    let offered: Vec<(u8, Codec)> =
        media.payload_types().filter_map(|pt| media.codec_of(pt).map(|c| (pt, c))).collect();
    let chosen = prefer
        .iter()
        .find_map(|want| offered.iter().find(|(_, c)| c == want))
        .or_else(|| offered.first())
        .copied()
        .ok_or_else(|| SdpError::NoCommonCodec(codec_names(media)))?;
    Ok(Negotiated {
        codec: chosen.1,
        codec_pt: chosen.0,
        telephone_event: media.telephone_event(),
        remote_ip,
        remote_port: media.port,
        direction: remote_direction(offer, media, remote_ip).reverse(),
        ptime: media.ptime,
        media_index,
        srtp: if media.secure() == Some(true) { media.cryptos.first().cloned() } else { None },
    })
}

/// Applies the remote answer to an offer we made with `offered` codecs: the codec is the first
/// of the answer's formats that we offered. We offered `RTP/SAVP` when `srtp` is
/// [`SrtpPolicy::Always`] (else `RTP/AVP`), and the answer must keep to it: a secure answer
/// names one of our crypto lines' tag and suite.
pub fn accept_answer(answer: &SessionDescription, offered: &[Codec], srtp: SrtpPolicy) -> Result<Negotiated, SdpError> {
    let strict = if srtp.offers_srtp() { SrtpPolicy::Always } else { SrtpPolicy::Never };
    let (media_index, media) = audio_candidates(answer, strict)?;
    let crypto = match media.secure() {
        Some(true) => {
            Some(media.cryptos.iter().find(|c| offered_tag(c.suite) == Some(c.tag)).cloned().ok_or_else(|| {
                SdpError::UnsupportedTransport("RTP/SAVP answering none of our a=crypto lines".into())
            })?)
        }
        _ => None,
    };
    let remote_ip = media.connection.or(answer.connection).ok_or(SdpError::NoConnection)?;
    let (codec_pt, codec) = media
        .payload_types()
        .find_map(|pt| media.codec_of(pt).filter(|c| offered.contains(c)).map(|c| (pt, c)))
        .ok_or_else(|| SdpError::NoCommonCodec(codec_names(media)))?;
    Ok(Negotiated {
        codec,
        codec_pt,
        telephone_event: media.telephone_event(),
        remote_ip,
        remote_port: media.port,
        direction: remote_direction(answer, media, remote_ip).reverse(),
        ptime: media.ptime,
        media_index,
        srtp: crypto,
    })
}

/// The tag our offers give a suite (1, 2, … in [`CryptoSuite::ALL`]'s order).
fn offered_tag(suite: CryptoSuite) -> Option<u32> {
    let index = CryptoSuite::ALL.iter().position(|s| *s == suite)?;
    u32::try_from(index + 1).ok()
}

/// Our offer: `codecs` in order (static payload types), telephone-event as
/// [`TELEPHONE_EVENT_PT`], 20 ms, with `direction`.
pub fn build_offer(local: &LocalSdp, codecs: &[Codec], direction: Direction) -> String {
    let mut out = String::new();
    local.write_session_head(&mut out);
    let mut pts: Vec<String> = codecs.iter().map(|c| c.payload_type().to_string()).collect();
    pts.push(TELEPHONE_EVENT_PT.to_string());
    let proto = if local.srtp.offers_srtp() { "RTP/SAVP" } else { "RTP/AVP" };
    let _ = write!(out, "m=audio {} {proto} {}\r\n", local.port, pts.join(" "));
    for c in codecs {
        let _ = write!(out, "a=rtpmap:{} {}\r\n", c.payload_type(), c.rtpmap());
        if let Some(fmtp) = c.fmtp() {
            let _ = write!(out, "a=fmtp:{} {fmtp}\r\n", c.payload_type());
        }
    }
    if local.srtp.offers_srtp() {
        for suite in CryptoSuite::ALL {
            let crypto = Crypto { tag: offered_tag(suite).unwrap_or(1), suite, key: local.key };
            let _ = write!(out, "a=crypto:{}\r\n", crypto.to_value());
        }
    }
    let _ = write!(out, "a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\na=fmtp:{TELEPHONE_EVENT_PT} 0-16\r\n");
    let _ = write!(out, "a=ptime:{DEFAULT_PTIME}\r\na={}\r\n", direction.attribute());
    out
}

/// Our answer to `offer` as negotiated by [`answer_offer`]: the chosen codec and telephone-event
/// with the offer's payload types; every other `m=` section rejected with port 0.
pub fn build_answer(local: &LocalSdp, offer: &SessionDescription, negotiated: &Negotiated) -> String {
    let mut out = String::new();
    local.write_session_head(&mut out);
    for (i, media) in offer.media.iter().enumerate() {
        if i != negotiated.media_index {
            let formats = if media.formats.is_empty() { "0".to_owned() } else { media.formats.join(" ") };
            let _ = write!(out, "m={} 0 {} {formats}\r\n", media.media, media.proto);
            continue;
        }
        let mut pts = vec![negotiated.codec_pt.to_string()];
        pts.extend(negotiated.telephone_event.map(|pt| pt.to_string()));
        let proto = if negotiated.srtp.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
        let _ = write!(out, "m=audio {} {proto} {}\r\n", local.port, pts.join(" "));
        let _ = write!(out, "a=rtpmap:{} {}\r\n", negotiated.codec_pt, negotiated.codec.rtpmap());
        if let Some(fmtp) = negotiated.codec.fmtp() {
            let _ = write!(out, "a=fmtp:{} {fmtp}\r\n", negotiated.codec_pt);
        }
        if let Some(theirs) = &negotiated.srtp {
            let ours = Crypto { key: local.key, ..theirs.clone() };
            let _ = write!(out, "a=crypto:{}\r\n", ours.to_value());
        }
        if let Some(pt) = negotiated.telephone_event {
            let events = media.fmtp(pt).filter(|f| !f.is_empty()).unwrap_or("0-16");
            let _ = write!(out, "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} {events}\r\n");
        }
        let ptime = negotiated.ptime.unwrap_or(DEFAULT_PTIME);
        let _ = write!(out, "a=ptime:{ptime}\r\na={}\r\n", negotiated.direction.attribute());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
        s=-\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 49170 RTP/AVP 8 0 96\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\n\
        a=fmtp:96 0-15\r\n\
        a=ptime:30\r\n";

    fn local() -> LocalSdp {
        LocalSdp {
            session_id: 42,
            version: 1,
            address: "127.0.0.1".parse().unwrap(),
            port: 10000,
            srtp: SrtpPolicy::Optional,
            key: MasterKey([7; 30]),
        }
    }

    // Plain-RTP legs, as most tests here negotiate.
    fn answer_offer(offer: &SessionDescription, prefer: &[Codec]) -> Result<Negotiated, SdpError> {
        super::answer_offer(offer, prefer, SrtpPolicy::Optional)
    }

    fn accept_answer(answer: &SessionDescription, offered: &[Codec]) -> Result<Negotiated, SdpError> {
        super::accept_answer(answer, offered, SrtpPolicy::Optional)
    }

    const SAVP_OFFER: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 49170 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n";

    #[test]
    fn a_secure_offer_is_answered_with_its_first_suite_and_our_key() {
        let offer = SessionDescription::parse(SAVP_OFFER).unwrap();
        let n = super::answer_offer(&offer, &[], SrtpPolicy::Optional).unwrap();
        let theirs = n.srtp.clone().unwrap();
        assert_eq!((theirs.tag, theirs.suite), (1, CryptoSuite::AesCm128HmacSha1_80));
        let text = build_answer(&local(), &offer, &n);
        assert!(text.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{text}");
        let ours = Crypto { tag: 1, suite: CryptoSuite::AesCm128HmacSha1_80, key: MasterKey([7; 30]) };
        assert!(text.contains(&format!("a=crypto:{}\r\n", ours.to_value())), "{text}");
        assert_eq!(super::answer_offer(&offer, &[], SrtpPolicy::Always).unwrap().srtp, Some(theirs));
        assert_eq!(super::answer_offer(&offer, &[], SrtpPolicy::Never), Err(SdpError::SrtpRefused));
        // Plain offers: refused where SRTP is required.
        let plain = SessionDescription::parse(OFFER).unwrap();
        assert_eq!(super::answer_offer(&plain, &[], SrtpPolicy::Always), Err(SdpError::SrtpRequired));
        assert_eq!(super::answer_offer(&plain, &[], SrtpPolicy::Never).unwrap().srtp, None);
        // SAVP without a usable crypto line is no secure stream.
        let keyless = SAVP_OFFER.lines().filter(|l| !l.starts_with("a=crypto")).collect::<Vec<_>>().join("\r\n");
        assert!(matches!(
            super::answer_offer(&SessionDescription::parse(&keyless).unwrap(), &[], SrtpPolicy::Optional),
            Err(SdpError::UnsupportedTransport(_))
        ));
        // Best effort (a secure and a plain stream): the policy picks.
        let both = format!("{SAVP_OFFER}m=audio 49180 RTP/AVP 0\r\n");
        let both = SessionDescription::parse(&both).unwrap();
        assert_eq!(super::answer_offer(&both, &[], SrtpPolicy::Never).unwrap().media_index, 1);
        assert_eq!(super::answer_offer(&both, &[], SrtpPolicy::Optional).unwrap().media_index, 0);
    }

    #[test]
    fn a_secure_offer_round_trips() {
        let mut l = local();
        l.srtp = SrtpPolicy::Always;
        let offer = build_offer(&l, &[Codec::Pcmu], Direction::SendRecv);
        assert!(offer.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{offer}");
        assert!(offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{offer}");
        assert!(offer.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"), "{offer}");
        // The far end answers with the 32-bit suite and its own key.
        let parsed = SessionDescription::parse(&offer).unwrap();
        let mut far = local();
        far.key = MasterKey([9; 30]);
        let mut n = super::answer_offer(&parsed, &[], SrtpPolicy::Always).unwrap();
        n.srtp = parsed.media[0].cryptos.get(1).cloned();
        let answer = SessionDescription::parse(&build_answer(&far, &parsed, &n)).unwrap();
        let back = super::accept_answer(&answer, &[Codec::Pcmu], SrtpPolicy::Always).unwrap();
        let theirs = back.srtp.unwrap();
        assert_eq!((theirs.tag, theirs.suite, theirs.key), (2, CryptoSuite::AesCm128HmacSha1_32, MasterKey([9; 30])));
        // A plain answer to a secure offer, or a tag we never offered, is refused.
        let plain = SessionDescription::parse(OFFER).unwrap();
        assert_eq!(super::accept_answer(&plain, &Codec::ALL, SrtpPolicy::Always), Err(SdpError::SrtpRequired));
        let wrong_tag = build_answer(&far, &parsed, &n).replace("a=crypto:2 ", "a=crypto:7 ");
        assert!(
            super::accept_answer(&SessionDescription::parse(&wrong_tag).unwrap(), &[Codec::Pcmu], SrtpPolicy::Always)
                .is_err()
        );
        // A secure answer to a plain offer is refused too.
        assert_eq!(super::accept_answer(&answer, &[Codec::Pcmu], SrtpPolicy::Optional), Err(SdpError::SrtpRefused));
    }

    #[test]
    fn parses_the_lines_negotiation_needs() {
        let sdp = SessionDescription::parse(OFFER).unwrap();
        assert_eq!(sdp.origin.as_ref().unwrap().session_version, "2890844526");
        assert_eq!(sdp.connection, Some("192.0.2.10".parse().unwrap()));
        let m = &sdp.media[0];
        assert_eq!((m.port, m.proto.as_str()), (49170, "RTP/AVP"));
        assert_eq!(m.formats, ["8", "0", "96"]);
        assert_eq!(
            m.rtpmaps[2],
            RtpMap { payload_type: 96, encoding: "telephone-event".into(), clock_rate: 8000, channels: None }
        );
        assert_eq!(m.fmtps, [(96, "0-15".to_owned())]);
        assert_eq!(m.ptime, Some(30));
    }

    #[test]
    fn answer_keeps_offer_order_and_remote_telephone_event_pt() {
        let offer = SessionDescription::parse(OFFER).unwrap();
        let n = answer_offer(&offer, &[]).unwrap();
        assert_eq!((n.codec, n.codec_pt, n.telephone_event), (Codec::Pcma, 8, Some(96)));
        assert_eq!((n.remote_ip, n.remote_port), ("192.0.2.10".parse().unwrap(), 49170));
        assert_eq!(n.direction, Direction::SendRecv);
        let text = build_answer(&local(), &offer, &n);
        assert!(text.contains("m=audio 10000 RTP/AVP 8 96\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"), "{text}");
        assert!(text.contains("o=voxbridge 42 1 IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("c=IN IP4 127.0.0.1\r\n"), "{text}");
        assert!(text.contains("a=ptime:30\r\na=sendrecv\r\n"), "{text}");
        // Our own answer parses back to the same choice.
        let back = accept_answer(&SessionDescription::parse(&text).unwrap(), &Codec::ALL).unwrap();
        assert_eq!((back.codec, back.telephone_event, back.remote_port), (Codec::Pcma, Some(96), 10000));
    }

    #[test]
    fn preferred_codec_wins_over_offer_order() {
        let offer = SessionDescription::parse(OFFER).unwrap();
        let n = answer_offer(&offer, &[Codec::Pcmu]).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_bare_newlines_parse() {
        let offer = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.2\n";
        let n = answer_offer(&SessionDescription::parse(offer).unwrap(), &[]).unwrap();
        assert_eq!((n.codec, n.telephone_event), (Codec::Pcmu, None));
        assert_eq!(n.remote_ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        let text = build_answer(&local(), &SessionDescription::parse(offer).unwrap(), &n);
        assert!(text.contains("m=audio 10000 RTP/AVP 0\r\n") && !text.contains("telephone-event"), "{text}");
    }

    #[test]
    fn direction_is_mirrored() {
        for (attr, ours) in [
            ("sendonly", Direction::RecvOnly),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendRecv),
        ] {
            let offer = format!("{OFFER}a={attr}\r\n");
            let offer = SessionDescription::parse(&offer).unwrap();
            let n = answer_offer(&offer, &[]).unwrap();
            assert_eq!(n.direction, ours, "{attr}");
            assert!(build_answer(&local(), &offer, &n).contains(&format!("a={}\r\n", ours.attribute())));
        }
        // Session-level attribute applies when the media has none.
        let offer = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        assert_eq!(
            answer_offer(&SessionDescription::parse(&offer).unwrap(), &[]).unwrap().direction,
            Direction::RecvOnly
        );
        // RFC 2543 hold: c=0.0.0.0 means "send me nothing".
        let offer = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        assert_eq!(
            answer_offer(&SessionDescription::parse(&offer).unwrap(), &[]).unwrap().direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn other_streams_are_rejected_with_port_zero() {
        let offer = format!("{OFFER}m=video 5000 RTP/AVP 31\r\n");
        let offer = SessionDescription::parse(&offer).unwrap();
        let n = answer_offer(&offer, &[]).unwrap();
        let text = build_answer(&local(), &offer, &n);
        assert!(text.contains("m=video 0 RTP/AVP 31\r\n"), "{text}");
        // A secure stream first, plain RTP second: we take the second.
        let two = OFFER.replace("m=audio 49170 RTP/AVP", "m=audio 5000 RTP/SAVP 0\r\nm=audio 49170 RTP/AVP");
        assert_eq!(answer_offer(&SessionDescription::parse(&two).unwrap(), &[]).unwrap().media_index, 1);
    }

    #[test]
    fn typed_errors() {
        assert_eq!(SessionDescription::parse("hello"), Err(SdpError::NotSdp));
        assert!(matches!(SessionDescription::parse("v=0\r\nnonsense\r\n"), Err(SdpError::Malformed { line: 2, .. })));
        assert!(matches!(
            SessionDescription::parse("v=0\r\nc=IN IP4 example.com\r\n"),
            Err(SdpError::Malformed { line: 2, .. })
        ));
        assert!(matches!(SessionDescription::parse("v=0\r\nm=audio x RTP/AVP 0\r\n"), Err(SdpError::Malformed { .. })));
        let parse = |s: &str| SessionDescription::parse(s).unwrap();
        assert_eq!(answer_offer(&parse("v=0\r\nm=video 5000 RTP/AVP 31\r\n"), &[]), Err(SdpError::NoAudio));
        assert_eq!(
            answer_offer(&parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 111\r\n"), &[]),
            Err(SdpError::UnsupportedTransport("UDP/TLS/RTP/SAVPF".into()))
        );
        assert_eq!(answer_offer(&parse("v=0\r\nm=audio 5000 RTP/AVP 0\r\n"), &[]), Err(SdpError::NoConnection));
        let speex = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 97\r\na=rtpmap:97 speex/8000\r\n";
        assert_eq!(answer_offer(&parse(speex), &[]), Err(SdpError::NoCommonCodec("speex".into())));
        // Wideband offers are answered (the media process transcodes), in our order of preference.
        let wide = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 96 9\r\na=rtpmap:96 opus/48000/2\r\n";
        let n = answer_offer(&parse(wide), &Codec::SUPPORTED).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::G722, 9));
        let n = answer_offer(&parse(wide), &[]).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Opus, 96), "the offer's own order");
        let answer = build_answer(&local(), &parse(wide), &n);
        assert!(answer.contains("m=audio 10000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"), "{answer}");
    }

    #[test]
    fn linear_pcm_is_told_apart_by_its_rate() {
        let offer = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 97 98\r\na=rtpmap:97 L16/16000\r\na=rtpmap:98 L16/8000\r\n";
        let offer = SessionDescription::parse(offer).unwrap();
        assert_eq!(answer_offer(&offer, &[]).unwrap().codec, Codec::L16Wide);
        assert_eq!(answer_offer(&offer, &[Codec::L16]).unwrap().codec_pt, 98);
        let stereo = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 10\r\na=rtpmap:10 L16/44100/2\r\n";
        assert!(answer_offer(&SessionDescription::parse(stereo).unwrap(), &[]).is_err());
        assert_eq!((Codec::from_name("L16/16000"), Codec::from_name("l16")), (Some(Codec::L16Wide), Some(Codec::L16)));
        let ours = build_offer(&local(), &[Codec::L16Wide], Direction::SendRecv);
        assert!(ours.contains("m=audio 10000 RTP/AVP 119 101\r\na=rtpmap:119 L16/16000\r\n"), "{ours}");
    }

    #[test]
    fn g729_is_answered_without_annex_b() {
        let offer = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 18 101\r\na=fmtp:18 annexb=yes\r\n";
        let offer = SessionDescription::parse(offer).unwrap();
        let n = answer_offer(&offer, &[]).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::G729, 18), "static payload type, no rtpmap needed");
        let answer = build_answer(&local(), &offer, &n);
        assert!(answer.contains("a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"), "{answer}");
        let ours = build_offer(&local(), &[Codec::G729, Codec::Pcmu], Direction::SendRecv);
        assert!(ours.contains("m=audio 10000 RTP/AVP 18 0 101\r\n") && ours.contains("a=fmtp:18 annexb=no"), "{ours}");
    }

    #[test]
    fn offer_and_answer_round_trip() {
        let mut l = local();
        let offer = build_offer(&l, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
        assert!(offer.contains("m=audio 10000 RTP/AVP 0 8 101\r\n"), "{offer}");
        assert!(offer.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"), "{offer}");
        // The callee answers with PCMA only and its own telephone-event number.
        let answer = "v=0\r\no=bob 7 7 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
            m=audio 6000 RTP/AVP 8 100\r\na=rtpmap:100 telephone-event/8000\r\na=recvonly\r\n";
        let n = accept_answer(&SessionDescription::parse(answer).unwrap(), &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!((n.codec, n.codec_pt, n.telephone_event), (Codec::Pcma, 8, Some(100)));
        assert_eq!((n.remote_port, n.direction), (6000, Direction::SendOnly));
        // An answer with a codec we did not offer is refused.
        let bad = answer.replace("RTP/AVP 8 100", "RTP/AVP 8");
        assert!(accept_answer(&SessionDescription::parse(&bad).unwrap(), &[Codec::Pcmu]).is_err());
        l.next_version();
        assert!(build_offer(&l, &[Codec::Pcmu], Direction::SendOnly).contains("o=voxbridge 42 2 IN IP4"));
    }
}
