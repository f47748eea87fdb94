//! The worker's one way to write a log line: structured JSON events with no phone numbers,
//! names or tokens in them. Callers pass codes and ids only, and every value also passes through
//! `shared::telemetry::redact` (the masking layer), so a number or a JWT that slips into an error
//! message is still never written. Native builds (tests) print to stderr, since the console binding
//! exists only in the Workers runtime.

/// Writes one structured log event, e.g. `log::event("token_issued", &[("practitioner", id)])`.
pub fn event(name: &str, fields: &[(&str, &str)]) {
    write(&line(name, fields));
}

/// The JSON line of an event, every value masked.
fn line(name: &str, fields: &[(&str, &str)]) -> String {
    let mut line = serde_json::Map::new();
    line.insert("event".into(), name.into());
    for (key, value) in fields {
        line.insert((*key).into(), shared::telemetry::redact(value).into());
    }
    serde_json::Value::Object(line).to_string()
}

#[cfg(target_arch = "wasm32")]
fn write(line: &str) {
    worker::console_log!("{line}");
}

#[cfg(not(target_arch = "wasm32"))]
fn write(line: &str) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_value_is_masked() {
        assert_eq!(
            super::line(
                "fhir_write_retry",
                &[
                    ("error", "patient 07700 900123 not found"),
                    ("retry_in_ms", "2000")
                ]
            ),
            r#"{"error":"patient [number] not found","event":"fhir_write_retry","retry_in_ms":"2000"}"#
        );
    }
}
