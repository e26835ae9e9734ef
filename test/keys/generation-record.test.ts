import { afterEach, describe, expect, it, vi } from "vitest";
import {
  GENERATION_KEY,
  GenerationRecordError,
  parseGenerationRecord,
  planRotation,
  validateGenerationRecord,
} from "../../src/keys/generation-record.ts";
import { GENERATION_CACHE_SECONDS, GenerationUnavailableError, readGenerationRecord } from "../../src/keys/generation-kv.ts";
import { generationRetention, NO_ROTATION } from "../../src/keys/schedule.ts";

/** A namespace holding only keys:generation, counting reads; `fail` makes get() throw. */
function generationKV(initial: unknown) {
  const state = { value: initial === null ? null : JSON.stringify(initial), fail: false, reads: [] as { key: string; options: unknown }[] };
  const kv = {
    async get(key: string, options?: unknown) {
      state.reads.push({ key, options });
      if (state.fail) throw new Error("KV GET failed: 503");
      return key === GENERATION_KEY ? state.value : null;
    },
  } as unknown as KVNamespace;
  return { kv, state };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("keys:generation record rules", () => {
  it("accepts {generation >= 1, since} and nothing more", () => {
    expect(validateGenerationRecord({ generation: 1, since: 1_900_000_000 })).toEqual({ generation: 1, since: 1_900_000_000 });
    expect(parseGenerationRecord('{"generation":4,"since":0}')).toEqual({ generation: 4, since: 0 });
  });

  it.each([
    ["not JSON", "{"],
    ["an array", "[1, 2]"],
    ["generation 0", '{"generation":0,"since":1}'],
    ["a negative generation", '{"generation":-1,"since":1}'],
    ["a fractional generation", '{"generation":1.5,"since":1}'],
    ["generation as a string", '{"generation":"1","since":1}'],
    ["since missing", '{"generation":1}'],
    ["since in milliseconds past year 9999", '{"generation":1,"since":1900000000000000}'],
    ["an unknown field", '{"generation":1,"since":1,"keys":[]}'],
  ])("refuses %s, naming keys:generation", (_, raw) => {
    expect(() => parseGenerationRecord(raw)).toThrow(GenerationRecordError);
    expect(() => parseGenerationRecord(raw)).toThrow(/keys:generation/);
  });
});

describe("reading keys:generation in the Worker", () => {
  const t0 = 1_900_000_000_000;

  it("reads with KV cacheTtl 30 and then uses its own copy for 30 s", async () => {
    const { kv, state } = generationKV({ generation: 2, since: 123 });
    expect(await readGenerationRecord(kv, t0)).toEqual({ generation: 2, since: 123 });
    expect(state.reads).toEqual([{ key: GENERATION_KEY, options: { cacheTtl: GENERATION_CACHE_SECONDS } }]);
    state.value = JSON.stringify({ generation: 3, since: 456 });
    expect(await readGenerationRecord(kv, t0 + GENERATION_CACHE_SECONDS * 1000 - 1)).toEqual({ generation: 2, since: 123 });
    expect(state.reads).toHaveLength(1);
    expect(await readGenerationRecord(kv, t0 + GENERATION_CACHE_SECONDS * 1000)).toEqual({ generation: 3, since: 456 });
    expect(state.reads).toHaveLength(2);
  });

  it("is generation 0 since 0 when the record is absent", async () => {
    const { kv } = generationKV(null);
    expect(await readGenerationRecord(kv, t0)).toEqual(NO_ROTATION);
  });

  it("keeps the last value read when KV fails, logs it, and asks again 30 s later", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    const { kv, state } = generationKV({ generation: 5, since: 99 });
    await readGenerationRecord(kv, t0);
    state.fail = true;
    const stale = t0 + GENERATION_CACHE_SECONDS * 1000;
    expect(await readGenerationRecord(kv, stale)).toEqual({ generation: 5, since: 99 });
    expect(lines.some((l) => JSON.parse(l).event === "key_generation_unreadable")).toBe(true);
    expect(await readGenerationRecord(kv, stale + 1000)).toEqual({ generation: 5, since: 99 });
    expect(state.reads).toHaveLength(2); // not asked again within the 30 s
    state.fail = false;
    state.value = JSON.stringify({ generation: 6, since: 100 });
    expect(await readGenerationRecord(kv, stale + GENERATION_CACHE_SECONDS * 1000)).toEqual({ generation: 6, since: 100 });
  });

  it("refuses (never guesses generation 0) while KV has never answered, and asks again on the next request", async () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const { kv, state } = generationKV({ generation: 7, since: 1 });
    state.fail = true;
    await expect(readGenerationRecord(kv, t0)).rejects.toThrow(GenerationUnavailableError);
    state.fail = false;
    expect(await readGenerationRecord(kv, t0 + 1)).toEqual({ generation: 7, since: 1 });
  });

  it("throws on a malformed record instead of guessing", async () => {
    const { kv } = generationKV({ generation: "two", since: 1 });
    await expect(readGenerationRecord(kv, t0)).rejects.toThrow(GenerationRecordError);
  });
});

describe("tollgate keys rotate (planRotation)", () => {
  const now = 1_900_000_000;
  const maxAccessTokenTtl = 3600;
  const retention = generationRetention(maxAccessTokenTtl);

  it("starts generation 1 at now + --in when there is no record", () => {
    expect(planRotation(null, now, { inSeconds: 420, maxAccessTokenTtl, force: false }).record).toEqual({
      generation: 1,
      since: now + 420,
    });
    expect(planRotation(null, now, { inSeconds: 0, maxAccessTokenTtl, force: false }).record).toEqual({ generation: 1, since: now });
  });

  it("starts the next generation once the previous one is no longer published", () => {
    const current = { generation: 3, since: now - retention };
    expect(planRotation(current, now, { inSeconds: 60, maxAccessTokenTtl, force: false }).record).toEqual({
      generation: 4,
      since: now + 60,
    });
  });

  it("moves a switch still ahead instead of skipping a generation", () => {
    const current = { generation: 2, since: now + 300 };
    expect(planRotation(current, now, { inSeconds: 0, maxAccessTokenTtl, force: false }).record).toEqual({ generation: 2, since: now });
  });

  it("refuses while the generation before is still published for its tokens, unless forced", () => {
    const current = { generation: 2, since: now - retention + 1 };
    expect(() => planRotation(current, now, { inSeconds: 60, maxAccessTokenTtl, force: false })).toThrow(
      /generation 1 stays published until/,
    );
    expect(planRotation(current, now, { inSeconds: 60, maxAccessTokenTtl, force: true }).record).toEqual({
      generation: 3,
      since: now + 60,
    });
  });
});
