/**
 * Reads client records from Workers KV (docs/storage.md).
 */
import { OAuthError, StoreUnavailableError } from "../http/errors.ts";
import { BoundedCache } from "../bounded-cache.ts";
import { clientKey, isWellFormedClientId, validateClientRecord, type ClientRecord } from "./record.ts";

/** Records validated in this isolate, by their exact stored text (bounded; read-only objects). */
const PARSED_MAX_ENTRIES = 1024;
const parsed = new BoundedCache<string, ClientRecord>(PARSED_MAX_ENTRIES);

/**
 * The record for `clientId`, or null. KV unreachable → StoreUnavailableError (503); a corrupt record → 500, both logged.
 * `cacheTtl` bounds how long KV's edge cache may answer with an older value (default 60 s).
 */
export async function loadClient(kv: KVNamespace, clientId: string, options: { cacheTtl?: number } = {}): Promise<ClientRecord | null> {
  // An id no record can have is unknown without asking KV (whose keys stop at 512 bytes).
  if (!isWellFormedClientId(clientId)) return null;
  let value: string | null;
  try {
    value = await kv.get(
      clientKey(clientId),
      options.cacheTtl === undefined ? { type: "text" } : { type: "text", cacheTtl: options.cacheTtl },
    );
  } catch (error) {
    throw new StoreUnavailableError("client", "read", error);
  }
  if (value === null) return null;
  const known = parsed.get(value);
  if (known) return known;
  try {
    const record = Object.freeze(validateClientRecord(JSON.parse(value)));
    parsed.set(value, record);
    return record;
  } catch (error) {
    throw new OAuthError("server_error", "the client record could not be read", {
      reason: `corrupt record for ${clientId}: ${(error as Error).message}`,
    });
  }
}
