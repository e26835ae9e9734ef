/**
 * The warm path of client authentication: a client that authenticated in this isolate within the
 * last CLIENT_CACHE_SECONDS is served from memory, its record as read then and its secret checked
 * against the HMAC digest warm-secrets.ts kept (both by authenticate.ts), with no KV read and no PBKDF2.
 *
 * Only successful authentications enter (so only clients holding a valid secret occupy it, and an
 * attacker's guesses cannot evict them), and only a presented secret this isolate already verified
 * for that very record takes the shortcut. Everything else (another secret, an unknown id, a
 * disabled client, an expired secret) reads KV and pays the PBKDF2 as before, so every refusal
 * still costs the same work (a wrong secret carrying a remembered client's secret id costs one
 * HMAC more, microseconds beside the PBKDF2).
 *
 * The price is staleness: a record changed elsewhere (disabled, secret revoked or rotated out) is
 * still used here for up to CLIENT_CACHE_SECONDS, the same window the gateway's status cache has
 * (src/tokens/status.ts), so /token and the gateway share one bound: KV's edge cache
 * (KV_CACHE_TTL_SECONDS) + CLIENT_CACHE_SECONDS = REVOCATION_BOUND_SECONDS (src/policy.ts; README,
 * "Revocation and disabled clients"). A token minted from a stale record carries that record's
 * instance_id (tg_inst), so once the gateway sees a disable or a revoked secret it refuses that token too. A change made through the admin API drops the entry in the
 * isolate that made it at once. docs/security.md weighs the trade-off.
 */
import type { ClientRecord } from "../clients/record.ts";
import { CLIENT_CACHE_SECONDS } from "../policy.ts";
import { BoundedCache } from "../bounded-cache.ts";

export const CLIENT_CACHE_MAX_ENTRIES = 1024;

const records = new BoundedCache<string, { record: ClientRecord; until: number }>(CLIENT_CACHE_MAX_ENTRIES);
/** When this isolate last changed a client (epoch ms): a record read before then is not remembered. */
const changedAt = new BoundedCache<string, number>(CLIENT_CACHE_MAX_ENTRIES);

/** Remembers a record that just authenticated a client (read from KV at `readAt`, epoch ms). */
export function rememberClient(record: ClientRecord, readAt: number): void {
  // A request that read the record before an admin change here, and finished after it, would
  // otherwise put the old record back.
  const changed = changedAt.get(record.client_id);
  if (changed !== undefined && readAt <= changed) return;
  records.set(record.client_id, { record, until: readAt + CLIENT_CACHE_SECONDS * 1000 });
}

/** Drops a client's entry: its record changed here (admin API). */
export function forgetClient(clientId: string, now = Date.now()): void {
  records.delete(clientId);
  changedAt.set(clientId, now);
}

/** The record remembered for `clientId` while younger than CLIENT_CACHE_SECONDS at `nowMs`; else undefined. */
export function rememberedRecord(clientId: string, nowMs: number): ClientRecord | undefined {
  const entry = records.get(clientId);
  if (!entry) return undefined;
  if (entry.until <= nowMs) {
    records.delete(clientId);
    return undefined;
  }
  return entry.record;
}
