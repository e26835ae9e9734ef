/**
 * The rules for creating and changing client records, shared by every writer (the CLI and the
 * admin API), so that what one accepts the other accepts too.
 */
import {
  ClientRecordError,
  generateInstanceId,
  isValidClientId,
  parseScope,
  hasNoSecret,
  validateClientRecord,
  validateFederatedIdentity,
  type ClientRecord,
  type TokenEndpointAuthMethod,
} from "./record.ts";
import { DEFAULT_PBKDF2_ITERATIONS, generateClientSecret, hashClientSecret } from "./secret.ts";

export interface ClientChanges {
  name?: string;
  /** Space-delimited scope tokens the client may request. */
  scope?: string;
  /** Space-delimited; defaults to every allowed scope. */
  default_scope?: string;
  audiences?: string[];
  default_audience?: string | null;
  token_ttl?: number | null;
  disabled?: boolean;
  /** RFC 7662: whether the client may introspect other clients' tokens. */
  introspect_any?: boolean;
  // --- How the client authenticates (private_key_jwt) ---
  /** Chosen at creation (default client_secret_basic); it cannot change afterwards. */
  token_endpoint_auth_method?: TokenEndpointAuthMethod;
  /** A JWK Set of public keys (replaces jwks_uri). */
  jwks?: unknown;
  /** Where the keys are fetched (replaces jwks). */
  jwks_uri?: string;
  allow_token_endpoint_audience?: boolean;
  /** RFC 9449 §5.2: whether the client must send a DPoP proof (and gets only DPoP-bound tokens). */
  dpop_bound_access_tokens?: boolean;
  /** Workload identity federation (record.ts, FederatedIdentity): replaces jwks and jwks_uri (and they replace it). */
  federated_identity?: unknown;
  // --- Mutual TLS (RFC 8705) ---
  /** tls_client_auth: the certificate subject DN (RFC 4514 string, as Cloudflare reports it). */
  tls_client_auth_subject_dn?: string;
  /** RFC 8705 §3.4: bind every token to the client certificate presented at /token. */
  tls_client_certificate_bound_access_tokens?: boolean;
}

/** How a new secret is hashed: PBKDF2_ITERATIONS of the Worker that will verify it. */
export interface SecretOptions {
  /** PBKDF2 iterations for the new secret's hash; DEFAULT_PBKDF2_ITERATIONS when omitted. */
  iterations?: number;
}

/** The default grace period for the old secret after a rotation. */
export const DEFAULT_SECRET_GRACE_SECONDS = 24 * 3600;

function scopes(value: string, field: string): string[] {
  const parsed = parseScope(value.trim().replace(/\s+/g, " "));
  if (!parsed)
    throw new ClientRecordError(`${field}: ${JSON.stringify(value)} is not a space-delimited list of scope tokens (RFC 6749 §3.3)`);
  return parsed;
}

function apply(record: ClientRecord, changes: ClientChanges): ClientRecord {
  const next = { ...record };
  if (changes.name !== undefined) next.name = changes.name;
  if (changes.scope !== undefined) {
    next.allowed_scopes = scopes(changes.scope, "scope");
    // Narrowing the allowance narrows the defaults with it unless they are given too.
    if (changes.default_scope === undefined) next.default_scopes = next.default_scopes.filter((s) => next.allowed_scopes.includes(s));
  }
  if (changes.default_scope !== undefined) next.default_scopes = scopes(changes.default_scope, "default_scope");
  if (changes.audiences !== undefined) {
    next.allowed_audiences = changes.audiences;
    if (next.default_audience !== null && !changes.audiences.includes(next.default_audience)) next.default_audience = null;
  }
  if (changes.default_audience !== undefined) {
    next.default_audience = changes.default_audience;
    // A default audience must be allowed: naming one allows it, keeping the others.
    if (changes.default_audience !== null && !next.allowed_audiences.includes(changes.default_audience)) {
      next.allowed_audiences = [...next.allowed_audiences, changes.default_audience];
    }
  }
  if (changes.token_ttl !== undefined) next.token_ttl = changes.token_ttl;
  if (changes.disabled !== undefined) next.disabled = changes.disabled;
  if (changes.introspect_any !== undefined) next.introspect_any = changes.introspect_any;
  applyKeys(next, changes);
  if (changes.dpop_bound_access_tokens !== undefined) next.dpop_bound_access_tokens = changes.dpop_bound_access_tokens;
  if (changes.tls_client_auth_subject_dn !== undefined) next.tls_client_auth_subject_dn = changes.tls_client_auth_subject_dn;
  if (changes.tls_client_certificate_bound_access_tokens !== undefined)
    next.tls_client_certificate_bound_access_tokens = changes.tls_client_certificate_bound_access_tokens;
  return next;
}

/** The client's keys: one source (jwks, jwks_uri, federated_identity) replaces another (validateClientRecord checks the result). */
function applyKeys(next: ClientRecord, changes: ClientChanges): void {
  if (changes.token_endpoint_auth_method !== undefined && changes.token_endpoint_auth_method !== next.token_endpoint_auth_method) {
    const from = next.token_endpoint_auth_method ?? "client_secret_basic";
    // Between the two secret methods nothing changes (a secret is sent either way); to or from an assertion or a certificate it would.
    if (hasNoSecret(next) || hasNoSecret({ token_endpoint_auth_method: changes.token_endpoint_auth_method }))
      throw new ClientRecordError(
        `token_endpoint_auth_method: ${from} cannot change to ${changes.token_endpoint_auth_method}; create a new client`,
      );
    next.token_endpoint_auth_method = changes.token_endpoint_auth_method;
  }
  if (changes.jwks !== undefined) {
    next.jwks = changes.jwks as ClientRecord["jwks"];
    delete next.jwks_uri;
    delete next.federated_identity;
  }
  if (changes.jwks_uri !== undefined) {
    next.jwks_uri = changes.jwks_uri;
    delete next.jwks;
    delete next.federated_identity;
  }
  if (changes.allow_token_endpoint_audience !== undefined) next.allow_token_endpoint_audience = changes.allow_token_endpoint_audience;
  if (changes.federated_identity !== undefined) {
    next.federated_identity = validateFederatedIdentity(changes.federated_identity);
    delete next.jwks;
    delete next.jwks_uri;
  }
}

/** A client with nothing allowed and no secret: what createClientRecord starts from (the CLI checks input against it). */
export function blankClientRecord(clientId: string, now: number): ClientRecord {
  return {
    client_id: clientId,
    name: clientId,
    allowed_scopes: [],
    default_scopes: [],
    allowed_audiences: [],
    default_audience: null,
    grant_types: ["client_credentials"],
    token_ttl: null,
    disabled: false,
    introspect_any: false,
    dpop_bound_access_tokens: false,
    // A fresh instance: tokens of a deleted record under the same id are never this one's.
    instance_id: generateInstanceId(),
    tokens_not_before: now,
    secrets: [],
    created_at: now,
    updated_at: now,
  };
}

function checkNewClientId(clientId: string): void {
  if (!isValidClientId(clientId))
    throw new ClientRecordError(
      "client_id: must be 1-128 visible ASCII characters without spaces, and not . or .. (nor either written with %2e)",
    );
}

/** A new client as `changes` describe it, with no secret yet (validated by the caller). */
function draftClientRecord(clientId: string, changes: ClientChanges, now: number, method: TokenEndpointAuthMethod): ClientRecord {
  checkNewClientId(clientId);
  const allowed = scopes(changes.scope ?? "", "scope");
  const blank = {
    ...blankClientRecord(clientId, now),
    token_endpoint_auth_method: method,
    allowed_scopes: allowed,
    default_scopes: allowed,
  };
  return apply(blank, { ...changes, scope: undefined, token_endpoint_auth_method: undefined });
}

/** A new client with one fresh secret; the secret is returned once and stored only as a hash. */
export async function createClientRecord(
  clientId: string,
  changes: ClientChanges,
  now: number,
  { iterations = DEFAULT_PBKDF2_ITERATIONS }: SecretOptions = {},
): Promise<{ record: ClientRecord; clientSecret: string }> {
  const method = changes.token_endpoint_auth_method ?? "client_secret_basic";
  if (hasNoSecret({ token_endpoint_auth_method: method }))
    throw new ClientRecordError(`token_endpoint_auth_method: a ${method} client has no secret`);
  const draft = draftClientRecord(clientId, changes, now, method);
  const { id, secret } = generateClientSecret();
  draft.secrets = [{ id, hash: await hashClientSecret(secret, iterations), created_at: now, expires_at: null }];
  return { record: validateClientRecord(draft), clientSecret: secret };
}

/**
 * A new client without a secret: private_key_jwt (RFC 7523 §2.2), its public keys in `changes.jwks`
 * or at `changes.jwks_uri`, or its platform's token as its assertion (`changes.federated_identity`);
 * or, when `changes.token_endpoint_auth_method` names one, an RFC 8705 client: tls_client_auth with
 * `changes.tls_client_auth_subject_dn`, self_signed_tls_client_auth with its certificates in `changes.jwks`.
 */
export function createKeyClientRecord(clientId: string, changes: ClientChanges, now: number): ClientRecord {
  const method = changes.token_endpoint_auth_method ?? "private_key_jwt";
  if (!hasNoSecret({ token_endpoint_auth_method: method }))
    throw new ClientRecordError(`token_endpoint_auth_method: a ${method} client has a secret`);
  return validateClientRecord(draftClientRecord(clientId, changes, now, method));
}

/**
 * Ends every token issued so far: a new instance id, which no earlier token carries (even one an
 * isolate mints later from a stale copy of the record), and, for tokens from before instance ids,
 * the time cut-off: tokens of the current second on are the new ones.
 */
const endTokens = (now: number): Pick<ClientRecord, "instance_id" | "tokens_not_before"> => ({
  instance_id: generateInstanceId(),
  tokens_not_before: now + 1,
});

export function updateClientRecord(record: ClientRecord, changes: ClientChanges, now: number): ClientRecord {
  const next = apply(record, changes);
  // Disabling ends every token issued so far; enabling again does not bring them back.
  if (changes.disabled === true && !record.disabled) Object.assign(next, endTokens(now));
  return validateClientRecord({ ...next, updated_at: now });
}

/**
 * Adds a new secret; every secret still valid keeps working for `graceSeconds` more (0 = ends now),
 * then only the new one does. Secrets already expired are dropped.
 */
export async function rotateClientSecret(
  record: ClientRecord,
  graceSeconds: number,
  now: number,
  { iterations = DEFAULT_PBKDF2_ITERATIONS }: SecretOptions = {},
): Promise<{ record: ClientRecord; clientSecret: string; secretId: string }> {
  if (!Number.isSafeInteger(graceSeconds) || graceSeconds < 0) throw new ClientRecordError("grace: must be whole seconds >= 0");
  if (hasNoSecret(record))
    throw new ClientRecordError(`secret: ${record.client_id} authenticates with ${record.token_endpoint_auth_method} and has no secret`);
  const { id, secret } = generateClientSecret();
  const until = now + graceSeconds;
  const kept = record.secrets
    .filter((s) => s.expires_at === null || s.expires_at > now)
    .map((s) => ({ ...s, expires_at: s.expires_at === null ? until : Math.min(s.expires_at, until) }))
    .filter((s) => s.expires_at > now);
  const secrets = [...kept, { id, hash: await hashClientSecret(secret, iterations), created_at: now, expires_at: null }];
  return { record: validateClientRecord({ ...record, secrets, updated_at: now }), clientSecret: secret, secretId: id };
}

/** Ends one secret at once, by id, and every token issued before (it may have leaked). */
export function revokeClientSecret(record: ClientRecord, secretId: string, now: number): ClientRecord {
  if (!record.secrets.some((s) => s.id === secretId))
    throw new ClientRecordError(`secret: ${secretId} is not a secret of ${record.client_id}`);
  // A revoked secret may have leaked: the tokens minted so far go with it.
  return validateClientRecord({ ...record, secrets: record.secrets.filter((s) => s.id !== secretId), ...endTokens(now), updated_at: now });
}
