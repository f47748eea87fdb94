//! `NumberPool` Durable Object: the shared pool of Twilio caller-ID numbers (one per environment).
//!
//! Operations (JSON over the stub's fetch):
//! - `POST /lease {callSid, destination, patientKey?, practitioner?, appointmentId?, limits?}` →
//!   `{number}`, 409 `{code: "no_line_free"}`, or 429 `{code: "clinician_limit_reached" |
//!   "patient_limit_reached"}` (limits count the calls of the last hour in `pool_call_log`)
//! - `POST /release {callSid}` → `{released}`
//! - `POST /numbers {number, actor}` adds; `POST /numbers/retire {number, actor}` retires (at the
//!   end of its lease if it has one); `GET /numbers`; `GET /audit`: every change, with who
//! - `POST /inbound-route {caller, poolNumber}` → the clinician and appointment that last called
//!   this caller from this number (within the stickiness period), or 404
//! - `GET /status` → row counts.
//!
//! Each operation loads the pool, decides with `shared::number_pool`, and writes back without
//! awaiting in between, so no two requests interleave inside a lease: a number is never leased
//! to two live calls. The object keeps the pool as it last read or wrote it (it is the table's
//! only writer), so a lease reads no rows and writes back only the one it changed.
//!
//! The call log and the stickiness rows hold patients' numbers; a lease first deletes (at most
//! hourly) those older than anything reads: `shared::number_pool::prune_due`. `placed_calls`
//! (CallSids and times only) is kept: it refuses a replayed voice request for good.

use std::cell::{Cell, RefCell};

use serde::Deserialize;
use serde_json::json;
use shared::dial_policy::{check_limits, country_of, CallLimits, LimitExceeded, LIMIT_WINDOW_MS};
use shared::ids::E164;
use shared::number_pool::{
    held_by, lease, prune_due, release, retire_finished, Lease, LeaseRequest, NumberStatus,
    PoolNumber, STICKINESS_MS,
};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use crate::config::{Config, Setting};

const TABLES: [&str; 5] = [
    "pool_numbers",
    "patient_stickiness",
    "pool_audit",
    "pool_call_log",
    "placed_calls",
];
const SCHEMA: [&str; 8] = [
    "CREATE TABLE IF NOT EXISTS pool_numbers (
        e164 TEXT PRIMARY KEY, country TEXT NOT NULL, status TEXT NOT NULL,
        last_used_ms INTEGER NOT NULL DEFAULT 0,
        lease_call_sid TEXT, lease_expires_ms INTEGER)",
    "CREATE TABLE IF NOT EXISTS patient_stickiness (
        patient_key TEXT PRIMARY KEY, e164 TEXT NOT NULL, last_called_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pool_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pool_call_log (
        call_sid TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, practitioner TEXT, patient_key TEXT,
        patient_number TEXT, pool_number TEXT NOT NULL, appointment_id TEXT)",
    "CREATE INDEX IF NOT EXISTS pool_call_log_caller ON pool_call_log (patient_number, at_ms)",
    // The hourly limits count a clinician's and a patient's recent calls: without these, each
    // lease with limits would scan the whole call log.
    "CREATE INDEX IF NOT EXISTS pool_call_log_practitioner ON pool_call_log (practitioner, at_ms)",
    "CREATE INDEX IF NOT EXISTS pool_call_log_patient ON pool_call_log (patient_key, at_ms)",
    // Every CallSid that took a line, and when: written with each lease, and copied from the
    // call log before its rows are pruned (so calls logged by a version without this table are
    // kept too). It holds no patient's number, so it is never pruned: a captured voice request
    // replayed after the call log has forgotten its call still gets no line and no number
    // (about 70 bytes a call: a million calls is 70 MB of the object's 10 GB).
    "CREATE TABLE IF NOT EXISTS placed_calls (call_sid TEXT PRIMARY KEY, at_ms INTEGER NOT NULL)",
];

#[durable_object]
pub struct NumberPool {
    state: State,
    schema: Result<()>,
    /// POOL_LEASE_SECONDS, read once per object.
    lease_ms: i64,
    /// The pool as this object last read or wrote it; `None` until the first read, and again
    /// after a write that went straight to SQL or failed, so the next read asks the table.
    pool: RefCell<Option<Vec<PoolNumber>>>,
    /// When this object last deleted expired call-log and stickiness rows.
    last_pruned_ms: Cell<Option<i64>>,
}

#[derive(Deserialize)]
struct NumberRow {
    e164: String,
    status: String,
    last_used_ms: i64,
    lease_call_sid: Option<String>,
    lease_expires_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Limits {
    per_clinician_per_hour: u32,
    per_patient_per_hour: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseBody {
    call_sid: String,
    destination: E164,
    patient_key: Option<String>,
    practitioner: Option<String>,
    appointment_id: Option<String>,
    limits: Option<Limits>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberBody {
    number: E164,
    actor: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboundBody {
    caller: E164,
    pool_number: E164,
}

#[derive(Deserialize, serde::Serialize)]
struct RouteRow {
    practitioner: Option<String>,
    appointment_id: Option<String>,
}

#[derive(Deserialize)]
struct CountRow {
    n: u32,
}

#[derive(Deserialize, serde::Serialize)]
struct AuditRow {
    at_ms: i64,
    actor: String,
    action: String,
    detail: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseBody {
    call_sid: String,
}

#[derive(Deserialize)]
struct StickyRow {
    e164: String,
}

fn status_code(status: NumberStatus) -> &'static str {
    match status {
        NumberStatus::Active => "active",
        NumberStatus::Retiring => "retiring",
        NumberStatus::Retired => "retired",
    }
}

impl NumberPool {
    /// The pool, from this object's copy when it has one.
    fn load(&self) -> Result<Vec<PoolNumber>> {
        if let Some(pool) = self.pool.borrow().as_ref() {
            return Ok(pool.clone());
        }
        let pool = self.read()?;
        *self.pool.borrow_mut() = Some(pool.clone());
        Ok(pool)
    }

    /// The pool, after retiring the retiring numbers whose lease ended without a release (each
    /// audited as `retired-at-lease-end` by `pool`), so that the list never shows a number
    /// waiting for a call that is over.
    fn settled(&self, now_ms: i64) -> Result<Vec<PoolNumber>> {
        let before = self.load()?;
        let mut numbers = before.clone();
        let retired = retire_finished(&mut numbers, now_ms);
        if retired.is_empty() {
            return Ok(before);
        }
        self.store(&before, numbers.clone())?;
        for number in &retired {
            self.audit("pool", "retired-at-lease-end", number.as_str(), now_ms)?;
        }
        Ok(numbers)
    }

    /// The pool as the table holds it.
    fn read(&self) -> Result<Vec<PoolNumber>> {
        let rows: Vec<NumberRow> = self
            .state
            .storage()
            .sql()
            .exec("SELECT e164, status, last_used_ms, lease_call_sid, lease_expires_ms FROM pool_numbers ORDER BY e164", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(PoolNumber {
                    number: E164::parse(&row.e164).ok()?,
                    status: match row.status.as_str() {
                        "active" => NumberStatus::Active,
                        "retiring" => NumberStatus::Retiring,
                        _ => NumberStatus::Retired,
                    },
                    last_used_ms: row.last_used_ms,
                    lease: match (row.lease_call_sid, row.lease_expires_ms) {
                        (Some(call_sid), Some(expires_at_ms)) => Some(Lease {
                            call_sid,
                            expires_at_ms,
                        }),
                        _ => None,
                    },
                })
            })
            .collect())
    }

    /// Writes back the numbers that differ from `before` (the rows as loaded): a lease touches one
    /// row, not the whole pool. `numbers` becomes the object's copy, or the copy is dropped if a
    /// write fails.
    fn store(&self, before: &[PoolNumber], numbers: Vec<PoolNumber>) -> Result<()> {
        let written = self.write_changes(before, &numbers);
        *self.pool.borrow_mut() = written.is_ok().then_some(numbers);
        written
    }

    fn write_changes(&self, before: &[PoolNumber], numbers: &[PoolNumber]) -> Result<()> {
        let sql = self.state.storage().sql();
        let changed = numbers
            .iter()
            .enumerate()
            .filter(|(i, n)| before.get(*i) != Some(*n))
            .map(|(_, n)| n);
        for n in changed {
            let (sid, expires) = match &n.lease {
                Some(l) => (
                    SqlStorageValue::from(l.call_sid.clone()),
                    SqlStorageValue::from(l.expires_at_ms),
                ),
                None => (SqlStorageValue::Null, SqlStorageValue::Null),
            };
            sql.exec(
                "UPDATE pool_numbers SET status = ?, last_used_ms = ?, lease_call_sid = ?, lease_expires_ms = ? WHERE e164 = ?",
                vec![
                    status_code(n.status).to_owned().into(),
                    n.last_used_ms.into(),
                    sid,
                    expires,
                    n.number.as_str().to_owned().into(),
                ],
            )?;
        }
        Ok(())
    }

    fn sticky_for(&self, patient_key: &str, now_ms: i64) -> Result<Option<E164>> {
        let rows: Vec<StickyRow> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT e164 FROM patient_stickiness WHERE patient_key = ? AND last_called_ms > ?",
                vec![
                    patient_key.to_owned().into(),
                    (now_ms - STICKINESS_MS).into(),
                ],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| E164::parse(&r.e164).ok()))
    }

    /// Whether `call_sid` ever took a line: in `placed_calls` (never pruned), or in the call log
    /// (where a version without `placed_calls` left it).
    fn was_placed(&self, call_sid: &str) -> Result<bool> {
        let rows: Vec<CountRow> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT (SELECT COUNT(*) FROM placed_calls WHERE call_sid = ?)
                      + (SELECT COUNT(*) FROM pool_call_log WHERE call_sid = ?) AS n",
                vec![call_sid.to_owned().into(), call_sid.to_owned().into()],
            )?
            .to_array()?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    fn calls_since(&self, column: &str, value: &str, since_ms: i64) -> Result<u32> {
        let rows: Vec<CountRow> = self
            .state
            .storage()
            .sql()
            .exec(
                &format!(
                    "SELECT COUNT(*) AS n FROM pool_call_log WHERE {column} = ? AND at_ms > ?"
                ),
                vec![value.to_owned().into(), since_ms.into()],
            )?
            .to_array()?;
        Ok(rows.first().map_or(0, |r| r.n))
    }

    fn audit(&self, actor: &str, action: &str, detail: &str, now_ms: i64) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO pool_audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
            vec![
                now_ms.into(),
                actor.to_owned().into(),
                action.to_owned().into(),
                detail.to_owned().into(),
            ],
        )?;
        Ok(())
    }

    fn add_number(&self, body: NumberBody, now_ms: i64) -> Result<Response> {
        let country = country_of(&body.number).map_or("??", |c| c.iso);
        let added = self.state.storage().sql().exec(
            "INSERT INTO pool_numbers (e164, country, status) VALUES (?, ?, 'active')
             ON CONFLICT(e164) DO UPDATE SET status = 'active'",
            vec![
                body.number.as_str().to_owned().into(),
                country.to_owned().into(),
            ],
        );
        // Written straight to the table: the next read asks it.
        *self.pool.borrow_mut() = None;
        added?;
        self.audit(&body.actor, "add", body.number.as_str(), now_ms)?;
        Response::from_json(&json!({"numbers": self.load()?}))
    }

    fn retire_number(&self, body: NumberBody, now_ms: i64) -> Result<Response> {
        let before = self.settled(now_ms)?;
        let mut numbers = before.clone();
        let Some(number) = numbers.iter_mut().find(|n| n.number == body.number) else {
            return Ok(
                Response::from_json(&json!({"code": "number_not_in_pool"}))?.with_status(404)
            );
        };
        let leased = !number.is_free(now_ms);
        number.status = if leased {
            NumberStatus::Retiring
        } else {
            NumberStatus::Retired
        };
        let action = if leased {
            "retire-after-lease"
        } else {
            "retire"
        };
        self.store(&before, numbers)?;
        self.audit(&body.actor, action, body.number.as_str(), now_ms)?;
        Response::from_json(&json!({"numbers": self.load()?}))
    }

    fn inbound_route(&self, body: InboundBody, now_ms: i64) -> Result<Response> {
        let rows: Vec<RouteRow> = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT practitioner, appointment_id FROM pool_call_log
                 WHERE patient_number = ? AND pool_number = ? AND at_ms > ? ORDER BY at_ms DESC LIMIT 1",
                vec![
                    body.caller.as_str().to_owned().into(),
                    body.pool_number.as_str().to_owned().into(),
                    (now_ms - STICKINESS_MS).into(),
                ],
            )?
            .to_array()?;
        match rows.into_iter().next() {
            Some(route) => Response::from_json(&route),
            None => Ok(Response::from_json(&json!({"code": "unknown_caller"}))?.with_status(404)),
        }
    }

    /// Deletes the call-log and stickiness rows nothing reads any more (at most hourly): the
    /// log holds patients' numbers, and is kept no longer than call-backs and limits need it.
    /// Housekeeping never refuses a call: a failed delete is logged and tried again an hour
    /// later, and the lease goes on.
    fn prune(&self, now_ms: i64) {
        let Some(expired) = prune_due(now_ms, self.last_pruned_ms.get()) else {
            return;
        };
        self.last_pruned_ms.set(Some(now_ms));
        let sql = self.state.storage().sql();
        // The expiring calls' CallSids go to `placed_calls` first (a version without that table
        // logged some only here); if that fails, the call log is kept until the next prune.
        let kept = sql.exec(
            "INSERT OR IGNORE INTO placed_calls (call_sid, at_ms)
             SELECT call_sid, at_ms FROM pool_call_log WHERE at_ms <= ?",
            vec![expired.call_log_until_ms.into()],
        );
        if let Err(error) = &kept {
            crate::log::event(
                "pool_prune_failed",
                &[("table", "placed_calls"), ("error", &error.to_string())],
            );
        }
        // (table, statement, until, whether it may run now)
        let deletions = [
            (
                "pool_call_log",
                "DELETE FROM pool_call_log WHERE at_ms <= ?",
                expired.call_log_until_ms,
                kept.is_ok(),
            ),
            (
                "patient_stickiness",
                "DELETE FROM patient_stickiness WHERE last_called_ms <= ?",
                expired.stickiness_until_ms,
                true,
            ),
        ];
        for (table, statement, until_ms, _) in deletions.into_iter().filter(|d| d.3) {
            if let Err(error) = sql.exec(statement, vec![until_ms.into()]) {
                crate::log::event(
                    "pool_prune_failed",
                    &[("table", table), ("error", &error.to_string())],
                );
            }
        }
    }

    fn lease(&self, body: LeaseBody, now_ms: i64) -> Result<Response> {
        self.prune(now_ms);
        let before = self.settled(now_ms)?;
        // A call's voice request comes once. A CallSid that took a line before and holds none
        // now is the request sent again (a captured one replayed, however long after): no
        // number, and no patient's number in the answer's TwiML.
        if held_by(&before, &body.call_sid, now_ms).is_none() && self.was_placed(&body.call_sid)? {
            return Ok(
                Response::from_json(&json!({"code": "call_already_placed"}))?.with_status(410),
            );
        }
        if let Some(limits) = &body.limits {
            let since = now_ms - LIMIT_WINDOW_MS;
            let clinician_calls = match &body.practitioner {
                Some(p) => self.calls_since("practitioner", p, since)?,
                None => 0,
            };
            let patient_calls = match &body.patient_key {
                Some(k) => self.calls_since("patient_key", k, since)?,
                None => 0,
            };
            let limits = CallLimits {
                per_clinician_per_hour: limits.per_clinician_per_hour,
                per_patient_per_hour: limits.per_patient_per_hour,
            };
            if let Err(exceeded) = check_limits(limits, clinician_calls, patient_calls) {
                let code = match exceeded {
                    LimitExceeded::Clinician => "clinician_limit_reached",
                    LimitExceeded::Patient => "patient_limit_reached",
                };
                return Ok(Response::from_json(&json!({"code": code}))?.with_status(429));
            }
        }
        let mut numbers = before.clone();
        let sticky = match &body.patient_key {
            Some(key) => self.sticky_for(key, now_ms)?,
            None => None,
        };
        let request = LeaseRequest {
            call_sid: &body.call_sid,
            destination: &body.destination,
            sticky: sticky.as_ref(),
            now_ms,
            lease_ms: self.lease_ms,
        };
        match lease(&mut numbers, &request) {
            Some(number) => {
                self.store(&before, numbers)?;
                self.state.storage().sql().exec(
                    "INSERT OR IGNORE INTO pool_call_log (call_sid, at_ms, practitioner, patient_key, patient_number, pool_number, appointment_id)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        body.call_sid.clone().into(),
                        now_ms.into(),
                        body.practitioner.clone().map_or(SqlStorageValue::Null, SqlStorageValue::from),
                        body.patient_key.clone().map_or(SqlStorageValue::Null, SqlStorageValue::from),
                        body.destination.as_str().to_owned().into(),
                        number.as_str().to_owned().into(),
                        body.appointment_id.clone().map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    ],
                )?;
                self.state.storage().sql().exec(
                    "INSERT OR IGNORE INTO placed_calls (call_sid, at_ms) VALUES (?, ?)",
                    vec![body.call_sid.clone().into(), now_ms.into()],
                )?;
                if let Some(key) = &body.patient_key {
                    self.state.storage().sql().exec(
                        "INSERT INTO patient_stickiness (patient_key, e164, last_called_ms) VALUES (?, ?, ?)
                         ON CONFLICT(patient_key) DO UPDATE SET e164 = excluded.e164, last_called_ms = excluded.last_called_ms",
                        vec![key.clone().into(), number.as_str().to_owned().into(), now_ms.into()],
                    )?;
                }
                Response::from_json(&json!({"number": number}))
            }
            None => Ok(Response::from_json(&json!({"code": "no_line_free"}))?.with_status(409)),
        }
    }

    fn release(&self, body: ReleaseBody) -> Result<Response> {
        let before = self.load()?;
        let mut numbers = before.clone();
        let released = release(&mut numbers, &body.call_sid);
        if released {
            self.store(&before, numbers)?;
        }
        Response::from_json(&json!({"released": released}))
    }
}

impl DurableObject for NumberPool {
    fn new(state: State, env: Env) -> Self {
        let config = Config::from_env(&env);
        let lease_ms = config.pool_lease_ms();
        let schema = super::create_schema(&state, &SCHEMA).and_then(|()| {
            // Numbers configured with TWILIO_CALLER_IDS join the pool (existing rows are kept).
            if let Setting::Present(numbers) = &config.caller_ids {
                let sql = state.storage().sql();
                for number in numbers {
                    let country = country_of(number).map_or("??", |c| c.iso);
                    let inserted = sql
                        .exec(
                            "INSERT OR IGNORE INTO pool_numbers (e164, country, status) VALUES (?, ?, 'active')",
                            vec![number.as_str().to_owned().into(), country.to_owned().into()],
                        )?
                        .rows_written();
                    if inserted > 0 {
                        sql.exec(
                            "INSERT INTO pool_audit (at_ms, actor, action, detail) VALUES (?, 'config', 'add', ?)",
                            vec![super::now_ms().into(), number.as_str().to_owned().into()],
                        )?;
                    }
                }
            }
            Ok(())
        });
        Self {
            state,
            schema,
            lease_ms,
            pool: RefCell::new(None),
            last_pruned_ms: Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        let now_ms = super::now_ms();
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/lease") => match req.json::<LeaseBody>().await {
                Ok(body) => self.lease(body, now_ms),
                Err(_) => Response::error("bad lease request", 400),
            },
            (Method::Post, "/release") => match req.json::<ReleaseBody>().await {
                Ok(body) => self.release(body),
                Err(_) => Response::error("bad release request", 400),
            },
            (Method::Get, "/numbers") => {
                Response::from_json(&json!({"numbers": self.settled(now_ms)?}))
            }
            (Method::Post, "/numbers") => match req.json::<NumberBody>().await {
                Ok(body) => self.add_number(body, now_ms),
                Err(_) => Response::error("bad number request", 400),
            },
            (Method::Post, "/numbers/retire") => match req.json::<NumberBody>().await {
                Ok(body) => self.retire_number(body, now_ms),
                Err(_) => Response::error("bad retire request", 400),
            },
            (Method::Post, "/inbound-route") => match req.json::<InboundBody>().await {
                Ok(body) => self.inbound_route(body, now_ms),
                Err(_) => Response::error("bad inbound request", 400),
            },
            (Method::Get, "/audit") => {
                let rows: Vec<AuditRow> = self
                    .state
                    .storage()
                    .sql()
                    .exec(
                        "SELECT at_ms, actor, action, detail FROM pool_audit ORDER BY id",
                        None,
                    )?
                    .to_array()?;
                Response::from_json(&json!({"audit": rows}))
            }
            _ => super::answer_status(&self.state, "NumberPool", &TABLES, &req).await,
        }
    }
}
