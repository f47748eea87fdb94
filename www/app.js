//! Page bootstrap: readiness check, service status, demo sign-in, today's phone appointments and the call panel.
import { ClinicianCall } from "/clinician-call.js";

/** Panel states in which a call is under way (the page keeps that appointment's panel in view). */
const CALL_UNDER_WAY = new Set(["connecting", "ringing", "connected", "ending"]);

/** What an appointment's list entry says while its call is in one of these states. */
const CALL_HINTS = {
  connecting: "Connecting…",
  ringing: "Ringing…",
  connected: "In call",
  ending: "Ending call…",
  ended: "Call ended",
  incoming: "Calling you",
  elsewhere: "In a call in another window",
};

/**
 * Alt + letter → the panel buttons it may press: the first one shown and enabled. The shortcut
 * does what the button says at the time ("Call now", "Try again now", "End that call", …), since
 * it presses that very button. Alt+E declines a call-back that is ringing (End is not shown then).
 */
const SHORTCUTS = { C: ["call"], M: ["mute"], E: ["end", "decline"], A: ["accept"] };

/** Snapshot `reason`s meaning the calling token could not be had: the page then asks the worker why. */
const TOKEN_PROBLEMS = new Set(["token-refused", "service-unreachable"]);

/** Input types that take typed text: shortcuts stay out of their way. */
const NON_TEXT_INPUTS = new Set(["button", "checkbox", "radio", "range", "color", "file", "image", "reset", "submit"]);

/**
 * The web-client module namespace once initialised and the readiness report rendered, or null.
 * Imported dynamically so that a missing or broken build leaves the rest of the page working.
 */
const webClient = loadWebClient();

/**
 * The signed-in clinician: `{token, client, told, expiry, expired}`. The Medplum access token stays in
 * memory only (never in storage or URLs); `client` is their CallClient once created; `told` once
 * #session says whether browser calls are possible; `expiry` the timer that says when the sign-in
 * runs out; `expired` once the page has said so (nothing then says the clinician is ready).
 */
let session = null;

/** Counts sign-in attempts: only the latest one may become the session. */
let signInAttempts = 0;

/** Appointments shown in the list, by id. */
const appointmentsById = new Map();

/** The appointment whose panel should take focus once mounted (chosen from the list). */
let focusWhenMounted = null;

/** The element that last had focus, and whether it was in the list or the panel (whose buttons come and go). */
let lastFocused = { element: null, watched: false };

async function loadWebClient() {
  const target = document.getElementById("readiness");
  try {
    const wc = await import("/pkg/web_client.js");
    await wc.default();
    await wc.checkReadiness("readiness");
    document.documentElement.dataset.webClient = "loaded";
    return wc;
  } catch (error) {
    document.documentElement.dataset.webClient = "failed";
    target.dataset.verdict = "manual-dial-only";
    target.textContent =
      "The calling module could not start in this browser, so calls must be dialled by hand.";
    console.error("web-client failed to start", error);
    return null;
  }
}

function setSession(state, text) {
  const target = document.getElementById("session");
  target.dataset.state = state;
  target.textContent = text;
}

/** The response's JSON body, or null when it has none (a proxy's HTML page, a cut-off body). */
async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

async function errorMessage(response) {
  const body = await readJson(response);
  if (!body) return { code: "unknown", message: `HTTP ${response.status}` };
  return { code: body.error?.code ?? "unknown", message: body.error?.message ?? response.statusText };
}

/** Codes with which the worker refuses the clinician's Medplum sign-in itself. */
const SIGN_IN_PROBLEMS = new Set(["token_expired", "invalid_credentials", "missing_credentials"]);

/**
 * Says that `current`'s sign-in ran out (`token_expired`, or its lifetime passed) or was refused
 * for another reason (ended elsewhere, not valid): calls need a new sign-in, and the numbers stay
 * shown for dialing by hand. A live call is left to finish.
 */
function showSignInExpired(current, code = "token_expired") {
  if (session !== current || current.expired) return;
  current.expired = true;
  const what = code === "token_expired" ? "Your sign-in has expired" : "Your sign-in was not accepted";
  setSession("expired", `${what}: sign in again to place calls. You can still dial patients by hand.`);
}

/** An answer refusing the sign-in itself (401): says so and returns true. */
function signInRefused(current, response, code) {
  if (response.status !== 401 || !SIGN_IN_PROBLEMS.has(code)) return false;
  showSignInExpired(current, code);
  return true;
}

function bearer(current) {
  return { authorization: `Bearer ${current.token}`, accept: "application/json" };
}

function timeOfDay(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "Time not set" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * Asks the worker for a calling token and says whether browser calls are allowed, with the
 * worker's code and words when not. Used without a CallClient, or when the client's token failed.
 */
async function checkCallingToken(current) {
  current.told = true;
  let response;
  try {
    response = await fetch("/api/v1/twilio/access-token", { method: "POST", headers: bearer(current) });
  } catch {
    if (session === current && !current.expired) setSession("refused", "Browser calls are not available: the call service cannot be reached. You can still dial patients by hand.");
    return;
  }
  if (session !== current || current.expired) return;
  if (!response.ok) {
    const { code, message } = await errorMessage(response);
    document.getElementById("session").dataset.code = code;
    if (signInRefused(current, response, code)) return;
    setSession("refused", `Browser calls are not available: ${message}. You can still dial patients by hand.`);
    return;
  }
  const token = await readJson(response);
  if (session !== current || current.expired) return;
  if (typeof token?.identity !== "string") {
    setSession("refused", "Browser calls are not available: the call service sent an answer this page does not understand. You can still dial patients by hand.");
    return;
  }
  document.getElementById("session").dataset.identity = token.identity;
  setSession("token-ready", `Ready to call as ${token.identity}. The calling token is valid until ${timeOfDay(token.expiresAt)}.`);
}

/** Says on #session, once, what the CallClient found: ready (and as whom), or not (then asks why). */
function showSessionFrom(current, snapshot) {
  if (current.told || current.expired || !snapshot) return;
  const ready = snapshot.ready ?? {};
  if (ready.token && snapshot.identity) {
    current.told = true;
    document.getElementById("session").dataset.identity = snapshot.identity;
    setSession("token-ready", `Ready to call as ${snapshot.identity}.`);
  } else if (TOKEN_PROBLEMS.has(snapshot.reason) || (ready.token === false && snapshot.state === "fallback")) {
    // Only when the client's token failed: asking again would spend the clinician's token
    // allowance (20 a minute) on every sign-in.
    checkCallingToken(current);
  }
}

/**
 * "browser" when the CallClient can place calls, else "manual" (numbers shown as tel: links).
 * The panel's `fallback` state is this whole browser's problem (token refused, microphone blocked,
 * service unreachable); `unavailable` is only the mounted appointment's.
 */
function callingMode(snapshot) {
  const ready = snapshot?.ready ?? {};
  const manual = !snapshot || snapshot.state === "fallback" || ready.token === false || ready.signaling === false;
  return manual ? "manual" : "browser";
}

/**
 * Shows the CallClient's latest snapshot (null without a client) in the list: the calling mode,
 * each appointment's call hint, and one call at a time (other appointments wait while it lasts).
 */
function showCalling(snapshot) {
  const mode = callingMode(snapshot);
  const list = document.getElementById("appointments");
  list.dataset.mode = mode;
  document.getElementById("manual-note").hidden = mode !== "manual" || !list.hasChildNodes();
  const underWay = CALL_UNDER_WAY.has(snapshot?.state);
  for (const item of list.querySelectorAll("li[data-appointment-id]")) {
    const isCall = item.dataset.appointmentId === snapshot?.appointmentId;
    const callHint = isCall ? CALL_HINTS[snapshot.state] : undefined;
    if (callHint) item.dataset.callState = snapshot.state;
    else delete item.dataset.callState;
    const readyHint = mode === "browser" ? "Ready to call" : "Dial by hand";
    item.querySelector(".appointment-hint").textContent = callHint ?? item.dataset.refusal ?? readyHint;
    item.querySelector(".appointment-select").disabled = underWay && !isCall;
  }
}

/** Creates and starts the clinician's CallClient, or leaves the page in manual dialing. */
async function startCalling(current) {
  const wc = await webClient;
  if (session !== current) return;
  if (typeof wc?.CallClient !== "function") {
    if (wc) console.warn("web-client has no CallClient: manual dialing only");
    await checkCallingToken(current);
    return;
  }
  let client;
  try {
    client = new wc.CallClient({ apiBase: "", sessionToken: () => current.token });
  } catch (error) {
    console.error("CallClient could not be created", error?.code ?? error?.name ?? "unknown");
    await checkCallingToken(current);
    return;
  }
  current.client = client;
  // For the end-to-end tests and diagnostics from the browser console.
  window.callClient = client;
  ClinicianCall.use(client);
  try {
    await client.start();
  } catch (error) {
    console.error("CallClient could not start", error?.code ?? error?.name ?? "unknown");
  }
  if (session !== current) return;
  const snapshot = client.snapshot();
  showCalling(snapshot);
  showSessionFrom(current, snapshot);
}

/** The list entry of one appointment: a button choosing its call panel, and its number for dialing by hand. */
function appointmentItem(appointment) {
  const patient = appointment.patient ?? {};
  const item = document.createElement("li");
  item.className = "appointment";
  item.dataset.appointmentId = appointment.id;
  item.dataset.callable = String(Boolean(appointment.callable) && !patient.refusal);

  // Why the browser cannot call this patient, if it cannot (the hint otherwise follows the calling mode).
  if (patient.refusal) item.dataset.refusal = `Dial by hand: ${patient.refusal.message}`;
  else if (!appointment.callable) item.dataset.refusal = "Cancelled or finished: not called from here";

  const button = document.createElement("button");
  button.type = "button";
  button.className = "appointment-select";
  const time = document.createElement("time");
  time.className = "appointment-time";
  time.dateTime = appointment.start ?? "";
  time.textContent = timeOfDay(appointment.start);
  const name = document.createElement("span");
  name.className = "appointment-patient";
  name.textContent = patient.name || "Patient (name not recorded)";
  const hintText = document.createElement("span");
  hintText.className = "appointment-hint";
  // Spaces between the parts keep the button's accessible name readable.
  button.append(time, " ", name, " ", hintText);
  button.addEventListener("click", () => selectAppointment(appointment.id, { focus: true }));

  const dial = document.createElement("p");
  dial.className = "appointment-dial";
  if (patient.phone) {
    const link = document.createElement("a");
    link.href = `tel:${patient.phone}`;
    link.textContent = patient.phoneAsRecorded || patient.phone;
    dial.append("Phone: ", link);
  } else if (patient.phoneAsRecorded) {
    dial.textContent = `Number on record (not in a dialable form): ${patient.phoneAsRecorded}`;
  } else {
    dial.textContent = "No phone number recorded.";
  }

  item.append(button, dial);
  return item;
}

/** Lists the clinician's phone appointments today. */
async function showAppointments(current) {
  const list = document.getElementById("appointments");
  const status = document.getElementById("appointments-status");
  delete status.dataset.code;
  status.textContent = "Loading today's phone appointments…";
  let response;
  try {
    response = await fetch("/api/v1/appointments", { headers: bearer(current) });
  } catch {
    if (session === current) status.textContent = "Today's appointments cannot be loaded: the call service cannot be reached. Dial patients from their records.";
    return;
  }
  if (session !== current) return;
  if (!response.ok) {
    const { code, message } = await errorMessage(response);
    if (session !== current) return;
    status.dataset.code = code;
    signInRefused(current, response, code);
    status.textContent = `Today's appointments cannot be shown: ${message}. Dial patients from their records.`;
    return;
  }
  const body = await readJson(response);
  if (session !== current) return;
  if (!Array.isArray(body?.appointments)) {
    status.textContent = "Today's appointments cannot be shown: the call service sent an answer this page does not understand. Dial patients from their records.";
    return;
  }
  const { appointments } = body;
  appointmentsById.clear();
  for (const appointment of appointments) appointmentsById.set(appointment.id, appointment);
  list.replaceChildren(...appointments.map(appointmentItem));
  const count = appointments.length;
  status.textContent =
    count === 0 ? "No phone appointments today." : `${count} phone appointment${count === 1 ? "" : "s"} today.`;
  showCalling(current.client?.snapshot() ?? null);
}

function callElement() {
  return document.querySelector("#call-area clinician-call");
}

/** Shows one appointment's call panel. */
function selectAppointment(id, { focus }) {
  const element = callElement();
  const appointment = appointmentsById.get(id);
  const patient = appointment?.patient ?? {};
  for (const button of document.querySelectorAll("#appointments .appointment-select")) {
    if (button.closest("li").dataset.appointmentId === id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  // The element offers these numbers itself if the panel cannot be shown: a number that could
  // not be normalised is still shown as recorded (linked only if it is written as a number).
  const number = patient.phone ?? patient.phoneAsRecorded;
  if (number) element.setAttribute("fallback-number", number);
  else element.removeAttribute("fallback-number");
  if (patient.phoneAsRecorded) element.setAttribute("fallback-label", patient.phoneAsRecorded);
  else element.removeAttribute("fallback-label");
  focusWhenMounted = focus ? id : null;
  if (element.appointmentId === id) {
    if (focus) focusPanel();
    return;
  }
  element.appointmentId = id;
  // Without a client the element shows its fallback at once: no mount event will come.
  if (focus && !ClinicianCall.client) focusPanel();
}

/** Moves focus to the panel's heading (never to a button: a second key press must not act). */
function focusPanel() {
  const heading = document.querySelector("#call-area .call-heading") ?? document.getElementById("call-title");
  heading.tabIndex = -1;
  heading.focus();
}

/** Puts focus in the panel when the focused list or panel button was hidden, disabled or replaced. */
function keepFocusInPanel() {
  const { element: previous, watched } = lastFocused;
  if (!previous || !watched) return;
  const lost = !previous.isConnected || previous.closest("[hidden]") || previous.disabled;
  const active = document.activeElement;
  if (lost && (!active || active === document.body || active === previous)) focusPanel();
}

function onCallChange(event) {
  if (!session?.client) return;
  showCalling(event.detail);
  showSessionFrom(session, event.detail);
  requestAnimationFrame(keepFocusInPanel);
}

/** A patient calling back: show their appointment's panel unless another call is under way. */
function onIncoming(event) {
  const { appointmentId } = event.detail ?? {};
  const client = session?.client;
  if (!appointmentId || !client) return;
  const element = callElement();
  const state = client.snapshot().state;
  if (element.appointmentId !== appointmentId && !CALL_UNDER_WAY.has(state)) {
    selectAppointment(appointmentId, { focus: false });
  }
}

/** Focus follows the clinician's choice once its panel (or the element's fallback) is shown. */
function onMounted(event) {
  if (event.detail?.appointmentId === focusWhenMounted) {
    focusWhenMounted = null;
    focusPanel();
  }
}

function onPanelError() {
  if (focusWhenMounted && callElement().querySelector(".call-unavailable")) {
    focusWhenMounted = null;
    focusPanel();
  }
}

function isTextEntry(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable || target.closest("textarea")) return true;
  return target instanceof HTMLInputElement && !NON_TEXT_INPUTS.has(target.type);
}

/** Alt+C call, Alt+M mute, Alt+E end or decline, Alt+A accept: only when the panel offers that button right now. */
function onShortcut(event) {
  if (!event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || event.repeat) return;
  // The letter typed, or (Option on macOS types another character) the physical key's letter.
  const letter = /^[a-z]$/i.test(event.key) ? event.key.toUpperCase() : event.code.replace(/^Key/, "");
  const actions = SHORTCUTS[letter];
  if (!actions || !session?.client || isTextEntry(event.target)) return;
  const button = actions
    .map((action) => document.querySelector(`#call-area [data-action="${action}"]`))
    .find((candidate) => candidate && !candidate.disabled && !candidate.closest("[hidden]"));
  if (!button) return;
  event.preventDefault();
  button.click();
}

/** Forgets the signed-in clinician: frees their CallClient and clears the list and the panel. */
function endSession() {
  const previous = session;
  session = null;
  clearTimeout(previous?.expiry);
  document.getElementById("sign-out").hidden = true;
  const fresh = document.createElement("clinician-call");
  document.getElementById("call-area").replaceChildren(fresh);
  ClinicianCall.use(null);
  delete window.callClient;
  try {
    previous?.client?.free();
  } catch (error) {
    console.warn("CallClient could not be freed", error?.name ?? "unknown");
  }
  appointmentsById.clear();
  document.getElementById("appointments").replaceChildren();
  showCalling(null);
  const target = document.getElementById("session");
  delete target.dataset.code;
  delete target.dataset.identity;
  const status = document.getElementById("appointments-status");
  delete status.dataset.code;
  status.textContent = "Your phone appointments for today appear here once you are signed in.";
}

/** Signs the clinician out, after asking when a call is under way (signing out ends it). */
function signOut() {
  const snapshot = session?.client?.snapshot();
  if (CALL_UNDER_WAY.has(snapshot?.state) && !window.confirm("A call is under way. Signing out ends it. Sign out?")) return;
  signInAttempts++;
  try {
    if (CALL_UNDER_WAY.has(snapshot?.state)) session.client.hangup();
  } catch (error) {
    console.warn("the call could not be ended", error?.name ?? "unknown");
  }
  endSession();
  setSession("signed-out", "Signed out.");
  document.getElementById("sign-in").focus();
}

async function signIn(event) {
  event.preventDefault();
  const practitioner = document.getElementById("clinician").value;
  const attempt = ++signInAttempts;
  endSession();
  setSession("signing-in", "Signing in…");
  let response;
  try {
    response = await fetch("/api/v1/dev/sign-in", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ practitioner }),
    });
  } catch {
    if (attempt === signInAttempts) setSession("signed-out", "Sign-in failed: the call service cannot be reached.");
    return;
  }
  if (!response.ok) {
    const { message } = await errorMessage(response);
    if (attempt === signInAttempts) setSession("signed-out", `Sign-in failed: ${message}.`);
    return;
  }
  const body = await readJson(response);
  if (attempt !== signInAttempts) return;
  const token = body?.access_token;
  if (typeof token !== "string" || token === "") {
    setSession("signed-out", "Sign-in failed: the call service sent an answer this page does not understand.");
    return;
  }
  const current = { token, client: null, told: false, expiry: undefined, expired: false };
  session = current;
  document.getElementById("sign-out").hidden = false;
  // Medplum's access tokens run out (an hour by default): say so when it does, rather than
  // letting requests fail one by one.
  const lifetime = Number(body.expires_in);
  if (Number.isFinite(lifetime) && lifetime > 0) {
    current.expiry = setTimeout(() => showSignInExpired(current), Math.min(lifetime * 1000, 2 ** 31 - 1));
  }
  setSession("fetching-token", "Signed in. Checking you may place calls…");
  await Promise.all([showAppointments(current), startCalling(current)]);
}

async function showService() {
  const target = document.getElementById("service");
  try {
    const response = await fetch("/api/v1/health", { headers: { accept: "application/json" } });
    const health = await readJson(response);
    if (!health?.status) throw new Error("unreadable health");
    target.dataset.status = health.status;
    if (health.environment === "local") {
      document.getElementById("demo-sign-in").hidden = false;
      document.getElementById("sign-in-form").addEventListener("submit", signIn);
      document.getElementById("sign-out").addEventListener("click", signOut);
    }
    target.textContent =
      health.status === "ok"
        ? `The call service is up (version ${health.version}, ${health.environment}).`
        : `The call service is up but not fully configured (${(health.problems ?? []).join(", ")}): browser calls may be unavailable.`;
  } catch {
    target.dataset.status = "unreachable";
    target.textContent = "The call service cannot be reached: dial patients by hand.";
  }
}

document.addEventListener("keydown", onShortcut);
document.addEventListener("focusin", (event) => {
  lastFocused = { element: event.target, watched: event.target.closest?.("#call-area, #appointments") != null };
});
document.addEventListener("clinician-call:change", onCallChange);
document.addEventListener("clinician-call:ended", onCallChange);
document.addEventListener("clinician-call:incoming", onIncoming);
document.addEventListener("clinician-call:mounted", onMounted);
document.addEventListener("clinician-call:error", onPanelError);
showService();
