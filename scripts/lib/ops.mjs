//! Small helpers shared by the operator scripts (twilio-setup, smoke): argument parsing, masking of
//! numbers and credentials in what they print, and JSON/form HTTP calls with clear errors.

/**
 * Parses `--name value`, `--name=value` and boolean `--flag`s. `spec` maps each option name to
 * "string" or "boolean"; an unknown option or a missing value throws with its name.
 */
export function parseOptions(argv, spec) {
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(argv[i]);
    if (!match || !(match[1] in spec)) throw new UsageError(`unknown argument: ${argv[i]}`);
    const [, name, inline] = match;
    if (spec[name] === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      options[name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
    options[name] = value;
  }
  return options;
}

/** A mistake in how a script was called or configured: printed without a stack, exit code 2. */
export class UsageError extends Error {}

/** Reads a required environment variable, or throws naming it. */
export function requiredEnv(name, why) {
  const value = process.env[name]?.trim();
  if (!value) throw new UsageError(`${name} is not set (${why}); export it in the shell, never put it in a file in the repo`);
  return value;
}

/** `+447700900123` → `+•••••••••123`: enough to tell numbers apart, not enough to dial. */
export function maskNumber(number) {
  const text = String(number);
  return text.length <= 4 ? "•".repeat(text.length) : `${text[0] === "+" ? "+" : ""}${"•".repeat(text.length - 4)}${text.slice(-3)}`;
}

/** Masks every E.164-looking run of digits in a string (for printing request bodies). */
export function maskNumbersIn(text) {
  return String(text).replace(/\+?\d{9,15}/g, (m) => maskNumber(m));
}

/** Validates a public base URL (https, or http on loopback) and returns it without a trailing slash. */
export function baseUrl(value, name) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${name} is not a URL`);
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new UsageError(`${name} must be https (http only on 127.0.0.1/localhost)`);
  }
  if (url.search || url.hash) throw new UsageError(`${name} must not carry a query or fragment`);
  return url.href.replace(/\/+$/, "");
}

/** An HTTP answer the script did not expect: names the request (without credentials) and the status. */
export class HttpError extends Error {
  constructor(method, url, status, detail) {
    super(`${method} ${url} answered ${status}${detail ? `: ${detail}` : ""}`);
    this.status = status;
  }
}

/**
 * Sends a request and parses its JSON answer; non-2xx → HttpError with the service's own message
 * (Twilio's `message`, the worker's `error.message`). Network failures name the host.
 */
export async function requestJson(method, url, { headers = {}, form, json } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers } };
  if (form) {
    init.headers["content-type"] = "application/x-www-form-urlencoded";
    init.body = new URLSearchParams(form).toString();
  } else if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new Error(`${method} ${new URL(url).origin} could not be reached (${error.cause?.code ?? error.message})`);
  }
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { raw: text.slice(0, 200) };
  }
  if (!response.ok) {
    const detail = body?.message ?? body?.error?.message ?? body?.raw;
    throw new HttpError(method, url, response.status, detail && maskNumbersIn(detail));
  }
  return body;
}

/** Runs a script's `main`, printing errors plainly: usage/config mistakes exit 2, failures exit 1. */
export function runMain(main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code ?? 0),
    (error) => {
      console.error(`error: ${error.message}`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
