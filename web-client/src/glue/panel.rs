//! The call panel's DOM: built once per mount inside the host's element (text content only,
//! never HTML strings), updated in place from a [`PanelView`] so focus and the live region
//! behave, with one delegated click listener and one submit listener owned by the panel.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element, Event, HtmlElement};

use crate::panel::{ButtonView, PanelView};

/// What the clinician did in the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanelAction {
    Call,
    Mute,
    End,
    Keypad,
    Accept,
    Decline,
    CopyNumber,
    Digit(String),
    /// The manual-dial outcome form: outcome code and minutes as typed.
    ManualOutcome {
        outcome: String,
        minutes: String,
    },
}

const ACTIONS: [(&str, &str, Option<&str>); 6] = [
    ("call", "Call now", Some("Alt+C")),
    ("mute", "Mute", Some("Alt+M")),
    ("end", "End call", Some("Alt+E")),
    ("keypad", "Keypad", None),
    ("accept", "Accept", None),
    ("decline", "Decline", None),
];

const OUTCOMES: [(&str, &str); 4] = [
    ("completed", "Spoke to the patient"),
    ("no-answer", "No answer"),
    ("busy", "Line busy"),
    ("failed", "Could not connect"),
];

/// The mounted panel.
pub struct Panel {
    root: Element,
    heading: Element,
    appointment: Element,
    status: Element,
    timer: Element,
    warning: HtmlElement,
    readiness: Element,
    buttons: Vec<(&'static str, HtmlElement)>,
    keypad: HtmlElement,
    fallback: HtmlElement,
    reason: Element,
    number: HtmlElement,
    copy: HtmlElement,
    manual_status: Element,
    _on_click: Closure<dyn FnMut(Event)>,
    _on_submit: Closure<dyn FnMut(Event)>,
}

fn element(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        element.set_class_name(class);
    }
    Ok(element)
}

fn html(element: Element) -> Result<HtmlElement, JsValue> {
    element.dyn_into::<HtmlElement>().map_err(JsValue::from)
}

fn set_text(element: &Element, text: &str) {
    if element.text_content().as_deref() != Some(text) {
        element.set_text_content(Some(text));
    }
}

fn set_attr(element: &Element, name: &str, value: &str) {
    if element.get_attribute(name).as_deref() != Some(value) {
        let _ = element.set_attribute(name, value);
    }
}

fn toggle_attr(element: &Element, name: &str, on: bool) {
    if on {
        set_attr(element, name, "");
    } else if element.has_attribute(name) {
        let _ = element.remove_attribute(name);
    }
}

impl Panel {
    /// Builds the panel inside `host` (its previous content is replaced).
    pub fn mount(
        host: &Element,
        on_action: impl Fn(PanelAction) + 'static,
    ) -> Result<Self, JsValue> {
        let document = host
            .owner_document()
            .ok_or_else(|| JsValue::from_str("no document"))?;
        host.set_text_content(None);
        let root = element(&document, "div", "call-panel")?;
        root.set_attribute("data-state", "loading")?;
        let heading = element(&document, "h3", "call-heading")?;
        let appointment = element(&document, "p", "call-appointment")?;
        let status = element(&document, "p", "call-status")?;
        status.set_attribute("role", "status")?;
        status.set_attribute("aria-live", "polite")?;
        status.set_attribute("aria-atomic", "true")?;
        let timer = element(&document, "p", "call-timer")?;
        timer.set_attribute("aria-label", "Call duration")?;
        let warning = html(element(&document, "p", "call-warning")?)?;
        warning.set_attribute("role", "alert")?;
        warning.set_hidden(true);
        let readiness = element(&document, "ul", "call-readiness")?;
        let controls = element(&document, "div", "call-controls")?;
        let mut buttons = Vec::new();
        for (action, label, shortcut) in ACTIONS {
            let button = html(element(&document, "button", "")?)?;
            button.set_attribute("type", "button")?;
            button.set_attribute("data-action", action)?;
            if let Some(shortcut) = shortcut {
                button.set_attribute("aria-keyshortcuts", shortcut)?;
                button.set_title(&format!("{label} ({shortcut})"));
            }
            button.set_text_content(Some(label));
            button.set_hidden(true);
            controls.append_child(&button)?;
            buttons.push((action, button));
        }
        let keypad = html(element(&document, "div", "call-keypad")?)?;
        keypad.set_attribute("role", "group")?;
        keypad.set_attribute("aria-label", "Keypad")?;
        keypad.set_hidden(true);
        for digit in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"] {
            let key = element(&document, "button", "")?;
            key.set_attribute("type", "button")?;
            key.set_attribute("data-digit", digit)?;
            key.set_text_content(Some(digit));
            keypad.append_child(&key)?;
        }

        let fallback = html(element(&document, "section", "call-fallback")?)?;
        fallback.set_attribute("aria-label", "Dial by hand")?;
        fallback.set_hidden(true);
        let reason = element(&document, "p", "fallback-reason")?;
        let number_line = element(&document, "p", "")?;
        let number = html(element(&document, "a", "fallback-number")?)?;
        let copy = html(element(&document, "button", "")?)?;
        copy.set_attribute("type", "button")?;
        copy.set_attribute("data-action", "copy-number")?;
        copy.set_text_content(Some("Copy number"));
        number_line.append_child(&number)?;
        number_line.append_child(&document.create_text_node(" "))?;
        number_line.append_child(&copy)?;
        let form = element(&document, "form", "manual-outcome")?;
        let outcome_label = element(&document, "label", "")?;
        outcome_label
            .append_child(&document.create_text_node("Outcome of the call you dialled "))?;
        let select = element(&document, "select", "")?;
        select.set_attribute("name", "outcome")?;
        for (value, label) in OUTCOMES {
            let option = element(&document, "option", "")?;
            option.set_attribute("value", value)?;
            option.set_text_content(Some(label));
            select.append_child(&option)?;
        }
        outcome_label.append_child(&select)?;
        let minutes_label = element(&document, "label", "")?;
        minutes_label.append_child(&document.create_text_node("Minutes "))?;
        let minutes = element(&document, "input", "")?;
        for (name, value) in [
            ("name", "minutes"),
            ("type", "number"),
            ("min", "0"),
            ("max", "1440"),
            ("value", "0"),
            ("inputmode", "numeric"),
        ] {
            minutes.set_attribute(name, value)?;
        }
        minutes_label.append_child(&minutes)?;
        let save = element(&document, "button", "")?;
        save.set_attribute("type", "submit")?;
        save.set_text_content(Some("Save outcome"));
        form.append_child(&outcome_label)?;
        form.append_child(&minutes_label)?;
        form.append_child(&save)?;
        let manual_status = element(&document, "p", "manual-outcome-status")?;
        manual_status.set_attribute("role", "status")?;
        for child in [&reason, &number_line, &form, &manual_status] {
            fallback.append_child(child)?;
        }

        for child in [
            &heading,
            &appointment,
            &status,
            &timer,
            warning.as_ref(),
            &readiness,
            &controls,
            keypad.as_ref(),
            fallback.as_ref(),
        ] {
            root.append_child(child)?;
        }
        host.append_child(&root)?;

        let on_action = std::rc::Rc::new(on_action);
        let click_action = on_action.clone();
        let on_click = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            let Some(target) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
                return;
            };
            let Ok(Some(control)) = target.closest("[data-action],[data-digit]") else {
                return;
            };
            if let Some(digit) = control.get_attribute("data-digit") {
                click_action(PanelAction::Digit(digit));
                return;
            }
            let action = match control.get_attribute("data-action").as_deref() {
                Some("call") => PanelAction::Call,
                Some("mute") => PanelAction::Mute,
                Some("end") => PanelAction::End,
                Some("keypad") => PanelAction::Keypad,
                Some("accept") => PanelAction::Accept,
                Some("decline") => PanelAction::Decline,
                Some("copy-number") => PanelAction::CopyNumber,
                _ => return,
            };
            click_action(action);
        });
        root.add_event_listener_with_callback("click", on_click.as_ref().unchecked_ref())?;
        let form_for_submit = form.clone();
        let on_submit = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            event.prevent_default();
            let field = |name: &str| {
                form_for_submit
                    .query_selector(&format!("[name={name}]"))
                    .ok()
                    .flatten()
                    .and_then(|e| js_sys::Reflect::get(&e, &"value".into()).ok())
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            on_action(PanelAction::ManualOutcome {
                outcome: field("outcome"),
                minutes: field("minutes"),
            });
        });
        form.add_event_listener_with_callback("submit", on_submit.as_ref().unchecked_ref())?;

        Ok(Self {
            root,
            heading,
            appointment,
            status,
            timer,
            warning,
            readiness,
            buttons,
            keypad,
            fallback,
            reason,
            number,
            copy,
            manual_status,
            _on_click: on_click,
            _on_submit: on_submit,
        })
    }

    fn button(&self, action: &str, view: &ButtonView) {
        if let Some((_, button)) = self.buttons.iter().find(|(a, _)| *a == action) {
            if button.hidden() == view.visible {
                button.set_hidden(!view.visible);
            }
            toggle_attr(button, "disabled", !view.enabled);
            if !view.label.is_empty() {
                set_text(button, &view.label);
            }
        }
    }

    /// Copies the view into the DOM, touching only what changed.
    pub fn update(&self, view: &PanelView, keypad_open: bool, manual_status: Option<&str>) {
        set_attr(&self.root, "data-state", view.state);
        match view.outcome {
            Some(outcome) => set_attr(&self.root, "data-outcome", outcome),
            None => toggle_attr(&self.root, "data-outcome", false),
        }
        set_text(&self.heading, &view.heading);
        set_text(&self.appointment, &view.appointment_line);
        set_text(&self.status, &view.status);
        set_text(&self.timer, view.timer.as_deref().unwrap_or(""));
        set_attr(
            &self.timer,
            "data-running",
            if view.state == "connected" {
                "true"
            } else {
                "false"
            },
        );
        match &view.warning {
            Some(text) => {
                set_text(&self.warning, text);
                self.warning.set_hidden(false);
            }
            None => self.warning.set_hidden(true),
        }
        self.readiness_items(view);
        self.button("call", &view.call);
        self.button("mute", &view.mute);
        if let Some((_, mute)) = self.buttons.iter().find(|(a, _)| *a == "mute") {
            set_attr(
                mute,
                "aria-pressed",
                if view.muted { "true" } else { "false" },
            );
        }
        self.button("end", &view.end);
        self.button("keypad", &view.keypad);
        if let Some((_, keypad)) = self.buttons.iter().find(|(a, _)| *a == "keypad") {
            set_attr(
                keypad,
                "aria-expanded",
                if keypad_open { "true" } else { "false" },
            );
        }
        self.button("accept", &view.accept);
        self.button("decline", &view.decline);
        let show_keypad = keypad_open && view.keypad.visible;
        if self.keypad.hidden() == show_keypad {
            self.keypad.set_hidden(!show_keypad);
        }
        match &view.fallback {
            Some(fallback) => {
                set_text(&self.reason, &fallback.reason);
                match &fallback.number {
                    Some((shown, href)) => {
                        set_text(&self.number, shown);
                        set_attr(&self.number, "href", href);
                        self.copy.set_hidden(false);
                    }
                    None => {
                        set_text(&self.number, "No number on record");
                        toggle_attr(&self.number, "href", false);
                        self.copy.set_hidden(true);
                    }
                }
                if self.fallback.hidden() {
                    self.fallback.set_hidden(false);
                }
            }
            None => {
                if !self.fallback.hidden() {
                    self.fallback.set_hidden(true);
                }
            }
        }
        set_text(&self.manual_status, manual_status.unwrap_or(""));
    }

    fn readiness_items(&self, view: &PanelView) {
        let Some(document) = self.root.owner_document() else {
            return;
        };
        let children = self.readiness.children();
        for (index, item) in view.readiness.iter().enumerate() {
            let li = match children.item(index as u32) {
                Some(li) => li,
                None => match document.create_element("li") {
                    Ok(li) => {
                        let _ = self.readiness.append_child(&li);
                        li
                    }
                    Err(_) => return,
                },
            };
            set_attr(&li, "data-check", item.check);
            set_attr(&li, "data-ok", if item.ok { "true" } else { "false" });
            // The stylesheet marks each line (✓/✗) from data-ok; the words say it too.
            set_text(&li, &item.text);
        }
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.root.remove();
    }
}

/// Copies text to the clipboard (best effort; the number stays visible either way).
pub fn copy_to_clipboard(text: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}
