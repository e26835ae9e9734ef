/**
 * The client record kept in Workers KV under `client:{client_id}` (docs/storage.md), and the rules
 * every writer (the CLI, the admin API) and reader (the Worker) applies to it. Pure TypeScript with no
 * runtime dependency, so the CLI runs it under Node as it is.
 */
import { encodeBase64Url, parseSecretHash, secretIdOf } from "./secret.ts";
import { isWellFormedJwksUri, parseClientJWKS, type ClientJWKS } from "./client-keys.ts";

export const GRANT_TYPES = ["client_credentials"] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export interface StoredSecret {
  /** Public id, also the prefix of the secret itself (`<id>.<random>`). */
  id: string;
  /** `pbkdf2-sha256$<iterations>$<salt>$<hash>` */
  hash: string;
  created_at: number;
  /** Epoch seconds after which this secret no longer authenticates; null = no expiry. */
  expires_at: number | null;
}

export interface ClientRecord {
  client_id: string;
  name: string;
  allowed_scopes: string[];
  default_scopes: string[];
  /** Audiences (RFC 8707 resources) the client may ask for; empty = the Worker's DEFAULT_AUDIENCE. */
  allowed_audiences: string[];
  /** Audience when the request names none; null = the first allowed one, else DEFAULT_AUDIENCE. */
  default_audience: string | null;
  grant_types: GrantType[];
  /** Token lifetime in seconds; null = the Worker's ACCESS_TOKEN_TTL. Capped by MAX_ACCESS_TOKEN_TTL. */
  token_ttl: number | null;
  disabled: boolean;
  /** RFC 7662: may introspect every token of this issuer, not only its own. Absent in older records: false. */
  introspect_any: boolean;
  /**
   * RFC 9449 §5.2: /token issues this client DPoP-bound tokens only, and refuses a request without a
   * DPoP proof. Absent in older records: false.
   */
  dpop_bound_access_tokens: boolean;
  /**
   * Random id of this incarnation of the record, carried by every token issued under it (claim
   * `tg_inst`) and compared on every use: a new one at creation, when the client is disabled
   * and when a secret is revoked, so a re-created id, a re-enabled client or a revoked secret never
   * brings old tokens back, whatever the clocks say. LEGACY_INSTANCE_ID ("") in records written
   * before the field existed, matching tokens without the claim.
   */
  instance_id: string;
  /**
   * Epoch seconds: a token without the instance claim issued before this is refused (gateway,
   * introspection); kept for tokens and records from before instance_id. Set at creation, when a
   * secret is revoked and when the client is disabled. Absent in older records: created_at.
   */
  tokens_not_before: number;
  secrets: StoredSecret[];
  created_at: number;
  updated_at: number;
  // --- How the client authenticates (private_key_jwt; docs/storage.md) ---
  /**
   * RFC 7591 §2. "client_secret_basic" and "client_secret_post": a secret, sent either way (as
   * node-oidc-provider accepts it); "private_key_jwt": a signed assertion only, and no secret.
   * Absent in records written before the field: a secret, by Basic or post, never an assertion.
   */
  token_endpoint_auth_method?: TokenEndpointAuthMethod;
  /** private_key_jwt: the client's public keys inline (RFC 7591 §2), public members only. */
  jwks?: ClientJWKS;
  /** private_key_jwt: where its keys are fetched (RFC 7591 §2); never with `jwks`. */
  jwks_uri?: string;
  /**
   * private_key_jwt: also accept the token endpoint URL as an assertion's `aud` (older libraries),
   * weaker than the issuer identifier alone (docs/security.md).
   */
  allow_token_endpoint_audience?: boolean;
  /** Workload identity federation: the external issuer and subject whose tokens authenticate this client. */
  federated_identity?: FederatedIdentity;
  // --- Mutual TLS (RFC 8705; docs/storage.md) ---
  /**
   * RFC 8705 §2.1.2: a `tls_client_auth` client's certificate subject, compared exactly with the
   * RFC 2253 string Cloudflare reports (`request.cf.tlsClientAuth.certSubjectDNRFC2253`).
   */
  tls_client_auth_subject_dn?: string;
  /**
   * RFC 8705 §3.4: every token of this client is bound to the certificate it presented at /token
   * (`cnf.x5t#S256`), and a request without one is refused. An mTLS-authenticated client's tokens
   * are bound whatever this says. Absent: false.
   */
  tls_client_certificate_bound_access_tokens?: boolean;
}

export const TOKEN_ENDPOINT_AUTH_METHODS = [
  "client_secret_basic",
  "client_secret_post",
  "private_key_jwt",
  "tls_client_auth",
  "self_signed_tls_client_auth",
] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** RFC 8705 §2: the two methods where the client certificate presented at the edge is the credential. */
const CERTIFICATE_AUTH_METHODS = ["tls_client_auth", "self_signed_tls_client_auth"] as const;

/** Whether a client authenticates with its TLS client certificate (and so has no secret). */
export function usesCertificate(record: Pick<ClientRecord, "token_endpoint_auth_method">): boolean {
  return (CERTIFICATE_AUTH_METHODS as readonly unknown[]).includes(record.token_endpoint_auth_method);
}

/** Whether a client has no secret: it authenticates with an assertion or a certificate. */
export function hasNoSecret(record: Pick<ClientRecord, "token_endpoint_auth_method">): boolean {
  return usesAssertion(record) || usesCertificate(record);
}
/** Whether a client authenticates with a signed assertion (and so has no secret). */
export function usesAssertion(record: Pick<ClientRecord, "token_endpoint_auth_method">): boolean {
  return record.token_endpoint_auth_method === "private_key_jwt";
}

export const CLIENT_KEY_PREFIX = "client:";
export const clientKey = (clientId: string): string => `${CLIENT_KEY_PREFIX}${clientId}`;

/** The instance of a record written before instance_id existed, and of a token without the claim. */
export const LEGACY_INSTANCE_ID = "";
const INSTANCE_ID = /^[A-Za-z0-9_-]{16,64}$/;

/** A new random instance id: 128 bits from the CSPRNG, base64url (22 characters). */
export function generateInstanceId(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** Longest token lifetime any record may ask for, whatever the Worker's cap. */
export const MAX_RECORD_TTL = 86_400;

/** Thrown for a record or an input that breaks a rule; the message names the field. */
export class ClientRecordError extends Error {
  override name = "ClientRecordError";
}

/** RFC 6749 §2.2: client_id is VSCHAR; we also refuse space so ids survive shells and logs. */
const CLIENT_ID = /^[\x21-\x7e]{1,128}$/;
/**
 * A dot segment, either dot possibly written %2e: RFC 3986 §5.2.4 and the WHATWG URL parser remove
 * it from a path, so `/register/{client_id}` would name the collection instead.
 */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;
/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * What a stored record's client_id may be (RFC 6749 §2.2 VSCHAR, 1-128, no space). Records written
 * before the dot-segment rule below pass, so they stay readable, usable and deletable.
 */
export function isWellFormedClientId(id: string): boolean {
  return CLIENT_ID.test(id);
}

/**
 * What a new client may be named: well-formed, and addressable as one URL path segment. Every other
 * id survives `encodeURIComponent` and URL normalization unchanged (test/endpoints/register.test.ts checks it
 * through the Worker); a dot segment is removed.
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-5.2.4
 */
export function isValidClientId(id: string): boolean {
  return CLIENT_ID.test(id) && !DOT_SEGMENT.test(id);
}

export function isValidScopeToken(token: string): boolean {
  return SCOPE_TOKEN.test(token);
}

/**
 * Splits a space-delimited scope string (RFC 6749 §3.3) into distinct tokens, in order.
 * Returns undefined when the syntax is wrong (empty tokens, forbidden characters).
 */
export function parseScope(scope: string): string[] | undefined {
  if (scope === "") return [];
  const tokens = scope.split(" ");
  if (!tokens.every(isValidScopeToken)) return undefined;
  return [...new Set(tokens)];
}

/** An absolute URI without a fragment, as RFC 8707 §2 requires of a resource. */
export function isValidAudience(value: string): boolean {
  if (value.length > 2048 || value.includes("#")) return false;
  try {
    return new URL(value).protocol.length > 1;
  } catch {
    return false;
  }
}

function fail(field: string, message: string): never {
  throw new ClientRecordError(`${field}: ${message}`);
}

function stringArray(value: unknown, field: string, check: (s: string) => boolean, what: string): string[] {
  if (!Array.isArray(value)) fail(field, "must be an array");
  for (const item of value) if (typeof item !== "string" || !check(item)) fail(field, `${JSON.stringify(item)} is not ${what}`);
  return [...new Set(value as string[])];
}

function epoch(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) fail(field, "must be epoch seconds");
  return value as number;
}

/** Checks an untrusted value (KV contents, CLI input) against every rule; throws naming the field. */
export function validateClientRecord(value: unknown): ClientRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("record", "must be a JSON object");
  const v = value as Record<string, unknown>;
  if (typeof v.client_id !== "string" || !isWellFormedClientId(v.client_id)) {
    fail("client_id", "must be 1-128 visible ASCII characters without spaces");
  }
  if (typeof v.name !== "string" || v.name.length > 200) fail("name", "must be a string of at most 200 characters");
  const allowedScopes = stringArray(v.allowed_scopes, "allowed_scopes", isValidScopeToken, "a scope token (RFC 6749 §3.3)");
  const defaultScopes = stringArray(v.default_scopes, "default_scopes", isValidScopeToken, "a scope token (RFC 6749 §3.3)");
  for (const s of defaultScopes) if (!allowedScopes.includes(s)) fail("default_scopes", `${s} is not in allowed_scopes`);
  const allowedAudiences = stringArray(v.allowed_audiences, "allowed_audiences", isValidAudience, "an absolute URI without fragment");
  const defaultAudience = v.default_audience ?? null;
  if (defaultAudience !== null && (typeof defaultAudience !== "string" || !allowedAudiences.includes(defaultAudience))) {
    fail("default_audience", "must be null or one of allowed_audiences");
  }
  const grantTypes = stringArray(
    v.grant_types,
    "grant_types",
    (g) => (GRANT_TYPES as readonly string[]).includes(g),
    `one of ${GRANT_TYPES.join(", ")}`,
  );
  const ttl = v.token_ttl ?? null;
  if (ttl !== null && (!Number.isSafeInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_RECORD_TTL)) {
    fail("token_ttl", `must be null or whole seconds from 1 to ${MAX_RECORD_TTL}`);
  }
  if (typeof v.disabled !== "boolean") fail("disabled", "must be true or false");
  // Records written before the field existed lack it; anything present must be a boolean.
  const introspectAny = v.introspect_any === undefined ? false : v.introspect_any;
  if (typeof introspectAny !== "boolean") fail("introspect_any", "must be true or false");
  const dpopBound = v.dpop_bound_access_tokens === undefined ? false : v.dpop_bound_access_tokens;
  if (typeof dpopBound !== "boolean") fail("dpop_bound_access_tokens", "must be true or false");
  // Absent (or "") in records written before the field existed: their tokens carry no claim.
  const instanceId = v.instance_id === undefined ? LEGACY_INSTANCE_ID : v.instance_id;
  if (typeof instanceId !== "string" || (instanceId !== LEGACY_INSTANCE_ID && !INSTANCE_ID.test(instanceId))) {
    fail("instance_id", "must be 16-64 base64url characters");
  }
  if (!Array.isArray(v.secrets)) fail("secrets", "must be an array");
  const ids = new Set<string>();
  const secrets = v.secrets.map((s: unknown, i: number): StoredSecret => {
    const field = `secrets[${i}]`;
    if (typeof s !== "object" || s === null) fail(field, "must be an object");
    const secret = s as Record<string, unknown>;
    if (typeof secret.id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(secret.id)) fail(`${field}.id`, "must be base64url");
    if (ids.has(secret.id)) fail(`${field}.id`, "is a duplicate");
    ids.add(secret.id);
    if (typeof secret.hash !== "string") fail(`${field}.hash`, "must be a string");
    try {
      parseSecretHash(secret.hash);
    } catch (error) {
      fail(`${field}.hash`, (error as Error).message);
    }
    const expiresAt = secret.expires_at ?? null;
    return {
      id: secret.id,
      hash: secret.hash,
      created_at: epoch(secret.created_at, `${field}.created_at`),
      expires_at: expiresAt === null ? null : epoch(expiresAt, `${field}.expires_at`),
    };
  });
  const createdAt = epoch(v.created_at, "created_at");
  const authentication = validateAuthentication(v, secrets.length);
  return {
    client_id: v.client_id,
    name: v.name,
    allowed_scopes: allowedScopes,
    default_scopes: defaultScopes,
    allowed_audiences: allowedAudiences,
    default_audience: defaultAudience as string | null,
    grant_types: grantTypes as GrantType[],
    token_ttl: ttl as number | null,
    disabled: v.disabled,
    introspect_any: introspectAny,
    dpop_bound_access_tokens: dpopBound,
    instance_id: instanceId,
    tokens_not_before: v.tokens_not_before === undefined ? createdAt : epoch(v.tokens_not_before, "tokens_not_before"),
    secrets,
    created_at: createdAt,
    updated_at: epoch(v.updated_at, "updated_at"),
    ...authentication,
  };
}

type AuthenticationFields = Pick<
  ClientRecord,
  | "token_endpoint_auth_method"
  | "jwks"
  | "jwks_uri"
  | "allow_token_endpoint_audience"
  | "federated_identity"
  | "tls_client_auth_subject_dn"
  | "tls_client_certificate_bound_access_tokens"
>;

/**
 * The fields that say how a client authenticates: a private_key_jwt client has no secret and exactly
 * one source of keys (`jwks`, `jwks_uri`, or a `federated_identity`); any other client has none of
 * them. Only the fields present are returned, so older records keep their shape.
 */
function validateAuthentication(v: Record<string, unknown>, secretCount: number): AuthenticationFields {
  const out: AuthenticationFields = {};
  const method = v.token_endpoint_auth_method;
  if (method !== undefined) {
    if (!(TOKEN_ENDPOINT_AUTH_METHODS as readonly unknown[]).includes(method))
      fail("token_endpoint_auth_method", `must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(", ")}`);
    out.token_endpoint_auth_method = method as TokenEndpointAuthMethod;
  }
  if (v.jwks !== undefined) {
    try {
      out.jwks = parseClientJWKS(v.jwks);
    } catch (error) {
      throw new ClientRecordError((error as Error).message);
    }
  }
  if (v.jwks_uri !== undefined) {
    if (typeof v.jwks_uri !== "string" || !isWellFormedJwksUri(v.jwks_uri))
      fail("jwks_uri", "must be an https URL without user, password or fragment (http only to localhost or 127.0.0.1)");
    out.jwks_uri = v.jwks_uri;
  }
  if (v.allow_token_endpoint_audience !== undefined) {
    if (typeof v.allow_token_endpoint_audience !== "boolean") fail("allow_token_endpoint_audience", "must be true or false");
    out.allow_token_endpoint_audience = v.allow_token_endpoint_audience;
  }
  if (v.federated_identity !== undefined) out.federated_identity = validateFederatedIdentity(v.federated_identity);
  const sources = [out.jwks && "jwks", out.jwks_uri && "jwks_uri", out.federated_identity && "federated_identity"].filter(Boolean);
  if (validateMutualTLS(v, out, secretCount)) return out;
  if (method === "private_key_jwt") {
    out.allow_token_endpoint_audience ??= false;
    if (secretCount > 0) fail("secrets", "a private_key_jwt client has no secrets");
    if (sources.length !== 1) fail("token_endpoint_auth_method", "private_key_jwt needs exactly one of jwks, jwks_uri, federated_identity");
  } else {
    if (sources.length > 0) fail(sources[0] as string, "only a private_key_jwt client has keys");
    if (out.allow_token_endpoint_audience) fail("allow_token_endpoint_audience", "applies to private_key_jwt clients only");
  }
  return out;
}

/** Longest subject DN a tls_client_auth record may name (X.509 names are far shorter in practice). */
const MAX_SUBJECT_DN_LENGTH = 1024;

/**
 * RFC 8705 §2: the mTLS fields. `tls_client_certificate_bound_access_tokens` is any client's; a
 * `tls_client_auth` client names its subject DN and has no secret and no keys; a
 * `self_signed_tls_client_auth` client has no secret and an inline `jwks` whose every key carries
 * its certificate (`x5c`, the first entry hashed at /token). Returns true when the method is one of
 * these two (and everything about it was checked here), false otherwise.
 */
function validateMutualTLS(v: Record<string, unknown>, out: AuthenticationFields, secretCount: number): boolean {
  const bound = v.tls_client_certificate_bound_access_tokens;
  if (bound !== undefined) {
    if (typeof bound !== "boolean") fail("tls_client_certificate_bound_access_tokens", "must be true or false");
    // Stored only when true: records without it (all older ones) compare equal to one that says false.
    if (bound) out.tls_client_certificate_bound_access_tokens = true;
  }
  const dn = v.tls_client_auth_subject_dn;
  const method = out.token_endpoint_auth_method;
  if (dn !== undefined) {
    if (method !== "tls_client_auth") fail("tls_client_auth_subject_dn", "applies to tls_client_auth clients only");
    const control = (text: string) => [...text].some((ch) => ch < " " || ch === "\x7f");
    if (typeof dn !== "string" || dn.trim() === "" || dn.length > MAX_SUBJECT_DN_LENGTH || control(dn))
      fail(
        "tls_client_auth_subject_dn",
        `must be a distinguished name (RFC 4514) of 1-${MAX_SUBJECT_DN_LENGTH} characters without control characters`,
      );
    out.tls_client_auth_subject_dn = dn;
  }
  if (method !== "tls_client_auth" && method !== "self_signed_tls_client_auth") return false;
  if (secretCount > 0) fail("secrets", `a ${method} client has no secrets`);
  if (out.jwks_uri || out.federated_identity) fail(out.jwks_uri ? "jwks_uri" : "federated_identity", `a ${method} client has none`);
  if (out.allow_token_endpoint_audience) fail("allow_token_endpoint_audience", "applies to private_key_jwt clients only");
  if (method === "tls_client_auth") {
    if (out.tls_client_auth_subject_dn === undefined) fail("tls_client_auth_subject_dn", "a tls_client_auth client needs one");
    if (out.jwks) fail("jwks", "only a private_key_jwt or self_signed_tls_client_auth client has keys");
  } else {
    if (!out.jwks) fail("jwks", "a self_signed_tls_client_auth client needs its certificates (x5c) in jwks");
    out.jwks.keys.forEach((key, i) => {
      if (!key.x5c) fail(`jwks.keys[${i}]`, "a self_signed_tls_client_auth key must carry its certificate in x5c");
    });
  }
  return true;
}

/** The record as shown to operators: secrets by id and age, never their hashes. */
export function describeClient(record: ClientRecord): Record<string, unknown> {
  const { secrets, ...rest } = record;
  return { ...rest, secrets: secrets.map(({ hash: _hash, ...s }) => s) };
}

/** The record's unexpired stored secret that `clientSecret` names by its id prefix, if any. */
export function activeSecret(record: ClientRecord, clientSecret: string, now: number): StoredSecret | undefined {
  const secretId = secretIdOf(clientSecret);
  return record.secrets.find((s) => s.id === secretId && (s.expires_at === null || s.expires_at > now));
}

/**
 * What binds a token to the record it was issued under: `tg_inst`, Tollgate's private claim
 * (RFC 7519 §4.3) carrying the record's instance_id, absent in tokens issued before it existed.
 */
export interface TokenBinding {
  iat: number;
  tg_inst?: string;
}

/**
 * Why a token was not issued under the current instance of `record` (it was deleted and re-created,
 * disabled, or lost a secret since), for the log; undefined when it was. The gateway, the admin API
 * and /introspect all ask this.
 */
export function staleTokenReason(record: Pick<ClientRecord, "instance_id" | "tokens_not_before">, token: TokenBinding): string | undefined {
  const instance = token.tg_inst ?? LEGACY_INSTANCE_ID;
  if (instance !== record.instance_id)
    return "issued under an earlier instance of the client's record (re-created, disabled, or a secret revoked since)";
  // A token and a record from before instance_id: the cut-off by time they had then.
  if (instance === LEGACY_INSTANCE_ID && token.iat < record.tokens_not_before)
    return `issued before the client's tokens_not_before (${record.tokens_not_before})`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Workload identity federation: the rules of `federated_identity` (src/client-auth/federation.ts
// applies them to a presented token).

/**
 * The token a federated client presents as its client_assertion: issued by `issuer` (one of
 * TRUSTED_ISSUERS when used) for `subject`, every claim condition met, with `audience` among its `aud`.
 */
export interface FederatedIdentity {
  /** The token's `iss`, exactly. */
  issuer: string;
  /** The token's `sub`, exactly (GitHub `repo:org/repo:environment:prod`, Kubernetes `system:serviceaccount:ns:sa`). */
  subject: string;
  /**
   * Exact-match string conditions on other claims, by claim name. A dotted name reaches into nested
   * objects, and a member name may itself hold dots: `kubernetes.io.namespace` is the `namespace`
   * member of the `kubernetes.io` claim (claimAt).
   */
  claims: Record<string, string>;
  /** The `aud` the workload must request; null = this server's ISSUER. */
  audience: string | null;
}

/** Claims with rules of their own, never a condition: the registered ones of RFC 7519 §4.1. */
const REGISTERED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]);
/** Dot-separated non-empty names; at most 16 segments. */
const CLAIM_NAME = /^[^.\s]{1,128}(?:\.[^.\s]{1,128}){0,15}$/;
const MAX_CLAIM_CONDITIONS = 32;

function boundedString(value: unknown, field: string, max: number): string {
  if (typeof value !== "string" || value === "" || value.length > max)
    fail(field, `must be a non-empty string of at most ${max} characters`);
  return value;
}

/** Checks `federated_identity` (KV contents, CLI or admin API input); throws naming the field. */
export function validateFederatedIdentity(value: unknown, field = "federated_identity"): FederatedIdentity {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(field, "must be an object");
  const v = value as Record<string, unknown>;
  for (const name of Object.keys(v)) {
    if (!["issuer", "subject", "claims", "audience"].includes(name))
      fail(`${field}.${name}`, "is not a field (issuer, subject, claims, audience)");
  }
  const issuer = boundedString(v.issuer, `${field}.issuer`, 2048);
  let url: URL | undefined;
  try {
    url = new URL(issuer);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || issuer.includes("#") || issuer.includes("?")) {
    fail(`${field}.issuer`, "must be the issuer's URL (its tokens' iss), without query or fragment");
  }
  const subject = boundedString(v.subject, `${field}.subject`, 1024);
  const claims: Record<string, string> = {};
  const rawClaims = v.claims ?? {};
  if (typeof rawClaims !== "object" || rawClaims === null || Array.isArray(rawClaims))
    fail(`${field}.claims`, "must be an object of name: value");
  const entries = Object.entries(rawClaims);
  if (entries.length > MAX_CLAIM_CONDITIONS) fail(`${field}.claims`, `has more than ${MAX_CLAIM_CONDITIONS} conditions`);
  for (const [name, claim] of entries) {
    // "__proto__" assigned below would set the prototype, and the condition would vanish unenforced.
    if (!CLAIM_NAME.test(name) || name === "__proto__")
      fail(`${field}.claims`, `${JSON.stringify(name)} is not a claim name (dot-separated, no spaces)`);
    if (REGISTERED_CLAIMS.has(name)) fail(`${field}.claims`, `${name} has its own rule (subject, audience), not a condition`);
    claims[name] = boundedString(claim, `${field}.claims.${name}`, 1024);
  }
  const audience = v.audience === undefined || v.audience === null ? null : boundedString(v.audience, `${field}.audience`, 2048);
  return { issuer, subject, claims, audience };
}
