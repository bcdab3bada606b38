//! A call-control document as an application answers it: NCCO JSON, or a TwiML/cXML XML
//! document. Which one is told by `Content-Type` and, when that says neither, by the content
//! (XML starts with `<`), so an answer_url may serve either and one executor runs both.

use serde_json::Value;

use crate::ncco::Ncco;
use crate::problem::InvalidParameter;

#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Ncco(Value),
    Twiml(String),
}

impl Document {
    /// The document in a response body; `Err` says why it is neither.
    pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<Document, String> {
        let media = content_type.and_then(|c| c.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
        let xml = match media.as_deref() {
            Some(m) if m.ends_with("/xml") || m.ends_with("+xml") => true,
            Some(m) if m.ends_with("/json") || m.ends_with("+json") => false,
            _ => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<'),
        };
        if xml {
            let text = std::str::from_utf8(body).map_err(|e| format!("an XML document that is not UTF-8: {e}"))?;
            // A byte-order mark is allowed before the declaration.
            return Ok(Document::Twiml(text.trim_start_matches('\u{feff}').to_owned()));
        }
        serde_json::from_slice(body).map(Document::Ncco).map_err(|e| format!("not JSON or XML: {e}"))
    }

    /// What the document's problems are called in reasons and events.
    pub fn dialect(&self) -> &'static str {
        match self {
            Document::Ncco(_) => "NCCO",
            Document::Twiml(_) => "TwiML",
        }
    }

    pub fn parse(&self) -> Result<Ncco, Vec<InvalidParameter>> {
        match self {
            Document::Ncco(v) => Ncco::parse(v),
            Document::Twiml(xml) => crate::twiml::parse(xml),
        }
    }

    /// Parses it, the problems in one line: `invalid TwiML: Response/Say[1]: …`.
    pub fn program(&self) -> Result<Ncco, String> {
        self.parse().map_err(|problems| format!("invalid {}: {}", self.dialect(), describe(&problems)))
    }

    /// Whether an action's webhook answered with a document to run (an NCCO array, or a
    /// `<Response>`); anything else (an empty body, `{}`, text) means "go on".
    pub fn is_program(&self) -> bool {
        match self {
            Document::Ncco(v) => v.is_array(),
            Document::Twiml(xml) => !xml.trim().is_empty(),
        }
    }
}

/// Problems as one line: `name: reason; name: reason` (a problem of the whole document has
/// no name).
pub fn describe(problems: &[InvalidParameter]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| if p.name.is_empty() { p.reason.clone() } else { format!("{}: {}", p.name, p.reason) })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn told_apart_by_content_type_then_content() {
        let json = br#"[{"action":"talk","text":"hi"}]"#;
        let xml = b"<?xml version=\"1.0\"?><Response><Say>hi</Say></Response>";
        assert!(matches!(Document::from_body(Some("application/json"), json), Ok(Document::Ncco(_))));
        assert!(matches!(Document::from_body(Some("text/xml; charset=utf-8"), xml), Ok(Document::Twiml(_))));
        assert!(matches!(Document::from_body(Some("application/xml"), xml), Ok(Document::Twiml(_))));
        assert!(matches!(Document::from_body(Some("text/plain"), xml), Ok(Document::Twiml(_))));
        assert!(matches!(Document::from_body(None, b"  \n[]"), Ok(Document::Ncco(_))));
        assert!(Document::from_body(Some("text/html"), b"hello").unwrap_err().contains("not JSON or XML"));
        let both = [Document::from_body(None, json).unwrap(), Document::from_body(None, xml).unwrap()];
        for d in both {
            let program = d.program().unwrap();
            assert_eq!(program.0.len(), 1, "{} gives one talk", d.dialect());
        }
        let bad = Document::from_body(None, b"<Response><Dance/></Response>").unwrap();
        assert_eq!(bad.program().unwrap_err(), "invalid TwiML: Response/Dance[1]: unknown verb <Dance>");
    }
}
