//! Conferences: named mixers. Every 20 ms each member's next received frame is taken (from its
//! endpoint's tap, at most a few frames queued: a small jitter buffer) and each member is sent
//! the sum of the frames of the members it may hear, never its own: `speaks_to` and `hears`
//! (Vonage's `canSpeak`/`canHear`) and `muted` decide who reaches whom. Until a member with
//! `start_on_enter` is present the others wait, hearing their music on hold instead of the mix.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domains::media::{Event, PlaySource};
use tokio::sync::{broadcast, mpsc};

use crate::audio::FRAME;
use crate::endpoint::Endpoint;
use crate::playout::PTIME;
use crate::sources::Sources;

/// How a member takes part.
#[derive(Debug, Clone, Default)]
pub struct Role {
    pub member: String,
    pub speaks_to: Option<Vec<String>>,
    pub hears: Option<Vec<String>>,
    pub muted: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub music_on_hold: Option<String>,
}

struct Member {
    ep: Arc<Endpoint>,
    role: Role,
    heard: mpsc::Receiver<Vec<i16>>,
    queue: VecDeque<i16>,
}

/// Frames a member's queue keeps; older audio is dropped (latency stays bounded).
const MAX_QUEUED_FRAMES: usize = 3;

#[derive(Default)]
struct Members {
    list: Vec<Member>,
    started: bool,
}

pub struct Conference {
    pub name: String,
    members: Mutex<Members>,
}

/// The frames `listener` hears from `frames` (member, frame): everyone it may hear but itself.
pub fn heard_by<'a>(listener: &Role, frames: &[(&'a Role, Option<&'a [i16]>)]) -> Vec<(&'a Role, &'a [i16])> {
    frames
        .iter()
        .filter_map(|(speaker, frame)| Some((*speaker, (*frame)?)))
        .filter(|(speaker, _)| {
            let reaches = speaker.speaks_to.as_ref().is_none_or(|to| to.contains(&listener.member));
            let heard = listener.hears.as_ref().is_none_or(|from| from.contains(&speaker.member));
            speaker.member != listener.member && !speaker.muted && reaches && heard
        })
        .collect()
}

/// The mix `listener` hears from `frames`: the sum of [`heard_by`], `None` when nobody speaks.
pub fn mix_for(listener: &Role, frames: &[(&Role, Option<&[i16]>)]) -> Option<Vec<i16>> {
    let heard = heard_by(listener, frames);
    if heard.is_empty() {
        return None;
    }
    let mut sum = vec![0i32; FRAME];
    for (_, frame) in heard {
        for (acc, s) in sum.iter_mut().zip(frame.iter()) {
            *acc += i32::from(*s);
        }
    }
    Some(sum.into_iter().map(|v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16).collect())
}

/// What one member is sent in a round: the mix, and for a recording member the frames in it
/// by member (a split recording gives each party its channel).
pub struct Round {
    pub ep: Arc<Endpoint>,
    pub mix: Vec<i16>,
    pub parties: Option<Vec<(String, Vec<i16>)>>,
}

impl Conference {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.members().list.is_empty()
    }

    /// Adds (or re-adds) an endpoint; a waiting member hears its music on hold.
    pub fn join(&self, ep: Arc<Endpoint>, role: Role, sources: &Arc<Sources>) {
        self.leave(&ep.id);
        let heard = ep.tap();
        let mut m = self.members();
        if role.start_on_enter && !m.started {
            m.started = true;
            for waiting in &m.list {
                waiting.ep.stop_play();
            }
        }
        if !m.started
            && let Some(url) = &role.music_on_hold
        {
            ep.start_play(sources.clone(), format!("hold-{}", self.name), PlaySource::Url { url: url.clone() }, 0, 0.0);
        }
        m.list.push(Member { ep, role, heard, queue: VecDeque::new() });
    }

    /// Removes an endpoint; true when it was a member that ends the conference on exit.
    pub fn leave(&self, endpoint_id: &str) -> bool {
        let mut m = self.members();
        let Some(i) = m.list.iter().position(|x| x.ep.id == endpoint_id) else { return false };
        let gone = m.list.remove(i);
        gone.ep.untap();
        gone.role.end_on_exit
    }

    /// Endpoints still in the conference.
    pub fn endpoints(&self) -> Vec<String> {
        self.members().list.iter().map(|m| m.ep.id.clone()).collect()
    }

    pub fn set_muted(&self, endpoint_id: &str, muted: bool) -> bool {
        let mut m = self.members();
        let Some(member) = m.list.iter_mut().find(|x| x.ep.id == endpoint_id) else { return false };
        member.role.muted = muted;
        true
    }

    /// One 20 ms round: what each member hears (started conferences only).
    fn round(&self) -> Vec<Round> {
        let mut m = self.members();
        if !m.started {
            return Vec::new();
        }
        for member in &mut m.list {
            while let Ok(frame) = member.heard.try_recv() {
                member.queue.extend(frame);
            }
            let max = MAX_QUEUED_FRAMES * FRAME;
            if member.queue.len() > max {
                let excess = member.queue.len() - max;
                member.queue.drain(..excess);
            }
        }
        let frames: Vec<Option<Vec<i16>>> = m
            .list
            .iter_mut()
            .map(|member| (member.queue.len() >= FRAME).then(|| member.queue.drain(..FRAME).collect()))
            .collect();
        let speakers: Vec<(&Role, Option<&[i16]>)> =
            m.list.iter().zip(&frames).map(|(member, f)| (&member.role, f.as_deref())).collect();
        m.list
            .iter()
            .map(|listener| {
                let mix = mix_for(&listener.role, &speakers).unwrap_or_else(|| vec![0; FRAME]);
                let parties = listener.ep.is_recording().then(|| {
                    heard_by(&listener.role, &speakers)
                        .into_iter()
                        .map(|(speaker, frame)| (speaker.member.clone(), frame.to_vec()))
                        .collect()
                });
                Round { ep: listener.ep.clone(), mix, parties }
            })
            .collect()
    }
}

/// The conferences of this media process.
#[derive(Default)]
pub struct Conferences {
    map: Mutex<HashMap<String, Arc<Conference>>>,
}

impl Conferences {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Conference>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `ep` to `name`, creating the conference (and its mixing task) on first join.
    pub fn join(self: &Arc<Self>, name: &str, ep: Arc<Endpoint>, role: Role, sources: &Arc<Sources>) {
        let (conference, created) = {
            let mut map = self.map();
            match map.get(name) {
                Some(c) => (c.clone(), false),
                None => {
                    let c = Arc::new(Conference { name: name.to_owned(), members: Mutex::new(Members::default()) });
                    map.insert(name.to_owned(), c.clone());
                    (c, true)
                }
            }
        };
        conference.join(ep, role, sources);
        if created {
            crate::pacer::spawn(mix(Arc::downgrade(self), conference));
        }
    }

    /// Takes `endpoint_id` out of `name` (or of every conference, for a destroyed endpoint);
    /// a member that ends the conference on exit ends it for the others.
    pub fn leave(&self, name: Option<&str>, endpoint_id: &str, events: &broadcast::Sender<Event>) {
        let conferences: Vec<Arc<Conference>> = match name {
            Some(n) => self.map().get(n).cloned().into_iter().collect(),
            None => self.map().values().cloned().collect(),
        };
        for c in conferences {
            if c.leave(endpoint_id) {
                for other in c.endpoints() {
                    c.leave(&other);
                    let _ = events.send(Event::ConferenceEnded { endpoint_id: other, conference: c.name.clone() });
                }
            }
            if c.is_empty() {
                self.map().remove(&c.name);
            }
        }
    }

    /// Mutes an endpoint in its conference (an endpoint is in one at most); false when it is
    /// in none.
    pub fn set_muted(&self, endpoint_id: &str, muted: bool) -> bool {
        let conferences: Vec<Arc<Conference>> = self.map().values().cloned().collect();
        conferences.iter().any(|c| c.set_muted(endpoint_id, muted))
    }
}

/// Mixes `conference` every 20 ms until it is removed.
async fn mix(conferences: std::sync::Weak<Conferences>, conference: Arc<Conference>) {
    let mut clock = tokio::time::interval(PTIME);
    loop {
        clock.tick().await;
        let Some(all) = conferences.upgrade() else { return };
        if !all.map().get(&conference.name).is_some_and(|c| Arc::ptr_eq(c, &conference)) {
            return;
        }
        drop(all);
        for round in conference.round() {
            round.ep.send_frame(&round.mix, round.parties.as_deref()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(member: &str) -> Role {
        Role { member: member.into(), start_on_enter: true, ..Role::default() }
    }

    #[test]
    fn each_hears_the_others_but_not_itself() {
        let (a, b, c) = (role("a"), role("b"), role("c"));
        let (fa, fb, fc) = (vec![100i16; FRAME], vec![20i16; FRAME], vec![3i16; FRAME]);
        let frames = [(&a, Some(fa.as_slice())), (&b, Some(fb.as_slice())), (&c, Some(fc.as_slice()))];
        assert_eq!(mix_for(&a, &frames).unwrap()[0], 23);
        assert_eq!(mix_for(&b, &frames).unwrap()[0], 103);
        assert_eq!(mix_for(&c, &frames).unwrap()[0], 120);
        let silent = [(&a, Some(fa.as_slice())), (&b, None)];
        assert_eq!(mix_for(&a, &silent), None, "nobody else spoke");
    }

    #[test]
    fn muted_members_and_speak_hear_lists() {
        let (mut a, b, mut c) = (role("a"), role("b"), role("c"));
        a.muted = true;
        let f = vec![10i16; FRAME];
        let frames = [(&a, Some(f.as_slice())), (&b, Some(f.as_slice())), (&c, Some(f.as_slice()))];
        assert_eq!(mix_for(&b, &frames).unwrap()[0], 10, "a is muted: b hears c only");
        a.muted = false;
        a.speaks_to = Some(vec!["b".into()]);
        c.hears = Some(vec!["b".into()]);
        let frames = [(&a, Some(f.as_slice())), (&b, Some(f.as_slice())), (&c, Some(f.as_slice()))];
        assert_eq!(mix_for(&b, &frames).unwrap()[0], 20, "b hears a (which speaks to b) and c");
        assert_eq!(mix_for(&c, &frames).unwrap()[0], 10, "c hears only b");
        let loud = vec![30000i16; FRAME];
        let frames = [(&a, Some(loud.as_slice())), (&b, Some(loud.as_slice())), (&c, Some(f.as_slice()))];
        assert_eq!(mix_for(&b, &frames).unwrap()[0], 30010);
        let (a, d) = (role("a"), role("d"));
        let frames = [(&a, Some(loud.as_slice())), (&b, Some(loud.as_slice())), (&d, None)];
        assert_eq!(mix_for(&d, &frames).unwrap()[0], i16::MAX, "the sum saturates");
    }
}
