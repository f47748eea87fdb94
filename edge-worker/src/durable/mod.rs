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

use worker::{Env, Response, Result, State};

use crate::handlers::health::StorageProbe;

/// Each Durable Object binding, its class, and the instance name the health probe uses.
const BINDINGS: [(&str, &str, &str); 3] = [
    ("NUMBER_POOL", "NumberPool", "pool"),
    ("CALL_LEDGER", "CallLedger", "health-probe"),
    ("TELEMETRY", "Telemetry", "telemetry"),
];

/// Asks every Durable Object for its status (the deep health check).
pub async fn probe_all(env: &Env) -> Vec<(&'static str, StorageProbe)> {
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
