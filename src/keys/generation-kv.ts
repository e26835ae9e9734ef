/**
 * The Worker's reading of KV `keys:generation` (generation-record.ts, docs/storage.md), cached per isolate.
 */
import { logEvent } from "../http/log.ts";
import { GENERATION_KEY, parseGenerationRecord } from "./generation-record.ts";
import { NO_ROTATION, type GenerationRecord } from "./schedule.ts";

/** Per-isolate cache of the record, and KV's edge cache (cacheTtl, whose minimum is 30). */
export const GENERATION_CACHE_SECONDS = 30;

interface CachedRecord {
  record: GenerationRecord;
  /** Read from KV at least once (else `record` is the default). */
  known: boolean;
  /** Date.now() until which `record` is used without asking KV. */
  freshUntil: number;
}

const records = new WeakMap<KVNamespace, CachedRecord>();

/** KV failed before this isolate ever read the record: no key set can be trusted yet. */
export class GenerationUnavailableError extends Error {
  override name = "GenerationUnavailableError";
}

/**
 * The record in this namespace, read at most every GENERATION_CACHE_SECONDS per isolate. When KV
 * fails, the last value read stays in use and the failure is logged; with none read yet it throws
 * GenerationUnavailableError (503); a malformed record throws GenerationRecordError. Each request reads for itself:
 * a KV read is I/O of the request that started it, not to be awaited by another.
 */
export async function readGenerationRecord(kv: KVNamespace, nowMs = Date.now()): Promise<GenerationRecord> {
  let cached = records.get(kv);
  if (cached && nowMs < cached.freshUntil) return cached.record;
  if (!cached) {
    cached = { record: NO_ROTATION, known: false, freshUntil: 0 };
    records.set(kv, cached);
  }
  let raw: string | null;
  try {
    raw = await kv.get(GENERATION_KEY, { cacheTtl: GENERATION_CACHE_SECONDS });
  } catch (error) {
    logEvent("key_generation_unreadable", {
      level: "error",
      reason: (error as Error).message,
      generation: cached.record.generation,
      since: cached.record.since,
      known: cached.known,
    });
    // Never read in this isolate: guessing generation 0 could sign with, publish and accept keys the
    // other isolates have left behind, so refuse (503) and try again on the next request.
    if (!cached.known) throw new GenerationUnavailableError(`keys:generation could not be read yet: ${(error as Error).message}`);
    cached.freshUntil = nowMs + GENERATION_CACHE_SECONDS * 1000;
    return cached.record;
  }
  const record = raw === null ? NO_ROTATION : parseGenerationRecord(raw);
  records.set(kv, { record, known: true, freshUntil: nowMs + GENERATION_CACHE_SECONDS * 1000 });
  return record;
}
