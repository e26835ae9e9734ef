import { describe, expect, it } from "vitest";
import { planRotation } from "../../src/keys/generation-record.ts";
import { CLOCK_TOLERANCE_SECONDS, JWKS_MAX_AGE } from "../../src/policy.ts";
import {
  DEFAULT_ROTATE_IN_SECONDS,
  epochOf,
  GENERATION_PROPAGATION_SECONDS,
  generationRetention,
  keyRefId,
  NO_ROTATION,
  planKeys,
  ROTATE_WRITE_SECONDS,
  STALE_SIGNER_SECONDS,
  type GenerationRecord,
  type KeyRef,
  type ScheduleOptions,
} from "../../src/keys/schedule.ts";

const P = 86_400;
const options: ScheduleOptions = { period: P, retention: generationRetention(3600), staticGenerationZero: false };
const E = 20_000; // an epoch
const T = E * P; // its first second

const ids = (refs: KeyRef[]) => refs.map(keyRefId);
const key = (generation: number, epoch: number) => `g=${generation};e=${epoch}`;

describe("the KEY_SEED schedule (planKeys)", () => {
  it("cuts time into epochs of ROTATION_PERIOD seconds", () => {
    expect(epochOf(T, P)).toBe(E);
    expect(epochOf(T - 1, P)).toBe(E - 1);
    expect(epochOf(T + P - 1, P)).toBe(E);
  });

  it("signs with key(0, e) and publishes it, the next key(0, e + 1) and the retired key(0, e - 1)", () => {
    for (const now of [T, T + 1, T + P / 2, T + P - 1]) {
      const plan = planKeys(now, NO_ROTATION, options);
      expect(keyRefId(plan.signer), String(now)).toBe(key(0, E));
      expect(ids(plan.published), String(now)).toEqual([key(0, E), key(0, E + 1), key(0, E - 1)]);
    }
  });

  it("moves on at the boundary: the next key signs, the signer is retired, the retired one leaves", () => {
    const before = planKeys(T + P - 1, NO_ROTATION, options);
    const after = planKeys(T + P, NO_ROTATION, options);
    expect(keyRefId(after.signer)).toBe(key(0, E + 1));
    expect(ids(after.published)).toEqual([key(0, E + 1), key(0, E + 2), key(0, E)]);
    expect(ids(before.published)).toContain(key(0, E + 1)); // published a whole period before it signs
    expect(ids(after.published)).not.toContain(key(0, E - 1));
  });

  it("publishes every key from one period before it signs until one period after it stopped", () => {
    const epochsPublished: number[] = [];
    for (let epoch = E - 3; epoch <= E + 3; epoch++) {
      if (ids(planKeys(epoch * P + 7, NO_ROTATION, options).published).includes(key(0, E))) epochsPublished.push(epoch);
    }
    expect(epochsPublished).toEqual([E - 1, E, E + 1]);
  });

  describe("rotate now: keys:generation {generation: 1, since}", () => {
    const since = T + 5000;
    const record = { generation: 1, since };

    it("before since: generation 0 signs; both generations' current, next and retired keys are published", () => {
      const plan = planKeys(since - 1, record, options);
      expect(keyRefId(plan.signer)).toBe(key(0, E));
      expect(ids(plan.published)).toEqual([key(0, E), key(0, E + 1), key(0, E - 1), key(1, E), key(1, E + 1), key(1, E - 1)]);
    });

    it("from since: generation 1 signs; generation 0 keeps its keys, its next one only while a stale isolate may sign", () => {
      const plan = planKeys(since, record, options);
      expect(keyRefId(plan.signer)).toBe(key(1, E));
      expect(ids(plan.published)).toEqual([key(1, E), key(1, E + 1), key(1, E - 1), key(0, E), key(0, E + 1), key(0, E - 1)]);
      expect(ids(planKeys(since + STALE_SIGNER_SECONDS - 1, record, options).published)).toContain(key(0, E + 1));
      expect(ids(planKeys(since + STALE_SIGNER_SECONDS, record, options).published)).toEqual([
        key(1, E),
        key(1, E + 1),
        key(1, E - 1),
        key(0, E),
        key(0, E - 1),
      ]);
    });

    it("keeps generation 0 published for generationRetention after since, then drops it", () => {
      const retention = generationRetention(3600);
      expect(retention).toBe(STALE_SIGNER_SECONDS + 3600 + CLOCK_TOLERANCE_SECONDS);
      expect(STALE_SIGNER_SECONDS).toBe(ROTATE_WRITE_SECONDS + GENERATION_PROPAGATION_SECONDS);
      expect(ids(planKeys(since + retention - 1, record, options).published)).toContain(key(0, E));
      const after = ids(planKeys(since + retention, record, options).published);
      expect(after.filter((id) => id.startsWith("g=0;"))).toEqual([]);
      expect(after).toEqual([key(1, E), key(1, E + 1), key(1, E - 1)]);
    });

    it("across an epoch boundary after since, keeps generation 0's key of the epoch before (a stale isolate's tokens)", () => {
      const late = { generation: 1, since: T + P - 60 };
      const plan = planKeys(T + P + 10, late, options);
      expect(keyRefId(plan.signer)).toBe(key(1, E + 1));
      expect(ids(plan.published)).toEqual([key(1, E + 1), key(1, E + 2), key(1, E), key(0, E + 1), key(0, E + 2), key(0, E)]);
    });

    it("with --in 0 (since = now) generation 1 signs at once", () => {
      expect(keyRefId(planKeys(T + 42, { generation: 1, since: T + 42 }, options).signer)).toBe(key(1, E));
    });

    it("after a second rotation, generation 1 is the previous one and generation 0 is gone", () => {
      const plan = planKeys(T + 5 + STALE_SIGNER_SECONDS, { generation: 2, since: T + 5 }, options);
      expect(ids(plan.published)).toEqual([key(2, E), key(2, E + 1), key(2, E - 1), key(1, E), key(1, E - 1)]);
    });
  });

  describe("SIGNING_KEY beside KEY_SEED stands for generation 0 (the migration path)", () => {
    const migrating: ScheduleOptions = { ...options, staticGenerationZero: true };

    it("without a rotation, SIGNING_KEY signs and only its keys are published", () => {
      const plan = planKeys(T, NO_ROTATION, migrating);
      expect(plan.signer).toEqual({ kind: "static" });
      expect(ids(plan.published)).toEqual(["static"]);
    });

    it("before since, SIGNING_KEY signs and generation 1 is published ahead", () => {
      const plan = planKeys(T + 99, { generation: 1, since: T + 100 }, migrating);
      expect(plan.signer).toEqual({ kind: "static" });
      expect(ids(plan.published)).toEqual(["static", key(1, E), key(1, E + 1), key(1, E - 1)]);
    });

    it("from since, generation 1 signs; SIGNING_KEY stays published for generationRetention", () => {
      const record = { generation: 1, since: T + 100 };
      const plan = planKeys(T + 100, record, migrating);
      expect(keyRefId(plan.signer)).toBe(key(1, E));
      expect(ids(plan.published)).toEqual([key(1, E), key(1, E + 1), key(1, E - 1), "static"]);
      expect(ids(planKeys(T + 100 + migrating.retention, record, migrating).published)).not.toContain("static");
    });
  });

  it("waits by default for every isolate and every JWKS cache before the next generation signs", () => {
    expect(DEFAULT_ROTATE_IN_SECONDS).toBe(STALE_SIGNER_SECONDS + JWKS_MAX_AGE + CLOCK_TOLERANCE_SECONDS);
    expect(DEFAULT_ROTATE_IN_SECONDS).toBeGreaterThan(JWKS_MAX_AGE);
  });
});

/**
 * The schedule as every isolate and every JWKS cache live it, second by second, around `keys rotate`:
 * a record reaches KV up to WRITE_DELAY after the clock reading its `since` counts from, and an
 * isolate may act on a record for up to GENERATION_PROPAGATION_SECONDS after KV replaced it. At every
 * second t, every key some isolate (fresh or stale) may sign with must be in every JWKS any isolate
 * served from t − (JWKS_MAX_AGE + CLOCK_TOLERANCE_SECONDS), when a resource server may have cached it,
 * until the token's last second. The one exception is the emergency (--in below the default): the new
 * generation's keys are missing from the JWKS of isolates that have not read the record yet.
 * A few seconds of work on an idle machine; the timeout leaves room for a busy one.
 */
describe("every key any isolate signs with is in every JWKS a resource server may hold (sweep)", { timeout: 60_000 }, () => {
  const TTL = 300; // a short MAX_ACCESS_TOKEN_TTL keeps the sweep quick; every bound moves with it
  const WRITE_DELAY = ROTATE_WRITE_SECONDS;
  const CACHED = JWKS_MAX_AGE + CLOCK_TOLERANCE_SECONDS;
  const LIFE = TTL + CLOCK_TOLERANCE_SECONDS;

  /** `keys rotate --in inSeconds` run at `at` (the CLI's clock), its record in KV `delay` later. */
  interface Rotate {
    at: number;
    inSeconds: number;
  }

  /** KV's history: each record and the second it reached KV, oldest first. */
  function history(commands: Rotate[], delay: number): { from: number; record: GenerationRecord }[] {
    const entries = [{ from: -Infinity, record: NO_ROTATION }];
    let current: GenerationRecord | null = null;
    for (const { at, inSeconds } of commands) {
      current = planRotation(current, at, { inSeconds, maxAccessTokenTtl: TTL, force: false }).record;
      entries.push({ from: at + delay, record: current });
    }
    return entries;
  }

  /** The records an isolate may act on at x: each one KV held at some second of (x − propagation, x]. */
  function recordsAt(entries: ReturnType<typeof history>, x: number): GenerationRecord[] {
    return entries
      .filter((entry, i) => entry.from <= x && (entries[i + 1]?.from ?? Infinity) > x - GENERATION_PROPAGATION_SECONDS)
      .map((e) => e.record);
  }

  /** The kids of planKeys(s, record).published; those of NO_ROTATION, common to every scenario, computed once. */
  const unrotated = new Map<string, string[]>();
  function publishedIds(s: number, record: GenerationRecord, schedule: ScheduleOptions): string[] {
    const compute = () => planKeys(s, record, schedule).published.map(keyRefId);
    if (record !== NO_ROTATION) return compute();
    const id = `${s};${schedule.staticGenerationZero}`;
    return unrotated.get(id) ?? (unrotated.set(id, compute()), unrotated.get(id)!);
  }

  const generationOf = (ref: KeyRef) => (ref.kind === "static" ? 0 : ref.generation);

  /** The first violations, if any: when a key signed, and when and from which record a JWKS without it was served. */
  function violations(commands: Rotate[], delay: number, schedule: ScheduleOptions): string[] {
    const entries = history(commands, delay);
    const emergency = commands.some((c) => c.inSeconds < DEFAULT_ROTATE_IN_SECONDS);
    const sinces = entries.slice(1).map((e) => e.record.since);
    const from = Math.min(...commands.map((c) => c.at)) - CACHED - 10;
    const to = Math.max(...sinces) + STALE_SIGNER_SECONDS + 10;
    // Signers at every second, and the keys among them.
    const signers: { t: number; ref: KeyRef }[] = [];
    for (let t = from; t <= to; t++)
      for (const record of recordsAt(entries, t)) signers.push({ t, ref: planKeys(t, record, schedule).signer });
    const keys = new Map(signers.map(({ ref }) => [keyRefId(ref), ref]));
    // missing[key][s - start + 1] = 1 when some JWKS served at s lacks the key (and is not the emergency's exception).
    const start = from - CACHED;
    const end = to + LIFE;
    const missing = new Map([...keys.keys()].map((id) => [id, new Uint32Array(end - start + 2)]));
    /** A record from which an isolate served a JWKS without the key at s (the emergency's exception aside). */
    const absent = (id: string, s: number, served = jwksAt(s)): GenerationRecord | undefined =>
      served.find(({ record, ids }) => !ids.includes(id) && !(emergency && record.generation < generationOf(keys.get(id)!)))?.record;
    const jwksAt = (s: number) => recordsAt(entries, s).map((record) => ({ record, ids: publishedIds(s, record, schedule) }));
    for (let s = start; s <= end; s++) {
      const served = jwksAt(s);
      for (const id of keys.keys()) if (absent(id, s, served)) missing.get(id)![s - start + 1] = 1;
    }
    for (const counts of missing.values()) for (let i = 1; i < counts.length; i++) counts[i]! += counts[i - 1]!;
    const found: string[] = [];
    for (const { t, ref } of signers) {
      const id = keyRefId(ref);
      const counts = missing.get(id)!;
      if (counts[t + LIFE - start + 1]! - counts[t - CACHED - start]! === 0) continue;
      let s = t - CACHED;
      while (!absent(id, s)) s++;
      found.push(`signed at T${t - T} with ${id}; absent from the JWKS served at T${s - T} from ${JSON.stringify(absent(id, s))}`);
      if (found.length >= 3) break;
    }
    return found;
  }

  const keySeed: ScheduleOptions = { period: P, retention: generationRetention(TTL), staticGenerationZero: false };
  const migrating: ScheduleOptions = { ...keySeed, staticGenerationZero: true };
  /** Where `since` falls relative to the boundary T: every `step` seconds, from the default notice before it to a cached JWKS's life after. */
  const sweep = (step: number) => {
    const offsets = [-STALE_SIGNER_SECONDS, -GENERATION_PROPAGATION_SECONDS, -60, -1, 0, 1];
    for (let d = -(DEFAULT_ROTATE_IN_SECONDS + 120); d <= CACHED + 30; d += step) offsets.push(d);
    return offsets;
  };
  const rotateIn = (inSeconds: number, d: number) => ({ at: T + d - inSeconds, inSeconds });

  describe.each([
    ["KEY_SEED", keySeed],
    ["SIGNING_KEY as generation 0", migrating],
  ] as const)("%s", (_, schedule) => {
    it.each([0, WRITE_DELAY])(
      "keys rotate --in 0, since swept across an epoch boundary (record in KV %i s after its clock reading)",
      (delay) => {
        for (const d of sweep(10)) expect(violations([rotateIn(0, d)], delay, schedule), `since at T${d}`).toEqual([]);
      },
    );

    it.each([0, WRITE_DELAY])(
      "keys rotate with the default notice, since swept across an epoch boundary (record in KV %i s after)",
      (delay) => {
        for (const d of sweep(10))
          expect(violations([rotateIn(DEFAULT_ROTATE_IN_SECONDS, d)], delay, schedule), `since at T${d}`).toEqual([]);
      },
    );
  });

  it.each([1, 60, 200])("keys rotate run again %i s before since, moving it later", (before) => {
    for (const d of sweep(20)) {
      const commands = [rotateIn(DEFAULT_ROTATE_IN_SECONDS, d), { at: T + d - before, inSeconds: DEFAULT_ROTATE_IN_SECONDS }];
      for (const delay of [0, WRITE_DELAY])
        expect(violations(commands, delay, keySeed), `first since at T${d}, record in KV ${delay} s after`).toEqual([]);
    }
  });

  it.each([1, 100, 400])("keys rotate --in 0 run %i s before a pending since, moving it earlier", (before) => {
    for (const d of sweep(20)) {
      const commands = [rotateIn(DEFAULT_ROTATE_IN_SECONDS, d), { at: T + d - before, inSeconds: 0 }];
      for (const delay of [0, WRITE_DELAY])
        expect(violations(commands, delay, keySeed), `first since at T${d}, record in KV ${delay} s after`).toEqual([]);
    }
  });

  it("keeps the previous generation's next key published after since: the finding's case", () => {
    // --in 0 written 60 s before the boundary T; 10 s after it, an isolate that has not read the record
    // signs with generation 0's key of the new epoch, which the JWKS served 30 s before must list.
    expect(keyRefId(planKeys(T + 10, NO_ROTATION, keySeed).signer)).toBe(key(0, E));
    expect(ids(planKeys(T - 20, { generation: 1, since: T - 60 }, keySeed).published)).toContain(key(0, E));
  });
});
