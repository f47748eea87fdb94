//! The Cloudflare Worker: routes `/api/v1/*` requests to thin handlers over `shared`, maps every
//! error to a JSON response in one place, and hosts the Durable Objects.
//!
//! Every request runs the worker first (`[assets] run_worker_first`): `/api/*` goes to the router;
//! anything else is a static page (`www/`), served from the assets binding with the CSP of this
//! environment (`page`).

pub mod auth;
pub mod body;
pub mod clinicians;
pub mod config;
pub mod durable;
pub mod error;
pub mod handlers;
pub mod log;
pub mod medplum;
pub mod page;
pub mod reply;
pub mod router;
pub mod telemetry;
pub mod twilio_rest;
pub mod twilio_webhook;
pub mod webcrypto;

use worker::{event, Context, Env, Headers, Request, Response, Result};

use crate::config::Config;
use crate::error::AppError;
use crate::reply::Reply;
use crate::router::{Endpoint, Route};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let response = respond(req, &env).await;
    // Telemetry goes out after the response, so no webhook waits for it.
    telemetry::flush_after_response(&env, &ctx);
    response
}

async fn respond(mut req: Request, env: &Env) -> Result<Response> {
    let env = env.clone();
    let config = Config::from_env(&env);
    if !router::is_api(&req.path()) {
        return match page::serve(req, &env, &config).await {
            Ok(page) => Ok(page),
            Err(error) => into_response(error.into_reply(), false),
        };
    }
    // The method as received: `worker::Method` reads any method it does not know (QUERY,
    // PROPFIND, …) as GET, which would answer it as a GET instead of 405.
    let method = req.inner().method();
    let route = router::route(&method, &req.path());
    // The one streaming endpoint passes the Durable Object's response through.
    if let Ok(Route {
        endpoint: Endpoint::AppointmentCallEvents(appointment),
        ..
    }) = &route
    {
        return match handlers::appointment_call::events(
            &req,
            &env,
            &config,
            appointment,
            now_unix(),
        )
        .await
        {
            Ok(stream) => Ok(stream),
            Err(error) => into_response(error.into_reply(), false),
        };
    }
    let reply = match route {
        Ok(route) => dispatch(route, &mut req, &env, &config).await,
        Err(error) => Err(AppError::from(error)),
    }
    .unwrap_or_else(AppError::into_reply);
    let head_only = method == "HEAD";
    into_response(reply, head_only)
}

async fn dispatch(
    route: Route,
    req: &mut Request,
    env: &Env,
    config: &Config,
) -> std::result::Result<Reply, AppError> {
    match route.endpoint {
        Endpoint::Health => {
            let deep = query_flag(req, "deep");
            let probes = if deep {
                Some(durable::probe_all(env).await)
            } else {
                None
            };
            Ok(handlers::health::health(config, probes.as_deref()))
        }
        Endpoint::AccessToken => {
            let issued = handlers::access_token::issue(req, env, config, now_unix()).await;
            if let Err(refusal) = &issued {
                telemetry::emit(shared::telemetry::Event::TokenRefused {
                    reason: refusal.code().to_owned(),
                });
            }
            issued
        }
        Endpoint::TwilioIdentity(practitioner) => {
            handlers::twilio_identity::provision(req, config, &practitioner).await
        }
        Endpoint::DevSignIn => handlers::dev_sign_in::sign_in(req, config).await,
        Endpoint::VoiceWebhook => handlers::voice::voice(req, env, config).await,
        Endpoint::CallStatusWebhook => {
            handlers::call_status::call_status(req, env, config, now_unix()).await
        }
        Endpoint::DialCompleteWebhook => {
            handlers::call_status::dial_complete(req, env, config, now_unix()).await
        }
        Endpoint::Appointments => handlers::appointments::list(req, config, now_unix()).await,
        Endpoint::AppointmentCalls(appointment) => {
            handlers::appointment_call::list(req, env, config, &appointment, now_unix()).await
        }
        Endpoint::InboundWebhook => handlers::inbound::inbound(req, env, config).await,
        Endpoint::InboundCompleteWebhook => {
            handlers::inbound::inbound_complete(req, env, config, now_unix()).await
        }
        Endpoint::PracticeCompleteWebhook => {
            handlers::inbound::practice_complete(req, config).await
        }
        Endpoint::AdminNumberPool => {
            handlers::admin_pool::number_pool(req, env, config, route.method).await
        }
        Endpoint::AdminLeases => handlers::admin_pool::leases(req, env, config, None).await,
        Endpoint::AdminCallStats => handlers::telemetry::call_stats(req, env, config).await,
        Endpoint::AdminAppointmentCalls(appointment) => {
            handlers::appointment_call::admin_calls(req, env, config, &appointment).await
        }
        Endpoint::ManualFallbackReport => {
            handlers::telemetry::manual_fallback(req, config, now_unix()).await
        }
        Endpoint::AdminLease(call_sid) => {
            handlers::admin_pool::leases(req, env, config, Some(call_sid.as_str())).await
        }
        // Answered before dispatch (a stream, not a Reply).
        Endpoint::AppointmentCallEvents(_) => Err(AppError::Internal),
        Endpoint::EndAppointmentCall(appointment) => {
            handlers::appointment_call::end(req, env, config, &appointment, now_unix()).await
        }
    }
}

/// The current time in Unix seconds (the worker's clock; `shared` never reads one).
fn now_unix() -> i64 {
    i64::try_from(worker::Date::now().as_millis() / 1000).unwrap_or(i64::MAX)
}

/// The Medplum client for this request, or 503 naming the missing setting.
pub fn medplum_client(config: &Config) -> std::result::Result<medplum::Medplum<'_>, AppError> {
    Ok(medplum::Medplum::new(
        config.medplum_base_url.require("MEDPLUM_BASE_URL")?,
        config.medplum_client_id.require("MEDPLUM_CLIENT_ID")?,
        config
            .medplum_client_secret
            .require("MEDPLUM_CLIENT_SECRET")?,
    ))
}

/// Whether the request's query has `name=1`. Reads the raw URL rather than `Request::url()`,
/// which would link the `url` crate into the worker.
fn query_flag(req: &Request, name: &str) -> bool {
    let raw_url = req.inner().url();
    shared::form::parse(shared::form::query_of(&raw_url))
        .map(|pairs| pairs.iter().any(|(k, v)| k == name && v == "1"))
        .unwrap_or(false)
}

/// Headers every API response carries.
const API_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

fn into_response(reply: Reply, head_only: bool) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in API_HEADERS {
        headers.set(name, value)?;
    }
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    let body = if head_only {
        Vec::new()
    } else {
        reply.body.into_bytes()
    };
    Ok(Response::from_bytes(body)?
        .with_status(reply.status)
        .with_headers(headers))
}
