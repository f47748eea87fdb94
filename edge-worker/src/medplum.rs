//! The worker's Medplum client: client-credentials sign-in, the JWKS of user tokens, and the few
//! FHIR interactions the worker needs (read, search, update guarded by `If-Match`).
//!
//! The client token, the JWKS and the sign-ins lately confirmed are cached per isolate in
//! `thread_local`s: an isolate runs on one thread, and the requests it interleaves switch only at
//! an `await`, across which no borrow of these caches is held.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::Value;
use worker::{AbortSignal, Fetch, Headers, Method, Request, RequestInit};

use crate::config::{BaseUrl, Secret};

/// Why Medplum could not answer usefully. All of these mean "try again later" to the caller,
/// except `NotFound`, `PreconditionFailed` and `Rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MedplumError {
    /// Network failure, timeout or a 5xx.
    Unreachable,
    /// Medplum refused the worker's own credentials.
    ClientRejected,
    /// An answer we could not parse.
    Malformed,
    /// A 4xx other than 404/412.
    Rejected(u16),
}

/// A resource and the version it was read at. Its `Debug` names the resource, without its
/// content (a Patient's name and numbers).
#[derive(Clone, PartialEq)]
pub struct Versioned {
    pub resource: Value,
    pub version_id: String,
}

impl std::fmt::Debug for Versioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |name: &str| {
            self.resource
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("?")
        };
        write!(
            f,
            "Versioned({}/{} v{})",
            text("resourceType"),
            text("id"),
            self.version_id
        )
    }
}

/// The outcome of a conditional update.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    Updated(Versioned),
    /// Someone else changed the resource since it was read (HTTP 412).
    Stale,
}

#[derive(Clone)]
struct CachedToken {
    cache_key: String,
    access_token: String,
    expires_at_ms: u64,
}

#[derive(Clone)]
struct CachedJwks {
    issuer: String,
    keys: Vec<Value>,
    fetched_at_ms: u64,
}

thread_local! {
    static CLIENT_TOKEN: RefCell<Option<CachedToken>> = const { RefCell::new(None) };
    static JWKS: RefCell<Option<CachedJwks>> = const { RefCell::new(None) };
    /// Sign-ins Medplum confirmed as current: (Medplum base, sign-in key) → when (ms).
    static CONFIRMED_SIGN_INS: RefCell<Vec<(String, u64)>> = const { RefCell::new(Vec::new()) };
}

/// How long one request to Medplum may take, answer and body (it answers in well under a second
/// when well).
const MEDPLUM_REQUEST_TIMEOUT_MS: u32 = 8_000;

/// A sign-in Medplum confirmed is taken as current for this long (per isolate): a clinician who
/// signs out, or whose sign-in an administrator revokes, is refused within a minute.
const SIGN_IN_CONFIRMED_FOR_MS: u64 = 60_000;
/// At most this many confirmed sign-ins are remembered per isolate (the oldest go first).
const CONFIRMED_SIGN_INS_KEPT: usize = 512;

/// Whether Medplum still holds a user's sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStanding {
    Current,
    /// Signed out, or revoked by an administrator: Medplum refuses the token.
    Ended,
}

/// A JWKS is refetched for an unknown `kid` at most this often (a forged `kid` cannot make the
/// worker hammer Medplum, while a rotated key is picked up within seconds).
const JWKS_REFETCH_INTERVAL_MS: u64 = 10_000;
/// And kept at most this long even when every `kid` is known.
const JWKS_MAX_AGE_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// A Medplum server as the worker sees it.
pub struct Medplum<'a> {
    base: &'a BaseUrl,
    client_id: &'a Secret,
    client_secret: &'a Secret,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn send(
    url: &str,
    method: Method,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<(u16, Headers, String), MedplumError> {
    let header_map = Headers::new();
    for (name, value) in headers {
        header_map
            .set(name, value)
            .map_err(|_| MedplumError::Malformed)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(header_map);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    let request = Request::new_with_init(url, &init).map_err(|_| MedplumError::Malformed)?;
    // A Medplum that hangs is unreachable after this long, answer and body both, rather than
    // holding the clinician's request (or the ledger's alarm) until the platform gives up.
    let deadline = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(
        MEDPLUM_REQUEST_TIMEOUT_MS,
    ));
    let mut response = Fetch::Request(request)
        .send_with_signal(&deadline)
        .await
        .map_err(|_| MedplumError::Unreachable)?;
    let status = response.status_code();
    let text = response
        .text()
        .await
        .map_err(|_| MedplumError::Unreachable)?;
    if status >= 500 {
        return Err(MedplumError::Unreachable);
    }
    Ok((status, response.headers().clone(), text))
}

/// A resource body and its version (from `meta.versionId`, else the ETag).
fn versioned(text: &str, headers: &Headers) -> Result<Versioned, MedplumError> {
    let resource: Value = serde_json::from_str(text).map_err(|_| MedplumError::Malformed)?;
    let version_id = version_of(&resource, headers).ok_or(MedplumError::Malformed)?;
    Ok(Versioned {
        resource,
        version_id,
    })
}

fn version_of(resource: &Value, headers: &Headers) -> Option<String> {
    resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let etag = headers.get("etag").ok().flatten()?;
            Some(etag.trim_start_matches("W/").trim_matches('"').to_owned())
        })
}

impl<'a> Medplum<'a> {
    pub fn new(base: &'a BaseUrl, client_id: &'a Secret, client_secret: &'a Secret) -> Self {
        Self {
            base,
            client_id,
            client_secret,
        }
    }

    /// The issuer Medplum puts in its tokens: the base URL with a trailing slash.
    pub fn issuer(&self) -> String {
        format!("{}/", self.base.as_str())
    }

    fn cache_key(&self) -> String {
        format!("{}|{}", self.base.as_str(), self.client_id.expose())
    }

    /// The worker's own access token (client credentials), cached until a minute before expiry.
    async fn client_token(&self) -> Result<String, MedplumError> {
        let key = self.cache_key();
        let now = now_ms();
        let cached = CLIENT_TOKEN.with(|slot| {
            slot.borrow()
                .as_ref()
                .filter(|t| t.cache_key == key && t.expires_at_ms > now + 60_000)
                .map(|t| t.access_token.clone())
        });
        if let Some(token) = cached {
            return Ok(token);
        }
        let body = shared::form::encode([
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.expose()),
            ("client_secret", self.client_secret.expose()),
        ]);
        let (status, _, text) = send(
            &format!("{}/oauth2/token", self.base.as_str()),
            Method::Post,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            Some(body),
        )
        .await?;
        if status != 200 {
            return Err(MedplumError::ClientRejected);
        }
        let token: TokenResponse =
            serde_json::from_str(&text).map_err(|_| MedplumError::Malformed)?;
        // Kept for what Medplum says, at most a day (its tokens last an hour): a huge
        // `expires_in` neither wraps to "already expired" nor keeps a token for ever.
        let lifetime_seconds = token.expires_in.unwrap_or(300).min(86_400);
        let expires_at_ms = now.saturating_add(lifetime_seconds * 1000);
        CLIENT_TOKEN.with(|slot| {
            *slot.borrow_mut() = Some(CachedToken {
                cache_key: key,
                access_token: token.access_token.clone(),
                expires_at_ms,
            });
        });
        Ok(token.access_token)
    }

    fn forget_client_token(&self) {
        CLIENT_TOKEN.with(|slot| *slot.borrow_mut() = None);
    }

    /// A FHIR request with the worker's token, retried once with a fresh token on 401.
    async fn fhir(
        &self,
        method: Method,
        path: &str,
        extra_headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(u16, Headers, String), MedplumError> {
        let url = format!("{}/fhir/R4/{}", self.base.as_str(), path);
        for attempt in 0..2 {
            let token = self.client_token().await?;
            let authorization = format!("Bearer {token}");
            let mut headers = vec![
                ("authorization", authorization.as_str()),
                ("accept", "application/fhir+json"),
            ];
            headers.extend_from_slice(extra_headers);
            let (status, response_headers, text) =
                send(&url, method.clone(), &headers, body.clone()).await?;
            if status == 401 && attempt == 0 {
                self.forget_client_token();
                continue;
            }
            // 401 twice: the worker's own credentials are refused. A 403 is this request
            // refused (an access policy): the caller's `Rejected(403)`.
            if status == 401 {
                return Err(MedplumError::ClientRejected);
            }
            return Ok((status, response_headers, text));
        }
        Err(MedplumError::ClientRejected)
    }

    /// Reads `Type/id`; `Ok(None)` when it does not exist.
    pub async fn read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<Versioned>, MedplumError> {
        let (status, headers, text) = self
            .fhir(Method::Get, &format!("{resource_type}/{id}"), &[], None)
            .await?;
        match status {
            200 => Ok(Some(versioned(&text, &headers)?)),
            404 | 410 => Ok(None),
            other => Err(MedplumError::Rejected(other)),
        }
    }

    /// Searches `Type?query`; returns the matched resources (first page).
    pub async fn search(
        &self,
        resource_type: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, MedplumError> {
        let query = shared::form::encode(query.iter().copied());
        let (status, _, text) = self
            .fhir(Method::Get, &format!("{resource_type}?{query}"), &[], None)
            .await?;
        if status != 200 {
            return Err(MedplumError::Rejected(status));
        }
        let bundle: Value = serde_json::from_str(&text).map_err(|_| MedplumError::Malformed)?;
        Ok(bundle
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get("resource").cloned())
            .collect())
    }

    /// Replaces a resource only if it is still at `version_id` (optimistic locking).
    pub async fn update_if_match(
        &self,
        resource: &Value,
        version_id: &str,
    ) -> Result<UpdateOutcome, MedplumError> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or(MedplumError::Malformed)?;
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .ok_or(MedplumError::Malformed)?;
        let if_match = format!("W/\"{version_id}\"");
        let (status, headers, text) = self
            .fhir(
                Method::Put,
                &format!("{resource_type}/{id}"),
                &[
                    ("content-type", "application/fhir+json"),
                    ("if-match", &if_match),
                ],
                Some(resource.to_string()),
            )
            .await?;
        match status {
            200 | 201 => Ok(UpdateOutcome::Updated(versioned(&text, &headers)?)),
            412 | 409 => Ok(UpdateOutcome::Stale),
            other => Err(MedplumError::Rejected(other)),
        }
    }

    /// Applies a JSON Patch. A version conflict (409/412) is `Stale`: the caller re-reads and
    /// tries again. A 400 is `Rejected(400)`: Medplum answers it both to a failed `test`
    /// operation and to a write it will not accept, and only a re-read tells them apart (the
    /// version moved, or not).
    pub async fn patch(
        &self,
        resource_type: &str,
        id: &str,
        operations: &Value,
    ) -> Result<UpdateOutcome, MedplumError> {
        let (status, headers, text) = self
            .fhir(
                Method::Patch,
                &format!("{resource_type}/{id}"),
                &[("content-type", "application/json-patch+json")],
                Some(operations.to_string()),
            )
            .await?;
        match status {
            200 => Ok(UpdateOutcome::Updated(versioned(&text, &headers)?)),
            409 | 412 => Ok(UpdateOutcome::Stale),
            other => Err(MedplumError::Rejected(other)),
        }
    }

    /// The public key with this `kid` from Medplum's JWKS. The JWKS is cached; an unknown `kid`
    /// triggers a refetch at most every 10 s.
    /// Whether Medplum still holds the sign-in of this user token (`sign_in` names the sign-in:
    /// its `login_id`), asked with the token itself (`GET /auth/me`, which Medplum refuses for a
    /// revoked Login) at most once a [`SIGN_IN_CONFIRMED_FOR_MS`] per isolate. A signature and
    /// an expiry alone cannot tell a signed-out session from a live one.
    /// With `fresh`, Medplum is asked whatever this isolate remembers (for minting a calling
    /// token, which lasts long after the request).
    pub async fn sign_in_standing(
        &self,
        sign_in: &str,
        user_token: &str,
        fresh: bool,
    ) -> Result<SignInStanding, MedplumError> {
        let key = format!("{}|{sign_in}", self.base.as_str());
        let now = now_ms();
        let confirmed = CONFIRMED_SIGN_INS.with(|cache| {
            let mut cache = cache.borrow_mut();
            cache.retain(|(cached, at)| {
                now.saturating_sub(*at) < SIGN_IN_CONFIRMED_FOR_MS && !(fresh && *cached == key)
            });
            cache.iter().any(|(cached, _)| *cached == key)
        });
        if confirmed {
            return Ok(SignInStanding::Current);
        }
        let authorization = format!("Bearer {user_token}");
        let (status, _, _) = send(
            &format!("{}/auth/me", self.base.as_str()),
            Method::Get,
            &[
                ("authorization", &authorization),
                ("accept", "application/json"),
            ],
            None,
        )
        .await?;
        match status {
            200 => {
                CONFIRMED_SIGN_INS.with(|cache| {
                    let mut cache = cache.borrow_mut();
                    if cache.len() >= CONFIRMED_SIGN_INS_KEPT {
                        cache.remove(0);
                    }
                    cache.push((key, now));
                });
                Ok(SignInStanding::Current)
            }
            401 => Ok(SignInStanding::Ended),
            other => Err(MedplumError::Rejected(other)),
        }
    }

    pub async fn signing_key(&self, kid: &str) -> Result<Option<Value>, MedplumError> {
        let issuer = self.issuer();
        let now = now_ms();
        let find = |keys: &[Value]| {
            keys.iter()
                .find(|key| key.get("kid").and_then(Value::as_str) == Some(kid))
                .cloned()
        };
        let cached = JWKS
            .with(|slot| slot.borrow().clone())
            .filter(|jwks| jwks.issuer == issuer);
        if let Some(jwks) = &cached {
            let fresh = now.saturating_sub(jwks.fetched_at_ms) < JWKS_MAX_AGE_MS;
            if let (Some(key), true) = (find(&jwks.keys), fresh) {
                return Ok(Some(key));
            }
            if now.saturating_sub(jwks.fetched_at_ms) < JWKS_REFETCH_INTERVAL_MS {
                return Ok(find(&jwks.keys));
            }
        }
        let (status, _, text) = send(
            &format!("{}/.well-known/jwks.json", self.base.as_str()),
            Method::Get,
            &[("accept", "application/json")],
            None,
        )
        .await?;
        if status != 200 {
            return Err(MedplumError::Rejected(status));
        }
        let document: Value = serde_json::from_str(&text).map_err(|_| MedplumError::Malformed)?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .ok_or(MedplumError::Malformed)?;
        let found = find(&keys);
        JWKS.with(|slot| {
            *slot.borrow_mut() = Some(CachedJwks {
                issuer,
                keys,
                fetched_at_ms: now,
            });
        });
        Ok(found)
    }
}
