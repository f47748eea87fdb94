//! Fuzz target: the Twilio Voice signaling codec (client and server frames). Properties: decoding
//! any text never panics; a decoded frame re-encodes to text that decodes to the same message;
//! any message built from the input survives `decode(encode(message)) == message`. JSON values
//! inside messages are `shared::json` values, whose numbers are kept as text, so any number
//! survives exactly; optional values are never JSON `null` (which is how an absent one is
//! written).
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use shared::json::Json;
use shared::signaling::{
    ClientMessage, Frame, Invite, Listen, ServerMessage, SignalingError, TokenInfo, TwilioParams,
};

fn json_value(u: &mut Unstructured<'_>, depth: u32) -> Result<Json> {
    let kinds = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => Json::from(u.arbitrary::<i64>()?),
        3 => Json::Number(format!(
            "{}.{}e{}",
            u.arbitrary::<i32>()?,
            u.arbitrary::<u32>()?,
            u.arbitrary::<i16>()?
        )),
        4 => Json::String(u.arbitrary()?),
        5 => {
            let len = u.int_in_range(0..=3)?;
            Json::Array(
                (0..len)
                    .map(|_| json_value(u, depth - 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let len = u.int_in_range(0..=3)?;
            let mut members = Vec::new();
            for _ in 0..len {
                members.push((u.arbitrary()?, json_value(u, depth - 1)?));
            }
            Json::Object(members)
        }
    })
}

/// `None`, or a value that is not `null`.
fn optional_value(u: &mut Unstructured<'_>) -> Result<Option<Json>> {
    Ok(match json_value(u, 2)? {
        Json::Null => None,
        value => Some(value),
    })
}

fn error(u: &mut Unstructured<'_>) -> Result<SignalingError> {
    Ok(SignalingError {
        code: u.arbitrary()?,
        message: u.arbitrary()?,
    })
}

fn client_message(u: &mut Unstructured<'_>) -> Result<ClientMessage> {
    Ok(match u.int_in_range(0..=8)? {
        0 => ClientMessage::Listen(Listen {
            token: u.arbitrary()?,
            browserinfo: optional_value(u)?,
            reconnect_timeout: u.arbitrary()?,
        }),
        1 => ClientMessage::Register {
            media: json_value(u, 2)?,
        },
        2 => ClientMessage::Invite(Invite {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
            twilio: TwilioParams {
                params: u.arbitrary()?,
            },
            reconnect: u.arbitrary()?,
        }),
        3 => ClientMessage::Reinvite {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
        },
        4 => ClientMessage::Answer {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
        },
        5 => ClientMessage::Hangup {
            callsid: u.arbitrary()?,
            message: u.arbitrary()?,
        },
        6 => ClientMessage::Reject {
            callsid: u.arbitrary()?,
        },
        7 => ClientMessage::Dtmf {
            callsid: u.arbitrary()?,
            dtmf: u.arbitrary()?,
        },
        _ => ClientMessage::Message {
            callsid: u.arbitrary()?,
            content: json_value(u, 2)?,
            contenttype: u.arbitrary()?,
            messagetype: u.arbitrary()?,
            voiceeventsid: u.arbitrary()?,
        },
    })
}

fn server_message(u: &mut Unstructured<'_>) -> Result<ServerMessage> {
    Ok(match u.int_in_range(0..=10)? {
        0 => ServerMessage::Connected {
            token: if u.arbitrary()? {
                Some(TokenInfo {
                    identity: u.arbitrary()?,
                    ttl: u.arbitrary()?,
                })
            } else {
                None
            },
            region: u.arbitrary()?,
            edge: u.arbitrary()?,
        },
        1 => ServerMessage::Ready,
        2 => ServerMessage::Offline,
        3 => ServerMessage::Close,
        4 => ServerMessage::Error {
            error: error(u)?,
            callsid: u.arbitrary()?,
        },
        5 => ServerMessage::Ringing {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
        },
        6 => ServerMessage::Answer {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
            reconnect: u.arbitrary()?,
        },
        7 => ServerMessage::Hangup {
            callsid: u.arbitrary()?,
            error: if u.arbitrary()? {
                Some(error(u)?)
            } else {
                None
            },
        },
        8 => ServerMessage::Cancel {
            callsid: u.arbitrary()?,
        },
        9 => ServerMessage::Invite {
            callsid: u.arbitrary()?,
            sdp: u.arbitrary()?,
            parameters: optional_value(u)?,
            reconnect: u.arbitrary()?,
        },
        _ => ServerMessage::Ack {
            callsid: u.arbitrary()?,
            acktype: u.arbitrary()?,
            voiceeventsid: u.arbitrary()?,
        },
    })
}

fn check_decoded_text(text: &str) {
    if let Ok(Frame::Message(message)) = ClientMessage::decode(text) {
        let encoded = message.encode();
        assert_eq!(
            ClientMessage::decode(&encoded),
            Ok(Frame::Message(message)),
            "{encoded}"
        );
    }
    if let Ok(Frame::Message(message)) = ServerMessage::decode(text) {
        let encoded = message.encode();
        assert_eq!(
            ServerMessage::decode(&encoded),
            Ok(Frame::Message(message)),
            "{encoded}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_decoded_text(text);
    }
    let mut u = Unstructured::new(data);
    if let Ok(message) = client_message(&mut u) {
        let encoded = message.encode();
        assert_eq!(
            ClientMessage::decode(&encoded),
            Ok(Frame::Message(message)),
            "{encoded}"
        );
    }
    if let Ok(message) = server_message(&mut u) {
        let encoded = message.encode();
        assert_eq!(
            ServerMessage::decode(&encoded),
            Ok(Frame::Message(message)),
            "{encoded}"
        );
    }
});
