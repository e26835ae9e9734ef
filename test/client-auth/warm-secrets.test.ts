import { describe, expect, it } from "vitest";
import { isKnownGoodSecret, rememberGoodSecret, SECRET_CACHE_MAX_ENTRIES, SECRET_CACHE_TTL_MS, secretCacheKey } from "../../src/client-auth/warm-secrets.ts";

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
});
