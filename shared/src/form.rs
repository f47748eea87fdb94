//! `application/x-www-form-urlencoded` decoding, for query strings and Twilio's webhook bodies.
//!
//! Small and dependency-free on purpose: the worker must not link a URL library (the `url` crate
//! with its IDNA tables nearly doubles the worker's wasm).

use thiserror::Error;

/// Why a form string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormError {
    #[error("malformed percent-escape in form data")]
    BadEscape,
    #[error("form data is not UTF-8 after decoding")]
    NotUtf8,
}

/// Percent-decodes one component, turning `+` into a space.
pub fn decode_component(raw: &str) -> Result<String, FormError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(FormError::BadEscape)?;
                let text = std::str::from_utf8(hex).map_err(|_| FormError::BadEscape)?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| FormError::BadEscape)?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// Decodes `a=1&b=2` into ordered pairs; repeated keys are kept; empty segments are skipped.
pub fn parse(raw: &str) -> Result<Vec<(String, String)>, FormError> {
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            Ok((decode_component(key)?, decode_component(value)?))
        })
        .collect()
}

/// The query part of a URL (after `?`, before `#`), or "".
pub fn query_of(url: &str) -> &str {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    without_fragment
        .split_once('?')
        .map_or("", |(_, query)| query)
}

/// Percent-encodes a component for a form body or query (unreserved characters kept).
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Encodes pairs as `a=1&b=2` (a form body or a query string).
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                encode_component(k.as_ref()),
                encode_component(v.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_twilio_style_bodies() {
        let pairs =
            parse("CallSid=CA123&From=client%3Adr-1&To=%2B447700900123&Note=a+b&Empty=&Flag")
                .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("CallSid".into(), "CA123".into()),
                ("From".into(), "client:dr-1".into()),
                ("To".into(), "+447700900123".into()),
                ("Note".into(), "a b".into()),
                ("Empty".into(), "".into()),
                ("Flag".into(), "".into()),
            ]
        );
    }

    #[test]
    fn keeps_repeated_keys_in_order() {
        let pairs = parse("e=ringing&e=answered").unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].1, "answered");
    }

    #[test]
    fn rejects_bad_escapes() {
        let table = ["%", "%4", "%zz", "a=%G0", "%C3%28"];
        for raw in table {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn encodes_pairs_for_bodies_and_queries() {
        assert_eq!(
            encode([("To", "+447700900123"), ("Note", "a b&c")]),
            "To=%2B447700900123&Note=a%20b%26c"
        );
        assert_eq!(encode(Vec::<(&str, &str)>::new()), "");
        let pairs = vec![("k".to_owned(), "v=1".to_owned())];
        assert_eq!(
            parse(&encode(pairs.iter().map(|(k, v)| (k, v)))).unwrap(),
            pairs
        );
    }

    #[test]
    fn finds_the_query() {
        assert_eq!(query_of("https://h/p?a=1&b=2#frag"), "a=1&b=2");
        assert_eq!(query_of("https://h/p"), "");
        assert_eq!(query_of("https://h/p#x?y"), "");
    }

    proptest! {
        #[test]
        fn encoding_round_trips(key in ".{0,20}", value in ".{0,40}") {
            let body = format!("{}={}", encode_component(&key), encode_component(&value));
            let pairs = parse(&body).unwrap();
            if key.is_empty() && value.is_empty() {
                prop_assert_eq!(pairs, vec![("".to_string(), "".to_string())]);
            } else {
                prop_assert_eq!(pairs, vec![(key, value)]);
            }
        }
    }
}
