/**
 * The rules for creating and changing client records, shared by every writer (the CLI and the
 * admin API), so that what one accepts the other accepts too.
 */
import {
  ClientRecordError,
  generateInstanceId,
  isValidClientId,
  parseScope,
  validateClientRecord,
  validateFederatedIdentity,
  type ClientRecord,
  type StoredSecret,
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
  /** Workload identity federation (record.ts, FederatedIdentity); null removes it. */
  federated_identity?: unknown;
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
  if (changes.federated_identity === null) delete next.federated_identity;
  else if (changes.federated_identity !== undefined) next.federated_identity = validateFederatedIdentity(changes.federated_identity);
  return next;
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
    // A fresh instance: tokens of a deleted record under the same id are never this one's.
    instance_id: generateInstanceId(),
    tokens_not_before: now,
    secrets: [],
    created_at: now,
    updated_at: now,
  };
}

/** A new client with one fresh secret; the secret is returned once and stored only as a hash. */
export async function createClientRecord(
  clientId: string,
  changes: ClientChanges,
  now: number,
  { iterations = DEFAULT_PBKDF2_ITERATIONS }: SecretOptions = {},
): Promise<{ record: ClientRecord; clientSecret: string }> {
  const { id, secret } = generateClientSecret();
  const stored = { id, hash: await hashClientSecret(secret, iterations), created_at: now, expires_at: null };
  return { record: newClientRecord(clientId, changes, now, [stored]), clientSecret: secret };
}

/** A new client of `changes` with these secrets, checked by every rule. */
function newClientRecord(clientId: string, changes: ClientChanges, now: number, secrets: StoredSecret[]): ClientRecord {
  if (!isValidClientId(clientId))
    throw new ClientRecordError(
      "client_id: must be 1-128 visible ASCII characters without spaces, and not . or .. (nor either written with %2e)",
    );
  const allowed = scopes(changes.scope ?? "", "scope");
  const draft = apply(
    { ...blankClientRecord(clientId, now), allowed_scopes: allowed, default_scopes: allowed, secrets },
    { ...changes, scope: undefined },
  );
  return validateClientRecord(draft);
}

/**
 * A new workload-identity client: `changes.federated_identity` is required, and no secret exists
 * (it authenticates with its platform's token, src/client-auth/federation.ts).
 */
export function createFederatedClientRecord(clientId: string, changes: ClientChanges, now: number): ClientRecord {
  if (changes.federated_identity === undefined || changes.federated_identity === null) {
    throw new ClientRecordError("federated_identity: required for a federated client");
  }
  return newClientRecord(clientId, changes, now, []);
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
