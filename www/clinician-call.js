//! <clinician-call appointment-id="…">: the call panel of one appointment, rendered by one shared CallClient.
//
// Usage (see docs/EMBEDDING.md):
//   import { ClinicianCall } from "/clinician-call.js";
//   ClinicianCall.use(client);                      // a started-or-starting wc.CallClient, or null
//   element.setAttribute("appointment-id", id);     // (re)mounts the panel for that appointment
// Events (bubbling, composed, on the element whose panel is mounted; on `document` when none is):
//   clinician-call:change (detail: snapshot), clinician-call:ended (snapshot),
//   clinician-call:incoming ({appointmentId, callSid}), clinician-call:error ({code, message}),
//   clinician-call:mounted ({appointmentId}).

const EVENT_PREFIX = "clinician-call:";

/** The CallClient every element shares (`ClinicianCall.use`), or null. */
let sharedClient = null;
/** The element the client last mounted its panel into: the client's events are sent from it. */
let mountedElement = null;
/** Connected elements, in connection order. */
const connectedElements = new Set();

function eventTarget() {
  if (mountedElement?.isConnected) return mountedElement;
  for (const element of connectedElements) return element;
  return document;
}

function emit(target, name, detail) {
  target.dispatchEvent(new CustomEvent(EVENT_PREFIX + name, { detail, bubbles: true, composed: true }));
}

/** Re-sends one CallClient event as a DOM event, ignoring a replaced client's late events. */
function forward(client, clientEvent) {
  client.on(clientEvent, (detail) => {
    if (client === sharedClient) emit(eventTarget(), clientEvent, detail);
  });
}

/**
 * The tel: URL of a number written as one (digits, a leading +, spaces, dashes, dots, brackets),
 * or null: text that is not a number is shown to be read, never linked to other digits.
 */
function telHref(number) {
  const text = String(number).trim();
  return /^\+?[\d\s().-]+$/.test(text) ? `tel:${text.replace(/[^+\d]/g, "")}` : null;
}

export class ClinicianCall extends HTMLElement {
  static observedAttributes = ["appointment-id"];

  /**
   * Shares `client` (a wc.CallClient, or null when browser calling is unavailable) with every
   * <clinician-call> element, and re-renders the connected ones. The caller owns the client
   * (starts it, frees it); `use` only subscribes to its events, once.
   */
  static use(client) {
    if (client === sharedClient) return;
    sharedClient = client ?? null;
    mountedElement = null;
    if (sharedClient) {
      for (const name of ["change", "ended", "incoming"]) forward(sharedClient, name);
    }
    for (const element of connectedElements) element.#render();
  }

  /** The shared CallClient, or null. */
  static get client() {
    return sharedClient;
  }

  /** Mounts run one after another, so a quick change of appointment never interleaves two. */
  #queue = Promise.resolve();
  #mountedId = null;
  #mountedClient = null;

  get appointmentId() {
    return this.getAttribute("appointment-id");
  }

  set appointmentId(value) {
    if (value == null || value === "") this.removeAttribute("appointment-id");
    else this.setAttribute("appointment-id", value);
  }

  connectedCallback() {
    connectedElements.add(this);
    this.#render();
  }

  disconnectedCallback() {
    connectedElements.delete(this);
    this.#forgetMount();
  }

  attributeChangedCallback(_name, oldValue, newValue) {
    if (oldValue !== newValue && this.isConnected) this.#render();
  }

  #forgetMount() {
    if (mountedElement === this) mountedElement = null;
    this.#mountedId = null;
    this.#mountedClient = null;
  }

  #render() {
    const id = this.appointmentId;
    const client = sharedClient;
    if (!id) {
      this.#forgetMount();
      // Keep the host's own placeholder; replace a panel left from an earlier appointment.
      if (!this.hasChildNodes() || this.querySelector(":scope > .call-panel")) {
        this.#showMessage("call-placeholder", "Choose an appointment to see its call panel.");
      }
      return;
    }
    if (!client) {
      this.#forgetMount();
      this.#showUnavailable();
      return;
    }
    if (mountedElement === this && this.#mountedId === id && this.#mountedClient === client) return;
    this.#queue = this.#queue.then(() => this.#mount(client, id));
  }

  async #mount(client, id) {
    // Superseded while waiting in the queue: a later render has queued the right mount.
    if (!this.isConnected || client !== sharedClient || id !== this.appointmentId) return;
    // Clear the host's placeholder; a panel already here is the module's to re-render.
    if (!this.querySelector(":scope > .call-panel")) this.replaceChildren();
    try {
      await client.mount(this, id);
    } catch (error) {
      if (client !== sharedClient || id !== this.appointmentId) return;
      this.#forgetMount();
      this.#showUnavailable();
      emit(this, "error", {
        code: typeof error?.code === "string" ? error.code : "mount_failed",
        message: "The call panel could not be shown: dial the patient by hand.",
      });
      return;
    }
    this.#mountedId = id;
    this.#mountedClient = client;
    mountedElement = this;
    emit(this, "mounted", { appointmentId: id });
  }

  #showMessage(className, text) {
    const message = document.createElement("p");
    message.className = className;
    message.textContent = text;
    this.replaceChildren(message);
    return message;
  }

  /**
   * Without a CallClient (or when mounting failed) the element still offers the number:
   * the host may set `fallback-number` (E.164, or the number as recorded when it is not one:
   * linked only if it is written as a number) and `fallback-label` (the number as recorded).
   */
  #showUnavailable() {
    const message = this.#showMessage("call-unavailable", "Browser calling is not available here: dial the patient by hand.");
    const number = this.getAttribute("fallback-number");
    if (!number) return;
    const href = telHref(number);
    const link = document.createElement(href ? "a" : "span");
    link.className = "fallback-number";
    if (href) link.href = href;
    link.textContent = this.getAttribute("fallback-label") || number;
    const line = document.createElement("p");
    line.append("Number: ", link);
    message.after(line);
  }
}

if (!customElements.get("clinician-call")) customElements.define("clinician-call", ClinicianCall);
