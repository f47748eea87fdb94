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

async function showService() {
  const target = document.getElementById("service");
  try {
    const response = await fetch("/api/v1/health", { headers: { accept: "application/json" } });
    const health = await response.json();
    target.dataset.status = health.status;
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
