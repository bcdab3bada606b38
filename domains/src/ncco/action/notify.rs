//! `notify`: send a custom payload to a webhook; a non-empty NCCO in its response replaces
//! the running one, an empty response lets the NCCO continue.

use serde_json::{Map, Value};

use crate::ncco::common::Webhook;
use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Sent as the request body.
    pub payload: Map<String, Value>,
    pub event: Webhook,
}

impl Notify {
    pub(crate) fn parse(f: &mut Fields) -> Option<Notify> {
        let payload = f.req("payload", fields::object).cloned();
        let event = Webhook::required(f);
        Some(Notify { payload: payload?, event: event? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::Action;
    use crate::ncco::common::HttpMethod;
    use crate::ncco::test_support::{only_action, problem_names};

    #[test]
    fn valid() {
        let n = match only_action(
            r#"[{"action":"notify","payload":{"foo":"bar","n":[1]},"eventUrl":["https://example.com/webhooks/notify"]}]"#,
        ) {
            Action::Notify(n) => n,
            other => panic!("expected notify, got {other:?}"),
        };
        assert_eq!(n.payload.get("foo"), Some(&Value::from("bar")));
        assert_eq!((n.event.url.as_str(), n.event.method), ("https://example.com/webhooks/notify", HttpMethod::Post));
    }

    #[test]
    fn invalid() {
        assert_eq!(problem_names(r#"[{"action":"notify"}]"#), ["/0/payload", "/0/eventUrl"]);
        assert_eq!(
            problem_names(
                r#"[{"action":"notify","payload":"x","eventUrl":["https://a.example"],"eventMethod":"get"}]"#
            ),
            ["/0/payload", "/0/eventMethod"]
        );
    }
}
