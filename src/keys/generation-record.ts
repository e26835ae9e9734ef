/**
 * KV `keys:generation` (docs/storage.md): the one piece of state of the key schedule, written only by
 * `tollgate keys rotate` to move every isolate to the next generation of derived keys at `since`.
 * The rules here are shared by the Worker (generation-kv.ts reads) and the CLI (writes).
 */
import { generationRetention, NO_ROTATION, type GenerationRecord } from "./schedule.ts";

export const GENERATION_KEY = "keys:generation";

export class GenerationRecordError extends Error {
  override name = "GenerationRecordError";
}

/** Generations and times are whole numbers KV and JSON carry exactly. */
const MAX_GENERATION = 1_000_000;
const MAX_SINCE = 253_402_300_799; // 9999-12-31T23:59:59Z

/** The record as stored, checked: `{"generation": g >= 1, "since": epoch seconds}` and nothing else. */
export function validateGenerationRecord(value: unknown): GenerationRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new GenerationRecordError(`${GENERATION_KEY} is not a JSON object`);
  const { generation, since, ...extra } = value as Record<string, unknown>;
  if (Object.keys(extra).length > 0)
    throw new GenerationRecordError(`${GENERATION_KEY} has unknown fields: ${Object.keys(extra).join(", ")}`);
  if (!Number.isSafeInteger(generation) || (generation as number) < 1 || (generation as number) > MAX_GENERATION) {
    throw new GenerationRecordError(`${GENERATION_KEY}.generation must be a whole number from 1 to ${MAX_GENERATION}`);
  }
  if (!Number.isSafeInteger(since) || (since as number) < 0 || (since as number) > MAX_SINCE) {
    throw new GenerationRecordError(`${GENERATION_KEY}.since must be whole epoch seconds`);
  }
  return { generation: generation as number, since: since as number };
}

export function parseGenerationRecord(raw: string): GenerationRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new GenerationRecordError(`${GENERATION_KEY} is not JSON`);
  }
  return validateGenerationRecord(parsed);
}

const isoTime = (seconds: number): string => new Date(seconds * 1000).toISOString();

export interface RotateOptions {
  /** Seconds from now until the next generation signs (0: at once, the emergency mode). */
  inSeconds: number;
  /** MAX_ACCESS_TOKEN_TTL of the target environment. */
  maxAccessTokenTtl: number;
  /** Start another rotation while the previous generation's tokens may still be live. */
  force: boolean;
}

export interface RotatePlan {
  record: GenerationRecord;
  /** What changes, for the operator. */
  note: string;
}

/**
 * The record `tollgate keys rotate` writes, given the current one (null when absent).
 * - No rotation under way: generation + 1 from now + inSeconds.
 * - A switch still ahead (now < since): the same generation, at the new time; nothing else changes.
 * - A switch done but the generation before still published (its tokens may be live): refused
 *   without `force`, since the record holds one transition and the next would stop publishing it.
 */
export function planRotation(current: GenerationRecord | null, now: number, options: RotateOptions): RotatePlan {
  const since = now + options.inSeconds;
  const record = current ?? NO_ROTATION;
  if (current !== null && now < current.since) {
    return {
      record: { generation: current.generation, since },
      note: `generation ${current.generation}, due at ${isoTime(current.since)}, now signs from ${isoTime(since)}`,
    };
  }
  const retainedUntil = record.since + generationRetention(options.maxAccessTokenTtl);
  if (current !== null && now < retainedUntil && !options.force) {
    throw new GenerationRecordError(
      `generation ${record.generation - 1} stays published until ${isoTime(retainedUntil)} for the tokens it signed; ` +
        `rotate again after that, or with --force (tokens of generation ${record.generation - 1} then stop verifying)`,
    );
  }
  const next = record.generation + 1;
  return {
    record: { generation: next, since },
    note: `generation ${next} signs from ${isoTime(since)}; generation ${record.generation} signs until then`,
  };
}
