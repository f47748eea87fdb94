//! Sets up a Medplum project for the worker, idempotently: the videocall_own_manage AccessPolicy, the worker's ClientApplication (a project admin) and the signup hook (a Bot, its project secrets and its Subscription).
//
// Usage: node scripts/medplum-setup.mjs --help
//
// Credentials never come from argv or from files: a project admin's client credentials from
// MEDPLUM_ADMIN_CLIENT_ID / MEDPLUM_ADMIN_CLIENT_SECRET, the worker's provisioning secret from
// PROVISIONING_SECRET or standard input (--provisioning-secret-stdin). Nothing secret is printed:
// not the tokens, not the provisioning secret (masked in --dry-run output), not the worker
// client's secret (only --print-client-secret writes that, to stdout alone, as the
// `MEDPLUM_CLIENT_SECRET=…` line scripts/secrets.mjs reads from a pipe). Requests follow Medplum's server (packages/server/src/admin and
// fhir/operations/deploy.ts in medplum/medplum); sim/medplum answers them the same way.
import { createHash } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const POLICY_NAME = "videocall_own_manage";
export const CLIENT_NAME = "Clinician calls worker";
export const BOT_NAME = "Clinician calls: provision Twilio identity";
/** Project secrets the bot reads (`event.secrets`). */
export const SECRET_NAMES = {
  workerUrl: "CLINICIAN_CALLS_WORKER_URL",
  provisioningSecret: "CLINICIAN_CALLS_PROVISIONING_SECRET",
  policyId: "CLINICIAN_CALLS_POLICY_ID",
};
/** Project secrets whose values may be printed (not secret; everything else is masked). */
const PRINTABLE_SECRETS = new Set([SECRET_NAMES.workerUrl, SECRET_NAMES.policyId]);
/**
 * What videocall_own_manage lets a clinician's own Medplum token do: their appointments,
 * patients read-only, practitioners. The worker looks for the name only (shared::clinician).
 */
export const POLICY_RESOURCES = [
  { resourceType: "Appointment", criteria: "Appointment?actor=%profile" },
  { resourceType: "Patient", readonly: true },
  { resourceType: "Practitioner" },
];
export const BOT_SOURCE_PATH = fileURLToPath(new URL("../medplum/bots/provision-twilio-identity.cjs", import.meta.url));
const SUPPORTED_INTERACTION = "https://medplum.com/fhir/StructureDefinition/subscription-supported-interaction";
const MASK = "********";
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

const HELP = `Sets up a Medplum project for the clinician-calls worker (idempotent: run it again at will).

Usage:
  node scripts/medplum-setup.mjs --base-url <medplum> --worker-url <worker> [--project <id>] [--dry-run]
                                 [--provisioning-secret-stdin] [--verbose]
  node scripts/medplum-setup.mjs --base-url <medplum> --print-client-secret [--project <id>]

Creates, or finds and updates (nothing is ever duplicated):
  1. the AccessPolicy named "${POLICY_NAME}" (the calling permission the worker checks);
  2. the ClientApplication "${CLIENT_NAME}" (the worker's MEDPLUM_CLIENT_ID), made a project admin
     because the worker reads ProjectMemberships and AccessPolicies;
  3. the signup hook: project secrets ${Object.values(SECRET_NAMES).join(", ")},
     the Bot "${BOT_NAME}" running medplum/bots/provision-twilio-identity.cjs, and a
     Subscription (rest-hook to the Bot) on ProjectMembership create/update granting the policy.
The project must have Medplum's "bots" feature (checked first; nothing is changed without it).

Options:
  --base-url <url>              Medplum's base URL, e.g. https://api.medplum.com
  --worker-url <url>            the worker's public base URL (PUBLIC_BASE_URL), e.g. https://calls.example.org
  --project <id>                the Medplum project; default: the admin client's project (must match it)
  --dry-run                     print every request (method, URL, JSON body; secrets masked). Reads are sent
                                (the token request, searches, GETs); nothing is created or changed.
  --provisioning-secret-stdin   read the provisioning secret from standard input (first line)
  --print-client-secret         print only MEDPLUM_CLIENT_SECRET=<the worker client's secret> to
                                  stdout, for a pipe into scripts/secrets.mjs (printed under Next:)
  --verbose                     also print each request when not in --dry-run
  --help                        this text

Environment:
  MEDPLUM_ADMIN_CLIENT_ID, MEDPLUM_ADMIN_CLIENT_SECRET  a ClientApplication that is an admin of the project
                                                        (client-credentials grant at <base-url>/oauth2/token)
  PROVISIONING_SECRET                                   the worker's PROVISIONING_SECRET (unless --provisioning-secret-stdin)

Exit status: 0 done, 1 Medplum refused or failed (the message says which request), 2 bad usage or missing credentials.
`;

export class UsageError extends Error {}
export class SetupError extends Error {}

// ---------------------------------------------------------------------------------------------
// Arguments and credentials.

const FLAGS = new Set(["dry-run", "help", "provisioning-secret-stdin", "print-client-secret", "verbose"]);
const VALUES = new Set(["base-url", "worker-url", "project"]);

export function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!match) throw new UsageError(`Unexpected argument: ${argv[i]} (see --help)`);
    const [, name, inline] = match;
    if (FLAGS.has(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      options[name] = true;
    } else if (VALUES.has(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined || value === "") throw new UsageError(`--${name} needs a value`);
      options[name] = value;
    } else {
      throw new UsageError(`Unknown option --${name} (see --help; credentials come from the environment, never from arguments)`);
    }
  }
  return options;
}

/** A base URL without trailing slash: https, or http on a loopback host (local runs and tests). */
export function parseBaseUrl(value, option) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--${option} is not a URL`);
  }
  const local = LOCAL_HOSTS.has(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
    throw new UsageError(`--${option} must be https:// (http:// only for 127.0.0.1 or localhost)`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new UsageError(`--${option} must not carry credentials, a query or a fragment`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

async function readFirstLine(stream) {
  let data = "";
  for await (const chunk of stream) {
    data += chunk;
    if (data.includes("\n")) break;
  }
  return data.split(/\r?\n/)[0];
}

/** The credentials this run needs, or a UsageError naming every missing variable. */
export async function readCredentials({ env, stdin, needProvisioningSecret, provisioningSecretFromStdin }) {
  const missing = [];
  const adminClientId = env.MEDPLUM_ADMIN_CLIENT_ID?.trim();
  const adminClientSecret = env.MEDPLUM_ADMIN_CLIENT_SECRET?.trim();
  if (!adminClientId) missing.push("MEDPLUM_ADMIN_CLIENT_ID");
  if (!adminClientSecret) missing.push("MEDPLUM_ADMIN_CLIENT_SECRET");
  let provisioningSecret;
  if (needProvisioningSecret) {
    if (provisioningSecretFromStdin) {
      provisioningSecret = (await readFirstLine(stdin)).trim();
      if (!provisioningSecret) missing.push("PROVISIONING_SECRET (standard input was empty)");
    } else {
      provisioningSecret = env.PROVISIONING_SECRET?.trim();
      if (!provisioningSecret) missing.push("PROVISIONING_SECRET (or pipe it in with --provisioning-secret-stdin)");
    }
  }
  if (missing.length > 0) {
    throw new UsageError(`Missing credentials: set ${missing.join(", ")} in the environment. Nothing was changed.`);
  }
  return { adminClientId, adminClientSecret, provisioningSecret };
}

// ---------------------------------------------------------------------------------------------
// HTTP, with printing and dry-run.

function outcomeText(body) {
  if (body?.resourceType === "OperationOutcome") {
    return (body.issue ?? []).map((issue) => issue.details?.text ?? issue.diagnostics ?? issue.code).join("; ");
  }
  if (typeof body?.error === "string") return `${body.error}${body.error_description ? `: ${body.error_description}` : ""}`;
  return typeof body === "string" ? body.slice(0, 200) : "";
}

class MedplumApi {
  constructor({ baseUrl, dryRun, verbose, print }) {
    this.baseUrl = baseUrl;
    this.dryRun = dryRun;
    this.verbose = verbose;
    this.print = print;
    this.accessToken = undefined;
    this.placeholders = 0;
  }

  printRequest(method, url, printable, note) {
    if (!this.dryRun && !this.verbose) return;
    this.print(`${method} ${url}${note ? `  (${note})` : ""}`);
    if (printable !== undefined) {
      this.print(typeof printable === "string" ? printable : JSON.stringify(printable, null, 2));
    }
  }

  /**
   * Sends one request. `write` requests are printed but not sent in a dry run; they then answer
   * `dryRunResult`. `printable` is what is shown for the body (secrets masked); never the headers.
   * Answers `{status, body}`; a status not in `expect` is a SetupError naming the request.
   */
  async request(method, path, { json, form, printable, write = false, expect = [200], headers = {}, dryRunResult } = {}) {
    const url = `${this.baseUrl}${path}`;
    const shown = printable ?? json ?? form;
    if (write && this.dryRun) {
      this.printRequest(method, url, shown, "NOT SENT: dry run");
      return { status: 0, body: dryRunResult, dryRun: true };
    }
    this.printRequest(method, url, shown, this.dryRun ? "read, sent" : undefined);
    const init = { method, headers: { accept: "application/fhir+json, application/json", ...headers } };
    if (this.accessToken) init.headers.authorization = `Bearer ${this.accessToken}`;
    if (json !== undefined) {
      init.headers["content-type"] = path.startsWith("/fhir/") ? "application/fhir+json" : "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.headers["content-type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(form).toString();
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new SetupError(`${method} ${url.split("?")[0]}: Medplum could not be reached (${error?.cause?.code ?? error?.name ?? "error"})`);
    }
    const text = await response.text();
    let body = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text for the error message
    }
    if (!expect.includes(response.status)) {
      const detail = outcomeText(body);
      throw new SetupError(`${method} ${url.split("?")[0]} answered HTTP ${response.status}${detail ? `: ${detail}` : ""}`);
    }
    return { status: response.status, body, etag: response.headers.get("etag") };
  }

  /** A stand-in id for a resource a dry run would create. */
  placeholder(type) {
    return `<id of the new ${type}>`;
  }

  async search(type, query) {
    const { body } = await this.request("GET", `/fhir/R4/${type}?${new URLSearchParams(query)}`);
    return (body?.entry ?? []).map((entry) => entry.resource).filter((resource) => resource?.resourceType === type);
  }
}

const stableJson = (value) =>
  JSON.stringify(value, (key, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
const sameJson = (a, b) => stableJson(a) === stableJson(b);
/** A URL path segment: an id, or a dry run's placeholder shown as is. */
const segment = (id) => (id.startsWith("<") ? id : encodeURIComponent(id));
const versionHeader = (resource) => (resource.meta?.versionId ? { "if-match": `W/"${resource.meta.versionId}"` } : {});

/** The one resource of `type` named exactly `name`, undefined if none, a SetupError if several. */
async function findOneByName(api, type, name) {
  const found = (await api.search(type, { name })).filter((resource) => resource.name === name);
  if (found.length > 1) {
    throw new SetupError(
      `${found.length} ${type} resources are named "${name}" (${found.map((r) => `${type}/${r.id}`).join(", ")}): ` +
        "remove or rename the extra ones, then run this again.",
    );
  }
  return found[0];
}

// ---------------------------------------------------------------------------------------------
// The set-up steps.

async function signIn(api, { adminClientId, adminClientSecret }) {
  let token;
  try {
    token = await api.request("POST", "/oauth2/token", {
      form: { grant_type: "client_credentials", client_id: adminClientId, client_secret: adminClientSecret },
      printable: `grant_type=client_credentials&client_id=${encodeURIComponent(adminClientId)}&client_secret=${MASK}`,
    });
  } catch (error) {
    if (error instanceof SetupError && /HTTP 4\d\d/.test(error.message)) {
      throw new SetupError(
        `Medplum refused the admin client credentials (MEDPLUM_ADMIN_CLIENT_ID / MEDPLUM_ADMIN_CLIENT_SECRET): ${error.message}`,
      );
    }
    throw error;
  }
  if (!token.body?.access_token) throw new SetupError("POST /oauth2/token answered without an access_token");
  api.accessToken = token.body.access_token;
  return token.body.project?.reference?.replace(/^Project\//, "");
}

async function resolveProject(api, requested, tokenProject) {
  const projectId = requested ?? tokenProject;
  if (!projectId) throw new SetupError("The token names no project: pass --project <id>.");
  if (requested && tokenProject && requested !== tokenProject) {
    throw new SetupError(
      `--project ${requested} is not the admin client's project (${tokenProject}): Medplum's admin API acts on the ` +
        "caller's project, so use a client of the project you mean. Nothing was changed.",
    );
  }
  const admin = await api.request("GET", `/admin/projects/${encodeURIComponent(projectId)}`, { expect: [200, 401, 403, 404] });
  if (admin.status !== 200) {
    throw new SetupError(
      `GET /admin/projects/${projectId} answered HTTP ${admin.status}: the admin client must be an admin of the project ` +
        "(its ProjectMembership needs admin: true). Nothing was changed.",
    );
  }
  const { body: project } = await api.request("GET", `/fhir/R4/Project/${encodeURIComponent(projectId)}`);
  if (!project?.features?.includes("bots")) {
    throw new SetupError(
      `Bots are not enabled for project ${projectId} (Project.features lacks "bots"): Medplum's super admin must add ` +
        "the feature (on app.medplum.com, ask Medplum support). Nothing was changed.",
    );
  }
  return { projectId, secrets: admin.body?.project?.secret ?? [] };
}

async function ensurePolicy(api) {
  const desired = { resourceType: "AccessPolicy", name: POLICY_NAME, resource: POLICY_RESOURCES };
  const existing = await findOneByName(api, "AccessPolicy", POLICY_NAME);
  if (!existing) {
    const { body } = await api.request("POST", "/fhir/R4/AccessPolicy", {
      json: desired,
      write: true,
      expect: [201],
      dryRunResult: { ...desired, id: api.placeholder("AccessPolicy") },
    });
    return { id: body.id, action: "created" };
  }
  if (sameJson(existing.resource ?? [], POLICY_RESOURCES)) return { id: existing.id, action: "unchanged" };
  await api.request("PUT", `/fhir/R4/AccessPolicy/${encodeURIComponent(existing.id)}`, {
    json: { ...existing, resource: POLICY_RESOURCES },
    headers: versionHeader(existing),
    write: true,
  });
  return { id: existing.id, action: "updated (its rules now match this script)" };
}

async function ensureClient(api, projectId) {
  const project = encodeURIComponent(projectId);
  let client = await findOneByName(api, "ClientApplication", CLIENT_NAME);
  let action = "unchanged";
  if (!client) {
    const request = {
      name: CLIENT_NAME,
      description: "The clinician-calls Cloudflare Worker: reads appointments, patients and clinicians' permissions; writes call outcomes.",
    };
    ({ body: client } = await api.request("POST", `/admin/projects/${project}/client`, {
      json: request,
      write: true,
      expect: [201],
      dryRunResult: { resourceType: "ClientApplication", id: api.placeholder("ClientApplication"), name: CLIENT_NAME },
    }));
    action = "created";
  }
  // The worker reads ProjectMembership, which Medplum shows to project admins only.
  let membership;
  if (client.id.startsWith("<")) {
    membership = { resourceType: "ProjectMembership", id: api.placeholder("ClientApplication's ProjectMembership") };
  } else {
    const memberships = await api.search("ProjectMembership", { profile: `ClientApplication/${client.id}` });
    membership = memberships.find((m) => m.profile?.reference === `ClientApplication/${client.id}`);
    if (!membership) throw new SetupError(`ClientApplication/${client.id} has no ProjectMembership in project ${projectId}`);
  }
  if (membership.admin !== true) {
    await api.request("POST", `/admin/projects/${project}/members/${segment(membership.id)}`, {
      json: { ...membership, admin: true },
      write: true,
    });
    if (action === "unchanged") action = "updated (made a project admin)";
  }
  return { id: client.id, action };
}

async function ensureSecrets(api, projectId, existingSecrets, { workerUrl, provisioningSecret, policyId }) {
  const ours = [
    { name: SECRET_NAMES.workerUrl, valueString: workerUrl },
    { name: SECRET_NAMES.provisioningSecret, valueString: provisioningSecret },
    { name: SECRET_NAMES.policyId, valueString: policyId },
  ];
  const current = new Map(existingSecrets.map((setting) => [setting.name, setting]));
  const unchanged = ours.every((wanted) => sameJson(current.get(wanted.name), wanted));
  if (unchanged) return { action: "unchanged" };
  // POST .../secrets replaces Project.secret as a whole: keep every other secret as it is.
  const merged = [...existingSecrets.filter((setting) => !ours.some((o) => o.name === setting.name)), ...ours];
  const printable = merged.map((setting) =>
    PRINTABLE_SECRETS.has(setting.name)
      ? setting
      : Object.fromEntries(Object.entries(setting).map(([key, value]) => [key, key.startsWith("value") ? MASK : value])),
  );
  await api.request("POST", `/admin/projects/${encodeURIComponent(projectId)}/secrets`, { json: merged, printable, write: true });
  return { action: current.has(SECRET_NAMES.provisioningSecret) ? "updated" : "created" };
}

async function ensureBot(api, projectId, code) {
  let bot = await findOneByName(api, "Bot", BOT_NAME);
  let action = "unchanged";
  if (!bot) {
    ({ body: bot } = await api.request("POST", `/admin/projects/${encodeURIComponent(projectId)}/bot`, {
      json: {
        name: BOT_NAME,
        description: "Signup hook: provisions a clinician's Twilio identity at the worker when their membership grants videocall_own_manage.",
      },
      write: true,
      expect: [201],
      dryRunResult: { resourceType: "Bot", id: api.placeholder("Bot"), name: BOT_NAME },
    }));
    action = "created";
  }
  // The deployed file's name carries the code's hash, so an unchanged bot is not deployed again.
  const hash = createHash("sha256").update(code).digest("hex");
  const filename = `provision-twilio-identity.${hash.slice(0, 16)}.js`;
  if (bot.executableCode?.title !== filename) {
    await api.request("POST", `/fhir/R4/Bot/${segment(bot.id)}/$deploy`, {
      json: { code, filename },
      printable: {
        code: `<contents of medplum/bots/provision-twilio-identity.cjs: ${Buffer.byteLength(code)} bytes, sha256 ${hash}>`,
        filename,
      },
      write: true,
    });
    if (action === "unchanged") action = "updated (new code deployed)";
    else action = "created and deployed";
  }
  return { id: bot.id, action };
}

async function ensureSubscription(api, botId, policyId) {
  const endpoint = `Bot/${botId}`;
  const desired = {
    resourceType: "Subscription",
    status: "active",
    reason: `Provision the Twilio identity of a clinician granted ${POLICY_NAME}`,
    criteria: `ProjectMembership?access-policy=AccessPolicy/${policyId}`,
    channel: { type: "rest-hook", endpoint },
    extension: [
      { url: SUPPORTED_INTERACTION, valueCode: "create" },
      { url: SUPPORTED_INTERACTION, valueCode: "update" },
    ],
  };
  const existing = botId.startsWith("<")
    ? []
    : (await api.search("Subscription", { url: endpoint })).filter(
        (s) => s.channel?.endpoint === endpoint && String(s.criteria ?? "").startsWith("ProjectMembership"),
      );
  if (existing.length > 1) {
    throw new SetupError(
      `${existing.length} Subscriptions on ProjectMembership call ${endpoint} (${existing.map((s) => `Subscription/${s.id}`).join(", ")}): ` +
        "delete the extra ones, then run this again.",
    );
  }
  if (existing.length === 0) {
    const { body } = await api.request("POST", "/fhir/R4/Subscription", {
      json: desired,
      write: true,
      expect: [201],
      dryRunResult: { ...desired, id: api.placeholder("Subscription") },
    });
    return { id: body.id, action: "created" };
  }
  const [subscription] = existing;
  const fields = ["status", "reason", "criteria", "channel", "extension"];
  if (fields.every((field) => sameJson(subscription[field], desired[field]))) return { id: subscription.id, action: "unchanged" };
  await api.request("PUT", `/fhir/R4/Subscription/${encodeURIComponent(subscription.id)}`, {
    json: { ...subscription, ...desired, id: subscription.id },
    headers: versionHeader(subscription),
    write: true,
  });
  return { id: subscription.id, action: "updated" };
}

/** Runs the whole set-up. Returns what was done, per resource. */
export async function setUp({ baseUrl, workerUrl, project, dryRun, verbose, credentials, print }) {
  const code = readFileSync(BOT_SOURCE_PATH, "utf8");
  const api = new MedplumApi({ baseUrl, dryRun, verbose, print });
  if (dryRun) {
    print("Dry run: reads are sent (the token request, searches, GETs); requests marked NOT SENT would change something.");
  }
  const tokenProject = await signIn(api, credentials);
  const { projectId, secrets } = await resolveProject(api, project, tokenProject);
  const policy = await ensurePolicy(api);
  const client = await ensureClient(api, projectId);
  const projectSecrets = await ensureSecrets(api, projectId, secrets, {
    workerUrl,
    provisioningSecret: credentials.provisioningSecret,
    policyId: policy.id,
  });
  const bot = await ensureBot(api, projectId, code);
  const subscription = await ensureSubscription(api, bot.id, policy.id);
  return { projectId, policy, client, projectSecrets, bot, subscription };
}

/** The worker ClientApplication's secret (printed for a pipe into scripts/secrets.mjs). */
export async function clientSecret({ baseUrl, project, credentials, print }) {
  const api = new MedplumApi({ baseUrl, dryRun: false, verbose: false, print });
  const tokenProject = await signIn(api, credentials);
  await resolveProject(api, project, tokenProject);
  const client = await findOneByName(api, "ClientApplication", CLIENT_NAME);
  if (!client) throw new SetupError(`No ClientApplication named "${CLIENT_NAME}": run the set-up first.`);
  const { body } = await api.request("GET", `/fhir/R4/ClientApplication/${encodeURIComponent(client.id)}`);
  if (!body?.secret) throw new SetupError(`ClientApplication/${client.id} has no secret visible to this admin client`);
  return body.secret;
}

function summary(result, dryRun, print) {
  const verb = dryRun ? "would be" : "";
  const line = (what, outcome) => print(`  ${what.padEnd(56)} ${dryRun && outcome.action !== "unchanged" ? `${verb} ${outcome.action}` : outcome.action}`);
  print(`${dryRun ? "Dry run for" : "Done:"} Medplum project ${result.projectId}`);
  line(`AccessPolicy/${result.policy.id} (${POLICY_NAME})`, result.policy);
  line(`ClientApplication/${result.client.id} (${CLIENT_NAME})`, result.client);
  line("Project secrets CLINICIAN_CALLS_* (read by the Bot)", result.projectSecrets);
  line(`Bot/${result.bot.id}`, result.bot);
  line(`Subscription/${result.subscription.id}`, result.subscription);
}

function nextSteps(result, baseUrl, print) {
  print("");
  print("Next: give the worker its Medplum client (both in one version; choose the environment):");
  print(
    `  { echo 'MEDPLUM_CLIENT_ID=${result.client.id}'; node scripts/medplum-setup.mjs --base-url ${baseUrl} --print-client-secret; } | node scripts/secrets.mjs --env <staging|production> --only MEDPLUM_CLIENT_ID,MEDPLUM_CLIENT_SECRET`,
  );
  print("(if the secret cannot be read, secrets.mjs sets nothing: it refuses a missing value)");
  print(`and check that the worker's MEDPLUM_BASE_URL is ${baseUrl} and its PROVISIONING_SECRET is the one given here.`);
}

export async function main(argv, { env = process.env, stdin = process.stdin, stdout = process.stdout, stderr = process.stderr } = {}) {
  const print = (text) => stdout.write(`${text}\n`);
  try {
    const options = parseArgs(argv);
    if (options.help) {
      stdout.write(HELP);
      return 0;
    }
    if (!options["base-url"]) throw new UsageError("--base-url is required (see --help)");
    const baseUrl = parseBaseUrl(options["base-url"], "base-url");
    if (options["print-client-secret"]) {
      for (const other of ["dry-run", "worker-url", "provisioning-secret-stdin", "verbose"]) {
        if (options[other]) throw new UsageError(`--print-client-secret cannot be combined with --${other}`);
      }
      const credentials = await readCredentials({ env, stdin, needProvisioningSecret: false });
      // Only the secret's line goes to stdout; messages go to stderr.
      const secret = await clientSecret({ baseUrl, project: options.project, credentials, print: (t) => stderr.write(`${t}\n`) });
      stdout.write(`MEDPLUM_CLIENT_SECRET=${secret}\n`);
      return 0;
    }
    if (!options["worker-url"]) throw new UsageError("--worker-url is required (see --help)");
    const workerUrl = parseBaseUrl(options["worker-url"], "worker-url");
    const credentials = await readCredentials({
      env,
      stdin,
      needProvisioningSecret: true,
      provisioningSecretFromStdin: Boolean(options["provisioning-secret-stdin"]),
    });
    const dryRun = Boolean(options["dry-run"]);
    const result = await setUp({
      baseUrl,
      workerUrl,
      project: options.project,
      dryRun,
      verbose: Boolean(options.verbose),
      credentials,
      print,
    });
    summary(result, dryRun, print);
    if (!dryRun) nextSteps(result, baseUrl, print);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      stderr.write(`medplum-setup: ${error.message}\n`);
      return 2;
    }
    if (error instanceof SetupError) {
      stderr.write(`medplum-setup: ${error.message}\n`);
      return 1;
    }
    stderr.write(`medplum-setup: unexpected error: ${error?.stack ?? error}\n`);
    return 1;
  }
}

const isMain = (() => {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  process.exitCode = await main(process.argv.slice(2));
}
