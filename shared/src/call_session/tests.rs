//! Tests of the call session: each scenario drives the machine with the inputs a browser would
//! see and checks the phase and the effects, without sockets or clocks.

use super::*;
use crate::signaling::{ServerMessage, SignalingError, TokenInfo};
use proptest::prelude::*;
use serde_json::{json, Value};

const TOKEN_TTL: u32 = 3_600;

fn frame(message: ServerMessage) -> Input {
    Input::Received(message.encode())
}

fn sent(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(text) if text != HEARTBEAT => serde_json::from_str(text).ok(),
            _ => None,
        })
        .collect()
}

fn sent_types(effects: &[Effect]) -> Vec<String> {
    sent(effects)
        .iter()
        .map(|f| f["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A session with a token and a ready link, at t = 1 s.
fn ready() -> Session {
    let mut s = Session::new(Json::from(json!({"p": "browser"})));
    assert_eq!(s.handle(Input::Start, 0), vec![Effect::FetchToken]);
    assert_eq!(s.blocker(), Some(Blocker::Starting));
    let effects = s.handle(
        Input::TokenIssued {
            token: "tok-1".into(),
            ttl_seconds: TOKEN_TTL,
        },
        100,
    );
    assert_eq!(effects, vec![Effect::OpenSocket]);
    assert_eq!(s.blocker(), Some(Blocker::SignalingConnecting));
    let effects = s.handle(Input::SocketOpened, 200);
    assert_eq!(sent_types(&effects), vec!["listen"]);
    let listen = &sent(&effects)[0];
    assert_eq!(listen["payload"]["token"], "tok-1");
    assert_eq!(
        listen["payload"]["reconnectTimeout"],
        SIGNALING_RECONNECT_SECONDS
    );
    assert_eq!(listen["payload"]["browserinfo"]["p"], "browser");
    let effects = s.handle(
        frame(ServerMessage::Connected {
            token: Some(TokenInfo {
                identity: "clinician-ada".into(),
                ttl: 3600,
            }),
            region: None,
            edge: None,
        }),
        300,
    );
    assert_eq!(sent_types(&effects), vec!["register"]);
    assert_eq!(
        sent(&effects)[0]["payload"]["media"],
        json!({"audio": true})
    );
    s.handle(frame(ServerMessage::Ready), 310);
    assert_eq!(s.link, Link::Ready);
    assert_eq!(s.identity.as_deref(), Some("clinician-ada"));
    assert_eq!(s.blocker(), None);
    s
}

/// Call now pressed on a ready session at t = 1 s; the microphone is not open yet.
/// A call for appt-mobile whose offer has been sent (no CallSid yet).
fn connecting() -> Session {
    let mut s = preparing();
    s.handle(Input::MicrophoneReady, 1_100);
    s.handle(
        Input::OfferReady {
            sdp: "v=0 offer".into(),
        },
        1_200,
    );
    assert_eq!(s.phase, Phase::Connecting);
    s
}

fn preparing() -> Session {
    let mut s = ready();
    s.handle(
        Input::Call {
            appointment: "appt-mobile".into(),
            local_sid: "TJSlocal".into(),
        },
        1_000,
    );
    assert_eq!(s.phase, Phase::Preparing);
    s
}

/// A ready session with an outgoing call through to `invite` sent, at t = 2 s.
fn dialling() -> Session {
    let mut s = ready();
    let effects = s.handle(
        Input::Call {
            appointment: "appt-mobile".into(),
            local_sid: "TJSlocal".into(),
        },
        1_000,
    );
    assert_eq!(effects, vec![Effect::AcquireMicrophone]);
    assert_eq!(s.phase, Phase::Preparing);
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_100),
        vec![Effect::CreateOffer { ice_restart: false }]
    );
    let effects = s.handle(
        Input::OfferReady {
            sdp: "v=0 offer".into(),
        },
        1_500,
    );
    let invite = &sent(&effects)[0];
    assert_eq!(invite["type"], "invite");
    assert_eq!(invite["payload"]["callsid"], "TJSlocal");
    assert_eq!(invite["payload"]["sdp"], "v=0 offer");
    assert_eq!(
        invite["payload"]["twilio"]["params"],
        "AppointmentId=appt-mobile&ClientCallId=TJSlocal"
    );
    assert_eq!(s.phase, Phase::Connecting);
    s
}

/// A call answered by the patient at t = 5 s.
fn connected() -> Session {
    let mut s = dialling();
    let effects = s.handle(
        frame(ServerMessage::Ringing {
            callsid: "CAparent".into(),
            sdp: None,
        }),
        2_000,
    );
    assert_eq!(
        effects,
        vec![Effect::WatchLedger {
            appointment: "appt-mobile".into()
        }]
    );
    assert_eq!(s.phase, Phase::Ringing);
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAparent".into(),
            sdp: Some("v=0 answer".into()),
            reconnect: Some("rc-1".into()),
        }),
        5_000,
    );
    assert_eq!(
        effects,
        vec![Effect::ApplyAnswer {
            sdp: "v=0 answer".into()
        }]
    );
    assert_eq!(s.phase, Phase::Connected { since_ms: 5_000 });
    s
}

fn ledger(status: &str, terminal: bool, refused: Option<&str>) -> Input {
    Input::Ledger(LedgerRecord {
        parent_call_sid: "CAparent".into(),
        client_call_id: None,
        appointment: None,
        status: status.into(),
        terminal,
        refused_code: refused.map(str::to_owned),
        direction: "outbound-browser".into(),
        duration_seconds: 0,
    })
}

fn hangup(error: Option<u32>) -> Input {
    frame(ServerMessage::Hangup {
        callsid: Some("CAparent".into()),
        error: error.map(|code| SignalingError {
            code,
            message: "x".into(),
        }),
    })
}

fn outcome(s: &Session) -> Option<&Outcome> {
    match &s.phase {
        Phase::Ended { outcome, .. } => Some(outcome),
        _ => None,
    }
}

#[test]
fn an_answered_call_counts_time_and_ends_completed_when_the_clinician_hangs_up() {
    let mut s = connected();
    s.handle(Input::Received(HEARTBEAT.into()), 65_300);
    assert_eq!(s.duration_seconds(), 60);
    let effects = s.handle(Input::Hangup, 65_400);
    assert_eq!(sent_types(&effects), vec!["hangup"]);
    assert_eq!(sent(&effects)[0]["payload"]["callsid"], "CAparent");
    assert!(effects.contains(&Effect::CloseMedia));
    assert!(effects.contains(&Effect::CallEnded));
    assert_eq!(
        s.phase,
        Phase::Ended {
            outcome: Outcome::Completed,
            duration_seconds: 60
        }
    );
    // The button works again: another call may be placed.
    assert_eq!(s.blocker(), None);
}

#[test]
fn every_remote_ending_ends_the_call_in_the_panel() {
    // (ledger status before the hangup frame, signaling error, expected outcome)
    let table: &[(Option<&str>, Option<u32>, Outcome)] = &[
        (Some("busy"), None, Outcome::Busy),
        (Some("no-answer"), None, Outcome::NoAnswer),
        (Some("failed"), None, Outcome::Failed { code: None }),
        (Some("completed"), None, Outcome::Completed),
        (None, Some(31005), Outcome::Failed { code: Some(31005) }),
        (None, None, Outcome::Failed { code: None }),
    ];
    for (status, error, expected) in table {
        let mut s = dialling();
        s.handle(
            frame(ServerMessage::Ringing {
                callsid: "CAparent".into(),
                sdp: None,
            }),
            2_000,
        );
        if let Some(status) = status {
            s.handle(ledger(status, true, None), 2_500);
            assert!(
                matches!(s.phase, Phase::Ended { .. }),
                "the ledger alone ends a {status} call"
            );
        }
        s.handle(hangup(*error), 3_000);
        assert_eq!(outcome(&s), Some(expected), "{status:?} {error:?}");
    }
}

#[test]
fn a_ledger_record_arriving_after_the_hangup_refines_the_outcome() {
    let table: &[(&str, Option<&str>, Outcome)] = &[
        ("busy", None, Outcome::Busy),
        ("no-answer", None, Outcome::NoAnswer),
        (
            "refused",
            Some("no_line_free"),
            Outcome::Refused("no_line_free".into()),
        ),
    ];
    for (status, refused, expected) in table {
        let mut s = dialling();
        // Twilio's hangup can name the parent call before any ringing frame did.
        s.handle(hangup(None), 3_000);
        assert_eq!(outcome(&s), Some(&Outcome::Failed { code: None }));
        s.handle(ledger(status, true, *refused), 3_100);
        assert_eq!(outcome(&s), Some(expected));
        assert!(expected.offers_manual_dial());
    }
    let refused = Outcome::Refused("number_blocked".into());
    assert!(refused.describe().contains("premium-rate"));
}

#[test]
fn a_callee_hanging_up_after_answering_is_completed() {
    let mut s = connected();
    s.handle(hangup(None), 9_000);
    assert_eq!(
        s.phase,
        Phase::Ended {
            outcome: Outcome::Completed,
            duration_seconds: 4
        }
    );
    // A late "completed" record changes nothing.
    s.handle(ledger("completed", true, None), 9_100);
    assert_eq!(outcome(&s), Some(&Outcome::Completed));
}

#[test]
fn frames_for_other_calls_are_ignored() {
    let mut s = connected();
    s.handle(
        frame(ServerMessage::Hangup {
            callsid: Some("CAother".into()),
            error: None,
        }),
        6_000,
    );
    assert!(matches!(s.phase, Phase::Connected { .. }));
    s.handle(
        Input::Ledger(LedgerRecord {
            parent_call_sid: "CAother".into(),
            client_call_id: None,
            appointment: None,
            status: "busy".into(),
            terminal: true,
            refused_code: None,
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        }),
        6_000,
    );
    assert!(matches!(s.phase, Phase::Connected { .. }));
}

#[test]
fn mute_toggles_the_track_and_digits_go_by_rtp_or_signaling() {
    let mut s = connected();
    assert_eq!(
        s.handle(Input::ToggleMute, 6_000),
        vec![Effect::SetMicrophoneEnabled(false)]
    );
    assert!(s.call.as_ref().is_some_and(|c| c.muted));
    assert_eq!(
        s.handle(Input::ToggleMute, 6_100),
        vec![Effect::SetMicrophoneEnabled(true)]
    );
    // Without RTP DTMF the digits travel as a signaling frame, as the official SDK falls back.
    let effects = s.handle(Input::Digits("12#".into()), 6_200);
    assert_eq!(sent(&effects)[0]["type"], "dtmf");
    assert_eq!(sent(&effects)[0]["payload"]["dtmf"], "12#");
    s.handle(Input::MediaConnected { rtp_dtmf: true }, 6_300);
    assert_eq!(
        s.handle(Input::Digits("9".into()), 6_400),
        vec![Effect::InsertDtmf("9".into())]
    );
    assert_eq!(s.call.as_ref().map(|c| c.digits.as_str()), Some("12#9"));
    assert!(s.handle(Input::Digits("12a".into()), 6_500).is_empty());
    assert!(s.handle(Input::Digits(String::new()), 6_500).is_empty());
}

#[test]
fn a_mute_pressed_while_the_microphone_opens_applies_before_any_audio_leaves() {
    // Outgoing: muted during the browser's prompt.
    let mut s = preparing();
    assert!(s
        .handle(Input::ToggleMute, 1_050)
        .contains(&Effect::SetMicrophoneEnabled(false)));
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_100),
        vec![
            Effect::SetMicrophoneEnabled(false),
            Effect::CreateOffer { ice_restart: false }
        ]
    );
    // Muted and unmuted again before it opened: nothing to apply.
    let mut s = preparing();
    s.handle(Input::ToggleMute, 1_050);
    s.handle(Input::ToggleMute, 1_060);
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_100),
        vec![Effect::CreateOffer { ice_restart: false }]
    );
}

#[test]
fn a_microphone_that_opens_after_its_call_was_cancelled_is_closed() {
    let mut s = preparing();
    s.handle(Input::Hangup, 1_050);
    assert_eq!(outcome(&s), Some(&Outcome::Canceled));
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_100),
        vec![Effect::CloseMedia]
    );
    assert_eq!(
        outcome(&s),
        Some(&Outcome::Canceled),
        "the ended call stays ended"
    );
    // With no call at all, the same.
    let mut s = ready();
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_100),
        vec![Effect::CloseMedia]
    );
}

/// Ticks once a second from `from` to `to` with the server answering every heartbeat, and
/// returns every effect.
fn tick_through(s: &mut Session, from: u64, to: u64) -> Vec<Effect> {
    let mut all = Vec::new();
    let mut now = from;
    while now < to {
        now = (now + 1_000).min(to);
        let effects = s.handle(Input::Tick, now);
        if effects.contains(&Effect::Send(HEARTBEAT.into())) {
            s.handle(Input::Received(HEARTBEAT.into()), now);
        }
        all.extend(effects);
    }
    all
}

#[test]
fn a_link_lost_during_the_microphone_prompt_delays_the_invite_until_it_is_back() {
    let mut s = preparing();
    s.handle(Input::SocketClosed, 1_200);
    s.handle(Input::MicrophoneReady, 1_300);
    let effects = s.handle(
        Input::OfferReady {
            sdp: "v=0 offer".into(),
        },
        1_400,
    );
    assert!(sent(&effects).is_empty(), "no invite into a closed link");
    assert_eq!(s.phase, Phase::Preparing);
    assert_eq!(s.handle(Input::Tick, 1_800), vec![Effect::OpenSocket]);
    s.handle(Input::SocketOpened, 1_900);
    let effects = s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        2_000,
    );
    assert_eq!(sent_types(&effects), vec!["register", "invite"]);
    let invite = &sent(&effects)[1];
    assert_eq!(invite["payload"]["callsid"], "TJSlocal");
    assert_eq!(invite["payload"]["sdp"], "v=0 offer");
    assert_eq!(s.phase, Phase::Connecting);
}

#[test]
fn an_invite_twilio_never_answers_ends_failed_with_the_manual_dial_offered() {
    // Offer ready (and invite sent) at 1.5 s; Twilio says nothing more.
    let mut s = dialling();
    let effects = tick_through(&mut s, 1_500, 1_500 + CONNECT_TIMEOUT_MS - 1);
    assert!(!effects.contains(&Effect::CallEnded), "{effects:?}");
    assert_eq!(s.phase, Phase::Connecting);
    let effects = tick_through(
        &mut s,
        1_500 + CONNECT_TIMEOUT_MS - 1,
        1_500 + CONNECT_TIMEOUT_MS,
    );
    assert_eq!(sent_types(&effects), vec!["hangup"]);
    assert_eq!(sent(&effects)[0]["payload"]["callsid"], "TJSlocal");
    assert!(effects.contains(&Effect::CloseMedia) && effects.contains(&Effect::CallEnded));
    let ended = outcome(&s).expect("ended");
    assert_eq!(
        ended,
        &Outcome::Failed {
            code: Some(codes::TRANSPORT_ERROR)
        }
    );
    assert!(ended.offers_manual_dial());
    assert!(ended
        .describe()
        .contains("connection to the phone service was lost"));

    // When the worker's ledger has named the call meanwhile, the worker is asked to end it too.
    let mut s = dialling();
    s.handle(ledger("queued", false, None), 2_000);
    let effects = tick_through(&mut s, 2_000, 1_500 + CONNECT_TIMEOUT_MS);
    assert!(effects.contains(&Effect::EndOnServer {
        call_sid: "CAparent".into()
    }));
    assert_eq!(
        sent(&effects)
            .last()
            .map(|f| f["payload"]["callsid"].clone()),
        Some(json!("CAparent"))
    );

    // A call that is ringing or connected is never timed out.
    let mut s = connected();
    let effects = tick_through(&mut s, 5_000, 5_000 + 2 * CONNECT_TIMEOUT_MS);
    assert!(!effects.contains(&Effect::CallEnded));
    assert!(matches!(s.phase, Phase::Connected { .. }));
    // Nor is a call still waiting for the clinician to answer the microphone prompt.
    let mut s = preparing();
    tick_through(&mut s, 1_000, 1_000 + 2 * CONNECT_TIMEOUT_MS);
    assert_eq!(s.phase, Phase::Preparing);
}

#[test]
fn hanging_up_before_the_answer_cancels() {
    let mut s = dialling();
    let effects = s.handle(Input::Hangup, 1_800);
    assert_eq!(sent(&effects)[0]["payload"]["callsid"], "TJSlocal");
    assert_eq!(outcome(&s), Some(&Outcome::Canceled));
}

#[test]
fn calls_need_token_link_and_microphone() {
    let mut s = Session::new(Json::from(json!({})));
    assert!(s
        .handle(
            Input::Call {
                appointment: "a".into(),
                local_sid: "TJS1".into()
            },
            0
        )
        .is_empty());
    assert_eq!(s.phase, Phase::Idle);

    let mut s = ready();
    s.handle(Input::MicrophoneObserved(Microphone::Denied), 400);
    assert_eq!(s.blocker(), Some(Blocker::MicrophoneDenied));
    assert!(s.blocker().is_some_and(|b| b.needs_manual_dial()));
    // Call now still asks the browser again: the clinician may have allowed it since.
    assert!(s.can_place());
    let call = || Input::Call {
        appointment: "a".into(),
        local_sid: "TJS1".into(),
    };
    assert_eq!(s.handle(call(), 450), vec![Effect::AcquireMicrophone]);
    s.handle(Input::MicrophoneReady, 460);
    assert_eq!(s.microphone, Microphone::Granted);
    assert_eq!(s.blocker(), Some(Blocker::InCall));
    // But not without a token or a link, whatever the microphone.
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    s.handle(Input::MicrophoneObserved(Microphone::Absent), 10);
    assert_eq!(s.blocker(), Some(Blocker::MicrophoneAbsent));
    assert!(!s.can_place());
    assert!(s.handle(call(), 20).is_empty());

    let mut s = ready();
    let effects = s.handle(
        Input::Call {
            appointment: "a".into(),
            local_sid: "TJS1".into(),
        },
        500,
    );
    assert_eq!(effects, vec![Effect::AcquireMicrophone]);
    let effects = s.handle(Input::MicrophoneFailed(Microphone::Denied), 600);
    assert_eq!(effects, vec![Effect::CloseMedia, Effect::CallEnded]);
    assert_eq!(outcome(&s), Some(&Outcome::NotPlaced(Microphone::Denied)));
    assert_eq!(s.blocker(), Some(Blocker::MicrophoneDenied));

    // A microphone held by another application ends this attempt and blocks nothing.
    let mut s = ready();
    s.handle(
        Input::Call {
            appointment: "a".into(),
            local_sid: "TJS1".into(),
        },
        500,
    );
    let effects = s.handle(Input::MicrophoneFailed(Microphone::InUse), 600);
    assert_eq!(effects, vec![Effect::CloseMedia, Effect::CallEnded]);
    let ended = outcome(&s).expect("ended");
    assert!(ended.offers_manual_dial());
    assert!(ended
        .describe()
        .contains("Another application is using the microphone"));
    assert_eq!(s.blocker(), None, "the next Call now tries again");
}

#[test]
fn a_refused_token_is_asked_for_again_later_and_an_outage_sooner() {
    let refused = |s: &mut Session, now: u64| {
        s.handle(
            Input::TokenRefused {
                code: "permission_missing".into(),
                message: "no calling permission".into(),
                retryable: false,
            },
            now,
        )
    };
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    refused(&mut s, 10);
    let blocked = Some(Blocker::TokenRefused {
        message: "no calling permission".into(),
    });
    assert_eq!(s.blocker(), blocked);
    // Asked again after 15 s, then 60 s, the refusal staying on screen meanwhile; one request
    // at a time.
    assert!(s.handle(Input::Tick, 15_009).is_empty());
    assert_eq!(s.handle(Input::Tick, 15_010), vec![Effect::FetchToken]);
    assert_eq!(s.blocker(), blocked);
    assert!(s.handle(Input::Tick, 16_000).is_empty());
    refused(&mut s, 16_000);
    assert!(s.handle(Input::Tick, 75_999).is_empty());
    assert_eq!(s.handle(Input::Tick, 76_000), vec![Effect::FetchToken]);
    // Granted meanwhile: no reload needed.
    s.handle(
        Input::TokenIssued {
            token: "t".into(),
            ttl_seconds: 60,
        },
        76_100,
    );
    assert_eq!(s.link, Link::Connecting);
    assert_ne!(s.blocker(), blocked);
    // Refusals in a row settle at one request every 5 minutes.
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    let mut now = 0;
    for wait in REFUSED_TOKEN_RETRY_MS.into_iter().chain([300_000, 300_000]) {
        refused(&mut s, now);
        assert!(s.handle(Input::Tick, now + wait - 1).is_empty(), "{wait}");
        assert_eq!(s.handle(Input::Tick, now + wait), vec![Effect::FetchToken]);
        now += wait;
    }

    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    s.handle(
        Input::TokenRefused {
            code: "unreachable".into(),
            message: "x".into(),
            retryable: true,
        },
        10,
    );
    assert_eq!(s.blocker(), Some(Blocker::ServiceUnreachable));
    assert!(s.handle(Input::Tick, 500).is_empty());
    assert_eq!(s.handle(Input::Tick, 3_000), vec![Effect::FetchToken]);
    s.handle(
        Input::TokenIssued {
            token: "t".into(),
            ttl_seconds: 60,
        },
        3_100,
    );
    assert_eq!(s.link, Link::Connecting);
}

/// Ticks a session whose link stays alive (a frame just received), and says whether the tick
/// asked the worker for a token.
fn tick_fetches(s: &mut Session, now: u64) -> bool {
    s.handle(Input::Received(HEARTBEAT.into()), now);
    s.handle(Input::Tick, now).contains(&Effect::FetchToken)
}

#[test]
fn a_refresh_refused_or_failed_keeps_the_held_token_in_use_until_it_runs_out() {
    // The lunch break: the host's sign-in is stale when the refresh is due, so the worker
    // answers 401 for a while; the token in hand still has a quarter of its life.
    let mut s = ready();
    let refresh_due = refresh_at(100, u64::from(TOKEN_TTL) * 1_000);
    let expires = 100 + u64::from(TOKEN_TTL) * 1_000;
    assert!(tick_fetches(&mut s, refresh_due));
    let expired_sign_in = Input::TokenRefused {
        code: "token_expired".into(),
        message: "your sign-in has expired".into(),
        retryable: false,
    };
    s.handle(expired_sign_in.clone(), refresh_due + 50);
    assert_eq!(s.blocker(), None, "calls go on with the held token");
    // Tried again once the request's deadline has passed, not every tick.
    let retry = refresh_due + REQUEST_DEADLINE_MS + RETRY_BACKSTOP_MARGIN_MS;
    assert!(!tick_fetches(&mut s, retry - 1));
    assert!(tick_fetches(&mut s, retry));
    let unreachable = Input::TokenRefused {
        code: "unreachable".into(),
        message: "x".into(),
        retryable: true,
    };
    s.handle(unreachable, retry + 50);
    assert_eq!(s.blocker(), None);
    // The host has refreshed its sign-in: the new token is presented on the open link.
    let next = retry + REQUEST_DEADLINE_MS + RETRY_BACKSTOP_MARGIN_MS;
    assert!(tick_fetches(&mut s, next));
    let effects = s.handle(
        Input::TokenIssued {
            token: "tok-2".into(),
            ttl_seconds: TOKEN_TTL,
        },
        next + 50,
    );
    assert_eq!(sent_types(&effects), vec!["listen"]);
    assert_eq!(sent(&effects)[0]["payload"]["token"], "tok-2");
    assert!(next + 50 < expires);

    // Twilio refuses the held token while its successor is on the way: no second request, and
    // the successor is presented when it comes.
    let mut s = ready();
    assert!(tick_fetches(&mut s, refresh_due));
    let effects = s.handle(
        token_error(codes::SIGNALING_TOKEN_EXPIRED),
        refresh_due + 20,
    );
    assert!(!effects.contains(&Effect::FetchToken), "{effects:?}");
    assert!(!tick_fetches(&mut s, refresh_due + 1_000));
    let effects = s.handle(
        Input::TokenIssued {
            token: "tok-3".into(),
            ttl_seconds: TOKEN_TTL,
        },
        refresh_due + 1_050,
    );
    assert!(matches!(s.token, TokenState::Valid { .. }));
    let listens = sent(&effects);
    assert!(
        listens.iter().any(|f| f["payload"]["token"] == "tok-3"),
        "{effects:?}"
    );

    // Refused until the held token is about to run out: then the refusal shows, and is asked
    // about again later.
    let mut s = ready();
    let mut now = refresh_due;
    while s.blocker().is_none() {
        assert!(now < expires, "still no blocker at the token's expiry");
        if tick_fetches(&mut s, now) {
            s.handle(expired_sign_in.clone(), now + 10);
        }
        now += 1_000;
    }
    assert!(now + REQUEST_DEADLINE_MS + RETRY_BACKSTOP_MARGIN_MS >= expires);
    assert!(matches!(s.blocker(), Some(Blocker::TokenRefused { .. })));
    assert!(tick_fetches(&mut s, now + REFUSED_TOKEN_RETRY_MS[0]));
}

#[test]
fn an_unreachable_service_gets_one_token_request_at_a_time() {
    let unreachable = || Input::TokenRefused {
        code: "service_unavailable".into(),
        message: "x".into(),
        retryable: true,
    };
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    s.handle(unreachable(), 10);
    // The worker hangs: one retry is sent, and none other while it is out (a tick a second).
    let mut fetches: Vec<u64> = Vec::new();
    for now in (1_000..=40_000).step_by(1_000) {
        if s.handle(Input::Tick, now).contains(&Effect::FetchToken) {
            fetches.push(now);
        }
        if fetches.first().map(|at| at + REQUEST_DEADLINE_MS) == Some(now) {
            // The retry's deadline: the browser aborted it, and says so.
            s.handle(unreachable(), now);
        }
    }
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(fetches[1] > fetches[0] + REQUEST_DEADLINE_MS, "{fetches:?}");
    // The fallback stayed offered throughout.
    assert_eq!(s.blocker(), Some(Blocker::ServiceUnreachable));
}

#[test]
fn a_failure_answered_after_a_token_was_issued_leaves_the_token() {
    let mut s = ready();
    let before = s.token.clone();
    assert!(matches!(before, TokenState::Valid { .. }));
    s.handle(
        Input::TokenRefused {
            code: "service_unavailable".into(),
            message: "x".into(),
            retryable: true,
        },
        2_000,
    );
    assert_eq!(s.token, before);
    assert_eq!(s.blocker(), None);
}

#[test]
fn tokens_are_refreshed_before_expiry_on_the_open_link_through_a_clinic_day() {
    let mut s = ready();
    let mut now = 310;
    let mut refreshes = 0;
    let mut listens = 0;
    // Nine hours, one tick a second; the server answers every heartbeat and listen.
    while now < 9 * 3_600_000 {
        now += 1_000;
        for effect in s.handle(Input::Tick, now) {
            match effect {
                Effect::FetchToken => {
                    refreshes += 1;
                    let effects = s.handle(
                        Input::TokenIssued {
                            token: format!("tok-{refreshes}"),
                            ttl_seconds: TOKEN_TTL,
                        },
                        now,
                    );
                    listens += sent_types(&effects)
                        .iter()
                        .filter(|t| *t == "listen")
                        .count();
                }
                Effect::Send(text) if text == HEARTBEAT => {
                    s.handle(Input::Received(HEARTBEAT.into()), now);
                }
                Effect::OpenSocket | Effect::CloseSocket => panic!("the link never drops"),
                _ => {}
            }
        }
        if let TokenState::Valid { expires_at_ms, .. } = s.token {
            assert!(expires_at_ms > now, "token expired at {now}");
        }
    }
    assert!(refreshes >= 11, "{refreshes}");
    assert_eq!(listens, refreshes);
    assert_eq!(s.link, Link::Ready);
}

#[test]
fn an_expired_token_mid_call_is_replaced_without_ending_the_call() {
    let mut s = connected();
    let effects = s.handle(
        frame(ServerMessage::Error {
            error: SignalingError {
                code: 20104,
                message: "Access Token expired".into(),
            },
            callsid: None,
        }),
        7_000,
    );
    assert_eq!(effects, vec![Effect::FetchToken]);
    let effects = s.handle(
        Input::TokenIssued {
            token: "tok-new".into(),
            ttl_seconds: TOKEN_TTL,
        },
        7_200,
    );
    assert_eq!(sent(&effects)[0]["payload"]["token"], "tok-new");
    assert!(matches!(s.phase, Phase::Connected { .. }));
}

/// Twilio's `error` frame refusing the token with `code`.
fn token_error(code: u32) -> Input {
    frame(ServerMessage::Error {
        error: SignalingError {
            code,
            message: "Token rejected".into(),
        },
        callsid: None,
    })
}

/// Twilio refuses the token presented `refusals` times, 100 ms apart after `from_ms`; each fetch
/// that starts is answered with a new token, presented with `listen`. Returns the time of the
/// last refusal and the fetches made.
fn refuse_tokens(s: &mut Session, from_ms: u64, refusals: u64) -> (u64, u32) {
    let mut now = from_ms;
    let mut fetches = 0;
    for _ in 0..refusals {
        now += 100;
        let effects = s.handle(token_error(codes::SIGNALING_TOKEN_INVALID), now);
        if effects.contains(&Effect::FetchToken) {
            fetches += 1;
            let listen = s.handle(
                Input::TokenIssued {
                    token: format!("tok-{now}"),
                    ttl_seconds: TOKEN_TTL,
                },
                now + 10,
            );
            assert_eq!(sent_types(&listen), vec!["listen"]);
        }
    }
    (now, fetches)
}

/// A token issued at `at_ms`, which Twilio accepts 100 ms later.
fn token_accepted(s: &mut Session, token: &str, at_ms: u64) {
    s.handle(
        Input::TokenIssued {
            token: token.into(),
            ttl_seconds: TOKEN_TTL,
        },
        at_ms,
    );
    s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        at_ms + 100,
    );
}

#[test]
fn the_gateways_own_token_codes_are_answered_with_a_new_token_as_the_platform_codes_are() {
    for code in [
        codes::TOKEN_INVALID,
        codes::TOKEN_EXPIRED,
        codes::SIGNALING_TOKEN_INVALID,
        codes::SIGNALING_TOKEN_EXPIRED,
    ] {
        let mut s = connected();
        assert_eq!(
            s.handle(token_error(code), 7_000),
            vec![Effect::FetchToken],
            "{code}"
        );
        assert!(matches!(s.phase, Phase::Connected { .. }), "{code}");
    }
    // Any other error without a call is not about the token.
    let mut s = ready();
    assert!(s.handle(token_error(31005), 7_000).is_empty());
}

#[test]
fn fresh_tokens_refused_again_and_again_stop_the_fetching_and_offer_manual_dial() {
    let mut s = ready();
    let (_, fetches) = refuse_tokens(&mut s, 5_000, 10);
    assert_eq!(fetches, FRESH_TOKENS_REJECTED_LIMIT);
    let Some(Blocker::TokenRefused { message }) = s.blocker() else {
        panic!("refused: {:?}", s.blocker());
    };
    assert!(
        message.contains("31204") && message.contains("administrator"),
        "{message}"
    );
    assert!(s.blocker().is_some_and(|b| b.needs_manual_dial()));
    assert!(matches!(
        &s.token,
        TokenState::Refused { code, .. } if code == TWILIO_REJECTED_TOKEN
    ));

    // A token Twilio accepted in between starts the count again: an expiry each hour of a
    // clinic day is always answered.
    let mut s = ready();
    let mut now = 5_000;
    for hour in 0..8 {
        now += 3_600_000;
        assert_eq!(
            s.handle(token_error(codes::SIGNALING_TOKEN_EXPIRED), now),
            vec![Effect::FetchToken],
            "hour {hour}"
        );
        token_accepted(&mut s, &format!("tok-{hour}"), now + 100);
    }
    assert_eq!(s.blocker(), None);
}

#[test]
fn a_token_refused_again_counts_once_and_never_doubles_the_fetch() {
    // The refused token is presented again (a reconnect while its replacement cannot be
    // fetched; a register after the refused listen): one refusal, one fetch at a time.
    let mut s = ready();
    assert_eq!(
        s.handle(token_error(codes::SIGNALING_TOKEN_EXPIRED), 5_000),
        vec![Effect::FetchToken]
    );
    s.handle(
        Input::TokenRefused {
            code: "unreachable".into(),
            message: "offline".into(),
            retryable: true,
        },
        5_100,
    );
    assert!(matches!(s.token, TokenState::Unreachable { .. }));
    for n in 0..10 {
        let effects = s.handle(token_error(codes::SIGNALING_TOKEN_INVALID), 6_000 + n * 100);
        assert!(effects.is_empty(), "{effects:?}");
    }
    assert!(
        matches!(s.token, TokenState::Unreachable { .. }),
        "{:?}",
        s.token
    );
    // No register renewal is sent for a token Twilio refused.
    let effects = s.handle(Input::Tick, 5_000 + REGISTER_INTERVAL_MS);
    assert!(!sent_types(&effects).contains(&"register".to_owned()));
    // The worker answers again: the new token is presented and accepted.
    token_accepted(&mut s, "tok-2", 40_000);
    assert_eq!(s.blocker(), None);
}

#[test]
fn after_giving_up_on_refused_tokens_the_session_tries_again_five_minutes_later() {
    let mut s = ready();
    let (now, _) = refuse_tokens(&mut s, 5_000, u64::from(FRESH_TOKENS_REJECTED_LIMIT) + 1);
    assert!(
        matches!(s.token, TokenState::Refused { .. }),
        "{:?}",
        s.token
    );
    // (The silent link is closed and retried meanwhile; the token is not asked for.)
    assert!(!s
        .handle(Input::Tick, now + TWILIO_REFUSAL_RETRY_MS - 1)
        .contains(&Effect::FetchToken));
    assert!(s
        .handle(Input::Tick, now + TWILIO_REFUSAL_RETRY_MS)
        .contains(&Effect::FetchToken));
    // The credentials were fixed: the next token is accepted and calls work again.
    token_accepted(&mut s, "tok-fixed", now + TWILIO_REFUSAL_RETRY_MS + 100);
    assert_eq!(s.blocker(), None);
}

#[test]
fn a_restarts_answer_is_applied_even_if_the_media_recovered_before_it_came() {
    let mut s = connected();
    assert_eq!(
        s.handle(Input::NetworkChanged, 8_000),
        vec![Effect::CreateOffer { ice_restart: true }]
    );
    let effects = s.handle(
        Input::OfferReady {
            sdp: "v=0 restart offer".into(),
        },
        8_100,
    );
    assert_eq!(sent_types(&effects), vec!["reinvite"]);
    s.handle(Input::MediaConnected { rtp_dtmf: true }, 8_150);
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAparent".into(),
            sdp: Some("v=0 restart answer".into()),
            reconnect: None,
        }),
        8_200,
    );
    assert_eq!(
        effects,
        vec![Effect::ApplyAnswer {
            sdp: "v=0 restart answer".into()
        }]
    );
    // Only once: a repeated answer is not applied again.
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAparent".into(),
            sdp: Some("v=0 restart answer".into()),
            reconnect: None,
        }),
        8_300,
    );
    assert!(effects.is_empty(), "{effects:?}");
}

#[test]
fn registration_for_call_backs_is_renewed_every_thirty_seconds_on_the_open_link() {
    let mut s = ready();
    let mut registers = Vec::new();
    let mut now = 300;
    while now <= 300 + 4 * REGISTER_INTERVAL_MS {
        now += 1_000;
        // Twilio's own heartbeats keep the link alive meanwhile.
        s.handle(Input::Received("\n".into()), now);
        let effects = s.handle(Input::Tick, now);
        if sent_types(&effects).contains(&"register".to_owned()) {
            registers.push(now);
        }
    }
    assert_eq!(
        registers,
        (1..=4)
            .map(|n| 300 + n * REGISTER_INTERVAL_MS)
            .collect::<Vec<_>>()
    );
    // Not while the link is down.
    s.handle(Input::SocketClosed, now);
    let effects = s.handle(Input::Tick, now + REGISTER_INTERVAL_MS);
    assert!(!sent_types(&effects).contains(&"register".to_owned()));
}

#[test]
fn an_answered_call_back_keeps_its_reconnect_token_and_survives_a_dropped_link_and_ice_restart() {
    let mut s = ready();
    s.handle(
        frame(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "v=0 remote offer".into(),
            reconnect: Some("rc-invite".into()),
            parameters: None,
        }),
        1_000,
    );
    s.handle(Input::Accept, 1_100);
    s.handle(Input::MicrophoneReady, 1_200);
    s.handle(
        Input::AnswerReady {
            sdp: "v=0 local answer".into(),
        },
        1_300,
    );
    // Twilio confirms the answer with a newer token; nothing is applied to the connection.
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAin".into(),
            sdp: None,
            reconnect: Some("rc-answer".into()),
        }),
        1_400,
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(s.phase, Phase::Connected { since_ms: 1_300 });

    // The link drops and comes back: the call is resumed with the newest token.
    s.handle(Input::SocketClosed, 10_000);
    s.handle(Input::Tick, 10_500);
    s.handle(Input::SocketOpened, 10_600);
    let effects = s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        10_700,
    );
    let frames = sent(&effects);
    assert_eq!(sent_types(&effects), vec!["register", "invite"]);
    assert_eq!(frames[1]["payload"]["callsid"], "CAin");
    assert_eq!(frames[1]["payload"]["reconnect"], "rc-answer");
    assert_eq!(frames[1]["payload"]["sdp"], "v=0 local answer");
    assert_eq!(s.phase, Phase::Connected { since_ms: 1_300 });

    // The media fails: an ICE restart's reinvite, and Twilio's answer to it is applied.
    ice_restart_completes(&mut s, Input::MediaFailed, "CAin", 20_000, |_| {});
    s.handle(Input::MediaConnected { rtp_dtmf: true }, 20_300);
    assert_eq!(s.phase, Phase::Connected { since_ms: 1_300 });
    // Another call's answer is none of this call's business.
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAother".into(),
            sdp: Some("v=0 other".into()),
            reconnect: Some("rc-other".into()),
        }),
        20_400,
    );
    assert!(effects.is_empty());
}

#[test]
fn a_dropped_link_reconnects_with_backoff_and_resumes_the_call() {
    let mut s = connected();
    s.handle(Input::SocketClosed, 10_000);
    assert_eq!(
        s.link,
        Link::Retrying {
            attempt: 0,
            at_ms: 10_500
        }
    );
    assert!(
        matches!(s.phase, Phase::Connected { .. }),
        "media carries on"
    );
    assert!(s.handle(Input::Tick, 10_400).is_empty());
    assert_eq!(s.handle(Input::Tick, 10_500), vec![Effect::OpenSocket]);
    // The attempt fails: the next wait is longer.
    s.handle(Input::SocketClosed, 10_600);
    assert_eq!(
        s.link,
        Link::Retrying {
            attempt: 1,
            at_ms: 11_600
        }
    );
    s.handle(Input::Tick, 11_600);
    let effects = s.handle(Input::SocketOpened, 11_700);
    assert_eq!(sent_types(&effects), vec!["listen"]);
    let effects = s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        11_800,
    );
    let frames = sent(&effects);
    assert_eq!(sent_types(&effects), vec!["register", "invite"]);
    assert_eq!(frames[1]["payload"]["reconnect"], "rc-1");
    assert_eq!(frames[1]["payload"]["callsid"], "CAparent");
    assert_eq!(frames[1]["payload"]["sdp"], "v=0 offer");
    // Twilio's answer to the reconnect does not re-apply the SDP or restart the timer.
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: "CAparent".into(),
            sdp: Some("v=0 answer".into()),
            reconnect: Some("rc-2".into()),
        }),
        11_900,
    );
    assert!(effects.is_empty());
    assert_eq!(s.phase, Phase::Connected { since_ms: 5_000 });
}

#[test]
fn heartbeats_are_sent_and_silence_drops_the_link() {
    let mut s = ready();
    assert_eq!(
        s.handle(Input::Tick, 5_400),
        vec![Effect::Send(HEARTBEAT.into())]
    );
    assert!(s.handle(Input::Tick, 6_000).is_empty());
    assert_eq!(s.handle(Input::Tick, 15_400), vec![Effect::CloseSocket]);
    assert!(matches!(s.link, Link::Retrying { .. }));
    // Three failed attempts: the panel offers manual dialing while retrying.
    s.handle(Input::Tick, 16_000);
    s.handle(Input::SocketClosed, 16_100);
    s.handle(Input::Tick, 17_200);
    s.handle(Input::SocketClosed, 17_300);
    assert_eq!(s.blocker(), Some(Blocker::SignalingUnreachable));
}

#[test]
fn manual_dialing_stays_offered_through_later_attempts_until_the_link_works() {
    let mut s = ready();
    let mut now = 20_000;
    // Three attempts fail (the socket closes each time).
    s.handle(Input::SocketClosed, now);
    for _ in 1..ATTEMPTS_BEFORE_UNREACHABLE {
        now += 5_000;
        assert_eq!(s.handle(Input::Tick, now), vec![Effect::OpenSocket]);
        s.handle(Input::SocketClosed, now + 100);
    }
    assert_eq!(s.blocker(), Some(Blocker::SignalingUnreachable));
    // The next attempt: opening, then open and waiting for `connected`. The panel keeps the
    // number on screen throughout (a flip back to "connecting" would hide it every 30 s).
    now += 5_000;
    assert_eq!(s.handle(Input::Tick, now), vec![Effect::OpenSocket]);
    assert_eq!(s.link, Link::Connecting);
    assert_eq!(s.blocker(), Some(Blocker::SignalingUnreachable));
    s.handle(Input::SocketOpened, now + 100);
    assert_eq!(s.link, Link::Authenticating);
    assert_eq!(s.blocker(), Some(Blocker::SignalingUnreachable));
    // Connected: browser calls are back.
    s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        now + 200,
    );
    assert_eq!(s.blocker(), None);
}

#[test]
fn a_socket_that_never_opens_counts_as_a_failed_attempt() {
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    s.handle(
        Input::TokenIssued {
            token: "tok".into(),
            ttl_seconds: 3_600,
        },
        10,
    );
    assert_eq!(s.link, Link::Connecting);
    // The browser neither opens nor closes it: the session gives up on it and retries.
    assert!(s
        .handle(Input::Tick, 10 + SOCKET_OPEN_TIMEOUT_MS - 1)
        .is_empty());
    assert_eq!(
        s.handle(Input::Tick, 10 + SOCKET_OPEN_TIMEOUT_MS),
        vec![Effect::CloseSocket]
    );
    assert!(matches!(s.link, Link::Retrying { attempt: 0, .. }));
    // The closed socket's own close event, if it still comes, changes nothing.
    let link = s.link;
    assert!(s
        .handle(Input::SocketClosed, 20 + SOCKET_OPEN_TIMEOUT_MS)
        .is_empty());
    assert_eq!(s.link, link);
}

/// An ICE restart of the connected call `callsid`, started by `cause` at `at_ms`: the new offer
/// goes out as a `reinvite` (`while_restarting` runs before it is ready), and Twilio's answer to
/// it is applied.
fn ice_restart_completes(
    s: &mut Session,
    cause: Input,
    callsid: &str,
    at_ms: u64,
    while_restarting: impl FnOnce(&mut Session),
) {
    assert_eq!(
        s.handle(cause, at_ms),
        vec![Effect::CreateOffer { ice_restart: true }]
    );
    while_restarting(s);
    let effects = s.handle(
        Input::OfferReady {
            sdp: "v=0 restart offer".into(),
        },
        at_ms + 100,
    );
    assert_eq!(sent_types(&effects), vec!["reinvite"]);
    let effects = s.handle(
        frame(ServerMessage::Answer {
            callsid: callsid.into(),
            sdp: Some("v=0 restart answer".into()),
            reconnect: None,
        }),
        at_ms + 200,
    );
    assert_eq!(
        effects,
        vec![Effect::ApplyAnswer {
            sdp: "v=0 restart answer".into()
        }]
    );
}

#[test]
fn ice_failure_restarts_with_a_reinvite_then_gives_up() {
    let mut s = connected();
    ice_restart_completes(&mut s, Input::NetworkChanged, "CAparent", 8_000, |s| {
        // A second failure while restarting does not start another restart.
        assert!(s.handle(Input::MediaFailed, 8_050).is_empty());
    });
    for i in 0..(MAX_ICE_RESTARTS - 1) {
        s.handle(Input::MediaFailed, 9_000 + u64::from(i) * 100);
        s.handle(
            Input::MediaConnected { rtp_dtmf: false },
            9_050 + u64::from(i) * 100,
        );
    }
    let effects = s.handle(Input::MediaFailed, 10_000);
    assert_eq!(sent_types(&effects), vec!["hangup"]);
    assert_eq!(
        outcome(&s),
        Some(&Outcome::Failed {
            code: Some(codes::ICE_FAILED)
        })
    );
}

#[test]
fn an_offer_or_answer_the_browser_cannot_make_ends_the_call_and_closes_the_microphone() {
    // Call now: the microphone opened, then createOffer/setLocalDescription failed.
    let mut s = preparing();
    s.handle(Input::MicrophoneReady, 1_100);
    let effects = s.handle(Input::MediaFailed, 1_150);
    assert_eq!(outcome(&s), Some(&Outcome::Failed { code: None }));
    assert!(effects.contains(&Effect::CloseMedia), "{effects:?}");
    assert!(
        sent_types(&effects).is_empty(),
        "no invite went, so nothing to hang up"
    );
    let later = s.handle(Input::Tick, 60_000);
    assert!(!later.contains(&Effect::CallEnded), "{later:?}");
    assert_eq!(outcome(&s), Some(&Outcome::Failed { code: None }));
    // A call-back accepted whose answer cannot be made: Twilio is told, so that the call goes on.
    let mut s = ready();
    s.handle(
        frame(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "v=0 remote offer".into(),
            reconnect: None,
            parameters: None,
        }),
        1_000,
    );
    s.handle(Input::Accept, 1_100);
    s.handle(Input::MicrophoneReady, 1_200);
    let effects = s.handle(Input::MediaFailed, 1_300);
    assert_eq!(sent_types(&effects), vec!["reject"]);
    assert_eq!(sent(&effects)[0]["payload"]["callsid"], "CAin");
    assert!(effects.contains(&Effect::CloseMedia), "{effects:?}");
    assert_eq!(outcome(&s), Some(&Outcome::Failed { code: None }));
    assert!(Outcome::Failed { code: None }.offers_manual_dial());
}

#[test]
fn an_incoming_call_back_can_be_accepted_or_declined_or_missed() {
    let invite = || {
        frame(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "v=0 remote offer".into(),
            reconnect: None,
            parameters: Some(Json::from(json!({
                "From": "+447700900123", "CallSid": "CAin",
                "Params": "AppointmentId=appt-mobile&Other=x%20y",
            }))),
        })
    };
    let mut s = ready();
    assert_eq!(s.handle(invite(), 1_000), vec![Effect::IncomingCall]);
    assert_eq!(s.phase, Phase::Incoming);
    assert_eq!(
        s.call.as_ref().and_then(|c| c.from.as_deref()),
        Some("+447700900123")
    );
    assert_eq!(
        s.call.as_ref().and_then(|c| c.appointment.as_deref()),
        Some("appt-mobile"),
        "the appointment the worker named in the call's custom parameters"
    );
    assert_eq!(
        s.handle(Input::Accept, 1_500),
        vec![Effect::AcquireMicrophone]
    );
    assert_eq!(
        s.handle(Input::MicrophoneReady, 1_600),
        vec![Effect::AnswerOffer {
            sdp: "v=0 remote offer".into()
        }]
    );
    let effects = s.handle(
        Input::AnswerReady {
            sdp: "v=0 local answer".into(),
        },
        1_700,
    );
    assert_eq!(sent(&effects)[0]["type"], "answer");
    assert_eq!(sent(&effects)[0]["payload"]["callsid"], "CAin");
    assert_eq!(s.phase, Phase::Connected { since_ms: 1_700 });
    s.handle(
        frame(ServerMessage::Hangup {
            callsid: Some("CAin".into()),
            error: None,
        }),
        31_700,
    );
    assert_eq!(
        s.phase,
        Phase::Ended {
            outcome: Outcome::Completed,
            duration_seconds: 30
        }
    );

    let mut s = ready();
    s.handle(invite(), 1_000);
    let effects = s.handle(Input::Decline, 1_100);
    assert_eq!(sent_types(&effects), vec!["reject"]);
    assert_eq!(outcome(&s), Some(&Outcome::Declined));

    let mut s = ready();
    s.handle(invite(), 1_000);
    s.handle(
        frame(ServerMessage::Cancel {
            callsid: "CAin".into(),
        }),
        1_100,
    );
    assert_eq!(outcome(&s), Some(&Outcome::Missed));

    // Accepted, and the caller hangs up while the microphone opens: missed, and no answer is
    // sent once it is ready (nobody is on the line).
    let mut s = ready();
    s.handle(invite(), 1_000);
    s.handle(Input::Accept, 1_100);
    s.handle(
        frame(ServerMessage::Cancel {
            callsid: "CAin".into(),
        }),
        1_200,
    );
    assert_eq!(outcome(&s), Some(&Outcome::Missed));
    let late = s.handle(Input::MicrophoneReady, 1_300);
    assert!(sent_types(&late).is_empty(), "{late:?}");
    assert!(
        !late.iter().any(|e| matches!(e, Effect::AnswerOffer { .. })),
        "{late:?}"
    );
    assert!(matches!(s.phase, Phase::Ended { .. }));

    // A call-back whose cancel never arrives (the link dropped while it rang) stops ringing
    // once Twilio has certainly moved on, and calling is possible again.
    let mut s = ready();
    s.handle(invite(), 1_000);
    s.handle(Input::Tick, 1_000 + INCOMING_RING_LIMIT_MS - 1);
    assert_eq!(s.phase, Phase::Incoming);
    s.handle(Input::Tick, 1_000 + INCOMING_RING_LIMIT_MS);
    assert_eq!(outcome(&s), Some(&Outcome::Missed));
    // Accepted in time, the limit no longer applies.
    let mut s = ready();
    s.handle(invite(), 1_000);
    s.handle(Input::Accept, 2_000);
    s.handle(Input::Tick, 1_000 + INCOMING_RING_LIMIT_MS);
    assert_eq!(s.phase, Phase::Answering);

    // Only a FHIR id is taken from the parameters, as it is.
    for (params, expected) in [
        ("AppointmentId=appt-mobile", Some("appt-mobile")),
        ("x=1&AppointmentId=a.b-C9&y=2", Some("a.b-C9")),
        ("AppointmentId=", None),
        ("AppointmentId=appt%20x", None),
        ("AppointmentIds=appt", None),
        ("XAppointmentId=appt", None),
    ] {
        let mut s = ready();
        s.handle(
            frame(ServerMessage::Invite {
                callsid: "CAin".into(),
                sdp: "o".into(),
                reconnect: None,
                parameters: Some(Json::from(json!({ "Params": params }))),
            }),
            1_000,
        );
        assert_eq!(
            s.call.as_ref().and_then(|c| c.appointment.as_deref()),
            expected,
            "{params}"
        );
    }

    // An invite without custom parameters belongs to no appointment.
    let mut s = ready();
    s.handle(
        frame(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "o".into(),
            reconnect: None,
            parameters: Some(Json::from(json!({"Params": "Other=1"}))),
        }),
        1_000,
    );
    assert_eq!(s.call.as_ref().and_then(|c| c.appointment.as_deref()), None);

    // Busy with a call: a second caller is rejected, the call carries on.
    let mut s = connected();
    let effects = s.handle(invite(), 6_000);
    assert_eq!(sent_types(&effects), vec!["reject"]);
    assert!(matches!(s.phase, Phase::Connected { .. }));
}

#[test]
fn a_live_call_seen_after_a_reload_is_shown_and_can_be_ended_on_the_server() {
    let mut s = ready();
    s.handle(ledger("in-progress", false, None), 1_000);
    assert_eq!(
        s.phase,
        Phase::Elsewhere {
            status: "in-progress".into()
        }
    );
    assert_eq!(
        s.blocker(),
        None,
        "the clinician may still place another call"
    );
    assert_eq!(
        s.handle(Input::Hangup, 1_100),
        vec![Effect::EndOnServer {
            call_sid: "CAparent".into()
        }]
    );
    let mut record = LedgerRecord::from_json(&Json::from(json!({
        "parentCallSid": "CAparent", "status": "completed", "terminal": true,
        "direction": "outbound-browser", "durationSeconds": 42,
    })))
    .expect("record");
    record.direction = "outbound-browser".into();
    let effects = s.handle(Input::Ledger(record), 1_200);
    assert_eq!(effects, vec![Effect::CallEnded]);
    assert_eq!(
        s.phase,
        Phase::Ended {
            outcome: Outcome::Completed,
            duration_seconds: 42
        }
    );
    // Finished calls seen on load leave the panel idle.
    let mut s = ready();
    s.handle(ledger("completed", true, None), 1_000);
    assert_eq!(s.phase, Phase::Idle);
}

#[test]
fn a_record_of_a_call_already_over_never_brings_it_back() {
    // The appointment's load carried the call as ringing, but its event stream said it was over
    // first: the older news is ignored, whether the page was idle or showing the call.
    let mut s = ready();
    s.handle(ledger("completed", true, None), 1_000);
    assert_eq!(s.handle(ledger("ringing", false, None), 1_100), vec![]);
    assert_eq!(s.phase, Phase::Idle);
    assert!(s.call.is_none());

    let mut s = ready();
    s.handle(ledger("ringing", false, None), 1_000);
    s.handle(ledger("completed", true, None), 2_000);
    assert!(matches!(s.phase, Phase::Ended { .. }));
    assert_eq!(s.handle(ledger("in-progress", false, None), 2_100), vec![]);
    assert!(matches!(s.phase, Phase::Ended { .. }));
    assert!(s.call.as_ref().is_some_and(|c| c.ledger_terminal));

    // Another call is not affected, and only the newest finished calls are remembered.
    let mut s = ready();
    for n in 0..=FINISHED_REMEMBERED {
        s.handle(record_of(None, &format!("CA{n}"), "completed", true), 1_000);
    }
    s.handle(record_of(None, "CAlive", "ringing", false), 1_100);
    assert!(matches!(s.phase, Phase::Elsewhere { .. }));
    assert_eq!(s.finished.len(), FINISHED_REMEMBERED);
    assert!(!s.finished.contains(&"CA0".to_owned()));
}

#[test]
fn a_live_call_whose_end_the_worker_could_not_learn_is_shown_as_unknown_not_as_completed() {
    let mut s = ready();
    s.handle(ledger("ringing", false, None), 1_000);
    assert!(matches!(s.phase, Phase::Elsewhere { .. }));
    let effects = s.handle(ledger("unknown", true, None), 2_000);
    assert_eq!(effects, vec![Effect::CallEnded]);
    let Phase::Ended { outcome, .. } = &s.phase else {
        panic!("ended: {:?}", s.phase);
    };
    assert_eq!(outcome, &Outcome::Unknown);
    assert_eq!(outcome.code(), "unknown");
    assert!(outcome.offers_manual_dial());
    assert!(
        !outcome.describe().contains("ended."),
        "{}",
        outcome.describe()
    );
    // Seen on load, such a record is over: nothing live is shown.
    let mut s = ready();
    s.handle(ledger("unknown", true, None), 1_000);
    assert_eq!(s.phase, Phase::Idle);
}

#[test]
fn opening_another_appointment_clears_what_the_last_one_left_and_keeps_a_live_call() {
    let opened = |appointment: &str| Input::AppointmentOpened {
        appointment: appointment.into(),
    };
    // An ended call's outcome belongs to its appointment.
    let mut s = dialling();
    s.handle(hangup(None), 3_000);
    s.handle(ledger("busy", true, None), 3_100);
    assert_eq!(outcome(&s), Some(&Outcome::Busy));
    assert!(s.handle(opened("appt-mobile"), 4_000).is_empty());
    assert_eq!(
        outcome(&s),
        Some(&Outcome::Busy),
        "reopening the same one keeps it"
    );
    assert!(s.handle(opened("appt-landline"), 4_100).is_empty());
    assert_eq!(s.phase, Phase::Idle);
    assert!(s.call.is_none());
    assert_eq!(s.blocker(), None, "the other patient can be called");

    // A call placed before a reload is shown for its own appointment only.
    let mut s = ready();
    s.handle(ledger("in-progress", false, None), 1_000);
    s.handle(opened("appt-landline"), 1_100);
    assert_eq!(s.phase, Phase::Idle);
    assert!(
        s.handle(Input::Hangup, 1_200).is_empty(),
        "nothing left to end"
    );

    // A call live in this page goes on, whichever appointment is shown.
    let mut s = connected();
    assert!(s.handle(opened("appt-landline"), 6_000).is_empty());
    assert!(matches!(s.phase, Phase::Connected { .. }));
    assert_eq!(
        s.call.as_ref().and_then(|c| c.appointment.as_deref()),
        Some("appt-mobile")
    );
}

#[test]
fn a_snapshot_ends_the_call_from_before_the_reload_but_never_reopens_history() {
    let snapshot = |status: &str, terminal: bool| match ledger(status, terminal, None) {
        Input::Ledger(record) => Input::LedgerSnapshot(record),
        _ => unreachable!("ledger() makes a ledger input"),
    };
    // The stream dropped while the call from before the reload ended: its snapshot ends it.
    let mut s = ready();
    s.handle(snapshot("in-progress", false), 1_000);
    assert!(matches!(s.phase, Phase::Elsewhere { .. }));
    assert_eq!(
        s.handle(snapshot("completed", true), 2_000),
        vec![Effect::CallEnded]
    );
    assert_eq!(outcome(&s), Some(&Outcome::Completed));

    // A call being placed never adopts the newest ended call of the snapshot (an older call).
    let mut s = connecting();
    assert!(s.handle(snapshot("busy", true), 1_300).is_empty());
    assert_eq!(s.phase, Phase::Connecting);
    assert_eq!(s.call.as_ref().and_then(|c| c.call_sid.clone()), None);
    // And an idle panel stays idle.
    let mut s = ready();
    s.handle(snapshot("completed", true), 1_000);
    assert_eq!(s.phase, Phase::Idle);
    // The call on screen, whose end came while the stream was down and whose hangup was lost:
    // the reopened stream's snapshot ends it.
    let mut s = connected();
    s.handle(snapshot("completed", true), 70_000);
    assert!(matches!(s.phase, Phase::Ended { .. }), "{:?}", s.phase);
    // Another call's end in the snapshot leaves the call on screen alone.
    let mut s = connected();
    let other = match record_of(Some("TJSother"), "CAother", "completed", true) {
        Input::Ledger(record) => Input::LedgerSnapshot(record),
        _ => unreachable!("record_of() makes a ledger input"),
    };
    assert!(s.handle(other, 70_000).is_empty());
    assert!(matches!(s.phase, Phase::Connected { .. }));
}

#[test]
fn ledger_records_are_read_from_the_worker_json() {
    let record = LedgerRecord::from_json(&Json::from(json!({
        "parentCallSid": "CA1", "status": "refused", "terminal": true,
        "refusedCode": "no_line_free", "direction": "outbound-browser",
    })));
    assert_eq!(
        record,
        Some(LedgerRecord {
            parent_call_sid: "CA1".into(),
            client_call_id: None,
            appointment: None,
            status: "refused".into(),
            terminal: true,
            refused_code: Some("no_line_free".into()),
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        })
    );
    assert_eq!(
        LedgerRecord::from_json(&Json::from(json!({"status": "x"}))),
        None
    );
}

#[test]
fn refresh_points_leave_a_margin() {
    // (ttl seconds, refresh after seconds)
    let table: &[(u64, u64)] = &[
        (3_600, 2_700),
        (14_400, 10_800),
        (300, 225),
        (60, 30),
        (90, 45),
    ];
    for (ttl, after) in table {
        assert_eq!(refresh_at(0, ttl * 1_000), after * 1_000, "ttl {ttl}");
    }
}

fn any_input() -> impl Strategy<Value = Input> {
    let frames = prop_oneof![
        Just(ServerMessage::Ringing {
            callsid: "CAparent".into(),
            sdp: None
        }),
        Just(ServerMessage::Answer {
            callsid: "CAparent".into(),
            sdp: Some("a".into()),
            reconnect: Some("r".into())
        }),
        Just(ServerMessage::Hangup {
            callsid: Some("CAparent".into()),
            error: None
        }),
        Just(ServerMessage::Hangup {
            callsid: None,
            error: None
        }),
        Just(ServerMessage::Cancel {
            callsid: "CAin".into()
        }),
        Just(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "o".into(),
            reconnect: Some("rc-in".into()),
            parameters: None
        }),
        Just(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None
        }),
        Just(ServerMessage::Error {
            error: SignalingError {
                code: 20104,
                message: "x".into()
            },
            callsid: None
        }),
    ]
    .prop_map(frame);
    prop_oneof![
        frames,
        Just(Input::Start),
        Just(Input::TokenIssued {
            token: "t".into(),
            ttl_seconds: 600
        }),
        Just(Input::SocketOpened),
        Just(Input::SocketClosed),
        Just(Input::MicrophoneReady),
        Just(Input::AppointmentOpened {
            appointment: "appt-landline".into()
        }),
        Just(Input::MicrophoneFailed(Microphone::Denied)),
        Just(Input::MicrophoneFailed(Microphone::InUse)),
        Just(Input::OfferReady { sdp: "o".into() }),
        Just(Input::AnswerReady { sdp: "a".into() }),
        Just(Input::MediaConnected { rtp_dtmf: false }),
        Just(Input::MediaFailed),
        Just(Input::Call {
            appointment: "a".into(),
            local_sid: "TJS1".into()
        }),
        Just(Input::ToggleMute),
        Just(Input::Hangup),
        Just(Input::Digits("1".into())),
        Just(Input::Accept),
        Just(Input::Decline),
        Just(Input::Tick),
        Just(ledger("busy", true, None)),
        Just(ledger("in-progress", false, None)),
        Just(ledger("completed", true, None)).prop_map(|input| match input {
            Input::Ledger(record) => Input::LedgerSnapshot(record),
            other => other,
        }),
    ]
}

proptest! {
    /// Whatever happens, in any order: the media is closed exactly when a call that had it ends
    /// or a microphone opens with no call waiting for it, every end is announced once, and a
    /// connected call always has an appointment or a caller.
    #[test]
    fn any_sequence_keeps_the_panel_consistent(inputs in proptest::collection::vec(any_input(), 1..60)) {
        let mut s = Session::new(Json::from(json!({})));
        let mut now = 0;
        for input in inputs {
            now += 700;
            let was_in_call = s.phase.in_call();
            let stray_microphone = input == Input::MicrophoneReady
                && !matches!(s.phase, Phase::Preparing | Phase::Answering);
            let effects = s.handle(input, now);
            let ended = effects.iter().filter(|e| **e == Effect::CallEnded).count();
            let closed = effects.iter().filter(|e| **e == Effect::CloseMedia).count();
            prop_assert!(ended <= 1 && closed <= 1);
            if closed == 1 {
                prop_assert!((was_in_call && ended == 1) || (stray_microphone && ended == 0));
            }
            if stray_microphone {
                prop_assert_eq!(effects.clone(), vec![Effect::CloseMedia]);
            }
            if ended == 1 {
                let ended_phase = matches!(s.phase, Phase::Ended { .. });
                prop_assert!(ended_phase);
                prop_assert_eq!(closed == 1, was_in_call);
            }
            if s.phase.in_call() {
                prop_assert!(s.call.is_some());
            }
            if s.blocker().is_none() {
                prop_assert_eq!(s.link, Link::Ready);
            }
            if s.can_place() {
                prop_assert_eq!(s.link, Link::Ready);
                prop_assert!(!s.phase.in_call());
            }
        }
    }
}

#[test]
fn a_call_being_placed_adopts_only_a_record_of_its_own_appointment() {
    let record = |appointment: Option<&str>, sid: &str| {
        Input::Ledger(LedgerRecord {
            parent_call_sid: sid.into(),
            client_call_id: None,
            appointment: appointment.map(str::to_owned),
            status: "ringing".into(),
            terminal: false,
            refused_code: None,
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        })
    };
    let adopted = |s: &Session| s.call.as_ref().and_then(|c| c.call_sid.clone());
    // The clinician opened another appointment while this call connects: that appointment's
    // call (placed from another window) is not this one.
    let mut s = connecting();
    s.handle(record(Some("appt-other"), "CAother"), 1_300);
    assert_eq!(adopted(&s), None);
    // Its own appointment's record, or a record that names none, is adopted.
    for appointment in [Some("appt-mobile"), None] {
        let mut s = connecting();
        s.handle(record(appointment, "CAmine"), 1_300);
        assert_eq!(adopted(&s).as_deref(), Some("CAmine"), "{appointment:?}");
    }
    assert_eq!(
        LedgerRecord::from_json(&Json::from(json!({
            "parentCallSid": "CA1", "status": "ringing", "terminal": false,
            "appointmentId": "appt-mobile",
        })))
        .and_then(|r| r.appointment),
        Some("appt-mobile".to_owned())
    );
}

/// A ledger record of a call placed for appt-mobile by the page whose call id is `client`.
fn record_of(client: Option<&str>, sid: &str, status: &str, terminal: bool) -> Input {
    Input::Ledger(LedgerRecord {
        parent_call_sid: sid.into(),
        client_call_id: client.map(str::to_owned),
        appointment: Some("appt-mobile".into()),
        status: status.into(),
        terminal,
        refused_code: None,
        direction: "outbound-browser".into(),
        duration_seconds: 0,
    })
}

#[test]
fn a_call_being_placed_adopts_only_the_record_carrying_its_own_id() {
    let adopted = |s: &Session| s.call.as_ref().and_then(|c| c.call_sid.clone());
    // The previous call's late news (a retried callback; or another window's call for this
    // appointment), final or not: not this call's, although it is for the same appointment.
    for (status, terminal) in [("busy", true), ("ringing", false)] {
        let mut s = connecting();
        let effects = s.handle(
            record_of(Some("TJSearlier"), "CAearlier", status, terminal),
            1_300,
        );
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(adopted(&s), None);
        assert_eq!(s.phase, Phase::Connecting);
    }
    // Its own record is adopted, and the call goes on under Twilio's id.
    let mut s = connecting();
    s.handle(
        record_of(Some("TJSlocal"), "CAmine", "initiated", false),
        1_300,
    );
    assert_eq!(adopted(&s).as_deref(), Some("CAmine"));
    assert_eq!(s.phase, Phase::Connecting);
    // A record naming no page's id (a worker from before the ids) is taken by its appointment.
    let mut s = connecting();
    s.handle(record_of(None, "CAold", "initiated", false), 1_300);
    assert_eq!(adopted(&s).as_deref(), Some("CAold"));
}

#[test]
fn a_call_ended_here_before_twilio_spoke_is_ended_on_the_server_once_its_record_comes() {
    // End pressed while connecting: the hangup goes out on the link, but the worker's voice
    // request was already under way and records the call as placed.
    let mut s = connecting();
    s.handle(Input::Hangup, 1_300);
    assert!(matches!(s.phase, Phase::Ended { .. }));
    let effects = s.handle(
        record_of(Some("TJSlocal"), "CAmine", "initiated", false),
        1_400,
    );
    assert_eq!(
        effects,
        vec![Effect::EndOnServer {
            call_sid: "CAmine".into()
        }]
    );
    // Its end, when it comes, asks nothing more.
    let effects = s.handle(
        record_of(Some("TJSlocal"), "CAmine", "canceled", true),
        1_500,
    );
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::EndOnServer { .. })));
    // Another page's live call for the appointment is never ended from here.
    let mut s = connecting();
    s.handle(Input::Hangup, 1_300);
    let effects = s.handle(
        record_of(Some("TJSother"), "CAother", "in-progress", false),
        1_400,
    );
    assert!(effects.is_empty(), "{effects:?}");
    // Its record came before End: ended on the link and on the server alike.
    let mut s = connecting();
    s.handle(
        record_of(Some("TJSlocal"), "CAmine", "initiated", false),
        1_300,
    );
    let effects = s.handle(Input::Hangup, 1_400);
    assert_eq!(sent_types(&effects), vec!["hangup"]);
    assert!(effects.contains(&Effect::EndOnServer {
        call_sid: "CAmine".into()
    }));
    // A refusal recorded for it is final: nothing to end.
    let mut s = connecting();
    s.handle(Input::Hangup, 1_300);
    let effects = s.handle(
        record_of(Some("TJSlocal"), "CAmine", "refused", true),
        1_400,
    );
    assert!(effects.is_empty(), "{effects:?}");
}
