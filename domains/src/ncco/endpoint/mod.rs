//! The endpoints a `connect` action (or a REST `to`) can reach, one file per `type`; this
//! module owns the `type` discriminator and the entry points that parse one endpoint object.

mod app;
mod phone;
mod sip;
mod vbc;
mod websocket;

use serde_json::Value;

use crate::ncco::fields::{self, Fields};
use crate::problem::{InvalidParameter, Problems};

pub use app::App;
pub use phone::{OnAnswer, Phone};
pub use sip::{Sip, SipTarget, SipTransport, SipUriTarget, is_custom_header};
pub use vbc::Vbc;
pub use websocket::{Websocket, WebsocketAuthorization};

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Phone(Phone),
    Sip(Sip),
    Websocket(Websocket),
    Vbc(Vbc),
    App(App),
}

impl Endpoint {
    pub const TYPES: [&'static str; 5] = ["phone", "sip", "websocket", "vbc", "app"];

    /// The `type` this endpoint was parsed from.
    pub fn type_name(&self) -> &'static str {
        match self {
            Endpoint::Phone(_) => "phone",
            Endpoint::Sip(_) => "sip",
            Endpoint::Websocket(_) => "websocket",
            Endpoint::Vbc(_) => "vbc",
            Endpoint::App(_) => "app",
        }
    }

    /// Parses one endpoint object located at JSON pointer `at` (`""` for a bare object),
    /// returning every problem it has.
    pub fn parse(value: &Value, at: &str) -> Result<Endpoint, Vec<InvalidParameter>> {
        let mut problems = Problems::new();
        let endpoint = Endpoint::parse_in(value, at.to_owned(), &mut problems);
        match endpoint {
            Some(e) => problems.finish(e),
            None => Err(problems.into_vec()),
        }
    }

    pub(crate) fn parse_in(value: &Value, at: String, problems: &mut Problems) -> Option<Endpoint> {
        let mut f = Fields::of(value, at, problems)?;
        let kind = f.req("type", fields::one_of(&Self::TYPES.map(|t| (t, t))))?;
        match kind {
            "phone" => Phone::parse(&mut f).map(Endpoint::Phone),
            "sip" => Sip::parse(&mut f).map(Endpoint::Sip),
            "websocket" => Websocket::parse(&mut f).map(Endpoint::Websocket),
            "vbc" => Vbc::parse(&mut f).map(Endpoint::Vbc),
            _ => App::parse(&mut f).map(Endpoint::App),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    #[test]
    fn type_is_required_and_known() {
        assert_eq!(endpoint_problems(r#"{}"#), ["/type"]);
        assert_eq!(endpoint_problems(r#"{"type":"fax"}"#), ["/type"]);
        assert_eq!(endpoint_problems(r#"[]"#), [""]);
    }

    #[test]
    fn type_names() {
        assert_eq!(endpoint(r#"{"type":"app","user":"a"}"#).type_name(), "app");
        assert_eq!(endpoint(r#"{"type":"vbc","extension":"101"}"#).type_name(), "vbc");
    }

    #[test]
    fn pointer_prefix() {
        let value = serde_json::json!({"type": "app"});
        let problems = Endpoint::parse(&value, "/to/0").unwrap_err();
        assert_eq!(problems, [InvalidParameter::new("/to/0/user", "is required")]);
    }
}
