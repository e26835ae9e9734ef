import { describe, expect, it } from "vitest";
import {
  isKnownGoodSecret,
  rememberGoodSecret,
  SECRET_CACHE_MAX_ENTRIES,
  SECRET_CACHE_TTL_MS,
  secretCacheKey,
} from "../../src/client-auth/warm-secrets.ts";

describe("per-isolate cache of verified secrets", () => {
  it("knows a remembered secret and nothing else", async () => {
    const key = secretCacheKey("cache-a", "pbkdf2-sha256$100000$s$h", 1);
    expect(await isKnownGoodSecret(key, "id.secret")).toBe(false);
    await rememberGoodSecret(key, "id.secret");
    expect(await isKnownGoodSecret(key, "id.secret")).toBe(true);
    expect(await isKnownGoodSecret(key, "id.secreT")).toBe(false);
    expect(await isKnownGoodSecret(key, "")).toBe(false);
  });

  it("drops an entry when the record changes (another updated_at or stored hash)", async () => {
    await rememberGoodSecret(secretCacheKey("cache-b", "hash-1", 10), "s");
    expect(await isKnownGoodSecret(secretCacheKey("cache-b", "hash-1", 11), "s")).toBe(false);
    expect(await isKnownGoodSecret(secretCacheKey("cache-b", "hash-2", 10), "s")).toBe(false);
    expect(await isKnownGoodSecret(secretCacheKey("cache-c", "hash-1", 10), "s")).toBe(false);
  });

  it("forgets an entry after its time to live", async () => {
    const key = secretCacheKey("cache-d", "h", 1);
    const t0 = 1_000_000;
    await rememberGoodSecret(key, "s", t0);
    expect(await isKnownGoodSecret(key, "s", t0 + SECRET_CACHE_TTL_MS - 1)).toBe(true);
    expect(await isKnownGoodSecret(key, "s", t0 + SECRET_CACHE_TTL_MS)).toBe(false);
  });

  it("stays bounded, evicting the least recently used", async () => {
    const first = secretCacheKey("cache-lru-first", "h", 1);
    await rememberGoodSecret(first, "s");
    for (let i = 0; i < SECRET_CACHE_MAX_ENTRIES; i++) await rememberGoodSecret(secretCacheKey(`cache-fill-${i}`, "h", 1), "s");
    expect(await isKnownGoodSecret(first, "s")).toBe(false);
    expect(await isKnownGoodSecret(secretCacheKey(`cache-fill-${SECRET_CACHE_MAX_ENTRIES - 1}`, "h", 1), "s")).toBe(true);
  });

  it("a secret served from the cache is the last to be evicted (LRU, not first in first out)", async () => {
    const first = secretCacheKey("cache-refresh-first", "h", 1);
    const second = secretCacheKey("cache-refresh-second", "h", 1);
    await rememberGoodSecret(first, "s");
    await rememberGoodSecret(second, "s");
    for (let i = 0; i < SECRET_CACHE_MAX_ENTRIES - 2; i++) await rememberGoodSecret(secretCacheKey(`cache-refresh-fill-${i}`, "h", 1), "s");
    // Full; serving `first` moves it to the back of the queue, so the next entry evicts `second`.
    expect(await isKnownGoodSecret(first, "s")).toBe(true);
    await rememberGoodSecret(secretCacheKey("cache-refresh-one-more", "h", 1), "s");
    expect(await isKnownGoodSecret(first, "s")).toBe(true);
    expect(await isKnownGoodSecret(second, "s")).toBe(false);
  });

  it("a wrong secret does not refresh an entry", async () => {
    const first = secretCacheKey("cache-wrong-first", "h", 1);
    await rememberGoodSecret(first, "s");
    for (let i = 0; i < SECRET_CACHE_MAX_ENTRIES - 1; i++) await rememberGoodSecret(secretCacheKey(`cache-wrong-fill-${i}`, "h", 1), "s");
    expect(await isKnownGoodSecret(first, "not-s")).toBe(false);
    await rememberGoodSecret(secretCacheKey("cache-wrong-one-more", "h", 1), "s");
    expect(await isKnownGoodSecret(first, "s")).toBe(false);
  });
});
