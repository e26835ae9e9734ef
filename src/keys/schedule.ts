/**
 * The key schedule under KEY_SEED: which derived key signs and which are published at a given
 * second. A pure function of the time, ROTATION_PERIOD and the `keys:generation` record, so every
 * isolate that agrees on those agrees on the keys; nothing is stored or written on a schedule.
 *
 * Time is cut into epochs of ROTATION_PERIOD seconds. In epoch e, generation g:
 * - key(g, e) signs;
 * - key(g, e + 1) is published a whole period before it signs (the next key);
 * - key(g, e - 1) stays published a whole period after it stopped signing (the retired key), longer
 *   than any token it signed can live, since ROTATION_PERIOD >= MAX_ACCESS_TOKEN_TTL + JWKS_MAX_AGE
 *   + CLOCK_TOLERANCE_SECONDS (config.ts).
 * `tollgate keys rotate` moves to generation g + 1 at `since`: before it both generations' sets are
 * published; after it generation g's current and retired keys stay published for generationRetention,
 * and its next key for STALE_SIGNER_SECONDS, as long as an isolate that has not read the record yet
 * may sign with generation g (and with that key, once an epoch boundary passes).
 */

import { CLOCK_TOLERANCE_SECONDS, JWKS_MAX_AGE } from "../policy.ts";

/**
 * The longest an isolate is assumed to go on with an older `keys:generation` record once KV holds a
 * newer one: 30 s in its own cache (generation-kv.ts), 30 s in KV's edge cache (cacheTtl), and as
 * much again for KV's propagation between locations. (An isolate whose KV reads fail keeps its record
 * longer, and logs it: README, "Rotate now".) Within it a stale isolate still signs with the previous
 * generation: see STALE_SIGNER_SECONDS.
 */
export const GENERATION_PROPAGATION_SECONDS = 120;

/**
 * How long after the clock reading `since` counts from the record may reach KV: the time `keys rotate`
 * takes to write it, and the error of the clock it read, which the CLI checks against Cloudflare's
 * and corrects beyond a few seconds (cli/clock.ts).
 */
export const ROTATE_WRITE_SECONDS = 30;

/**
 * How long after `since` an isolate may still sign with the previous generation: the record may
 * reach KV ROTATE_WRITE_SECONDS after `since` (with `--in 0`), and every isolate reads it
 * GENERATION_PROPAGATION_SECONDS after that.
 */
export const STALE_SIGNER_SECONDS = ROTATE_WRITE_SECONDS + GENERATION_PROPAGATION_SECONDS;

/**
 * `tollgate keys rotate` without --in: by `since`, every isolate has read the record and every JWKS a
 * resource server may still hold (JWKS_MAX_AGE, by a clock up to CLOCK_TOLERANCE_SECONDS apart) lists
 * the new generation.
 */
export const DEFAULT_ROTATE_IN_SECONDS = STALE_SIGNER_SECONDS + JWKS_MAX_AGE + CLOCK_TOLERANCE_SECONDS;

/**
 * KV `keys:generation` (docs/storage.md): generation `generation` signs from `since` (epoch
 * seconds), generation - 1 before it. Absent: generation 0 since 0.
 */
export interface GenerationRecord {
  generation: number;
  since: number;
}

export const NO_ROTATION: GenerationRecord = { generation: 0, since: 0 };

/** One key of the schedule: a derived key, or the static SIGNING_KEY set standing in for generation 0. */
export type KeyRef = { kind: "derived"; generation: number; epoch: number } | { kind: "static" };

export interface KeyPlan {
  signer: KeyRef;
  /** Every key to publish and accept, the signer first, each once. */
  published: KeyRef[];
}

export interface ScheduleOptions {
  /** ROTATION_PERIOD, seconds. */
  period: number;
  /** How long after `since` the previous generation's keys stay published (generationRetention). */
  retention: number;
  /** SIGNING_KEY is set beside KEY_SEED: it is generation 0 (the migration path, README). */
  staticGenerationZero: boolean;
}

/**
 * How long the previous generation stays published after `since`: the longest token it can have
 * signed (MAX_ACCESS_TOKEN_TTL, by an isolate up to STALE_SIGNER_SECONDS late in seeing the record)
 * plus the verifiers' clock tolerance.
 */
export function generationRetention(maxAccessTokenTtl: number): number {
  return STALE_SIGNER_SECONDS + maxAccessTokenTtl + CLOCK_TOLERANCE_SECONDS;
}

export function epochOf(now: number, period: number): number {
  return Math.floor(now / period);
}

export function keyRefId(ref: KeyRef): string {
  return ref.kind === "static" ? "static" : `g=${ref.generation};e=${ref.epoch}`;
}

/** The keys of generation `generation` around epoch `epoch`: the given offsets (0 current, 1 next, -1 retired). */
function generationKeys(generation: number, epoch: number, offsets: number[], options: ScheduleOptions): KeyRef[] {
  if (generation === 0 && options.staticGenerationZero) return [{ kind: "static" }];
  return offsets.map((offset) => ({ kind: "derived", generation, epoch: epoch + offset }));
}

/** The signer and the published keys at `now` (epoch seconds). */
export function planKeys(now: number, record: GenerationRecord, options: ScheduleOptions): KeyPlan {
  const epoch = epochOf(now, options.period);
  const switched = now >= record.since;
  const generation = switched ? record.generation : record.generation - 1;
  const [signer, ...rest] = generationKeys(generation, epoch, [0, 1, -1], options);
  const published: KeyRef[] = [signer!, ...rest];
  if (!switched) {
    // Before `since`: the coming generation is published while the current one signs.
    published.push(...generationKeys(record.generation, epoch, [0, 1, -1], options));
  } else if (record.generation > 0 && now < record.since + options.retention) {
    // After `since`: the previous generation's tokens live on, and an isolate yet to read the record
    // signs with its next key if an epoch begins meanwhile: a JWKS cached now must already list it.
    const offsets = now < record.since + STALE_SIGNER_SECONDS ? [0, 1, -1] : [0, -1];
    published.push(...generationKeys(record.generation - 1, epoch, offsets, options));
  }
  const seen = new Set<string>();
  return { signer: signer!, published: published.filter((ref) => !seen.has(keyRefId(ref)) && seen.add(keyRefId(ref))) };
}
