//! Page bootstrap: loads the web-client module, runs the readiness check and shows the service status.
import init, { checkReadiness } from "/pkg/web_client.js";

async function showReadiness() {
  const target = document.getElementById("readiness");
  try {
    await init();
    const report = await checkReadiness("readiness");
    document.documentElement.dataset.webClient = "loaded";
    return report;
  } catch (error) {
    document.documentElement.dataset.webClient = "failed";
    target.dataset.verdict = "manual-dial-only";
    target.textContent =
      "The calling module could not start in this browser, so calls must be dialled by hand.";
    console.error("web-client failed to start", error);
    return null;
  }
}

/** The clinician's Medplum session, kept in memory only (never in storage or URLs). */
let medplumAccessToken = null;

function setSession(state, text) {
  const target = document.getElementById("session");
  target.dataset.state = state;
  target.textContent = text;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return { code: body.error?.code ?? "unknown", message: body.error?.message ?? response.statusText };
  } catch {
    return { code: "unknown", message: `HTTP ${response.status}` };
  }
}

/** Fetches a Twilio calling token for the signed-in clinician and reports the outcome. */
async function fetchCallingToken() {
  setSession("fetching-token", "Signed in. Getting a calling token…");
  const response = await fetch("/api/v1/twilio/access-token", {
    method: "POST",
    headers: { authorization: `Bearer ${medplumAccessToken}` },
  });
  if (!response.ok) {
    const { code, message } = await errorMessage(response);
    document.getElementById("session").dataset.code = code;
    setSession("refused", `Browser calls are not available: ${message}. You can still dial patients by hand.`);
    return;
  }
  const token = await response.json();
  const until = new Date(token.expiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  document.getElementById("session").dataset.identity = token.identity;
  setSession("token-ready", `Ready to call as ${token.identity}. The calling token is valid until ${until}.`);
}

async function signIn(event) {
  event.preventDefault();
  const practitioner = document.getElementById("clinician").value;
  setSession("signing-in", "Signing in…");
  const response = await fetch("/api/v1/dev/sign-in", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ practitioner }),
  });
  if (!response.ok) {
    const { message } = await errorMessage(response);
    setSession("signed-out", `Sign-in failed: ${message}.`);
    return;
  }
  medplumAccessToken = (await response.json()).access_token;
  await fetchCallingToken();
}

async function showService() {
  const target = document.getElementById("service");
  try {
    const response = await fetch("/api/v1/health", { headers: { accept: "application/json" } });
    const health = await response.json();
    target.dataset.status = health.status;
    if (health.environment === "local") {
      document.getElementById("demo-sign-in").hidden = false;
      document.getElementById("sign-in-form").addEventListener("submit", signIn);
    }
    target.textContent =
      health.status === "ok"
        ? `The call service is up (version ${health.version}, ${health.environment}).`
        : `The call service is up but not fully configured (${health.problems.join(", ")}): browser calls may be unavailable.`;
  } catch (error) {
    target.dataset.status = "unreachable";
    target.textContent = "The call service cannot be reached: dial patients by hand.";
  }
}

showReadiness();
showService();
