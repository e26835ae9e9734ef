/**
 * The one bounded per-isolate cache: a Map with a maximum size that drops its oldest entry when a
 * new one would exceed it. "Oldest" is by the last `set`, or `refresh` (a caller that wants least
 * recently used order refreshes an entry when it serves it). Expiry stays with the caller, which
 * keeps its own deadline in the value: each cache has its own rule for what a stale entry means.
 * Every cache registers itself, so a test can empty them all at once (clearAllCaches).
 */
const all = new Set<BoundedCache<unknown, unknown>>();

export class BoundedCache<K, V> {
  readonly maxEntries: number;
  readonly #entries = new Map<K, V>();

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
    all.add(this as BoundedCache<unknown, unknown>);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Stores `value` as the newest entry, dropping the oldest ones past maxEntries. */
  set(key: K, value: V): void {
    // Map keeps insertion order: the newest entry goes to the end, the bound drops the front.
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value as K);
  }

  /** Makes an entry the newest again, as if just set (least recently used order). */
  refresh(key: K): void {
    const value = this.#entries.get(key);
    if (value === undefined) return;
    this.#entries.delete(key);
    this.#entries.set(key, value);
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** Empties every BoundedCache of this isolate: tests start from a known state. */
export function clearAllCaches(): void {
  for (const cache of all) cache.clear();
}
