/**
 * The CLIENTS namespace as the CLI sees it: locally, the state `npm start` uses (.wrangler/state, or
 * --persist-to), read and written in place with Node's SQLite (cli/kv-files.ts), or where that
 * cannot be done (an older Node, a state Miniflare has not created yet) through one in-process
 * Miniflare for the whole command, exactly as `wrangler kv key --local` opens it; remotely
 * (--remote), Cloudflare's REST API (cli/cloudflare-api.ts).
 */
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { configPath, readWranglerSettings } from "./config.ts";
import { openFileStore } from "./kv-files.ts";

export { PROJECT_ROOT, WRANGLER } from "./config.ts";

export interface KVTarget {
  remote: boolean;
  env?: string;
  persistTo?: string;
  config?: string;
}

/** The few operations the CLI needs; values are UTF-8 text (JSON records). */
export interface KVStore {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every key name with the prefix, in key order. */
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/** wrangler's local state root for a config: --persist-to (from the working directory), else beside the config. */
export function localStateDir(target: KVTarget): string {
  return target.persistTo ? resolve(target.persistTo) : join(dirname(configPath(target.config)), ".wrangler", "state");
}

/** Wrangler's own Miniflare (its version is the one `wrangler dev` stores with), loaded as CommonJS. */
function loadMiniflare(): typeof import("miniflare") {
  const wranglerRequire = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
  return wranglerRequire(wranglerRequire.resolve("miniflare")) as typeof import("miniflare");
}

/**
 * The Worker that does the local operations: one dispatchFetch per operation is cheaper than
 * Miniflare's binding proxy (getKVNamespace), which costs a few hundred milliseconds to set up.
 */
const LOCAL_KV_WORKER = `export default {
  async fetch(request, env) {
    const { op, key, value, prefix, cursor } = await request.json();
    if (op === "get") return Response.json({ value: await env.NAMESPACE.get(key) });
    if (op === "put") return Response.json({ done: await env.NAMESPACE.put(key, value) });
    if (op === "delete") return Response.json({ done: await env.NAMESPACE.delete(key) });
    const page = await env.NAMESPACE.list({ prefix, cursor });
    return Response.json({ names: page.keys.map((k) => k.name), cursor: page.list_complete ? null : page.cursor });
  },
};`;

/** The local namespace through Miniflare and workerd, whatever the files' state: it creates them if need be. */
export async function openMiniflareStore(target: KVTarget): Promise<KVStore> {
  const { namespaceId } = readWranglerSettings(configPath(target.config), target.env);
  const { Miniflare, convertV4MiniflareOptions } = loadMiniflare();
  // The persistence `wrangler kv key --local` and `wrangler dev` use, so all read the same files.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: LOCAL_KV_WORKER,
      resourcePersistencePath: join(localStateDir(target), "v3"),
      kvNamespaces: { NAMESPACE: namespaceId },
    }),
  );
  const call = async <T>(operation: Record<string, unknown>): Promise<T> => {
    const response = await mf.dispatchFetch("http://tollgate-cli/", { method: "POST", body: JSON.stringify(operation) });
    if (!response.ok) throw new Error(`local KV ${String(operation.op)} failed: ${await response.text()}`);
    return (await response.json()) as T;
  };
  return {
    get: async (key) => (await call<{ value: string | null }>({ op: "get", key })).value,
    put: async (key, value) => void (await call({ op: "put", key, value })),
    delete: async (key) => void (await call({ op: "delete", key })),
    async list(prefix) {
      const names: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { names: string[]; cursor: string | null } = await call({ op: "list", prefix, cursor: cursor ?? undefined });
        names.push(...page.names);
        cursor = page.cursor;
      } while (cursor);
      return names;
    },
    close: () => mf.dispose(),
  };
}

/** The local namespace's files opened in place, if cli/kv-files.ts can vouch for them. */
export function openLocalFileStore(target: KVTarget): KVStore | undefined {
  const { namespaceId } = readWranglerSettings(configPath(target.config), target.env);
  return openFileStore(join(localStateDir(target), "v3", "kv"), namespaceId);
}

/** Opens the target's namespace once; close() it when the command is done. */
export async function openStore(target: KVTarget): Promise<KVStore> {
  if (!target.remote) return openLocalFileStore(target) ?? openMiniflareStore(target);
  const { openRemoteStore } = await import("./cloudflare-api.ts");
  return openRemoteStore(target);
}

async function once<T>(target: KVTarget, action: (store: KVStore) => Promise<T>): Promise<T> {
  const store = await openStore(target);
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}

/** One-shot helpers for scripts that touch a single key (npm start seeds the demo client). */
export const kvGet = (key: string, target: KVTarget): Promise<string | null> => once(target, (s) => s.get(key));
export const kvPut = (key: string, value: string, target: KVTarget): Promise<void> => once(target, (s) => s.put(key, value));
