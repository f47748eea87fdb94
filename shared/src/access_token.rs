//! Twilio Voice access tokens: HS256 JWTs signed with an API key's secret, carrying a voice grant
//! for one client identity.
//!
//! Claims follow Twilio's helper libraries: `jti` = `<ApiKeySid>-<iat>`, `iss` = API key,
//! `sub` = account, `iat`/`nbf`/`exp`, and `grants` = `{identity, voice: {incoming, outgoing}}`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{AccountSid, ApiKeySid, Identity, TwimlAppSid};
use crate::jwt::{sign_hs256_json, JwtError};

/// Twilio's content type for access tokens.
pub const TOKEN_CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// How long a token lives: 1 hour by default, at most Twilio's 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTtl(u32);

/// Why a TTL is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a token TTL is {min} to {max} seconds", min = TokenTtl::MIN_SECONDS, max = TokenTtl::MAX_SECONDS)]
pub struct TtlOutOfRange;

impl TokenTtl {
    pub const DEFAULT_SECONDS: u32 = 3600;
    /// Twilio refuses tokens that live longer than 24 hours.
    pub const MAX_SECONDS: u32 = 86_400;
    /// Shorter than this and a token would expire before a call is set up.
    pub const MIN_SECONDS: u32 = 60;

    pub fn new(seconds: u32) -> Result<Self, TtlOutOfRange> {
        if (Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(TtlOutOfRange)
        }
    }

    pub fn seconds(self) -> u32 {
        self.0
    }

    /// This TTL cut to the end of the clinician's sign-in (`sign_in_expires_unix`, the Medplum
    /// token's `exp`), so that a calling token never outlives the sign-in it was issued on.
    /// `None` when less than [`Self::MIN_SECONDS`] of the sign-in is left: too little for a call
    /// to be set up, so the clinician is asked to sign in again instead.
    pub fn within_sign_in(self, now_unix: i64, sign_in_expires_unix: i64) -> Option<Self> {
        let left = sign_in_expires_unix.saturating_sub(now_unix);
        let left = u32::try_from(left.max(0)).unwrap_or(u32::MAX);
        (left >= Self::MIN_SECONDS).then(|| Self(self.0.min(left)))
    }
}

impl Default for TokenTtl {
    fn default() -> Self {
        Self(Self::DEFAULT_SECONDS)
    }
}

/// Everything needed to mint one token; `now_unix` is passed in (no clock here). Its `Debug`
/// leaves the API secret out.
#[derive(Clone)]
pub struct TokenRequest<'a> {
    pub account_sid: &'a AccountSid,
    pub api_key: &'a ApiKeySid,
    pub api_secret: &'a str,
    pub twiml_app_sid: &'a TwimlAppSid,
    pub identity: &'a Identity,
    pub ttl: TokenTtl,
    pub now_unix: i64,
}

/// The claims of a Twilio access token with a voice grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub jti: String,
    pub iss: String,
    pub sub: String,
    /// Set by twilio-node and by us; twilio-python omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Set by twilio-python and by us; twilio-node omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    pub grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub identity: String,
    pub voice: VoiceGrant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceGrant {
    pub incoming: IncomingGrant,
    pub outgoing: OutgoingGrant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingGrant {
    pub allow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingGrant {
    pub application_sid: String,
}

/// A minted token and when it expires. Its `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    pub jwt: String,
    pub expires_at_unix: i64,
}

impl std::fmt::Debug for TokenRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("account_sid", &self.account_sid)
            .field("api_key", &self.api_key)
            .field("twiml_app_sid", &self.twiml_app_sid)
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .field("now_unix", &self.now_unix)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("expires_at_unix", &self.expires_at_unix)
            .finish_non_exhaustive()
    }
}

/// The claims [`mint`] signs, exposed for tests and for the simulator's checks.
pub fn claims_for(request: &TokenRequest<'_>) -> AccessTokenClaims {
    let exp = request.now_unix + i64::from(request.ttl.seconds());
    AccessTokenClaims {
        jti: format!("{}-{}", request.api_key, request.now_unix),
        iss: request.api_key.to_string(),
        sub: request.account_sid.to_string(),
        iat: Some(request.now_unix),
        nbf: Some(request.now_unix),
        exp,
        grants: Grants {
            identity: request.identity.to_string(),
            voice: VoiceGrant {
                incoming: IncomingGrant { allow: true },
                outgoing: OutgoingGrant {
                    application_sid: request.twiml_app_sid.to_string(),
                },
            },
        },
    }
}

/// The JOSE header of every token: `alg` HS256, `typ` JWT, `cty` [`TOKEN_CONTENT_TYPE`], exactly
/// as [`crate::jwt::Header`] serialises them (a test checks).
const TOKEN_HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#;

/// Room for the claims JSON apart from the identity (SIDs, numbers, field names: under 256).
const CLAIMS_JSON_FIXED_CAPACITY: usize = 256;

/// Appends `value` as a JSON number (serde_json's integer formatting, without its string
/// escaping machinery).
fn push_json_integer(json: &mut Vec<u8>, value: i64) -> Result<(), JwtError> {
    serde_json::to_writer(json, &value).map_err(|_| JwtError::Malformed)
}

/// The JSON of `claims_for(request)`, byte for byte as serde_json writes
/// [`AccessTokenClaims`] (same fields, same order, no spaces; a property test checks), written
/// straight into one buffer. Every string value comes from a type whose alphabet needs no JSON
/// escaping — a SID is two letters and 32 hex digits, an [`Identity`] ASCII letters, digits,
/// `-`, `_` and `.` — so each is copied between quotes as is.
fn claims_json(request: &TokenRequest<'_>, expires_at_unix: i64) -> Result<Vec<u8>, JwtError> {
    let identity = request.identity.as_str();
    let mut json = Vec::with_capacity(CLAIMS_JSON_FIXED_CAPACITY + identity.len());
    json.extend_from_slice(br#"{"jti":""#);
    json.extend_from_slice(request.api_key.as_str().as_bytes());
    json.push(b'-');
    push_json_integer(&mut json, request.now_unix)?;
    json.extend_from_slice(br#"","iss":""#);
    json.extend_from_slice(request.api_key.as_str().as_bytes());
    json.extend_from_slice(br#"","sub":""#);
    json.extend_from_slice(request.account_sid.as_str().as_bytes());
    json.extend_from_slice(br#"","iat":"#);
    push_json_integer(&mut json, request.now_unix)?;
    json.extend_from_slice(br#","nbf":"#);
    push_json_integer(&mut json, request.now_unix)?;
    json.extend_from_slice(br#","exp":"#);
    push_json_integer(&mut json, expires_at_unix)?;
    json.extend_from_slice(br#","grants":{"identity":""#);
    json.extend_from_slice(identity.as_bytes());
    json.extend_from_slice(
        br#"","voice":{"incoming":{"allow":true},"outgoing":{"application_sid":""#,
    );
    json.extend_from_slice(request.twiml_app_sid.as_str().as_bytes());
    json.extend_from_slice(br#""}}}}"#);
    Ok(json)
}

/// Mints a signed access token.
pub fn mint(request: &TokenRequest<'_>) -> Result<MintedToken, JwtError> {
    let expires_at_unix = request.now_unix + i64::from(request.ttl.seconds());
    let jwt = sign_hs256_json(
        TOKEN_HEADER_JSON.as_bytes(),
        &claims_json(request, expires_at_unix)?,
        request.api_secret.as_bytes(),
    )?;
    Ok(MintedToken {
        jwt,
        expires_at_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{Header, UnverifiedJwt};
    use proptest::prelude::*;

    struct Fixture {
        account: AccountSid,
        key: ApiKeySid,
        app: TwimlAppSid,
        identity: Identity,
    }

    fn fixture() -> Fixture {
        Fixture {
            account: AccountSid::parse("AC00000000000000000000000000000001").unwrap(),
            key: ApiKeySid::parse("SK00000000000000000000000000000001").unwrap(),
            app: TwimlAppSid::parse("AP00000000000000000000000000000001").unwrap(),
            identity: Identity::parse("clinician-ada").unwrap(),
        }
    }

    fn request(f: &Fixture, ttl: TokenTtl, now: i64) -> TokenRequest<'_> {
        TokenRequest {
            account_sid: &f.account,
            api_key: &f.key,
            api_secret: "fake-twilio-api-secret",
            twiml_app_sid: &f.app,
            identity: &f.identity,
            ttl,
            now_unix: now,
        }
    }

    #[test]
    fn debug_output_leaves_the_secret_and_the_token_out() {
        let f = fixture();
        let request = request(&f, TokenTtl::default(), 1_800_000_000);
        let minted = mint(&request).unwrap();
        let printed = format!("{request:?} {minted:?}");
        assert!(!printed.contains("fake-twilio-api-secret"), "{printed}");
        assert!(!printed.contains(&minted.jwt), "{printed}");
        assert!(
            printed.contains("clinician-ada") && printed.contains("1800003600"),
            "{printed}"
        );
    }

    #[test]
    fn token_has_twilio_header_and_claims() {
        let f = fixture();
        let now = 1_800_000_000;
        let minted = mint(&request(&f, TokenTtl::default(), now)).unwrap();
        let parsed = UnverifiedJwt::parse(&minted.jwt).unwrap();
        assert_eq!(parsed.header.alg, "HS256");
        assert_eq!(parsed.header.typ.as_deref(), Some("JWT"));
        assert_eq!(parsed.header.cty.as_deref(), Some("twilio-fpa;v=1"));
        assert_eq!(parsed.verify_hs256(b"fake-twilio-api-secret"), Ok(()));
        let claims: serde_json::Value = parsed.claims().unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "jti": "SK00000000000000000000000000000001-1800000000",
                "iss": "SK00000000000000000000000000000001",
                "sub": "AC00000000000000000000000000000001",
                "iat": now, "nbf": now, "exp": now + 3600,
                "grants": {
                    "identity": "clinician-ada",
                    "voice": {
                        "incoming": {"allow": true},
                        "outgoing": {"application_sid": "AP00000000000000000000000000000001"}
                    }
                }
            })
        );
        assert_eq!(minted.expires_at_unix, now + 3600);
    }

    /// Tokens minted by npm `twilio` for the same inputs and clock
    /// (tests/oracles/generate-access-tokens.mjs; CI regenerates the file and fails if it
    /// differs): ours carry the same header and claims (keys may come in another order), and
    /// each verifies under the secret.
    #[test]
    fn agrees_with_the_twilio_node_oracle() {
        let corpus: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/oracles/access-tokens.json")).unwrap();
        let cases = corpus["cases"].as_array().unwrap();
        assert!(cases.len() >= 3);
        for case in cases {
            let text = |key: &str| case[key].as_str().unwrap();
            let account = AccountSid::parse(text("accountSid")).unwrap();
            let key = ApiKeySid::parse(text("apiKeySid")).unwrap();
            let app = TwimlAppSid::parse(text("twimlAppSid")).unwrap();
            let identity = Identity::parse(text("identity")).unwrap();
            let ttl = TokenTtl::new(case["ttl"].as_u64().unwrap() as u32).unwrap();
            let minted = mint(&TokenRequest {
                account_sid: &account,
                api_key: &key,
                api_secret: text("apiSecret"),
                twiml_app_sid: &app,
                identity: &identity,
                ttl,
                now_unix: case["now"].as_i64().unwrap(),
            })
            .unwrap();
            let ours = UnverifiedJwt::parse(&minted.jwt).unwrap();
            let theirs = UnverifiedJwt::parse(text("jwt")).unwrap();
            assert_eq!(theirs.verify_hs256(text("apiSecret").as_bytes()), Ok(()));
            assert_eq!(ours.verify_hs256(text("apiSecret").as_bytes()), Ok(()));
            assert_eq!(ours.header, theirs.header, "{}", text("identity"));
            let claims = |jwt: &UnverifiedJwt| jwt.claims::<serde_json::Value>().unwrap();
            assert_eq!(claims(&ours), claims(&theirs), "{}", text("identity"));
        }
    }

    #[test]
    fn ttl_bounds() {
        let table = [
            (0, false),
            (59, false),
            (60, true),
            (3600, true),
            (86_400, true),
            (86_401, false),
            (u32::MAX, false),
        ];
        for (seconds, valid) in table {
            assert_eq!(TokenTtl::new(seconds).is_ok(), valid, "{seconds}");
        }
        assert_eq!(TokenTtl::default().seconds(), 3600);
    }

    #[test]
    fn a_token_never_outlives_the_sign_in_it_was_issued_on() {
        let now = 1_800_000_000;
        let hour = TokenTtl::default();
        let day = TokenTtl::new(86_400).unwrap();
        // (configured, sign-in left in seconds, token life)
        let table: &[(TokenTtl, i64, Option<u32>)] = &[
            (hour, 7_200, Some(3_600)),
            (hour, 3_600, Some(3_600)),
            (hour, 2_700, Some(2_700)),
            (day, 3_599, Some(3_599)),
            (hour, 60, Some(60)),
            (hour, 59, None),
            (hour, 0, None),
            (hour, -30, None),
            (hour, i64::MAX - now, Some(3_600)),
        ];
        for &(configured, left, expected) in table {
            assert_eq!(
                configured
                    .within_sign_in(now, now + left)
                    .map(TokenTtl::seconds),
                expected,
                "{left} s left"
            );
        }
        assert_eq!(hour.within_sign_in(now, i64::MIN), None);
    }

    /// The token as minted before `mint` wrote its claims JSON by hand into one buffer: owned
    /// header and claims through serde_json, each base64url-encoded, joined, then MACed.
    fn reference_jwt(request: &TokenRequest<'_>) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let header = Header {
            alg: "HS256".into(),
            kid: None,
            typ: Some("JWT".into()),
            cty: Some(TOKEN_CONTENT_TYPE.into()),
        };
        let header_json = serde_json::to_vec(&header).unwrap();
        let claims_json = serde_json::to_vec(&claims_for(request)).unwrap();
        let mut token = String::new();
        token.push_str(&URL_SAFE_NO_PAD.encode(header_json));
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(request.api_secret.as_bytes()).unwrap();
        mac.update(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        token
    }

    #[test]
    fn header_constant_is_what_the_header_type_serialises() {
        let header = Header {
            alg: "HS256".into(),
            kid: None,
            typ: Some("JWT".into()),
            cty: Some(TOKEN_CONTENT_TYPE.into()),
        };
        assert_eq!(serde_json::to_string(&header).unwrap(), TOKEN_HEADER_JSON);
    }

    #[test]
    fn fixture_token_is_byte_for_byte_the_reference() {
        let f = fixture();
        let request = request(&f, TokenTtl::default(), 1_800_000_000);
        assert_eq!(mint(&request).unwrap().jwt, reference_jwt(&request));
    }

    proptest! {
        /// The hand-written claims JSON is serde_json's for the owned [`AccessTokenClaims`], and the
        /// whole token equals the one the owned, separately encoded path produced.
        #[test]
        fn minted_token_is_byte_for_byte_the_reference(
            account in "[0-9a-f]{32}",
            key in "[0-9A-F]{32}",
            app in "[0-9a-fA-F]{32}",
            identity in "[A-Za-z0-9._-]{1,121}",
            secret in "[ -~]{0,80}",
            ttl in 60u32..=86_400,
            now in -4_000_000_000_000i64..4_000_000_000_000,
        ) {
            let account = AccountSid::parse(&format!("AC{account}")).unwrap();
            let key = ApiKeySid::parse(&format!("SK{key}")).unwrap();
            let app = TwimlAppSid::parse(&format!("AP{app}")).unwrap();
            let identity = Identity::parse(&identity).unwrap();
            let request = TokenRequest {
                account_sid: &account,
                api_key: &key,
                api_secret: &secret,
                twiml_app_sid: &app,
                identity: &identity,
                ttl: TokenTtl::new(ttl).unwrap(),
                now_unix: now,
            };
            let claims = claims_for(&request);
            prop_assert_eq!(
                claims_json(&request, claims.exp).unwrap(),
                serde_json::to_vec(&claims).unwrap()
            );
            let minted = mint(&request).unwrap();
            prop_assert_eq!(&minted.jwt, &reference_jwt(&request));
            prop_assert_eq!(minted.expires_at_unix, claims_for(&request).exp);
        }

        #[test]
        fn any_valid_ttl_sets_exp(ttl in 60u32..=86_400, now in 1_600_000_000i64..2_000_000_000) {
            let f = fixture();
            let minted = mint(&request(&f, TokenTtl::new(ttl).unwrap(), now)).unwrap();
            let claims: AccessTokenClaims = UnverifiedJwt::parse(&minted.jwt).unwrap().claims().unwrap();
            let issued = claims.iat.unwrap_or_default();
            prop_assert_eq!(claims.exp - issued, i64::from(ttl));
            prop_assert!(claims.exp - issued <= 86_400);
        }
    }
}
