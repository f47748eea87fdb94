//! Fuzz target: Twilio webhook form parsing and `X-Twilio-Signature` verification.
//!
//! The input is text `auth_token "\n" url "\n" form_body` (missing lines are empty). Properties:
//! form parsing never panics and `parse(encode(pairs)) == pairs`; a signature computed for the
//! request verifies (also from the default-port URL variants, with surrounding whitespace and as
//! the second token while rotating, and by a verifier keeping the hash state after part of the
//! URL or an unrelated prefix); a signature with one flipped bit, or a request with one
//! more character, never verifies; JSON bodies verify against their `bodySHA256` and a changed
//! body does not. Arbitrary text as the header never panics.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use shared::form;
use shared::webhook_signature::{
    compute, url_variants, verify_form, verify_json, SignatureError, WebhookVerifier,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_form_parsing(text);
    let mut lines = text.splitn(3, '\n');
    let token = lines.next().unwrap_or("");
    let url = lines.next().unwrap_or("");
    let body = lines.next().unwrap_or("");
    let params = form::parse(body).unwrap_or_else(|_| vec![("Body".to_owned(), body.to_owned())]);
    check_form_signature(token, url, &params, text, data.len());
    check_json_signature(token, url, body);
});

fn check_form_parsing(text: &str) {
    if let Ok(pairs) = form::parse(text) {
        let encoded = form::encode(pairs.iter().map(|(k, v)| (k, v)));
        assert_eq!(form::parse(&encoded).as_ref(), Ok(&pairs), "{encoded:?}");
    }
    if let Ok(decoded) = form::decode_component(text) {
        let encoded = form::encode_component(&decoded);
        assert_eq!(form::decode_component(&encoded), Ok(decoded));
    }
    let query = form::query_of(text);
    assert!(text.contains(query));
}

fn check_form_signature(
    token: &str,
    url: &str,
    params: &[(String, String)],
    text: &str,
    salt: usize,
) {
    let signature = compute(token, url, params);
    assert_eq!(verify_form(&[token], url, params, Some(&signature)), Ok(()));
    assert_eq!(
        verify_form(
            &["rotated-out-token", token],
            url,
            params,
            Some(&format!(" {signature}\t"))
        ),
        Ok(())
    );
    let variants = url_variants(url);
    assert_eq!(variants.first().map(String::as_str), Some(url));
    for variant in &variants {
        let signed_as_variant = compute(token, variant, params);
        assert_eq!(
            verify_form(&[token], url, params, Some(&signed_as_variant)),
            Ok(()),
            "{variant}"
        );
    }

    // One flipped bit anywhere in the MAC.
    let mut mac = STANDARD.decode(&signature).unwrap();
    let bit = salt % (mac.len() * 8);
    mac[bit / 8] ^= 1 << (bit % 8);
    let flipped = STANDARD.encode(&mac);
    assert_eq!(
        verify_form(&[token], url, params, Some(&flipped)),
        Err(SignatureError::Mismatch)
    );

    // A verifier keeping the state after the URL cut anywhere (or after other text) answers the
    // same.
    let cut = (0..=salt % (url.len() + 1))
        .rev()
        .find(|&at| url.is_char_boundary(at))
        .unwrap_or(0);
    let keeping = WebhookVerifier::with_url_prefixes(&[token], &[&url[..cut], text]);
    assert_eq!(keeping.verify_form(url, params, Some(&signature)), Ok(()));
    assert_eq!(
        keeping.verify_form(url, params, Some(&flipped)),
        Err(SignatureError::Mismatch)
    );

    // One more character in the signed content (the URL variants differ by 0, 3 or 4
    // characters, so the signed bytes can never line up again).
    let mut longer = params.to_vec();
    match longer.get_mut(salt % params.len().max(1)) {
        Some((_, value)) => value.push('x'),
        None => longer.push(("X".to_owned(), String::new())),
    }
    assert_eq!(
        verify_form(&[token], url, &longer, Some(&signature)),
        Err(SignatureError::Mismatch)
    );

    // Whatever the header says, verification answers without panicking.
    let _ = verify_form(&[token], url, params, Some(text));
    assert_eq!(
        verify_form(&[token], url, params, None),
        Err(SignatureError::Missing)
    );
}

fn sha256_hex(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_json_signature(token: &str, url: &str, body: &str) {
    // Arbitrary input never panics.
    let _ = verify_json(&[token], url, body.as_bytes(), Some(body));
    if url.contains('#') || url.to_ascii_lowercase().contains("bodysha256") {
        return;
    }
    if form::parse(form::query_of(url)).is_err() {
        return;
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let signed_url = format!("{url}{separator}bodySHA256={}", sha256_hex(body.as_bytes()));
    let signature = compute(token, &signed_url, &[]);
    assert_eq!(
        verify_json(&[token], &signed_url, body.as_bytes(), Some(&signature)),
        Ok(())
    );
    let changed = format!("{body} ");
    assert_eq!(
        verify_json(&[token], &signed_url, changed.as_bytes(), Some(&signature)),
        Err(SignatureError::BodyHashMismatch)
    );
}
