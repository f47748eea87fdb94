//! `POST /api/v1/twilio/access-token`: a Twilio Voice token for the signed-in clinician, and the
//! signaling URL the browser connects to with it.

use serde::Serialize;
use shared::access_token::{mint, TokenRequest};
use shared::ids::Identity;
use worker::{Env, Request};

use crate::auth::{authenticate_sign_in, refuse_sign_in};
use crate::clinicians::{calling_clinician, ensure_identity};
use crate::config::Config;
use crate::error::{AppError, CredentialProblem};
use crate::reply::Reply;

/// The rate-limit binding for token requests (per clinician; see wrangler.toml).
const TOKEN_RATE_LIMITER: &str = "TOKEN_RATE_LIMITER";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenReply {
    token: String,
    identity: String,
    expires_at: String,
    ttl_seconds: u32,
    /// `TWILIO_SIGNALING_URL`: Twilio's signaling WebSocket (sim/twilio locally).
    signaling_url: String,
}

/// Applies the per-clinician limit. A missing binding is logged and not enforced: the limit
/// protects against abuse, and refusing every clinician for a deployment mistake would not.
async fn within_rate_limit(env: &Env, key: &str) -> Result<(), AppError> {
    match env.rate_limiter(TOKEN_RATE_LIMITER) {
        Ok(limiter) => match limiter.limit(key.to_owned()).await {
            Ok(outcome) if !outcome.success => Err(AppError::RateLimited),
            _ => Ok(()),
        },
        Err(_) => {
            crate::log::event("rate_limiter_missing", &[("binding", TOKEN_RATE_LIMITER)]);
            Ok(())
        }
    }
}

pub async fn issue(
    req: &Request,
    env: &Env,
    config: &Config,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let medplum = crate::medplum_client(config)?;
    let sign_in = authenticate_sign_in(req, &medplum, now_unix).await?;
    let practitioner = sign_in.practitioner;
    within_rate_limit(env, practitioner.as_str()).await?;
    let clinician = calling_clinician(&medplum, &practitioner).await?;

    let account_sid = config.twilio_account_sid.require("TWILIO_ACCOUNT_SID")?;
    let api_key = config.twilio_api_key.require("TWILIO_API_KEY")?;
    let api_secret = config.twilio_api_secret.require("TWILIO_API_SECRET")?;
    let twiml_app_sid = config
        .twilio_twiml_app_sid
        .require("TWILIO_TWIML_APP_SID")?;
    // A calling token never outlives the Medplum sign-in it was issued on: a clinician whose
    // sign-in has ended (or been cut short) cannot go on calling on an earlier token.
    let ttl = config
        .token_ttl()?
        .within_sign_in(now_unix, sign_in.expires_unix)
        .ok_or_else(|| refuse_sign_in("SignInEndsWithinAMinute", CredentialProblem::Expired))?;
    let signaling_url = config.twilio_signaling_url()?;

    // The signup flow normally provisions the identity; do it now if it did not. The token's
    // identity is the Practitioner id whether or not the identifier is written, so a write Medplum
    // refuses or cannot take now does not keep the clinician from calling: it is logged and tried
    // again at the next token. An identifier holding another value is a conflict to resolve.
    match ensure_identity(&medplum, clinician).await {
        Ok(_) => {}
        Err(AppError::IdentityConflict) => return Err(AppError::IdentityConflict),
        Err(error) => crate::log::event(
            "identity_provisioning_deferred",
            &[
                ("practitioner", practitioner.as_str()),
                ("error", error.code()),
            ],
        ),
    }

    let identity = Identity::from(&practitioner);
    let minted = mint(&TokenRequest {
        account_sid,
        api_key,
        api_secret: api_secret.expose(),
        twiml_app_sid,
        identity: &identity,
        ttl,
        now_unix,
    })
    .map_err(|_| AppError::Internal)?;
    crate::log::event("token_issued", &[("practitioner", practitioner.as_str())]);
    Ok(Reply::json(
        200,
        &TokenReply {
            token: minted.jwt,
            identity: identity.to_string(),
            expires_at: shared::time::rfc3339_utc(minted.expires_at_unix),
            ttl_seconds: ttl.seconds(),
            signaling_url: signaling_url.as_str().to_owned(),
        },
    ))
}
