//! `wait`: pause the NCCO for a number of seconds (0.1–7200, values outside are clamped).

use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait {
    /// Seconds, within [`Wait::MIN_TIMEOUT`]..=[`Wait::MAX_TIMEOUT`].
    pub timeout: f64,
}

impl Wait {
    pub const DEFAULT_TIMEOUT: f64 = 10.0;
    pub const MIN_TIMEOUT: f64 = 0.1;
    pub const MAX_TIMEOUT: f64 = 7200.0;

    pub(crate) fn parse(f: &mut Fields) -> Option<Wait> {
        let timeout = f.opt("timeout", fields::any_number).unwrap_or(Self::DEFAULT_TIMEOUT);
        Some(Wait { timeout: timeout.clamp(Self::MIN_TIMEOUT, Self::MAX_TIMEOUT) })
    }
}

#[cfg(test)]
mod tests {
    use crate::ncco::Action;
    use crate::ncco::test_support::{only_action, problem_names};

    fn timeout(json: &str) -> f64 {
        match only_action(json) {
            Action::Wait(w) => w.timeout,
            other => panic!("expected wait, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_clamps() {
        assert_eq!(timeout(r#"[{"action":"wait"}]"#), 10.0);
        assert_eq!(timeout(r#"[{"action":"wait","timeout":2.5}]"#), 2.5);
        assert_eq!(timeout(r#"[{"action":"wait","timeout":0}]"#), 0.1);
        assert_eq!(timeout(r#"[{"action":"wait","timeout":99999}]"#), 7200.0);
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"wait","timeout":"10"}]"#), ["/0/timeout"]);
    }
}
