/**
 * Client management over HTTP for automation, in the shape of RFC 7591 (dynamic registration) and
 * RFC 7592 (management): POST /register, GET/PUT/DELETE /register/{client_id}. Every call needs an
 * access token from this issuer for the audience `<issuer>/register` with the `tollgate:admin`
 * scope; the first admin client comes from the CLI. The rules are the CLI's (src/clients/manage.ts).
 * @see https://www.rfc-editor.org/rfc/rfc7591#section-3
 * @see https://www.rfc-editor.org/rfc/rfc7592#section-2
 */
import { Hono, type Context } from "hono";
import { readBodyCapped } from "../http/body.ts";
import { getConfig } from "../config.ts";
import { auditEvent } from "../http/audit.ts";
import { BearerError, NO_STORE, OAuthError, StoreUnavailableError } from "../http/errors.ts";
import { accessTokenOf, requireAccessToken } from "./access-token.ts";
import { refusalEvents, type AppEnv } from "./app-env.ts";
import { clientKey, ClientRecordError, describeClient, isValidClientId, type ClientRecord } from "../clients/record.ts";
import { createClientRecord, createKeyClientRecord, updateClientRecord, type ClientChanges } from "../clients/manage.ts";
import { findTrustedIssuer } from "../trusted-issuers.ts";
import { hasNoSecret, TOKEN_ENDPOINT_AUTH_METHODS, usesAssertion, type TokenEndpointAuthMethod } from "../clients/record.ts";
import { isAllowedRemoteUrl } from "../keys/remote-key-set.ts";
import { loadClient } from "../clients/store.ts";
import { KV_CACHE_TTL_SECONDS } from "../policy.ts";
import { forgetClient } from "../client-auth/warm-records.ts";
import type { AccessTokenClaims } from "../tokens/mint.ts";
import { ADMIN_SCOPE, adminAudience } from "../tokens/admin.ts";

const MAX_BODY_BYTES = 16 * 1024;
const decoder = new TextDecoder();

export const register = new Hono<AppEnv>();

/** A refused admin token is logged as admin_denied. */
const adminRefusals = refusalEvents({ bearer: "admin_denied" });
/** Every call: an admin token, refused here when revoked or its client disabled or deleted, as at the gateway. */
const adminToken = requireAccessToken({
  audience: (_c, config) => adminAudience(config.issuer),
  scopes: () => [ADMIN_SCOPE],
  missing: "an access token with the tollgate:admin scope is required",
});

function invalidMetadata(description: string): OAuthError {
  // RFC 7591 §3.2.2
  return new OAuthError("invalid_client_metadata", description);
}

/** A member of the request's metadata of one JSON type, undefined when absent; else 400 invalid_client_metadata. */
type MemberOf<T> = (name: string) => T | undefined;

/** RFC 7591 §2 metadata (plus Tollgate's own members) → the CLI's change set. */
function changesFrom(body: Record<string, unknown>): ClientChanges {
  // RFC 7591 §2: metadata the server does not understand is ignored (read-only members of a
  // GET response included, so a RFC 7592 read-modify-write round trip works).
  const changes: ClientChanges = {};
  const member =
    <T>(type: string, what: string): MemberOf<T> =>
    (name) => {
      const v = body[name];
      if (v === undefined) return undefined;
      if (typeof v !== type) throw invalidMetadata(`${name} must be ${what}`);
      return v as T;
    };
  const string = member<string>("string", "a string");
  const boolean = member<boolean>("boolean", "true or false");
  const name = string("client_name");
  if (name !== undefined) changes.name = name;
  const scope = string("scope");
  if (scope !== undefined) changes.scope = scope;
  const defaultScope = string("default_scope");
  if (defaultScope !== undefined) changes.default_scope = defaultScope;
  if (body.grant_types !== undefined) {
    if (!Array.isArray(body.grant_types) || body.grant_types.some((g) => g !== "client_credentials")) {
      throw invalidMetadata('grant_types may only be ["client_credentials"]');
    }
  }
  Object.assign(changes, authenticationChanges(body, string, boolean));
  if (body.audience !== undefined) {
    if (!Array.isArray(body.audience) || !body.audience.every((a) => typeof a === "string"))
      throw invalidMetadata("audience must be an array of URIs");
    changes.audiences = body.audience as string[];
  }
  if (body.default_audience !== undefined) {
    if (body.default_audience !== null && typeof body.default_audience !== "string")
      throw invalidMetadata("default_audience must be a URI or null");
    changes.default_audience = body.default_audience as string | null;
  }
  if (body.access_token_ttl !== undefined) {
    if (body.access_token_ttl !== null && !Number.isSafeInteger(body.access_token_ttl))
      throw invalidMetadata("access_token_ttl must be whole seconds or null");
    changes.token_ttl = body.access_token_ttl as number | null;
  }
  for (const flag of ["disabled", "introspect_any", "dpop_bound_access_tokens"] as const) {
    const value = boolean(flag);
    if (value !== undefined) changes[flag] = value;
  }
  return changes;
}

/**
 * RFC 7591 §2: how the client authenticates. A private_key_jwt client names its public keys in
 * `jwks` or `jwks_uri` (the record's rules check them), or is a workload-identity client
 * (`federated_identity`); the token endpoint URL as an assertion audience is Tollgate's own
 * `allow_token_endpoint_audience`.
 */
function authenticationChanges(body: Record<string, unknown>, string: MemberOf<string>, boolean: MemberOf<boolean>): ClientChanges {
  const changes: ClientChanges = {};
  const method = string("token_endpoint_auth_method");
  if (method !== undefined) {
    if (!(TOKEN_ENDPOINT_AUTH_METHODS as readonly string[]).includes(method))
      throw invalidMetadata(`token_endpoint_auth_method must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(", ")}`);
    changes.token_endpoint_auth_method = method as TokenEndpointAuthMethod;
  }
  if (body.jwks !== undefined && body.jwks_uri !== undefined) throw invalidMetadata("send jwks or jwks_uri, not both (RFC 7591 §2)");
  if (body.jwks !== undefined) changes.jwks = body.jwks;
  const jwksUri = string("jwks_uri");
  if (jwksUri !== undefined) changes.jwks_uri = jwksUri;
  const tokenEndpointAudience = boolean("allow_token_endpoint_audience");
  if (tokenEndpointAudience !== undefined) changes.allow_token_endpoint_audience = tokenEndpointAudience;
  // Tollgate's own member (workload identity federation), checked by the record's rules; its
  // assertion is the workload's platform token, so the method is private_key_jwt unless sent.
  if (body.federated_identity !== undefined) {
    changes.federated_identity = body.federated_identity;
    changes.token_endpoint_auth_method ??= "private_key_jwt";
  }
  // RFC 8705 §2.1.2 and §3.4 (the record's rules check them).
  const subjectDN = string("tls_client_auth_subject_dn");
  if (subjectDN !== undefined) changes.tls_client_auth_subject_dn = subjectDN;
  const certificateBound = boolean("tls_client_certificate_bound_access_tokens");
  if (certificateBound !== undefined) changes.tls_client_certificate_bound_access_tokens = certificateBound;
  return changes;
}

/** A federated record's issuer must be one this Worker trusts now (TRUSTED_ISSUERS); else 400 invalid_client_metadata. */
function requireTrustedIssuer(env: Env, record: ClientRecord): void {
  const issuer = record.federated_identity?.issuer;
  if (issuer !== undefined && !findTrustedIssuer(getConfig(env).trustedIssuers, issuer)) {
    throw invalidMetadata(`federated_identity.issuer: ${issuer} is not one of TRUSTED_ISSUERS`);
  }
}

/** A jwks_uri this Worker would fetch: https, or loopback http while ISSUER is loopback too. */
function checkJwksUri(changes: ClientChanges, issuer: string): void {
  if (changes.jwks_uri !== undefined && !isAllowedRemoteUrl(changes.jwks_uri, issuer))
    throw invalidMetadata("jwks_uri must be an https URL (http only to a loopback host while the issuer is one)");
}

async function readJSON(request: Request): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/i.test(request.headers.get("Content-Type") ?? "")) {
    throw new OAuthError("invalid_request", "the request body must be application/json");
  }
  const bytes = await readBodyCapped(request, MAX_BODY_BYTES);
  if (!bytes) throw new OAuthError("invalid_request", `the request body exceeds ${MAX_BODY_BYTES} bytes`, { status: 413 });
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new OAuthError("invalid_request", "the request body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalidMetadata("the client metadata must be a JSON object");
  return value as Record<string, unknown>;
}

/** RFC 7591 §3.2.1 / RFC 7592 §3: the client information response (never a stored hash). */
function clientInformation(issuer: string, record: ClientRecord): Record<string, unknown> {
  const {
    client_id,
    name,
    allowed_scopes,
    default_scopes,
    allowed_audiences,
    default_audience,
    grant_types,
    token_ttl,
    disabled,
    created_at,
    introspect_any,
    dpop_bound_access_tokens,
  } = record;
  return {
    client_id,
    client_id_issued_at: created_at,
    // RFC 7591 §3.2.1: only a client that has a secret gets its expiry.
    ...(hasNoSecret(record) ? {} : { client_secret_expires_at: 0 }),
    client_name: name,
    scope: allowed_scopes.join(" "),
    default_scope: default_scopes.join(" "),
    grant_types,
    ...authenticationInformation(record),
    audience: allowed_audiences,
    default_audience,
    access_token_ttl: token_ttl,
    disabled,
    introspect_any,
    dpop_bound_access_tokens,
    ...(hasNoSecret(record) ? {} : { secrets: describeClient(record).secrets }),
    registration_client_uri: `${issuer}/register/${encodeURIComponent(client_id)}`,
  };
}

/** RFC 7591 §2: the method, and a private_key_jwt client's keys (public members only) and audience flag. */
function authenticationInformation(record: ClientRecord): Record<string, unknown> {
  const info: Record<string, unknown> = { token_endpoint_auth_method: record.token_endpoint_auth_method ?? "client_secret_basic" };
  if (record.jwks) info.jwks = record.jwks;
  if (record.jwks_uri) info.jwks_uri = record.jwks_uri;
  if (usesAssertion(record)) info.allow_token_endpoint_audience = record.allow_token_endpoint_audience === true;
  if (record.federated_identity) info.federated_identity = record.federated_identity;
  if (record.tls_client_auth_subject_dn !== undefined) info.tls_client_auth_subject_dn = record.tls_client_auth_subject_dn;
  info.tls_client_certificate_bound_access_tokens = record.tls_client_certificate_bound_access_tokens === true;
  return info;
}

/** A change under the CLI's rules (src/clients/manage.ts); a rule it breaks is 400 invalid_client_metadata. */
async function underTheRules<T>(change: () => T | Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (error instanceof ClientRecordError) throw invalidMetadata(error.message);
    throw error;
  }
}

async function writeRecord(kv: KVNamespace, record: ClientRecord): Promise<void> {
  try {
    await kv.put(clientKey(record.client_id), JSON.stringify(record));
  } catch (error) {
    throw new StoreUnavailableError("client", "write", error);
  }
  // Elsewhere the change reaches /token within REVOCATION_BOUND_SECONDS (src/policy.ts); in this isolate, at once.
  forgetClient(record.client_id);
}

register.post("/", adminRefusals, adminToken, async (c) => {
  const claims = accessTokenOf(c);
  const { issuer, pbkdf2Iterations } = getConfig(c.env);
  const body = await readJSON(c.req.raw);
  const requestedId = body.client_id;
  if (requestedId !== undefined && (typeof requestedId !== "string" || !isValidClientId(requestedId))) {
    throw invalidMetadata("client_id must be 1-128 visible ASCII characters without spaces, and not . or .. (nor either written with %2e)");
  }
  if (body.client_secret !== undefined) throw invalidMetadata("client_secret is generated by the server");
  const clientId = (requestedId as string | undefined) ?? crypto.randomUUID();
  if (await loadClient(c.env.CLIENTS, clientId, { cacheTtl: KV_CACHE_TTL_SECONDS }))
    throw invalidMetadata(`client ${clientId} already exists`);
  const changes = changesFrom(body);
  checkJwksUri(changes, issuer);
  const now = Math.floor(Date.now() / 1000);
  // A private_key_jwt or mTLS client gets no secret: its keys or its certificate are its credentials.
  const { record, clientSecret } = await underTheRules<{ record: ClientRecord; clientSecret?: string }>(() =>
    hasNoSecret({ token_endpoint_auth_method: changes.token_endpoint_auth_method })
      ? { record: createKeyClientRecord(clientId, changes, now), clientSecret: undefined }
      : createClientRecord(clientId, changes, now, { iterations: pbkdf2Iterations }),
  );
  requireTrustedIssuer(c.env, record);
  await writeRecord(c.env.CLIENTS, record);
  auditEvent(c.env, "client_registered", { admin: claims.client_id, client_id: clientId, jti: claims.jti });
  const secret = clientSecret === undefined ? {} : { client_secret: clientSecret };
  return c.json({ ...clientInformation(issuer, record), ...secret }, 201, NO_STORE);
});

/** The admin token's claims and the record the URL names; an unknown client is 401 (RFC 7592 §2.1). */
async function authorizeForClient(c: Context<AppEnv>): Promise<{ claims: AccessTokenClaims; record: ClientRecord }> {
  const claims = accessTokenOf(c);
  const clientId = c.req.param("client_id")!;
  const record = await loadClient(c.env.CLIENTS, clientId, { cacheTtl: KV_CACHE_TTL_SECONDS });
  if (!record) throw new BearerError("invalid_token", "no such client for this token", { reason: `unknown client ${clientId}` });
  return { claims, record };
}

// One handler per method: HEAD is dispatched to the GET handler (Hono answers it without the body,
// RFC 9110 §9.3.2), so it can never reach a handler that writes.
register.get("/:client_id", adminRefusals, adminToken, async (c) => {
  const { record } = await authorizeForClient(c);
  return c.json(clientInformation(getConfig(c.env).issuer, record), 200, NO_STORE);
});

register.delete("/:client_id", adminRefusals, adminToken, async (c) => {
  const { claims, record } = await authorizeForClient(c);
  const clientId = record.client_id;
  try {
    await c.env.CLIENTS.delete(clientKey(clientId));
  } catch (error) {
    throw new StoreUnavailableError("client", "delete", error);
  }
  forgetClient(clientId);
  auditEvent(c.env, "client_deleted", { admin: claims.client_id, client_id: clientId, jti: claims.jti });
  return c.body(null, 204, NO_STORE);
});

register.put("/:client_id", adminRefusals, adminToken, async (c) => {
  const { claims, record } = await authorizeForClient(c);
  const clientId = record.client_id;
  const body = await readJSON(c.req.raw);
  // RFC 7592 §2.2: the body carries the client_id, and may not choose a secret.
  if (body.client_id !== clientId) throw invalidMetadata("client_id in the body must match the URL");
  if (body.client_secret !== undefined) throw invalidMetadata("client_secret cannot be set; rotate it with the CLI");
  // RFC 7592 §2.2: PUT replaces the metadata; a field left out goes back to its default.
  // `disabled` is a security state, not metadata: it changes only when sent.
  const changes: ClientChanges = {
    name: clientId,
    scope: "",
    audiences: [],
    default_audience: null,
    token_ttl: null,
    introspect_any: false,
    dpop_bound_access_tokens: false,
    tls_client_certificate_bound_access_tokens: false,
    // A private_key_jwt client's keys (an mTLS client's subject or certificates) stay unless sent (like `disabled`, a credential is no default).
    ...(usesAssertion(record) ? { allow_token_endpoint_audience: false } : {}),
    ...changesFrom(body),
  };
  changes.default_scope ??= changes.scope;
  checkJwksUri(changes, getConfig(c.env).issuer);
  const updated = await underTheRules(() => updateClientRecord(record, changes, Math.floor(Date.now() / 1000)));
  // A newly named issuer must be trusted now; one trusted before and since dropped only stops working.
  if (updated.federated_identity?.issuer !== record.federated_identity?.issuer) requireTrustedIssuer(c.env, updated);
  await writeRecord(c.env.CLIENTS, updated);
  auditEvent(c.env, "client_updated", { admin: claims.client_id, client_id: clientId, jti: claims.jti });
  return c.json(clientInformation(getConfig(c.env).issuer, updated), 200, NO_STORE);
});

// Every other method, OPTIONS included: 405 naming what the resource serves (RFC 9110 §15.5.6).
register.all("/", () => {
  throw new OAuthError("invalid_request", "registration accepts only POST", { status: 405, headers: { Allow: "POST" } });
});
register.all("/:client_id", () => {
  throw new OAuthError("invalid_request", "client management accepts GET, HEAD, PUT and DELETE", {
    status: 405,
    headers: { Allow: "GET, HEAD, PUT, DELETE" },
  });
});
