//! What the call panel shows, computed from the session and the appointment: plain Rust, tested
//! natively; `glue::panel` only copies a [`PanelView`] into the DOM.

use shared::call_quality::Warning;
use shared::call_session::{
    Blocker, Direction, Link, Microphone, Outcome, Phase, Session, TokenState,
    TWILIO_REJECTED_TOKEN,
};

use crate::appointment::AppointmentInfo;

/// One button: shown or hidden, enabled or not, and its label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ButtonView {
    pub visible: bool,
    pub enabled: bool,
    pub label: String,
}

impl ButtonView {
    fn shown(label: &str, enabled: bool) -> Self {
        Self {
            visible: true,
            enabled,
            label: label.to_owned(),
        }
    }
}

/// One readiness line: microphone, token, signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessItem {
    pub check: &'static str,
    /// `"true"` ready, `"false"` a problem, `"pending"` still being checked (the page's
    /// `data-ok`, which the stylesheet marks ✓, ✕ or …).
    pub ok: &'static str,
    pub text: String,
}

const READY: &str = "true";
const PROBLEM: &str = "false";
const PENDING: &str = "pending";

/// The manual-dial section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackView {
    pub reason: String,
    /// (shown number, its `tel:` link if it is written as a number); `None` when there is no
    /// number on record.
    pub number: Option<(String, Option<String>)>,
}

/// Everything the panel shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelView {
    /// `data-state`: loading, idle, unavailable, connecting, ringing, connected, ended,
    /// incoming, elsewhere, fallback.
    pub state: &'static str,
    /// `data-outcome` after a call, e.g. `busy`.
    pub outcome: Option<&'static str>,
    pub heading: String,
    pub appointment_line: String,
    /// The live region's sentence.
    pub status: String,
    pub timer: Option<String>,
    pub warning: Option<String>,
    pub readiness: Vec<ReadinessItem>,
    pub call: ButtonView,
    pub mute: ButtonView,
    pub muted: bool,
    pub end: ButtonView,
    pub keypad: ButtonView,
    /// Above the keypad: the digits sent during this call, e.g. `Sent: 12#` (`None` before any).
    pub digits_sent: Option<String>,
    pub accept: ButtonView,
    pub decline: ButtonView,
    pub fallback: Option<FallbackView>,
}

/// Why the mounted appointment could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The sentence shown, ending with what to do meanwhile.
    pub message: String,
    /// Unreachable, 5xx, 408 or 429: the panel tries again by itself after
    /// [`load_retry_delay_ms`]. Anything else waits for the clinician's "Try again".
    pub transient: bool,
}

impl LoadFailure {
    /// From the answer to the appointment request: `status` is `None` when the call service could
    /// not be reached; `message` is the error message it gave, if any.
    pub fn new(status: Option<u16>, message: Option<&str>) -> Self {
        const MEANWHILE: &str = "Dial the patient by hand using the number in their record.";
        match status {
            None => Self {
                message: format!("The call service cannot be reached. {MEANWHILE}"),
                transient: true,
            },
            Some(status) => Self {
                message: format!(
                    "This appointment could not be loaded ({}). {MEANWHILE}",
                    message.unwrap_or("the call service refused the request")
                ),
                transient: status >= 500 || matches!(status, 408 | 429),
            },
        }
    }
}

/// How long the panel waits before loading the appointment again after `failures` transient
/// failures in a row: 2 s, doubling, at most 30 s (a Medplum outage is not hammered).
pub fn load_retry_delay_ms(failures: u32) -> u32 {
    2_000u32
        .saturating_mul(1 << failures.saturating_sub(1).min(4))
        .min(30_000)
}

/// The panel when the appointment could not be loaded (a live call is shown as it is instead):
/// the reason, the host page's number to dial by hand, and a button to try again now.
pub fn show_load_failure(
    v: &mut PanelView,
    session: &Session,
    failure: &LoadFailure,
    host_number: Option<(String, Option<String>)>,
) {
    if session.phase.in_call() {
        return;
    }
    v.state = "unavailable";
    v.status = if failure.transient {
        format!("{} Trying again…", failure.message)
    } else {
        failure.message.clone()
    };
    v.call = ButtonView::shown("Try again now", true);
    v.fallback = Some(FallbackView {
        reason: failure.message.clone(),
        number: host_number,
    });
}

/// Said after the status while the microphone is muted (the Mute button's label stays "Mute": its
/// pressed state says whether it is on, and this sentence says it in words).
fn muted_note(muted: bool) -> &'static str {
    if muted {
        " Your microphone is muted."
    } else {
        ""
    }
}

/// Seconds as (hours, minutes, seconds).
fn hours_minutes_seconds(seconds: u32) -> (u32, u32, u32) {
    (seconds / 3_600, seconds / 60 % 60, seconds % 60)
}

/// Formats seconds as `MM:SS` (or `H:MM:SS` past an hour).
pub fn clock(seconds: u32) -> String {
    let (hours, minutes, secs) = hours_minutes_seconds(seconds);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{secs:02}")
    } else {
        format!("{minutes:02}:{secs:02}")
    }
}

/// A duration in words, for sentences a screen reader reads out ("3 minutes 5 seconds", where
/// the timer's "03:05" would be read as a time of day).
pub fn spoken_duration(seconds: u32) -> String {
    let (hours, minutes, secs) = hours_minutes_seconds(seconds);
    let parts = [(hours, "hour"), (minutes, "minute"), (secs, "second")];
    let words: Vec<String> = parts
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| {
            let plural = if *count == 1 { "" } else { "s" };
            format!("{count} {unit}{plural}")
        })
        .collect();
    if words.is_empty() {
        "0 seconds".to_owned()
    } else {
        words.join(" ")
    }
}

fn readiness(session: &Session) -> Vec<ReadinessItem> {
    let microphone = match session.microphone {
        Microphone::Granted => (READY, "Microphone allowed."),
        Microphone::Prompt | Microphone::Unknown => {
            (READY, "The browser will ask to use the microphone.")
        }
        Microphone::Denied => (PROBLEM, "Microphone blocked for this site."),
        Microphone::Absent => (PROBLEM, "No microphone found."),
        Microphone::InUse => (PROBLEM, "Microphone in use by another application."),
    };
    let token = match &session.token {
        TokenState::Valid { .. } => (READY, "Signed in for calls."),
        TokenState::Missing | TokenState::Fetching => (PENDING, "Checking you may place calls…"),
        TokenState::Refused { code, .. } if code == TWILIO_REJECTED_TOKEN => {
            (PROBLEM, "Twilio refused the calling token.")
        }
        TokenState::Refused { .. } => (PROBLEM, "Browser calls not allowed for this account."),
        TokenState::Unreachable { .. } => (PROBLEM, "Call service unreachable; retrying."),
    };
    let signaling = match session.link {
        Link::Ready => (READY, "Connected to the phone network."),
        Link::Retrying { .. } => (PROBLEM, "Phone network unreachable; reconnecting."),
        _ => (PENDING, "Connecting to the phone network…"),
    };
    [
        ("microphone", microphone),
        ("token", token),
        ("signaling", signaling),
    ]
    .into_iter()
    .map(|(check, (ok, text))| ReadinessItem {
        check,
        ok,
        text: text.to_owned(),
    })
    .collect()
}

/// The appointment's own reason the browser can't call it, if any.
fn appointment_blocker(appointment: Option<&AppointmentInfo>) -> Option<String> {
    let appointment = appointment?;
    if !appointment.callable {
        return Some("This appointment is cancelled or finished, so it cannot be called.".into());
    }
    if let Some(refusal) = &appointment.refusal {
        return Some(refusal.message.clone());
    }
    if appointment.phone.is_none() && appointment.phone_as_recorded.is_none() {
        return Some("The patient has no phone number on record.".into());
    }
    None
}

/// Computes the panel for `session` and the mounted `appointment` (`None` while loading).
pub fn view(
    session: &Session,
    appointment: Option<&AppointmentInfo>,
    loading: bool,
    warnings: &[Warning],
) -> PanelView {
    let call = session.call.as_ref();
    // A call still live in this page for the appointment open before (the clinician opened
    // another one mid-call) never takes this appointment's patient's name.
    let call_for_another = call
        .and_then(|c| c.appointment.as_deref())
        .zip(appointment)
        .is_some_and(|(called, shown)| called != shown.id);
    let name = match appointment.and_then(|a| a.patient_name.clone()) {
        Some(_) if call_for_another && session.phase.in_call() => {
            "the patient of the appointment open before".to_owned()
        }
        Some(name) => name,
        None => "the patient".to_owned(),
    };
    let muted = call.is_some_and(|c| c.muted);
    let blocker = session.blocker();
    let appointment_problem = appointment_blocker(appointment);
    let manual_number = appointment.and_then(AppointmentInfo::manual_number);

    let mut v = PanelView {
        state: "idle",
        outcome: None,
        heading: appointment
            .and_then(|a| a.patient_name.clone())
            .unwrap_or_else(|| "Phone appointment".to_owned()),
        appointment_line: appointment
            .map(AppointmentInfo::summary_line)
            .unwrap_or_default(),
        status: String::new(),
        timer: None,
        warning: None,
        readiness: readiness(session),
        call: ButtonView::default(),
        mute: ButtonView::default(),
        muted,
        end: ButtonView::default(),
        keypad: ButtonView::default(),
        digits_sent: None,
        accept: ButtonView::default(),
        decline: ButtonView::default(),
        fallback: None,
    };
    let fallback = |reason: String| FallbackView {
        reason,
        number: manual_number.clone(),
    };

    match &session.phase {
        Phase::Idle | Phase::Ended { .. } if loading => {
            v.state = "loading";
            v.status = "Loading the appointment…".into();
        }
        Phase::Idle | Phase::Ended { .. } => {
            let ended = match &session.phase {
                Phase::Ended {
                    outcome,
                    duration_seconds,
                } if !call_for_another => Some((outcome, *duration_seconds)),
                _ => None,
            };
            let again = ended.is_some();
            if let Some((outcome, duration)) = ended {
                v.state = "ended";
                v.outcome = Some(outcome.code());
                v.timer = (duration > 0).then(|| clock(duration));
                v.status = match (outcome, duration) {
                    (Outcome::Completed, d) if d > 0 => {
                        format!("Call ended after {}.", spoken_duration(d))
                    }
                    _ => outcome.describe(),
                };
                if outcome.offers_manual_dial() {
                    v.fallback = Some(fallback(outcome.describe()));
                }
            }
            match (&appointment_problem, &blocker) {
                (Some(problem), _) => {
                    v.state = if again { v.state } else { "unavailable" };
                    if !again {
                        v.status = problem.clone();
                    }
                    v.fallback = Some(fallback(problem.clone()));
                }
                (None, Some(blocker)) if blocker.needs_manual_dial() => {
                    let reason = blocker.describe();
                    if !again {
                        v.state = "fallback";
                        v.status = reason.clone();
                    }
                    v.fallback = Some(fallback(reason.clone()));
                    v.call = ButtonView::shown(call_label(blocker), session.can_place());
                }
                (None, Some(blocker)) => {
                    if !again {
                        v.status = blocker.describe();
                    }
                    v.call = ButtonView::shown(call_label(blocker), false);
                }
                (None, None) => {
                    if !again {
                        v.status = format!("Ready to call {name}.");
                    }
                    v.call = ButtonView::shown(if again { "Call again" } else { "Call now" }, true);
                }
            }
        }
        Phase::Preparing | Phase::Connecting | Phase::Answering => {
            v.state = "connecting";
            v.status = match session.phase {
                Phase::Preparing => "Starting the microphone…".into(),
                Phase::Answering => "Answering…".into(),
                _ => format!("Calling {name}…"),
            } + muted_note(muted);
            v.mute = ButtonView::shown("Mute", true);
            v.end = ButtonView::shown("Cancel call", true);
        }
        Phase::Ringing => {
            v.state = "ringing";
            v.status = format!("Ringing {name}…") + muted_note(muted);
            v.mute = ButtonView::shown("Mute", true);
            v.end = ButtonView::shown("Cancel call", true);
        }
        Phase::Connected { .. } => {
            v.state = "connected";
            let who = match call.map(|c| c.direction) {
                Some(Direction::Incoming) => "the patient".to_owned(),
                _ => name.clone(),
            };
            v.status = format!("Connected with {who}.") + muted_note(muted);
            v.timer = Some(clock(session.duration_seconds()));
            v.warning = warnings.first().map(|w| w.describe().to_owned());
            v.mute = ButtonView::shown("Mute", true);
            v.end = ButtonView::shown("End call", true);
            v.keypad = ButtonView::shown("Keypad", true);
            v.digits_sent = call
                .filter(|c| !c.digits.is_empty())
                .map(|c| format!("Sent: {}", c.digits));
        }
        Phase::Incoming => {
            v.state = "incoming";
            let from = call
                .and_then(|c| c.from.as_deref())
                .map(|n| format!(" from {n}"))
                .unwrap_or_default();
            v.heading = "Patient calling back".into();
            v.status = format!("Incoming call{from}.");
            v.accept = ButtonView::shown("Accept", true);
            v.decline = ButtonView::shown("Decline", true);
        }
        Phase::Elsewhere { status } => {
            v.state = "elsewhere";
            v.status = format!(
                "A call for this appointment is {} (placed before this page was loaded).",
                match status.as_str() {
                    "in-progress" => "connected",
                    "ringing" => "ringing",
                    _ => "starting",
                }
            );
            v.end = ButtonView::shown("End that call", true);
        }
    }
    v
}

/// Why the panel offers manual dialing, as a code for telemetry (`None` when it does not): the
/// most specific reason first.
pub fn fallback_reason(
    session: &Session,
    appointment: Option<&AppointmentInfo>,
    load_failed: bool,
    view: &PanelView,
) -> Option<String> {
    view.fallback.as_ref()?;
    if load_failed {
        return Some("appointment-unavailable".into());
    }
    if let Some(refusal) = appointment.and_then(|a| a.refusal.as_ref()) {
        return Some(refusal.code.clone());
    }
    let ended = match &session.phase {
        Phase::Ended { outcome, .. } if outcome.offers_manual_dial() => Some(outcome),
        _ => None,
    };
    if let Some(Outcome::Refused(code)) = ended {
        return Some(code.clone());
    }
    if let Some(blocker) = session.blocker().filter(Blocker::needs_manual_dial) {
        return Some(blocker.code().to_owned());
    }
    if let Some(outcome) = ended {
        return Some(outcome.code().to_owned());
    }
    Some("appointment-not-callable".into())
}

fn call_label(blocker: &Blocker) -> &'static str {
    match blocker {
        Blocker::Starting | Blocker::SignalingConnecting => "Call now (connecting…)",
        // Pressed, it asks the browser for the microphone again.
        Blocker::MicrophoneDenied | Blocker::MicrophoneAbsent => "Try the microphone again",
        Blocker::TokenRefused { .. } => "Call now (not permitted)",
        Blocker::ServiceUnreachable | Blocker::SignalingUnreachable => "Call now (offline)",
        Blocker::InCall => "Call now",
    }
}

pub mod skeleton;

#[cfg(test)]
mod tests;
