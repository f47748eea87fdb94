//! The call lifecycle: initiated → ringing → in-progress → completed | busy | no-answer | failed |
//! canceled, derived from status callbacks that may repeat and arrive in any order.
//!
//! A call's record is a pure function of the *set* of distinct callbacks received (deduplicated
//! on the callback's sequence number), so any order and any number of repeats converge to the
//! same record, and a terminal status can never regress to ringing.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A call's status as Twilio reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

/// A status string we do not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown call status")]
pub struct UnknownStatus;

impl CallStatus {
    /// Parses Twilio's `CallStatus` (and `DialCallStatus`) values; `answered` is `in-progress`.
    pub fn parse(value: &str) -> Result<Self, UnknownStatus> {
        Ok(match value {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" | "answered" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "no-answer" => Self::NoAnswer,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return Err(UnknownStatus),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// The call is over.
    pub fn is_terminal(self) -> bool {
        self.rank() == 4
    }

    /// Position in the lifecycle; every terminal status shares the last rank.
    fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Initiated => 1,
            Self::Ringing => 2,
            Self::InProgress => 3,
            Self::Completed | Self::Busy | Self::NoAnswer | Self::Failed | Self::Canceled => 4,
        }
    }
}

/// One status callback (or an equivalent event the worker observed itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    /// Twilio's `SequenceNumber`; `None` for events without one (e.g. the Dial action).
    pub sequence: Option<u32>,
    pub status: CallStatus,
    pub timestamp_unix: i64,
    /// `CallDuration`, on completion.
    pub duration_seconds: Option<u32>,
    /// Twilio's `ErrorCode`, on failure.
    pub error_code: Option<u32>,
}

impl StatusEvent {
    /// The identity used to drop repeats: the sequence number when Twilio sent one.
    pub fn dedupe_key(&self) -> (Option<u32>, Option<(CallStatus, i64)>) {
        match self.sequence {
            Some(sequence) => (Some(sequence), None),
            None => (None, Some((self.status, self.timestamp_unix))),
        }
    }
}

/// Who ended a call, when the worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedBy {
    Clinician,
    Patient,
    System,
}

/// The derived state of one call leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallProgress {
    pub status: CallStatus,
    pub started_at_unix: Option<i64>,
    pub answered_at_unix: Option<i64>,
    pub ended_at_unix: Option<i64>,
    pub duration_seconds: u32,
    /// The highest sequence number seen.
    pub last_sequence: Option<u32>,
    pub error_code: Option<u32>,
    /// Distinct statuses in lifecycle order, for the timeline.
    pub timeline: Vec<(CallStatus, i64)>,
}

/// Orders events so that the winner of a status contest is the greatest: lifecycle rank first,
/// then sequence number, then time, then the status itself (a total order, so the result never
/// depends on arrival order).
fn precedence(event: &StatusEvent) -> (u8, Option<u32>, i64, CallStatus) {
    (
        event.status.rank(),
        event.sequence,
        event.timestamp_unix,
        event.status,
    )
}

/// Derives a call's progress from every callback received for it (duplicates allowed, any order).
/// `None` when there are no events.
pub fn progress(events: &[StatusEvent]) -> Option<CallProgress> {
    // Of two different events claiming one dedupe key (say both legs of a call sending the same
    // sequence number), keep the greatest, whichever arrived first: look at them greatest first.
    let whole = |e: &StatusEvent| (precedence(e), e.duration_seconds, e.error_code);
    let mut greatest_first: Vec<&StatusEvent> = events.iter().collect();
    greatest_first.sort_by_key(|e| std::cmp::Reverse(whole(e)));
    let mut distinct: Vec<&StatusEvent> = Vec::with_capacity(events.len());
    for event in greatest_first {
        if !distinct
            .iter()
            .any(|e| e.dedupe_key() == event.dedupe_key())
        {
            distinct.push(event);
        }
    }
    distinct.sort_by_key(|e| precedence(e));
    let winner = *distinct.last()?;
    let earliest_of = |wanted: &dyn Fn(CallStatus) -> bool| {
        distinct
            .iter()
            .filter(|e| wanted(e.status))
            .map(|e| e.timestamp_unix)
            .min()
    };
    let started_at = distinct.iter().map(|e| e.timestamp_unix).min();
    let answered_at = earliest_of(&|s| s == CallStatus::InProgress);
    let ended_at = winner.status.is_terminal().then_some(winner.timestamp_unix);
    let duration_seconds = match (winner.status, winner.duration_seconds) {
        (CallStatus::Completed, Some(seconds)) => seconds,
        (CallStatus::Completed, None) => match (answered_at, ended_at) {
            (Some(answered), Some(ended)) if ended > answered => {
                u32::try_from(ended - answered).unwrap_or(u32::MAX)
            }
            _ => 0,
        },
        _ => 0,
    };
    let mut timeline: Vec<(CallStatus, i64)> = Vec::new();
    for event in &distinct {
        if event.status.is_terminal() && event.status != winner.status {
            continue;
        }
        match timeline
            .iter_mut()
            .find(|(status, _)| *status == event.status)
        {
            Some((_, at)) => *at = (*at).min(event.timestamp_unix),
            None => timeline.push((event.status, event.timestamp_unix)),
        }
    }
    timeline.sort_by_key(|(status, at)| (status.rank(), *at));
    Some(CallProgress {
        status: winner.status,
        started_at_unix: started_at,
        answered_at_unix: answered_at,
        ended_at_unix: ended_at,
        duration_seconds,
        last_sequence: distinct.iter().filter_map(|e| e.sequence).max(),
        error_code: distinct.iter().rev().find_map(|e| e.error_code),
        timeline,
    })
}

/// The event that closes a call Twilio has confirmed ended (its REST hang-up succeeded) when no
/// status callback was ever received for it: the clinician ended it before its patient leg was
/// dialled, so no callback will come and the attempt would otherwise stay live for good. It is
/// `canceled`, at `now_unix`, without a sequence number, so a real callback that still arrives
/// outranks it ([`progress`]). `None` once any callback was received: Twilio reports that
/// call's own end.
pub fn closing_event(events: &[StatusEvent], now_unix: i64) -> Option<StatusEvent> {
    events.is_empty().then_some(StatusEvent {
        sequence: None,
        status: CallStatus::Canceled,
        timestamp_unix: now_unix,
        duration_seconds: None,
        error_code: None,
    })
}

/// How long a call the clinician made by hand lasted, from what they typed in minutes: whole
/// (`5`) or with a decimal point (`2.5`, `0.75`: to the nearest second), at most a day; empty is
/// 0. `None` for anything else, which the panel asks them to correct rather than save as 0.
pub fn minutes_as_seconds(typed: &str) -> Option<u32> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Some(0);
    }
    let (whole, fraction) = typed.split_once('.').unwrap_or((typed, ""));
    let digits_only = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || !digits_only(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    let whole_minutes: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // The fraction of a minute to the nearest second, from its first three digits (enough for
    // a second: 1/60 ≈ 0.017).
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
    let seconds = whole_minutes
        .checked_mul(60)?
        .checked_add((thousandths * 60 + 500) / 1000)?;
    (seconds <= 86_400).then_some(seconds)
}

/// The events of a call the clinician made by hand and recorded afterwards (`outcome`, lasting
/// `duration_seconds`, ended at `ended_at_unix`): a connected call also has its answer, that
/// long before its end, so that the record's start, answer and end are those of the call, not
/// three times the moment it was recorded. Without sequence numbers, like every event the
/// worker observes itself.
pub fn manual_events(
    outcome: CallStatus,
    duration_seconds: u32,
    ended_at_unix: i64,
) -> Vec<StatusEvent> {
    let event = |status, timestamp_unix, duration_seconds| StatusEvent {
        sequence: None,
        status,
        timestamp_unix,
        duration_seconds,
        error_code: None,
    };
    let end = event(outcome, ended_at_unix, Some(duration_seconds));
    if outcome == CallStatus::Completed && duration_seconds > 0 {
        let answered = ended_at_unix.saturating_sub(i64::from(duration_seconds));
        vec![event(CallStatus::InProgress, answered, None), end]
    } else {
        vec![end]
    }
}

/// A call leg as Twilio's REST API describes it (`GET …/Calls/{CallSid}.json`): the fields a
/// status check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwilioLeg {
    pub status: CallStatus,
    /// `duration`, once the leg has ended.
    pub duration_seconds: Option<u32>,
    /// `end_time`, once the leg has ended.
    pub ended_at_unix: Option<i64>,
}

impl TwilioLeg {
    /// From the resource's `status`, `duration` (Twilio sends a decimal string, or null) and
    /// `end_time` (RFC 2822, or null). `None` for a status this crate does not know.
    pub fn parse(status: &str, duration: Option<&str>, end_time: Option<&str>) -> Option<Self> {
        Some(Self {
            status: CallStatus::parse(status).ok()?,
            duration_seconds: duration.and_then(|d| d.parse().ok()),
            ended_at_unix: end_time.and_then(crate::time::parse_rfc2822),
        })
    }
}

/// Which leg a status check asked Twilio about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedLeg {
    /// The patient's leg (the `<Dial>`ed number): its status is the call's.
    Patient,
    /// The clinician's leg, when Twilio has no patient leg under it: the patient was never
    /// dialled.
    ClinicianOnly,
}

/// What a status check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckFinding {
    /// The call already has its final status: nothing to ask or add.
    AlreadyEnded,
    /// Twilio says the call is still going: ask again later.
    StillLive,
    /// Twilio says it ended, and no callback said so (lost, or never sent): this event closes it.
    Ended(StatusEvent),
}

/// A status check of a call that has gone quiet: its final callback may have been lost (the
/// worker unreachable when Twilio sent it), which would leave it live for good. Given the call's
/// events and what Twilio says of `leg`, the event that ends it, if Twilio says it has ended.
/// The event has no sequence number, so a real callback that still arrives outranks it
/// ([`progress`]); it is timed at Twilio's `end_time`, or `now_unix` without one.
pub fn check_finding(
    events: &[StatusEvent],
    leg: CheckedLeg,
    twilio: &TwilioLeg,
    now_unix: i64,
) -> CheckFinding {
    if progress(events).is_some_and(|p| p.status.is_terminal()) {
        return CheckFinding::AlreadyEnded;
    }
    if !twilio.status.is_terminal() {
        return CheckFinding::StillLive;
    }
    let (status, duration_seconds) = match leg {
        CheckedLeg::Patient => (twilio.status, twilio.duration_seconds),
        // The clinician's leg ended without a patient leg: nothing happened on the phone
        // network, as for a call hung up before dialling (`closing_event`), unless Twilio
        // failed the call itself.
        CheckedLeg::ClinicianOnly => match twilio.status {
            CallStatus::Failed => (CallStatus::Failed, None),
            _ => (CallStatus::Canceled, None),
        },
    };
    CheckFinding::Ended(StatusEvent {
        sequence: None,
        status,
        timestamp_unix: twilio.ended_at_unix.unwrap_or(now_unix),
        duration_seconds,
        error_code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_minutes_become_seconds_or_are_refused() {
        let table: &[(&str, Option<u32>)] = &[
            ("", Some(0)),
            ("  ", Some(0)),
            ("5", Some(300)),
            (" 12 ", Some(720)),
            ("2.5", Some(150)),
            ("0.75", Some(45)),
            (".5", Some(30)),
            ("3.", Some(180)),
            ("0.01", Some(1)),
            ("0.0083", Some(0)),
            ("1440", Some(86_400)),
            ("1441", None),
            ("1.5.2", None),
            ("-1", None),
            ("1e3", None),
            (".", None),
            ("five", None),
            ("99999999999", None),
        ];
        for (typed, expected) in table {
            assert_eq!(minutes_as_seconds(typed), *expected, "{typed:?}");
        }
    }
    use proptest::prelude::*;
    use CallStatus::*;

    fn event(sequence: u32, status: CallStatus, at: i64) -> StatusEvent {
        StatusEvent {
            sequence: Some(sequence),
            status,
            timestamp_unix: at,
            duration_seconds: None,
            error_code: None,
        }
    }

    fn completed(sequence: u32, at: i64, duration: u32) -> StatusEvent {
        StatusEvent {
            duration_seconds: Some(duration),
            ..event(sequence, Completed, at)
        }
    }

    #[test]
    fn parses_every_twilio_status() {
        let table = [
            ("queued", Queued),
            ("initiated", Initiated),
            ("ringing", Ringing),
            ("in-progress", InProgress),
            ("answered", InProgress),
            ("completed", Completed),
            ("busy", Busy),
            ("no-answer", NoAnswer),
            ("failed", Failed),
            ("canceled", Canceled),
        ];
        for (text, status) in table {
            assert_eq!(CallStatus::parse(text), Ok(status));
            if text != "answered" {
                assert_eq!(status.as_str(), text);
            }
        }
        assert_eq!(CallStatus::parse("Completed"), Err(UnknownStatus));
        assert_eq!(CallStatus::parse(""), Err(UnknownStatus));
    }

    #[test]
    fn outcomes_table() {
        let t0 = 1_800_000_000;
        let table: Vec<(&str, Vec<StatusEvent>, CallStatus, u32, bool)> = vec![
            (
                "answered and completed",
                vec![
                    event(0, Initiated, t0),
                    event(1, Ringing, t0 + 1),
                    event(2, InProgress, t0 + 5),
                    completed(3, t0 + 47, 42),
                ],
                Completed,
                42,
                true,
            ),
            (
                "busy",
                vec![
                    event(0, Initiated, t0),
                    event(1, Ringing, t0 + 1),
                    event(2, Busy, t0 + 3),
                ],
                Busy,
                0,
                false,
            ),
            (
                "no answer",
                vec![
                    event(0, Initiated, t0),
                    event(1, Ringing, t0 + 1),
                    event(2, NoAnswer, t0 + 31),
                ],
                NoAnswer,
                0,
                false,
            ),
            (
                "failed",
                vec![event(0, Initiated, t0), event(1, Failed, t0 + 1)],
                Failed,
                0,
                false,
            ),
            (
                "canceled while ringing",
                vec![
                    event(0, Initiated, t0),
                    event(1, Ringing, t0 + 1),
                    event(2, Canceled, t0 + 9),
                ],
                Canceled,
                0,
                false,
            ),
            (
                "still ringing",
                vec![event(0, Initiated, t0), event(1, Ringing, t0 + 1)],
                Ringing,
                0,
                false,
            ),
            (
                "completed without CallDuration",
                vec![event(2, InProgress, t0 + 5), event(3, Completed, t0 + 65)],
                Completed,
                60,
                true,
            ),
        ];
        for (name, events, status, duration, answered) in table {
            let record = progress(&events).unwrap();
            assert_eq!(record.status, status, "{name}");
            assert_eq!(record.duration_seconds, duration, "{name}");
            assert_eq!(record.answered_at_unix.is_some(), answered, "{name}");
            assert_eq!(
                record.ended_at_unix.is_some(),
                status.is_terminal(),
                "{name}"
            );
            assert_eq!(
                record.started_at_unix,
                events.iter().map(|e| e.timestamp_unix).min(),
                "{name}"
            );
        }
        assert_eq!(progress(&[]), None);
    }

    #[test]
    fn a_status_check_ends_only_what_twilio_says_has_ended() {
        let leg = |status: &str, duration: Option<&str>, end: Option<&str>| {
            TwilioLeg::parse(status, duration, end).expect("known status")
        };
        let end_time = Some("Sun, 06 Dec 2026 22:40:07 +0000");
        let ended_at = crate::time::parse_rfc2822("Sun, 06 Dec 2026 22:40:07 +0000");
        let answered = [event(0, Initiated, 1_000), event(2, InProgress, 1_010)];
        let finished = [completed(3, 1_070, 60)];
        let ended = |status, at, duration_seconds| {
            CheckFinding::Ended(StatusEvent {
                sequence: None,
                status,
                timestamp_unix: at,
                duration_seconds,
                error_code: None,
            })
        };
        let table: Vec<(&str, &[StatusEvent], CheckedLeg, TwilioLeg, CheckFinding)> = vec![
            (
                "patient's leg over",
                &answered,
                CheckedLeg::Patient,
                leg("completed", Some("61"), end_time),
                ended(Completed, ended_at.unwrap_or(0), Some(61)),
            ),
            (
                "patient's leg busy, no end_time",
                &[],
                CheckedLeg::Patient,
                leg("busy", Some("0"), None),
                ended(Busy, 5_000, Some(0)),
            ),
            (
                "still talking",
                &answered,
                CheckedLeg::Patient,
                leg("in-progress", None, None),
                CheckFinding::StillLive,
            ),
            (
                "still ringing",
                &[],
                CheckedLeg::Patient,
                leg("ringing", None, None),
                CheckFinding::StillLive,
            ),
            (
                "a final callback came meanwhile",
                &finished,
                CheckedLeg::Patient,
                leg("completed", Some("60"), end_time),
                CheckFinding::AlreadyEnded,
            ),
            (
                "clinician's leg over, patient never dialled",
                &[],
                CheckedLeg::ClinicianOnly,
                leg("completed", Some("4"), end_time),
                ended(Canceled, ended_at.unwrap_or(0), None),
            ),
            (
                "clinician's leg failed",
                &[],
                CheckedLeg::ClinicianOnly,
                leg("failed", None, None),
                ended(Failed, 5_000, None),
            ),
            (
                "clinician's leg still up",
                &[],
                CheckedLeg::ClinicianOnly,
                leg("in-progress", None, None),
                CheckFinding::StillLive,
            ),
        ];
        for (name, events, checked, twilio, expected) in table {
            let found = check_finding(events, checked, &twilio, 5_000);
            assert_eq!(found, expected, "{name}");
            if let CheckFinding::Ended(closing) = found {
                let mut all = events.to_vec();
                all.push(closing.clone());
                let record = progress(&all).expect("progress");
                assert_eq!(record.status, closing.status, "{name}: the check decides");
                // A real final callback arriving later still outranks the check.
                all.push(event(9, closing.status, closing.timestamp_unix - 1));
                assert_eq!(
                    progress(&all).expect("progress").last_sequence,
                    Some(9),
                    "{name}"
                );
                assert_eq!(
                    progress(&all).expect("progress").ended_at_unix,
                    Some(closing.timestamp_unix - 1),
                    "{name}"
                );
            }
        }
        assert!(ended_at.is_some());
        assert_eq!(TwilioLeg::parse("answered-by-robot", None, None), None);
        assert_eq!(
            TwilioLeg::parse("completed", Some("x"), Some("not a date")),
            Some(TwilioLeg {
                status: Completed,
                duration_seconds: None,
                ended_at_unix: None
            })
        );
    }

    #[test]
    fn a_call_hung_up_before_any_callback_is_closed_and_a_real_callback_still_wins() {
        let closing = closing_event(&[], 1_000).expect("closed");
        let closed = progress(std::slice::from_ref(&closing)).expect("progress");
        assert_eq!(closed.status, CallStatus::Canceled);
        assert_eq!(closed.ended_at_unix, Some(1_000));
        // Any callback received means Twilio reports the end itself.
        assert_eq!(
            closing_event(&[event(1, CallStatus::Ringing, 990)], 1_000),
            None
        );
        // A real final callback arriving after the closing event decides the outcome.
        for real in [
            completed(3, 1_005, 42),
            event(2, CallStatus::NoAnswer, 1_001),
            event(2, CallStatus::Canceled, 999),
        ] {
            let both = progress(&[closing.clone(), real.clone()]).expect("progress");
            assert_eq!(
                (both.status, both.ended_at_unix),
                (real.status, Some(real.timestamp_unix))
            );
        }
    }

    #[test]
    fn a_call_recorded_by_hand_starts_and_is_answered_its_duration_before_it_ended() {
        // (outcome, seconds, started, answered, ended, duration)
        let table = [
            (CallStatus::Completed, 185, 9_815, Some(9_815), 10_000, 185),
            (CallStatus::Completed, 0, 10_000, None, 10_000, 0),
            (CallStatus::NoAnswer, 0, 10_000, None, 10_000, 0),
            (CallStatus::Busy, 0, 10_000, None, 10_000, 0),
            (CallStatus::Failed, 0, 10_000, None, 10_000, 0),
        ];
        for (outcome, seconds, started, answered, ended, duration) in table {
            let events = manual_events(outcome, seconds, 10_000);
            assert!(events.iter().all(|e| e.sequence.is_none()));
            let record = progress(&events).expect("progress");
            assert_eq!(
                (
                    record.status,
                    record.started_at_unix,
                    record.answered_at_unix,
                    record.ended_at_unix,
                    record.duration_seconds
                ),
                (outcome, Some(started), answered, Some(ended), duration),
                "{outcome:?} {seconds} s"
            );
        }
    }

    #[test]
    fn a_late_ringing_never_regresses_a_terminal_status() {
        let t0 = 1_800_000_000;
        let record = progress(&[completed(3, t0 + 40, 30), event(1, Ringing, t0 + 2)]).unwrap();
        assert_eq!(record.status, Completed);
        assert_eq!(record.ended_at_unix, Some(t0 + 40));
        assert_eq!(
            record.timeline,
            vec![(Ringing, t0 + 2), (Completed, t0 + 40)]
        );
    }

    #[test]
    fn the_timeline_lists_each_status_once_in_lifecycle_order() {
        let t0 = 1_800_000_000;
        let events = [
            completed(3, t0 + 40, 30),
            event(0, Initiated, t0),
            event(2, InProgress, t0 + 10),
            event(1, Ringing, t0 + 2),
            event(1, Ringing, t0 + 2),
        ];
        let record = progress(&events).unwrap();
        assert_eq!(
            record.timeline,
            vec![
                (Initiated, t0),
                (Ringing, t0 + 2),
                (InProgress, t0 + 10),
                (Completed, t0 + 40)
            ]
        );
        assert_eq!(record.last_sequence, Some(3));
    }

    /// Found by `any_callbacks_in_any_order_with_repeats_converge`: two different callbacks with
    /// one sequence number (the ledger stores both legs' callbacks under the parent call) kept
    /// whichever arrived first, so the record depended on arrival order.
    #[test]
    fn one_sequence_number_twice_keeps_the_same_event_in_any_order() {
        let t0 = 1_800_000_000;
        let plain = event(3, Ringing, t0);
        let failed = StatusEvent {
            error_code: Some(31005),
            ..event(3, Failed, t0 + 1)
        };
        let one_way = progress(&[plain.clone(), failed.clone()]);
        assert_eq!(progress(&[failed, plain]), one_way);
        assert_eq!(
            one_way.map(|p| (p.status, p.error_code)),
            Some((Failed, Some(31005)))
        );
        let quiet = event(2, Queued, t0);
        let coded = StatusEvent {
            error_code: Some(13214),
            ..quiet.clone()
        };
        assert_eq!(
            progress(&[quiet.clone(), coded.clone()]),
            progress(&[coded, quiet])
        );
    }

    fn lifecycle() -> impl Strategy<Value = Vec<StatusEvent>> {
        let terminal = prop_oneof![
            Just(Completed),
            Just(Busy),
            Just(NoAnswer),
            Just(Failed),
            Just(Canceled)
        ];
        (terminal, 0usize..4, 1u32..600).prop_map(|(end, stop_after, duration)| {
            let t0 = 1_800_000_000;
            let mut events = vec![event(0, Initiated, t0), event(1, Ringing, t0 + 2)];
            if end == Completed {
                events.push(event(2, InProgress, t0 + 5));
                events.push(completed(3, t0 + 5 + i64::from(duration), duration));
            } else {
                events.push(event(2, end, t0 + 20));
            }
            events.truncate(events.len().min(stop_after + 1).max(1));
            events
        })
    }

    /// Any callback: few sequence numbers and times, so that collisions are common.
    fn arbitrary_event() -> impl Strategy<Value = StatusEvent> {
        let status = prop_oneof![
            Just(Queued),
            Just(Initiated),
            Just(Ringing),
            Just(InProgress),
            Just(Completed),
            Just(Busy),
            Just(NoAnswer),
            Just(Failed),
            Just(Canceled)
        ];
        (
            proptest::option::of(0u32..4),
            status,
            0i64..6,
            proptest::option::of(0u32..3),
            proptest::option::of(prop_oneof![Just(13214u32), Just(31005u32)]),
        )
            .prop_map(
                |(sequence, status, at, duration_seconds, error_code)| StatusEvent {
                    sequence,
                    status,
                    timestamp_unix: 1_800_000_000 + at,
                    duration_seconds,
                    error_code,
                },
            )
    }

    /// A deterministic Fisher–Yates shuffle from the seed.
    fn shuffle(events: &mut [StatusEvent], seed: u64) {
        let mut state = seed | 1;
        for i in (1..events.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            events.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }

    proptest! {
        /// Any order of callbacks, each delivered any number of times, converges to the record
        /// of the in-order, once-each delivery.
        #[test]
        fn any_order_and_duplication_converges(
            events in lifecycle(),
            repeats in proptest::collection::vec(0usize..3, 4),
            seed in any::<u64>(),
        ) {
            let expected = progress(&events);
            let mut delivered: Vec<StatusEvent> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                for _ in 0..=repeats[i % repeats.len()] {
                    delivered.push(e.clone());
                }
            }
            // Deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..delivered.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                delivered.swap(i, (state % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(progress(&delivered), expected);
        }

        /// The same with arbitrary callbacks: gaps, missing sequence numbers, both legs of a
        /// call sending the same sequence number with different content, statuses that go
        /// backwards. The record depends on the set of callbacks only, never on their order.
        #[test]
        fn any_callbacks_in_any_order_with_repeats_converge(
            events in proptest::collection::vec(arbitrary_event(), 1..8),
            repeats in proptest::collection::vec(0usize..3, 8),
            seed in any::<u64>(),
        ) {
            let mut delivered: Vec<StatusEvent> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                for _ in 0..=repeats[i] {
                    delivered.push(e.clone());
                }
            }
            let in_order = progress(&delivered);
            shuffle(&mut delivered, seed);
            prop_assert_eq!(progress(&delivered), in_order.clone());
            delivered.reverse();
            prop_assert_eq!(progress(&delivered), in_order);
        }

        /// Once a terminal status is in the set, no other event changes the status.
        #[test]
        fn terminal_is_absorbing(events in lifecycle(), extra_seq in 0u32..10, extra_status in 0usize..4) {
            let record = progress(&events).unwrap();
            prop_assume!(record.status.is_terminal());
            let extra = event(extra_seq, [Queued, Initiated, Ringing, InProgress][extra_status], 1_800_000_001);
            let mut more = events.clone();
            more.push(extra);
            prop_assert_eq!(progress(&more).unwrap().status, record.status);
        }
    }
}
