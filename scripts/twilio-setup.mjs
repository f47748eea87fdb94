//! Configures a Twilio account for one environment: the TwiML App (Voice URL → the worker's voice
//! webhook), each pool number's inbound Voice URL and status callback, and the worker's number pool.
//! Idempotent; `--dry-run` reads the current state and prints the exact writes without sending them.
import { baseUrl, maskNumber, maskNumbersIn, parseOptions, requestJson, requiredEnv, runMain, UsageError } from "./lib/ops.mjs";

const USAGE = `Usage: node scripts/twilio-setup.mjs --worker-url <https://…> (--numbers <+E164,…> | --all-numbers) [options]

Creates or updates, in the Twilio account:
  - the TwiML App "<app name>": VoiceUrl = <worker>/api/v1/twilio/webhooks/voice (POST);
  - each chosen number: VoiceUrl = <worker>/api/v1/twilio/webhooks/inbound, StatusCallback =
    <worker>/api/v1/twilio/webhooks/call-status (both POST), no TwiML App on the number;
and adds each chosen number to the worker's pool (POST /api/v1/admin/number-pool).

Options:
  --worker-url URL        the environment's PUBLIC_BASE_URL (https; http only on loopback)
  --numbers LIST          comma-separated E.164 numbers of the account to use as caller IDs
  --all-numbers           use every number of the account
  --env NAME              local | staging | production (default staging): names the app and the
                          wrangler commands printed at the end
  --app-name NAME         the TwiML App's FriendlyName (default "Clinician calls (<env>)")
  --twilio-api-base URL   default https://api.twilio.com (tests point it at sim/twilio)
  --skip-pool             configure Twilio only; leave the worker's pool alone
  --dry-run               read the current state, print every write it would make, change nothing
  --help

Environment (never files, never arguments):
  TWILIO_ACCOUNT_SID                        the account (AC…)
  TWILIO_API_KEY + TWILIO_API_SECRET        preferred credentials (a Standard API key), or
  TWILIO_AUTH_TOKEN                         the account's auth token
  ADMIN_TOKEN                               the worker's admin token (not needed with --skip-pool)

Exit codes: 0 done (or planned), 1 a service refused or failed, 2 bad arguments or configuration.`;

const OPTIONS = {
  "worker-url": "string", numbers: "string", "all-numbers": "boolean", env: "string", "app-name": "string",
  "twilio-api-base": "string", "skip-pool": "boolean", "dry-run": "boolean", help: "boolean",
};
const E164 = /^\+[1-9]\d{7,14}$/;

/** The webhook URLs of a worker. */
export function webhookUrls(workerUrl) {
  const hooks = `${workerUrl}/api/v1/twilio/webhooks`;
  return { voice: `${hooks}/voice`, inbound: `${hooks}/inbound`, callStatus: `${hooks}/call-status` };
}

/**
 * The writes that bring the account and pool to the wanted state (pure: no I/O). `applications`
 * and `numbers` are Twilio's list entries; `pool` the worker's pool entries or null (skipped).
 * Returns {actions, unchanged, missing}: `missing` lists wanted numbers the account lacks.
 */
export function plan({ applications, numbers, pool, appName, urls, wanted }) {
  const actions = [];
  const unchanged = [];
  const app = applications.find((a) => a.friendly_name === appName);
  const appWants = { FriendlyName: appName, VoiceUrl: urls.voice, VoiceMethod: "POST" };
  if (!app) actions.push({ kind: "create-app", form: appWants });
  else if (app.voice_url !== urls.voice || app.voice_method !== "POST") actions.push({ kind: "update-app", sid: app.sid, form: appWants });
  else unchanged.push(`TwiML App ${app.sid}`);

  const byNumber = new Map(numbers.map((n) => [n.phone_number, n]));
  const chosen = wanted === "all" ? numbers.map((n) => n.phone_number) : wanted;
  const missing = chosen.filter((n) => !byNumber.has(n));
  for (const number of chosen.filter((n) => byNumber.has(n))) {
    const current = byNumber.get(number);
    const wants = {
      VoiceUrl: urls.inbound, VoiceMethod: "POST",
      StatusCallback: urls.callStatus, StatusCallbackMethod: "POST",
      VoiceApplicationSid: "",
    };
    const same = current.voice_url === wants.VoiceUrl && current.voice_method === "POST"
      && current.status_callback === wants.StatusCallback && current.status_callback_method === "POST"
      && !current.voice_application_sid;
    if (same) unchanged.push(`number ${current.sid} (${maskNumber(number)})`);
    else actions.push({ kind: "update-number", sid: current.sid, number, form: wants });
  }
  if (pool) {
    const active = new Set(pool.filter((p) => p.status === "active").map((p) => p.number));
    for (const number of chosen.filter((n) => byNumber.has(n))) {
      if (active.has(number)) unchanged.push(`pool ${maskNumber(number)}`);
      else actions.push({ kind: "add-to-pool", number });
    }
  }
  return { actions, unchanged, missing };
}

/** Every page of a Twilio list resource (`next_page_uri` is relative to the API base). */
async function listAll(apiBase, path, key, headers) {
  const items = [];
  let next = `${path}${path.includes("?") ? "&" : "?"}PageSize=1000`;
  while (next) {
    const page = await requestJson("GET", `${apiBase}${next}`, { headers });
    items.push(...(page[key] ?? []));
    next = page.next_page_uri ?? null;
  }
  return items;
}

function twilioCredentials() {
  const account = requiredEnv("TWILIO_ACCOUNT_SID", "the Twilio account to configure");
  if (!/^AC[0-9a-f]{32}$/i.test(account)) throw new UsageError("TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits");
  const key = process.env.TWILIO_API_KEY?.trim();
  const user = key || account;
  const password = key
    ? requiredEnv("TWILIO_API_SECRET", "the secret of TWILIO_API_KEY")
    : requiredEnv("TWILIO_AUTH_TOKEN", "or set TWILIO_API_KEY and TWILIO_API_SECRET");
  return { account, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
}

function describe(action, apiBase, accountPath, workerUrl) {
  const form = (entries) => Object.entries(entries).map(([k, v]) => `    ${k}=${v}`).join("\n");
  switch (action.kind) {
    case "create-app":
      return `POST ${apiBase}${accountPath}/Applications.json\n${form(action.form)}`;
    case "update-app":
      return `POST ${apiBase}${accountPath}/Applications/${action.sid}.json\n${form(action.form)}`;
    case "update-number":
      return `POST ${apiBase}${accountPath}/IncomingPhoneNumbers/${action.sid}.json   (${maskNumber(action.number)})\n${form(action.form)}`;
    default:
      return `POST ${workerUrl}/api/v1/admin/number-pool\n    ${maskNumbersIn(JSON.stringify({ number: action.number }))}`;
  }
}

async function main(argv) {
  const options = parseOptions(argv, OPTIONS);
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (!options["worker-url"]) throw new UsageError("--worker-url is required (see --help)");
  const workerUrl = baseUrl(options["worker-url"], "--worker-url");
  const apiBase = baseUrl(options["twilio-api-base"] ?? "https://api.twilio.com", "--twilio-api-base");
  if (Boolean(options.numbers) === Boolean(options["all-numbers"])) throw new UsageError("give exactly one of --numbers and --all-numbers");
  let wanted = "all";
  if (options.numbers) {
    wanted = [...new Set(options.numbers.split(",").map((n) => n.trim()).filter(Boolean))];
    const bad = wanted.filter((n) => !E164.test(n));
    if (bad.length || !wanted.length) throw new UsageError(`--numbers must be E.164 numbers such as +447700900001 (${bad.length} malformed)`);
  }
  const env = options.env ?? "staging";
  if (!["local", "staging", "production"].includes(env)) throw new UsageError("--env must be local, staging or production");
  const appName = options["app-name"] ?? `Clinician calls (${env})`;
  const { account, authorization } = twilioCredentials();
  const adminToken = options["skip-pool"] ? null : requiredEnv("ADMIN_TOKEN", "the worker's admin token, for its number pool; or pass --skip-pool");
  const twilioHeaders = { authorization };
  const adminHeaders = { authorization: `Bearer ${adminToken}` };
  const accountPath = `/2010-04-01/Accounts/${account}`;
  const urls = webhookUrls(workerUrl);

  const [applications, numbers, pool] = await Promise.all([
    listAll(apiBase, `${accountPath}/Applications.json`, "applications", twilioHeaders),
    listAll(apiBase, `${accountPath}/IncomingPhoneNumbers.json`, "incoming_phone_numbers", twilioHeaders),
    adminToken ? requestJson("GET", `${workerUrl}/api/v1/admin/number-pool`, { headers: adminHeaders }).then((b) => b.numbers ?? []) : null,
  ]);
  const { actions, unchanged, missing } = plan({ applications, numbers, pool, appName, urls, wanted });
  if (missing.length) {
    throw new UsageError(`${missing.length} of the chosen numbers are not in this Twilio account (${missing.map(maskNumber).join(", ")}); nothing was changed`);
  }
  if (wanted === "all" && numbers.length === 0) throw new UsageError("the account has no phone numbers; buy or port one first");

  for (const line of unchanged) console.log(`unchanged: ${line}`);
  if (options["dry-run"]) {
    console.log(actions.length ? `dry run: ${actions.length} request(s) would be sent:` : "dry run: nothing to change");
    for (const action of actions) console.log(describe(action, apiBase, accountPath, workerUrl));
    return 0;
  }
  let appSid = applications.find((a) => a.friendly_name === appName)?.sid;
  for (const action of actions) {
    if (action.kind === "create-app" || action.kind === "update-app") {
      const path = action.kind === "create-app" ? "Applications.json" : `Applications/${action.sid}.json`;
      appSid = (await requestJson("POST", `${apiBase}${accountPath}/${path}`, { headers: twilioHeaders, form: action.form })).sid;
      console.log(`${action.kind === "create-app" ? "created" : "updated"}: TwiML App ${appSid}`);
    } else if (action.kind === "update-number") {
      await requestJson("POST", `${apiBase}${accountPath}/IncomingPhoneNumbers/${action.sid}.json`, { headers: twilioHeaders, form: action.form });
      console.log(`configured: number ${action.sid} (${maskNumber(action.number)})`);
    } else {
      await requestJson("POST", `${workerUrl}/api/v1/admin/number-pool`, { headers: adminHeaders, json: { number: action.number } });
      console.log(`added to pool: ${maskNumber(action.number)}`);
    }
  }
  const where = env === "local" ? "in .dev.vars" : `with: echo TWILIO_TWIML_APP_SID=${appSid} | node scripts/secrets.mjs --env ${env} --only TWILIO_TWIML_APP_SID`;
  console.log(`\nThe worker must know the TwiML App: set TWILIO_TWIML_APP_SID=${appSid} ${where}`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
