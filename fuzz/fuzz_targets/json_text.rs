//! Fuzz target: `shared::json`, the browser module's JSON. Properties: parsing any text never
//! panics (nesting is capped, so no stack overflow); whatever parses is written back to text that
//! parses to the same value and is written the same way again (the writer is a fixed point); and
//! a text serde_json accepts is accepted too, to the same value (numbers aside, which this keeps
//! as text and serde_json reads as floats).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::json::Json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Json::parse(text);
    if let Ok(value) = &parsed {
        let written = value.to_string();
        let reparsed = Json::parse(&written);
        assert_eq!(reparsed.as_ref(), Ok(value), "{written}");
        assert_eq!(reparsed.map(|v| v.to_string()).as_deref(), Ok(written.as_str()));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(theirs) => {
            let ours = parsed.unwrap_or_else(|error| panic!("serde_json accepts it, we refuse: {error}"));
            let back: serde_json::Value =
                serde_json::from_str(&ours.to_string()).expect("our text is JSON to serde_json");
            assert_eq!(back, theirs);
        }
        Err(error) => {
            // serde_json refuses numbers beyond f64 (kept here as text) and, without its
            // `unbounded_depth` feature, the same nesting this refuses.
            if !error.to_string().contains("number out of range") {
                assert!(parsed.is_err(), "serde_json refuses it ({error}), we accept");
            }
        }
    }
});
