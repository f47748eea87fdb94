//! The call panel's DOM: built once per mount inside the host's element from the table in
//! `panel::skeleton` (text content and attributes only, never HTML strings), updated in place
//! from a [`PanelView`] so focus and the live region behave, with one delegated click listener
//! and one submit listener owned by the panel.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element, Event, HtmlElement, Node};

use crate::panel::skeleton::{self, SKELETON};
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

/// Sentences the page says beside the view, each until something replaces or clears it.
#[derive(Debug, Default, Clone, Copy)]
pub struct PanelNotes<'a> {
    /// Next to Copy number: whether the number was copied.
    pub copied: Option<&'a str>,
    /// Under the manual outcome form: saving, saved, or why not.
    pub manual_outcome: Option<&'a str>,
}

/// The mounted panel.
pub struct Panel {
    root: HtmlElement,
    heading: HtmlElement,
    appointment: HtmlElement,
    status: HtmlElement,
    timer: HtmlElement,
    warning: HtmlElement,
    readiness: HtmlElement,
    buttons: Vec<(&'static str, HtmlElement)>,
    keypad: HtmlElement,
    digits_sent: HtmlElement,
    fallback: HtmlElement,
    reason: HtmlElement,
    number: HtmlElement,
    copy: HtmlElement,
    copy_status: HtmlElement,
    manual_status: HtmlElement,
    _on_click: Closure<dyn FnMut(Event)>,
    _on_submit: Closure<dyn FnMut(Event)>,
}

/// Creates every node of [`SKELETON`], each appended to its parent; the root (the first) is
/// returned unattached with the rest.
fn build(document: &Document) -> Result<Vec<Node>, JsValue> {
    let mut built: Vec<Node> = Vec::with_capacity(SKELETON.len());
    for part in &SKELETON {
        let node: Node = if part.tag.is_empty() {
            document.create_text_node(part.text).into()
        } else {
            let element = document.create_element(part.tag)?;
            if !part.class.is_empty() {
                element.set_class_name(part.class);
            }
            for (name, value) in part.attributes {
                element.set_attribute(name, value)?;
            }
            if !part.text.is_empty() {
                element.set_text_content(Some(part.text));
            }
            element.into()
        };
        // The root names itself as parent, and is not built yet when it is looked up.
        if let Some(parent) = built.get(part.parent) {
            parent.append_child(&node)?;
        }
        built.push(node);
    }
    Ok(built)
}

/// The built element that [`skeleton::find`] names by class or `data-action`.
fn handle(built: &[Node], key: &str) -> Result<HtmlElement, JsValue> {
    skeleton::find(key)
        .and_then(|index| built.get(index))
        .and_then(|node| node.clone().dyn_into::<HtmlElement>().ok())
        .ok_or_else(|| JsValue::from_str("the panel skeleton lacks a part"))
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

/// Hides or shows `element`, touching the DOM only when that changes.
fn set_hidden(element: &HtmlElement, hidden: bool) {
    if element.hidden() != hidden {
        element.set_hidden(hidden);
    }
}

/// Shows `text` in `element`, or hides the element when there is none.
fn show_text(element: &HtmlElement, text: Option<&str>) {
    if let Some(text) = text {
        set_text(element, text);
    }
    set_hidden(element, text.is_none());
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
        let built = build(&document)?;
        let root = handle(&built, "call-panel")?;
        let form = handle(&built, "manual-outcome")?;
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
            let field = |selector: &str| {
                form_for_submit
                    .query_selector(selector)
                    .ok()
                    .flatten()
                    .and_then(|e| js_sys::Reflect::get(&e, &"value".into()).ok())
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            on_action(PanelAction::ManualOutcome {
                outcome: field("[name=outcome]"),
                minutes: field("[name=minutes]"),
            });
        });
        form.add_event_listener_with_callback("submit", on_submit.as_ref().unchecked_ref())?;

        let mut buttons = Vec::with_capacity(skeleton::ACTIONS.len());
        for action in skeleton::ACTIONS {
            buttons.push((action, handle(&built, action)?));
        }
        Ok(Self {
            root,
            heading: handle(&built, "call-heading")?,
            appointment: handle(&built, "call-appointment")?,
            status: handle(&built, "call-status")?,
            timer: handle(&built, "call-timer")?,
            warning: handle(&built, "call-warning")?,
            readiness: handle(&built, "call-readiness")?,
            buttons,
            keypad: handle(&built, "call-keypad")?,
            digits_sent: handle(&built, "keypad-digits")?,
            fallback: handle(&built, "call-fallback")?,
            reason: handle(&built, "fallback-reason")?,
            number: handle(&built, "fallback-number")?,
            copy: handle(&built, "copy-number")?,
            copy_status: handle(&built, "copy-status")?,
            manual_status: handle(&built, "manual-outcome-status")?,
            _on_click: on_click,
            _on_submit: on_submit,
        })
    }

    fn button(&self, action: &str, view: &ButtonView) {
        if let Some((_, button)) = self.buttons.iter().find(|(a, _)| *a == action) {
            set_hidden(button, !view.visible);
            toggle_attr(button, "disabled", !view.enabled);
            if !view.label.is_empty() {
                set_text(button, &view.label);
                // The tooltip names what the button does now, and its keys.
                if let Some(keys) = button.get_attribute("aria-keyshortcuts") {
                    set_attr(
                        button,
                        "title",
                        &[view.label.as_str(), " (", &keys, ")"].concat(),
                    );
                }
            }
        }
    }

    /// Copies the view into the DOM, touching only what changed; `notes` are the page's own
    /// sentences beside it.
    pub fn update(&self, view: &PanelView, keypad_open: bool, notes: &PanelNotes) {
        set_attr(&self.root, "data-state", view.state);
        match view.outcome {
            Some(outcome) => set_attr(&self.root, "data-outcome", outcome),
            None => toggle_attr(&self.root, "data-outcome", false),
        }
        set_text(&self.heading, &view.heading);
        set_text(&self.appointment, &view.appointment_line);
        set_text(&self.status, &view.status);
        // Out of the page while there is no call to time (else read as an empty timer).
        show_text(&self.timer, view.timer.as_deref());
        set_attr(
            &self.timer,
            "data-running",
            if view.state == "connected" {
                "true"
            } else {
                "false"
            },
        );
        show_text(&self.warning, view.warning.as_deref());
        show_text(&self.digits_sent, view.digits_sent.as_deref());
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
        set_hidden(&self.keypad, !show_keypad);
        if let Some(fallback) = &view.fallback {
            set_text(&self.reason, &fallback.reason);
            // Said once: not again under the status line that already says it.
            set_hidden(&self.reason, fallback.reason == view.status);
            match &fallback.number {
                Some((shown, href)) => {
                    set_text(&self.number, shown);
                    match href {
                        Some(href) => set_attr(&self.number, "href", href),
                        None => toggle_attr(&self.number, "href", false),
                    }
                    set_hidden(&self.copy, false);
                }
                None => {
                    set_text(&self.number, "No number on record");
                    toggle_attr(&self.number, "href", false);
                    set_hidden(&self.copy, true);
                }
            }
        }
        set_hidden(&self.fallback, view.fallback.is_none());
        set_text(&self.copy_status, notes.copied.unwrap_or(""));
        set_text(&self.manual_status, notes.manual_outcome.unwrap_or(""));
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
            set_attr(&li, "data-ok", item.ok);
            // The stylesheet marks each line (✓, ✕ or …) from data-ok; the words say it too.
            set_text(&li, &item.text);
        }
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.root.remove();
    }
}

/// Copies text to the clipboard; `false` when the browser refused (the number stays visible
/// either way).
pub async fn copy_to_clipboard(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let written = window.navigator().clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(written).await.is_ok()
}
