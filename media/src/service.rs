//! An HTTP speech service the media process calls (a recogniser, a voice): its URL, its
//! optional bearer token and one client with a time limit, and the one way a request to it
//! goes and fails (unreachable, or a status that is not success), named for the engine that
//! asked.

use std::time::Duration;

/// The longest a speech service may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpService {
    url: String,
    api_key: Option<String>,
    client: reqwest::Client,
    /// What the errors call it ("speech recogniser", "text-to-speech service").
    what: &'static str,
}

impl HttpService {
    pub fn new(what: &'static str, url: String, api_key: Option<String>) -> Result<HttpService, String> {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| e.to_string())?;
        Ok(HttpService { url, api_key, client, what })
    }

    /// POSTs what `body` puts in the request; the response when it is a success.
    pub async fn post(
        &self,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let mut post = body(self.client.post(&self.url));
        if let Some(key) = &self.api_key {
            post = post.bearer_auth(key);
        }
        let response = post.send().await.map_err(|e| format!("{} unreachable: {e}", self.what))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{} answered HTTP {}", self.what, status.as_u16()));
        }
        Ok(response)
    }

    /// The error text for a reply that could not be read.
    pub fn unreadable(&self, e: impl std::fmt::Display) -> String {
        format!("{}'s reply unreadable: {e}", self.what)
    }
}
