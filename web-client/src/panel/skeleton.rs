//! The call panel's fixed DOM, as data: every element the panel ever has, in document order,
//! each naming its parent. `glue::panel` builds it with one loop (text content and attributes
//! only, never HTML strings); a table instead of a hand-written builder keeps the browser module
//! small, and it is checked natively here.

/// One node of the skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Index in [`SKELETON`] of the element it is appended to; the root (index 0) has none and
    /// names itself.
    pub parent: usize,
    /// The element's tag; empty for a text node holding `text`.
    pub tag: &'static str,
    pub class: &'static str,
    pub attributes: &'static [(&'static str, &'static str)],
    /// Text content, set before any child is appended (so a label's words come before its field).
    pub text: &'static str,
}

impl Part {
    /// Whether `key` names this part: its class, or its `data-action`.
    pub fn is_named(&self, key: &str) -> bool {
        self.class == key || self.attributes.contains(&("data-action", key))
    }

    /// The value of its attribute `name`, if it has one.
    pub fn attribute(&self, name: &str) -> Option<&'static str> {
        self.attributes
            .iter()
            .find(|(attribute, _)| *attribute == name)
            .map(|(_, value)| *value)
    }
}

const fn part(
    parent: usize,
    tag: &'static str,
    class: &'static str,
    attributes: &'static [(&'static str, &'static str)],
    text: &'static str,
) -> Part {
    Part {
        parent,
        tag,
        class,
        attributes,
        text,
    }
}

/// The buttons that `data-action` names in the controls row, in order.
pub const ACTIONS: [&str; 6] = ["call", "mute", "end", "keypad", "accept", "decline"];

const ROOT: usize = 0;
const CONTROLS: usize = 7;
const KEYPAD: usize = 14;
const FALLBACK: usize = 28;
const NUMBER_LINE: usize = 31;
const FORM: usize = 37;
const OUTCOME_LABEL: usize = 38;
const OUTCOME_SELECT: usize = 39;
const MINUTES_LABEL: usize = 44;

/// Every node of the panel. Hidden parts carry the `hidden` attribute until a view shows them.
pub const SKELETON: [Part; 48] = [
    part(ROOT, "div", "call-panel", &[("data-state", "loading")], ""),
    part(ROOT, "h3", "call-heading", &[], ""),
    part(ROOT, "p", "call-appointment", &[], ""),
    part(
        ROOT,
        "p",
        "call-status",
        &[
            ("role", "status"),
            ("aria-live", "polite"),
            ("aria-atomic", "true"),
        ],
        "",
    ),
    part(
        ROOT,
        "p",
        "call-timer",
        // A timer (named, and not read out every second): a plain paragraph cannot be named.
        &[("role", "timer"), ("aria-label", "Call duration")],
        "",
    ),
    part(
        ROOT,
        "p",
        "call-warning",
        // Polite: read when the clinician pauses, not over the patient.
        &[("role", "status"), ("hidden", "")],
        "",
    ),
    part(ROOT, "ul", "call-readiness", &[], ""),
    // CONTROLS (7) and its buttons, in the order of ACTIONS.
    part(ROOT, "div", "call-controls", &[], ""),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "call"),
            ("aria-keyshortcuts", "Alt+C"),
            ("title", "Call now (Alt+C)"),
            ("hidden", ""),
        ],
        "Call now",
    ),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "mute"),
            ("aria-keyshortcuts", "Alt+M"),
            ("title", "Mute (Alt+M)"),
            ("hidden", ""),
        ],
        "Mute",
    ),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "end"),
            ("aria-keyshortcuts", "Alt+E"),
            ("title", "End call (Alt+E)"),
            ("hidden", ""),
        ],
        "End call",
    ),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "keypad"),
            ("hidden", ""),
        ],
        "Keypad",
    ),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "accept"),
            ("aria-keyshortcuts", "Alt+A"),
            ("title", "Accept (Alt+A)"),
            ("hidden", ""),
        ],
        "Accept",
    ),
    part(
        CONTROLS,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-action", "decline"),
            ("aria-keyshortcuts", "Alt+E"),
            ("title", "Decline (Alt+E)"),
            ("hidden", ""),
        ],
        "Decline",
    ),
    // KEYPAD (14): the digits sent so far, then its twelve keys.
    part(
        ROOT,
        "div",
        "call-keypad",
        &[("role", "group"), ("aria-label", "Keypad"), ("hidden", "")],
        "",
    ),
    part(KEYPAD, "p", "keypad-digits", &[("hidden", "")], ""),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "1")],
        "1",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "2")],
        "2",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "3")],
        "3",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "4")],
        "4",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "5")],
        "5",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "6")],
        "6",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "7")],
        "7",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "8")],
        "8",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "9")],
        "9",
    ),
    part(
        KEYPAD,
        "button",
        "",
        // Named in words: a screen reader may skip "*" and "#" as punctuation.
        &[
            ("type", "button"),
            ("data-digit", "*"),
            ("aria-label", "Star"),
        ],
        "*",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[("type", "button"), ("data-digit", "0")],
        "0",
    ),
    part(
        KEYPAD,
        "button",
        "",
        &[
            ("type", "button"),
            ("data-digit", "#"),
            ("aria-label", "Hash"),
        ],
        "#",
    ),
    // FALLBACK (28): its heading, the reason, the number with its copy button, and the manual
    // outcome form.
    part(
        ROOT,
        "section",
        "call-fallback",
        &[("aria-label", "Dial by hand"), ("hidden", "")],
        "",
    ),
    part(FALLBACK, "h4", "", &[], "Dial by hand"),
    // Hidden while it says what the status line above already says.
    part(FALLBACK, "p", "fallback-reason", &[], ""),
    // The number line, labelled (its link and copy button follow the label).
    part(FALLBACK, "p", "", &[], "Patient's number: "),
    part(NUMBER_LINE, "a", "fallback-number", &[], ""),
    part(NUMBER_LINE, "", "", &[], " "),
    part(
        NUMBER_LINE,
        "button",
        "",
        &[("type", "button"), ("data-action", "copy-number")],
        "Copy number",
    ),
    part(NUMBER_LINE, "", "", &[], " "),
    // Whether the copy worked, said next to the button (and read out).
    part(
        NUMBER_LINE,
        "span",
        "copy-status",
        &[("role", "status")],
        "",
    ),
    part(FALLBACK, "form", "manual-outcome", &[], ""),
    part(FORM, "label", "", &[], "Outcome of the call you dialled "),
    part(OUTCOME_LABEL, "select", "", &[("name", "outcome")], ""),
    part(
        OUTCOME_SELECT,
        "option",
        "",
        &[("value", "completed")],
        "Spoke to the patient",
    ),
    part(
        OUTCOME_SELECT,
        "option",
        "",
        &[("value", "no-answer")],
        "No answer",
    ),
    part(
        OUTCOME_SELECT,
        "option",
        "",
        &[("value", "busy")],
        "Line busy",
    ),
    part(
        OUTCOME_SELECT,
        "option",
        "",
        &[("value", "failed")],
        "Could not connect",
    ),
    part(FORM, "label", "", &[], "Minutes "),
    part(
        MINUTES_LABEL,
        "input",
        "",
        &[
            ("name", "minutes"),
            ("type", "number"),
            ("min", "0"),
            ("max", "1440"),
            // Fractions of a minute too (2.5): shared::call_state::minutes_as_seconds.
            ("step", "any"),
            ("value", "0"),
            ("inputmode", "decimal"),
        ],
        "",
    ),
    part(FORM, "button", "", &[("type", "submit")], "Save outcome"),
    part(
        FALLBACK,
        "p",
        "manual-outcome-status",
        &[("role", "status")],
        "",
    ),
];

/// The index in [`SKELETON`] of the one element whose class, or whose `data-action`, is `key`.
pub fn find(key: &str) -> Option<usize> {
    SKELETON.iter().position(|part| part.is_named(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_hangs_from_an_element_that_comes_before_it() {
        for (index, part) in SKELETON.iter().enumerate().skip(1) {
            assert!(part.parent < index, "part {index} hangs from a later part");
            let parent = &SKELETON[part.parent];
            assert!(
                !parent.tag.is_empty(),
                "part {index} hangs from a text node"
            );
        }
        assert_eq!(SKELETON[0].parent, 0);
        assert_eq!(SKELETON[0].class, "call-panel");
    }

    #[test]
    fn each_named_parent_is_the_part_it_names() {
        let named = [
            (CONTROLS, "call-controls"),
            (KEYPAD, "call-keypad"),
            (FALLBACK, "call-fallback"),
            (FORM, "manual-outcome"),
        ];
        for (index, class) in named {
            assert_eq!(SKELETON[index].class, class, "part {index}");
        }
        assert_eq!(SKELETON[NUMBER_LINE].text, "Patient's number: ");
        assert_eq!(SKELETON[OUTCOME_LABEL].tag, "label");
        assert_eq!(SKELETON[OUTCOME_SELECT].tag, "select");
        assert_eq!(SKELETON[MINUTES_LABEL].text, "Minutes ");
    }

    #[test]
    fn the_glue_finds_each_handle_it_keeps_exactly_once() {
        let handles = [
            "call-heading",
            "call-appointment",
            "call-status",
            "call-timer",
            "call-warning",
            "call-readiness",
            "call-keypad",
            "call-fallback",
            "fallback-reason",
            "fallback-number",
            "copy-number",
            "copy-status",
            "keypad-digits",
            "manual-outcome",
            "manual-outcome-status",
        ];
        for key in handles.iter().chain(ACTIONS.iter()) {
            let matching = SKELETON.iter().filter(|part| part.is_named(key)).count();
            assert_eq!(matching, 1, "{key}");
            assert!(find(key).is_some(), "{key}");
        }
        assert_eq!(find("no-such-part"), None);
    }

    #[test]
    fn buttons_say_their_type_and_the_actions_sit_in_the_controls_row_in_order() {
        for part in SKELETON.iter().filter(|part| part.tag == "button") {
            assert!(
                part.attributes.contains(&("type", "button"))
                    || part.attributes.contains(&("type", "submit")),
                "{part:?}"
            );
            assert!(!part.text.is_empty(), "a button without words: {part:?}");
        }
        let in_controls: Vec<&str> = SKELETON
            .iter()
            .filter(|part| part.parent == CONTROLS)
            .filter_map(|part| part.attribute("data-action"))
            .collect();
        assert_eq!(in_controls, ACTIONS);
        // A shortcut's tooltip is the button's words and the keys, written out in the table.
        for part in SKELETON.iter().filter(|part| part.tag == "button") {
            if let Some(keys) = part.attribute("aria-keyshortcuts") {
                let title = format!("{} ({keys})", part.text);
                assert_eq!(part.attribute("title"), Some(title.as_str()), "{part:?}");
            }
        }
    }

    #[test]
    fn the_keypad_has_the_twelve_keys_of_a_phone_in_order() {
        let keys: String = SKELETON
            .iter()
            .filter(|part| part.parent == KEYPAD && part.tag == "button")
            .map(|part| part.text)
            .collect();
        assert_eq!(keys, "123456789*0#");
    }

    #[test]
    fn the_manual_outcome_form_offers_four_outcomes_and_the_minutes() {
        let outcomes: Vec<&str> = SKELETON
            .iter()
            .filter(|part| part.tag == "option")
            .filter_map(|part| part.attribute("value"))
            .collect();
        assert_eq!(outcomes, ["completed", "no-answer", "busy", "failed"]);
        assert!(SKELETON
            .iter()
            .any(|part| part.tag == "input" && part.attributes.contains(&("name", "minutes"))));
    }
}
