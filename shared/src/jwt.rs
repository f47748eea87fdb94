//! JSON Web Tokens, sans-IO: parsing, HS256 signing (Twilio access tokens), and the rules a
//! Medplum user access token must pass before the worker trusts it.
//!
//! RS256 signature verification itself needs an RSA implementation; the worker does it with
//! WebCrypto on the [`UnverifiedJwt::signing_input`] and [`UnverifiedJwt::signature`] this module
//! extracts. Everything else (algorithm pinning, issuer, expiry, profile) is decided here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

use crate::ids::PractitionerId;

/// Why a token was refused. The variants map to distinct API error codes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token names no signing key")]
    MissingKeyId,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token does not belong to a practitioner")]
    NotAPractitioner,
    #[error("the token is too large")]
    TooLarge,
}

impl JwtError {
    /// The refusal's name, for logs: never the token's own text (a refused algorithm is
    /// whatever the sender chose to write there).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Malformed => "Malformed",
            Self::AlgorithmNotAllowed(_) => "AlgorithmNotAllowed",
            Self::MissingKeyId => "MissingKeyId",
            Self::BadSignature => "BadSignature",
            Self::Expired => "Expired",
            Self::NotYetValid => "NotYetValid",
            Self::WrongIssuer => "WrongIssuer",
            Self::NotAPractitioner => "NotAPractitioner",
            Self::TooLarge => "TooLarge",
        }
    }
}

/// The JOSE header fields we look at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
}

/// A parsed but not yet verified token.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt<'a> {
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Tokens larger than this are refused before any decoding (Medplum's are ~1 KB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

impl<'a> UnverifiedJwt<'a> {
    /// Splits and decodes `header.payload.signature`.
    pub fn parse(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Header =
            serde_json::from_slice(&b64(header)?).map_err(|_| JwtError::Malformed)?;
        let signing_input_len = token.len() - signature.len() - 1;
        Ok(Self {
            header,
            signing_input: &token[..signing_input_len],
            payload: b64(payload)?,
            signature: b64(signature)?,
        })
    }

    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Decodes the claims into `T`.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JwtError> {
        serde_json::from_slice(&self.payload).map_err(|_| JwtError::Malformed)
    }

    /// Verifies an HS256 signature in constant time (used by the Twilio simulator and tests).
    pub fn verify_hs256(&self, secret: &[u8]) -> Result<(), JwtError> {
        if self.header.alg != "HS256" {
            return Err(JwtError::AlgorithmNotAllowed(self.header.alg.clone()));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::BadSignature)?;
        mac.update(self.signing_input());
        mac.verify_slice(&self.signature)
            .map_err(|_| JwtError::BadSignature)
    }
}

/// Encodes and signs a token with HMAC-SHA256.
pub fn encode_hs256(
    header: &Header,
    claims: &impl Serialize,
    secret: &[u8],
) -> Result<String, JwtError> {
    let header_json = serde_json::to_vec(header).map_err(|_| JwtError::Malformed)?;
    let claims_json = serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?;
    sign_hs256_json(&header_json, &claims_json, secret)
}

/// Length of an HS256 signature in unpadded base64url (32 bytes).
const HS256_SIGNATURE_BASE64_LEN: usize = 43;

/// An upper bound on the unpadded base64 length of `len` bytes.
fn base64_len_bound(len: usize) -> usize {
    len.div_ceil(3).saturating_mul(4)
}

/// `base64url(header_json) "." base64url(claims_json) "." base64url(HMAC-SHA256)`, built in one
/// string sized up front; the MAC reads the signing input where it already lies in the token.
pub(crate) fn sign_hs256_json(
    header_json: &[u8],
    claims_json: &[u8],
    secret: &[u8],
) -> Result<String, JwtError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::BadSignature)?;
    let capacity = base64_len_bound(header_json.len())
        .saturating_add(base64_len_bound(claims_json.len()))
        .saturating_add(2 + HS256_SIGNATURE_BASE64_LEN);
    let mut token = String::with_capacity(capacity);
    URL_SAFE_NO_PAD.encode_string(header_json, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    Ok(token)
}

/// The claims of a Medplum user access token that the worker relies on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MedplumClaims {
    pub iss: String,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub login_id: Option<String>,
    /// `Practitioner/<id>` for a clinician.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Allowed clock difference between Medplum and the worker for `nbf` (not for `exp`).
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Header rules for a Medplum token, checked before any key is fetched: RS256 only (so `none`
/// and HS256-signed-with-the-public-key are refused), and a `kid` to pick the JWKS key with.
pub fn check_medplum_header(header: &Header) -> Result<&str, JwtError> {
    if header.alg != "RS256" {
        return Err(JwtError::AlgorithmNotAllowed(header.alg.clone()));
    }
    header.kid.as_deref().ok_or(JwtError::MissingKeyId)
}

/// Claim rules for a Medplum token whose signature has verified: issuer, expiry, and a
/// Practitioner profile. Returns the practitioner.
pub fn check_medplum_claims(
    claims: &MedplumClaims,
    expected_issuer: &str,
    now_unix: i64,
) -> Result<PractitionerId, JwtError> {
    if claims.iss.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
        return Err(JwtError::WrongIssuer);
    }
    if now_unix >= claims.exp {
        return Err(JwtError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now_unix.saturating_add(CLOCK_SKEW_SECONDS) < nbf)
    {
        return Err(JwtError::NotYetValid);
    }
    claims
        .profile
        .as_deref()
        .and_then(|profile| profile.strip_prefix("Practitioner/"))
        .and_then(|id| PractitionerId::parse(id).ok())
        .ok_or(JwtError::NotAPractitioner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iss: &str, exp: i64, profile: Option<&str>) -> MedplumClaims {
        MedplumClaims {
            iss: iss.into(),
            exp,
            nbf: None,
            sub: Some("user-1".into()),
            login_id: Some("login".into()),
            profile: profile.map(Into::into),
        }
    }

    #[test]
    fn hs256_round_trip_and_tamper_detection() {
        let header = Header {
            alg: "HS256".into(),
            kid: None,
            typ: Some("JWT".into()),
            cty: None,
        };
        let token = encode_hs256(&header, &serde_json::json!({"a": 1}), b"secret").unwrap();
        let parsed = UnverifiedJwt::parse(&token).unwrap();
        assert_eq!(parsed.verify_hs256(b"secret"), Ok(()));
        assert_eq!(parsed.verify_hs256(b"other"), Err(JwtError::BadSignature));
        let value: serde_json::Value = parsed.claims().unwrap();
        assert_eq!(value["a"], 1);

        // Flip one character of the payload: the signature no longer matches.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"a":2}"#);
        let tampered = parts.join(".");
        let parsed = UnverifiedJwt::parse(&tampered).unwrap();
        assert_eq!(parsed.verify_hs256(b"secret"), Err(JwtError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let table = [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.e30.sig",
            "e30.e30.!!",
            "bm90IGpzb24.e30.c2ln",
        ];
        for token in table {
            assert!(UnverifiedJwt::parse(token).is_err(), "{token:?}");
        }
        assert_eq!(
            UnverifiedJwt::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).err(),
            Some(JwtError::TooLarge)
        );
    }

    #[test]
    fn medplum_header_accepts_only_rs256_with_a_key_id() {
        let header = |alg: &str, kid: Option<&str>| Header {
            alg: alg.into(),
            kid: kid.map(Into::into),
            typ: Some("JWT".into()),
            cty: None,
        };
        assert_eq!(check_medplum_header(&header("RS256", Some("k1"))), Ok("k1"));
        assert_eq!(
            check_medplum_header(&header("RS256", None)),
            Err(JwtError::MissingKeyId)
        );
        for alg in ["none", "HS256", "RS512", "ES256", "rs256", ""] {
            assert_eq!(
                check_medplum_header(&header(alg, Some("k1"))),
                Err(JwtError::AlgorithmNotAllowed(alg.into())),
                "{alg}"
            );
        }
    }

    #[test]
    fn medplum_claims_rules() {
        let iss = "http://127.0.0.1:8103/";
        let now = 1_800_000_000;
        let table: &[(MedplumClaims, Result<&str, JwtError>)] = &[
            (claims(iss, now + 60, Some("Practitioner/dr-1")), Ok("dr-1")),
            (
                claims("http://127.0.0.1:8103", now + 60, Some("Practitioner/dr-1")),
                Ok("dr-1"),
            ),
            (
                claims(iss, now, Some("Practitioner/dr-1")),
                Err(JwtError::Expired),
            ),
            (
                claims(iss, now - 1, Some("Practitioner/dr-1")),
                Err(JwtError::Expired),
            ),
            (
                claims("https://evil.example/", now + 60, Some("Practitioner/dr-1")),
                Err(JwtError::WrongIssuer),
            ),
            (
                claims(iss, now + 60, Some("Patient/p-1")),
                Err(JwtError::NotAPractitioner),
            ),
            (
                claims(iss, now + 60, Some("Practitioner/bad id")),
                Err(JwtError::NotAPractitioner),
            ),
            (claims(iss, now + 60, None), Err(JwtError::NotAPractitioner)),
        ];
        for (input, expected) in table {
            let got = check_medplum_claims(input, iss, now);
            assert_eq!(
                got.as_ref().map(|p| p.as_str()),
                expected.as_ref().map(|s| *s),
                "{input:?}"
            );
        }
        let mut future = claims(iss, now + 600, Some("Practitioner/dr-1"));
        future.nbf = Some(now + CLOCK_SKEW_SECONDS + 1);
        assert_eq!(
            check_medplum_claims(&future, iss, now),
            Err(JwtError::NotYetValid)
        );
        future.nbf = Some(now + CLOCK_SKEW_SECONDS);
        assert!(check_medplum_claims(&future, iss, now).is_ok());
    }

    /// Found by fuzz/fuzz_targets/jwt_tokens.rs (corpus file `clock-at-the-end-of-time`): a
    /// clock within a minute of `i64::MAX` overflowed the `nbf` skew addition (a panic in
    /// debug builds). Only a broken clock gets there; the rule must still answer.
    #[test]
    fn a_clock_at_the_end_of_time_does_not_overflow() {
        let mut far = claims("iss", i64::MAX, Some("Practitioner/dr-1"));
        far.nbf = Some(i64::MAX);
        assert!(check_medplum_claims(&far, "iss", i64::MAX - 1).is_ok());
        far.nbf = Some(i64::MIN);
        assert!(check_medplum_claims(&far, "iss", i64::MIN).is_ok());
    }

    #[test]
    fn signing_input_is_header_and_payload() {
        let parsed = UnverifiedJwt::parse("eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
        assert_eq!(parsed.signing_input(), b"eyJhbGciOiJSUzI1NiJ9.e30");
        assert_eq!(parsed.signature(), b"sig");
        assert_eq!(parsed.header.alg, "RS256");
    }

    #[test]
    fn a_refusal_is_named_without_the_token_text() {
        let chosen = "none +447700900123 <script>".to_owned();
        let errors = [
            JwtError::Malformed,
            JwtError::AlgorithmNotAllowed(chosen.clone()),
            JwtError::MissingKeyId,
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::WrongIssuer,
            JwtError::NotAPractitioner,
            JwtError::TooLarge,
        ];
        for error in errors {
            let debug = format!("{error:?}");
            assert!(
                debug.starts_with(error.name()),
                "{debug} vs {}",
                error.name()
            );
            assert!(!error.name().contains("900123"));
        }
    }
}
