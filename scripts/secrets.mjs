//! Sets the worker's secrets for a deployed environment with one `wrangler secret bulk` (one new
//! version holding them all, so a rotation never runs with half its secrets), each value read from
//! the environment or from `NAME=value` lines on standard input (never from files in the repo,
//! never from arguments), checked for shape first; prints names and sources, never values.
import { spawn } from "node:child_process";
import { parseOptions, runMain, UsageError } from "./lib/ops.mjs";

/** Every secret the worker reads (edge-worker/src/config.rs), where its value comes from, and its shape. */
export const SECRETS = [
  { name: "MEDPLUM_CLIENT_ID", required: true, from: "scripts/medplum-setup.mjs output (the worker's ClientApplication id)", shape: /^[A-Za-z0-9\-.]{1,64}$/ },
  { name: "MEDPLUM_CLIENT_SECRET", required: true, from: "Medplum app → Admin → Project → Clients → the worker's client → Secret", shape: /^\S{16,}$/ },
  { name: "TWILIO_ACCOUNT_SID", required: true, from: "Twilio console → Account info", shape: /^AC[0-9a-f]{32}$/ },
  { name: "TWILIO_AUTH_TOKEN", required: true, from: "Twilio console → Account info → Auth token (the primary)", shape: /^[0-9a-f]{32}$/ },
  { name: "TWILIO_API_KEY", required: true, from: "Twilio console → API keys & tokens → a Standard key (SK…)", shape: /^SK[0-9a-f]{32}$/ },
  { name: "TWILIO_API_SECRET", required: true, from: "shown once when the API key is created", shape: /^\S{32}$/ },
  { name: "TWILIO_TWIML_APP_SID", required: true, from: "scripts/twilio-setup.mjs output (the TwiML App, AP…)", shape: /^AP[0-9a-f]{32}$/ },
  { name: "PROVISIONING_SECRET", required: true, from: "generate: openssl rand -hex 32 (also given to the Medplum signup bot)", shape: /^\S{32,}$/ },
  { name: "ADMIN_TOKEN", required: false, from: "generate: openssl rand -hex 32 (for operators and scripts/twilio-setup.mjs)", shape: /^\S{32,}$/ },
  { name: "TWILIO_AUTH_TOKEN_PREVIOUS", required: false, from: "while rotating only: the auth token being replaced", shape: /^[0-9a-f]{32}$/ },
  { name: "DATADOG_API_KEY", required: false, from: "Datadog → Organization settings → API keys", shape: /^[0-9a-f]{32}$/ },
  { name: "SLACK_WEBHOOK_URL", required: false, from: "Slack app → Incoming webhooks → the alerts channel's URL", shape: /^https:\/\/hooks\.slack\.com\/\S+$/ },
  { name: "TELEMETRY_SALT", required: false, requiredIn: ["production"], from: "generate: openssl rand -hex 32 (keep it: changing it changes clinician keys in telemetry)", shape: /^\S{16,}$/ },
];

const USAGE = `Usage: node scripts/secrets.mjs --env staging|production [--only NAME,…] [--dry-run]
       node scripts/secrets.mjs --list

Sets the secrets together with \`wrangler secret bulk --env <env>\` (one request, one new version: a
rotation such as TWILIO_AUTH_TOKEN with TWILIO_AUTH_TOKEN_PREVIOUS, or TWILIO_API_KEY with
TWILIO_API_SECRET, never runs half done), the values as JSON on wrangler's standard input.
Values come from environment variables of the same name, or from NAME=value lines on standard input
(e.g. piped from a password manager); nothing is read from files in the repo or from arguments.
Every required secret must be given (unless --only narrows the set); optional ones are set when given.
Values are checked for shape first, and fake/test values are refused: nothing is set if any is wrong.

  --env NAME     staging or production
  --only LIST    set just these secrets (e.g. to rotate one)
  --dry-run      check and print what would be set (names and sources, never values), set nothing
  --list         print every secret, whether it is required, and where its value comes from`;

const OPTIONS = { env: "string", only: "string", "dry-run": "boolean", list: "boolean", help: "boolean" };

async function readStdinPairs() {
  if (process.stdin.isTTY) return new Map();
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  const pairs = new Map();
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) throw new UsageError(`standard input line ${index + 1} is not NAME=value`);
    pairs.set(line.slice(0, eq).trim(), line.slice(eq + 1));
  }
  return pairs;
}

/**
 * Chooses and checks the values (pure but for `env`/`stdin` maps). Returns [{name, value, source}]
 * or throws a UsageError listing every problem by name.
 */
export function chooseSecrets({ only, env, stdin, environment }) {
  const known = new Set(SECRETS.map((s) => s.name));
  const unknown = [...(only ?? []), ...stdin.keys()].filter((name) => !known.has(name));
  if (unknown.length) throw new UsageError(`not a secret of the worker: ${[...new Set(unknown)].join(", ")} (see --list)`);
  const problems = [];
  const chosen = [];
  for (const secret of SECRETS) {
    if (only && !only.includes(secret.name)) continue;
    const fromStdin = stdin.get(secret.name);
    const fromEnv = env[secret.name];
    const value = (fromStdin ?? fromEnv ?? "").trim();
    if (!value) {
      if (secret.required || only || secret.requiredIn?.includes(environment)) problems.push(`${secret.name} is not given (${secret.from})`);
      continue;
    }
    if (!secret.shape.test(value)) problems.push(`${secret.name} does not look right (${secret.from})`);
    else if (/fake|example|changeme|test/i.test(value) && environment === "production") problems.push(`${secret.name} looks like a test value`);
    else chosen.push({ name: secret.name, value, source: fromStdin !== undefined ? "standard input" : "environment" });
  }
  if (problems.length) throw new UsageError(`nothing was set:\n  ${problems.join("\n  ")}`);
  return chosen;
}

/** Sets `chosen` in one `wrangler secret bulk` call: the JSON object on its standard input. */
function wranglerBulk(chosen, environment) {
  return new Promise((resolve, reject) => {
    const child = spawn("wrangler", ["secret", "bulk", "--env", environment], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", (error) => reject(new Error(`wrangler could not be started (${error.code}); run \`source scripts/env.sh\` first`)));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`wrangler secret bulk failed (exit ${code}): ${stderr.split("\n").find((l) => l.trim()) ?? ""}`))));
    child.stdin.end(JSON.stringify(Object.fromEntries(chosen.map(({ name, value }) => [name, value]))));
  });
}

async function main(argv) {
  const options = parseOptions(argv, OPTIONS);
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (options.list) {
    for (const s of SECRETS) {
      const need = s.required ? "required" : s.requiredIn ? `required in ${s.requiredIn.join(", ")}` : "optional";
      console.log(`${s.name.padEnd(28)} ${need}  ${s.from}`);
    }
    return 0;
  }
  if (!["staging", "production"].includes(options.env)) throw new UsageError("--env must be staging or production (local secrets live in .dev.vars)");
  const only = options.only ? options.only.split(",").map((s) => s.trim()).filter(Boolean) : undefined;
  const chosen = chooseSecrets({ only, env: process.env, stdin: await readStdinPairs(), environment: options.env });
  for (const { name, source } of chosen) console.log(`${options["dry-run"] ? "would set" : "setting"} ${name} (from ${source}) in ${options.env}`);
  if (options["dry-run"]) return 0;
  try {
    await wranglerBulk(chosen, options.env);
  } catch (error) {
    error.message += "\nnone of them was set; fix the cause and run again";
    throw error;
  }
  console.log(`${chosen.length} secret(s) set in ${options.env}; check with: curl -s <PUBLIC_BASE_URL>/api/v1/health`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
