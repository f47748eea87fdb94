//! Runs a deployed Medplum Bot's code in-process the way Medplum's `vmcontext` runtime does: a Node VM, `exports.handler(medplum, event)`, a real MedplumClient.
//
// The wrapper mirrors packages/server/src/bots/vmcontext.ts in medplum/medplum: the deployed code
// is CommonJS text pasted into a script that defines `exports`/`module`, then an async block
// builds a MedplumClient with the bot's access token and calls `exports.handler(medplum,
// {bot, input, contentType, secrets, traceId, headers})`. What the bot logs becomes the result's
// `logResult`; an exception makes the run a failure. The sandbox offers the same globals.
import { createRequire } from "node:module";
import vm from "node:vm";
import { ContentType, Hl7Message, MedplumClient, normalizeErrorString, normalizeOperationOutcome } from "@medplum/core";

/** Medplum's DEFAULT_VM_CONTEXT_TIMEOUT (ms). */
export const DEFAULT_BOT_TIMEOUT_MS = 10_000;

/** Collects what the bot logs, like Medplum's MockConsole: one line per call, arguments joined by spaces. */
class BotConsole {
  constructor() {
    this.lines = [];
  }
  log(...args) {
    this.lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
  }
  info(...args) {
    this.log(...args);
  }
  warn(...args) {
    this.log(...args);
  }
  error(...args) {
    this.log(...args);
  }
  debug(...args) {
    this.log(...args);
  }
  toString() {
    return this.lines.join("\n");
  }
}

const sandboxRequire = createRequire(import.meta.url);

/**
 * Runs `code` (the deployed CommonJS text) once. Returns `{success, logResult, returnValue}`
 * exactly as Medplum's runInVmContext does. `baseUrl` is where the bot's MedplumClient sends its
 * requests (this sim), `accessToken` the bot's token, `secrets` a name → ProjectSetting map.
 */
export async function runBotCode({ code, bot, baseUrl, accessToken, input, contentType, secrets, timeoutMs, traceId }) {
  const botConsole = new BotConsole();
  const sandbox = {
    console: botConsole,
    fetch,
    require: sandboxRequire,
    ContentType,
    Hl7Message,
    MedplumClient,
    TextEncoder,
    URL,
    URLSearchParams,
    event: {
      bot: { reference: `Bot/${bot.id}`, ...(bot.name ? { display: bot.name } : {}) },
      baseUrl,
      accessToken,
      input,
      contentType,
      secrets,
      traceId,
      headers: undefined,
      defaultHeaders: undefined,
    },
  };
  const wrappedCode = `
  const exports = {};
  const module = {exports};

  // Start user code
  ${code}
  // End user code

  (async () => {
    const { bot, baseUrl, accessToken, contentType, secrets, traceId, headers, defaultHeaders } = event;
    const medplum = new MedplumClient({ baseUrl, defaultHeaders, fetch });
    medplum.setAccessToken(accessToken);
    try {
      // Only \`exports.handler\`, as Medplum: code that replaces \`module.exports\` fails here too.
      return await exports.handler(medplum, { bot, input: event.input, contentType, secrets, traceId, headers });
    } catch (err) {
      if (err instanceof Error) {
        console.log("Unhandled error: " + err.message + "\\n" + err.stack);
      } else {
        console.log("Unhandled error: " + JSON.stringify(err, undefined, 2));
      }
      throw err;
    }
  })();
  `;
  try {
    const returnValue = await vm.runInNewContext(wrappedCode, sandbox, { timeout: timeoutMs ?? DEFAULT_BOT_TIMEOUT_MS });
    return { success: true, logResult: botConsole.toString(), returnValue };
  } catch (error) {
    botConsole.log("Error", normalizeErrorString(error));
    return { success: false, logResult: botConsole.toString(), returnValue: normalizeOperationOutcome(error) };
  }
}
