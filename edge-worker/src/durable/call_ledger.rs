//! `CallLedger` Durable Object: the authoritative call records of one appointment and the outbox
//! of FHIR writes that carries them to Medplum.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

const TABLES: [&str; 3] = ["calls", "call_events", "fhir_outbox"];
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS calls (
        call_sid TEXT PRIMARY KEY, record_json TEXT NOT NULL, updated_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS call_events (
        call_sid TEXT NOT NULL, sequence_number INTEGER NOT NULL, event_json TEXT NOT NULL,
        PRIMARY KEY (call_sid, sequence_number))",
    "CREATE TABLE IF NOT EXISTS fhir_outbox (
        call_sid TEXT PRIMARY KEY, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL, last_error TEXT)",
];

#[durable_object]
pub struct CallLedger {
    state: State,
    schema: Result<()>,
}

impl DurableObject for CallLedger {
    fn new(state: State, _env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA);
        Self { state, schema }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        super::answer_status(&self.state, "CallLedger", &TABLES, &req).await
    }
}
