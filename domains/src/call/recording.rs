//! The call's recordings: an NCCO `record` (alongside what follows), a TwiML `<Record>` (the
//! document waits for it) and a `<Dial record>` (the dial's conversation, from the ringing or
//! from the answer, mono or one channel per party), and what happens once each file is
//! written: Vonage's `record` event, `<Record action>`'s request, the `<Dial action>` with the
//! recording's `RecordingUrl`, and `recordingStatusCallback`'s request in Twilio's words.

use super::executor::Step;
use super::{Call, Op};
use crate::media::Command;
use crate::ncco::common::{Callback, Webhook};
use crate::ncco::{Record, RecordFormat};

type Params = Vec<(String, String)>;

/// A recording being made.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: String,
    /// Where Vonage's `record` event goes (an NCCO `record`'s `eventUrl`).
    pub event: Option<Webhook>,
    /// `recordingStatusCallback`: where Twilio's recording status request goes instead.
    pub twiml_status: Option<Webhook>,
    /// `RecordingSource` of a TwiML recording (`RecordVerb`, `DialVerb`); `None`: an NCCO's.
    pub twilio_source: Option<&'static str>,
    pub channels: u32,
    pub started: chrono::DateTime<chrono::Utc>,
}

/// A `<Dial record>` of the running connect.
#[derive(Debug, Clone, PartialEq)]
pub struct DialRecording {
    pub plan: crate::ncco::DialRecord,
    /// Set once recording.
    pub id: Option<String>,
}

/// What a `<Dial record>` records: the caller's endpoint, both directions (the callee is
/// bridged to it), until the dial ends.
fn dial_record(plan: &crate::ncco::DialRecord) -> Record {
    Record { split: plan.dual, twiml_status: plan.status.clone(), ..Record::until_stopped(RecordFormat::Wav) }
}

impl Call {
    /// Starts recording `endpoint_id` as `r` asks; returns the recording's id. A `side`
    /// recording (one beside the program) that fails is left out; the failure of another
    /// ends the call, as a failed action does.
    pub(super) fn start_recording(
        &mut self,
        side: bool,
        endpoint_id: String,
        r: &Record,
        twilio_source: Option<&'static str>,
    ) -> String {
        let record_id = self.cx.ids.uuid();
        let format = match r.format {
            RecordFormat::Wav => "wav",
            _ => "mp3",
        };
        let owner = self.application_id().unwrap_or_else(|| "unowned".to_owned());
        self.exec.recordings.push(Recording {
            id: record_id.clone(),
            event: r.event.clone(),
            twiml_status: r.twiml_status.clone(),
            twilio_source,
            channels: r.channel_count(),
            started: self.cx.now.utc,
        });
        let command = Command::RecordStart {
            endpoint_id,
            path: crate::recordings::path(&owner, &record_id, format),
            record_id: record_id.clone(),
            format: format.to_owned(),
            split: r.split,
            channels: r.channel_count(),
            end_on_silence: r.end_on_silence.unwrap_or(0),
            end_on_key: r.end_on_key,
            timeout: r.time_out.unwrap_or(7200),
            beep_start: r.beep_start,
        };
        let op = if side { Op::SideRecording(record_id.clone()) } else { Op::Action("record") };
        self.cx.media(op, command);
        record_id
    }

    /// The `<Dial record>` starts, when the dial reached the point it records from.
    pub(super) fn dial_recording_reached(&mut self, answered: bool) {
        let Some(d) = self.exec.dial_recording.as_ref() else { return };
        if d.id.is_some() || (!answered && !d.plan.from_ringing) {
            return;
        }
        let (Some(endpoint_id), r) = (self.caller_endpoint(), dial_record(&d.plan)) else { return };
        let id = self.start_recording(true, endpoint_id, &r, Some("DialVerb"));
        if let Some(d) = self.exec.dial_recording.as_mut() {
            d.id = Some(id);
        }
    }

    /// A conversation's recording (`record: true`): the member's endpoint, both directions,
    /// mixed: what it says and the conversation it hears, until it leaves. The `record` event
    /// goes to the conversation's eventUrl.
    pub(super) fn record_conversation(&mut self, endpoint_id: String, event: Option<Webhook>) {
        let r = Record { event, ..Record::until_stopped(RecordFormat::Mp3) };
        self.start_recording(true, endpoint_id, &r, None);
    }

    /// The media process could not start a side recording: the call goes on without it, and
    /// nothing waits for a file that will not come.
    pub(super) fn side_recording_started(
        &mut self,
        record_id: &str,
        result: Result<crate::media::Reply, super::MediaFailure>,
    ) {
        let Err(f) = result else { return };
        tracing::warn!(call_uuid = %self.uuid, %record_id, reason = %f.message, "not recorded");
        self.exec.recordings.retain(|r| r.id != record_id);
        if let Some(d) = self.exec.dial_recording.as_mut().filter(|d| d.id.as_deref() == Some(record_id)) {
            d.id = None;
        }
    }

    /// The dial is over: its recording stops. With a `<Dial action>`, that request waits for
    /// the file (it carries the recording); true when it does.
    pub(super) fn dial_recording_stopped(&mut self, action: Option<&(Webhook, usize)>) -> bool {
        let Some(record_id) = self.exec.dial_recording.take().and_then(|d| d.id) else { return false };
        if let Some(endpoint_id) = self.caller_endpoint() {
            self.cx.media(Op::Ignored, Command::RecordStop { endpoint_id, record_id: record_id.clone() });
        }
        match action {
            Some((action, first)) => {
                self.exec.step = Step::ExpectDialRecordingWritten { record_id, action: action.clone(), first: *first };
                true
            }
            None => false,
        }
    }

    /// A recording is written (or `error` says why not).
    pub(super) fn recording_done(&mut self, record_id: String, size: u64, duration_ms: u64, error: Option<String>) {
        let Some(pos) = self.exec.recordings.iter().position(|r| r.id == record_id) else { return };
        let rec = self.exec.recordings.remove(pos);
        let waiting = std::mem::replace(&mut self.exec.step, Step::Idle);
        let params = self.recording_params(&rec, duration_ms);
        match (&waiting, self.ending.is_some()) {
            (Step::ExpectRecordingWritten { record_id: id, action }, false) if *id == record_id => match error {
                // Twilio goes on with the next verb when nothing was recorded.
                Some(_) => self.next_action(),
                None => self.twiml_callback(action.clone(), params.clone()),
            },
            (Step::ExpectDialRecordingWritten { record_id: id, action, first }, false) if *id == record_id => {
                let extra = if error.is_none() { params.clone() } else { Vec::new() };
                self.dialled(action.clone(), *first, extra);
            }
            _ => self.exec.step = waiting,
        }
        if let Some(reason) = &error {
            tracing::warn!(call_uuid = %self.uuid, %record_id, %reason, "recording lost");
        }
        if let Some(status) = rec.twiml_status.clone() {
            self.recording_status(status, &rec, params, error.is_none());
        } else if error.is_none() && rec.twilio_source.is_none() {
            self.record_event(rec, size, duration_ms);
        }
        self.recording_written();
    }

    /// Twilio's `RecordingUrl`, `RecordingSid` and `RecordingDuration` of a recording.
    fn recording_params(&self, rec: &Recording, duration_ms: u64) -> Params {
        let sid = crate::twiml::sid::of(crate::twiml::sid::RECORDING, &rec.id);
        vec![
            ("RecordingUrl".to_owned(), crate::recordings::url(&self.region_url, &sid)),
            ("RecordingSid".to_owned(), sid),
            ("RecordingDuration".to_owned(), (duration_ms / 1000).to_string()),
        ]
    }

    /// `recordingStatusCallback`'s request (its reply is not a document).
    fn recording_status(&mut self, webhook: Webhook, rec: &Recording, mut params: Params, written: bool) {
        let status = if written { "completed" } else { "failed" };
        params.extend([
            ("CallSid".to_owned(), crate::twiml::sid::of(crate::twiml::sid::CALL, &self.caller_leg().uuid)),
            ("RecordingStatus".to_owned(), status.to_owned()),
            ("RecordingChannels".to_owned(), rec.channels.to_string()),
            ("RecordingSource".to_owned(), rec.twilio_source.unwrap_or("RecordVerb").to_owned()),
            ("RecordingStartTime".to_owned(), rec.started.to_rfc2822()),
        ]);
        let callback: Callback = webhook.into();
        self.send_ignored(super::DocumentRequest::Form { callback, params });
    }

    /// Vonage's `record` event, to the action's eventUrl; its reply is not an NCCO, so the
    /// call does not wait for it.
    fn record_event(&mut self, rec: Recording, size: u64, duration_ms: u64) {
        let end = self.cx.now.utc;
        let start = end - chrono::Duration::milliseconds(i64::try_from(duration_ms).unwrap_or(0));
        let event = crate::events::RecordEvent {
            recording_url: crate::recordings::url(&self.region_url, &rec.id),
            recording_uuid: rec.id,
            uuid: self.uuid.clone(),
            conversation_uuid: self.conversation_uuid.clone(),
            start_time: Some(super::outcome::iso(start)),
            end_time: super::outcome::iso(end),
            size,
            timestamp: self.cx.iso(),
        };
        self.post_ignored(rec.event, serde_json::to_value(event).unwrap_or_default());
    }
}
