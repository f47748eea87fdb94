//! Medplum Bot (the signup hook): when a ProjectMembership grants a Practitioner the videocall_own_manage AccessPolicy, asks the worker to provision their Twilio identity.
//
// Deployed as is by scripts/medplum-setup.mjs (`POST /fhir/R4/Bot/{id}/$deploy`) and run by a
// Subscription on `ProjectMembership?access-policy=AccessPolicy/<policy id>` (create and update).
// CommonJS on purpose: Medplum runs deployed bot code as a CommonJS script in both runtimes
// (vmcontext pastes it into a script and calls `exports.handler`; the Lambda wrapper
// `require`s it), so an ES module `export` would be a syntax error there.
//
// Project secrets it reads (`event.secrets`, set by the setup script):
//   CLINICIAN_CALLS_WORKER_URL           the worker's public base URL (https://…)
//   CLINICIAN_CALLS_PROVISIONING_SECRET  the worker's PROVISIONING_SECRET
//   CLINICIAN_CALLS_POLICY_ID            the id of the AccessPolicy named videocall_own_manage
//
// It logs only resource ids and HTTP statuses: never the secret, a token or a phone number.
"use strict";

const SECRET_WORKER_URL = "CLINICIAN_CALLS_WORKER_URL";
const SECRET_PROVISIONING = "CLINICIAN_CALLS_PROVISIONING_SECRET";
const SECRET_POLICY_ID = "CLINICIAN_CALLS_POLICY_ID";
/** FHIR ids: https://hl7.org/fhir/R4/datatypes.html#id */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** A project secret's string value (`{name, valueString}`), or an error naming what is missing. */
function secretValue(secrets, name) {
  const value = secrets?.[name]?.valueString;
  if (typeof value !== "string" || value.trim() === "") {
    throw new Error(`Project secret ${name} is not set: run scripts/medplum-setup.mjs`);
  }
  return value.trim();
}

/** `AccessPolicy/<id>` references a membership grants, from `accessPolicy` and `access[].policy`. */
function policyReferences(membership) {
  const references = [membership.accessPolicy?.reference];
  for (const entry of Array.isArray(membership.access) ? membership.access : []) {
    references.push(entry?.policy?.reference);
  }
  return references.filter((reference) => typeof reference === "string" && reference.startsWith("AccessPolicy/"));
}

/**
 * Medplum calls this with the ProjectMembership that matched the Subscription. Returns
 * `{status, practitionerId}`: `created` / `already-provisioned` (the worker's answer) or
 * `skipped` with a `reason`. Throws when the worker refuses or cannot be reached, so the
 * execution is recorded as failed (its AuditEvent has outcome 4).
 */
async function handler(medplum, event) {
  const membership = event.input;
  if (!membership || membership.resourceType !== "ProjectMembership") {
    return { status: "skipped", reason: "not-a-project-membership" };
  }
  const profile = /^Practitioner\/(.+)$/.exec(membership.profile?.reference ?? "");
  if (!profile || !FHIR_ID.test(profile[1])) {
    return { status: "skipped", reason: "not-a-practitioner" };
  }
  const practitionerId = profile[1];
  if (membership.active === false) {
    return { status: "skipped", reason: "membership-inactive", practitionerId };
  }
  const policyId = secretValue(event.secrets, SECRET_POLICY_ID);
  if (!policyReferences(membership).includes(`AccessPolicy/${policyId}`)) {
    return { status: "skipped", reason: "no-videocall-permission", practitionerId };
  }

  const workerUrl = secretValue(event.secrets, SECRET_WORKER_URL).replace(/\/+$/, "");
  const provisioningSecret = secretValue(event.secrets, SECRET_PROVISIONING);
  const url = `${workerUrl}/api/v1/clinicians/${encodeURIComponent(practitionerId)}/twilio-identity`;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${provisioningSecret}`, accept: "application/json" },
    });
  } catch (error) {
    throw new Error(`Provisioning Practitioner/${practitionerId}: the worker could not be reached (${error?.name ?? "Error"})`);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (response.status === 201 || response.status === 200) {
    const status = body?.status ?? (response.status === 201 ? "created" : "already-provisioned");
    console.log(`Practitioner/${practitionerId}: Twilio identity ${status}`);
    return { status, practitionerId };
  }
  const code = typeof body?.error?.code === "string" ? ` (${body.error.code})` : "";
  throw new Error(`Provisioning Practitioner/${practitionerId}: the worker answered HTTP ${response.status}${code}`);
}

exports.handler = handler;
