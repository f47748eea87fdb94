//! `GET /api/v1/health`: liveness and configuration sanity, naming settings but never their values.

use serde::Serialize;

use crate::config::{Config, SettingState};
use crate::reply::Reply;

#[derive(Serialize)]
struct Health<'a> {
    /// `ok` when every setting is present and well-formed, else `degraded`.
    status: &'static str,
    version: &'static str,
    environment: Option<crate::config::Environment>,
    config: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'a str>,
    /// Only with `?deep=1`: each Durable Object's answer to a status probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The outcome of probing one Durable Object, for the deep health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageProbe {
    Ok,
    Failed,
}

/// Builds the health report. Always 200 while every probed store answers: the worker is alive
/// even when misconfigured, and the body says what is wrong. A failed storage probe is 503.
pub fn health(config: &Config, storage: Option<&[(&'static str, StorageProbe)]>) -> Reply {
    let states = config.states();
    let problems: Vec<&str> = states
        .iter()
        .filter(|(_, state)| matches!(state, SettingState::Missing | SettingState::Invalid))
        .map(|(name, _)| *name)
        .collect();
    let storage_failed = storage.is_some_and(|probes| {
        probes
            .iter()
            .any(|(_, probe)| *probe == StorageProbe::Failed)
    });
    let report = Health {
        status: if storage_failed {
            "failing"
        } else if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        version: env!("CARGO_PKG_VERSION"),
        environment: match &config.environment {
            crate::config::Setting::Present(env) => Some(*env),
            _ => None,
        },
        config: states
            .iter()
            .map(|(name, state)| {
                (
                    (*name).to_owned(),
                    serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect(),
        problems,
        storage: storage.map(|probes| {
            probes
                .iter()
                .map(|(name, probe)| {
                    let state = if *probe == StorageProbe::Ok {
                        "ok"
                    } else {
                        "failed"
                    };
                    ((*name).to_owned(), serde_json::Value::from(state))
                })
                .collect()
        }),
    };
    Reply::json(if storage_failed { 503 } else { 200 }, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_states_and_never_values() {
        let config = Config::from_lookup(|name| match name {
            "ENVIRONMENT" => Some("staging".into()),
            "TWILIO_API_SECRET" => Some("fake-super-secret-value".into()),
            "TWILIO_API_KEY" => Some("SKnot-a-sid".into()),
            _ => None,
        });
        let reply = health(&config, None);
        assert_eq!(reply.status, 200);
        assert!(!reply.body.contains("fake-super-secret-value"));
        assert!(!reply.body.contains("SKnot-a-sid"));
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["environment"], "staging");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["config"]["TWILIO_API_SECRET"], "present");
        assert_eq!(body["config"]["TWILIO_API_KEY"], "invalid");
        assert_eq!(body["config"]["TWILIO_AUTH_TOKEN"], "missing");
        assert_eq!(body["config"].as_object().unwrap().len(), 27);
        assert_eq!(body["config"]["TWILIO_TOKEN_TTL_SECONDS"], "default");
        assert_eq!(body["config"]["TWILIO_SIGNALING_URL"], "default");
        assert!(body["problems"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("TWILIO_API_KEY")));
        assert!(body.get("storage").is_none());
    }

    #[test]
    fn a_failed_storage_probe_makes_health_fail() {
        let config = Config::from_lookup(|_| None);
        let probes = [
            ("NumberPool", StorageProbe::Ok),
            ("CallLedger", StorageProbe::Failed),
        ];
        let reply = health(&config, Some(&probes));
        assert_eq!(reply.status, 503);
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["status"], "failing");
        assert_eq!(body["storage"]["NumberPool"], "ok");
        assert_eq!(body["storage"]["CallLedger"], "failed");
    }
}
