//! RS256 signature verification through the runtime's WebCrypto (no RSA code in the wasm).

use js_sys::{Array, Object, Reflect};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Builds the public-key JWK WebCrypto imports, from only the fields that matter, and refuses
/// keys that are not RSA signature keys for RS256.
pub fn rsa_public_jwk(jwk: &Value) -> Option<Value> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("kty") != Some("RSA") {
        return None;
    }
    if field("alg").is_some_and(|alg| alg != "RS256") || field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    Some(
        serde_json::json!({"kty": "RSA", "n": field("n")?, "e": field("e")?, "alg": "RS256", "ext": true}),
    )
}

fn algorithm() -> Result<Object, JsValue> {
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())?;
    Ok(algorithm)
}

/// Verifies an RS256 signature over `signing_input` with a public JWK.
/// `Ok(false)` for a wrong signature; `Err` when the key cannot be imported.
pub async fn verify_rs256(
    jwk: &Value,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, JsValue> {
    let jwk = rsa_public_jwk(jwk).ok_or_else(|| JsValue::from_str("not an RS256 public key"))?;
    let subtle = Reflect::get(&js_sys::global(), &"crypto".into())?
        .dyn_into::<web_sys::Crypto>()?
        .subtle();
    let key_data: Object = js_sys::JSON::parse(&jwk.to_string())?.dyn_into()?;
    let algorithm = algorithm()?;
    let usages = Array::of1(&"verify".into());
    let key = JsFuture::from(
        subtle.import_key_with_object("jwk", &key_data, &algorithm, false, &usages)?,
    )
    .await?
    .dyn_into::<web_sys::CryptoKey>()?;
    let verified = JsFuture::from(subtle.verify_with_object_and_u8_array_and_u8_array(
        &algorithm,
        &key,
        signature,
        signing_input,
    )?)
    .await?;
    Ok(verified.as_bool() == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signature_keys_are_imported() {
        let good = serde_json::json!({"kty": "RSA", "n": "abc", "e": "AQAB", "alg": "RS256", "use": "sig", "kid": "k"});
        assert_eq!(
            rsa_public_jwk(&good),
            Some(
                serde_json::json!({"kty": "RSA", "n": "abc", "e": "AQAB", "alg": "RS256", "ext": true})
            )
        );
        let table = [
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "RSA", "n": "abc", "e": "AQAB", "alg": "HS256"}),
            serde_json::json!({"kty": "RSA", "n": "abc", "e": "AQAB", "use": "enc"}),
            serde_json::json!({"kty": "RSA", "e": "AQAB"}),
            serde_json::json!({"kty": "EC", "crv": "P-256"}),
        ];
        for jwk in table {
            assert_eq!(rsa_public_jwk(&jwk), None, "{jwk}");
        }
    }
}
