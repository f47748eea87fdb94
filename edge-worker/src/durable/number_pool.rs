//! `NumberPool` Durable Object: the shared pool of Twilio caller-ID numbers (one per environment).

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

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

#[durable_object]
pub struct NumberPool {
    state: State,
    schema: Result<()>,
}

impl DurableObject for NumberPool {
    fn new(state: State, _env: Env) -> Self {
        let schema = super::create_schema(&state, &SCHEMA);
        Self { state, schema }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if let Err(error) = &self.schema {
            return Response::error(format!("schema: {error}"), 500);
        }
        super::answer_status(&self.state, "NumberPool", &TABLES, &req).await
    }
}
