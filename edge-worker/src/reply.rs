//! A plain response value (status, headers, body) that handlers return and tests inspect;
//! converted to a `worker::Response` once, at the edge of the worker.

use serde::Serialize;

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON reply. Serialising our own response types cannot fail; should it ever, the body
    /// is an error document rather than a panic.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        let body = serde_json::to_string(value).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal","message":"response could not be encoded"}}"#.to_owned()
        });
        Self {
            status,
            headers: vec![("content-type", "application/json; charset=utf-8".to_owned())],
            body,
        }
    }

    /// A TwiML document for Twilio.
    pub fn twiml(document: String) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "text/xml; charset=utf-8".to_owned())],
            body: document,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of a header, for tests and for the conversion.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
