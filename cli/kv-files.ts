/**
 * The local KV state read and written in place: the files `wrangler dev` (Miniflare) keeps, opened
 * with Node's built-in SQLite (node:sqlite, Node 22.13 and later) instead of starting Miniflare and
 * workerd, which costs a second or more per command (docs/benchmarks.md, "CLI").
 *
 * Miniflare's layout (wrangler 4.156), under `<state>/v3/kv/`:
 * - `miniflare-KVNamespaceObject/<object id>.sqlite`: table `_mf_entries(key, blob_id, expiration,
 *   metadata)`, one row per key; `expiration` in epoch milliseconds or NULL. `<object id>` is the
 *   Durable Object id workerd gives `idFromName(<namespace id>)` in the namespace whose unique key
 *   is `miniflare-KVNamespaceObject` (objectId below).
 * - `<namespace id>/blobs/<blob id>`: the value's bytes. A blob id is 32 random bytes and the
 *   creation time in milliseconds (64-bit big-endian), in hex; blobs are never changed in place.
 *
 * Writes follow Miniflare's own (KeyValueStorage in its shared worker code): the value to a new
 * blob, then the row in one transaction, then the replaced blob deleted. workerd opens the database
 * through SQLite's native file locking (WAL), so this is safe while `wrangler dev` runs, as a second
 * Miniflare on the same files was before. Miniflare keeps no cache of its own in front of the
 * database, so the Worker reads a change on its next KV read (its isolate's caches aside).
 *
 * openFileStore answers undefined when it cannot vouch for the files: no node:sqlite, a namespace
 * Miniflare has not created yet, a table of another shape, a namespace id Miniflare would rename on
 * disk. The caller then starts Miniflare (cli/kv.ts). test/e2e/kv-files.test.ts round-trips values
 * between this and Miniflare, and fails when the layout changes.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import type { KVStore } from "./kv.ts";

const OBJECT_UNIQUE_KEY = "miniflare-KVNamespaceObject";
const COLUMNS = "key,blob_id,expiration,metadata";
/** How long a write waits for `wrangler dev`'s own transaction to finish. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * workerd's idFromName: HMAC-SHA256 of the name under SHA-256(unique key), its first 16 bytes,
 * followed by the first 16 bytes of the same HMAC of those.
 */
export function objectId(name: string): string {
  const key = createHash("sha256").update(OBJECT_UNIQUE_KEY).digest();
  const base = createHmac("sha256", key).update(name).digest().subarray(0, 16);
  const mac = createHmac("sha256", key).update(base).digest().subarray(0, 16);
  return Buffer.concat([base, mac]).toString("hex");
}

/** node:sqlite, without its ExperimentalWarning on stderr; undefined where Node lacks it (or wants a flag). */
function loadSqlite(): typeof import("node:sqlite") | undefined {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (rest[0] === "ExperimentalWarning" && String(warning).includes("SQLite")) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return process.getBuiltinModule?.("node:sqlite") as typeof import("node:sqlite") | undefined;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** A blob id as Miniflare makes them (generateBlobId). */
function newBlobId(): string {
  const id = Buffer.alloc(40);
  randomBytes(32).copy(id);
  id.writeBigInt64BE(BigInt(Date.now()), 32);
  return id.toString("hex");
}

/** Miniflare's rules for key names (validateKey); values are checked by the callers' record rules. */
function checkKey(key: string): void {
  if (key === "" || key === "." || key === ".." || Buffer.byteLength(key) > 512) throw new Error(`invalid KV key ${JSON.stringify(key)}`);
}

function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/**
 * The namespace `namespaceId` of the Miniflare KV state at `kvRoot` (`<state>/v3/kv`), opened in
 * place; undefined when that cannot be done safely (above).
 */
export function openFileStore(kvRoot: string, namespaceId: string): KVStore | undefined {
  // Miniflare would store other ids under a sanitised directory name: leave those to it.
  if (!/^[0-9A-Za-z_-]{1,64}$/.test(namespaceId) || /^(con|prn|aux|nul|com\d|lpt\d)$/i.test(namespaceId)) return undefined;
  const dbPath = join(kvRoot, OBJECT_UNIQUE_KEY, `${objectId(namespaceId)}.sqlite`);
  if (!existsSync(dbPath)) return undefined;
  const sqlite = loadSqlite();
  if (!sqlite) return undefined;
  let db: DatabaseSync | undefined;
  try {
    db = new sqlite.DatabaseSync(dbPath);
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // workerd does not wait for a lock: a Worker's KV write that meets one of these transactions
    // fails (SQLITE_BUSY, a 500 from KV). Without a sync per commit (WAL keeps the database
    // consistent; a power cut may lose the last commits) a write holds the lock for well under a
    // millisecond instead of a disk flush.
    db.exec("PRAGMA synchronous = NORMAL");
    const columns = db.prepare("SELECT name FROM pragma_table_info('_mf_entries') ORDER BY cid").all();
    if (columns.map((c) => c.name).join(",") !== COLUMNS) throw new Error("not Miniflare's table");
  } catch {
    db?.close();
    return undefined;
  }
  const blobs = join(kvRoot, namespaceId, "blobs");
  const blobPath = (id: string) => join(blobs, id);
  const selectRow = db.prepare("SELECT blob_id, expiration FROM _mf_entries WHERE key = ?");
  const selectBlobId = db.prepare("SELECT blob_id FROM _mf_entries WHERE key = ?");
  const upsert = db.prepare("INSERT OR REPLACE INTO _mf_entries (key, blob_id, expiration, metadata) VALUES (?, ?, NULL, NULL)");
  const remove = db.prepare("DELETE FROM _mf_entries WHERE key = ? RETURNING blob_id");
  const list = db.prepare(
    `SELECT key FROM _mf_entries WHERE substr(key, 1, length(?1)) = ?1 AND (expiration IS NULL OR expiration >= ?2) ORDER BY key`,
  );
  type Row = { blob_id: string; expiration: number | null };

  return {
    async get(key) {
      checkKey(key);
      let previous: string | undefined;
      // A blob can vanish between reading its row and reading it when a write replaces the value
      // (Miniflare's, or another CLI's): then the row names the new one.
      for (;;) {
        const row = selectRow.get(key) as Row | undefined;
        if (row === undefined || (row.expiration !== null && row.expiration <= Date.now())) return null;
        try {
          return readFileSync(blobPath(row.blob_id), "utf8");
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT" || row.blob_id === previous) throw error;
          previous = row.blob_id;
        }
      }
    },
    async put(key, value) {
      checkKey(key);
      const blobId = newBlobId();
      mkdirSync(blobs, { recursive: true });
      writeFileSync(blobPath(blobId), value, { flag: "wx" });
      let replaced: string | undefined;
      try {
        db.exec("BEGIN IMMEDIATE");
        try {
          replaced = (selectBlobId.get(key) as { blob_id: string } | undefined)?.blob_id;
          upsert.run(key, blobId);
          db.exec("COMMIT");
        } catch (error) {
          try {
            db.exec("ROLLBACK");
          } catch {
            // the failed statement already ended the transaction
          }
          throw error;
        }
      } catch (error) {
        unlinkIfThere(blobPath(blobId));
        throw error;
      }
      if (replaced !== undefined) unlinkIfThere(blobPath(replaced));
    },
    async delete(key) {
      checkKey(key);
      const row = remove.get(key) as { blob_id: string } | undefined;
      if (row !== undefined) unlinkIfThere(blobPath(row.blob_id));
    },
    async list(prefix) {
      return list.all(prefix, Date.now()).map((row) => row.key as string);
    },
    async close() {
      db.close();
    },
  };
}
