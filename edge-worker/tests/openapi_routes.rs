//! Keeps `docs/openapi.json` and the router in step: every described path and method is routed
//! (and its other methods are 405 with exactly the described ones allowed), and every endpoint
//! the router knows is described. Schemathesis (`scripts/api-check`) checks the rest against the
//! running worker.
// Test code may unwrap, expect and panic (as `clippy.toml` allows inside `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::mem::{discriminant, Discriminant};

use edge_worker::router::{route, Endpoint, RouteError};
use serde_json::Value;
use shared::ids::{AppointmentId, CallSid, PractitionerId};

const SPEC: &str = include_str!("../../docs/openapi.json");

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";

/// A value matching each path parameter's pattern, by name.
fn sample(parameter: &str) -> &'static str {
    match parameter {
        "practitionerId" => "clinician-ada",
        "appointmentId" => "appt-mobile",
        "callSid" => CALL_SID,
        other => panic!("no sample value for path parameter {{{other}}}: add one to this test"),
    }
}

/// `/a/{x}/b` with each `{name}` replaced by its sample value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => sample(name).to_owned(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("docs/openapi.json is JSON")
}

/// (path template, upper-case methods) of every described operation.
fn described() -> Vec<(String, BTreeSet<String>)> {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths is an object");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = HTTP_METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// Every endpoint of the router, one of each variant.
fn every_endpoint() -> Vec<Endpoint> {
    let practitioner = PractitionerId::parse("clinician-ada").unwrap();
    let appointment = AppointmentId::parse("appt-mobile").unwrap();
    let call = CallSid::parse(CALL_SID).unwrap();
    let all = vec![
        Endpoint::Health,
        Endpoint::AccessToken,
        Endpoint::TwilioIdentity(practitioner),
        Endpoint::DevSignIn,
        Endpoint::VoiceWebhook,
        Endpoint::CallStatusWebhook,
        Endpoint::DialCompleteWebhook,
        Endpoint::Appointments,
        Endpoint::AppointmentCalls(appointment.clone()),
        Endpoint::AppointmentCallEvents(appointment.clone()),
        Endpoint::EndAppointmentCall(appointment.clone()),
        Endpoint::AdminAppointmentCalls(appointment),
        Endpoint::InboundWebhook,
        Endpoint::InboundCompleteWebhook,
        Endpoint::PracticeCompleteWebhook,
        Endpoint::AdminNumberPool,
        Endpoint::AdminLeases,
        Endpoint::AdminLease(call),
        Endpoint::AdminCallStats,
        Endpoint::ManualFallbackReport,
    ];
    // No wildcard: a new variant fails to compile here until it is added to the list above.
    for endpoint in &all {
        match endpoint {
            Endpoint::Health
            | Endpoint::AccessToken
            | Endpoint::TwilioIdentity(_)
            | Endpoint::DevSignIn
            | Endpoint::VoiceWebhook
            | Endpoint::CallStatusWebhook
            | Endpoint::DialCompleteWebhook
            | Endpoint::Appointments
            | Endpoint::AppointmentCalls(_)
            | Endpoint::AppointmentCallEvents(_)
            | Endpoint::EndAppointmentCall(_)
            | Endpoint::InboundWebhook
            | Endpoint::InboundCompleteWebhook
            | Endpoint::PracticeCompleteWebhook
            | Endpoint::AdminNumberPool
            | Endpoint::AdminLeases
            | Endpoint::AdminLease(_)
            | Endpoint::AdminCallStats
            | Endpoint::AdminAppointmentCalls(_)
            | Endpoint::ManualFallbackReport => {}
        }
    }
    all
}

#[test]
fn every_described_operation_is_routed_with_exactly_its_methods() {
    let described = described();
    assert!(!described.is_empty());
    for (template, methods) in &described {
        let path = concrete(template);
        for method in HTTP_METHODS.map(|m| m.to_ascii_uppercase()) {
            let got = route(&method, &path);
            if methods.contains(&method) {
                assert!(
                    got.is_ok(),
                    "{method} {template} is described but not routed: {got:?}"
                );
            } else if method == "HEAD" && methods.contains("GET") {
                // HEAD is answered for every GET (documented in info.description).
                assert!(got.is_ok(), "HEAD {template}: {got:?}");
            } else {
                match got {
                    Err(RouteError::MethodNotAllowed { allow }) => {
                        let allowed: BTreeSet<String> =
                            allow.iter().map(|m| (*m).to_owned()).collect();
                        assert_eq!(&allowed, methods, "{template}: the router allows {allow:?}");
                    }
                    other => panic!("{method} {template} is not described, yet routed: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn every_routed_endpoint_and_method_is_described() {
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut described_endpoints: Vec<(Discriminant<Endpoint>, &'static str)> = Vec::new();
    for (template, methods) in described() {
        for method in methods {
            let routed = route(&method, &concrete(&template))
                .unwrap_or_else(|e| panic!("{method} {template}: {e:?}"));
            described_endpoints.push((discriminant(&routed.endpoint), routed.method));
            covered.insert((format!("{:?}", routed.endpoint), routed.method.to_owned()));
        }
    }
    for endpoint in every_endpoint() {
        for method in endpoint.methods() {
            assert!(
                described_endpoints.contains(&(discriminant(&endpoint), *method)),
                "{method} {endpoint:?} is routed but not described in docs/openapi.json"
            );
        }
    }
    assert_eq!(
        covered.len(),
        every_endpoint()
            .iter()
            .map(|e| e.methods().len())
            .sum::<usize>(),
        "one described operation per endpoint and method"
    );
}

#[test]
fn the_description_is_openapi_3_1_with_one_error_shape() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let error = &spec["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        serde_json::json!(["code", "message"])
    );
    // Every error response (4xx/5xx, JSON) refers to that one shape.
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["operationId"].is_string(),
                "{method} {template} has no operationId"
            );
            assert!(
                operation.get("security").is_some(),
                "{method} {template} must say who may call it (security, [] for anyone)"
            );
            for (status, response) in operation["responses"].as_object().unwrap() {
                assert_ne!(
                    status, "500",
                    "{method} {template}: 500 is never an answer the worker means to give"
                );
                if status.starts_with('4')
                    || (status.starts_with('5') && template != "/api/v1/health")
                {
                    let schema_ref = response
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| r.strip_prefix("#/components/responses/"))
                        .map(|name| &spec["components"]["responses"][name])
                        .unwrap_or(response);
                    let schema = &schema_ref["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["allOf"][0]["$ref"], "#/components/schemas/Error",
                        "{status} of {method} {template} is not the error shape"
                    );
                }
            }
        }
    }
}
