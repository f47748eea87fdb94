//! Telemetry endpoints: `POST /api/v1/telemetry/manual-fallback` (the browser module reports
//! that it offered manual dialing, and why: a code, nothing else) and `GET
//! /api/v1/admin/call-stats` (answer rate, outcomes and talk time per pool number and per day,
//! from the Telemetry Durable Object; admin bearer).

use serde::Deserialize;
use worker::{Env, Method, Request};

use crate::auth::authenticate_clinician;
use crate::config::Config;
use crate::durable::call;
use crate::error::AppError;
use crate::reply::Reply;
use crate::telemetry::TELEMETRY_INSTANCE;

#[derive(Deserialize)]
struct FallbackReport {
    reason: String,
}

pub async fn manual_fallback(
    req: &mut Request,
    config: &Config,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let medplum = crate::medplum_client(config)?;
    authenticate_clinician(req, &medplum, now_unix).await?;
    let report: FallbackReport =
        crate::body::json(req, "expected {\"reason\": \"<code>\"}").await?;
    let reason = shared::telemetry::code(&report.reason);
    crate::log::event("manual_fallback", &[("reason", &reason)]);
    crate::telemetry::emit(shared::telemetry::Event::ManualFallback { reason });
    Ok(Reply::json(202, &serde_json::json!({"accepted": true})))
}

pub async fn call_stats(req: &Request, env: &Env, config: &Config) -> Result<Reply, AppError> {
    crate::handlers::admin_pool::admin(req, config)?;
    match call(
        env,
        "TELEMETRY",
        TELEMETRY_INSTANCE,
        Method::Get,
        "/stats",
        None,
    )
    .await
    {
        Ok((200, stats)) => Ok(Reply::json(200, &stats)),
        _ => Err(AppError::StorageUnavailable),
    }
}
