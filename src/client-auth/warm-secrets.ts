/**
 * Per-isolate memory of secrets already verified with PBKDF2, so a client asking again pays one
 * HMAC instead of a PBKDF2 of the stored hash's count (PBKDF2_ITERATIONS when it was made). Holds no
 * secret: only HMAC-SHA256(isolate key, secret), under a random key made in this isolate that never
 * leaves it. Bounded in size (least recently
 * used out) and in time; an entry is tied to the stored hash and the record's `updated_at`, so any
 * change to the client (rotation, revocation, update) drops it. docs/security.md weighs the trade-off.
 */
import { BoundedCache } from "../bounded-cache.ts";
import { timingSafeEqual } from "../clients/secret.ts";

export const SECRET_CACHE_MAX_ENTRIES = 1024;
export const SECRET_CACHE_TTL_MS = 5 * 60 * 1000;

const encoder = new TextEncoder();
let isolateKey: Promise<CryptoKey> | undefined;
const entries = new BoundedCache<string, { digest: Uint8Array; expires: number }>(SECRET_CACHE_MAX_ENTRIES);

function key(): Promise<CryptoKey> {
  isolateKey ??= crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]) as Promise<CryptoKey>;
  return isolateKey;
}

async function digestOf(secret: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", await key(), encoder.encode(secret)));
}

export function secretCacheKey(clientId: string, storedHash: string, updatedAt: number): string {
  return `${clientId}\u0000${updatedAt}\u0000${storedHash}`;
}

/** Whether this exact secret was verified for this exact stored hash recently in this isolate. */
export async function isKnownGoodSecret(cacheKey: string, secret: string, now = Date.now()): Promise<boolean> {
  const entry = entries.get(cacheKey);
  if (!entry) return false;
  if (entry.expires <= now) {
    entries.delete(cacheKey);
    return false;
  }
  if (!timingSafeEqual(await digestOf(secret), entry.digest)) return false;
  // Served: the most recently used now, the last to be evicted.
  entries.refresh(cacheKey);
  return true;
}

export async function rememberGoodSecret(cacheKey: string, secret: string, now = Date.now()): Promise<void> {
  entries.set(cacheKey, { digest: await digestOf(secret), expires: now + SECRET_CACHE_TTL_MS });
}
