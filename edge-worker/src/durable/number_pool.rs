//! `NumberPool` Durable Object: the shared pool of Twilio caller-ID numbers (one per environment).
//!
//! Operations (JSON over the stub's fetch):
//! - `POST /lease {callSid, destination, patientKey?}` → `{number}` or 409 `{code: "no_line_free"}`
//! - `POST /release {callSid}` → `{released}`
//! - `GET /numbers` → the pool with leases; `GET /status` → row counts.
//!
//! Each operation loads the pool, decides with `shared::number_pool`, and writes back without
//! awaiting in between, so no two requests interleave inside a lease: a number is never leased
//! to two live calls.

use serde::Deserialize;
use serde_json::json;
use shared::dial_policy::country_of;
use shared::ids::E164;
use shared::number_pool::{lease, release, Lease, LeaseRequest, NumberStatus, PoolNumber};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorageValue, State,
};

use crate::config::{Config, Setting};

const TABLES: [&str; 3] = ["pool_numbers", "patient_stickiness", "pool_audit"];
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS pool_numbers (
        e164 TEXT PRIMARY KEY, country TEXT NOT NULL, status TEXT NOT NULL,
        last_used_ms INTEGER NOT NULL DEFAULT 0,
        lease_call_sid TEXT, lease_expires_ms INTEGER)",
    "CREATE TABLE IF NOT EXISTS patient_stickiness (
        patient_key TEXT PRIMARY KEY, e164 TEXT NOT NULL, last_called_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pool_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL)",
];

/// How long the number that last called a patient stays preferred for them.
const STICKINESS_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[durable_object]
pub struct NumberPool {
    state: State,
    schema: Result<()>,
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
struct LeaseBody {
    call_sid: String,
    destination: E164,
    patient_key: Option<String>,
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
    fn load(&self) -> Result<Vec<PoolNumber>> {
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

    fn store(&self, numbers: &[PoolNumber]) -> Result<()> {
        let sql = self.state.storage().sql();
        for n in numbers {
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

    fn lease(&self, body: LeaseBody, now_ms: i64) -> Result<Response> {
        let mut numbers = self.load()?;
        let sticky = match &body.patient_key {
            Some(key) => self.sticky_for(key, now_ms)?,
            None => None,
        };
        let request = LeaseRequest {
            call_sid: &body.call_sid,
            destination: &body.destination,
            sticky: sticky.as_ref(),
            now_ms,
        };
        match lease(&mut numbers, &request) {
            Some(number) => {
                self.store(&numbers)?;
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
        let mut numbers = self.load()?;
        let released = release(&mut numbers, &body.call_sid);
        if released {
            self.store(&numbers)?;
        }
        Response::from_json(&json!({"released": released}))
    }
}

impl DurableObject for NumberPool {
    fn new(state: State, env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA).and_then(|()| {
            // Numbers configured with TWILIO_CALLER_IDS join the pool (existing rows are kept).
            if let Setting::Present(numbers) = &Config::from_env(&env).caller_ids {
                let sql = state.storage().sql();
                for number in numbers {
                    let country = country_of(number).map_or("??", |c| c.iso);
                    sql.exec(
                        "INSERT OR IGNORE INTO pool_numbers (e164, country, status) VALUES (?, ?, 'active')",
                        vec![number.as_str().to_owned().into(), country.to_owned().into()],
                    )?;
                }
            }
            Ok(())
        });
        Self { state, schema }
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
            (Method::Get, "/numbers") => Response::from_json(&json!({"numbers": self.load()?})),
            _ => super::answer_status(&self.state, "NumberPool", &TABLES, &req).await,
        }
    }
}
