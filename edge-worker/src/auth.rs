//! Who is calling: a clinician with a Medplum access token, or the signup flow with the
//! provisioning service secret. Runs before any handler logic; failures are 401s.

use shared::ids::PractitionerId;
use shared::jwt::{
    check_medplum_claims, check_medplum_header, JwtError, MedplumClaims, UnverifiedJwt,
};
use subtle::ConstantTimeEq;
use worker::Request;

use crate::config::Secret;
use crate::error::{AppError, CredentialProblem};
use crate::medplum::{Medplum, SignInStanding};
use crate::webcrypto::verify_rs256;

/// The bearer token of the request, if it has one.
pub fn bearer_token(req: &Request) -> Option<String> {
    let header = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn refused(error: &JwtError) -> AppError {
    let problem = match error {
        JwtError::Expired => CredentialProblem::Expired,
        _ => CredentialProblem::Invalid,
    };
    refuse_sign_in(error.name(), problem)
}

/// Refuses a clinician's sign-in: logs `clinician_token_refused` with `reason`, and answers 401
/// with `problem`. Every refusal of a clinician token goes through here.
pub fn refuse_sign_in(reason: &str, problem: CredentialProblem) -> AppError {
    crate::log::event("clinician_token_refused", &[("reason", reason)]);
    AppError::Unauthenticated(problem)
}

/// A clinician's verified Medplum sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub practitioner: PractitionerId,
    /// When the Medplum access token expires (its `exp`, seconds since the epoch).
    pub expires_unix: i64,
}

/// Verifies the clinician's Medplum access token (RS256 by Medplum's JWKS, issuer, expiry) and
/// returns the practitioner it belongs to.
pub async fn authenticate_clinician(
    req: &Request,
    medplum: &Medplum<'_>,
    now_unix: i64,
) -> Result<PractitionerId, AppError> {
    Ok(verify_sign_in(req, medplum, now_unix, false)
        .await?
        .practitioner)
}

/// [`authenticate_clinician`] for minting a calling token: the sign-in is confirmed with Medplum
/// afresh (not from the last minute's answer), and its end is returned.
pub async fn authenticate_sign_in(
    req: &Request,
    medplum: &Medplum<'_>,
    now_unix: i64,
) -> Result<SignIn, AppError> {
    verify_sign_in(req, medplum, now_unix, true).await
}

async fn verify_sign_in(
    req: &Request,
    medplum: &Medplum<'_>,
    now_unix: i64,
    fresh: bool,
) -> Result<SignIn, AppError> {
    let token = bearer_token(req).ok_or(AppError::Unauthenticated(CredentialProblem::Missing))?;
    let jwt = UnverifiedJwt::parse(&token).map_err(|e| refused(&e))?;
    let kid = check_medplum_header(&jwt.header).map_err(|e| refused(&e))?;
    let key = medplum
        .signing_key(kid)
        .await
        .map_err(|_| AppError::MedplumUnavailable)?
        .ok_or_else(|| refused(&JwtError::BadSignature))?;
    let verified = verify_rs256(&key, jwt.signing_input(), jwt.signature())
        .await
        .unwrap_or(false);
    if !verified {
        return Err(refused(&JwtError::BadSignature));
    }
    let claims: MedplumClaims = jwt.claims().map_err(|e| refused(&e))?;
    let practitioner =
        check_medplum_claims(&claims, &medplum.issuer(), now_unix).map_err(|e| refused(&e))?;
    // Signed out or revoked since the token was issued? Medplum's own answer, when it gives
    // one. When it cannot (an outage), the verified token stands: every clinician request that
    // reads from Medplum is then refused by Medplum itself, and calling needs Medplum anyway.
    // A token without a `login_id` is its own sign-in: named by its signature segment.
    let sign_in = match claims.login_id.as_deref() {
        Some(login_id) => login_id,
        None => token.rsplit('.').next().unwrap_or(&token),
    };
    match medplum.sign_in_standing(sign_in, &token, fresh).await {
        Ok(SignInStanding::Current) => {}
        Ok(SignInStanding::Ended) => {
            return Err(refuse_sign_in("SignInEnded", CredentialProblem::Invalid))
        }
        Err(error) => crate::log::event("sign_in_unconfirmed", &[("kind", &format!("{error:?}"))]),
    }
    Ok(SignIn {
        practitioner,
        expires_unix: claims.exp,
    })
}

/// Checks `Authorization: Bearer <PROVISIONING_SECRET>` in constant time.
pub fn authenticate_service(req: &Request, secret: &Secret) -> Result<(), AppError> {
    let token = bearer_token(req).ok_or(AppError::Unauthenticated(CredentialProblem::Missing))?;
    if bool::from(token.as_bytes().ct_eq(secret.expose().as_bytes())) {
        Ok(())
    } else {
        crate::log::event("service_credentials_refused", &[]);
        Err(AppError::Unauthenticated(CredentialProblem::Invalid))
    }
}
