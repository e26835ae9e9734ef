// src/bounded-cache.ts: the one bounded per-isolate cache.
import { describe, expect, it } from "vitest";
import { BoundedCache, clearAllCaches } from "../src/bounded-cache.ts";

describe("BoundedCache", () => {
  it("keeps at most maxEntries, dropping the oldest set", () => {
    const cache = new BoundedCache<string, number>(3);
    for (const [i, key] of ["a", "b", "c", "d"].entries()) cache.set(key, i);
    expect(cache.size).toBe(3);
    expect(cache.has("a")).toBe(false);
    expect([cache.get("b"), cache.get("c"), cache.get("d")]).toEqual([1, 2, 3]);
  });

  it("setting a key again makes it the newest", () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("a", 3);
    cache.set("c", 4);
    expect(cache.has("b")).toBe(false);
    expect(cache.get("a")).toBe(3);
  });

  it("refresh makes an entry the newest (least recently used order); get alone does not", () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.get("a");
    cache.set("c", 3);
    expect(cache.has("a")).toBe(false);
    cache.refresh("b");
    cache.set("d", 4);
    expect(cache.has("b")).toBe(true);
    expect(cache.has("c")).toBe(false);
    cache.refresh("absent");
    expect(cache.has("absent")).toBe(false);
  });

  it("clearAllCaches empties every cache, the modules' own included", () => {
    const one = new BoundedCache<string, number>(2);
    const two = new BoundedCache<number, string>(2);
    one.set("a", 1);
    two.set(1, "a");
    clearAllCaches();
    expect([one.size, two.size]).toEqual([0, 0]);
  });
});
