//! The worker's configuration: the only module that reads environment variables and secrets.
//!
//! Every setting is read once per request into a [`Config`] whose fields say whether the value is
//! present and well-formed. `/api/v1/health` lists the names and their state (never the values);
//! a handler that needs a missing or malformed setting answers 503 naming it.

use serde::Serialize;
use shared::access_token::TokenTtl;
use shared::dial_policy::{CallLimits, DestinationPolicy};
use shared::ids::{AccountSid, ApiKeySid, TwimlAppSid, E164};
use shared::telemetry::AlertConfig;

/// The state of one setting, as `/api/v1/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingState {
    Present,
    Missing,
    Invalid,
    /// An optional setting that is unset, so its documented default applies.
    Default,
}

/// One setting: a parsed value, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting<T> {
    Present(T),
    Missing,
    /// Optional and unset: the documented default applies.
    Default,
    /// Set, but malformed; the message says what was expected (never the value).
    Invalid(String),
}

impl<T> Setting<T> {
    pub fn state(&self) -> SettingState {
        match self {
            Setting::Present(_) => SettingState::Present,
            Setting::Missing => SettingState::Missing,
            Setting::Invalid(_) => SettingState::Invalid,
            Setting::Default => SettingState::Default,
        }
    }

    /// The value of an optional setting: its `default` when unset, else as [`Setting::require`].
    pub fn or_default(&self, name: &'static str, default: T) -> Result<T, UnusableSetting>
    where
        T: Clone,
    {
        match self {
            Setting::Default => Ok(default),
            other => other.require(name).cloned(),
        }
    }

    /// The value, or an [`UnusableSetting`] naming it.
    pub fn require(&self, name: &'static str) -> Result<&T, UnusableSetting> {
        match self {
            Setting::Present(value) => Ok(value),
            Setting::Missing | Setting::Default => Err(UnusableSetting {
                name,
                state: SettingState::Missing,
                reason: None,
            }),
            Setting::Invalid(reason) => Err(UnusableSetting {
                name,
                state: SettingState::Invalid,
                reason: Some(reason.clone()),
            }),
        }
    }
}

/// A setting a handler needed but could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableSetting {
    pub name: &'static str,
    pub state: SettingState,
    pub reason: Option<String>,
}

/// The deployment environment (`ENVIRONMENT` var): `local`, `staging` or `production`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Local,
    Staging,
    Production,
}

impl Environment {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "local" => Some(Self::Local),
            "staging" => Some(Self::Staging),
            "production" => Some(Self::Production),
            _ => None,
        }
    }
}

/// An absolute http(s) base URL without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    fn parse(value: &str) -> Result<Self, String> {
        let trimmed = value.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                Ok(Self(trimmed.to_owned()))
            }
            _ => Err("an absolute http:// or https:// URL".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The WebSocket URL of Twilio's voice signaling that browsers connect to: `ws://` or `wss://`,
/// a host (and optional port), and any path. Its origin is what the page's CSP allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalingUrl {
    url: String,
    /// Length of `scheme://host[:port]` within `url`.
    origin_len: usize,
}

impl SignalingUrl {
    /// Origin of Twilio's global low-latency signaling endpoint, the default.
    pub const DEFAULT_ORIGIN: &'static str = "wss://voice-js.roaming.twilio.com";

    /// The default URL, used when the setting is unset: `wss://voice-js.roaming.twilio.com/signal`.
    pub fn twilio_default() -> Self {
        Self {
            url: format!("{}/signal", Self::DEFAULT_ORIGIN),
            origin_len: Self::DEFAULT_ORIGIN.len(),
        }
    }

    /// Accepts `ws://` or `wss://`, a DNS name, IPv4 or bracketed IPv6 host, an optional port,
    /// then any path without spaces, quotes, commas or semicolons (the origin ends up in a
    /// Content-Security-Policy header, which those would break).
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let expected =
            || "a ws:// or wss:// URL with a host, e.g. wss://voice-js.roaming.twilio.com/signal";
        let (scheme, rest) = value
            .strip_prefix("wss://")
            .map(|rest| ("wss://", rest))
            .or_else(|| value.strip_prefix("ws://").map(|rest| ("ws://", rest)))
            .ok_or_else(expected)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // The host, and what follows it: nothing, or `:` and a port number.
        let (host_ok, after_host) = match authority.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((ipv6, after)) => (
                    !ipv6.is_empty()
                        && ipv6
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
                    after,
                ),
                None => (false, ""),
            },
            None => {
                let host = authority.split(':').next().unwrap_or_default();
                let host_ok = !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
                (host_ok, &authority[host.len()..])
            }
        };
        let port_ok = after_host.is_empty()
            || after_host.strip_prefix(':').is_some_and(|digits| {
                digits.bytes().all(|b| b.is_ascii_digit())
                    && digits.parse::<u16>().is_ok_and(|n| n > 0)
            });
        let path_ok = !value.contains(|c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '\'' | '"' | '\\')
        });
        if host_ok && port_ok && path_ok {
            Ok(Self {
                url: value.to_owned(),
                origin_len: scheme.len() + authority.len(),
            })
        } else {
            Err(expected())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `wss://voice-js.roaming.twilio.com` or `ws://127.0.0.1:8788`: scheme, host and port.
    pub fn origin(&self) -> &str {
        &self.url[..self.origin_len]
    }
}

/// A secret value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    fn parse(value: &str) -> Result<Self, String> {
        if value.trim().is_empty() {
            Err("a non-empty value".to_owned())
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Everything the worker is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Setting<Environment>,
    pub public_base_url: Setting<BaseUrl>,
    pub medplum_base_url: Setting<BaseUrl>,
    pub medplum_client_id: Setting<Secret>,
    pub medplum_client_secret: Setting<Secret>,
    pub twilio_account_sid: Setting<AccountSid>,
    pub twilio_auth_token: Setting<Secret>,
    pub twilio_api_key: Setting<ApiKeySid>,
    pub twilio_api_secret: Setting<Secret>,
    pub twilio_twiml_app_sid: Setting<TwimlAppSid>,
    pub provisioning_secret: Setting<Secret>,
    /// Optional: lifetime of clinicians' Twilio tokens (default 3600 s, 60 to 86,400).
    pub token_ttl: Setting<TokenTtl>,
    /// How long a pool number stays leased to a call that never reports its end.
    pub pool_lease_seconds: Setting<u32>,
    /// How long a call may go without a status callback before the worker asks Twilio about it.
    pub call_check_seconds: Setting<u32>,
    /// Optional: the previous auth token, accepted for webhook signatures while rotating.
    pub twilio_auth_token_previous: Setting<Secret>,
    /// Optional: `uk-only` (default) or `countries:GB,IE`.
    pub dial_policy: Setting<DestinationPolicy>,
    /// Optional: caller-ID numbers the pool starts with (comma-separated E.164).
    pub caller_ids: Setting<Vec<E164>>,
    /// Optional: Twilio's REST API base URL (default `https://api.twilio.com`; sim/twilio locally).
    pub twilio_api_base_url: Setting<BaseUrl>,
    /// Optional: bearer secret of the admin API; without it the admin API answers 503.
    pub admin_token: Setting<Secret>,
    /// Optional: where patients calling back are sent when their clinician cannot answer.
    pub practice_phone_number: Setting<E164>,
    /// Optional: `clinician=30,patient=6` calls per rolling hour (the defaults).
    pub call_limits: Setting<CallLimits>,
    /// Optional: Twilio's voice signaling WebSocket for browsers (default
    /// `wss://voice-js.roaming.twilio.com/signal`; sim/twilio locally).
    pub twilio_signaling_url: Setting<SignalingUrl>,
    /// Optional: Datadog API key; without it nothing is sent to Datadog.
    pub datadog_api_key: Setting<Secret>,
    /// Optional: Datadog site (`datadoghq.com` default, `datadoghq.eu`, …) or, locally, a base URL.
    pub datadog_site: Setting<DatadogSite>,
    /// Optional: Slack incoming-webhook URL for alerts; without it alerts are only logged.
    pub slack_webhook_url: Setting<Secret>,
    /// Optional: salt of the anonymised clinician key in telemetry (default: the environment name).
    pub telemetry_salt: Setting<Secret>,
    /// Optional: alert thresholds, e.g. `failure_rate=0.5,window_minutes=15,min_samples=10`.
    pub alert_rules: Setting<AlertConfig>,
}

/// How many settings there are.
pub const SETTING_COUNT: usize = 27;

/// Names of every setting, in the order `/api/v1/health` lists them.
pub const SETTING_NAMES: [&str; SETTING_COUNT] = [
    "ENVIRONMENT",
    "PUBLIC_BASE_URL",
    "MEDPLUM_BASE_URL",
    "MEDPLUM_CLIENT_ID",
    "MEDPLUM_CLIENT_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_KEY",
    "TWILIO_API_SECRET",
    "TWILIO_TWIML_APP_SID",
    "PROVISIONING_SECRET",
    "TWILIO_TOKEN_TTL_SECONDS",
    "TWILIO_AUTH_TOKEN_PREVIOUS",
    "DIAL_POLICY",
    "TWILIO_CALLER_IDS",
    "TWILIO_API_BASE_URL",
    "ADMIN_TOKEN",
    "PRACTICE_PHONE_NUMBER",
    "CALL_LIMITS_PER_HOUR",
    "TWILIO_SIGNALING_URL",
    "DATADOG_API_KEY",
    "DATADOG_SITE",
    "SLACK_WEBHOOK_URL",
    "TELEMETRY_SALT",
    "ALERT_RULES",
    "POOL_LEASE_SECONDS",
    "CALL_CHECK_SECONDS",
];

/// A live call silent this long (no status callback) is checked with Twilio: 10 min.
pub const DEFAULT_CALL_CHECK_MS: i64 = 600_000;

/// A number of seconds from 5 to 86,400 (`POOL_LEASE_SECONDS`, `CALL_CHECK_SECONDS`).
fn seconds_5_to_a_day(value: &str) -> Result<u32, &'static str> {
    value
        .parse::<u32>()
        .ok()
        .filter(|seconds| (5..=86_400).contains(seconds))
        .ok_or("a whole number of seconds from 5 to 86400")
}

/// Settings that may be left unset (their defaults are documented in README.md).
pub const OPTIONAL_SETTINGS: [&str; 16] = [
    "POOL_LEASE_SECONDS",
    "CALL_CHECK_SECONDS",
    "DATADOG_API_KEY",
    "DATADOG_SITE",
    "SLACK_WEBHOOK_URL",
    "TELEMETRY_SALT",
    "ALERT_RULES",
    "TWILIO_TOKEN_TTL_SECONDS",
    "TWILIO_AUTH_TOKEN_PREVIOUS",
    "DIAL_POLICY",
    "TWILIO_CALLER_IDS",
    "TWILIO_API_BASE_URL",
    "ADMIN_TOKEN",
    "PRACTICE_PHONE_NUMBER",
    "CALL_LIMITS_PER_HOUR",
    "TWILIO_SIGNALING_URL",
];

/// Where Datadog is: a site name (`datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, …), or
/// a base URL under which both APIs live (the local sink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatadogSite {
    Site(String),
    BaseUrl(BaseUrl),
}

impl DatadogSite {
    fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("http://") || value.starts_with("https://") {
            return BaseUrl::parse(value).map(Self::BaseUrl);
        }
        let ok = value.contains('.')
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if ok {
            Ok(Self::Site(value.to_owned()))
        } else {
            Err("a Datadog site such as datadoghq.eu, or an http(s) base URL".to_owned())
        }
    }

    /// The metrics v2 series endpoint.
    pub fn series_url(&self) -> String {
        match self {
            Self::Site(site) => format!("https://api.{site}/api/v2/series"),
            Self::BaseUrl(base) => format!("{}/api/v2/series", base.as_str()),
        }
    }

    /// The distribution-points endpoint (call durations).
    pub fn distribution_url(&self) -> String {
        match self {
            Self::Site(site) => format!("https://api.{site}/api/v1/distribution_points"),
            Self::BaseUrl(base) => format!("{}/api/v1/distribution_points", base.as_str()),
        }
    }

    /// The logs intake endpoint.
    pub fn logs_url(&self) -> String {
        match self {
            Self::Site(site) => format!("https://http-intake.logs.{site}/api/v2/logs"),
            Self::BaseUrl(base) => format!("{}/api/v2/logs", base.as_str()),
        }
    }
}

fn parse_alert_rules(value: &str) -> Result<AlertConfig, &'static str> {
    const FORMAT: &str = "comma-separated failure_rate=0..1, window_minutes, min_samples, dedupe_minutes, backlog_minutes (each 1 minute to 7 days, or the _seconds forms), forged_burst (1 to 10000)";
    const WEEK_SECONDS: u64 = 7 * 86_400;
    let mut rules = AlertConfig::default();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, number) = part.split_once('=').ok_or(FORMAT)?;
        let number = number.trim();
        // Bounded, so no product below overflows and every rule can still fire.
        let up_to = |max: u64| {
            number
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(FORMAT)
        };
        match key.trim() {
            "failure_rate" => {
                rules.failure_rate = number
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0 && *r <= 1.0)
                    .ok_or(FORMAT)?
            }
            "window_minutes" => rules.window_ms = up_to(WEEK_SECONDS / 60)? * 60_000,
            "window_seconds" => rules.window_ms = up_to(WEEK_SECONDS)? * 1_000,
            "min_samples" => {
                rules.min_samples = u32::try_from(up_to(1_000_000)?).map_err(|_| FORMAT)?
            }
            "dedupe_minutes" => rules.dedupe_ms = up_to(WEEK_SECONDS / 60)? * 60_000,
            "dedupe_seconds" => rules.dedupe_ms = up_to(WEEK_SECONDS)? * 1_000,
            "backlog_minutes" => rules.backlog_limit_seconds = up_to(WEEK_SECONDS / 60)? * 60,
            "backlog_seconds" => rules.backlog_limit_seconds = up_to(WEEK_SECONDS)?,
            "forged_burst" => {
                rules.forged_burst =
                    u32::try_from(up_to(shared::telemetry::MAX_KEPT_INSTANTS as u64)?)
                        .map_err(|_| FORMAT)?
            }
            _ => return Err(FORMAT),
        }
    }
    Ok(rules)
}

fn parse_call_limits(value: &str) -> Result<CallLimits, &'static str> {
    let mut limits = CallLimits::default();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, number) = part.split_once('=').ok_or("clinician=<n>,patient=<n>")?;
        let number: u32 = number
            .trim()
            .parse()
            .map_err(|_| "clinician=<n>,patient=<n> with whole numbers")?;
        if number == 0 {
            return Err("limits of at least 1");
        }
        match key.trim() {
            "clinician" => limits.per_clinician_per_hour = number,
            "patient" => limits.per_patient_per_hour = number,
            _ => return Err("clinician=<n>,patient=<n>"),
        }
    }
    Ok(limits)
}

/// An optional setting: unset means its documented default.
fn optional<T>(setting: Setting<T>) -> Setting<T> {
    match setting {
        Setting::Missing => Setting::Default,
        other => other,
    }
}

fn parse_caller_ids(value: &str) -> Result<Vec<E164>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            E164::parse(n)
                .map_err(|_| "comma-separated E.164 numbers such as +447700900001".to_owned())
        })
        .collect()
}

fn setting<T, E: ToString>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Setting<T> {
    match lookup(name) {
        None => Setting::Missing,
        Some(raw) if raw.is_empty() => Setting::Missing,
        Some(raw) => match parse(raw.trim()) {
            Ok(value) => Setting::Present(value),
            Err(reason) => Setting::Invalid(reason.to_string()),
        },
    }
}

impl Config {
    /// Builds the configuration from a lookup of names to raw values (pure, for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            environment: setting(&lookup, "ENVIRONMENT", |v| {
                Environment::parse(v).ok_or("one of local, staging, production")
            }),
            public_base_url: setting(&lookup, "PUBLIC_BASE_URL", BaseUrl::parse),
            medplum_base_url: setting(&lookup, "MEDPLUM_BASE_URL", BaseUrl::parse),
            medplum_client_id: setting(&lookup, "MEDPLUM_CLIENT_ID", Secret::parse),
            medplum_client_secret: setting(&lookup, "MEDPLUM_CLIENT_SECRET", Secret::parse),
            twilio_account_sid: setting(&lookup, "TWILIO_ACCOUNT_SID", AccountSid::parse),
            twilio_auth_token: setting(&lookup, "TWILIO_AUTH_TOKEN", Secret::parse),
            twilio_api_key: setting(&lookup, "TWILIO_API_KEY", ApiKeySid::parse),
            twilio_api_secret: setting(&lookup, "TWILIO_API_SECRET", Secret::parse),
            twilio_twiml_app_sid: setting(&lookup, "TWILIO_TWIML_APP_SID", TwimlAppSid::parse),
            provisioning_secret: setting(&lookup, "PROVISIONING_SECRET", Secret::parse),
            token_ttl: optional(setting(&lookup, "TWILIO_TOKEN_TTL_SECONDS", |v| {
                v.parse::<u32>()
                    .ok()
                    .and_then(|seconds| TokenTtl::new(seconds).ok())
                    .ok_or("a whole number of seconds from 60 to 86400")
            })),
            twilio_auth_token_previous: optional(setting(
                &lookup,
                "TWILIO_AUTH_TOKEN_PREVIOUS",
                Secret::parse,
            )),
            dial_policy: optional(setting(&lookup, "DIAL_POLICY", DestinationPolicy::parse)),
            caller_ids: optional(setting(&lookup, "TWILIO_CALLER_IDS", parse_caller_ids)),
            twilio_api_base_url: optional(setting(&lookup, "TWILIO_API_BASE_URL", BaseUrl::parse)),
            admin_token: optional(setting(&lookup, "ADMIN_TOKEN", Secret::parse)),
            practice_phone_number: optional(setting(&lookup, "PRACTICE_PHONE_NUMBER", E164::parse)),
            call_limits: optional(setting(&lookup, "CALL_LIMITS_PER_HOUR", parse_call_limits)),
            twilio_signaling_url: optional(setting(
                &lookup,
                "TWILIO_SIGNALING_URL",
                SignalingUrl::parse,
            )),
            datadog_api_key: optional(setting(&lookup, "DATADOG_API_KEY", Secret::parse)),
            datadog_site: optional(setting(&lookup, "DATADOG_SITE", DatadogSite::parse)),
            slack_webhook_url: optional(setting(&lookup, "SLACK_WEBHOOK_URL", |v| {
                BaseUrl::parse(v).and_then(|_| Secret::parse(v))
            })),
            telemetry_salt: optional(setting(&lookup, "TELEMETRY_SALT", Secret::parse)),
            alert_rules: optional(setting(&lookup, "ALERT_RULES", parse_alert_rules)),
            pool_lease_seconds: optional(setting(
                &lookup,
                "POOL_LEASE_SECONDS",
                seconds_5_to_a_day,
            )),
            call_check_seconds: optional(setting(
                &lookup,
                "CALL_CHECK_SECONDS",
                seconds_5_to_a_day,
            )),
        }
    }

    /// The alert rules in force.
    pub fn alert_rules(&self) -> AlertConfig {
        match &self.alert_rules {
            Setting::Present(rules) => *rules,
            _ => AlertConfig::default(),
        }
    }

    /// `TELEMETRY_SALT` is optional except in production: there the default (derived from the
    /// environment's name, which anyone can read in this code) would let whoever reads the
    /// telemetry and knows the Practitioner ids tell clinicians apart, so it counts as missing.
    fn telemetry_salt_state(&self) -> SettingState {
        let production = matches!(self.environment, Setting::Present(Environment::Production));
        match self.telemetry_salt.state() {
            SettingState::Default if production => SettingState::Missing,
            state => state,
        }
    }

    /// The salt of the anonymised clinician key.
    pub fn telemetry_salt(&self) -> String {
        match (&self.telemetry_salt, &self.environment) {
            (Setting::Present(secret), _) => secret.expose().to_owned(),
            (_, Setting::Present(environment)) => format!("clinician-calls-{environment:?}"),
            _ => "clinician-calls".to_owned(),
        }
    }

    /// Datadog's endpoints and key, when telemetry to Datadog is configured.
    pub fn datadog(&self) -> Option<(DatadogSite, &str)> {
        let key = match &self.datadog_api_key {
            Setting::Present(secret) => secret.expose(),
            _ => return None,
        };
        let site = match &self.datadog_site {
            Setting::Present(site) => site.clone(),
            Setting::Default | Setting::Missing => DatadogSite::Site("datadoghq.com".to_owned()),
            Setting::Invalid(_) => return None,
        };
        Some((site, key))
    }

    /// Slack's incoming-webhook URL, when alerts go to Slack.
    pub fn slack_webhook_url(&self) -> Option<&str> {
        match &self.slack_webhook_url {
            Setting::Present(secret) => Some(secret.expose()),
            _ => None,
        }
    }

    /// The misuse limits in force.
    pub fn call_limits(&self) -> Result<CallLimits, UnusableSetting> {
        self.call_limits
            .or_default("CALL_LIMITS_PER_HOUR", CallLimits::default())
    }

    /// Twilio's REST base URL in force.
    pub fn twilio_api_base_url(&self) -> Result<BaseUrl, UnusableSetting> {
        self.twilio_api_base_url.or_default(
            "TWILIO_API_BASE_URL",
            BaseUrl("https://api.twilio.com".to_owned()),
        )
    }

    /// The signaling URL browsers are told to connect to (and the page's CSP allows).
    pub fn twilio_signaling_url(&self) -> Result<SignalingUrl, UnusableSetting> {
        self.twilio_signaling_url
            .or_default("TWILIO_SIGNALING_URL", SignalingUrl::twilio_default())
    }

    /// The previous auth token while one is being rotated out.
    pub fn previous_auth_token(&self) -> Option<&str> {
        match &self.twilio_auth_token_previous {
            Setting::Present(secret) => Some(secret.expose()),
            _ => None,
        }
    }

    /// The destination policy in force (UK-only when unset).
    pub fn dial_policy(&self) -> Result<DestinationPolicy, UnusableSetting> {
        self.dial_policy
            .or_default("DIAL_POLICY", DestinationPolicy::default())
    }

    /// The token lifetime in force (the default when unset).
    pub fn token_ttl(&self) -> Result<TokenTtl, UnusableSetting> {
        self.token_ttl
            .or_default("TWILIO_TOKEN_TTL_SECONDS", TokenTtl::default())
    }

    /// Reads the configuration from the worker's environment: vars first, then secrets.
    pub fn from_env(env: &worker::Env) -> Self {
        Self::from_lookup(|name| {
            env.var(name)
                .map(|v| v.to_string())
                .or_else(|_| env.secret(name).map(|s| s.to_string()))
                .ok()
        })
    }

    /// How long a lease lasts without its final callback (default [`shared::number_pool::LEASE_MS`]).
    pub fn pool_lease_ms(&self) -> i64 {
        match &self.pool_lease_seconds {
            Setting::Present(seconds) => i64::from(*seconds) * 1000,
            _ => shared::number_pool::LEASE_MS,
        }
    }

    /// How long a live call may go without a status callback before the worker asks Twilio how
    /// it stands (default [`DEFAULT_CALL_CHECK_MS`]).
    pub fn call_check_ms(&self) -> i64 {
        match &self.call_check_seconds {
            Setting::Present(seconds) => i64::from(*seconds) * 1000,
            _ => DEFAULT_CALL_CHECK_MS,
        }
    }

    /// Every setting's name and state, in [`SETTING_NAMES`] order.
    pub fn states(&self) -> [(&'static str, SettingState); SETTING_COUNT] {
        let states = [
            self.environment.state(),
            self.public_base_url.state(),
            self.medplum_base_url.state(),
            self.medplum_client_id.state(),
            self.medplum_client_secret.state(),
            self.twilio_account_sid.state(),
            self.twilio_auth_token.state(),
            self.twilio_api_key.state(),
            self.twilio_api_secret.state(),
            self.twilio_twiml_app_sid.state(),
            self.provisioning_secret.state(),
            self.token_ttl.state(),
            self.twilio_auth_token_previous.state(),
            self.dial_policy.state(),
            self.caller_ids.state(),
            self.twilio_api_base_url.state(),
            self.admin_token.state(),
            self.practice_phone_number.state(),
            self.call_limits.state(),
            self.twilio_signaling_url.state(),
            self.datadog_api_key.state(),
            self.datadog_site.state(),
            self.slack_webhook_url.state(),
            self.telemetry_salt_state(),
            self.alert_rules.state(),
            self.pool_lease_seconds.state(),
            self.call_check_seconds.state(),
        ];
        let mut out = [("", SettingState::Missing); SETTING_COUNT];
        for (slot, (name, state)) in out.iter_mut().zip(SETTING_NAMES.into_iter().zip(states)) {
            *slot = (name, state);
        }
        out
    }

    /// Whether every setting is present and well-formed (or optional and defaulted).
    pub fn is_complete(&self) -> bool {
        self.states()
            .iter()
            .all(|(_, state)| matches!(state, SettingState::Present | SettingState::Default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn complete_values() -> HashMap<&'static str, String> {
        HashMap::from([
            ("ENVIRONMENT", "local".to_owned()),
            ("PUBLIC_BASE_URL", "http://127.0.0.1:8787/".to_owned()),
            ("MEDPLUM_BASE_URL", "http://127.0.0.1:8103".to_owned()),
            ("MEDPLUM_CLIENT_ID", "worker-client".to_owned()),
            ("MEDPLUM_CLIENT_SECRET", "fake-medplum-secret".to_owned()),
            ("TWILIO_ACCOUNT_SID", format!("AC{}", "a".repeat(32))),
            ("TWILIO_AUTH_TOKEN", "fake-auth-token".to_owned()),
            ("TWILIO_API_KEY", format!("SK{}", "b".repeat(32))),
            ("TWILIO_API_SECRET", "fake-api-secret".to_owned()),
            ("TWILIO_TWIML_APP_SID", format!("AP{}", "c".repeat(32))),
            ("PROVISIONING_SECRET", "fake-provisioning-secret".to_owned()),
            ("TWILIO_TOKEN_TTL_SECONDS", "3600".to_owned()),
            (
                "TWILIO_AUTH_TOKEN_PREVIOUS",
                "fake-previous-auth-token".to_owned(),
            ),
            ("DIAL_POLICY", "countries:GB,IE".to_owned()),
            (
                "TWILIO_CALLER_IDS",
                "+447700900001,+447700900002".to_owned(),
            ),
            ("TWILIO_API_BASE_URL", "http://127.0.0.1:8788".to_owned()),
            ("ADMIN_TOKEN", "fake-admin-token".to_owned()),
            ("PRACTICE_PHONE_NUMBER", "+442079460000".to_owned()),
            ("CALL_LIMITS_PER_HOUR", "clinician=30,patient=6".to_owned()),
            (
                "TWILIO_SIGNALING_URL",
                "ws://127.0.0.1:8788/signal".to_owned(),
            ),
        ])
    }

    fn config_without(name: &str, replacement: Option<&str>) -> Config {
        let mut values = complete_values();
        match replacement {
            Some(value) => values.insert(
                SETTING_NAMES.into_iter().find(|n| *n == name).unwrap(),
                value.to_owned(),
            ),
            None => values.remove(name),
        };
        Config::from_lookup(|n| values.get(n).cloned())
    }

    fn state_of(config: &Config, name: &str) -> SettingState {
        config.states().iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn a_complete_configuration_is_complete() {
        let values = complete_values();
        let config = Config::from_lookup(|n| values.get(n).cloned());
        assert!(config.is_complete(), "{config:?}");
        assert_eq!(
            config
                .public_base_url
                .require("PUBLIC_BASE_URL")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8787"
        );
    }

    #[test]
    fn production_needs_its_own_telemetry_salt() {
        for (environment, salt, expected) in [
            ("production", None, SettingState::Missing),
            (
                "production",
                Some("a-random-salt-of-32-characters-x"),
                SettingState::Present,
            ),
            ("staging", None, SettingState::Default),
            ("local", None, SettingState::Default),
        ] {
            let mut values = complete_values();
            values.insert("ENVIRONMENT", environment.to_owned());
            if let Some(salt) = salt {
                values.insert("TELEMETRY_SALT", salt.to_owned());
            }
            let config = Config::from_lookup(|n| values.get(n).cloned());
            assert_eq!(
                state_of(&config, "TELEMETRY_SALT"),
                expected,
                "{environment}"
            );
            assert_eq!(config.is_complete(), expected != SettingState::Missing);
        }
    }

    #[test]
    fn each_missing_setting_is_named() {
        for name in SETTING_NAMES {
            let config = config_without(name, None);
            if OPTIONAL_SETTINGS.contains(&name) {
                assert_eq!(state_of(&config, name), SettingState::Default, "{name}");
                assert!(config.is_complete(), "{name} is optional");
            } else {
                assert_eq!(state_of(&config, name), SettingState::Missing, "{name}");
                assert!(!config.is_complete());
            }
        }
    }

    #[test]
    fn malformed_values_are_invalid_not_present() {
        let table = [
            ("ENVIRONMENT", "prod"),
            ("PUBLIC_BASE_URL", "example.org"),
            ("MEDPLUM_BASE_URL", "ftp://medplum"),
            ("TWILIO_ACCOUNT_SID", "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("TWILIO_API_KEY", "SK123"),
            ("TWILIO_TWIML_APP_SID", "APnothex-nothex-nothex-nothex-xxxx"),
            ("TWILIO_AUTH_TOKEN", "   "),
            ("TWILIO_TOKEN_TTL_SECONDS", "86401"),
            ("TWILIO_TOKEN_TTL_SECONDS", "59"),
            ("TWILIO_TOKEN_TTL_SECONDS", "1h"),
            ("DIAL_POLICY", "everywhere"),
            ("CALL_LIMITS_PER_HOUR", "clinician=0"),
            // Products that would overflow, and windows too long to ever be pruned.
            ("ALERT_RULES", "window_minutes=307445734561826"),
            ("ALERT_RULES", "dedupe_seconds=18446744073709552"),
            ("ALERT_RULES", "backlog_minutes=307445734561825861"),
            ("ALERT_RULES", "window_minutes=10081"),
            ("ALERT_RULES", "forged_burst=10001"),
            ("ALERT_RULES", "window_minutes=0"),
            ("CALL_LIMITS_PER_HOUR", "doctor=3"),
            ("PRACTICE_PHONE_NUMBER", "020 7946 0000"),
            ("TWILIO_CALLER_IDS", "+447700900001, 07700900002"),
            (
                "TWILIO_SIGNALING_URL",
                "https://voice-js.roaming.twilio.com/signal",
            ),
            ("TWILIO_SIGNALING_URL", "wss://"),
            ("TWILIO_SIGNALING_URL", "wss:///signal"),
            ("TWILIO_SIGNALING_URL", "ws://127.0.0.1:0/signal"),
            ("TWILIO_SIGNALING_URL", "ws://127.0.0.1:99999/signal"),
            ("TWILIO_SIGNALING_URL", "ws://127.0.0.1:87a8/signal"),
            ("TWILIO_SIGNALING_URL", "wss://user@example.org/signal"),
            ("TWILIO_SIGNALING_URL", "wss://example.org;/signal"),
            (
                "TWILIO_SIGNALING_URL",
                "wss://example.org/signal; script-src *",
            ),
            ("TWILIO_SIGNALING_URL", "wss://[::1/signal"),
        ];
        for (name, value) in table {
            let config = config_without(name, Some(value));
            assert_eq!(
                state_of(&config, name),
                SettingState::Invalid,
                "{name}={value}"
            );
        }
    }

    #[test]
    fn require_names_the_unusable_setting_without_its_value() {
        let config = config_without("TWILIO_API_KEY", Some("SK-secretish"));
        let err = config.twilio_api_key.require("TWILIO_API_KEY").unwrap_err();
        assert_eq!(err.name, "TWILIO_API_KEY");
        assert_eq!(err.state, SettingState::Invalid);
        assert!(!err.reason.unwrap().contains("secretish"));
    }

    #[test]
    fn token_ttl_is_optional_with_a_default() {
        let config = config_without("TWILIO_TOKEN_TTL_SECONDS", None);
        assert_eq!(
            state_of(&config, "TWILIO_TOKEN_TTL_SECONDS"),
            SettingState::Default
        );
        assert!(config.is_complete());
        assert_eq!(config.token_ttl().unwrap().seconds(), 3600);
        let config = config_without("TWILIO_TOKEN_TTL_SECONDS", Some("7200"));
        assert_eq!(config.token_ttl().unwrap().seconds(), 7200);
        let config = config_without("TWILIO_TOKEN_TTL_SECONDS", Some("100000"));
        assert_eq!(config.token_ttl().unwrap_err().state, SettingState::Invalid);
    }

    #[test]
    fn pool_lease_and_call_check_are_optional_bounded_and_in_milliseconds() {
        type Millis = fn(&Config) -> i64;
        let table: [(&str, Millis, i64); 2] = [
            (
                "POOL_LEASE_SECONDS",
                Config::pool_lease_ms,
                shared::number_pool::LEASE_MS,
            ),
            (
                "CALL_CHECK_SECONDS",
                Config::call_check_ms,
                DEFAULT_CALL_CHECK_MS,
            ),
        ];
        for (name, millis, default) in table {
            let config = config_without(name, None);
            assert_eq!(state_of(&config, name), SettingState::Default, "{name}");
            assert_eq!(millis(&config), default, "{name}");
            let config = config_without(name, Some("90"));
            assert_eq!(millis(&config), 90_000, "{name}");
            for bad in ["4", "86401", "-1", "10m"] {
                let config = config_without(name, Some(bad));
                assert_eq!(
                    state_of(&config, name),
                    SettingState::Invalid,
                    "{name}={bad}"
                );
                assert_eq!(millis(&config), default, "{name}={bad}");
            }
        }
    }

    #[test]
    fn call_limits_parse_with_defaults() {
        let config = config_without("CALL_LIMITS_PER_HOUR", Some("patient=2"));
        assert_eq!(
            config.call_limits().unwrap(),
            CallLimits {
                per_clinician_per_hour: 30,
                per_patient_per_hour: 2
            }
        );
        let config = config_without("CALL_LIMITS_PER_HOUR", None);
        assert_eq!(config.call_limits().unwrap(), CallLimits::default());
    }

    #[test]
    fn signaling_url_defaults_and_gives_its_origin() {
        let config = config_without("TWILIO_SIGNALING_URL", None);
        assert_eq!(
            state_of(&config, "TWILIO_SIGNALING_URL"),
            SettingState::Default
        );
        let default = config.twilio_signaling_url().unwrap();
        assert_eq!(default.as_str(), "wss://voice-js.roaming.twilio.com/signal");
        assert_eq!(default.origin(), "wss://voice-js.roaming.twilio.com");
        assert_eq!(SignalingUrl::parse(default.as_str()), Ok(default));

        let table = [
            ("ws://127.0.0.1:8788/signal", "ws://127.0.0.1:8788"),
            (
                "wss://chunderw-vpc-gll-ie1.twilio.com/signal",
                "wss://chunderw-vpc-gll-ie1.twilio.com",
            ),
            (
                "wss://voice-js.roaming.twilio.com",
                "wss://voice-js.roaming.twilio.com",
            ),
            ("ws://localhost:9000?x=1", "ws://localhost:9000"),
            ("ws://[::1]:8788/signal", "ws://[::1]:8788"),
        ];
        for (value, origin) in table {
            let config = config_without("TWILIO_SIGNALING_URL", Some(value));
            let url = config.twilio_signaling_url().unwrap();
            assert_eq!((url.as_str(), url.origin()), (value, origin));
        }
        let config = config_without("TWILIO_SIGNALING_URL", Some("http://example.org"));
        assert_eq!(
            config.twilio_signaling_url().unwrap_err().state,
            SettingState::Invalid
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let values = complete_values();
        let config = Config::from_lookup(|n| values.get(n).cloned());
        assert!(!format!("{config:?}").contains("fake-api-secret"));
    }
}
