/**
 * Whether a verified access token may still be used: it is not revoked (`revoked:{jti}`), its
 * client still exists and is enabled, and it was issued under the client record's current
 * instance (its `tg_inst` claim is the record's `instance_id`: staleTokenReason in
 * src/clients/record.ts), docs/storage.md. A signature says nothing about either, so the gateway
 * asks KV, and remembers both answers in this isolate, by jti and by client id, whether they
 * allowed or refused, for REVOCATION_CHECK_SECONDS.
 *
 * Worst case from a revocation or a disabled client to a refusal at every location, once KV's
 * central store has the write: KV_CACHE_TTL_SECONDS (KV's edge cache) + REVOCATION_CHECK_SECONDS
 * (this cache) = REVOCATION_BOUND_SECONDS (src/policy.ts). README, "Revocation and disabled clients at the gateway".
 *
 * When KV fails, the last answer is kept for STALE_GRACE_SECONDS past its refresh time; after that,
 * or with no answer at all, the request fails closed: 503, never passed.
 */
import { BearerError, OAuthError, StoreUnavailableError } from "../http/errors.ts";
import { logEvent } from "../http/log.ts";
import { BoundedCache } from "../bounded-cache.ts";
import { staleTokenReason, type ClientRecord } from "../clients/record.ts";
import { loadClient } from "../clients/store.ts";
import { isRevoked } from "./revocation.ts";
import { KV_CACHE_TTL_SECONDS, REVOCATION_CHECK_SECONDS } from "../policy.ts";
import type { AccessTokenClaims } from "./mint.ts";

/** How long past its refresh time an answer stands in while KV fails. */
export const STALE_GRACE_SECONDS = 60;
/** Entries per cache (jti, client id); the oldest refreshed goes first. */
export const STATUS_CACHE_MAX_ENTRIES = 4096;

/** "deleted", "disabled", or what binds tokens to the client's record while it is active. */
export type ClientStatus = "disabled" | "deleted" | Pick<ClientRecord, "instance_id" | "tokens_not_before">;

/** What a token's status depends on in its client's record (null: deleted). */
export function clientStatusOf(record: ClientRecord | null): ClientStatus {
  return record === null
    ? "deleted"
    : record.disabled
      ? "disabled"
      : { instance_id: record.instance_id, tokens_not_before: record.tokens_not_before };
}

type StatusClaims = Pick<AccessTokenClaims, "jti" | "client_id" | "iat" | "tg_inst">;

interface Entry<T> {
  value: T;
  /** Epoch milliseconds of the KV read that gave `value` (taken before the read). */
  checkedAt: number;
}

const revokedByJti = new BoundedCache<string, Entry<boolean>>(STATUS_CACHE_MAX_ENTRIES);
const clientsById = new BoundedCache<string, Entry<ClientStatus>>(STATUS_CACHE_MAX_ENTRIES);

function remember<T>(cache: BoundedCache<string, Entry<T>>, key: string, entry: Entry<T>): void {
  // A refreshed entry is the newest; the bound drops the oldest.
  cache.set(key, entry);
}

/** Whether an answer is younger than REVOCATION_CHECK_SECONDS. */
function isFresh(entry: Entry<unknown>, now: number): boolean {
  return now - entry.checkedAt < REVOCATION_CHECK_SECONDS * 1000;
}

/** The cached answer while fresh; else KV's; else, while KV fails, the last one within the grace. */
async function lookUp<T>(cache: BoundedCache<string, Entry<T>>, key: string, now: number, read: () => Promise<T>): Promise<T> {
  const entry = cache.get(key);
  if (entry && isFresh(entry, now)) return entry.value;
  try {
    const value = await read();
    remember(cache, key, { value, checkedAt: now });
    return value;
  } catch (error) {
    // Only an unreachable store may be bridged; a corrupt record stays the 500 it is.
    if (!(error instanceof StoreUnavailableError)) throw error;
    const age = entry ? now - entry.checkedAt : Infinity;
    if (age < (REVOCATION_CHECK_SECONDS + STALE_GRACE_SECONDS) * 1000) {
      logEvent("token_status_stale", { level: "error", key, age_ms: age, reason: error.message });
      return entry!.value;
    }
    throw new OAuthError("temporarily_unavailable", "the token's status cannot be checked right now, try again later", {
      reason: `${error.message}; no answer for ${key} within ${REVOCATION_CHECK_SECONDS + STALE_GRACE_SECONDS} s`,
    });
  }
}

async function readClientStatus(kv: KVNamespace, clientId: string): Promise<ClientStatus> {
  return clientStatusOf(await loadClient(kv, clientId, { cacheTtl: KV_CACHE_TTL_SECONDS }));
}

/**
 * Why a token of a client in `status` may not be used (for the log), undefined when it may: its
 * client deleted or disabled, or the token issued under an earlier instance of its record.
 */
export function clientRefusal(claims: StatusClaims, status: ClientStatus): string | undefined {
  return typeof status === "string" ? `client ${status}` : staleTokenReason(status, claims);
}

/**
 * Throws BearerError invalid_token when the token is revoked or its client is disabled or deleted,
 * OAuthError 503 when that cannot be known (see above). `now` is epoch milliseconds.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export async function checkTokenStatus(kv: KVNamespace, claims: StatusClaims, now = Date.now()): Promise<void> {
  const jtiKey = `jti ${claims.jti}`;
  const clientKey = `client ${claims.client_id}`;
  // The hot path: both answers fresh in this isolate, decided without a promise per lookup.
  const knownRevoked = revokedByJti.get(jtiKey);
  const knownClient = clientsById.get(clientKey);
  if (knownRevoked && knownClient && isFresh(knownRevoked, now) && isFresh(knownClient, now)) {
    return refuseIfRevoked(claims, knownRevoked.value, knownClient.value);
  }
  const [revoked, client] = await Promise.allSettled([
    lookUp(revokedByJti, jtiKey, now, () => isRevoked(kv, claims.jti, { cacheTtl: KV_CACHE_TTL_SECONDS })),
    lookUp(clientsById, clientKey, now, () => readClientStatus(kv, claims.client_id)),
  ]);
  // A known refusal wins over an unknown answer: the request fails either way, this one says why.
  refuseIfRevoked(
    claims,
    revoked.status === "fulfilled" ? revoked.value : undefined,
    client.status === "fulfilled" ? client.value : undefined,
  );
  if (revoked.status === "rejected") throw revoked.reason;
  if (client.status === "rejected") throw client.reason;
}

/** Throws invalid_token for whichever known answer refuses the token; undefined means unknown. */
function refuseIfRevoked(claims: StatusClaims, revoked: boolean | undefined, status: ClientStatus | undefined): void {
  const refusal = revoked ? "token revoked" : status === undefined ? undefined : clientRefusal(claims, status);
  if (refusal) {
    throw new BearerError("invalid_token", "the access token has been revoked", {
      reason: `${refusal} (client ${JSON.stringify(claims.client_id)}, jti ${claims.jti})`,
    });
  }
}
