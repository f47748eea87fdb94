//! Fuzz target: JWT parsing, HS256 signing/verification and the Medplum token rules. Properties:
//! parsing any text and applying every rule to it never panics, whatever the clock says; a
//! token built from the input verifies and its claims come back unchanged; a token with any one
//! byte changed never verifies (if it parses at all), and neither does a token that verified as
//! input once a byte of it is changed.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use shared::jwt::{
    check_medplum_claims, check_medplum_header, encode_hs256, Header, JwtError, MedplumClaims,
    UnverifiedJwt, MAX_TOKEN_LEN,
};

const SECRET: &[u8] = b"fuzz-secret-not-a-real-key-0000000000";
const ISSUER: &str = "http://127.0.0.1:8103/";
/// Bytes a changed token position may take: base64url, the separator, and a few strangers.
const REPLACEMENTS: &[u8] = b"ABCXYZabcxyz0189-_.=+/ %";

/// The claims a token is built from.
#[derive(Arbitrary, Debug)]
struct FuzzClaims {
    iss: String,
    exp: i64,
    nbf: Option<i64>,
    profile: Option<String>,
    extra: Option<(String, String)>,
}

/// Every rule applied to a parsed token; returns whether it verified with [`SECRET`].
fn apply_rules(token: &UnverifiedJwt<'_>, now_unix: i64) -> bool {
    let _ = check_medplum_header(&token.header);
    let _ = token.claims::<Value>();
    if let Ok(claims) = token.claims::<MedplumClaims>() {
        for now in [now_unix, 0, 1_800_000_000, i64::MIN, i64::MAX - 1, i64::MAX] {
            for issuer in [ISSUER, claims.iss.as_str()] {
                let _ = check_medplum_claims(&claims, issuer, now);
            }
        }
    }
    token.verify_hs256(SECRET).is_ok()
}

/// A copy of `token` with byte `index` replaced, if that makes a different string.
fn changed(token: &str, index: usize, pick: u8) -> Option<String> {
    let mut bytes = token.as_bytes().to_vec();
    let position = index % bytes.len().max(1);
    let replacement = REPLACEMENTS[usize::from(pick) % REPLACEMENTS.len()];
    let original = bytes.get_mut(position)?;
    if *original == replacement || !original.is_ascii() {
        return None;
    }
    *original = replacement;
    String::from_utf8(bytes).ok()
}

fn assert_never_verifies(token: &str) {
    if let Ok(parsed) = UnverifiedJwt::parse(token) {
        assert!(
            parsed.verify_hs256(SECRET).is_err(),
            "a changed token verified: {token}"
        );
    }
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let header = Header {
        alg: "HS256".to_owned(),
        kid: u.arbitrary()?,
        typ: u.arbitrary()?,
        cty: None,
    };
    let fuzz: FuzzClaims = u.arbitrary()?;
    let mut claims =
        json!({"iss": fuzz.iss, "exp": fuzz.exp, "nbf": fuzz.nbf, "profile": fuzz.profile});
    if let Some((key, value)) = fuzz.extra {
        claims[key] = Value::String(value);
    }
    let token = encode_hs256(&header, &claims, SECRET).expect("JSON values always encode");
    if token.len() > MAX_TOKEN_LEN {
        assert_eq!(UnverifiedJwt::parse(&token).err(), Some(JwtError::TooLarge));
        return Ok(());
    }
    let parsed = UnverifiedJwt::parse(&token).expect("a signed token parses");
    assert_eq!(parsed.header, header);
    assert_eq!(parsed.claims::<Value>().ok().as_ref(), Some(&claims));
    assert!(
        apply_rules(&parsed, u.arbitrary()?),
        "a signed token verifies"
    );
    for _ in 0..3 {
        if let Some(tampered) = changed(&token, u.arbitrary()?, u.arbitrary()?) {
            assert_never_verifies(&tampered);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = UnverifiedJwt::parse(text) {
            if apply_rules(&parsed, 1_800_000_000) {
                // The input is a genuine token (seeded in the corpus): no one-byte change of it
                // verifies.
                for (index, byte) in data.iter().enumerate() {
                    if let Some(tampered) = changed(text, index, *byte) {
                        assert_never_verifies(&tampered);
                    }
                }
            }
        }
    }
    let _ = structured(&mut Unstructured::new(data));
});
