//! Reads the TwiML the worker answers with, as Twilio does: the verbs and attributes the product
//! uses (`Say`, `Hangup`, `Reject`, `Pause`, `Dial` with `Number` or `Client`).

/// A `<Dial>` as Twilio would execute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub caller_id: Option<String>,
    pub timeout_seconds: u32,
    pub answer_on_bridge: bool,
    pub action: Option<String>,
    pub target: Target,
    pub status_callback: Option<String>,
    pub status_callback_events: Vec<String>,
}

/// What a `<Dial>` rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Number(String),
    /// `<Client>identity</Client>`, or `<Client><Identity>…</Identity><Parameter name value/>…`
    /// with custom parameters for the browser.
    Client {
        identity: String,
        parameters: Vec<(String, String)>,
    },
}

/// One executable verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(String),
    Pause(u32),
    Hangup,
    Reject,
    Dial(Dial),
}

/// Parses a TwiML document; malformed XML or a document without `<Response>` is an error
/// (Twilio's 12100 "Document parse failure").
pub fn parse(document: &str) -> Result<Vec<Verb>, String> {
    let doc = roxmltree::Document::parse(document)
        .map_err(|e| format!("12100 document parse failure: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("Response") {
        return Err("12100 the root element is not <Response>".into());
    }
    let mut verbs = Vec::new();
    for node in root.children().filter(roxmltree::Node::is_element) {
        let verb = match node.tag_name().name() {
            "Say" => Verb::Say(node.text().unwrap_or_default().to_owned()),
            "Pause" => Verb::Pause(
                node.attribute("length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1),
            ),
            "Hangup" => Verb::Hangup,
            "Reject" => Verb::Reject,
            "Dial" => {
                let target_node = node
                    .children()
                    .find(|c| c.is_element())
                    .ok_or("12100 <Dial> without a target")?;
                let text = target_node.text().unwrap_or_default().trim().to_owned();
                let target = match target_node.tag_name().name() {
                    "Number" => Target::Number(text),
                    "Client" => client_target(target_node, text),
                    other => return Err(format!("12100 unsupported <Dial> target <{other}>")),
                };
                Verb::Dial(Dial {
                    caller_id: node.attribute("callerId").map(str::to_owned),
                    timeout_seconds: node
                        .attribute("timeout")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(30),
                    answer_on_bridge: node.attribute("answerOnBridge") == Some("true"),
                    action: node.attribute("action").map(str::to_owned),
                    target,
                    status_callback: target_node.attribute("statusCallback").map(str::to_owned),
                    status_callback_events: target_node
                        .attribute("statusCallbackEvent")
                        .map(|e| e.split_whitespace().map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            }
            other => return Err(format!("12100 unsupported verb <{other}>")),
        };
        verbs.push(verb);
    }
    Ok(verbs)
}

/// A `<Client>`: its text is the identity, unless it has an `<Identity>` element (which
/// Twilio requires once there are `<Parameter>`s).
fn client_target(node: roxmltree::Node, text: String) -> Target {
    let elements = || node.children().filter(roxmltree::Node::is_element);
    let identity = elements()
        .find(|c| c.has_tag_name("Identity"))
        .map_or(text, |c| c.text().unwrap_or_default().trim().to_owned());
    let parameters = elements()
        .filter(|c| c.has_tag_name("Parameter"))
        .filter_map(|c| {
            Some((
                c.attribute("name")?.to_owned(),
                c.attribute("value")?.to_owned(),
            ))
        })
        .collect();
    Target::Client {
        identity,
        parameters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workers_dial() {
        let twiml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+447700900001" answerOnBridge="true" timeout="30" action="http://w/dial-complete?appointment=a#rc=3&amp;rp=all" method="POST"><Number statusCallbackEvent="initiated ringing answered completed" statusCallback="http://w/call-status?appointment=a" statusCallbackMethod="POST">+447700900123</Number></Dial></Response>"#;
        let verbs = parse(twiml).unwrap();
        let Verb::Dial(dial) = &verbs[0] else {
            panic!("{verbs:?}")
        };
        assert_eq!(dial.caller_id.as_deref(), Some("+447700900001"));
        assert_eq!(dial.target, Target::Number("+447700900123".into()));
        assert_eq!(
            dial.action.as_deref(),
            Some("http://w/dial-complete?appointment=a#rc=3&rp=all")
        );
        assert_eq!(
            dial.status_callback_events,
            vec!["initiated", "ringing", "answered", "completed"]
        );
        assert!(dial.answer_on_bridge);
    }

    #[test]
    fn reads_refusals_and_rejects_bad_documents() {
        assert_eq!(
            parse("<Response><Say>No.</Say><Hangup/></Response>").unwrap(),
            vec![Verb::Say("No.".into()), Verb::Hangup]
        );
        assert!(parse("<Response><Say>").is_err());
        let ring = r#"<Response><Dial timeout="20"><Client statusCallback="http://w/s"><Identity>clinician-ada</Identity><Parameter name="AppointmentId" value="appt-mobile"/></Client></Dial></Response>"#;
        let Ok(verbs) = parse(ring) else {
            panic!("{ring}")
        };
        let Verb::Dial(dial) = &verbs[0] else {
            panic!("{verbs:?}")
        };
        assert_eq!(
            dial.target,
            Target::Client {
                identity: "clinician-ada".into(),
                parameters: vec![("AppointmentId".into(), "appt-mobile".into())],
            }
        );
        assert_eq!(
            parse("<Response><Dial><Client>clinician-bob</Client></Dial></Response>")
                .ok()
                .and_then(|v| match &v[0] {
                    Verb::Dial(d) => Some(d.target.clone()),
                    _ => None,
                }),
            Some(Target::Client {
                identity: "clinician-bob".into(),
                parameters: Vec::new()
            })
        );
        assert!(parse("<Nope/>").is_err());
        assert!(parse("<Response><Play>x</Play></Response>").is_err());
    }
}
