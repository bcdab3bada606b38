//! The media engine: every endpoint of this process, the commands of the control protocol that
//! act on them (create, update, bridge, unbridge, destroy, stats, play, DTMF, record), and the
//! housekeeping task that reports RTP inactivity and load. Control connections share one engine; events go to
//! all of them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use domains::media::{Command, ErrorCode, Event, Message, PlaySource, Reply, Request, answer};
use domains::sdp::{self, Codec, LocalSdp, SdpError, SessionDescription};
use domains::srtp::{MasterKey, SrtpPolicy};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::endpoint::{self, Clock, Endpoint, Session};
use crate::mixer::{Conferences, Role};
use crate::panics;
use crate::ports::{PortAllocator, PortRange, PortsExhausted};
use crate::recorder::{Format, Recorder, Settings};
use crate::sources::Sources;

#[derive(Debug, Clone)]
pub struct Config {
    /// Bound by every RTP socket and advertised in our SDP.
    pub rtp_ip: IpAddr,
    pub rtp_ports: PortRange,
    /// `rtp_timeout` after this long without RTP; zero disables it.
    pub rtp_timeout: Duration,
    pub stats_interval: Duration,
    /// Where recordings are written (`record_start`'s `path` is relative to it).
    pub recordings_dir: std::path::PathBuf,
    /// How often each leg sends its RTCP report.
    pub rtcp_interval: Duration,
    /// The codecs we offer, in order (answers accept any supported codec, in the offer's order).
    pub codecs: Vec<Codec>,
}

/// Engines the media process may be given.
#[derive(Default)]
pub struct Engines {
    /// Speech recognition for `input`; none: `transcribe` is refused.
    pub asr: Option<Arc<dyn crate::asr::AsrEngine>>,
}

#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no endpoint {0}")]
    NotFound(String),
    #[error(transparent)]
    Negotiation(#[from] SdpError),
    #[error(transparent)]
    Exhausted(#[from] PortsExhausted),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Internal(String),
}

impl CommandError {
    /// The one place errors meet the wire.
    fn code(&self) -> ErrorCode {
        match self {
            CommandError::BadRequest(_) => ErrorCode::BadRequest,
            CommandError::NotFound(_) => ErrorCode::NotFound,
            CommandError::Negotiation(_) => ErrorCode::Negotiation,
            CommandError::Exhausted(_) => ErrorCode::Exhausted,
            CommandError::Unsupported(_) => ErrorCode::Unsupported,
            CommandError::Internal(_) => ErrorCode::Internal,
        }
    }
}

struct Entry {
    endpoint: Arc<Endpoint>,
    task: JoinHandle<()>,
    rtcp: JoinHandle<()>,
}

pub struct Engine {
    config: Config,
    ports: Arc<PortAllocator>,
    endpoints: Mutex<HashMap<String, Entry>>,
    /// WebSocket parties and the endpoint streaming each one.
    pairs: Mutex<HashMap<String, String>>,
    events: broadcast::Sender<Event>,
    clock: Clock,
    sources: Arc<Sources>,
    conferences: Arc<Conferences>,
    engines: Engines,
}

impl Engine {
    /// Creates the engine and starts its housekeeping task (which ends with the engine).
    pub fn start(config: Config, sources: Sources, engines: Engines) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            ports: PortAllocator::new(config.rtp_ip, config.rtp_ports),
            config,
            endpoints: Mutex::new(HashMap::new()),
            pairs: Mutex::default(),
            events: broadcast::channel(1024).0,
            clock: Clock::start(),
            sources: Arc::new(sources),
            conferences: Arc::default(),
            engines,
        });
        tokio::spawn(housekeeping(Arc::downgrade(&engine)));
        engine
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn endpoints(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Endpoint>, CommandError> {
        self.endpoints().get(id).map(|e| e.endpoint.clone()).ok_or_else(|| CommandError::NotFound(id.to_owned()))
    }

    /// Answers one request. `owned` collects the endpoints this connection created, so they are
    /// released when it closes.
    pub async fn handle(&self, request: Request, owned: &mut HashSet<String>) -> Message {
        if let Some(reply) = answer(&request, env!("CARGO_PKG_VERSION")) {
            return reply;
        }
        let id = request.id;
        let result = match request.command {
            Command::CreateEndpoint { call_uuid, remote_sdp, prefer, srtp } => {
                self.create(call_uuid, remote_sdp.as_deref(), &prefer, srtp).map(|ep| {
                    owned.insert(ep.id.clone());
                    Reply::Endpoint {
                        endpoint_id: ep.id.clone(),
                        local_sdp: ep.local_sdp(),
                        codec: ep.codec().map(|c| c.name().to_owned()),
                    }
                })
            }
            Command::UpdateEndpoint { endpoint_id, remote_sdp } => self
                .get(&endpoint_id)
                .and_then(|ep| Ok(ep.update(&remote_sdp)?))
                .map(|local_sdp| Reply::Updated { local_sdp }),
            Command::Bridge { a, b } => self.bridge(&a, &b).map(|()| Reply::Bridged),
            Command::Unbridge { a, b } => self.unbridge(&a, &b).map(|()| Reply::Unbridged),
            Command::DestroyEndpoint { endpoint_id } => {
                owned.remove(&endpoint_id);
                Ok(Reply::Destroyed { quality: self.destroy(&endpoint_id).await })
            }
            Command::EndpointStats { endpoint_id } => self.get(&endpoint_id).map(|ep| {
                let s = ep.stats();
                Reply::EndpointStats {
                    endpoint_id,
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    quality: ep.quality(),
                }
            }),
            Command::Reoffer { endpoint_id, direction } => {
                self.get(&endpoint_id).map(|ep| Reply::Updated { local_sdp: ep.reoffer(direction) })
            }
            Command::Play { endpoint_id, play_id, source, loop_count, level } => self.get(&endpoint_id).map(|ep| {
                ep.start_play(self.sources.clone(), play_id, source, loop_count, level);
                Reply::Started
            }),
            Command::StopPlay { endpoint_id } => self.get(&endpoint_id).map(|ep| {
                ep.stop_play();
                Reply::Started
            }),
            Command::SendDtmf { endpoint_id, digits } => {
                if !domains::dtmf::valid_digits(&digits) {
                    return Message::error(
                        id,
                        ErrorCode::BadRequest,
                        format!("digits {digits:?}: only 0-9, *, #, A-D and p (a pause) are sent"),
                    );
                }
                self.get(&endpoint_id).map(|ep| {
                    ep.start_dtmf(digits);
                    Reply::Started
                })
            }
            Command::RecordStart {
                endpoint_id,
                record_id,
                path,
                format,
                split,
                channels,
                end_on_silence,
                end_on_key,
                timeout,
                beep_start,
            } => {
                let settings = Format::from_name(&format)
                    .ok_or_else(|| CommandError::BadRequest(format!("format {format:?}: mp3 or wav")))
                    .and_then(|format| {
                        if !domains::recordings::is_safe_relative(&path) {
                            return Err(CommandError::BadRequest(format!(
                                "path {path:?} is not a plain relative path"
                            )));
                        }
                        Ok(Settings {
                            format,
                            channels: crate::recorder::channel_count(split, channels),
                            end_on_silence: (end_on_silence > 0).then(|| Duration::from_secs(end_on_silence.into())),
                            end_on_key,
                            limit: Duration::from_secs(timeout.clamp(1, 7200).into()),
                        })
                    });
                settings.and_then(|settings| {
                    let ep = self.get(&endpoint_id)?;
                    if beep_start {
                        let beep = PlaySource::Tone { freqs: vec![1000.0], ms: 400 };
                        ep.start_play(self.sources.clone(), format!("beep-{record_id}"), beep, 1, 0.0);
                    }
                    let file = self.config.recordings_dir.join(&path);
                    ep.start_record(Recorder::new(record_id, file, settings, std::time::Instant::now()));
                    Ok(Reply::Started)
                })
            }
            Command::RecordStop { endpoint_id, record_id } => self.get(&endpoint_id).map(|ep| {
                ep.stop_record(Some(&record_id));
                Reply::Started
            }),
            Command::ConnectWebsocket { endpoint_id, target } => websocket_rate(&target).and_then(|_| {
                self.get(&endpoint_id).map(|ep| {
                    ep.start_websocket(target, endpoint_id);
                    Reply::Started
                })
            }),
            Command::CreateWebsocketEndpoint { call_uuid, target } => {
                self.create_websocket_party(call_uuid, target).await.map(|ep| {
                    owned.insert(ep.id.clone());
                    Reply::Endpoint {
                        endpoint_id: ep.id.clone(),
                        local_sdp: ep.local_sdp(),
                        codec: ep.codec().map(|c| c.name().to_owned()),
                    }
                })
            }
            Command::ConferenceJoin {
                endpoint_id,
                conference,
                member,
                speaks_to,
                hears,
                muted,
                start_on_enter,
                end_on_exit,
                music_on_hold,
            } => self.get(&endpoint_id).map(|ep| {
                let role = Role { member, speaks_to, hears, muted, start_on_enter, end_on_exit, music_on_hold };
                // One conference at a time: joining another leaves the current one.
                self.conferences.leave(None, &endpoint_id, &self.events);
                self.conferences.join(&conference, ep, role, &self.sources);
                Reply::Started
            }),
            Command::ConferenceLeave { endpoint_id, conference } => {
                self.conferences.leave(Some(&conference), &endpoint_id, &self.events);
                Ok(Reply::Started)
            }
            Command::DetectMachine { endpoint_id, beep_timeout_ms } => self.get(&endpoint_id).map(|ep| {
                ep.detect_machine(beep_timeout_ms);
                Reply::Started
            }),
            Command::Earmuff { endpoint_id, earmuffed } => self.get(&endpoint_id).map(|ep| {
                ep.set_earmuffed(earmuffed);
                Reply::Started
            }),
            Command::Mute { endpoint_id, muted } => self.get(&endpoint_id).map(|ep| {
                ep.set_muted(muted);
                self.conferences.set_muted(&endpoint_id, muted);
                Reply::Started
            }),
            Command::Transcribe {
                endpoint_id,
                transcribe_id,
                language,
                context,
                start_timeout_ms,
                end_on_silence_ms,
                max_duration_ms,
            } => match &self.engines.asr {
                None => Err(CommandError::Unsupported(domains::events::NO_SPEECH_ENGINE.to_owned())),
                Some(asr) => self.get(&endpoint_id).map(|ep| {
                    let bounds = domains::speech::Bounds { start_timeout_ms, end_on_silence_ms, max_duration_ms };
                    let request = crate::asr::AsrRequest { language, context };
                    ep.start_transcribe(transcribe_id, bounds, asr.clone(), request);
                    Reply::Started
                }),
            },
            Command::StopTranscribe { endpoint_id, transcribe_id } => self.get(&endpoint_id).map(|ep| {
                ep.stop_transcribe(Some(&transcribe_id));
                Reply::Started
            }),
            Command::Hello { .. } | Command::Ping => Err(CommandError::Internal("unreachable".into())),
        };
        match result {
            Ok(reply) => Message::ok(id, reply),
            Err(e) => {
                tracing::info!(request_id = id, error = %e, "command refused");
                Message::error(id, e.code(), e.to_string())
            }
        }
    }

    fn create(
        &self,
        call_uuid: String,
        remote_sdp: Option<&str>,
        prefer: &[String],
        srtp: SrtpPolicy,
    ) -> Result<Arc<Endpoint>, CommandError> {
        let prefer: Vec<Codec> = prefer.iter().filter_map(|name| Codec::from_name(name)).collect();
        let mut local = LocalSdp {
            session_id: uuid::Uuid::new_v4().as_u64_pair().0 >> 1,
            version: 1,
            address: self.config.rtp_ip,
            port: 0,
            srtp,
            // Each leg its own key, from the OS-seeded CSPRNG.
            key: MasterKey(rand::random()),
        };
        // Negotiate before taking a port: a refused offer costs nothing.
        let offer = match remote_sdp {
            Some(text) => {
                let offer = SessionDescription::parse(text)?;
                // The command's preference, else the offerer's order (RFC 3264 §6.1): any
                // supported codec is accepted and transcoded when the other leg differs.
                let negotiated = sdp::answer_offer(&offer, &prefer, srtp)?;
                Some((offer, negotiated, text))
            }
            None => None,
        };
        let (socket, rtcp, lease) = self.ports.allocate()?;
        local.port = lease.port();
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| CommandError::Internal(e.to_string()))?;
        let rtcp = tokio::net::UdpSocket::from_std(rtcp).ok();
        let (local_sdp, session, identity) = match offer {
            Some((offer, negotiated, text)) => (
                sdp::build_answer(&local, &offer, &negotiated),
                Session::Negotiated(negotiated),
                Some(endpoint::remote_identity(&offer, text)),
            ),
            None => {
                let mut offered = prefer.clone();
                offered.extend(self.config.codecs.iter().filter(|c| !prefer.contains(c)));
                (sdp::build_offer(&local, &offered, endpoint::OFFER_DIRECTION), Session::Offered { offered }, None)
            }
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let endpoint = Endpoint::new(
            id.clone(),
            call_uuid,
            socket,
            lease,
            local,
            local_sdp,
            session,
            identity,
            self.clock,
            self.events.clone(),
            rtcp,
        );
        let task = tokio::spawn(endpoint.clone().run());
        let rtcp = tokio::spawn(endpoint.clone().run_rtcp(self.config.rtcp_interval));
        tracing::info!(
            endpoint_id = %id, call_uuid = %endpoint.call_uuid, port = endpoint.port(),
            codec = endpoint.codec().map(Codec::name), "endpoint created"
        );
        self.endpoints().insert(id, Entry { endpoint: endpoint.clone(), task, rtcp });
        Ok(endpoint)
    }

    /// The party endpoint of a WebSocket call, and behind it the endpoint that streams: the two
    /// are an RTP pair on this host (the party offers, the streamer answers), so every command
    /// acts on the party as on a SIP leg's endpoint, and the streamer's WebSocket job hears what
    /// the party sends and sends it what the server plays. A wideband content type negotiates
    /// L16 at 16 kHz between them (lossless, and the cheapest wideband codec to transcode:
    /// bench/media), a narrowband one PCMU, which a G.711 caller's packets pass unchanged.
    async fn create_websocket_party(
        &self,
        call_uuid: String,
        target: domains::media::WebsocketTarget,
    ) -> Result<Arc<Endpoint>, CommandError> {
        let codec = if websocket_rate(&target)? > 8000 { Codec::L16Wide } else { Codec::Pcmu };
        let prefer = [codec.name().to_owned()];
        let party = self.create(call_uuid.clone(), None, &prefer, SrtpPolicy::Optional)?;
        let paired =
            self.create(call_uuid, Some(&party.local_sdp()), &prefer, SrtpPolicy::Optional).and_then(|streamer| {
                party.update(&streamer.local_sdp())?;
                Ok(streamer)
            });
        let streamer = match paired {
            Ok(streamer) => streamer,
            Err(e) => {
                self.destroy(&party.id).await;
                return Err(e);
            }
        };
        self.pairs().insert(party.id.clone(), streamer.id.clone());
        streamer.start_websocket(target, party.id.clone());
        Ok(party)
    }

    fn pairs(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bridge(&self, a: &str, b: &str) -> Result<(), CommandError> {
        if a == b {
            return Err(CommandError::BadRequest("cannot bridge an endpoint to itself".into()));
        }
        let (ea, eb) = (self.get(a)?, self.get(b)?);
        for (x, y) in [(&ea, &eb), (&eb, &ea)] {
            // An endpoint is in one bridge at a time: a new bridge replaces the old one.
            if let Some(old) = x.peer().filter(|old| !Arc::ptr_eq(old, y)) {
                old.set_peer(None);
            }
            x.set_peer(Some(y));
        }
        tracing::info!(a, b, call_uuid = %ea.call_uuid, "bridged");
        Ok(())
    }

    fn unbridge(&self, a: &str, b: &str) -> Result<(), CommandError> {
        let (ea, eb) = (self.get(a)?, self.get(b)?);
        if ea.peer().is_some_and(|p| Arc::ptr_eq(&p, &eb)) {
            ea.set_peer(None);
            eb.set_peer(None);
        }
        Ok(())
    }

    /// Removes the endpoint (a WebSocket party with its streamer) and waits for its receive
    /// task to end, so the socket is closed and the port free when this returns; gives its
    /// final quality. Unknown ids are ignored.
    async fn destroy(&self, id: &str) -> Option<domains::quality::Quality> {
        let streamer = self.pairs().remove(id);
        if let Some(streamer) = streamer {
            self.destroy_one(&streamer).await;
        }
        self.destroy_one(id).await
    }

    async fn destroy_one(&self, id: &str) -> Option<domains::quality::Quality> {
        let entry = self.endpoints().remove(id)?;
        self.conferences.leave(None, id, &self.events);
        if let Some(peer) = entry.endpoint.peer()
            && peer.peer().is_some_and(|p| Arc::ptr_eq(&p, &entry.endpoint))
        {
            peer.set_peer(None);
        }
        entry.task.abort();
        entry.rtcp.abort();
        let _ = entry.task.await;
        let _ = entry.rtcp.await;
        entry.endpoint.end_jobs().await;
        let quality = entry.endpoint.quality();
        tracing::info!(
            endpoint_id = %id, call_uuid = %entry.endpoint.call_uuid, rx_packets = quality.packets_received,
            tx_packets = quality.packets_sent, lost = quality.packets_lost, jitter_ms = quality.jitter_ms,
            mos = quality.mos, "endpoint destroyed"
        );
        Some(quality)
    }

    /// Destroys what a closed control connection left behind.
    pub async fn release(&self, owned: HashSet<String>) {
        for id in owned {
            self.destroy(&id).await;
        }
    }

    fn snapshot(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints().values().map(|e| e.endpoint.clone()).collect()
    }
}

/// The L16 rate of a WebSocket stream's content type.
fn websocket_rate(target: &domains::media::WebsocketTarget) -> Result<u32, CommandError> {
    domains::ncco::Websocket::l16_rate(&target.content_type)
        .ok_or_else(|| CommandError::BadRequest(format!("content type {:?}", target.content_type)))
}

/// Reports RTP inactivity and load until the engine is gone. One task serves every endpoint,
/// so a panic in a tick (a bug) is caught and logged, and the next tick runs as usual.
async fn housekeeping(engine: Weak<Engine>) {
    let Some((timeout, stats_every)) = engine.upgrade().map(|e| (e.config.rtp_timeout, e.config.stats_interval)) else {
        return;
    };
    let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats = tokio::time::Instant::now();
    let mut reported_panics = 0;
    loop {
        interval.tick().await;
        let Some(engine) = engine.upgrade() else { return };
        let stats_due = last_stats.elapsed() >= stats_every;
        if stats_due {
            last_stats = tokio::time::Instant::now();
        }
        let ticked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            engine.housekeeping_tick(timeout, stats_due, &mut reported_panics);
        }));
        if let Err(payload) = ticked {
            tracing::error!(panic = panics::message(&*payload), "bug: housekeeping tick panicked");
        }
    }
}

impl Engine {
    /// One housekeeping pass: `rtp_timeout` events, and when `stats_due` the load report (and a
    /// warning if RTP packet handlers panicked since the last one).
    fn housekeeping_tick(&self, timeout: Duration, stats_due: bool, reported_panics: &mut u64) {
        let endpoints = self.snapshot();
        if !timeout.is_zero() {
            // A WebSocket pair sends RTP only while there is audio to send: silence is no fault.
            let paired: HashSet<String> = self.pairs().iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
            for ep in endpoints.iter().filter(|ep| !paired.contains(&ep.id)) {
                if ep.check_timeout(timeout) {
                    tracing::info!(endpoint_id = %ep.id, call_uuid = %ep.call_uuid, "RTP timeout");
                    let _ = self
                        .events
                        .send(Event::RtpTimeout { endpoint_id: ep.id.clone(), call_uuid: ep.call_uuid.clone() });
                }
            }
        }
        if stats_due {
            let _ = self.events.send(Event::Stats { endpoints: endpoints.len() as u64 });
            let panics = endpoint::packet_panics();
            if panics > *reported_panics {
                tracing::warn!(
                    total = panics,
                    new = panics - *reported_panics,
                    "RTP packet handler panics (bugs) survived"
                );
                *reported_panics = panics;
            }
        }
    }
}
