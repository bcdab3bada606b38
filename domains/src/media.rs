//! The media-control protocol between the control plane and a media process: JSON text
//! messages over one WebSocket per media node. Commands carry an `id` that the reply echoes;
//! events are pushed. Both sides compile against these types, so they cannot drift apart.

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; `hello` refuses a mismatch.
pub const PROTOCOL_VERSION: u32 = 1;

/// A command sent to the media process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// First message on a connection: protocol negotiation.
    Hello { protocol: u32 },
    /// Liveness check.
    Ping,
}

/// What the media process sends back: a reply to a command, or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    Reply {
        id: u64,
        #[serde(flatten)]
        outcome: Outcome,
    },
    Event {
        #[serde(flatten)]
        event: Event,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        #[serde(flatten)]
        result: Reply,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Welcome { protocol: u32, version: String },
    Pong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not a command this process understands.
    BadRequest,
    /// `hello` with another protocol version.
    ProtocolMismatch,
    /// Ports, memory or another resource ran out.
    Exhausted,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Periodic load report, used to choose a media node.
    Stats { endpoints: u64 },
}

/// The media process's answer to one request, decided without I/O.
pub fn answer(request: &Request, version: &str) -> Message {
    let outcome = match &request.command {
        Command::Hello { protocol } if *protocol == PROTOCOL_VERSION => {
            Outcome::Ok { result: Reply::Welcome { protocol: PROTOCOL_VERSION, version: version.to_owned() } }
        }
        Command::Hello { protocol } => Outcome::Error {
            code: ErrorCode::ProtocolMismatch,
            message: format!("this media process speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
        },
        Command::Ping => Outcome::Ok { result: Reply::Pong },
    };
    Message::Reply { id: request.id, outcome }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let req: Request = serde_json::from_str(r#"{"id":7,"type":"hello","protocol":1}"#).unwrap();
        assert_eq!(req.command, Command::Hello { protocol: 1 });
        let msg = serde_json::to_value(answer(&req, "0.1.0")).unwrap();
        assert_eq!(
            msg,
            serde_json::json!({"kind":"reply","id":7,"status":"ok","reply":"welcome","protocol":1,"version":"0.1.0"})
        );
        let bad = answer(&Request { id: 8, command: Command::Hello { protocol: 99 } }, "x");
        assert!(matches!(
            bad,
            Message::Reply { id: 8, outcome: Outcome::Error { code: ErrorCode::ProtocolMismatch, .. } }
        ));
    }
}
