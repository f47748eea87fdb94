//! Telemetry without patient data: the events the product reports (by construction they carry
//! codes, buckets, the last four digits of our own pool numbers and an anonymised clinician key,
//! never a whole phone number or a name), the masking every log line passes through, the alert
//! rules over rolling windows with their deduplication and "resolved" messages, the Datadog and Slack payloads, and the call
//! statistics behind the admin view. Pure: time is passed in.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::call_state::CallStatus;

/// One thing worth counting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// A call reached a terminal status.
    #[serde(rename_all = "camelCase")]
    CallOutcome {
        status: CallStatus,
        duration_seconds: u32,
        /// The pool number (our caller ID) the call used, if any; once [`Event::sanitized`], only
        /// its last four digits (as Slack alerts name it), so no whole number reaches Datadog.
        pool_number: Option<String>,
        /// [`clinician_key`] of the practitioner.
        clinician_key: Option<String>,
        error_code: Option<u32>,
        direction: String,
    },
    TokenRefused {
        reason: String,
    },
    SignatureRejected {
        route: String,
    },
    PoolExhausted,
    /// A call record's FHIR write failed and will be retried; `call_sid` names the record.
    #[serde(rename_all = "camelCase")]
    OutboxRetry {
        call_sid: String,
        attempt: u32,
        backlog_age_seconds: u64,
    },
    /// Medplum refused a call record (not an outage and not a version conflict: its Appointment
    /// is gone, or Medplum will not accept the write). The record stays in the ledger and is
    /// retried hourly; `reason` is a code (`appointment-missing`, `write-refused`).
    #[serde(rename_all = "camelCase")]
    OutboxRefused {
        call_sid: String,
        reason: String,
    },
    /// A call record reached Medplum after `attempts` tries.
    #[serde(rename_all = "camelCase")]
    OutboxWritten {
        call_sid: String,
        attempts: u32,
    },
    /// The browser offered manual dialing, and why (reported by the browser module).
    ManualFallback {
        reason: String,
    },
}

impl Event {
    /// The event as it may leave the system: every free-text field reduced to a [`code`], the
    /// pool number to its last four digits (and only if E.164-shaped).
    pub fn sanitized(&self) -> Event {
        match self {
            Self::CallOutcome {
                status,
                duration_seconds,
                pool_number,
                clinician_key,
                error_code,
                direction,
            } => Self::CallOutcome {
                status: *status,
                duration_seconds: *duration_seconds,
                pool_number: pool_number.as_deref().map(number_ending),
                clinician_key: clinician_key.as_deref().map(key_or_other),
                error_code: *error_code,
                direction: code(direction),
            },
            Self::TokenRefused { reason } => Self::TokenRefused {
                reason: code(reason),
            },
            Self::SignatureRejected { route } => Self::SignatureRejected { route: code(route) },
            Self::PoolExhausted => Self::PoolExhausted,
            Self::OutboxRetry {
                call_sid,
                attempt,
                backlog_age_seconds,
            } => Self::OutboxRetry {
                call_sid: code_or_sid(call_sid),
                attempt: *attempt,
                backlog_age_seconds: *backlog_age_seconds,
            },
            Self::OutboxRefused { call_sid, reason } => Self::OutboxRefused {
                call_sid: code_or_sid(call_sid),
                reason: code(reason),
            },
            Self::OutboxWritten { call_sid, attempts } => Self::OutboxWritten {
                call_sid: code_or_sid(call_sid),
                attempts: *attempts,
            },
            Self::ManualFallback { reason } => Self::ManualFallback {
                reason: code(reason),
            },
        }
    }
}

/// An event with the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamped {
    pub at_ms: u64,
    pub event: Event,
}

/// A code as it may leave the system: lowercase letters, digits, `-`, `_`, at most 48, and no run
/// of [`PHONE_DIGITS`] digits; anything else becomes `other` (so free text, or a number sent as a
/// "reason", can never smuggle data into a tag).
pub fn code(value: &str) -> String {
    let ok = !value.is_empty()
        && value.len() <= 48
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && value
            .split(|c: char| !c.is_ascii_digit())
            .all(|run| run.len() < PHONE_DIGITS);
    if ok {
        value.to_owned()
    } else {
        "other".to_owned()
    }
}

/// A Twilio SID passes as it is; anything else is reduced to a [`code`].
fn code_or_sid(value: &str) -> String {
    if is_sid(value) {
        value.to_owned()
    } else {
        code(value)
    }
}

/// An anonymised, stable key for a practitioner: the first 12 hex digits of
/// SHA-256(`salt` ":" `practitioner_id`). Operators can tell clinicians apart, not who they are.
pub fn clinician_key(practitioner_id: &str, salt: &str) -> String {
    let digest = Sha256::digest(format!("{salt}:{practitioner_id}").as_bytes());
    digest
        .iter()
        .take(CLINICIAN_KEY_HEX_DIGITS / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A [`clinician_key`] passes as it is (its hex may hold a long run of digits, which [`code`]
/// refuses); anything else is `other`.
fn key_or_other(value: &str) -> String {
    if value.len() == CLINICIAN_KEY_HEX_DIGITS && is_lower_hex(value) {
        value.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Hex digits in a [`clinician_key`].
const CLINICIAN_KEY_HEX_DIGITS: usize = 12;

/// Buckets a duration for tags (the exact duration is the `call.duration_seconds` distribution; the
/// median talk time is computed from stored outcomes, `call_stats`).
pub fn duration_bucket(seconds: u32) -> &'static str {
    match seconds {
        0 => "none",
        1..=59 => "under-1m",
        60..=299 => "1m-5m",
        300..=899 => "5m-15m",
        900..=1_799 => "15m-30m",
        _ => "30m-plus",
    }
}

/// Minimum digits for a run to be treated as a phone number (dates have 8, so they survive).
pub const PHONE_DIGITS: usize = 9;

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '+')
}

/// Digits and `a`–`f` only (a SID's tail, a clinician key).
fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The most instants a window keeps of one kind of event (forged webhooks, exhausted pool): the
/// newest. Anyone can send forged webhooks; without a cap, a flood would grow the stored windows
/// (parsed and saved on every event) past what the object can store. A count this high has
/// alerted long before (`forged_burst` is at most this).
pub const MAX_KEPT_INSTANTS: usize = 10_000;

/// Adds `at_ms` to `instants`, dropping the oldest beyond [`MAX_KEPT_INSTANTS`].
fn keep_instant(instants: &mut Vec<u64>, at_ms: u64) {
    instants.push(at_ms);
    if instants.len() > MAX_KEPT_INSTANTS {
        let excess = instants.len() - MAX_KEPT_INSTANTS;
        instants.drain(..excess);
    }
}

/// A Twilio SID: two capital letters and 32 lowercase hex digits.
fn is_sid(token: &str) -> bool {
    // Split by bytes: a 34-byte token may start with a multi-byte character, where slicing the
    // text at 2 would panic.
    let bytes = token.as_bytes();
    bytes.len() == 34
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Inside a word (e.g. `tel447700900123`), long digit runs are still numbers; SIDs are kept.
fn redact_in_token(token: &str) -> String {
    if is_sid(token) {
        return token.to_owned();
    }
    let mut out = String::with_capacity(token.len());
    let mut run = String::new();
    for c in token.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run.push(c);
            continue;
        }
        if run.len() >= PHONE_DIGITS {
            out.push_str("[number]");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// A character of a JWT's base64url segments or the dots between them.
fn is_jwt_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `Bearer ` as [`credential_end`] compares it, case aside.
const BEARER: [char; 7] = ['b', 'e', 'a', 'r', 'e', 'r', ' '];

/// Where the credential starting at `start` ends, if one does: a JWT (`eyJ…` with at least one
/// dot: access tokens, Medplum's tokens) or the value after `Bearer `.
fn credential_end(chars: &[char], start: usize) -> Option<usize> {
    let rest = &chars[start..];
    let run_end = |from: usize| {
        from + chars[from..]
            .iter()
            .take_while(|c| is_jwt_char(**c) || matches!(c, '+' | '/' | '='))
            .count()
    };
    if rest.starts_with(&['e', 'y', 'J']) {
        let end = start + rest.iter().take_while(|c| is_jwt_char(**c)).count();
        return chars[start..end].contains(&'.').then_some(end);
    }
    let is_bearer = rest.len() > BEARER.len()
        && rest[..BEARER.len()]
            .iter()
            .zip(&BEARER)
            .all(|(c, b)| c.to_ascii_lowercase() == *b);
    if is_bearer {
        let value_end = run_end(start + BEARER.len());
        return (value_end > start + BEARER.len()).then_some(value_end);
    }
    None
}

/// Replaces anything that looks like a phone number (a run of at least [`PHONE_DIGITS`] digits,
/// possibly with `+`, spaces, dashes, dots or brackets between them) with `[number]`, and any
/// credential (a JWT, a `Bearer` value) with `[token]`. Other tokens that start with a letter
/// (Twilio SIDs, words, hashes such as `CA9f…`) are copied untouched.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Only a word starting with `e` (`eyJ…`) or `b` (`Bearer`) can be a credential.
        let may_be_credential =
            matches!(c, 'e' | 'b' | 'B') && (i == 0 || !is_jwt_char(chars[i - 1]));
        if let Some(end) = may_be_credential
            .then(|| credential_end(&chars, i))
            .flatten()
        {
            if c != 'e' {
                // `Bearer ` itself stays: it says what was there.
                out.extend(&chars[i..i + BEARER.len()]);
            }
            out.push_str("[token]");
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let token: String = chars[start..i].iter().collect();
            out.push_str(&redact_in_token(&token));
            continue;
        }
        if c.is_ascii_digit() || c == '+' || c == '(' {
            let mut end = i;
            let mut digits = 0;
            let mut last_digit = None;
            while end < chars.len() && (chars[end].is_ascii_digit() || is_separator(chars[end])) {
                if chars[end].is_ascii_digit() {
                    digits += 1;
                    last_digit = Some(end);
                }
                end += 1;
            }
            if let Some(last) = last_digit {
                // Over-redacting (a long digit run that was not a number) is the safe side.
                if digits >= PHONE_DIGITS {
                    out.push_str("[number]");
                    i = last + 1;
                    continue;
                }
                // Not a number: copy the digits and separators as they are.
                out.extend(&chars[i..=last]);
                i = last + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Thresholds and periods of the alert rules (all configurable in the worker).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertConfig {
    /// Share of failed outcomes (busy, no-answer, failed) that raises an alert.
    pub failure_rate: f64,
    pub window_ms: u64,
    /// Outcomes needed in the window before a rate means anything.
    pub min_samples: u32,
    /// An alert still firing is repeated at most this often.
    pub dedupe_ms: u64,
    /// The oldest unsent FHIR write that is still acceptable.
    pub backlog_limit_seconds: u64,
    /// Forged webhooks within the window that make a burst.
    pub forged_burst: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            failure_rate: 0.5,
            window_ms: 15 * 60_000,
            min_samples: 10,
            dedupe_ms: 60 * 60_000,
            backlog_limit_seconds: 600,
            forged_burst: 20,
        }
    }
}

/// One outcome in the rolling window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeSample {
    pub at_ms: u64,
    pub failed: bool,
    pub pool_number: Option<String>,
}

/// Whether an outcome counts as a failure for the failure-rate rule; `None` when it does not
/// count at all (cancelled by the clinician).
pub fn counts_as_failure(status: CallStatus) -> Option<bool> {
    match status {
        CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed => Some(true),
        CallStatus::Completed => Some(false),
        _ => None,
    }
}

/// What the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Windows {
    pub outcomes: Vec<OutcomeSample>,
    pub forged_at_ms: Vec<u64>,
    pub exhausted_at_ms: Vec<u64>,
    /// Call records waiting to reach Medplum: record (call SID) → since when (ms).
    pub backlog: std::collections::BTreeMap<String, u64>,
    /// Call records Medplum refused: record (call SID) → when it first refused (ms), so that a
    /// record refused hourly leaves the alert a week later. Kept apart from `backlog`, whose alert
    /// points at Medplum's availability.
    #[serde(default)]
    pub refused: std::collections::BTreeMap<String, u64>,
    /// When the ledger last reported on each record in `backlog` or `refused` (ms). The ledger
    /// reports a waiting record at every try (at most 30 s apart, hourly once refused), so a record
    /// not heard of for [`BACKLOG_UNHEARD_MS`] or [`REFUSED_UNHEARD_MS`] has been written and its
    /// "written" report was lost: it leaves the alert instead of holding it for a week. A record
    /// still waiting is brought back, with its true age, by its next report.
    #[serde(default)]
    pub heard: std::collections::BTreeMap<String, u64>,
}

/// How long a record waiting for Medplum may go unreported before it is taken as written (the
/// ledger reports it at each try, at most 30 s apart).
pub const BACKLOG_UNHEARD_MS: u64 = 15 * 60 * 1000;

/// How long a record Medplum refused may go unreported before it is taken as written (the ledger
/// tries it hourly).
pub const REFUSED_UNHEARD_MS: u64 = 3 * 60 * 60 * 1000;

impl Windows {
    /// Takes an event into the windows.
    pub fn record(&mut self, stamped: &Stamped) {
        match &stamped.event {
            Event::CallOutcome {
                status,
                pool_number,
                ..
            } => {
                if let Some(failed) = counts_as_failure(*status) {
                    self.outcomes.push(OutcomeSample {
                        at_ms: stamped.at_ms,
                        failed,
                        pool_number: pool_number.clone(),
                    });
                }
            }
            Event::SignatureRejected { .. } => keep_instant(&mut self.forged_at_ms, stamped.at_ms),
            Event::PoolExhausted => keep_instant(&mut self.exhausted_at_ms, stamped.at_ms),
            Event::OutboxRetry {
                call_sid,
                backlog_age_seconds,
                ..
            } => {
                let since = stamped
                    .at_ms
                    .saturating_sub(backlog_age_seconds.saturating_mul(1_000));
                let entry = self.backlog.entry(call_sid.clone()).or_insert(since);
                *entry = (*entry).min(since);
                self.refused.remove(call_sid);
                self.heard.insert(call_sid.clone(), stamped.at_ms);
            }
            Event::OutboxRefused { call_sid, .. } => {
                self.backlog.remove(call_sid);
                self.refused
                    .entry(call_sid.clone())
                    .or_insert(stamped.at_ms);
                self.heard.insert(call_sid.clone(), stamped.at_ms);
            }
            Event::OutboxWritten { call_sid, .. } => {
                self.backlog.remove(call_sid);
                self.refused.remove(call_sid);
                self.heard.remove(call_sid);
            }
            Event::TokenRefused { .. } | Event::ManualFallback { .. } => {}
        }
    }

    /// Drops what has left the window.
    pub fn prune(&mut self, now_ms: u64, window_ms: u64) {
        let since = now_ms.saturating_sub(window_ms);
        self.outcomes.retain(|o| o.at_ms >= since);
        self.forged_at_ms.retain(|t| *t >= since);
        self.exhausted_at_ms.retain(|t| *t >= since);
        // A record Medplum has refused for a week is set aside by the ledger (kept, tried daily,
        // no longer alerted). A record waiting for Medplum to answer alerts for as long as the
        // ledger keeps reporting it: a week's outage is still an outage.
        let week_ago = now_ms.saturating_sub(7 * 86_400_000);
        self.refused.retain(|_, at| *at >= week_ago);
        // A record no longer reported on was written (its report of that was lost).
        let heard = &self.heard;
        let heard_since = |call_sid: &String, first: u64, silence_ms: u64| {
            heard.get(call_sid).copied().unwrap_or(first) >= now_ms.saturating_sub(silence_ms)
        };
        self.backlog
            .retain(|sid, since| heard_since(sid, *since, BACKLOG_UNHEARD_MS));
        self.refused
            .retain(|sid, at| heard_since(sid, *at, REFUSED_UNHEARD_MS));
        let (backlog, refused) = (&self.backlog, &self.refused);
        self.heard
            .retain(|sid, _| backlog.contains_key(sid) || refused.contains_key(sid));
    }

    /// Seconds the oldest waiting record has waited at `now_ms`.
    pub fn backlog_age_seconds(&self, now_ms: u64) -> u64 {
        self.backlog
            .values()
            .min()
            .map_or(0, |since| now_ms.saturating_sub(*since) / 1_000)
    }
}

/// A condition an operator should hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Condition {
    /// `pool_number` is `None` for the overall rate.
    #[serde(rename_all = "camelCase")]
    FailureRate {
        pool_number: Option<String>,
        failed: u32,
        total: u32,
    },
    PoolExhausted {
        count: u32,
    },
    #[serde(rename_all = "camelCase")]
    OutboxBacklog {
        age_seconds: u64,
    },
    ForgedWebhooks {
        count: u32,
    },
    RecordsRefused {
        count: u32,
    },
}

impl Condition {
    /// What identifies the alert for deduplication.
    pub fn key(&self) -> String {
        match self {
            Self::FailureRate {
                pool_number: None, ..
            } => "failure-rate:overall".into(),
            Self::FailureRate {
                pool_number: Some(number),
                ..
            } => format!("failure-rate:{number}"),
            Self::PoolExhausted { .. } => "pool-exhausted".into(),
            Self::OutboxBacklog { .. } => "outbox-backlog".into(),
            Self::ForgedWebhooks { .. } => "forged-webhooks".into(),
            Self::RecordsRefused { .. } => "records-refused".into(),
        }
    }

    /// The alert's sentence.
    pub fn describe(&self, config: &AlertConfig) -> String {
        let window = if config.window_ms >= 60_000 {
            format!("{} min", config.window_ms / 60_000)
        } else {
            format!("{} s", config.window_ms / 1_000)
        };
        match self {
            Self::FailureRate {
                pool_number,
                failed,
                total,
            } => format!(
                "Call failure rate {}% over the last {window} ({failed} of {total} calls busy, unanswered or failed){}.",
                (u64::from(*failed) * 100) / u64::from((*total).max(1)),
                pool_number
                    .as_deref()
                    .map(|n| format!(" on the pool number ending {}", last_digits(n)))
                    .unwrap_or_default()
            ),
            Self::PoolExhausted { count } => format!(
                "The number pool ran out of free lines {count} time(s) in the last {window}: calls were refused. Add numbers or check for stuck leases."
            ),
            Self::OutboxBacklog { age_seconds } => format!(
                "Call records are waiting to reach Medplum: the oldest for {} min. Check Medplum's availability.",
                age_seconds / 60
            ),
            Self::ForgedWebhooks { count } => format!(
                "{count} webhooks with bad Twilio signatures in the last {window}: someone may be probing the webhooks, or the auth token is out of date."
            ),
            Self::RecordsRefused { count } => format!(
                "Medplum refused {count} call record(s): not an outage, the Appointment is gone or will not accept the write. The records are kept in the call ledger and retried hourly; check the Appointment and Medplum's validation and access policy."
            ),
        }
    }
}

/// The last four digits of a pool number: enough for an operator to tell the practice's own
/// numbers apart (the admin list shows them whole), and no phone number in an alert.
fn last_digits(number: &str) -> &str {
    number.get(number.len().saturating_sub(4)..).unwrap_or("")
}

/// Evaluates every rule over the windows (already pruned to the window) at `now_ms`.
pub fn conditions(windows: &Windows, config: &AlertConfig, now_ms: u64) -> Vec<Condition> {
    let mut out = Vec::new();
    let rate = |samples: &[&OutcomeSample], pool_number: Option<String>| {
        let total = u32::try_from(samples.len()).unwrap_or(u32::MAX);
        let failed = u32::try_from(samples.iter().filter(|s| s.failed).count()).unwrap_or(0);
        (total >= config.min_samples
            && f64::from(failed) / f64::from(total.max(1)) >= config.failure_rate)
            .then_some(Condition::FailureRate {
                pool_number,
                failed,
                total,
            })
    };
    let all: Vec<&OutcomeSample> = windows.outcomes.iter().collect();
    out.extend(rate(&all, None));
    let mut numbers: Vec<&String> = windows
        .outcomes
        .iter()
        .filter_map(|o| o.pool_number.as_ref())
        .collect();
    numbers.sort();
    numbers.dedup();
    for number in numbers {
        let samples: Vec<&OutcomeSample> = windows
            .outcomes
            .iter()
            .filter(|o| o.pool_number.as_ref() == Some(number))
            .collect();
        out.extend(rate(&samples, Some(number.clone())));
    }
    if !windows.exhausted_at_ms.is_empty() {
        out.push(Condition::PoolExhausted {
            count: u32::try_from(windows.exhausted_at_ms.len()).unwrap_or(u32::MAX),
        });
    }
    let backlog = windows.backlog_age_seconds(now_ms);
    if backlog > config.backlog_limit_seconds {
        out.push(Condition::OutboxBacklog {
            age_seconds: backlog,
        });
    }
    let forged = u32::try_from(windows.forged_at_ms.len()).unwrap_or(u32::MAX);
    if forged >= config.forged_burst {
        out.push(Condition::ForgedWebhooks { count: forged });
    }
    if !windows.refused.is_empty() {
        out.push(Condition::RecordsRefused {
            count: u32::try_from(windows.refused.len()).unwrap_or(u32::MAX),
        });
    }
    out
}

/// One alert that is firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    pub key: String,
    pub since_ms: u64,
    pub notified_ms: u64,
    pub text: String,
}

/// A message for Slack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Notification {
    Firing { key: String, text: String },
    StillFiring { key: String, text: String },
    Resolved { key: String, text: String },
}

impl Notification {
    /// The Slack incoming-webhook body.
    pub fn slack_body(&self, environment: &str) -> Value {
        let text = match self {
            Self::Firing { text, .. } => format!(":rotating_light: [{environment}] {text}"),
            Self::StillFiring { text, .. } => format!(":warning: [{environment}] Still: {text}"),
            Self::Resolved { text, .. } => {
                format!(":white_check_mark: [{environment}] Resolved: {text}")
            }
        };
        json!({"text": redact(&text)})
    }
}

/// The alerts firing now; each change of state is one notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBook {
    pub active: Vec<ActiveAlert>,
}

impl AlertBook {
    /// Compares the conditions now with the alerts firing: new ones fire, ones still true are
    /// repeated once per `dedupe_ms`, and ones gone are resolved.
    pub fn step(
        &mut self,
        now: &[Condition],
        config: &AlertConfig,
        now_ms: u64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for condition in now {
            let key = condition.key();
            let text = condition.describe(config);
            match self.active.iter_mut().find(|a| a.key == key) {
                None => {
                    out.push(Notification::Firing {
                        key: key.clone(),
                        text: text.clone(),
                    });
                    self.active.push(ActiveAlert {
                        key,
                        since_ms: now_ms,
                        notified_ms: now_ms,
                        text,
                    });
                }
                Some(alert) => {
                    alert.text = text.clone();
                    if now_ms.saturating_sub(alert.notified_ms) >= config.dedupe_ms {
                        alert.notified_ms = now_ms;
                        out.push(Notification::StillFiring { key, text });
                    }
                }
            }
        }
        let keys: Vec<String> = now.iter().map(Condition::key).collect();
        self.active.retain(|alert| {
            let still = keys.contains(&alert.key);
            if !still {
                out.push(Notification::Resolved {
                    key: alert.key.clone(),
                    text: alert.text.clone(),
                });
            }
            still
        });
        out
    }
}

const METRIC_PREFIX: &str = "clinician_calls";

fn tags(pairs: &[(&str, Option<String>)], environment: &str) -> Vec<String> {
    let mut tags = vec![format!("env:{}", code(environment))];
    for (name, value) in pairs {
        if let Some(value) = value {
            tags.push(format!("{name}:{value}"));
        }
    }
    tags
}

/// One event's metric: name, type (1 count, 3 gauge, [`DISTRIBUTION`]), value and tags.
fn metric(event: &Event, environment: &str) -> Vec<(String, u8, f64, Vec<String>)> {
    let name = |suffix: &str| format!("{METRIC_PREFIX}.{suffix}");
    match event {
        Event::CallOutcome {
            status,
            duration_seconds,
            pool_number,
            clinician_key,
            error_code,
            direction,
        } => {
            let tags = tags(
                &[
                    ("status", Some(status.as_str().to_owned())),
                    (
                        "duration_bucket",
                        Some(duration_bucket(*duration_seconds).to_owned()),
                    ),
                    // Already its last four digits ([`Event::sanitized`]).
                    ("pool_number_ending", pool_number.as_deref().map(code)),
                    ("clinician", clinician_key.as_deref().map(key_or_other)),
                    ("error_code", error_code.map(|c| c.to_string())),
                    ("direction", Some(code(direction))),
                ],
                environment,
            );
            vec![
                (name("call.outcome"), 1, 1.0, tags.clone()),
                (
                    name("call.duration_seconds"),
                    DISTRIBUTION,
                    f64::from(*duration_seconds),
                    tags,
                ),
            ]
        }
        Event::TokenRefused { reason } => vec![(
            name("token.refused"),
            1,
            1.0,
            tags(&[("reason", Some(code(reason)))], environment),
        )],
        Event::SignatureRejected { route } => vec![(
            name("webhook.signature_rejected"),
            1,
            1.0,
            tags(&[("route", Some(code(route)))], environment),
        )],
        Event::PoolExhausted => vec![(name("pool.exhausted"), 1, 1.0, tags(&[], environment))],
        Event::OutboxWritten { attempts, .. } => vec![(
            name("outbox.written"),
            1,
            1.0,
            tags(
                &[("attempts", Some(attempts.min(&99).to_string()))],
                environment,
            ),
        )],
        Event::OutboxRetry {
            attempt,
            backlog_age_seconds,
            ..
        } => vec![
            (
                name("outbox.retry"),
                1,
                1.0,
                tags(
                    &[("attempt", Some(attempt.min(&99).to_string()))],
                    environment,
                ),
            ),
            (
                name("outbox.backlog_age_seconds"),
                3,
                *backlog_age_seconds as f64,
                tags(&[], environment),
            ),
        ],
        Event::OutboxRefused { reason, .. } => vec![(
            name("outbox.refused"),
            1,
            1.0,
            tags(&[("reason", Some(code(reason)))], environment),
        )],
        Event::ManualFallback { reason } => vec![(
            name("manual_fallback"),
            1,
            1.0,
            tags(&[("reason", Some(code(reason)))], environment),
        )],
    }
}

/// A pool number as Datadog gets it: its last four digits, as alerts name it (operators find it
/// in the pool by them); anything not E.164-shaped is `other`.
fn number_ending(number: &str) -> String {
    let e164 = number.len() >= 8
        && number.len() <= 16
        && number.starts_with('+')
        && number[1..].bytes().all(|b| b.is_ascii_digit());
    if e164 {
        last_digits(number).to_owned()
    } else {
        "other".to_owned()
    }
}

/// The Datadog v2 series body for a batch of events (one point per event, 1-second resolution).
///
/// Datadog keeps one value per series and second, the last one written: events of one series in
/// the same second (records retried by one alarm, a burst of forged webhooks) are summed here into
/// one point for counts, and give their largest value for gauges, instead of overwriting each
/// other at the intake.
pub fn datadog_series(events: &[Stamped], environment: &str) -> Value {
    // (metric, type, tags, second) → value, in the order first seen.
    type SeriesSecond = (String, u8, Vec<String>, u64);
    let mut points: Vec<(SeriesSecond, f64)> = Vec::new();
    let mut index: std::collections::BTreeMap<SeriesSecond, usize> = Default::default();
    for stamped in events {
        let second = stamped.at_ms / 1_000;
        for (metric, kind, value, tags) in metric(&stamped.event.sanitized(), environment) {
            if kind == DISTRIBUTION {
                continue;
            }
            let key = (metric, kind, tags, second);
            match index.get(&key).and_then(|at| points.get_mut(*at)) {
                Some((_, total)) if kind == DATADOG_COUNT => *total += value,
                Some((_, largest)) => *largest = largest.max(value),
                None => {
                    index.insert(key.clone(), points.len());
                    points.push((key, value));
                }
            }
        }
    }
    let series: Vec<Value> = points
        .into_iter()
        .map(|((metric, kind, tags, second), value)| {
            json!({
                "metric": metric,
                "type": kind,
                "points": [{"timestamp": second, "value": value}],
                "tags": tags,
            })
        })
        .collect();
    json!({"series": series})
}

/// Datadog's series type for a count (1; a gauge is 3).
const DATADOG_COUNT: u8 = 1;

/// Not a series type: a value Datadog is to keep whole, among others of its second, as a
/// distribution ([`datadog_distributions`]), so that percentiles of call durations are exact.
const DISTRIBUTION: u8 = 0;

/// The Datadog distribution-points body (`/api/v1/distribution_points`) for a batch of events:
/// every value of a series in one second is kept (a gauge would keep one of them), so two calls
/// ending in the same second both count in the duration percentiles. `None` when the batch holds
/// none.
pub fn datadog_distributions(events: &[Stamped], environment: &str) -> Option<Value> {
    type SeriesSecond = (String, Vec<String>, u64);
    let mut points: Vec<(SeriesSecond, Vec<f64>)> = Vec::new();
    for stamped in events {
        let second = stamped.at_ms / 1_000;
        for (metric, kind, value, tags) in metric(&stamped.event.sanitized(), environment) {
            if kind != DISTRIBUTION {
                continue;
            }
            let key = (metric, tags, second);
            match points.iter_mut().find(|(seen, _)| *seen == key) {
                Some((_, values)) => values.push(value),
                None => points.push((key, vec![value])),
            }
        }
    }
    if points.is_empty() {
        return None;
    }
    let series: Vec<Value> = points
        .into_iter()
        .map(|((metric, tags, second), values)| {
            json!({
                "metric": metric,
                "type": "distribution",
                "points": [[second, values]],
                "tags": tags,
            })
        })
        .collect();
    Some(json!({"series": series}))
}

/// The Datadog logs-intake body for a batch of events: one structured, redacted log per event.
pub fn datadog_logs(events: &[Stamped], environment: &str, service: &str) -> Value {
    let logs: Vec<Value> = events
        .iter()
        .map(|stamped| {
            // Every field is a code, a SID, a key, a number or four digits ([`Event::sanitized`]).
            let attributes =
                serde_json::to_value(stamped.event.sanitized()).unwrap_or(Value::Null);
            let kind = attributes
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("event")
                .to_owned();
            json!({
                "ddsource": "cloudflare-worker",
                "ddtags": format!("env:{}", code(environment)),
                "service": service,
                "hostname": service,
                "status": if matches!(stamped.event, Event::SignatureRejected { .. } | Event::PoolExhausted) { "warn" } else { "info" },
                "message": redact(&format!("{kind} {attributes}")),
                "timestamp": stamped.at_ms,
                "event": attributes,
            })
        })
        .collect();
    Value::Array(logs)
}

/// One finished call, kept for the statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeRecord {
    pub at_unix: i64,
    pub status: CallStatus,
    pub duration_seconds: u32,
    pub pool_number: Option<String>,
}

fn median(mut values: Vec<u32>) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        // In u64: two durations near u32::MAX would overflow their sum.
        ((u64::from(values[mid - 1]) + u64::from(values[mid])) / 2) as u32
    } else {
        values[mid]
    })
}

fn summary(records: &[&OutcomeRecord]) -> Value {
    let total = records.len();
    let answered = records
        .iter()
        .filter(|r| r.status == CallStatus::Completed)
        .count();
    let mut outcomes = serde_json::Map::new();
    for record in records {
        let entry = outcomes
            .entry(record.status.as_str().to_owned())
            .or_insert(json!(0));
        *entry = json!(entry.as_u64().unwrap_or(0) + 1);
    }
    json!({
        "calls": total,
        "answered": answered,
        "answerRate": if total == 0 { Value::Null } else { json!((answered as f64 / total as f64 * 1000.0).round() / 1000.0) },
        "outcomes": outcomes,
        "medianDurationSeconds": median(records.iter().filter(|r| r.status == CallStatus::Completed).map(|r| r.duration_seconds).collect()),
    })
}

/// Answer rate, outcome counts and median talk time, overall, per pool number and per UTC day.
pub fn call_stats(records: &[OutcomeRecord]) -> Value {
    let all: Vec<&OutcomeRecord> = records.iter().collect();
    let mut numbers: Vec<String> = records
        .iter()
        .map(|r| r.pool_number.clone().unwrap_or_else(|| "none".into()))
        .collect();
    numbers.sort();
    numbers.dedup();
    let per_number: Vec<Value> = numbers
        .iter()
        .map(|number| {
            let of: Vec<&OutcomeRecord> = records
                .iter()
                .filter(|r| r.pool_number.as_deref().unwrap_or("none") == number)
                .collect();
            let mut s = summary(&of);
            s["poolNumber"] = json!(number);
            s
        })
        .collect();
    let day = |r: &OutcomeRecord| {
        crate::time::rfc3339_utc(r.at_unix)
            .get(..10)
            .unwrap_or("")
            .to_owned()
    };
    let mut days: Vec<String> = records.iter().map(day).collect();
    days.sort();
    days.dedup();
    let per_day: Vec<Value> = days
        .iter()
        .map(|d| {
            let of: Vec<&OutcomeRecord> = records.iter().filter(|r| day(r) == *d).collect();
            let mut s = summary(&of);
            s["date"] = json!(d);
            s
        })
        .collect();
    json!({"overall": summary(&all), "perNumber": per_number, "perDay": per_day})
}

#[cfg(test)]
mod tests;
