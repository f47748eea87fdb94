//! The clinician pages: Workers Static Assets (`www/`) served through the worker
//! (`run_worker_first`), so that their Content-Security-Policy lets the page open a WebSocket to
//! exactly this environment's Twilio signaling origin (`TWILIO_SIGNALING_URL`) and nothing else
//! beyond `'self'`. Every other header, and the fallback CSP, come from `www/_headers`.

use worker::{Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::AppError;

/// The assets binding (wrangler.toml `[assets] binding`).
const ASSETS: &str = "ASSETS";

/// The page's CSP: `www/_headers`' policy with `connect-src` naming the signaling origin too.
/// Without a usable signaling URL it stays `'self'` only (calls cannot connect; nothing else is
/// opened up).
pub fn content_security_policy(signaling_origin: Option<&str>) -> String {
    let connect = match signaling_origin {
        Some(origin) => format!("connect-src 'self' {origin}"),
        None => "connect-src 'self'".to_owned(),
    };
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data:",
        &connect,
        "media-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    .join("; ")
}

/// Serves the request from the static assets with this environment's CSP on the answer (every
/// answer, including 304s, whose headers replace the cached page's). An asset that does not
/// exist is the API's JSON 404.
pub async fn serve(req: Request, env: &Env, config: &Config) -> Result<Response, AppError> {
    let signaling_url = config.twilio_signaling_url().ok();
    if signaling_url.is_none() {
        crate::log::event(
            "signaling_url_unusable",
            &[("setting", "TWILIO_SIGNALING_URL")],
        );
    }
    let csp = content_security_policy(signaling_url.as_ref().map(|url| url.origin()));
    let assets = env.assets(ASSETS).map_err(|_| AppError::Internal)?;
    let response = assets
        .fetch_request(req)
        .await
        .map_err(|_| AppError::Internal)?;
    let status = response.status_code();
    if status == 404 {
        return Err(AppError::NotFound);
    }
    // A fetched response's headers are immutable: copy them.
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers
            .append(&name, &value)
            .map_err(|_| AppError::Internal)?;
    }
    headers
        .set("content-security-policy", &csp)
        .map_err(|_| AppError::Internal)?;
    let (_, body) = response.into_parts();
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSP line of `www/_headers`.
    fn static_policy() -> String {
        include_str!("../../www/_headers")
            .lines()
            .find_map(|line| line.trim().strip_prefix("Content-Security-Policy: "))
            .expect("www/_headers sets a Content-Security-Policy")
            .to_owned()
    }

    fn directive<'a>(policy: &'a str, name: &str) -> Option<&'a str> {
        policy
            .split(';')
            .map(str::trim)
            .find(|d| d.split(' ').next() == Some(name))
    }

    #[test]
    fn connect_src_adds_only_the_signaling_origin() {
        let table = [
            (
                Some("ws://127.0.0.1:8788"),
                "connect-src 'self' ws://127.0.0.1:8788",
            ),
            (
                Some("wss://voice-js.roaming.twilio.com"),
                "connect-src 'self' wss://voice-js.roaming.twilio.com",
            ),
            (None, "connect-src 'self'"),
        ];
        for (origin, expected) in table {
            let policy = content_security_policy(origin);
            assert_eq!(directive(&policy, "connect-src"), Some(expected));
        }
    }

    #[test]
    fn every_other_directive_matches_www_headers() {
        let fixed = static_policy();
        let ours = content_security_policy(Some("wss://voice-js.roaming.twilio.com"));
        let without_connect = |policy: &str| -> Vec<String> {
            policy
                .split(';')
                .map(str::trim)
                .filter(|d| !d.starts_with("connect-src"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(without_connect(&ours), without_connect(&fixed));
        assert_eq!(
            content_security_policy(None),
            fixed,
            "the fallback is _headers' policy"
        );
    }
}
