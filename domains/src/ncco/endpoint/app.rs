//! `app` endpoint: a Client SDK user of the application, by username.

use crate::ncco::fields::{self, Fields};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub user: String,
}

impl App {
    pub(crate) fn parse(f: &mut Fields) -> Option<App> {
        let user = f.req("user", fields::non_empty)?;
        Some(App { user: user.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncco::endpoint::Endpoint;
    use crate::ncco::test_support::{endpoint, endpoint_problems};

    #[test]
    fn valid() {
        assert_eq!(endpoint(r#"{"type":"app","user":"jamie"}"#), Endpoint::App(App { user: "jamie".into() }));
    }

    #[test]
    fn invalid() {
        assert_eq!(endpoint_problems(r#"{"type":"app"}"#), ["/user"]);
        assert_eq!(endpoint_problems(r#"{"type":"app","user":""}"#), ["/user"]);
        assert_eq!(endpoint_problems(r#"{"type":"app","user":7}"#), ["/user"]);
    }
}
