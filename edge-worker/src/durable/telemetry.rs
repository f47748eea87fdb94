//! `Telemetry` Durable Object: rolling windows behind the alert rules, and alert deduplication.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

const TABLES: [&str; 2] = ["outcome_windows", "alert_state"];
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS outcome_windows (
        window_start_ms INTEGER NOT NULL, series TEXT NOT NULL, outcome TEXT NOT NULL,
        count INTEGER NOT NULL, PRIMARY KEY (window_start_ms, series, outcome))",
    "CREATE TABLE IF NOT EXISTS alert_state (
        rule TEXT PRIMARY KEY, firing INTEGER NOT NULL, since_ms INTEGER NOT NULL,
        last_sent_ms INTEGER NOT NULL)",
];

#[durable_object]
pub struct Telemetry {
    state: State,
    schema: Result<()>,
}

impl DurableObject for Telemetry {
    fn new(state: State, _env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA);
        Self { state, schema }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        super::answer_status(&self.state, "Telemetry", &TABLES, &req).await
    }
}
