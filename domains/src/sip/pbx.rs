//! Calls a PBX sends through its trunk (to the trunk host, or to a `trunk` domain): where they
//! go, decided without I/O once the PBX is authenticated. The caller ID must be one of the
//! account's numbers; a destination that is one of them stays on the platform (its application
//! or forwarding runs); any other E.164 number leaves through the trunk whose prefix matches it
//! longest. This is where toll fraud is stopped: nothing here lets an unknown caller ID or a
//! number no trunk serves reach a carrier.

use thiserror::Error;

use crate::e164::E164;
use crate::trunk::{Routable, select};

/// Where an authenticated PBX's call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxDestination {
    /// One of the account's numbers: its application or forwarding takes the call.
    OnNet(E164),
    /// Out to the PSTN through the trunk named `trunk` (failover across its gateways).
    Pstn { number: E164, trunk: String, caller_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PbxRefusal {
    /// 403: a PBX may only present the account's numbers.
    #[error("caller ID {0} is not one of the account's numbers")]
    CallerIdNotOwned(String),
    /// 404: the Request-URI user is not a number.
    #[error("{0} is not an E.164 number")]
    NotANumber(String),
    /// 404: no trunk's prefixes match the number.
    #[error("no trunk serves +{0}")]
    NoTrunk(String),
}

impl PbxRefusal {
    pub fn status(&self) -> u16 {
        match self {
            PbxRefusal::CallerIdNotOwned(_) => 403,
            PbxRefusal::NotANumber(_) | PbxRefusal::NoTrunk(_) => 404,
        }
    }
}

/// Decides where a PBX's call from `from_user` (the From URI's user) to `to_user` (the
/// Request-URI's) goes; `numbers` are the account's (E.164 digits).
pub fn route<T: Routable + Named>(
    from_user: &str,
    to_user: &str,
    numbers: &[String],
    trunks: &[T],
) -> Result<PbxDestination, PbxRefusal> {
    let caller_id = E164::parse(from_user)
        .ok()
        .map(|n| n.as_str().to_owned())
        .filter(|n| numbers.iter().any(|owned| owned == n))
        .ok_or_else(|| PbxRefusal::CallerIdNotOwned(from_user.to_owned()))?;
    let number = E164::parse(to_user).map_err(|_| PbxRefusal::NotANumber(to_user.to_owned()))?;
    if numbers.iter().any(|owned| owned == number.as_str()) {
        return Ok(PbxDestination::OnNet(number));
    }
    let trunk = select(trunks, &number).ok_or_else(|| PbxRefusal::NoTrunk(number.as_str().to_owned()))?;
    Ok(PbxDestination::Pstn { trunk: trunk.name().to_owned(), number, caller_id })
}

/// A trunk's name, as the destination names it.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for crate::trunk::Trunk {
    fn name(&self) -> &str {
        &self.name
    }
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
    impl Named for T {
        fn name(&self) -> &str {
            self.0
        }
    }

    fn trunks() -> Vec<T> {
        vec![T("world", vec!["1".into(), "44".into()]), T("london", vec!["4420".into()])]
    }

    fn numbers() -> Vec<String> {
        vec!["14155550100".into(), "14155550101".into()]
    }

    #[test]
    fn owned_caller_ids_reach_the_longest_prefix_trunk() {
        let to_london = route("+14155550100", "442071234567", &numbers(), &trunks()).unwrap();
        let PbxDestination::Pstn { trunk, number, caller_id } = to_london else { panic!("{to_london:?}") };
        assert_eq!((trunk.as_str(), number.as_str(), caller_id.as_str()), ("london", "442071234567", "14155550100"));
        let to_us = route("14155550101", "+15551230000", &numbers(), &trunks()).unwrap();
        assert!(matches!(to_us, PbxDestination::Pstn { ref trunk, .. } if trunk == "world"));
    }

    #[test]
    fn the_accounts_own_numbers_stay_on_net() {
        let on_net = route("14155550100", "14155550101", &numbers(), &trunks()).unwrap();
        assert_eq!(on_net, PbxDestination::OnNet(E164::parse("14155550101").unwrap()));
    }

    #[test]
    fn refusals() {
        let refused = |from: &str, to: &str| route(from, to, &numbers(), &trunks()).unwrap_err();
        assert_eq!(refused("15550009999", "15551230000"), PbxRefusal::CallerIdNotOwned("15550009999".into()));
        assert_eq!(refused("alice", "15551230000").status(), 403);
        assert_eq!(refused("14155550100", "bob"), PbxRefusal::NotANumber("bob".into()));
        assert_eq!(refused("14155550100", "81312345678"), PbxRefusal::NoTrunk("81312345678".into()));
        assert_eq!(refused("14155550100", "81312345678").status(), 404);
    }
}
