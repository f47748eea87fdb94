//! The worker's one way to write a log line: structured JSON events with no phone numbers,
//! names or tokens in them (callers pass codes and ids only). Native builds (tests) print to
//! stderr, since the console binding exists only in the Workers runtime.

/// Writes one structured log event, e.g. `log::event("token_issued", &[("practitioner", id)])`.
pub fn event(name: &str, fields: &[(&str, &str)]) {
    let mut line = serde_json::Map::new();
    line.insert("event".into(), name.into());
    for (key, value) in fields {
        line.insert((*key).into(), (*value).into());
    }
    write(&serde_json::Value::Object(line).to_string());
}

#[cfg(target_arch = "wasm32")]
fn write(line: &str) {
    worker::console_log!("{line}");
}

#[cfg(not(target_arch = "wasm32"))]
fn write(line: &str) {
    eprintln!("{line}");
}
