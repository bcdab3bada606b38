//! `vbc` endpoint: an extension of a Vonage Business Communications account.

use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vbc {
    pub extension: String,
}

impl Vbc {
    pub(crate) fn parse(f: &mut Fields) -> Option<Vbc> {
        let extension = f.req("extension", fields::non_empty)?;
        Some(Vbc { extension: extension.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::endpoint::Endpoint;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    #[test]
    fn valid() {
        assert_eq!(endpoint(r#"{"type":"vbc","extension":"1234"}"#), Endpoint::Vbc(Vbc { extension: "1234".into() }));
    }

    #[test]
    fn invalid() {
        assert_eq!(endpoint_problems(r#"{"type":"vbc"}"#), ["/extension"]);
        assert_eq!(endpoint_problems(r#"{"type":"vbc","extension":"  "}"#), ["/extension"]);
    }
}
