//! Outbound SIP trunks: gateways, the E.164 prefixes a trunk serves, and the choice of trunk
//! (longest matching prefix) and gateway order (priority, then weight) for a number.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::e164::{E164, parse_prefix};
use crate::problem::{InvalidParameter, Problems};
use crate::sip_uri::Transport;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Host name or IP address of the gateway.
    #[schema(example = "sbc1.carrier.example")]
    pub host: String,
    #[serde(default = "default_port")]
    #[schema(default = 5060, minimum = 1, maximum = 65535)]
    pub port: u16,
    #[serde(default)]
    pub transport: Transport,
    /// Lower is tried first (as DNS SRV).
    #[serde(default)]
    #[schema(default = 0)]
    pub priority: u16,
    /// Share among gateways of the same priority.
    #[serde(default = "default_weight")]
    #[schema(default = 1)]
    pub weight: u16,
}

fn default_port() -> u16 {
    5060
}

fn default_weight() -> u16 {
    1
}

pub const MAX_GATEWAYS: usize = 16;

/// Validates gateways and prefixes; names problems as `gateways[i].field` / `prefixes[i]`.
pub fn validate(gateways: &[Gateway], prefixes: &[String]) -> Result<Vec<String>, Vec<InvalidParameter>> {
    let mut problems = Problems::new();
    if gateways.is_empty() {
        problems.push("gateways", "at least one gateway is required");
    }
    if gateways.len() > MAX_GATEWAYS {
        problems.push("gateways", format!("at most {MAX_GATEWAYS} gateways"));
    }
    for (i, g) in gateways.iter().enumerate() {
        if !valid_host(&g.host) {
            problems.push(format!("gateways[{i}].host"), format!("'{}' is not a host name or IP address", g.host));
        }
        if g.port == 0 {
            problems.push(format!("gateways[{i}].port"), "must be 1 to 65535");
        }
    }
    let mut parsed = Vec::with_capacity(prefixes.len());
    for (i, p) in prefixes.iter().enumerate() {
        if let Some(p) = problems.check(&format!("prefixes[{i}]"), parse_prefix(p)) {
            parsed.push(p);
        }
    }
    problems.finish(parsed)
}

fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A trunk as a call places legs through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub gateways: Vec<Gateway>,
    /// E.164 prefixes, digits only.
    pub prefixes: Vec<String>,
    /// Username and password answering the trunk's 401/407 challenges.
    pub credentials: Option<(String, String)>,
    /// The PBX trunk: `vbc` extensions are dialled through it.
    pub pbx: bool,
}

impl Routable for Trunk {
    fn prefixes(&self) -> &[String] {
        &self.prefixes
    }
}

/// What routing needs to know of a trunk.
pub trait Routable {
    fn prefixes(&self) -> &[String];
}

/// The trunk whose longest prefix matches `number`; on a tie the first one listed wins.
/// A trunk with no prefixes serves every number, as the shortest possible match.
pub fn select<'a, T: Routable>(trunks: &'a [T], number: &E164) -> Option<&'a T> {
    let mut best: Option<(usize, &T)> = None;
    for trunk in trunks {
        let len = if trunk.prefixes().is_empty() {
            Some(0)
        } else {
            trunk.prefixes().iter().filter(|p| number.as_str().starts_with(p.as_str())).map(String::len).max()
        };
        if let Some(len) = len
            && best.is_none_or(|(l, _)| len > l)
        {
            best = Some((len, trunk));
        }
    }
    best.map(|(_, t)| t)
}

/// Gateways in the order to try them: ascending priority; inside a priority, a weighted
/// shuffle driven by `random` (one value per gateway, supplied by the caller so this stays
/// deterministic under test).
pub fn gateway_order(gateways: &[Gateway], random: &[u32]) -> Vec<Gateway> {
    let mut keyed: Vec<(u16, u64, Gateway)> = gateways
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let r = u64::from(random.get(i).copied().unwrap_or(0));
            // Smaller key first; a heavier gateway gets smaller keys more often.
            let key = r / u64::from(g.weight.max(1));
            (g.priority, key, g.clone())
        })
        .collect();
    keyed.sort_by_key(|(p, k, _)| (*p, *k));
    keyed.into_iter().map(|(_, _, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T(&'static str, Vec<String>);
    impl Routable for T {
        fn prefixes(&self) -> &[String] {
            &self.1
        }
    }

    fn gw(host: &str, priority: u16, weight: u16) -> Gateway {
        Gateway { host: host.into(), port: 5060, transport: Transport::Udp, priority, weight }
    }

    #[test]
    fn longest_prefix_wins() {
        let trunks = vec![
            T("default", vec![]),
            T("nanp", vec!["1".into()]),
            T("california", vec!["1415".into(), "1650".into()]),
        ];
        let pick = |n: &str| select(&trunks, &E164::parse(n).unwrap()).map(|t| t.0);
        assert_eq!(pick("14155550100"), Some("california"));
        assert_eq!(pick("12125550100"), Some("nanp"));
        assert_eq!(pick("447700900123"), Some("default"));
        assert_eq!(select(&trunks[1..2], &E164::parse("447700900123").unwrap()).map(|t| t.0), None);
    }

    #[test]
    fn validation_names_fields() {
        let err = validate(&[gw("ok.example", 0, 1), gw("bad host", 0, 1)], &["44".into(), "4x".into()]).unwrap_err();
        let names: Vec<_> = err.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["gateways[1].host", "prefixes[1]"]);
        assert!(validate(&[], &[]).is_err());
        assert_eq!(validate(&[gw("10.0.0.1", 0, 1)], &["+1".into()]), Ok(vec!["1".to_string()]));
    }

    #[test]
    fn priority_then_weight() {
        let gws = [gw("b", 1, 1), gw("a", 0, 1), gw("c", 1, 100)];
        let order = gateway_order(&gws, &[50, 0, 1000]);
        let hosts: Vec<_> = order.iter().map(|g| g.host.as_str()).collect();
        assert_eq!(hosts, ["a", "c", "b"]);
    }
}
