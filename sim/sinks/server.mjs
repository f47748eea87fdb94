//! Local stand-ins for Datadog (metrics v2 series, distribution points, logs intake) and a Slack incoming webhook, recording what they receive.
//
// Loopback only, in memory (plus one JSON line per received payload in `${logDir}/sinks-received.jsonl`,
// which the e2e PHI scan reads). Answers as the real services do on the routes the worker uses; see
// README.md for the routes, the inspection API and the faults.
import { createServer } from "node:http";
import { appendFileSync, mkdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, inflateSync, inflateRawSync } from "node:zlib";
import { SINKS_DATADOG_API_KEY, artifactsDir } from "../stack.mjs";

/** Datadog's limit on a decompressed payload (series and logs): 5 MB. */
const MAX_BODY_BYTES = 5 * 1024 * 1024;
/** Datadog's limit on entries in one logs request. */
const MAX_LOG_ENTRIES = 1000;
/** Datadog metrics v2 `type`: 0 unspecified, 1 count, 2 rate, 3 gauge. */
const METRIC_TYPES = new Set([0, 1, 2, 3]);
export const JSONL_NAME = "sinks-received.jsonl";
const JSON_TYPE = "application/json";

class HttpError extends Error {
  constructor(status, body, contentType = JSON_TYPE) {
    super(typeof body === "string" ? body : JSON.stringify(body));
    this.status = status;
    this.body = body;
    this.contentType = contentType;
  }
}

function send(res, status, body, contentType = JSON_TYPE) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** The raw request body (always fully read, so an early answer never leaves it half-sent). */
async function readRaw(req) {
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  }
  return { raw: Buffer.concat(chunks), tooLarge };
}

/** Decodes `Content-Encoding` (identity, gzip, deflate as zlib or raw) and parses JSON; 400/413 otherwise. */
function decodeJson(req, { raw, tooLarge }, errorBody) {
  if (tooLarge) throw new HttpError(413, errorBody("Payload too large"));
  const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  let bytes;
  try {
    if (encoding === "identity" || encoding === "") bytes = raw;
    else if (encoding === "gzip" || encoding === "x-gzip") bytes = gunzipSync(raw, { maxOutputLength: MAX_BODY_BYTES });
    else if (encoding === "deflate") {
      try {
        bytes = inflateSync(raw, { maxOutputLength: MAX_BODY_BYTES });
      } catch {
        bytes = inflateRawSync(raw, { maxOutputLength: MAX_BODY_BYTES });
      }
    } else throw new HttpError(415, errorBody(`Unsupported Content-Encoding: ${encoding}`));
  } catch (error) {
    if (error instanceof HttpError) throw error;
    if (error?.code === "ERR_BUFFER_TOO_LARGE") throw new HttpError(413, errorBody("Payload too large"));
    throw new HttpError(400, errorBody(`Body could not be decompressed (${encoding})`));
  }
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new HttpError(400, errorBody("Body is not valid JSON"));
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isFiniteNumber = (v) => typeof v === "number" && Number.isFinite(v);

/**
 * Checks a `{"series": [...]}` body of either metrics intake: what both require of each series
 * (object, metric name, type as `typeOk` allows, non-empty points each passing `pointProblem`,
 * string tags), then `extra(series, at)` for what only one checks. The first problem, or null.
 */
function seriesBodyProblem(body, { typeOk, typeRule, pointProblem, extra = () => null }) {
  if (!isObject(body) || !Array.isArray(body.series)) return "body must be an object with a `series` array";
  if (body.series.length === 0) return "`series` is empty";
  for (const [i, s] of body.series.entries()) {
    const at = `series[${i}]`;
    if (!isObject(s)) return `${at} is not an object`;
    if (typeof s.metric !== "string" || s.metric.length === 0 || s.metric.length > 200) return `${at}.metric must be a non-empty string`;
    if (s.type !== undefined && !typeOk(s.type)) return `${at}.type must be ${typeRule}`;
    if (!Array.isArray(s.points) || s.points.length === 0) return `${at}.points must be a non-empty array`;
    for (const [j, p] of s.points.entries()) {
      const problem = pointProblem(p);
      if (problem) return `${at}.points[${j}] must be ${problem}`;
    }
    if (s.tags !== undefined && !(Array.isArray(s.tags) && s.tags.every((t) => typeof t === "string"))) return `${at}.tags must be an array of strings`;
    const more = extra(s, at);
    if (more) return more;
  }
  return null;
}

/** Checks a metrics v2 body; returns the first problem or null. */
export function seriesProblem(body) {
  return seriesBodyProblem(body, {
    typeOk: (type) => METRIC_TYPES.has(type),
    typeRule: "0, 1, 2 or 3",
    pointProblem: (p) => (isObject(p) && Number.isInteger(p.timestamp) && isFiniteNumber(p.value) ? null : "{timestamp: integer seconds, value: number}"),
    extra: (s, at) => {
      if (s.unit !== undefined && typeof s.unit !== "string") return `${at}.unit must be a string`;
      if (s.interval !== undefined && !Number.isInteger(s.interval)) return `${at}.interval must be an integer`;
      return null;
    },
  });
}

/** Checks a distribution-points body (`/api/v1/distribution_points`); returns the first problem or null. */
export function distributionsProblem(body) {
  return seriesBodyProblem(body, {
    typeOk: (type) => type === "distribution",
    typeRule: '"distribution"',
    pointProblem: (p) => {
      const tuple = Array.isArray(p) && p.length === 2 && Number.isInteger(p[0]) && Array.isArray(p[1]) && p[1].length > 0 && p[1].every(isFiniteNumber);
      return tuple ? null : "[timestamp: integer seconds, [values: numbers]]";
    },
  });
}

/** Checks a logs-intake body (an array of log objects, or one object); returns the first problem or null. */
export function logsProblem(body) {
  const entries = Array.isArray(body) ? body : [body];
  if (entries.length === 0) return "no log entries";
  if (entries.length > MAX_LOG_ENTRIES) return `more than ${MAX_LOG_ENTRIES} log entries`;
  for (const [i, entry] of entries.entries()) {
    if (!isObject(entry)) return `entry ${i} is not an object`;
    for (const field of ["ddsource", "ddtags", "hostname", "message", "service", "status"]) {
      if (entry[field] !== undefined && typeof entry[field] !== "string") return `entry ${i}: ${field} must be a string`;
    }
  }
  return null;
}

/**
 * Starts the sinks on 127.0.0.1. `port` 0 (default) picks a free one; `apiKey` is the `DD-API-KEY`
 * Datadog accepts; `logDir`, when given, receives `sinks-received.jsonl`; `log` gets one line per
 * request (method, route, status: never a body, a key or the webhook path).
 * Returns {url, port, datadogUrl, slackUrl, close(), captured(), reset(), setFaults()}.
 */
export async function startSinkServer({
  port = 0,
  host = "127.0.0.1",
  apiKey = SINKS_DATADOG_API_KEY,
  logDir,
  log,
} = {}) {
  const received = { series: [], distributions: [], logs: [], slack: [] };
  const refused = { series: 0, distributions: 0, logs: 0, slack: 0 };
  let faults = { failDatadog: false, failSlack: false, failIntakes: [] };
  let jsonlPath;
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    jsonlPath = join(logDir, JSONL_NAME);
  }

  function record(sink, req, body) {
    const entry = { at: new Date().toISOString(), body, headers: { "content-type": req.headers["content-type"] ?? null } };
    received[sink].push(entry);
    if (jsonlPath) {
      const name = { series: "datadog.series", distributions: "datadog.distributions", logs: "datadog.logs", slack: "slack" }[sink];
      appendFileSync(jsonlPath, `${JSON.stringify({ at: entry.at, sink: name, body })}\n`);
    }
  }

  const datadogError = (message) => ({ errors: [message] });

  async function datadog(req, sink) {
    const raw = await readRaw(req);
    if (faults.failDatadog || faults.failIntakes.includes(sink)) throw new HttpError(500, datadogError("Internal Server Error (simulated outage)"));
    if (req.headers["dd-api-key"] !== apiKey) throw new HttpError(403, datadogError("Forbidden"));
    const body = decodeJson(req, raw, datadogError);
    const problem = { series: seriesProblem, distributions: distributionsProblem, logs: logsProblem }[sink](body);
    if (problem) throw new HttpError(400, datadogError(problem));
    record(sink, req, body);
    return { series: { status: 202, body: { errors: [] } }, distributions: { status: 202, body: { status: "ok" } }, logs: { status: 202, body: {} } }[sink];
  }

  async function slack(req) {
    const raw = await readRaw(req);
    const plain = (text) => new HttpError(400, text, "text/plain");
    if (faults.failSlack) throw new HttpError(500, "internal_error", "text/plain");
    let body;
    try {
      body = decodeJson(req, raw, () => "invalid_payload");
    } catch (error) {
      throw error instanceof HttpError ? new HttpError(error.status, error.status === 413 ? "payload_too_large" : "invalid_payload", "text/plain") : error;
    }
    if (!isObject(body)) throw plain("invalid_payload");
    const hasText = typeof body.text === "string" && body.text.trim().length > 0;
    const hasBlocks = Array.isArray(body.blocks) && body.blocks.length > 0;
    if (!hasText && !hasBlocks) throw plain("no_text");
    if (body.blocks !== undefined && !Array.isArray(body.blocks)) throw plain("invalid_blocks");
    record("slack", req, body);
    return { status: 200, body: "ok", contentType: "text/plain" };
  }

  async function readControl(req) {
    const { raw } = await readRaw(req);
    if (raw.length === 0) return {};
    try {
      const body = JSON.parse(raw.toString("utf8"));
      if (!isObject(body)) throw new Error("not an object");
      return body;
    } catch {
      throw new HttpError(400, { error: "body must be a JSON object" });
    }
  }

  function reset() {
    for (const list of Object.values(received)) list.length = 0;
    for (const key of Object.keys(refused)) refused[key] = 0;
    faults = { failDatadog: false, failSlack: false, failIntakes: [] };
  }

  function setFaults(next = {}) {
    const intakes = Array.isArray(next.failIntakes) ? next.failIntakes.filter((i) => ["series", "distributions", "logs"].includes(i)) : [];
    faults = { failDatadog: next.failDatadog === true, failSlack: next.failSlack === true, failIntakes: intakes };
    return { ...faults, failIntakes: [...intakes] };
  }

  const view = (sink) => ({ received: structuredClone(received[sink]), refused: refused[sink] });

  /** A route name for the log and the refusal counters (the Slack path is a secret in real life). */
  function routeOf(method, path) {
    if (path === "/datadog/api/v2/series") return { name: "/datadog/api/v2/series", sink: "series", method: "POST" };
    if (path === "/datadog/api/v2/logs") return { name: "/datadog/api/v2/logs", sink: "logs", method: "POST" };
    if (path === "/datadog/api/v1/distribution_points") return { name: "/datadog/api/v1/distribution_points", sink: "distributions", method: "POST" };
    if (path.startsWith("/slack/") && path.length > "/slack/".length) return { name: "/slack/…", sink: "slack", method: "POST" };
    const control = {
      "/healthcheck": "GET",
      "/__sinks/datadog/series": "GET",
      "/__sinks/datadog/distributions": "GET",
      "/__sinks/datadog/logs": "GET",
      "/__sinks/slack": "GET",
      "/__sinks/reset": "POST",
      "/__sinks/faults": "POST",
    }[path];
    if (control) return { name: path, method: control };
    return { name: path.startsWith("/slack") ? "/slack/…" : path, method: null };
  }

  async function route(req, res, target) {
    const path = (req.url ?? "/").split(/[?#]/)[0];
    if (!target.method) {
      req.resume();
      throw new HttpError(404, { error: "not_found" });
    }
    if (req.method !== target.method) {
      req.resume();
      res.setHeader("allow", target.method);
      throw new HttpError(405, { error: "method_not_allowed" });
    }
    if (target.sink === "series" || target.sink === "distributions" || target.sink === "logs") {
      const { status, body } = await datadog(req, target.sink);
      return send(res, status, body);
    }
    if (target.sink === "slack") {
      const { status, body, contentType } = await slack(req);
      return send(res, status, body, contentType);
    }
    switch (path) {
      case "/healthcheck":
        return send(res, 200, { ok: true });
      case "/__sinks/datadog/series":
        return send(res, 200, view("series"));
      case "/__sinks/datadog/distributions":
        return send(res, 200, view("distributions"));
      case "/__sinks/datadog/logs":
        return send(res, 200, view("logs"));
      case "/__sinks/slack":
        return send(res, 200, view("slack"));
      case "/__sinks/reset":
        await readControl(req);
        reset();
        return send(res, 200, { ok: true });
      case "/__sinks/faults":
        return send(res, 200, setFaults(await readControl(req)));
      default:
        throw new HttpError(404, { error: "not_found" });
    }
  }

  async function handle(req, res) {
    const target = routeOf(req.method, (req.url ?? "/").split(/[?#]/)[0]);
    try {
      await route(req, res, target);
    } catch (error) {
      if (target.sink && req.method === "POST") refused[target.sink] += 1;
      if (res.headersSent) res.destroy();
      else if (error instanceof HttpError) send(res, error.status, error.body, error.contentType);
      else send(res, 500, { errors: [String(error?.message ?? error)] });
    } finally {
      log?.(`sinks ${req.method} ${target.name} ${res.statusCode}`);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  const url = `http://${host}:${actualPort}`;

  let closing;
  function close() {
    closing ??= new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  }

  return {
    url,
    port: actualPort,
    datadogUrl: `${url}/datadog`,
    slackUrl: `${url}/slack/T000/B000/XXXX`,
    jsonlPath,
    close,
    /** What was received so far, in arrival order (copies). */
    captured: () => ({ series: view("series").received, distributions: view("distributions").received, logs: view("logs").received, slack: view("slack").received }),
    reset,
    setFaults,
  };
}

// ---------------------------------------------------------------------------------------------
// CLI: SINKS_PORT=8790 [SINKS_LOG_DIR=dir] [SINKS_DATADOG_API_KEY=key] node sim/sinks/server.mjs

async function main() {
  const server = await startSinkServer({
    port: Number(process.env.SINKS_PORT ?? 8790),
    apiKey: process.env.SINKS_DATADOG_API_KEY || undefined,
    logDir: process.env.SINKS_LOG_DIR || artifactsDir(),
    log: (line) => console.log(line),
  });
  console.log(`sinks listening on ${server.url} (Datadog ${server.datadogUrl}, Slack ${server.url}/slack/…); received payloads in ${server.jsonlPath}`);
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

const isMain = (() => {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  main().catch((error) => {
    console.error(`sinks: ${error.message}`);
    process.exit(1);
  });
}
