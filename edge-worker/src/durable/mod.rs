//! The worker's SQLite-backed Durable Objects and what they share.
//!
//! - [`number_pool::NumberPool`], one per environment: caller-ID numbers, leases, stickiness.
//! - [`call_ledger::CallLedger`], one per appointment: call records and the FHIR outbox.
//! - [`telemetry::Telemetry`], one per environment: rolling windows for alert rules.
//!
//! Each creates its schema when constructed and answers `GET /status` with its row counts, so a
//! deployment can be checked end to end. Their operations arrive with the issues that need them.

pub mod call_ledger;
pub mod number_pool;
pub mod telemetry;

use serde_json::Value;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Result, State};

use crate::handlers::health::StorageProbe;

/// The one NumberPool instance of an environment.
pub const NUMBER_POOL_INSTANCE: &str = "pool";

/// Each Durable Object binding, its class, and the instance name the health probe uses.
const BINDINGS: [(&str, &str, &str); 3] = [
    ("NUMBER_POOL", "NumberPool", NUMBER_POOL_INSTANCE),
    ("CALL_LEDGER", "CallLedger", "health-probe"),
    ("TELEMETRY", "Telemetry", "telemetry"),
];

type Probes = Vec<(&'static str, StorageProbe)>;

thread_local! {
    /// This isolate's last deep probe and when it was taken (ms).
    static LAST_PROBES: std::cell::RefCell<Option<(i64, Probes)>> =
        const { std::cell::RefCell::new(None) };
}

/// A deep probe younger than this answers the next deep health check: the check is public, and
/// each probe is a request to the environment's one NumberPool, which every call needs.
const PROBES_REUSED_FOR_MS: i64 = 10_000;

/// Asks every Durable Object for its status (the deep health check), or reuses this isolate's
/// answer of the last [`PROBES_REUSED_FOR_MS`].
pub async fn probe_all(env: &Env) -> Probes {
    let now = now_ms();
    let recent = LAST_PROBES.with(|last| {
        last.borrow()
            .as_ref()
            .filter(|(at, _)| now.saturating_sub(*at) < PROBES_REUSED_FOR_MS)
            .map(|(_, probes)| probes.clone())
    });
    if let Some(probes) = recent {
        return probes;
    }
    let probes = probe_each(env).await;
    LAST_PROBES.with(|last| *last.borrow_mut() = Some((now, probes.clone())));
    probes
}

async fn probe_each(env: &Env) -> Probes {
    let mut probes = Vec::with_capacity(BINDINGS.len());
    for (binding, class, instance) in BINDINGS {
        let outcome = match probe(env, binding, instance).await {
            Ok(true) => StorageProbe::Ok,
            _ => StorageProbe::Failed,
        };
        probes.push((class, outcome));
    }
    probes
}

async fn probe(env: &Env, binding: &str, instance: &str) -> Result<bool> {
    let stub = env.durable_object(binding)?.get_by_name(instance)?;
    let response = stub.fetch_with_str("https://durable-object/status").await?;
    Ok(response.status_code() == 200)
}

/// Creates tables (idempotent `CREATE TABLE IF NOT EXISTS` statements).
fn create_schema(state: &State, statements: &[&str]) -> Result<()> {
    let sql = state.storage().sql();
    for statement in statements {
        sql.exec(statement, None)?;
    }
    Ok(())
}

/// The runtime's clock in milliseconds (Durable Objects and the worker share it).
pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// Asks the number pool to give back the line `call_sid` holds; true once the pool confirmed it
/// (a call that held no line is confirmed too).
pub async fn release_line(env: &Env, call_sid: &str) -> bool {
    let body = serde_json::json!({ "callSid": call_sid });
    let answer = call(
        env,
        "NUMBER_POOL",
        NUMBER_POOL_INSTANCE,
        Method::Post,
        "/release",
        Some(&body),
    )
    .await;
    matches!(answer, Ok((status, _)) if (200..300).contains(&status))
}

/// Sends a JSON request to a named Durable Object instance and returns its status and JSON body.
pub async fn call(
    env: &Env,
    binding: &str,
    instance: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let stub = env.durable_object(binding)?.get_by_name(instance)?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.to_string().into()));
    }
    let request = Request::new_with_init(&format!("https://durable-object{path}"), &init)?;
    let mut response = stub.fetch_with_request(request).await?;
    let status = response.status_code();
    let text = response.text().await?;
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((status, value))
}

#[derive(serde::Deserialize)]
struct RowCount {
    n: i64,
}

/// `{"object": name, "tables": {table: rows}}` for the `GET /status` probe.
fn status_response(state: &State, object: &str, tables: &[&str]) -> Result<Response> {
    let sql = state.storage().sql();
    let mut counts = serde_json::Map::new();
    for table in tables {
        let row: RowCount = sql
            .exec(&format!("SELECT COUNT(*) AS n FROM {table}"), None)?
            .one()?;
        counts.insert((*table).to_owned(), row.n.into());
    }
    Response::from_json(&serde_json::json!({"object": object, "tables": counts}))
}

/// The one request every object answers until its issue gives it more.
async fn answer_status(
    state: &State,
    object: &str,
    tables: &[&str],
    req: &worker::Request,
) -> Result<Response> {
    if req.method() == worker::Method::Get && req.path() == "/status" {
        status_response(state, object, tables)
    } else {
        Response::error("unknown durable object operation", 404)
    }
}
