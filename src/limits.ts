/**
 * Abuse limits on Cloudflare's Rate Limiting binding (Miniflare emulates it locally). A limiter
 * that is not bound is no limit: the binding's configuration in wrangler.toml is the policy.
 * @see https://developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit/
 */
import { isWellFormedClientId } from "./clients/record.ts";
import { OAuthError } from "./errors.ts";

/** The period every limiter in wrangler.toml uses; Retry-After says this much at most. */
export const LIMIT_PERIOD_SECONDS = 60;

/** Throws 429 with Retry-After when `key` is over the limiter's budget. */
export async function enforceLimit(limiter: RateLimit | undefined, key: string, what: string): Promise<void> {
  if (!limiter) return;
  const { success } = await limiter.limit({ key });
  if (!success) throw tooManyRequests(what, key);
}

export function tooManyRequests(what: string, key: string): OAuthError {
  return new OAuthError("temporarily_unavailable", `too many requests, retry after ${LIMIT_PERIOD_SECONDS} seconds`, {
    status: 429,
    headers: { "Retry-After": String(LIMIT_PERIOD_SECONDS) },
    reason: `${what} over its limit (${key})`,
  });
}

/** The client's address as Cloudflare saw it; "unknown" where no edge set it (local tests). */
export function clientAddress(headers: Headers): string {
  return headers.get("CF-Connecting-IP") ?? "unknown";
}

/**
 * Failed authentications per client_id and address. Keyed by both, so an attacker elsewhere cannot
 * lock a legitimate client out (docs/security.md). Once over the limit, this isolate refuses that
 * pair without the PBKDF2 work until the period ends; the binding only counts, it cannot be asked
 * without counting, so the block is remembered here.
 */
const blocked = new Map<string, number>();
const BLOCKED_MAX_ENTRIES = 10_000;

export function failureKey(clientId: string, address: string): string {
  // Ids no client can have share one key, so junk cannot grow the map with 16 KiB keys.
  return `${isWellFormedClientId(clientId) ? clientId : "(invalid client_id)"}\u0000${address.slice(0, 64)}`;
}

export function checkFailureBlock(key: string, now = Date.now()): void {
  const until = blocked.get(key);
  if (until === undefined) return;
  if (until > now) throw tooManyRequests("failed authentications", key.replace("\u0000", " from "));
  blocked.delete(key);
}

/** Counts a failed authentication; throws 429 (and remembers the block) once over the limit. */
export async function countFailure(limiter: RateLimit | undefined, key: string, now = Date.now()): Promise<void> {
  if (!limiter) return;
  const { success } = await limiter.limit({ key });
  if (success) return;
  blocked.set(key, now + LIMIT_PERIOD_SECONDS * 1000);
  if (blocked.size > BLOCKED_MAX_ENTRIES) blocked.delete(blocked.keys().next().value!);
  throw tooManyRequests("failed authentications", key.replace("\u0000", " from "));
}
