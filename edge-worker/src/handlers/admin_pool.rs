//! `/api/v1/admin/number-pool`: list, add and retire caller-ID numbers (admin bearer token);
//! every change is audited in the pool. `…/leases` leases and releases a number directly, for
//! diagnostics and the concurrency check (no Medplum involved).

use serde::Deserialize;
use serde_json::{json, Value};
use shared::ids::{CallSid, E164};
use worker::{Env, Method, Request};

use crate::auth::authenticate_service;
use crate::config::Config;
use crate::durable::{call, NUMBER_POOL_INSTANCE};
use crate::error::AppError;
use crate::reply::Reply;

#[derive(Deserialize)]
struct NumberRequest {
    number: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRequest {
    call_sid: String,
    destination: String,
}

async fn pool(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), AppError> {
    call(env, "NUMBER_POOL", NUMBER_POOL_INSTANCE, method, path, body)
        .await
        .map_err(|_| AppError::StorageUnavailable)
}

pub fn admin(req: &Request, config: &Config) -> Result<(), AppError> {
    authenticate_service(req, config.admin_token.require("ADMIN_TOKEN")?)
}

async fn number_of(req: &mut Request) -> Result<E164, AppError> {
    let body: NumberRequest = crate::body::json(req, "expected {\"number\": \"+44…\"}").await?;
    E164::parse(body.number.trim())
        .map_err(|_| AppError::BadRequest("the number must be in E.164 form, e.g. +447700900001"))
}

/// GET (list + audit), POST (add), DELETE (retire) on the pool.
pub async fn number_pool(
    req: &mut Request,
    env: &Env,
    config: &Config,
    method: &str,
) -> Result<Reply, AppError> {
    admin(req, config)?;
    let (status, answer) = match method {
        "GET" => {
            let (_, numbers) = pool(env, Method::Get, "/numbers", None).await?;
            let (_, audit) = pool(env, Method::Get, "/audit", None).await?;
            return Ok(Reply::json(
                200,
                &json!({"numbers": numbers["numbers"], "audit": audit["audit"]}),
            ));
        }
        "POST" => {
            let number = number_of(req).await?;
            crate::log::event("pool_number_added", &[]);
            pool(
                env,
                Method::Post,
                "/numbers",
                Some(&json!({"number": number, "actor": "admin"})),
            )
            .await?
        }
        _ => {
            let number = number_of(req).await?;
            crate::log::event("pool_number_retired", &[]);
            pool(
                env,
                Method::Post,
                "/numbers/retire",
                Some(&json!({"number": number, "actor": "admin"})),
            )
            .await?
        }
    };
    match status {
        200 => Ok(Reply::json(200, &answer)),
        404 => Err(AppError::BadRequest("that number is not in the pool")),
        _ => Err(AppError::StorageUnavailable),
    }
}

/// POST `/admin/number-pool/leases` (lease) and DELETE `/admin/number-pool/leases/{callSid}`.
pub async fn leases(
    req: &mut Request,
    env: &Env,
    config: &Config,
    release: Option<&str>,
) -> Result<Reply, AppError> {
    admin(req, config)?;
    if let Some(call_sid) = release {
        let (status, answer) = pool(
            env,
            Method::Post,
            "/release",
            Some(&json!({"callSid": call_sid})),
        )
        .await?;
        return match status {
            200 => Ok(Reply::json(200, &answer)),
            _ => Err(AppError::StorageUnavailable),
        };
    }
    let body: LeaseRequest =
        crate::body::json(req, "expected {\"callSid\", \"destination\"}").await?;
    // Only a call SID: the release (`DELETE …/leases/{callSid}`) routes nothing else, so a lease
    // taken under another name could not be given back until it expired.
    let call_sid = CallSid::parse(&body.call_sid).map_err(|_| {
        AppError::BadRequest("callSid must be a Twilio call SID: CA and 32 hex digits")
    })?;
    let destination = E164::parse(&body.destination)
        .map_err(|_| AppError::BadRequest("destination must be E.164"))?;
    let (status, answer) = pool(
        env,
        Method::Post,
        "/lease",
        Some(&json!({"callSid": call_sid.as_str(), "destination": destination})),
    )
    .await?;
    match status {
        200 => Ok(Reply::json(200, &answer)),
        409 => Ok(Reply::json(
            409,
            &json!({"error": {"code": "no_line_free", "message": "every number in the pool is in a call"}}),
        )),
        410 => Ok(Reply::json(
            409,
            &json!({"error": {"code": "call_already_placed", "message": "this call already had a line; a released call is not leased again"}}),
        )),
        _ => Err(AppError::StorageUnavailable),
    }
}
