//! The one verifying layer every Twilio route goes through: reads the body (bounded), checks
//! `X-Twilio-Signature` against the configured public URL, and only then hands the parameters to
//! a handler. An unsigned or forged request never reaches one.

use std::cell::RefCell;
use std::rc::Rc;

use shared::form;
use shared::webhook_signature::{SignatureError, WebhookVerifier};
use worker::Request;

use crate::config::Config;
use crate::error::AppError;

/// Twilio's webhooks are small; anything larger is refused before parsing.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// The verified parameters of a Twilio webhook. Its `Debug` names the parameters, not their
/// values (`From` and `To` are phone numbers).
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioForm {
    params: Vec<(String, String)>,
}

impl std::fmt::Debug for TwilioForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.params.iter().map(|(key, _)| key))
            .finish()
    }
}

impl TwilioForm {
    /// The first value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present and non-empty.
    pub fn require(&self, key: &'static str) -> Result<&str, AppError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or(AppError::BadRequest(
                "a required Twilio parameter is missing",
            ))
    }
}

/// `/path?query` of a URL as received (undecoded).
pub fn path_and_query(raw_url: &str) -> &str {
    let after_scheme = raw_url.split_once("://").map_or(raw_url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map_or("/", |slash| &after_scheme[slash..])
}

/// The URL Twilio signed: the configured public base URL plus the path and query as received.
/// The host of the request is not trusted (it could be anything a proxy passed on).
pub fn signed_url(public_base_url: &str, raw_url: &str) -> String {
    let path_and_query = path_and_query(raw_url);
    let without_fragment = path_and_query.split('#').next().unwrap_or(path_and_query);
    format!("{public_base_url}{without_fragment}")
}

/// The fixed starts of the URLs Twilio signs for this worker, after the public base URL and
/// `handlers::voice::WEBHOOKS_PATH`: each webhook's name, and the query's first key where the
/// worker's callback URLs carry one (`handlers::voice::callback_url`). The verifier keeps its
/// hashing state after them.
const SIGNED_WEBHOOK_STARTS: [&str; 6] = [
    "voice",
    "inbound",
    "call-status?appointment=",
    "dial-complete?appointment=",
    "inbound-complete?appointment=",
    "practice-complete",
];

/// The accepted auth tokens, the public base URL, and the verifier made for them.
type KeptVerifier = (Vec<String>, String, Rc<WebhookVerifier>);

thread_local! {
    /// One isolate runs one request at a time on one thread; its verifier is keyed once and
    /// made again only when the tokens or the base URL change (a rotation deploys new secrets).
    static VERIFIER: RefCell<Option<KeptVerifier>> = const { RefCell::new(None) };
}

/// The verifier for `auth_tokens` and this worker's webhook URLs under `public_base_url`, kept
/// across requests while they stay the same.
pub fn verifier_for(auth_tokens: &[&str], public_base_url: &str) -> Rc<WebhookVerifier> {
    VERIFIER.with(|kept| {
        let mut kept = kept.borrow_mut();
        match kept.as_ref() {
            Some((tokens, base, verifier))
                if base == public_base_url
                    && tokens
                        .iter()
                        .map(String::as_str)
                        .eq(auth_tokens.iter().copied()) =>
            {
                Rc::clone(verifier)
            }
            _ => {
                let url_starts = SIGNED_WEBHOOK_STARTS.map(|start| {
                    format!(
                        "{public_base_url}{}{start}",
                        crate::handlers::voice::WEBHOOKS_PATH
                    )
                });
                let url_starts = url_starts.each_ref().map(String::as_str);
                let verifier =
                    Rc::new(WebhookVerifier::with_url_prefixes(auth_tokens, &url_starts));
                let tokens = auth_tokens
                    .iter()
                    .map(|token| (*token).to_owned())
                    .collect();
                *kept = Some((tokens, public_base_url.to_owned(), Rc::clone(&verifier)));
                verifier
            }
        }
    })
}

/// Pure part of the verification, for tests: checks content type, size and signature.
pub fn verify(
    auth_tokens: &[&str],
    public_base_url: &str,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<TwilioForm, AppError> {
    if body.len() > MAX_WEBHOOK_BODY {
        return Err(AppError::PayloadTooLarge);
    }
    let is_form = content_type
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
        .is_some_and(|ct| ct.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form && !body.is_empty() {
        return Err(AppError::UnsupportedMediaType(
            "application/x-www-form-urlencoded",
        ));
    }
    let text =
        std::str::from_utf8(body).map_err(|_| AppError::BadRequest("the body is not UTF-8"))?;
    let params =
        form::parse(text).map_err(|_| AppError::BadRequest("the body is not valid form data"))?;
    match verifier_for(auth_tokens, public_base_url).verify_form(url, &params, signature) {
        Ok(()) => Ok(TwilioForm { params }),
        Err(error) => {
            let reason = match error {
                SignatureError::Missing => "missing",
                SignatureError::Mismatch => "mismatch",
                SignatureError::BodyHashMismatch => "body-hash",
            };
            // Path only: queries may carry identifiers; bodies carry phone numbers.
            let path = path_and_query(url).split('?').next().unwrap_or("");
            crate::log::event(
                "webhook_signature_refused",
                &[("reason", reason), ("path", path)],
            );
            crate::telemetry::emit(shared::telemetry::Event::SignatureRejected {
                route: path.rsplit('/').next().unwrap_or("unknown").to_owned(),
            });
            Err(AppError::InvalidSignature)
        }
    }
}

/// Reads and verifies a Twilio webhook request.
pub async fn verified_form(req: &mut Request, config: &Config) -> Result<TwilioForm, AppError> {
    let public_base_url = config.public_base_url.require("PUBLIC_BASE_URL")?;
    let auth_token = config.twilio_auth_token.require("TWILIO_AUTH_TOKEN")?;
    let url = signed_url(public_base_url.as_str(), &req.inner().url());
    let content_type = req.headers().get("content-type").ok().flatten();
    let signature = req.headers().get("x-twilio-signature").ok().flatten();
    let body = crate::body::read_at_most(req, MAX_WEBHOOK_BODY).await?;
    let mut tokens = vec![auth_token.expose()];
    if let Some(previous) = config.previous_auth_token() {
        tokens.push(previous);
    }
    verify(
        &tokens,
        public_base_url.as_str(),
        &url,
        content_type.as_deref(),
        &body,
        signature.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::webhook_signature::compute;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn debug_output_names_parameters_without_their_values() {
        let form = TwilioForm {
            params: vec![
                ("From".into(), "+447700900123".into()),
                ("CallSid".into(), "CA1".into()),
            ],
        };
        assert_eq!(format!("{form:?}"), r#"["From", "CallSid"]"#);
        let patient = crate::medplum::Versioned {
            resource: serde_json::json!({"resourceType": "Patient", "id": "p1", "telecom": [{"value": "+447700900123"}]}),
            version_id: "3".into(),
        };
        assert_eq!(format!("{patient:?}"), "Versioned(Patient/p1 v3)");
    }

    const BASE: &str = "https://calls.example.org";

    #[test]
    fn the_verifier_is_kept_until_the_tokens_or_base_change() {
        let first = verifier_for(&["tok"], BASE);
        assert!(Rc::ptr_eq(&first, &verifier_for(&["tok"], BASE)));
        let rotating = verifier_for(&["new", "tok"], BASE);
        assert!(!Rc::ptr_eq(&first, &rotating));
        assert!(Rc::ptr_eq(&rotating, &verifier_for(&["new", "tok"], BASE)));
        assert!(!Rc::ptr_eq(&rotating, &verifier_for(&["new"], BASE)));
        let moved = verifier_for(&["new"], "https://calls.example.net");
        assert!(!Rc::ptr_eq(&moved, &verifier_for(&["new"], BASE)));
    }

    /// A status callback's URL is longer than a SHA-1 block, so the verifier starts from the
    /// state it kept after the URL's first block: the answers are the same as without it.
    #[test]
    fn callback_urls_verify_through_the_kept_url_start() {
        let url = crate::handlers::voice::callback_url(
            BASE,
            "call-status",
            &shared::ids::AppointmentId::parse("appt-mobile").unwrap(),
        );
        let url = signed_url(BASE, &url);
        assert!(url.len() > 64, "{url}");
        let body = b"CallSid=CA1&CallStatus=completed&CallDuration=42";
        let params = form::parse(std::str::from_utf8(body).unwrap()).unwrap();
        let good = compute("tok", &url, &params);
        assert!(verify(&["tok"], BASE, &url, FORM, body, Some(&good)).is_ok());
        let forged = compute("tok", &url.replace("appt-mobile", "appt-other"), &params);
        assert_eq!(
            verify(&["tok"], BASE, &url, FORM, body, Some(&forged)).map(|_| ()),
            Err(AppError::InvalidSignature)
        );
    }

    #[test]
    fn signed_url_uses_the_configured_base_not_the_request_host() {
        assert_eq!(
            signed_url(
                "https://calls.example.org",
                "http://10.0.0.1:8787/api/v1/twilio/webhooks/voice?x=1%202#frag"
            ),
            "https://calls.example.org/api/v1/twilio/webhooks/voice?x=1%202"
        );
        assert_eq!(path_and_query("https://h"), "/");
    }

    /// (name, expected, auth tokens, content type, body, signature)
    type Case<'a> = (
        &'static str,
        Result<(), AppError>,
        Vec<&'static str>,
        Option<&'static str>,
        &'static [u8],
        Option<&'a str>,
    );

    #[test]
    fn verification_table() {
        let url = "https://calls.example.org/api/v1/twilio/webhooks/voice";
        let body = b"CallSid=CA1&From=client%3Aclinician-ada&AppointmentId=appt-mobile";
        let params = form::parse(std::str::from_utf8(body).unwrap()).unwrap();
        let good = compute("tok", url, &params);
        assert_eq!(
            verify(&["tok"], BASE, url, FORM, body, Some(&good))
                .unwrap()
                .get("From"),
            Some("client:clinician-ada")
        );
        let cases: Vec<Case> = vec![
            (
                "no signature",
                Err(AppError::InvalidSignature),
                vec!["tok"],
                FORM,
                body,
                None,
            ),
            (
                "wrong token",
                Err(AppError::InvalidSignature),
                vec!["other"],
                FORM,
                body,
                Some(&good),
            ),
            (
                "mutated body",
                Err(AppError::InvalidSignature),
                vec!["tok"],
                FORM,
                b"CallSid=CA2&From=client%3Aclinician-ada&AppointmentId=appt-mobile",
                Some(&good),
            ),
            (
                "json body",
                Err(AppError::UnsupportedMediaType(
                    "application/x-www-form-urlencoded",
                )),
                vec!["tok"],
                Some("application/json"),
                b"{}",
                Some(&good),
            ),
            (
                "bad escape",
                Err(AppError::BadRequest("the body is not valid form data")),
                vec!["tok"],
                FORM,
                b"a=%zz",
                Some(&good),
            ),
            (
                "rotation",
                Ok(()),
                vec!["new", "tok"],
                FORM,
                body,
                Some(&good),
            ),
        ];
        for (name, expected, tokens, content_type, body, signature) in cases {
            assert_eq!(
                verify(&tokens, BASE, url, content_type, body, signature).map(|_| ()),
                expected,
                "{name}"
            );
        }
        let huge = vec![b'a'; MAX_WEBHOOK_BODY + 1];
        assert_eq!(
            verify(&["tok"], BASE, url, FORM, &huge, Some(&good)).map(|_| ()),
            Err(AppError::PayloadTooLarge)
        );
    }
}
