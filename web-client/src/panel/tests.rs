//! The panel's states, each reached by driving a real session, checked for what the clinician
//! sees: the state, the sentence, the buttons, and the manual-dial fallback with the number.

use super::*;
use serde_json::json;
use shared::call_session::{Input, LedgerRecord};
use shared::json::Json;
use shared::signaling::ServerMessage;

fn appointment() -> AppointmentInfo {
    AppointmentInfo::from_json(&Json::from(json!({
        "id": "appt-mobile", "start": "2026-11-25T09:30:00Z", "description": "Review",
        "patient": {"name": "Pat Example", "phone": "+447700900123", "phoneAsRecorded": "07700 900123",
                    "dialable": true},
        "callable": true,
    })), crate::appointment::utc_clock)
    .expect("appointment")
}

fn frame(message: ServerMessage) -> Input {
    Input::Received(message.encode())
}

fn ready() -> Session {
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    s.handle(
        Input::TokenIssued {
            token: "t".into(),
            ttl_seconds: 3_600,
        },
        1,
    );
    s.handle(Input::SocketOpened, 2);
    s.handle(
        frame(ServerMessage::Connected {
            token: None,
            region: None,
            edge: None,
        }),
        3,
    );
    s
}

fn placed(s: &mut Session) {
    s.handle(
        Input::Call {
            appointment: "appt-mobile".into(),
            local_sid: "TJS1".into(),
        },
        10,
    );
    s.handle(Input::MicrophoneReady, 11);
    s.handle(Input::OfferReady { sdp: "o".into() }, 12);
}

fn answered(s: &mut Session) {
    placed(s);
    s.handle(
        frame(ServerMessage::Answer {
            callsid: "CA1".into(),
            sdp: Some("a".into()),
            reconnect: None,
        }),
        1_000,
    );
}

#[test]
fn every_state_shows_the_right_words_and_buttons() {
    let a = appointment();
    struct Case {
        name: &'static str,
        session: Session,
        state: &'static str,
        status_contains: &'static str,
        call_enabled: Option<bool>,
        end_visible: bool,
        fallback: bool,
    }
    let mut starting = Session::new(Json::from(json!({})));
    starting.handle(Input::Start, 0);
    let mut denied = ready();
    denied.handle(Input::MicrophoneObserved(Microphone::Denied), 5);
    let mut refused_token = Session::new(Json::from(json!({})));
    refused_token.handle(Input::Start, 0);
    refused_token.handle(
        Input::TokenRefused {
            code: "permission_missing".into(),
            message: "your account cannot place browser calls".into(),
            retryable: false,
        },
        1,
    );
    let mut connecting = ready();
    placed(&mut connecting);
    let mut ringing = ready();
    placed(&mut ringing);
    ringing.handle(
        frame(ServerMessage::Ringing {
            callsid: "CA1".into(),
            sdp: None,
        }),
        100,
    );
    let mut connected = ready();
    answered(&mut connected);
    connected.handle(Input::Received("\n".into()), 66_000);
    let mut busy = ready();
    placed(&mut busy);
    busy.handle(
        Input::Ledger(LedgerRecord {
            parent_call_sid: "CA1".into(),
            client_call_id: None,
            appointment: None,
            status: "busy".into(),
            terminal: true,
            refused_code: None,
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        }),
        500,
    );
    let mut completed = ready();
    answered(&mut completed);
    completed.handle(Input::Received("\n".into()), 13_000);
    completed.handle(Input::Hangup, 13_000);

    let cases = vec![
        Case {
            name: "starting",
            session: starting,
            state: "idle",
            status_contains: "Getting ready",
            call_enabled: Some(false),
            end_visible: false,
            fallback: false,
        },
        Case {
            name: "ready",
            session: ready(),
            state: "idle",
            status_contains: "Ready to call Pat Example",
            call_enabled: Some(true),
            end_visible: false,
            fallback: false,
        },
        Case {
            name: "denied",
            session: denied,
            state: "fallback",
            status_contains: "microphone",
            call_enabled: Some(true),
            end_visible: false,
            fallback: true,
        },
        Case {
            name: "token refused",
            session: refused_token,
            state: "fallback",
            status_contains: "cannot place browser calls",
            call_enabled: Some(false),
            end_visible: false,
            fallback: true,
        },
        Case {
            name: "connecting",
            session: connecting,
            state: "connecting",
            status_contains: "Calling Pat Example",
            call_enabled: None,
            end_visible: true,
            fallback: false,
        },
        Case {
            name: "ringing",
            session: ringing,
            state: "ringing",
            status_contains: "Ringing Pat Example",
            call_enabled: None,
            end_visible: true,
            fallback: false,
        },
        Case {
            name: "connected",
            session: connected,
            state: "connected",
            status_contains: "Connected with Pat Example",
            call_enabled: None,
            end_visible: true,
            fallback: false,
        },
        Case {
            name: "busy",
            session: busy,
            state: "ended",
            status_contains: "busy",
            call_enabled: Some(true),
            end_visible: false,
            fallback: true,
        },
        Case {
            name: "completed",
            session: completed,
            state: "ended",
            status_contains: "Call ended after 12 seconds.",
            call_enabled: Some(true),
            end_visible: false,
            fallback: false,
        },
    ];
    for case in cases {
        let v = view(&case.session, Some(&a), false, &[]);
        assert_eq!(v.state, case.state, "{}", case.name);
        assert!(
            v.status.contains(case.status_contains),
            "{}: {:?}",
            case.name,
            v.status
        );
        match case.call_enabled {
            Some(enabled) => {
                assert!(v.call.visible, "{}", case.name);
                assert_eq!(v.call.enabled, enabled, "{}", case.name);
            }
            None => assert!(!v.call.visible, "{}", case.name),
        }
        assert_eq!(v.end.visible, case.end_visible, "{}", case.name);
        assert_eq!(v.fallback.is_some(), case.fallback, "{}", case.name);
        if let Some(fallback) = &v.fallback {
            assert_eq!(
                fallback.number,
                Some(("07700 900123".into(), Some("tel:+447700900123".into()))),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn muting_before_the_patient_answers_is_said_in_the_status() {
    let mut s = ready();
    placed(&mut s);
    s.handle(
        frame(ServerMessage::Ringing {
            callsid: "CA1".into(),
            sdp: None,
        }),
        100,
    );
    let before = view(&s, Some(&appointment()), false, &[]);
    assert!(!before.status.contains("muted"));
    s.handle(Input::ToggleMute, 200);
    let v = view(&s, Some(&appointment()), false, &[]);
    assert!(v.muted);
    assert_eq!(v.mute.label, "Mute");
    assert_eq!(
        v.status,
        [before.status.as_str(), " Your microphone is muted."].concat()
    );
}

#[test]
fn the_connected_panel_has_a_timer_mute_keypad_and_a_quality_warning() {
    let mut s = ready();
    answered(&mut s);
    s.handle(Input::Received("\n".into()), 76_000);
    s.handle(Input::ToggleMute, 76_000);
    let v = view(&s, Some(&appointment()), false, &[Warning::PacketLoss]);
    assert_eq!(v.timer.as_deref(), Some("01:15"));
    assert!(v.muted);
    // A toggle keeps its name; its pressed state (and the status) say that it is on.
    assert_eq!(v.mute.label, "Mute");
    assert!(v.status.ends_with("Your microphone is muted."));
    assert!(v.keypad.visible);
    assert!(v
        .warning
        .as_deref()
        .is_some_and(|w| w.contains("Poor connection")));
    // The keypad shows the digits sent during the call, once there are any.
    assert_eq!(v.digits_sent, None);
    s.handle(Input::Digits("12".into()), 77_000);
    s.handle(Input::Digits("#".into()), 78_000);
    s.handle(Input::Digits("x".into()), 78_500);
    let v = view(&s, Some(&appointment()), false, &[]);
    assert_eq!(v.digits_sent.as_deref(), Some("Sent: 12#"));
}

#[test]
fn an_appointment_that_cannot_be_dialled_offers_its_number_with_the_reason() {
    let mut a = appointment();
    a.dialable = false;
    a.refusal = Some(crate::appointment::NumberRefusal {
        code: "number_blocked".into(),
        message: "The number is in a premium-rate or special range.".into(),
    });
    let v = view(&ready(), Some(&a), false, &[]);
    assert_eq!(v.state, "unavailable");
    assert!(!v.call.visible);
    let fallback = v.fallback.expect("fallback");
    assert!(fallback.reason.contains("premium-rate"));
    assert!(fallback.number.is_some());
}

/// Another appointment, of another patient.
fn other_appointment() -> AppointmentInfo {
    AppointmentInfo::from_json(&Json::from(json!({
        "id": "appt-landline", "patient": {"name": "Sam Other", "phone": "+447700900456", "dialable": true},
        "callable": true,
    })), crate::appointment::utc_clock)
    .expect("appointment")
}

#[test]
fn opening_another_appointment_mid_call_never_names_its_patient_for_the_call() {
    let mut s = ready();
    answered(&mut s);
    let v = view(&s, Some(&appointment()), false, &[]);
    assert_eq!(v.status, "Connected with Pat Example.");

    s.handle(
        Input::AppointmentOpened {
            appointment: "appt-landline".into(),
        },
        2_000,
    );
    let v = view(&s, Some(&other_appointment()), false, &[]);
    assert_eq!(v.state, "connected", "the live call goes on");
    assert!(!v.status.contains("Sam Other"), "{}", v.status);
    assert_eq!(
        v.status,
        "Connected with the patient of the appointment open before."
    );
    assert!(v.end.visible && !v.call.enabled);

    // Once it ends, the other appointment's panel is its own: ready to call its patient, with
    // no "Call again" and no outcome of a call it never had.
    s.handle(Input::Hangup, 3_000);
    let v = view(&s, Some(&other_appointment()), false, &[]);
    assert_eq!(v.state, "idle");
    assert_eq!(v.status, "Ready to call Sam Other.");
    assert_eq!(v.call.label, "Call now");
    assert!(v.fallback.is_none() && v.outcome.is_none());
    s.handle(
        Input::AppointmentOpened {
            appointment: "appt-landline".into(),
        },
        3_100,
    );
    let v = view(&s, Some(&other_appointment()), false, &[]);
    assert_eq!(v.state, "idle");
    assert_eq!(v.status, "Ready to call Sam Other.");
    assert!(v.fallback.is_none());
}

#[test]
fn incoming_loading_and_elsewhere_states() {
    let mut s = ready();
    s.handle(
        frame(ServerMessage::Invite {
            callsid: "CAin".into(),
            sdp: "o".into(),
            reconnect: None,
            parameters: Some(Json::from(json!({"From": "+447700900123"}))),
        }),
        10,
    );
    let v = view(&s, Some(&appointment()), false, &[]);
    assert_eq!(v.state, "incoming");
    assert!(v.accept.visible && v.decline.visible);
    assert!(v.status.contains("+447700900123"));

    let v = view(&ready(), None, true, &[]);
    assert_eq!(v.state, "loading");

    let mut s = ready();
    s.handle(
        Input::Ledger(LedgerRecord {
            parent_call_sid: "CA9".into(),
            client_call_id: None,
            appointment: None,
            status: "in-progress".into(),
            terminal: false,
            refused_code: None,
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        }),
        10,
    );
    let v = view(&s, Some(&appointment()), false, &[]);
    assert_eq!(v.state, "elsewhere");
    assert!(v.end.visible && v.status.contains("connected"));
}

#[test]
fn durations_are_said_in_words() {
    let table = [
        (0, "0 seconds"),
        (1, "1 second"),
        (12, "12 seconds"),
        (60, "1 minute"),
        (185, "3 minutes 5 seconds"),
        (3_600, "1 hour"),
        (3_661, "1 hour 1 minute 1 second"),
        (7_320, "2 hours 2 minutes"),
    ];
    for (seconds, words) in table {
        assert_eq!(spoken_duration(seconds), words);
    }
}

#[test]
fn clock_formats() {
    let table = [
        (0, "00:00"),
        (59, "00:59"),
        (61, "01:01"),
        (3_600, "1:00:00"),
        (3_725, "1:02:05"),
    ];
    for (seconds, text) in table {
        assert_eq!(clock(seconds), text);
    }
}

#[test]
fn fallback_reasons_are_codes_most_specific_first() {
    let a = appointment();
    let reason = |s: &Session, a: &AppointmentInfo, load_failed: bool| {
        fallback_reason(s, Some(a), load_failed, &view(s, Some(a), false, &[]))
    };
    assert_eq!(
        reason(&ready(), &a, false),
        None,
        "no fallback, nothing to report"
    );
    let mut denied = ready();
    denied.handle(
        Input::Call {
            appointment: "appt-mobile".into(),
            local_sid: "TJS1".into(),
        },
        10,
    );
    denied.handle(Input::MicrophoneFailed(Microphone::Denied), 20);
    assert_eq!(
        reason(&denied, &a, false).as_deref(),
        Some("microphone-denied")
    );
    let mut busy = ready();
    placed(&mut busy);
    busy.handle(
        Input::Ledger(LedgerRecord {
            parent_call_sid: "CA1".into(),
            client_call_id: None,
            appointment: None,
            status: "refused".into(),
            terminal: true,
            refused_code: Some("no_line_free".into()),
            direction: "outbound-browser".into(),
            duration_seconds: 0,
        }),
        30,
    );
    assert_eq!(reason(&busy, &a, false).as_deref(), Some("no_line_free"));
    let mut blocked = a.clone();
    blocked.refusal = Some(crate::appointment::NumberRefusal {
        code: "number_blocked".into(),
        message: "Premium rate.".into(),
    });
    assert_eq!(
        reason(&ready(), &blocked, false).as_deref(),
        Some("number_blocked")
    );
    let mut unreachable = Session::new(Json::from(json!({})));
    unreachable.handle(Input::Start, 0);
    unreachable.handle(
        Input::TokenRefused {
            code: "unreachable".into(),
            message: "x".into(),
            retryable: true,
        },
        1,
    );
    assert_eq!(
        reason(&unreachable, &a, false).as_deref(),
        Some("service-unreachable")
    );
}

#[test]
fn an_appointment_that_fails_to_load_is_tried_again_only_when_the_failure_may_pass() {
    // (status, transient): unreachable, server errors, timeouts and rate limits pass; a refusal
    // (forbidden, not found, bad request) does not, and waits for the clinician.
    let table = [
        (None, true),
        (Some(500), true),
        (Some(502), true),
        (Some(503), true),
        (Some(408), true),
        (Some(429), true),
        (Some(400), false),
        (Some(401), false),
        (Some(403), false),
        (Some(404), false),
    ];
    for (status, transient) in table {
        let failure = LoadFailure::new(status, Some("Medplum is not answering"));
        assert_eq!(failure.transient, transient, "{status:?}");
        assert!(failure
            .message
            .ends_with("using the number in their record."));
    }
    assert!(
        LoadFailure::new(Some(503), Some("Medplum is not answering"))
            .message
            .contains("(Medplum is not answering)")
    );
    assert!(LoadFailure::new(None, None)
        .message
        .contains("cannot be reached"));

    let delays: Vec<u32> = (1..=8).map(load_retry_delay_ms).collect();
    assert_eq!(
        delays,
        [2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
    );
    assert_eq!(load_retry_delay_ms(0), 2_000);
    assert_eq!(load_retry_delay_ms(u32::MAX), 30_000);
}

#[test]
fn a_failed_load_shows_the_host_number_and_try_again_but_never_hides_a_live_call() {
    let host_number = Some((
        "07700 900123".to_owned(),
        Some("tel:07700900123".to_owned()),
    ));
    for (status, says_trying) in [(Some(503), true), (Some(404), false)] {
        let failure = LoadFailure::new(status, None);
        let s = ready();
        let mut v = view(&s, None, false, &[]);
        show_load_failure(&mut v, &s, &failure, host_number.clone());
        assert_eq!(v.state, "unavailable");
        assert_eq!(v.status.ends_with("Trying again…"), says_trying);
        assert!(v.call.visible && v.call.enabled);
        assert_eq!(v.call.label, "Try again now");
        let fallback = v.fallback.expect("the number to dial by hand");
        assert_eq!(fallback.reason, failure.message);
        assert_eq!(fallback.number, host_number);
    }

    // A call placed before the failed reload stays on screen with its buttons.
    let mut s = ready();
    answered(&mut s);
    let mut v = view(&s, Some(&appointment()), false, &[]);
    let before = v.clone();
    show_load_failure(&mut v, &s, &LoadFailure::new(None, None), host_number);
    assert_eq!(v, before);
    assert_eq!(v.state, "connected");
}

#[test]
fn readiness_checks_still_under_way_are_pending_not_failed() {
    let states = |s: &Session| -> Vec<(&'static str, &'static str)> {
        view(s, Some(&appointment()), false, &[])
            .readiness
            .iter()
            .map(|item| (item.check, item.ok))
            .collect()
    };
    let mut s = Session::new(Json::from(json!({})));
    s.handle(Input::Start, 0);
    assert_eq!(
        states(&s),
        [
            ("microphone", "true"),
            ("token", "pending"),
            ("signaling", "pending")
        ]
    );
    s.handle(
        Input::TokenRefused {
            code: "permission_missing".into(),
            message: "no".into(),
            retryable: false,
        },
        10,
    );
    assert_eq!(states(&s)[1], ("token", "false"));
    assert_eq!(
        states(&ready()),
        [
            ("microphone", "true"),
            ("token", "true"),
            ("signaling", "true")
        ]
    );
}

#[test]
fn tokens_twilio_keeps_refusing_offer_the_number_and_say_whom_to_tell() {
    let mut s = ready();
    let refused = || {
        frame(ServerMessage::Error {
            error: shared::signaling::SignalingError {
                code: 31204,
                message: "Invalid Access Token signature".into(),
            },
            callsid: None,
        })
    };
    for n in 0..5u64 {
        let effects = s.handle(refused(), 100 + n * 10);
        if effects.contains(&shared::call_session::Effect::FetchToken) {
            s.handle(
                Input::TokenIssued {
                    token: format!("t{n}"),
                    ttl_seconds: 3_600,
                },
                105 + n * 10,
            );
        }
    }
    let v = view(&s, Some(&appointment()), false, &[]);
    assert_eq!(v.state, "fallback");
    assert!(v.status.contains("administrator"), "{}", v.status);
    assert!(v.fallback.and_then(|f| f.number).is_some());
    let token = v
        .readiness
        .iter()
        .find(|r| r.check == "token")
        .expect("token");
    assert_eq!(
        (token.ok, token.text.as_str()),
        ("false", "Twilio refused the calling token.")
    );
}
