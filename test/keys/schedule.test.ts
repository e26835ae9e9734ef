import { describe, expect, it } from "vitest";
import { CLOCK_TOLERANCE_SECONDS, DEFAULT_ROTATE_IN_SECONDS, epochOf, GENERATION_PROPAGATION_SECONDS, generationRetention, JWKS_MAX_AGE, keyRefId, NO_ROTATION, planKeys, type KeyRef, type ScheduleOptions } from "../../src/keys/schedule.ts";

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

    it("from since: generation 1 signs; generation 0 keeps its current and retired keys, not its next", () => {
      const plan = planKeys(since, record, options);
      expect(keyRefId(plan.signer)).toBe(key(1, E));
      expect(ids(plan.published)).toEqual([key(1, E), key(1, E + 1), key(1, E - 1), key(0, E), key(0, E - 1)]);
    });

    it("keeps generation 0 published for generationRetention after since, then drops it", () => {
      const retention = generationRetention(3600);
      expect(retention).toBe(GENERATION_PROPAGATION_SECONDS + 3600 + CLOCK_TOLERANCE_SECONDS);
      expect(ids(planKeys(since + retention - 1, record, options).published)).toContain(key(0, E));
      const after = ids(planKeys(since + retention, record, options).published);
      expect(after.filter((id) => id.startsWith("g=0;"))).toEqual([]);
      expect(after).toEqual([key(1, E), key(1, E + 1), key(1, E - 1)]);
    });

    it("across an epoch boundary after since, keeps generation 0's key of the epoch before (a stale isolate's tokens)", () => {
      const late = { generation: 1, since: T + P - 60 };
      const plan = planKeys(T + P + 10, late, options);
      expect(keyRefId(plan.signer)).toBe(key(1, E + 1));
      expect(ids(plan.published)).toEqual([key(1, E + 1), key(1, E + 2), key(1, E), key(0, E + 1), key(0, E)]);
    });

    it("with --in 0 (since = now) generation 1 signs at once", () => {
      expect(keyRefId(planKeys(T + 42, { generation: 1, since: T + 42 }, options).signer)).toBe(key(1, E));
    });

    it("after a second rotation, generation 1 is the previous one and generation 0 is gone", () => {
      const plan = planKeys(T + 10, { generation: 2, since: T + 5 }, options);
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
    expect(DEFAULT_ROTATE_IN_SECONDS).toBe(GENERATION_PROPAGATION_SECONDS + JWKS_MAX_AGE);
    expect(DEFAULT_ROTATE_IN_SECONDS).toBeGreaterThan(JWKS_MAX_AGE);
  });
});
