/**
 * The CLIENTS namespace as the CLI sees it: locally, the state `npm start` uses (.wrangler/state, or
 * --persist-to), through one in-process Miniflare for the whole command, exactly as `wrangler kv key
 * --local` opens it; remotely (--remote), Cloudflare's REST API (cli/cloudflare-api.ts).
 */
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { configPath, readWranglerSettings } from "./config.ts";

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

async function openLocal(target: KVTarget): Promise<KVStore> {
  const { namespaceId } = readWranglerSettings(configPath(target.config), target.env);
  const { Miniflare, convertV4MiniflareOptions } = loadMiniflare();
  // The options `wrangler kv key --local` uses, so both read and write the same files.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      script: 'addEventListener("fetch", (e) => e.respondWith(new Response(null, { status: 404 })))',
      resourcePersistencePath: join(localStateDir(target), "v3"),
      kvNamespaces: { NAMESPACE: namespaceId },
    }),
  );
  const ns = await mf.getKVNamespace("NAMESPACE");
  return {
    get: (key) => ns.get(key, "text"),
    put: (key, value) => ns.put(key, value),
    delete: (key) => ns.delete(key),
    async list(prefix) {
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await ns.list({ prefix, cursor });
        names.push(...page.keys.map((k) => k.name));
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor);
      return names;
    },
    close: () => mf.dispose(),
  };
}

/** Opens the target's namespace once; close() it when the command is done. */
export async function openStore(target: KVTarget): Promise<KVStore> {
  if (!target.remote) return openLocal(target);
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
