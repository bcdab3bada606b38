//! Trunk gateway health (the `qualify` of PBXs, the dispatcher probing of proxies): each
//! gateway is sent an OPTIONS at an interval; any response means it is up (a `404` or `405`
//! comes from a live SIP stack too), no response within the probe's time is a miss, and
//! [`DOWN_AFTER_MISSES`] misses in a row mark it down. A down gateway is skipped by failover
//! until it answers a probe again, unless every gateway of its trunk is down (then all are
//! tried: a wrong verdict must not stop every call).

use serde::Serialize;
use utoipa::ToSchema;

use crate::trunk::Gateway;

/// Misses in a row after which a gateway is down.
pub const DOWN_AFTER_MISSES: u32 = 2;

/// What the probes say of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not probed yet (or probing is off).
    #[default]
    Unknown,
    Up,
    Down,
}

/// One gateway's probe record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayHealth {
    pub health: Health,
    misses: u32,
}

impl GatewayHealth {
    /// A probe's outcome (`answered`: any response); the new health when it changed.
    pub fn probed(&mut self, answered: bool) -> Option<Health> {
        let before = self.health;
        if answered {
            self.misses = 0;
            self.health = Health::Up;
        } else {
            self.misses = self.misses.saturating_add(1);
            if self.misses >= DOWN_AFTER_MISSES {
                self.health = Health::Down;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

/// The key a gateway's health is kept under.
pub fn key(g: &Gateway) -> String {
    format!("{}:{}/{}", g.host, g.port, g.transport.as_str())
}

/// The gateways failover may use: the ones not down, or all of them when every one is.
pub fn usable(gateways: &[Gateway], is_down: impl Fn(&Gateway) -> bool) -> Vec<Gateway> {
    let up: Vec<Gateway> = gateways.iter().filter(|g| !is_down(g)).cloned().collect();
    if up.is_empty() { gateways.to_vec() } else { up }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_two_misses_up_after_one_answer() {
        let mut h = GatewayHealth::default();
        assert_eq!(h.probed(true), Some(Health::Up));
        assert_eq!(h.probed(true), None);
        assert_eq!(h.probed(false), None, "one miss is a lost datagram, not an outage");
        assert_eq!(h.probed(false), Some(Health::Down));
        assert_eq!(h.probed(false), None);
        assert_eq!(h.probed(true), Some(Health::Up));
        let mut never = GatewayHealth::default();
        assert_eq!((never.probed(false), never.probed(false)), (None, Some(Health::Down)));
    }

    #[test]
    fn down_gateways_are_skipped_unless_all_are() {
        let gw = |port: u16| Gateway {
            host: "192.0.2.1".into(),
            port,
            transport: crate::sip_uri::Transport::Udp,
            priority: 0,
            weight: 1,
        };
        let all = vec![gw(5060), gw(5070)];
        let kept = usable(&all, |g| g.port == 5060);
        assert_eq!(kept, vec![gw(5070)]);
        assert_eq!(usable(&all, |_| true), all);
        assert_eq!(key(&all[0]), "192.0.2.1:5060/udp");
    }
}
