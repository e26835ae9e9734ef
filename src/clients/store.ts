/**
 * Reads client records from Workers KV (docs/storage.md) and authenticates a client against them.
 */
import { OAuthError } from "../errors.ts";
import { activeSecret, clientKey, isWellFormedClientId, validateClientRecord, type ClientRecord } from "./record.ts";
import { dummySecretHash, verifyClientSecret } from "./secret.ts";
import { isKnownGoodSecret, rememberGoodSecret, secretCacheKey } from "./secret-cache.ts";

/** KV unreachable: 503, nothing issued or changed; the cause goes to the log (docs/security.md item 22). */
export function storeUnavailable(operation: string, error: unknown): OAuthError {
  return new OAuthError("temporarily_unavailable", "the client store is unavailable, try again later", {
    reason: `KV ${operation} failed: ${(error as Error).message}`,
  });
}

/** Records validated in this isolate, by their exact stored text (bounded; read-only objects). */
const parsed = new Map<string, ClientRecord>();
const PARSED_MAX_ENTRIES = 1024;

/**
 * The record for `clientId`, or null. KV unreachable → 503; a corrupt record → 500, both logged.
 * `cacheTtl` bounds how long KV's edge cache may answer with an older value (default 60 s).
 */
export async function loadClient(kv: KVNamespace, clientId: string, options: { cacheTtl?: number } = {}): Promise<ClientRecord | null> {
  // An id no record can have is unknown without asking KV (whose keys stop at 512 bytes).
  if (!isWellFormedClientId(clientId)) return null;
  let value: string | null;
  try {
    value = await kv.get(clientKey(clientId), options.cacheTtl === undefined ? { type: "text" } : { type: "text", cacheTtl: options.cacheTtl });
  } catch (error) {
    throw storeUnavailable("read", error);
  }
  if (value === null) return null;
  const known = parsed.get(value);
  if (known) return known;
  try {
    const record = Object.freeze(validateClientRecord(JSON.parse(value)));
    parsed.set(value, record);
    if (parsed.size > PARSED_MAX_ENTRIES) parsed.delete(parsed.keys().next().value!);
    return record;
  } catch (error) {
    throw new OAuthError("server_error", "the client record could not be read", {
      reason: `corrupt record for ${clientId}: ${(error as Error).message}`,
    });
  }
}

export type AuthenticationResult =
  | { ok: true; record: ClientRecord }
  | { ok: false; reason: string };

/**
 * Checks a presented secret. Every failing path pays exactly one PBKDF2: the stored hash's, or for
 * an unknown client or secret id a dummy hash at `iterations` (PBKDF2_ITERATIONS, the count new
 * secrets are hashed with), so an unknown client, an unknown or expired secret, a wrong secret and a
 * disabled client take the same time and get the same answer (docs/security.md item 16, CWE-208).
 * Only a secret this isolate has already verified for the unchanged record skips the PBKDF2
 * (secret-cache.ts).
 */
export async function authenticateClient(
  record: ClientRecord | null,
  clientSecret: string,
  now: number,
  iterations: number,
): Promise<AuthenticationResult> {
  const stored = record ? activeSecret(record, clientSecret, now) : undefined;
  // Only an enabled client's secret is remembered: a disabled one must keep costing a PBKDF2, so
  // even a caller holding its secret cannot tell "disabled" from "wrong" by timing. Disabling
  // changes updated_at, which drops any entry made before.
  const cacheKey = record && stored && !record.disabled ? secretCacheKey(record.client_id, stored.hash, record.updated_at) : undefined;
  let matches = cacheKey !== undefined && (await isKnownGoodSecret(cacheKey, clientSecret));
  if (!matches) {
    matches = await verifyClientSecret(clientSecret, stored?.hash ?? dummySecretHash(iterations));
    if (matches && cacheKey !== undefined) await rememberGoodSecret(cacheKey, clientSecret);
  }
  if (!record) return { ok: false, reason: "unknown client" };
  if (!stored) return { ok: false, reason: "unknown or expired secret id" };
  if (!matches) return { ok: false, reason: "wrong secret" };
  if (record.disabled) return { ok: false, reason: "client disabled" };
  return { ok: true, record };
}
