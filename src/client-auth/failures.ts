/**
 * The failure accounting of client authentication: failed checks counted per client_id and address
 * on TOKEN_FAILURE_LIMITER, a pair over the limit refused without the PBKDF2 work, and one secret
 * check at a time per pair in this isolate.
 */
import { isWellFormedClientId } from "../clients/record.ts";
import { LIMIT_PERIOD_SECONDS, tooManyRequests } from "../http/limits.ts";
import { BoundedCache } from "../bounded-cache.ts";

/**
 * Failed authentications per client_id and address. Keyed by both, so an attacker elsewhere cannot
 * lock a legitimate client out (docs/security.md). Once over the limit, this isolate refuses that
 * pair without the PBKDF2 work until the period ends; the binding only counts, it cannot be asked
 * without counting, so the block is remembered here.
 */
const BLOCKED_MAX_ENTRIES = 10_000;
const blocked = new BoundedCache<string, number>(BLOCKED_MAX_ENTRIES);

export function failureKey(clientId: string, address: string): string {
  // Ids no client can have share one key, so junk cannot grow the map with 16 KiB keys.
  return `${isWellFormedClientId(clientId) ? clientId : "(invalid client_id)"}\u0000${address.slice(0, 64)}`;
}

export function checkFailureBlock(key: string, now = Date.now()): void {
  const until = blocked.get(key);
  if (until === undefined) return;
  if (until > now)
    throw tooManyRequests("failed authentications", `${key.replace("\u0000", " from ")}; refused without checking the secret`);
  blocked.delete(key);
}

/**
 * The secret checks of one client and address run one at a time in this isolate: a failure is
 * counted only once its PBKDF2 is done, so concurrent guesses would otherwise all be checked before
 * the first count could block them. The others wait for the turn, then meet the block it set (no
 * check) or the client it authenticated (no PBKDF2): an isolate checks at most the limit + 1 secrets
 * per pair and period, however many arrive at once. A turn not released within
 * CHECK_TURN_TIMEOUT_MS (its request was cancelled mid-check) is taken over by the next waiter;
 * each waiter keeps its own timer, since a cancelled request runs nothing more.
 */
interface Turn {
  since: number;
  done: Promise<void>;
}
// Turns left by cancelled requests stay until their key is used again: bounded like `blocked`.
const turns = new BoundedCache<string, Turn>(BLOCKED_MAX_ENTRIES);
export const CHECK_TURN_TIMEOUT_MS = 5000;

export async function oneCheckAtATime<T>(key: string, check: () => Promise<T>): Promise<T> {
  for (;;) {
    const turn = turns.get(key);
    const left = turn ? turn.since + CHECK_TURN_TIMEOUT_MS - Date.now() : 0;
    if (left <= 0) break;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([turn!.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
    clearTimeout(timer);
  }
  let release!: () => void;
  const mine: Turn = { since: Date.now(), done: new Promise<void>((resolve) => (release = resolve)) };
  turns.set(key, mine);
  try {
    return await check();
  } finally {
    release();
    if (turns.get(key) === mine) turns.delete(key);
  }
}
/** Counts a failed authentication; throws 429 (and remembers the block) once over the limit. */
export async function countFailure(limiter: RateLimit | undefined, key: string, now = Date.now()): Promise<void> {
  if (!limiter) return;
  const { success } = await limiter.limit({ key });
  if (success) return;
  blocked.set(key, now + LIMIT_PERIOD_SECONDS * 1000);
  throw tooManyRequests("failed authentications", key.replace("\u0000", " from "));
}
