//! Schemas of domain types as the OpenAPI document states them: the same fields and shape as
//! the domain types (the tests below check both against the same documents), plus the limits
//! the domain's validation enforces, which the domain types' derived schemas lack. Answer and
//! event webhooks are separate schemas because their socket timeouts differ.
//!
//! Only the schema derive and the tests read these types; requests are parsed into the domain
//! types themselves.

#![allow(dead_code)]

use domains::application::HttpMethod;
use domains::sip_uri::Transport;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Type};

/// Capabilities other than `voice` (rtc, messages, …) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = Capabilities)]
pub struct CapabilitiesSchema {
    #[serde(default)]
    pub voice: Option<VoiceCapabilitySchema>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceCapability)]
pub struct VoiceCapabilitySchema {
    pub webhooks: VoiceWebhooksSchema,
    /// Sign webhooks with the account's signature secret (HS256 JWT).
    #[serde(default)]
    #[schema(default = true)]
    pub signed_callbacks: Option<bool>,
    /// Hours a named conversation persists.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9000, default = 48)]
    pub conversations_ttl: Option<u32>,
    /// Days a finished leg stays queryable.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31, default = 2)]
    pub leg_persistence_time: Option<u32>,
    /// One of the configured region labels (`VOXBRIDGE_REGIONS`, default us, eu, ap) where
    /// this application's calls run.
    #[serde(default)]
    pub region: Option<String>,
    /// voxbridge's own: `twiml` for applications written for Twilio/SignalWire (answer_url
    /// asked with Twilio's form, POST by default, signed with `X-Twilio-Signature`; events
    /// sent as status callbacks). Either may answer NCCO JSON or TwiML.
    #[serde(default)]
    #[schema(default = "ncco")]
    pub dialect: Option<domains::application::Dialect>,
    /// voxbridge's own: the transport of a document's `<Sip>` URI that names none. Unset:
    /// `tls`, as SignalWire does; applications written for Twilio set `udp`, its default.
    #[serde(default)]
    #[schema(default = "tls")]
    pub sip_transport: Option<domains::sip_uri::Transport>,
    /// voxbridge's own, for `twiml` applications: the `StatusCallbackEvent`s (`initiated`,
    /// `ringing`, `answered`, `completed`) their event_url is sent. Unset: every one.
    #[serde(default)]
    pub status_callback_event: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VoiceWebhooks)]
pub struct VoiceWebhooksSchema {
    pub answer_url: AnswerWebhook,
    pub event_url: EventWebhook,
    /// Tried when answer_url fails; same limits as answer_url.
    #[serde(default)]
    pub fallback_answer_url: Option<AnswerWebhook>,
}

/// Where and how voxbridge fetches a call's NCCO (answer_url, fallback_answer_url).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerWebhook {
    /// An absolute http:// or https:// URL.
    #[schema(example = "https://app.example.com/answer")]
    pub address: String,
    /// Default GET.
    #[serde(default)]
    pub http_method: Option<HttpMethod>,
    /// Milliseconds to establish the connection.
    #[serde(default)]
    #[schema(minimum = 300, maximum = 1000, default = 1000)]
    pub connect_timeout: Option<u32>,
    /// Milliseconds to wait for the response.
    #[serde(default)]
    #[schema(minimum = 1000, maximum = 5000, default = 5000)]
    pub socket_timeout: Option<u32>,
}

/// Where and how voxbridge sends a call's events (event_url).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventWebhook {
    /// An absolute http:// or https:// URL.
    #[schema(example = "https://app.example.com/event")]
    pub address: String,
    /// Default POST.
    #[serde(default)]
    pub http_method: Option<HttpMethod>,
    /// Milliseconds to establish the connection.
    #[serde(default)]
    #[schema(minimum = 300, maximum = 1000, default = 1000)]
    pub connect_timeout: Option<u32>,
    /// Milliseconds to wait for the response.
    #[serde(default)]
    #[schema(minimum = 1000, maximum = 10000, default = 10000)]
    pub socket_timeout: Option<u32>,
}

/// An ACL entry: an IPv4/IPv6 address or CIDR block (surrounding spaces are trimmed).
pub const ACL_ENTRY_PATTERN: &str = r"^\s*[0-9A-Fa-f:.]+(/[0-9]{1,3})?\s*$";

/// `acl` of a domain; a field attribute cannot give array items a pattern.
pub fn acl() -> Array {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(ACL_ENTRY_PATTERN)))
        .description(Some(
            "Allowed source addresses: IPv4/IPv6 addresses or CIDR blocks. May be empty when digest users \
             authenticate callers.",
        ))
        .examples([serde_json::json!(["192.0.2.0/24", "2001:db8::10"])])
        .build()
}

/// One SIP gateway of a trunk.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Gateway)]
pub struct GatewaySchema {
    /// Host name (labels of letters, digits and inner hyphens) or IP address of the gateway.
    /// The pattern's second branch admits anything an IPv4/IPv6 address is made of; the server
    /// parses addresses exactly.
    #[schema(
        example = "sbc1.carrier.example",
        min_length = 1,
        max_length = 253,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^[0-9A-Fa-f:.]+$"
    )]
    pub host: String,
    #[serde(default)]
    #[schema(default = 5060, minimum = 1, maximum = 65535)]
    pub port: u16,
    #[serde(default)]
    pub transport: Transport,
    /// Lower is tried first (as DNS SRV).
    #[serde(default)]
    #[schema(default = 0, minimum = 0, maximum = 65535)]
    pub priority: u16,
    /// Share among gateways of the same priority.
    #[serde(default)]
    #[schema(default = 1, minimum = 0, maximum = 65535)]
    pub weight: u16,
}

/// `prefixes` of a trunk: E.164 dialling prefixes, 1 to 15 digits, optionally after `+`
/// (dropped). A field attribute cannot give array items a pattern, hence `schema_with`.
pub fn prefixes() -> Array {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^\+?[0-9]{1,15}$")))
        .description(Some("E.164 prefixes served (longest match wins); empty = every number."))
        .examples([serde_json::json!(["1", "44"])])
        .build()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Property names of a component schema.
    fn properties<T: ToSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let mut names: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    fn full_voice() -> Value {
        let hook =
            |a: &str| json!({"address": a, "http_method": "POST", "connect_timeout": 500, "socket_timeout": 3000});
        json!({"voice": {
            "webhooks": {"answer_url": hook("https://a/x"), "event_url": hook("https://a/e"), "fallback_answer_url": hook("https://a/f")},
            "signed_callbacks": false, "conversations_ttl": 10, "leg_persistence_time": 3, "region": "eu",
            "dialect": "twiml"
        }})
    }

    #[test]
    fn capabilities_match_the_domain_type() {
        let doc = full_voice();
        // Both shapes accept the same complete document (unknown fields are refused below
        // the top level, so a field added to one and not the other fails here)…
        let domain: domains::application::Capabilities = serde_json::from_value(doc.clone()).unwrap();
        let _: CapabilitiesSchema = serde_json::from_value(doc.clone()).unwrap();
        // …and the domain type writes back every field the schema has.
        assert_eq!(serde_json::to_value(&domain).unwrap(), doc);
        assert_eq!(properties::<VoiceCapabilitySchema>(), properties::<domains::application::VoiceCapability>());
        assert_eq!(properties::<VoiceWebhooksSchema>(), properties::<domains::application::VoiceWebhooks>());
        assert_eq!(properties::<AnswerWebhook>(), properties::<domains::application::Webhook>());
        assert_eq!(properties::<EventWebhook>(), properties::<domains::application::Webhook>());
    }

    #[test]
    fn gateway_matches_the_domain_type() {
        let doc = json!({"host": "a.example", "port": 5070, "transport": "tls", "priority": 2, "weight": 7});
        let domain: domains::trunk::Gateway = serde_json::from_value(doc.clone()).unwrap();
        let _: GatewaySchema = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&domain).unwrap(), doc);
        assert_eq!(properties::<GatewaySchema>(), properties::<domains::trunk::Gateway>());
    }
}
