//! Renders reports into the page with DOM nodes and text content (never HTML strings).

use shared::readiness::{CheckOutcome, ReadinessReport, Verdict};
use wasm_bindgen::JsValue;

fn verdict_code(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ready => "ready",
        Verdict::ReadyAfterPrompt => "ready-after-prompt",
        Verdict::ManualDialOnly => "manual-dial-only",
    }
}

fn outcome_code(outcome: CheckOutcome) -> (&'static str, &'static str) {
    // (machine code, visible label): states are told apart by words, not only by colour.
    match outcome {
        CheckOutcome::Pass => ("pass", "OK"),
        CheckOutcome::Warn => ("warn", "Note"),
        CheckOutcome::Fail => ("fail", "Problem"),
    }
}

/// Replaces the content of `#target_id` with the report: a summary and one item per check.
pub fn render_readiness(target_id: &str, report: &ReadinessReport) -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let target = document
        .get_element_by_id(target_id)
        .ok_or_else(|| JsValue::from_str(&format!("no element #{target_id}")))?;
    target.set_text_content(None);
    target.set_attribute("data-verdict", verdict_code(report.verdict))?;

    let summary = document.create_element("p")?;
    summary.set_class_name("readiness-summary");
    summary.set_text_content(Some(report.summary));
    target.append_child(&summary)?;

    let list = document.create_element("ul")?;
    list.set_class_name("readiness-checks");
    for check in &report.checks {
        let (code, label) = outcome_code(check.outcome);
        let item = document.create_element("li")?;
        item.set_attribute("data-check", check.name)?;
        item.set_attribute("data-outcome", code)?;
        let badge = document.create_element("strong")?;
        badge.set_text_content(Some(label));
        item.append_child(&badge)?;
        item.append_child(&document.create_text_node(&format!(" {}", check.message)))?;
        list.append_child(&item)?;
    }
    target.append_child(&list)?;
    Ok(())
}
