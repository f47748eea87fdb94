//! `CallLedger` Durable Object, one per appointment: the authoritative call records of that
//! appointment, and the outboxes that carry them to Medplum (and pending hangups to Twilio).
//!
//! Operations (JSON over the stub's fetch):
//! - `POST /attempt`: the voice webhook records a call attempt (placed or refused) before
//!   answering Twilio; idempotent on the parent CallSid.
//! - `POST /callback`: a status event; stored once per (call, SequenceNumber), the record is then
//!   derived from the set of events (`shared::call_state`), so repeats and reordering converge.
//! - `POST /end`: who ended the call, and whether a Twilio hangup is still owed.
//! - `POST /manual`: the outcome of a call the clinician dialled by hand.
//! - `GET /calls`: the records, newest first.
//! - `GET /events`: Server-Sent Events: a `snapshot` of the records, then one `call` event per
//!   change (placed, ringing at the patient, answered, busy, no answer, ended…), so the call
//!   panel shows progress as it happens.
//!
//! Every change that alters a record queues it in `ledger_fhir_outbox`; the alarm writes it to
//! the Appointment (JSON Patch guarded by the version) and retries with backoff while Medplum is
//! down, so no record is lost and none is written twice.
//!
//! A placed call that goes quiet (no callback for `CALL_CHECK_SECONDS`) gets a check in
//! `ledger_checks`: the alarm asks Twilio's REST API how the call stands, and ends the record if
//! Twilio says it has ended (its final callback was lost), so no call stays "live" for good.

use std::cell::RefCell;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::call_state::{
    check_finding, closing_event, manual_events, progress, CallProgress, CallStatus, CheckFinding,
    CheckedLeg, EndedBy, StatusEvent,
};
use shared::fhir::{
    call_extension, extension_patch, upsert_call_extension, CallDirection, CallRecordFields,
};
use shared::ids::{CallSid, PractitionerId};
use shared::telemetry::{Event, Stamped};
use shared::time::rfc3339_utc;
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use crate::config::Config;
use crate::medplum::{MedplumError, UpdateOutcome};

const TABLES: [&str; 9] = [
    "ledger_attempts",
    "ledger_events",
    "ledger_fhir_outbox",
    "ledger_twilio_outbox",
    "ledger_checks",
    "ledger_pool_releases",
    "ledger_fhir_waiting",
    "ledger_unresolved",
    "ledger_client_ids",
];
const SCHEMA: [&str; 9] = [
    "CREATE TABLE IF NOT EXISTS ledger_attempts (
        parent_sid TEXT PRIMARY KEY, child_sid TEXT, appointment_id TEXT NOT NULL,
        practitioner TEXT, direction TEXT NOT NULL, caller_id TEXT, patient_masked TEXT,
        refused_code TEXT, ended_by TEXT, created_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_events (
        parent_sid TEXT NOT NULL, dedupe TEXT NOT NULL, event_json TEXT NOT NULL,
        PRIMARY KEY (parent_sid, dedupe))",
    "CREATE TABLE IF NOT EXISTS ledger_fhir_outbox (
        parent_sid TEXT PRIMARY KEY, revision INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL, last_error TEXT)",
    "CREATE TABLE IF NOT EXISTS ledger_twilio_outbox (
        parent_sid TEXT PRIMARY KEY, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL, last_error TEXT)",
    "CREATE TABLE IF NOT EXISTS ledger_checks (
        parent_sid TEXT PRIMARY KEY, next_check_ms INTEGER NOT NULL,
        checks INTEGER NOT NULL DEFAULT 0)",
    // Lines to give back to the number pool, for ended calls whose release failed.
    "CREATE TABLE IF NOT EXISTS ledger_pool_releases (
        parent_sid TEXT PRIMARY KEY, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL)",
    // Since when a record has had a change not yet in Medplum (the backlog's age: not the
    // call's, which may have lasted an hour before its last write failed).
    "CREATE TABLE IF NOT EXISTS ledger_fhir_waiting (
        parent_sid TEXT PRIMARY KEY, since_ms INTEGER NOT NULL)",
    // Calls whose end the worker could not learn (Twilio knows no such call, or refused to say
    // for a day): no longer live, with their last known status and this reason. A final
    // callback that still arrives outranks it.
    "CREATE TABLE IF NOT EXISTS ledger_unresolved (
        parent_sid TEXT PRIMARY KEY, reason TEXT NOT NULL, at_ms INTEGER NOT NULL)",
    // The browser's own id for a call it placed (`TJS…`): the page that placed the call knows
    // its record by this, and no other call's. (A table of its own: no migration.)
    "CREATE TABLE IF NOT EXISTS ledger_client_ids (
        parent_sid TEXT PRIMARY KEY, client_call_id TEXT NOT NULL)",
];
/// Attempts with their browser's ids (followed by a `WHERE` or `ORDER BY` on `a.`).
const ATTEMPTS_WITH_CLIENT_IDS: &str = "SELECT a.*, c.client_call_id FROM ledger_attempts a
    LEFT JOIN ledger_client_ids c ON c.parent_sid = a.parent_sid";

/// Checks Twilio refused (4xx) before the ledger stops asking about a call: about a day, at
/// most hourly.
const CHECKS_REFUSED_LIMIT: i64 = 30;

/// Releases tried again (at [`backoff_ms`], at most 30 s apart) for about as long as a lease
/// lasts by default (4 h), after which the lease has expired anyway.
const RELEASE_ATTEMPTS: i64 = 480;

/// A call Twilio says is still going is asked about again after `check_ms` doubled per check
/// made, at most hourly (Twilio ends any call after 4 h by default).
pub fn next_check_delay_ms(check_ms: i64, checks: i64) -> i64 {
    let doublings = u32::try_from(checks.clamp(0, 12)).unwrap_or(12);
    check_ms
        .max(0)
        .saturating_mul(2_i64.pow(doublings))
        .min(3_600_000)
        .max(check_ms.max(0))
}

/// A refused record is tried again this much later (or at once when it changes): hourly, so a
/// mended Appointment or policy is picked up without pressing on a Medplum that said no.
const REFUSED_RETRY_MS: i64 = 3_600_000;
/// How long after a confirmed hang-up the status check asks about a leg no callback named.
const CHECK_AFTER_HANGUP_MS: i64 = 3_000;
/// A record Medplum has refused for this long (its Appointment deleted on purpose, say) is set
/// aside: kept in the ledger, pending, no longer alerted, and tried daily (at once when it
/// changes), so that a restored Appointment still gets it.
const REFUSED_SET_ASIDE_AFTER_MS: i64 = 7 * 86_400_000;
const REFUSED_SET_ASIDE_MS: i64 = 86_400_000;
const REFUSED_APPOINTMENT_MISSING: &str = "appointment-missing";
const REFUSED_WRITE: &str = "write-refused";

/// Why a record did not reach its Appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriteFailure {
    /// Try again soon, with backoff: Medplum unreachable or busy, our credentials refused (401
    /// with a fresh token), or the Appointment kept changing under us.
    Retry(String),
    /// Medplum will not take the record as things stand (a code: the Appointment is gone, or
    /// the write itself is refused). It stays in the ledger and is tried again hourly.
    Refused(&'static str),
}

impl WriteFailure {
    fn of(error: &MedplumError) -> Self {
        match error {
            // A 4xx about this request, except those that mean "later" or "sign in again".
            MedplumError::Rejected(status) if !matches!(status, 401 | 408 | 425 | 429) => {
                Self::Refused(REFUSED_WRITE)
            }
            other => Self::Retry(format!("{other:?}")),
        }
    }
}

/// Retry delay after `attempts` failures: 2 s doubling, at most 30 s.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    (2_000_i64 * 2_i64.pow(exponent)).min(30_000)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct AttemptRow {
    parent_sid: String,
    child_sid: Option<String>,
    appointment_id: String,
    practitioner: Option<String>,
    direction: String,
    caller_id: Option<String>,
    patient_masked: Option<String>,
    refused_code: Option<String>,
    ended_by: Option<String>,
    created_ms: i64,
    #[serde(default)]
    client_call_id: Option<String>,
}

#[derive(Deserialize)]
struct EventRow {
    event_json: String,
}

#[derive(Deserialize)]
struct OutboxRow {
    parent_sid: String,
    revision: i64,
    attempts: i64,
}

#[derive(Deserialize)]
struct CheckRow {
    parent_sid: String,
    checks: i64,
}

#[derive(Deserialize)]
struct CountRow {
    count: i64,
}

#[derive(Deserialize)]
struct WaitingRow {
    since_ms: i64,
}

/// A queued retry (a hang-up in `ledger_twilio_outbox`, a release in `ledger_pool_releases`).
#[derive(Deserialize)]
struct RetryRow {
    parent_sid: String,
    attempts: i64,
}

/// The ledger's two queues of tries at [`backoff_ms`]: the same table shape, the same handling.
#[derive(Clone, Copy)]
enum RetryQueue {
    /// Hang-ups Twilio's REST API has not confirmed.
    Hangups,
    /// Lines the number pool has not confirmed as given back.
    PoolReleases,
}

impl RetryQueue {
    fn table(self) -> &'static str {
        match self {
            Self::Hangups => "ledger_twilio_outbox",
            Self::PoolReleases => "ledger_pool_releases",
        }
    }
}

#[derive(Deserialize)]
struct NextRow {
    next: Option<i64>,
}

#[derive(Deserialize)]
struct ReasonRow {
    reason: String,
}

/// `POST /attempt`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptBody {
    pub parent_sid: String,
    pub appointment_id: String,
    pub practitioner: Option<String>,
    pub direction: String,
    pub caller_id: Option<String>,
    pub patient_masked: Option<String>,
    pub refused_code: Option<String>,
    /// The browser's id for the call (`TJS…`), when the voice request carried one.
    #[serde(default)]
    pub client_call_id: Option<String>,
}

/// `POST /callback`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    pub appointment_id: String,
    pub call_sid: String,
    pub parent_sid: Option<String>,
    pub event: StatusEvent,
    /// Names an event that happens once per call leg whatever its timestamp (the Dial action,
    /// stamped on arrival): a retried request is then stored once, not again with a later time.
    #[serde(default)]
    pub once: Option<String>,
    /// `inbound` for a call-back's legs (from the signed callback URL): the direction of a
    /// placeholder attempt created for a callback that arrives before the call's own record.
    #[serde(default)]
    pub direction: Option<String>,
}

/// `POST /end`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndBody {
    pub parent_sid: String,
    pub ended_by: EndedBy,
    /// Twilio's REST hangup failed: retry it from the alarm. Otherwise it succeeded: the call is
    /// over (closed here if no callback ever came).
    pub hangup_pending: bool,
}

/// `POST /manual`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualBody {
    pub appointment_id: String,
    pub practitioner: String,
    pub outcome: CallStatus,
    pub duration_seconds: u32,
    pub at_unix: i64,
    /// The browser's key for the outcome (checked by the worker): the record is
    /// `manual-key-{key}`, stored once however often it is sent.
    #[serde(default)]
    pub key: Option<String>,
}

fn ended_by_code(ended_by: EndedBy) -> &'static str {
    match ended_by {
        EndedBy::Clinician => "clinician",
        EndedBy::Patient => "patient",
        EndedBy::System => "system",
    }
}

fn parse_ended_by(code: &str) -> Option<EndedBy> {
    match code {
        "clinician" => Some(EndedBy::Clinician),
        "patient" => Some(EndedBy::Patient),
        "system" => Some(EndedBy::System),
        _ => None,
    }
}

fn direction_of(code: &str) -> CallDirection {
    match code {
        "inbound" => CallDirection::Inbound,
        "manual" => CallDirection::Manual,
        _ => CallDirection::OutboundBrowser,
    }
}

fn opt(value: &Option<String>) -> SqlStorageValue {
    value
        .clone()
        .map_or(SqlStorageValue::Null, SqlStorageValue::from)
}

/// Why the call's end is unknown (`ledger_unresolved`), unless a final status came after all.
fn still_unresolved<'a>(
    unresolved: Option<&'a str>,
    derived: Option<&CallProgress>,
) -> Option<&'a str> {
    unresolved.filter(|_| !derived.is_some_and(|p| p.status.is_terminal()))
}

/// What is known of one attempt's progress, the same for the API and for its Appointment.
/// Nothing heard from Twilio: an attempt whose end could not be learned was placed (it may have
/// reached the patient), so its progress is the last status known, initiated, from when it was
/// placed; a refused attempt never reached the phone network, and a placed one not yet heard of
/// has no progress yet.
fn attempt_progress(
    attempt: &AttemptRow,
    events: &[StatusEvent],
    unresolved: Option<&str>,
) -> Option<CallProgress> {
    progress(events).or_else(|| {
        (attempt.refused_code.is_none() && unresolved.is_some()).then(|| CallProgress {
            status: CallStatus::Initiated,
            started_at_unix: Some(attempt.created_ms / 1000),
            answered_at_unix: None,
            ended_at_unix: None,
            duration_seconds: 0,
            last_sequence: None,
            error_code: None,
            timeline: Vec::new(),
        })
    })
}

/// The record of one attempt as the API shows it. `unresolved`: why its end could not be
/// learned, if so: unless a final status came after all, the record is then over, with status
/// `unknown`.
fn record_json(
    attempt: &AttemptRow,
    events: &[StatusEvent],
    fhir_pending: bool,
    unresolved: Option<&str>,
) -> Value {
    let derived = attempt_progress(attempt, events, unresolved);
    let ended = derived.as_ref().is_some_and(|p| p.status.is_terminal());
    let unresolved =
        still_unresolved(unresolved, derived.as_ref()).filter(|_| attempt.refused_code.is_none());
    let status = match (&attempt.refused_code, &derived) {
        (Some(_), None) => "refused".to_owned(),
        _ if unresolved.is_some() => "unknown".to_owned(),
        (_, Some(p)) => p.status.as_str().to_owned(),
        (None, None) => "initiated".to_owned(),
    };
    json!({
        "callSid": attempt.child_sid.as_deref().unwrap_or(&attempt.parent_sid),
        "parentCallSid": attempt.parent_sid,
        "clientCallId": attempt.client_call_id,
        "appointmentId": attempt.appointment_id,
        "status": status,
        "terminal": ended || attempt.refused_code.is_some() || unresolved.is_some(),
        "outcomeUnknown": unresolved,
        "direction": attempt.direction,
        "practitioner": attempt.practitioner,
        "callerId": attempt.caller_id,
        "patientNumberMasked": attempt.patient_masked,
        "refusedCode": attempt.refused_code,
        "endedBy": attempt.ended_by,
        "durationSeconds": derived.as_ref().map_or(0, |p| p.duration_seconds),
        "startedAt": derived.as_ref().and_then(|p| p.started_at_unix).map(rfc3339_utc),
        "answeredAt": derived.as_ref().and_then(|p| p.answered_at_unix).map(rfc3339_utc),
        "endedAt": derived.as_ref().and_then(|p| p.ended_at_unix).map(rfc3339_utc),
        "errorCode": derived.as_ref().and_then(|p| p.error_code),
        "timeline": derived.as_ref().map_or(Vec::new(), |p| p.timeline.iter().map(|(s, at)| json!({"status": s.as_str(), "at": rfc3339_utc(*at)})).collect()),
        "createdAt": rfc3339_utc(attempt.created_ms / 1000),
        "fhirPending": fhir_pending,
    })
}

#[durable_object]
pub struct CallLedger {
    state: State,
    env: Env,
    schema: Result<()>,
    /// Open event streams; a closed one is dropped at the next broadcast.
    subscribers: RefCell<Vec<UnboundedSender<String>>>,
    /// CALL_CHECK_SECONDS, read once per object: how long a live call may stay silent before
    /// Twilio is asked how it stands.
    check_ms: i64,
}

/// One Server-Sent Events frame.
pub fn sse_frame(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

impl CallLedger {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn attempt(&self, parent_sid: &str) -> Result<Option<AttemptRow>> {
        let rows: Vec<AttemptRow> = self
            .sql()
            .exec(
                &format!("{ATTEMPTS_WITH_CLIENT_IDS} WHERE a.parent_sid = ?"),
                vec![parent_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    /// The attempt a callback belongs to: by its parent, or by its own sid as child or parent.
    fn attempt_for(&self, call_sid: &str, parent_sid: Option<&str>) -> Result<Option<AttemptRow>> {
        if let Some(parent) = parent_sid {
            if let Some(found) = self.attempt(parent)? {
                return Ok(Some(found));
            }
        }
        let rows: Vec<AttemptRow> = self
            .sql()
            .exec(
                &format!("{ATTEMPTS_WITH_CLIENT_IDS} WHERE a.parent_sid = ? OR a.child_sid = ?"),
                vec![call_sid.to_owned().into(), call_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    fn events(&self, parent_sid: &str) -> Result<Vec<StatusEvent>> {
        let rows: Vec<EventRow> = self
            .sql()
            .exec(
                "SELECT event_json FROM ledger_events WHERE parent_sid = ?",
                vec![parent_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(&r.event_json).ok())
            .collect())
    }

    fn fhir_pending(&self, parent_sid: &str) -> Result<bool> {
        let rows: Vec<NextRow> = self
            .sql()
            .exec(
                "SELECT next_attempt_ms AS next FROM ledger_fhir_outbox WHERE parent_sid = ?",
                vec![parent_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(!rows.is_empty())
    }

    /// Why the call's end could not be learned, if it could not.
    fn unresolved(&self, parent_sid: &str) -> Result<Option<String>> {
        let rows: Vec<ReasonRow> = self
            .sql()
            .exec(
                "SELECT reason FROM ledger_unresolved WHERE parent_sid = ?",
                vec![parent_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| row.reason))
    }

    /// Gives up learning how the call ended (`reason`, a code): the check stops, the line goes
    /// back, and the record is no longer live, in the ledger and on the Appointment.
    async fn give_up_on(&self, parent_sid: &str, reason: &str, now_ms: i64) -> Result<()> {
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_unresolved (parent_sid, reason, at_ms) VALUES (?, ?, ?)",
            vec![parent_sid.to_owned().into(), reason.into(), now_ms.into()],
        )?;
        self.drop_check(parent_sid)?;
        self.release_number(parent_sid, now_ms).await?;
        self.publish(parent_sid, now_ms).await?;
        crate::log::event("call_outcome_unknown", &[("reason", reason)]);
        Ok(())
    }

    /// Sends a changed record to every open event stream.
    fn broadcast(&self, record: &Value) {
        let frame = sse_frame("call", record);
        self.subscribers
            .borrow_mut()
            .retain(|subscriber| subscriber.unbounded_send(frame.clone()).is_ok());
    }

    fn records(&self) -> Result<Vec<Value>> {
        let attempts: Vec<AttemptRow> = self
            .sql()
            .exec(
                &format!(
                    "{ATTEMPTS_WITH_CLIENT_IDS} ORDER BY a.created_ms DESC, a.parent_sid DESC"
                ),
                None,
            )?
            .to_array()?;
        let mut calls = Vec::with_capacity(attempts.len());
        for attempt in &attempts {
            calls.push(record_json(
                attempt,
                &self.events(&attempt.parent_sid)?,
                self.fhir_pending(&attempt.parent_sid)?,
                self.unresolved(&attempt.parent_sid)?.as_deref(),
            ));
        }
        Ok(calls)
    }

    /// Opens an event stream: the current records first, then every change, and a keep-alive
    /// every [`shared::sse::KEEP_ALIVE_MS`] (which ends when the reader has gone).
    fn subscribe(&self) -> Result<Response> {
        let (sender, receiver) = unbounded::<String>();
        let snapshot = sse_frame("snapshot", &json!({"calls": self.records()?}));
        sender
            .unbounded_send(snapshot)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let keep_alive = sender.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let alive = sse_frame(shared::sse::KEEP_ALIVE_EVENT, &json!({}));
            loop {
                worker::Delay::from(Duration::from_millis(shared::sse::KEEP_ALIVE_MS)).await;
                if keep_alive.unbounded_send(alive.clone()).is_err() {
                    break;
                }
            }
        });
        let mut subscribers = self.subscribers.borrow_mut();
        // Readers that went away while nothing changed are let go here too.
        subscribers.retain(|subscriber| !subscriber.is_closed());
        subscribers.push(sender);
        drop(subscribers);
        let stream = receiver.map(|frame| Ok::<Vec<u8>, worker::Error>(frame.into_bytes()));
        let mut response = Response::from_stream(stream)?;
        response
            .headers_mut()
            .set("content-type", "text/event-stream; charset=utf-8")?;
        response.headers_mut().set("cache-control", "no-store")?;
        Ok(response)
    }

    fn record(&self, parent_sid: &str) -> Result<Value> {
        match self.attempt(parent_sid)? {
            Some(attempt) => Ok(record_json(
                &attempt,
                &self.events(parent_sid)?,
                self.fhir_pending(parent_sid)?,
                self.unresolved(parent_sid)?.as_deref(),
            )),
            None => Ok(Value::Null),
        }
    }

    /// Queues the attempt's record for Medplum (a newer revision supersedes an older one) and
    /// makes sure the alarm will run.
    async fn enqueue_fhir(&self, parent_sid: &str, now_ms: i64) -> Result<()> {
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_fhir_waiting (parent_sid, since_ms) VALUES (?, ?)",
            vec![parent_sid.to_owned().into(), now_ms.into()],
        )?;
        self.sql().exec(
            "INSERT INTO ledger_fhir_outbox (parent_sid, revision, attempts, next_attempt_ms) VALUES (?, 1, 0, ?)
             ON CONFLICT(parent_sid) DO UPDATE SET revision = revision + 1, next_attempt_ms = MIN(next_attempt_ms, excluded.next_attempt_ms)",
            vec![parent_sid.to_owned().into(), now_ms.into()],
        )?;
        self.state.storage().set_alarm(0_i64).await
    }

    async fn add_attempt(&self, body: AttemptBody, now_ms: i64) -> Result<Response> {
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_attempts (parent_sid, appointment_id, practitioner, direction, caller_id, patient_masked, refused_code, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                body.parent_sid.clone().into(),
                body.appointment_id.into(),
                opt(&body.practitioner),
                body.direction.into(),
                opt(&body.caller_id),
                opt(&body.patient_masked),
                opt(&body.refused_code),
                now_ms.into(),
            ],
        )?;
        if let Some(client_call_id) = &body.client_call_id {
            self.sql().exec(
                "INSERT OR IGNORE INTO ledger_client_ids (parent_sid, client_call_id) VALUES (?, ?)",
                vec![body.parent_sid.clone().into(), client_call_id.clone().into()],
            )?;
        }
        if body.refused_code.is_none() {
            self.schedule_check(&body.parent_sid, now_ms + self.check_ms)?;
            self.reschedule(now_ms).await?;
        }
        let record = self.record(&body.parent_sid)?;
        self.broadcast(&record);
        Response::from_json(&json!({"record": record}))
    }

    async fn add_callback(&self, body: CallbackBody, now_ms: i64) -> Result<Response> {
        let attempt = match self.attempt_for(&body.call_sid, body.parent_sid.as_deref())? {
            Some(attempt) => attempt,
            None => {
                // A callback for a call this ledger never saw start (e.g. the attempt write was
                // lost with a crashed isolate): keep it rather than drop it.
                let parent = body
                    .parent_sid
                    .clone()
                    .unwrap_or_else(|| body.call_sid.clone());
                let direction = match body.direction.as_deref() {
                    Some("inbound") => "inbound",
                    _ => "outbound-browser",
                };
                self.sql().exec(
                    "INSERT OR IGNORE INTO ledger_attempts (parent_sid, appointment_id, direction, created_ms) VALUES (?, ?, ?, ?)",
                    vec![parent.clone().into(), body.appointment_id.clone().into(), direction.into(), now_ms.into()],
                )?;
                self.attempt(&parent)?
                    .ok_or_else(|| worker::Error::RustError("attempt vanished".into()))?
            }
        };
        if attempt.child_sid.is_none() && body.call_sid != attempt.parent_sid {
            self.sql().exec(
                "UPDATE ledger_attempts SET child_sid = ? WHERE parent_sid = ? AND child_sid IS NULL",
                vec![body.call_sid.clone().into(), attempt.parent_sid.clone().into()],
            )?;
        }
        let before = progress(&self.events(&attempt.parent_sid)?);
        let dedupe = match (&body.once, body.event.sequence) {
            (Some(once), _) => format!("{}@{once}", body.call_sid),
            (None, Some(sequence)) => format!("{}#{sequence}", body.call_sid),
            (None, None) => format!(
                "{}@{}:{}",
                body.call_sid,
                body.event.status.as_str(),
                body.event.timestamp_unix
            ),
        };
        self.insert_event(&attempt.parent_sid, &dedupe, &body.event)?;
        let after = progress(&self.events(&attempt.parent_sid)?);
        let changed = before != after;
        if changed {
            self.enqueue_fhir(&attempt.parent_sid, now_ms).await?;
        }
        let terminal_now = after.as_ref().is_some_and(|p| p.status.is_terminal());
        let was_terminal = before.as_ref().is_some_and(|p| p.status.is_terminal());
        if terminal_now {
            self.drop_check(&attempt.parent_sid)?;
        } else {
            // Heard from: the silence that would make it worth asking Twilio starts again.
            self.schedule_check(&attempt.parent_sid, now_ms + self.check_ms)?;
        }
        // Pages hear of the change first: giving the line back is a call to the pool, which
        // they need not wait for.
        let record = self.record(&attempt.parent_sid)?;
        if changed {
            self.broadcast(&record);
        }
        if terminal_now && !was_terminal {
            self.release_number(&attempt.parent_sid, now_ms).await?;
        }
        Response::from_json(&json!({
            "changed": changed,
            "becameTerminal": terminal_now && !was_terminal,
            "record": record,
        }))
    }

    /// Stores one event of an attempt, once per `dedupe` key (a repeat is ignored).
    fn insert_event(&self, parent_sid: &str, dedupe: &str, event: &StatusEvent) -> Result<()> {
        let event_json =
            serde_json::to_string(event).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_events (parent_sid, dedupe, event_json) VALUES (?, ?, ?)",
            vec![
                parent_sid.to_owned().into(),
                dedupe.to_owned().into(),
                event_json.into(),
            ],
        )?;
        Ok(())
    }

    /// After a change to an attempt: queues its FHIR write, tells the watchers, and returns the
    /// record.
    async fn publish(&self, parent_sid: &str, now_ms: i64) -> Result<Value> {
        self.enqueue_fhir(parent_sid, now_ms).await?;
        let record = self.record(parent_sid)?;
        self.broadcast(&record);
        Ok(record)
    }

    /// After Twilio confirmed the hang-up: an attempt no callback was ever received for (ended
    /// before its patient leg was dialled) will hear no more, so it is closed as `canceled`
    /// (`shared::call_state::closing_event`) and its number freed. Whether it was closed: the
    /// caller then queues the FHIR write and tells the watchers.
    ///
    /// Unless Twilio lists a patient's leg under it: then the patient was dialled and every
    /// callback was lost, and the status check, asked at once, records that leg's own end
    /// (answered, how long) instead of a made-up `canceled`.
    async fn close_if_never_dialled(
        &self,
        config: &Config,
        parent_sid: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let Some(event) = closing_event(&self.events(parent_sid)?, now_ms / 1_000) else {
            return Ok(false);
        };
        if let Ok(parent) = CallSid::parse(parent_sid) {
            if let Ok(legs) = crate::twilio_rest::child_calls(config, &parent).await {
                if !legs.is_empty() {
                    // A few seconds on: Twilio ends the patient's leg just after the hang-up.
                    crate::log::event("call_dialled_without_callbacks", &[]);
                    self.schedule_check(parent_sid, now_ms + CHECK_AFTER_HANGUP_MS)?;
                    return Ok(false);
                }
            }
        }
        self.insert_event(parent_sid, "hung-up", &event)?;
        self.release_number(parent_sid, now_ms).await?;
        crate::log::event("call_closed_after_hangup", &[]);
        Ok(true)
    }

    /// Asks Twilio about the attempt at `at_ms` unless a callback comes first (a later callback
    /// moves the time on; a final one drops the check).
    fn schedule_check(&self, parent_sid: &str, at_ms: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO ledger_checks (parent_sid, next_check_ms, checks) VALUES (?, ?, 0)
             ON CONFLICT(parent_sid) DO UPDATE SET next_check_ms = excluded.next_check_ms, checks = 0",
            vec![parent_sid.to_owned().into(), at_ms.into()],
        )?;
        Ok(())
    }

    fn drop_check(&self, parent_sid: &str) -> Result<()> {
        self.sql().exec(
            "DELETE FROM ledger_checks WHERE parent_sid = ?",
            vec![parent_sid.to_owned().into()],
        )?;
        Ok(())
    }

    /// Calls gone quiet: asks Twilio how each stands, and ends those Twilio says have ended
    /// (their final callback was lost: the worker was unreachable when Twilio sent it).
    async fn process_checks(&self, config: &Config, now_ms: i64) -> Result<()> {
        let due: Vec<CheckRow> = self
            .sql()
            .exec(
                "SELECT parent_sid, checks FROM ledger_checks WHERE next_check_ms <= ?",
                vec![now_ms.into()],
            )?
            .to_array()?;
        let mut outcomes = Vec::new();
        for row in due {
            let (Some(attempt), Ok(parent)) = (
                self.attempt(&row.parent_sid)?,
                CallSid::parse(&row.parent_sid),
            ) else {
                self.drop_check(&row.parent_sid)?;
                continue;
            };
            let events = self.events(&row.parent_sid)?;
            if progress(&events).is_some_and(|p| p.status.is_terminal()) {
                self.drop_check(&row.parent_sid)?;
                continue;
            }
            let asked = match attempt.child_sid.as_deref().map(CallSid::parse) {
                Some(Ok(child)) => crate::twilio_rest::fetch_call(config, &child)
                    .await
                    .map(|leg| leg.map(|leg| (CheckedLeg::Patient, leg))),
                Some(Err(_)) => Ok(None),
                None => match crate::twilio_rest::child_calls(config, &parent).await {
                    Ok(children) => match children.into_iter().next() {
                        Some(child) => {
                            self.sql().exec(
                                "UPDATE ledger_attempts SET child_sid = ? WHERE parent_sid = ? AND child_sid IS NULL",
                                vec![child.sid.clone().into(), row.parent_sid.clone().into()],
                            )?;
                            Ok(Some((CheckedLeg::Patient, child)))
                        }
                        None => crate::twilio_rest::fetch_call(config, &parent)
                            .await
                            .map(|leg| leg.map(|leg| (CheckedLeg::ClinicianOnly, leg))),
                    },
                    Err(error) => Err(error),
                },
            };
            // The call's final callback may have come while Twilio was asked: then it has been
            // released and counted already, and the check has nothing left to do.
            let events = self.events(&row.parent_sid)?;
            if progress(&events).is_some_and(|p| p.status.is_terminal()) {
                self.drop_check(&row.parent_sid)?;
                continue;
            }
            let (leg, fetched) = match asked {
                Ok(Some(found)) => found,
                Ok(None) => {
                    // Twilio has no such call, so it holds no line: give the line back rather
                    // than keep it for the rest of its lease, and stop showing the call as live
                    // (no outcome is made up for it).
                    crate::log::event("call_check_unknown", &[]);
                    self.give_up_on(&row.parent_sid, "unknown-to-twilio", now_ms)
                        .await?;
                    continue;
                }
                Err(crate::twilio_rest::TwilioRestError::Rejected(status)) => {
                    // Twilio refused the question (credentials rotated, say): asked again later,
                    // as for a live call, so that the record ends once the question is answered.
                    crate::log::event("call_check_refused", &[("status", &status.to_string())]);
                    if row.checks + 1 >= CHECKS_REFUSED_LIMIT {
                        crate::log::event("call_check_abandoned", &[]);
                        self.give_up_on(&row.parent_sid, "check-abandoned", now_ms)
                            .await?;
                    } else {
                        self.postpone_check(
                            &row,
                            now_ms + next_check_delay_ms(self.check_ms, row.checks + 1),
                        )?;
                    }
                    continue;
                }
                Err(crate::twilio_rest::TwilioRestError::Retryable) => {
                    self.postpone_check(&row, now_ms + self.check_ms)?;
                    continue;
                }
            };
            match check_finding(&events, leg, &fetched.leg, now_ms / 1_000) {
                CheckFinding::AlreadyEnded => self.drop_check(&row.parent_sid)?,
                CheckFinding::StillLive => self.postpone_check(
                    &row,
                    now_ms + next_check_delay_ms(self.check_ms, row.checks + 1),
                )?,
                CheckFinding::Ended(event) => {
                    self.insert_event(
                        &row.parent_sid,
                        &format!("{}@checked", fetched.sid),
                        &event,
                    )?;
                    self.drop_check(&row.parent_sid)?;
                    self.release_number(&row.parent_sid, now_ms).await?;
                    let record = self.publish(&row.parent_sid, now_ms).await?;
                    crate::log::event("call_ended_by_check", &[("status", event.status.as_str())]);
                    outcomes.push(Stamped {
                        at_ms: u64::try_from(now_ms).unwrap_or(0),
                        event: crate::handlers::call_status::outcome_event(
                            &record,
                            &config.telemetry_salt(),
                        ),
                    });
                }
            }
        }
        crate::telemetry::deliver(&self.env, outcomes).await;
        Ok(())
    }

    /// Counts a check made and sets the next.
    fn postpone_check(&self, row: &CheckRow, at_ms: i64) -> Result<()> {
        self.sql().exec(
            "UPDATE ledger_checks SET checks = checks + 1, next_check_ms = ? WHERE parent_sid = ?",
            vec![at_ms.into(), row.parent_sid.clone().into()],
        )?;
        Ok(())
    }

    /// Frees the caller-ID number the call held. A release the pool did not confirm (no 2xx,
    /// or no answer) is queued and tried again by the alarm, so a line is not held for the rest
    /// of its lease because of one failed request.
    async fn release_number(&self, parent_sid: &str, now_ms: i64) -> Result<()> {
        if super::release_line(&self.env, parent_sid).await {
            return Ok(());
        }
        crate::log::event("pool_release_failed", &[("attempts", "1")]);
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_pool_releases (parent_sid, attempts, next_attempt_ms) VALUES (?, 1, ?)",
            vec![parent_sid.to_owned().into(), (now_ms + backoff_ms(0)).into()],
        )?;
        self.reschedule(now_ms).await
    }

    async fn process_pool_releases(&self, now_ms: i64) -> Result<()> {
        for row in self.due_retries(RetryQueue::PoolReleases, now_ms)? {
            let released = super::release_line(&self.env, &row.parent_sid).await;
            if released || row.attempts + 1 >= RELEASE_ATTEMPTS {
                self.dequeue_retry(RetryQueue::PoolReleases, &row)?;
                let attempts = (row.attempts + 1).to_string();
                let event = if released {
                    "pool_release_retried"
                } else {
                    "pool_release_abandoned"
                };
                crate::log::event(event, &[("attempts", &attempts)]);
            } else {
                self.retry_later(RetryQueue::PoolReleases, &row, now_ms)?;
            }
        }
        Ok(())
    }

    /// The queue's entries due at `now_ms`.
    fn due_retries(&self, queue: RetryQueue, now_ms: i64) -> Result<Vec<RetryRow>> {
        self.sql()
            .exec(
                &format!(
                    "SELECT parent_sid, attempts FROM {} WHERE next_attempt_ms <= ?",
                    queue.table()
                ),
                vec![now_ms.into()],
            )?
            .to_array()
    }

    fn dequeue_retry(&self, queue: RetryQueue, row: &RetryRow) -> Result<()> {
        self.sql().exec(
            &format!("DELETE FROM {} WHERE parent_sid = ?", queue.table()),
            vec![row.parent_sid.clone().into()],
        )?;
        Ok(())
    }

    /// Counts a failed try and schedules the next at [`backoff_ms`].
    fn retry_later(&self, queue: RetryQueue, row: &RetryRow, now_ms: i64) -> Result<()> {
        self.sql().exec(
            &format!(
                "UPDATE {} SET attempts = attempts + 1, next_attempt_ms = ? WHERE parent_sid = ?",
                queue.table()
            ),
            vec![
                (now_ms + backoff_ms(row.attempts)).into(),
                row.parent_sid.clone().into(),
            ],
        )?;
        Ok(())
    }

    async fn end(&self, body: EndBody, now_ms: i64) -> Result<Response> {
        self.sql().exec(
            "UPDATE ledger_attempts SET ended_by = COALESCE(ended_by, ?) WHERE parent_sid = ?",
            vec![
                ended_by_code(body.ended_by).to_owned().into(),
                body.parent_sid.clone().into(),
            ],
        )?;
        if body.hangup_pending {
            self.sql().exec(
                "INSERT OR IGNORE INTO ledger_twilio_outbox (parent_sid, attempts, next_attempt_ms) VALUES (?, 0, ?)",
                vec![body.parent_sid.clone().into(), (now_ms + backoff_ms(0)).into()],
            )?;
        } else {
            self.close_if_never_dialled(&Config::from_env(&self.env), &body.parent_sid, now_ms)
                .await?;
        }
        let record = self.publish(&body.parent_sid, now_ms).await?;
        Response::from_json(&json!({"record": record}))
    }

    async fn manual(&self, body: ManualBody, now_ms: i64) -> Result<Response> {
        if let Some(key) = &body.key {
            let parent_sid = format!("manual-key-{key}");
            if self.attempt(&parent_sid)?.is_some() {
                return Response::from_json(
                    &json!({"record": self.record(&parent_sid)?, "repeated": true}),
                );
            }
            return self.store_manual(parent_sid, body, now_ms).await;
        }
        // Two outcomes saved in one millisecond (a double click, a coarse clock) are two records.
        let same_moment: Vec<CountRow> = self
            .sql()
            .exec(
                "SELECT COUNT(*) AS count FROM ledger_attempts WHERE parent_sid = ? OR parent_sid LIKE ?",
                vec![format!("manual-{now_ms}").into(), format!("manual-{now_ms}-%").into()],
            )?
            .to_array()?;
        let parent_sid = match same_moment.first().map_or(0, |row| row.count) {
            0 => format!("manual-{now_ms}"),
            taken => format!("manual-{now_ms}-{taken}"),
        };
        self.store_manual(parent_sid, body, now_ms).await
    }

    async fn store_manual(
        &self,
        parent_sid: String,
        body: ManualBody,
        now_ms: i64,
    ) -> Result<Response> {
        self.sql().exec(
            "INSERT INTO ledger_attempts (parent_sid, appointment_id, practitioner, direction, ended_by, created_ms) VALUES (?, ?, ?, 'manual', 'clinician', ?)",
            vec![parent_sid.clone().into(), body.appointment_id.into(), body.practitioner.into(), now_ms.into()],
        )?;
        for (index, event) in manual_events(body.outcome, body.duration_seconds, body.at_unix)
            .iter()
            .enumerate()
        {
            self.insert_event(&parent_sid, &format!("manual#{index}"), event)?;
        }
        let record = self.publish(&parent_sid, now_ms).await?;
        Response::from_json(&json!({"record": record}))
    }

    fn list(&self) -> Result<Response> {
        Response::from_json(&json!({"calls": self.records()?}))
    }

    /// Writes one attempt's record onto its Appointment. `Ok(true)` when Medplum accepted it.
    async fn write_to_fhir(
        &self,
        config: &Config,
        attempt: Option<AttemptRow>,
    ) -> std::result::Result<bool, WriteFailure> {
        let attempt = attempt.ok_or_else(|| WriteFailure::Retry("no attempt".into()))?;
        let events = self
            .events(&attempt.parent_sid)
            .map_err(|e| WriteFailure::Retry(e.to_string()))?;
        let unresolved = self
            .unresolved(&attempt.parent_sid)
            .map_err(|e| WriteFailure::Retry(e.to_string()))?;
        // A refused attempt, or a placed one not yet heard of, has nothing to write yet.
        let Some(derived) = attempt_progress(&attempt, &events, unresolved.as_deref()) else {
            return Ok(true);
        };
        let practitioner = attempt
            .practitioner
            .as_deref()
            .and_then(|p| PractitionerId::parse(p).ok());
        let call_sid = attempt
            .child_sid
            .clone()
            .unwrap_or_else(|| attempt.parent_sid.clone());
        let fields = CallRecordFields {
            call_sid: &call_sid,
            parent_call_sid: (attempt.child_sid.is_some()).then_some(attempt.parent_sid.as_str()),
            status: derived.status,
            direction: direction_of(&attempt.direction),
            duration_seconds: derived.duration_seconds,
            started_at_unix: derived.started_at_unix,
            answered_at_unix: derived.answered_at_unix,
            ended_at_unix: derived.ended_at_unix,
            caller_id: attempt.caller_id.as_deref(),
            patient_number_masked: attempt.patient_masked.as_deref(),
            sequence_number: derived.last_sequence,
            ended_by: attempt.ended_by.as_deref().and_then(parse_ended_by),
            practitioner: practitioner.as_ref(),
            error_code: derived.error_code,
            outcome_unknown: still_unresolved(unresolved.as_deref(), Some(&derived)),
        };
        let extension = call_extension(&fields);
        let medplum =
            crate::medplum_client(config).map_err(|e| WriteFailure::Retry(e.code().to_owned()))?;
        // Medplum answers 400 both to a failed `test` of the version (someone wrote meanwhile)
        // and to a write it will not accept; the next read tells them apart: the version moved,
        // or it did not and the same write would be refused again.
        let mut bad_request_at: Option<String> = None;
        for _ in 0..5 {
            let appointment = medplum
                .read("Appointment", &attempt.appointment_id)
                .await
                .map_err(|e| WriteFailure::of(&e))?
                .ok_or(WriteFailure::Refused(REFUSED_APPOINTMENT_MISSING))?;
            if bad_request_at.as_deref() == Some(appointment.version_id.as_str()) {
                return Err(WriteFailure::Refused(REFUSED_WRITE));
            }
            let extensions = upsert_call_extension(&appointment.resource, extension.clone());
            let patch = extension_patch(&appointment.version_id, extensions);
            match medplum
                .patch("Appointment", &attempt.appointment_id, &patch)
                .await
            {
                Ok(UpdateOutcome::Updated(_)) => return Ok(true),
                Ok(UpdateOutcome::Stale) => continue,
                Err(MedplumError::Rejected(400)) => bad_request_at = Some(appointment.version_id),
                Err(error) => return Err(WriteFailure::of(&error)),
            }
        }
        Err(WriteFailure::Retry("the appointment kept changing".into()))
    }

    /// Since when the record has had a change Medplum does not have (now, for a record queued
    /// before this was kept).
    fn waiting_since(&self, parent_sid: &str, now_ms: i64) -> Result<i64> {
        self.sql().exec(
            "INSERT OR IGNORE INTO ledger_fhir_waiting (parent_sid, since_ms) VALUES (?, ?)",
            vec![parent_sid.to_owned().into(), now_ms.into()],
        )?;
        let rows: Vec<WaitingRow> = self
            .sql()
            .exec(
                "SELECT since_ms FROM ledger_fhir_waiting WHERE parent_sid = ?",
                vec![parent_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows.first().map_or(now_ms, |row| row.since_ms))
    }

    /// Counts a failed write of the record's revision and schedules its next one. A newer
    /// revision, queued while this one was being written, is left due: a change is written at
    /// once, not at the failed one's next try.
    fn postpone(&self, row: &OutboxRow, next_attempt_ms: i64, error: &str) -> Result<()> {
        self.sql().exec(
            "UPDATE ledger_fhir_outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE parent_sid = ? AND revision = ?",
            vec![
                next_attempt_ms.into(),
                error.to_owned().into(),
                row.parent_sid.clone().into(),
                row.revision.into(),
            ],
        )?;
        Ok(())
    }

    async fn process_fhir_outbox(&self, config: &Config, now_ms: i64) -> Result<()> {
        let due: Vec<OutboxRow> = self
            .sql()
            .exec("SELECT parent_sid, revision, attempts FROM ledger_fhir_outbox WHERE next_attempt_ms <= ?", vec![now_ms.into()])?
            .to_array()?;
        let mut events = Vec::new();
        let attempts_of = |row: &OutboxRow| u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        for row in due {
            let attempt = self.attempt(&row.parent_sid)?;
            // Named in the failure logs, so that an operator can read the record
            // (`GET /api/v1/admin/appointments/{id}/calls`).
            let appointment = attempt
                .as_ref()
                .map(|attempt| attempt.appointment_id.clone())
                .unwrap_or_default();
            match self.write_to_fhir(config, attempt).await {
                Ok(_) => {
                    events.push(Event::OutboxWritten {
                        call_sid: row.parent_sid.clone(),
                        attempts: attempts_of(&row),
                    });
                    // Only if nothing newer was queued meanwhile; if it was, that change has
                    // been waiting since now at most.
                    self.sql().exec(
                        "DELETE FROM ledger_fhir_outbox WHERE parent_sid = ? AND revision = ?",
                        vec![row.parent_sid.clone().into(), row.revision.into()],
                    )?;
                    self.sql().exec(
                        "UPDATE ledger_fhir_waiting SET since_ms = ? WHERE parent_sid = ?",
                        vec![now_ms.into(), row.parent_sid.clone().into()],
                    )?;
                    self.sql().exec(
                        "DELETE FROM ledger_fhir_waiting WHERE parent_sid = ?
                         AND NOT EXISTS (SELECT 1 FROM ledger_fhir_outbox WHERE parent_sid = ?)",
                        vec![row.parent_sid.clone().into(), row.parent_sid.clone().into()],
                    )?;
                    crate::log::event(
                        "fhir_record_written",
                        &[("attempts", &(row.attempts + 1).to_string())],
                    );
                }
                Err(WriteFailure::Refused(reason))
                    if now_ms - self.waiting_since(&row.parent_sid, now_ms)?
                        >= REFUSED_SET_ASIDE_AFTER_MS =>
                {
                    // Refused for a week: kept whole and pending, no longer alerted, and tried
                    // daily instead of hourly (at once if the record changes).
                    self.postpone(&row, now_ms + REFUSED_SET_ASIDE_MS, reason)?;
                    crate::log::event(
                        "fhir_record_set_aside",
                        &[("appointment", &appointment), ("reason", reason)],
                    );
                }
                Err(WriteFailure::Refused(reason)) => {
                    self.postpone(&row, now_ms + REFUSED_RETRY_MS, reason)?;
                    crate::log::event(
                        "fhir_record_refused",
                        &[
                            ("appointment", &appointment),
                            ("reason", reason),
                            ("retry_in_ms", &REFUSED_RETRY_MS.to_string()),
                        ],
                    );
                    events.push(Event::OutboxRefused {
                        call_sid: row.parent_sid.clone(),
                        reason: reason.to_owned(),
                    });
                }
                Err(WriteFailure::Retry(error)) => {
                    let delay = backoff_ms(row.attempts);
                    self.postpone(&row, now_ms + delay, &error)?;
                    crate::log::event(
                        "fhir_write_retry",
                        &[
                            ("appointment", &appointment),
                            ("error", &error),
                            ("retry_in_ms", &delay.to_string()),
                        ],
                    );
                    let waiting_since = self.waiting_since(&row.parent_sid, now_ms)?;
                    events.push(Event::OutboxRetry {
                        call_sid: row.parent_sid.clone(),
                        attempt: attempts_of(&row),
                        backlog_age_seconds: u64::try_from((now_ms - waiting_since) / 1_000)
                            .unwrap_or(0),
                    });
                }
            }
        }
        let stamped_at = u64::try_from(now_ms).unwrap_or(0);
        crate::telemetry::deliver(
            &self.env,
            events
                .into_iter()
                .map(|event| Stamped {
                    at_ms: stamped_at,
                    event,
                })
                .collect(),
        )
        .await;
        Ok(())
    }

    async fn process_twilio_outbox(&self, config: &Config, now_ms: i64) -> Result<()> {
        for row in self.due_retries(RetryQueue::Hangups, now_ms)? {
            let Ok(sid) = CallSid::parse(&row.parent_sid) else {
                self.dequeue_retry(RetryQueue::Hangups, &row)?;
                continue;
            };
            let ended = crate::twilio_rest::end_call(config, &sid).await;
            match ended {
                Ok(()) | Err(crate::twilio_rest::TwilioRestError::Rejected(_)) => {
                    self.dequeue_retry(RetryQueue::Hangups, &row)?;
                    crate::log::event(
                        "twilio_hangup_retried",
                        &[("attempts", &(row.attempts + 1).to_string())],
                    );
                    if ended.is_ok()
                        && self
                            .close_if_never_dialled(config, &row.parent_sid, now_ms)
                            .await?
                    {
                        self.publish(&row.parent_sid, now_ms).await?;
                    }
                }
                Err(_) => self.retry_later(RetryQueue::Hangups, &row, now_ms)?,
            }
        }
        Ok(())
    }

    /// Schedules the alarm for the earliest pending outbox entry or check, if any.
    async fn reschedule(&self, now_ms: i64) -> Result<()> {
        let rows: Vec<NextRow> = self
            .sql()
            .exec(
                "SELECT MIN(next) AS next FROM (SELECT next_attempt_ms AS next FROM ledger_fhir_outbox UNION ALL SELECT next_attempt_ms FROM ledger_twilio_outbox UNION ALL SELECT next_check_ms FROM ledger_checks UNION ALL SELECT next_attempt_ms FROM ledger_pool_releases)",
                None,
            )?
            .to_array()?;
        if let Some(next) = rows.first().and_then(|r| r.next) {
            self.state
                .storage()
                .set_alarm((next - now_ms).max(0))
                .await?;
        }
        Ok(())
    }
}

impl DurableObject for CallLedger {
    fn new(state: State, env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA);
        let check_ms = Config::from_env(&env).call_check_ms();
        Self {
            state,
            env,
            schema,
            subscribers: RefCell::new(Vec::new()),
            check_ms,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        let now_ms = super::now_ms();
        let bad = |what: &str| Response::error(format!("bad {what} request"), 400);
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/attempt") => match req.json::<AttemptBody>().await {
                Ok(body) => self.add_attempt(body, now_ms).await,
                Err(_) => bad("attempt"),
            },
            (Method::Post, "/callback") => match req.json::<CallbackBody>().await {
                Ok(body) => self.add_callback(body, now_ms).await,
                Err(_) => bad("callback"),
            },
            (Method::Post, "/end") => match req.json::<EndBody>().await {
                Ok(body) => self.end(body, now_ms).await,
                Err(_) => bad("end"),
            },
            (Method::Post, "/manual") => match req.json::<ManualBody>().await {
                Ok(body) => self.manual(body, now_ms).await,
                Err(_) => bad("manual"),
            },
            (Method::Get, "/calls") => self.list(),
            (Method::Get, "/events") => self.subscribe(),
            _ => super::answer_status(&self.state, "CallLedger", &TABLES, &req).await,
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let config = Config::from_env(&self.env);
        let now_ms = super::now_ms();
        self.process_fhir_outbox(&config, now_ms).await?;
        self.process_twilio_outbox(&config, now_ms).await?;
        self.process_pool_releases(now_ms).await?;
        self.process_checks(&config, now_ms).await?;
        self.reschedule(super::now_ms()).await?;
        Response::ok("alarm handled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_are_one_event_each() {
        let frame = sse_frame("call", &json!({"status": "ringing"}));
        assert_eq!(frame, "event: call\ndata: {\"status\":\"ringing\"}\n\n");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let delays: Vec<i64> = (0..8).map(backoff_ms).collect();
        assert_eq!(
            delays,
            vec![2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(backoff_ms(-1), 2_000);
        assert_eq!(backoff_ms(i64::MAX), 30_000);
    }

    #[test]
    fn a_call_still_live_is_asked_about_less_often_up_to_hourly() {
        let minutes = |checks| next_check_delay_ms(600_000, checks) / 60_000;
        assert_eq!(
            (0..6).map(minutes).collect::<Vec<_>>(),
            vec![10, 20, 40, 60, 60, 60]
        );
        assert_eq!(next_check_delay_ms(5_000, 1), 10_000);
        assert_eq!(next_check_delay_ms(5_000, i64::MAX), 3_600_000);
        assert_eq!(next_check_delay_ms(5_000, -3), 5_000);
        // A check interval set longer than an hour is kept as set.
        assert_eq!(next_check_delay_ms(7_200_000, 2), 7_200_000);
    }

    #[test]
    fn only_a_refusal_about_the_request_itself_waits_an_hour() {
        let table = [
            (MedplumError::Rejected(400), Some(REFUSED_WRITE)),
            (MedplumError::Rejected(404), Some(REFUSED_WRITE)),
            // An access policy that no longer lets the worker write Appointments.
            (MedplumError::Rejected(403), Some(REFUSED_WRITE)),
            (MedplumError::Rejected(422), Some(REFUSED_WRITE)),
            (MedplumError::Rejected(408), None),
            (MedplumError::Rejected(429), None),
            (MedplumError::Rejected(401), None),
            (MedplumError::Unreachable, None),
            (MedplumError::ClientRejected, None),
            (MedplumError::Malformed, None),
        ];
        for (error, refused) in table {
            let failure = WriteFailure::of(&error);
            match refused {
                Some(reason) => assert_eq!(failure, WriteFailure::Refused(reason), "{error:?}"),
                None => assert!(matches!(failure, WriteFailure::Retry(_)), "{error:?}"),
            }
        }
        assert!(REFUSED_RETRY_MS > backoff_ms(i64::MAX) * 100);
    }

    fn attempt(refused: Option<&str>) -> AttemptRow {
        AttemptRow {
            parent_sid: "CAparent".into(),
            child_sid: Some("CAchild".into()),
            appointment_id: "appt-mobile".into(),
            practitioner: Some("clinician-ada".into()),
            direction: "outbound-browser".into(),
            caller_id: Some("+447700900001".into()),
            patient_masked: Some("•••123".into()),
            refused_code: refused.map(Into::into),
            ended_by: None,
            created_ms: 1_795_586_882_000,
            client_call_id: Some("TJS0f8e2a3c".into()),
        }
    }

    #[test]
    fn records_show_refusals_progress_and_outcomes() {
        let refused = record_json(&attempt(Some("no_line_free")), &[], false, None);
        assert_eq!(refused["status"], "refused");
        assert_eq!(refused["terminal"], true);
        assert_eq!(refused["refusedCode"], "no_line_free");

        let placed = record_json(&attempt(None), &[], true, None);
        assert_eq!(placed["status"], "initiated");
        assert_eq!(placed["terminal"], false);
        assert_eq!(placed["fhirPending"], true);

        let events = [
            StatusEvent {
                sequence: Some(1),
                status: CallStatus::Ringing,
                timestamp_unix: 1_795_586_890,
                duration_seconds: None,
                error_code: None,
            },
            StatusEvent {
                sequence: Some(3),
                status: CallStatus::Completed,
                timestamp_unix: 1_795_586_950,
                duration_seconds: Some(50),
                error_code: None,
            },
        ];
        let done = record_json(&attempt(None), &events, false, None);
        assert_eq!(done["status"], "completed");
        assert_eq!(done["callSid"], "CAchild");
        assert_eq!(done["clientCallId"], "TJS0f8e2a3c");
        assert_eq!(done["durationSeconds"], 50);
        assert_eq!(done["endedAt"], "2026-11-25T06:09:10Z");
        assert_eq!(done["timeline"].as_array().map(Vec::len), Some(2));
        assert!(!done.to_string().contains("900123"));
        assert_eq!(done["outcomeUnknown"], Value::Null);

        // An end the worker could not learn: over, `unknown`, with the reason; the timeline kept.
        let unknown = record_json(
            &attempt(None),
            &events[..1],
            false,
            Some("unknown-to-twilio"),
        );
        assert_eq!(unknown["status"], "unknown");
        assert_eq!(unknown["terminal"], true);
        assert_eq!(unknown["outcomeUnknown"], "unknown-to-twilio");
        assert_eq!(unknown["timeline"].as_array().map(Vec::len), Some(1));
        // Given up with nothing heard: placed when created, as on its Appointment.
        let silent = record_json(&attempt(None), &[], false, Some("unknown-to-twilio"));
        assert_eq!(silent["status"], "unknown");
        assert_eq!(silent["startedAt"], "2026-11-25T06:08:02Z");
        assert_eq!(silent["startedAt"], silent["createdAt"]);
        // A final callback that still came outranks it.
        let late = record_json(&attempt(None), &events, false, Some("check-abandoned"));
        assert_eq!(late["status"], "completed");
        assert_eq!(late["outcomeUnknown"], Value::Null);
        // A refused attempt stays refused.
        let refused = record_json(&attempt(Some("no_line_free")), &[], false, Some("x"));
        assert_eq!(refused["status"], "refused");
    }
}
