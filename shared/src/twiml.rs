//! A small typed TwiML writer: the verbs the worker answers Twilio with, escaped correctly.
//!
//! Output is always well-formed XML: text and attribute values are escaped, and characters XML
//! 1.0 forbids are dropped. Whitespace a parser would normalise (CR in text; tab, LF and CR in
//! attribute values) is written as character references, so every value parses back exactly.

/// One TwiML verb inside `<Response>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Dial(Dial),
    Pause { seconds: u32 },
    Hangup,
    Reject { busy: bool },
}

/// `<Say>`: spoken text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub text: String,
    /// e.g. `en-GB`.
    pub language: Option<String>,
    pub voice: Option<String>,
}

impl Say {
    /// British English, Twilio's default voice.
    pub fn en_gb(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            language: Some("en-GB".into()),
            voice: None,
        }
    }
}

/// `<Dial>` with one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub caller_id: Option<String>,
    pub answer_on_bridge: bool,
    /// Seconds to ring before giving up.
    pub timeout: Option<u32>,
    /// Called when the dial ends (the Dial action callback).
    pub action: Option<String>,
    pub target: DialTarget,
}

/// What `<Dial>` rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// `<Number>`: a phone number in E.164.
    Number {
        number: String,
        callbacks: StatusCallbacks,
    },
    /// `<Client>`: a browser identity, and custom parameters its SDK receives with the call
    /// (`<Parameter name value/>`, delivered in the invite's `Params` as a query string).
    Client {
        identity: String,
        callbacks: StatusCallbacks,
        parameters: Vec<(String, String)>,
    },
}

/// Status callbacks of a dialled leg (`statusCallback*` attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusCallbacks {
    pub url: Option<String>,
    /// e.g. `["initiated", "ringing", "answered", "completed"]`.
    pub events: Vec<&'static str>,
}

/// A whole `<Response>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, verb: Verb) -> Self {
        self.verbs.push(verb);
        self
    }

    /// Renders the document.
    pub fn render(&self) -> String {
        let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
        for verb in &self.verbs {
            render_verb(&mut out, verb);
        }
        out.push_str("</Response>");
        out
    }
}

/// Whether a character may appear in an XML 1.0 document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Escapes text for element content (CR as a reference: XML turns a literal one into LF).
pub fn escape(text: &str) -> String {
    escape_as(text, false)
}

/// Escapes text for a double-quoted attribute value: also tab and LF, which XML's attribute
/// value normalisation would otherwise turn into spaces.
pub fn escape_attribute(value: &str) -> String {
    escape_as(value, true)
}

fn escape_as(text: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| is_xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            other => out.push(other),
        }
    }
    out
}

fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    out.push_str(&escape_attribute(value));
    out.push('"');
}

fn callbacks_attrs(out: &mut String, callbacks: &StatusCallbacks) {
    if !callbacks.events.is_empty() {
        attr(out, "statusCallbackEvent", &callbacks.events.join(" "));
    }
    if let Some(url) = &callbacks.url {
        attr(out, "statusCallback", url);
        attr(out, "statusCallbackMethod", "POST");
    }
}

fn render_verb(out: &mut String, verb: &Verb) {
    match verb {
        Verb::Say(say) => {
            out.push_str("<Say");
            if let Some(voice) = &say.voice {
                attr(out, "voice", voice);
            }
            if let Some(language) = &say.language {
                attr(out, "language", language);
            }
            out.push('>');
            out.push_str(&escape(&say.text));
            out.push_str("</Say>");
        }
        Verb::Pause { seconds } => {
            out.push_str("<Pause");
            attr(out, "length", &seconds.to_string());
            out.push_str("/>");
        }
        Verb::Hangup => out.push_str("<Hangup/>"),
        Verb::Reject { busy } => {
            out.push_str("<Reject");
            attr(out, "reason", if *busy { "busy" } else { "rejected" });
            out.push_str("/>");
        }
        Verb::Dial(dial) => {
            out.push_str("<Dial");
            if let Some(caller_id) = &dial.caller_id {
                attr(out, "callerId", caller_id);
            }
            if dial.answer_on_bridge {
                attr(out, "answerOnBridge", "true");
            }
            if let Some(timeout) = dial.timeout {
                attr(out, "timeout", &timeout.to_string());
            }
            if let Some(action) = &dial.action {
                attr(out, "action", action);
                attr(out, "method", "POST");
            }
            out.push('>');
            match &dial.target {
                DialTarget::Number { number, callbacks } => {
                    out.push_str("<Number");
                    callbacks_attrs(out, callbacks);
                    out.push('>');
                    out.push_str(&escape(number));
                    out.push_str("</Number>");
                }
                DialTarget::Client {
                    identity,
                    callbacks,
                    parameters,
                } => {
                    out.push_str("<Client");
                    callbacks_attrs(out, callbacks);
                    out.push('>');
                    if parameters.is_empty() {
                        out.push_str(&escape(identity));
                    } else {
                        // With parameters, Twilio wants the identity in its own element.
                        out.push_str("<Identity>");
                        out.push_str(&escape(identity));
                        out.push_str("</Identity>");
                        for (name, value) in parameters {
                            out.push_str("<Parameter");
                            attr(out, "name", name);
                            attr(out, "value", value);
                            out.push_str("/>");
                        }
                    }
                    out.push_str("</Client>");
                }
            }
            out.push_str("</Dial>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dials_a_number_with_callbacks() {
        let twiml = Response::new()
            .with(Verb::Dial(Dial {
                caller_id: Some("+447700900001".into()),
                answer_on_bridge: true,
                timeout: Some(30),
                action: Some("https://w.example/api/v1/twilio/webhooks/dial-complete?appointment=a-1".into()),
                target: DialTarget::Number {
                    number: "+447700900123".into(),
                    callbacks: StatusCallbacks {
                        url: Some("https://w.example/api/v1/twilio/webhooks/call-status?appointment=a-1&x=2".into()),
                        events: vec!["initiated", "ringing", "answered", "completed"],
                    },
                },
            }))
            .render();
        assert_eq!(
            twiml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                r#"<Dial callerId="+447700900001" answerOnBridge="true" timeout="30" action="https://w.example/api/v1/twilio/webhooks/dial-complete?appointment=a-1" method="POST">"#,
                r#"<Number statusCallbackEvent="initiated ringing answered completed" statusCallback="https://w.example/api/v1/twilio/webhooks/call-status?appointment=a-1&amp;x=2" statusCallbackMethod="POST">+447700900123</Number>"#,
                r#"</Dial></Response>"#
            )
        );
    }

    #[test]
    fn says_and_hangs_up_with_escaping() {
        let twiml = Response::new()
            .with(Verb::Say(Say::en_gb("Can't call <now> & \"later\"\u{0}")))
            .with(Verb::Hangup)
            .render();
        assert_eq!(
            twiml,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-GB">Can&apos;t call &lt;now&gt; &amp; &quot;later&quot;</Say><Hangup/></Response>"#
        );
    }

    #[test]
    fn other_verbs() {
        let twiml = Response::new()
            .with(Verb::Pause { seconds: 1 })
            .with(Verb::Reject { busy: true })
            .render();
        assert!(
            twiml.ends_with(r#"<Response><Pause length="1"/><Reject reason="busy"/></Response>"#)
        );
        let client = Response::new()
            .with(Verb::Dial(Dial {
                caller_id: None,
                answer_on_bridge: false,
                timeout: Some(20),
                action: None,
                target: DialTarget::Client {
                    identity: "clinician-ada".into(),
                    callbacks: StatusCallbacks::default(),
                    parameters: Vec::new(),
                },
            }))
            .render();
        assert!(client.contains(r#"<Dial timeout="20"><Client>clinician-ada</Client></Dial>"#));
        let with_parameters = Response::new()
            .with(Verb::Dial(Dial {
                caller_id: None,
                answer_on_bridge: false,
                timeout: None,
                action: None,
                target: DialTarget::Client {
                    identity: "clinician-ada".into(),
                    callbacks: StatusCallbacks::default(),
                    parameters: vec![("AppointmentId".into(), "appt-<1>&\"".into())],
                },
            }))
            .render();
        assert!(
            with_parameters.contains(
                r#"<Dial><Client><Identity>clinician-ada</Identity><Parameter name="AppointmentId" value="appt-&lt;1&gt;&amp;&quot;"/></Client></Dial>"#
            ),
            "{with_parameters}"
        );
    }

    /// Found by fuzz/fuzz_targets/twiml_writer.rs (corpus file `attribute-line-breaks`): a line
    /// break in an attribute came back from the parser as a space, and CR in text as LF.
    #[test]
    fn whitespace_survives_a_parser_in_text_and_attributes() {
        let value = "a\tb\nc\r\nd\re";
        let xml = Response::new()
            .with(Verb::Say(Say {
                text: value.into(),
                language: None,
                voice: Some(value.into()),
            }))
            .render();
        assert!(
            xml.contains(
                "<Say voice=\"a&#9;b&#10;c&#13;&#10;d&#13;e\">a\tb\nc&#13;\nd&#13;e</Say>"
            ),
            "{xml}"
        );
        let document = roxmltree::Document::parse(&xml).unwrap();
        let say = document
            .descendants()
            .find(|n| n.has_tag_name("Say"))
            .unwrap();
        assert_eq!(say.attribute("voice"), Some(value));
        assert_eq!(say.text(), Some(value));
    }

    /// Well-formed by a real XML parser, with the spoken text and number surviving the round trip.
    fn well_formed(xml: &str) -> bool {
        roxmltree::Document::parse(xml).is_ok()
    }

    proptest! {
        #[test]
        fn any_text_renders_well_formed(text in any::<String>(), url in any::<String>()) {
            let text_for_check = text.clone();
            let xml = Response::new()
                .with(Verb::Say(Say::en_gb(text.clone())))
                .with(Verb::Dial(Dial {
                    caller_id: Some(text.clone()),
                    answer_on_bridge: true,
                    timeout: Some(30),
                    action: Some(url.clone()),
                    target: DialTarget::Number { number: text, callbacks: StatusCallbacks { url: Some(url), events: vec!["ringing"] } },
                }))
                .render();
            prop_assert!(well_formed(&xml), "{}", xml);
            let document = roxmltree::Document::parse(&xml).unwrap();
            let say = document.descendants().find(|n| n.has_tag_name("Say")).unwrap();
            let expected: String = text_for_check.chars().filter(|c| is_xml_char(*c)).collect();
            prop_assert_eq!(say.text().unwrap_or(""), expected.as_str());
            let dial = document.descendants().find(|n| n.has_tag_name("Dial")).unwrap();
            prop_assert_eq!(dial.attribute("callerId"), Some(expected.as_str()));
        }
    }
}
