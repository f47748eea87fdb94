//! Fuzz target: the TwiML writer. Any verbs with any strings render to a document that a real
//! XML parser (roxmltree) accepts, with one element per verb, and every text and attribute value
//! coming back exactly as given minus the characters XML 1.0 forbids.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared::twiml::{Dial, DialTarget, Response, Say, StatusCallbacks, Verb};

const EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// A verb as the fuzzer builds it (the writer's own types carry `&'static str` events).
#[derive(Arbitrary, Debug)]
enum FuzzVerb {
    Say {
        text: String,
        language: Option<String>,
        voice: Option<String>,
    },
    Dial {
        caller_id: Option<String>,
        answer_on_bridge: bool,
        timeout: Option<u32>,
        action: Option<String>,
        to_client: bool,
        target: String,
        callback_url: Option<String>,
        events: Vec<u8>,
    },
    Pause(u32),
    Hangup,
    Reject(bool),
}

impl FuzzVerb {
    fn into_verb(self) -> Verb {
        match self {
            FuzzVerb::Say {
                text,
                language,
                voice,
            } => Verb::Say(Say {
                text,
                language,
                voice,
            }),
            FuzzVerb::Dial {
                caller_id,
                answer_on_bridge,
                timeout,
                action,
                to_client,
                target,
                callback_url,
                events,
            } => {
                let callbacks = StatusCallbacks {
                    url: callback_url,
                    events: events
                        .iter()
                        .map(|e| EVENTS[usize::from(*e) % EVENTS.len()])
                        .collect(),
                };
                let target = if to_client {
                    // Without parameters: the identity is the element's text, checked below.
                    DialTarget::Client {
                        identity: target,
                        callbacks,
                        parameters: Vec::new(),
                    }
                } else {
                    DialTarget::Number {
                        number: target,
                        callbacks,
                    }
                };
                Verb::Dial(Dial {
                    caller_id,
                    answer_on_bridge,
                    timeout,
                    action,
                    target,
                })
            }
            FuzzVerb::Pause(seconds) => Verb::Pause { seconds },
            FuzzVerb::Hangup => Verb::Hangup,
            FuzzVerb::Reject(busy) => Verb::Reject { busy },
        }
    }
}

/// The characters XML 1.0 allows; the writer drops the others.
fn xml_clean(text: &str) -> String {
    text.chars()
        .filter(|c| {
            matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
        })
        .collect()
}

fn attributes(node: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
    node.attributes()
        .map(|a| (a.name().to_owned(), a.value().to_owned()))
        .collect()
}

fn expect_attrs(list: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    list.iter()
        .filter_map(|(name, value)| value.map(|v| ((*name).to_owned(), xml_clean(v))))
        .collect()
}

fn callback_attrs(callbacks: &StatusCallbacks) -> Vec<(String, String)> {
    let events = callbacks.events.join(" ");
    expect_attrs(&[
        (
            "statusCallbackEvent",
            (!callbacks.events.is_empty()).then_some(events.as_str()),
        ),
        ("statusCallback", callbacks.url.as_deref()),
        (
            "statusCallbackMethod",
            callbacks.url.as_ref().map(|_| "POST"),
        ),
    ])
}

fn check_verb(verb: &Verb, node: roxmltree::Node<'_, '_>) {
    match verb {
        Verb::Say(say) => {
            assert_eq!(node.tag_name().name(), "Say");
            assert_eq!(
                attributes(node),
                expect_attrs(&[
                    ("voice", say.voice.as_deref()),
                    ("language", say.language.as_deref())
                ])
            );
            assert_eq!(node.text().unwrap_or(""), xml_clean(&say.text));
        }
        Verb::Pause { seconds } => {
            assert_eq!(node.tag_name().name(), "Pause");
            assert_eq!(node.attribute("length"), Some(seconds.to_string().as_str()));
        }
        Verb::Hangup => assert_eq!(node.tag_name().name(), "Hangup"),
        Verb::Reject { busy } => {
            assert_eq!(node.tag_name().name(), "Reject");
            assert_eq!(
                node.attribute("reason"),
                Some(if *busy { "busy" } else { "rejected" })
            );
        }
        Verb::Dial(dial) => {
            assert_eq!(node.tag_name().name(), "Dial");
            let timeout = dial.timeout.map(|t| t.to_string());
            assert_eq!(
                attributes(node),
                expect_attrs(&[
                    ("callerId", dial.caller_id.as_deref()),
                    ("answerOnBridge", dial.answer_on_bridge.then_some("true")),
                    ("timeout", timeout.as_deref()),
                    ("action", dial.action.as_deref()),
                    ("method", dial.action.as_ref().map(|_| "POST")),
                ])
            );
            let children: Vec<_> = node.children().collect();
            assert_eq!(children.len(), 1, "Dial has exactly one child");
            let child = children[0];
            let (tag, text, callbacks) = match &dial.target {
                DialTarget::Number { number, callbacks } => ("Number", number, callbacks),
                DialTarget::Client {
                    identity,
                    callbacks,
                    ..
                } => ("Client", identity, callbacks),
            };
            assert_eq!(child.tag_name().name(), tag);
            assert_eq!(attributes(child), callback_attrs(callbacks));
            assert_eq!(child.text().unwrap_or(""), xml_clean(text));
        }
    }
}

fuzz_target!(|verbs: Vec<FuzzVerb>| {
    let response = verbs.into_iter().fold(Response::new(), |response, verb| {
        response.with(verb.into_verb())
    });
    let xml = response.render();
    let document = match roxmltree::Document::parse(&xml) {
        Ok(document) => document,
        Err(error) => panic!("not well-formed ({error}): {xml}"),
    };
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "Response");
    let children: Vec<_> = root.children().collect();
    assert_eq!(children.len(), response.verbs.len(), "{xml}");
    for (verb, node) in response.verbs.iter().zip(children) {
        assert!(node.is_element(), "{xml}");
        check_verb(verb, node);
    }
});
