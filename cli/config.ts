/**
 * What the CLI needs from the wrangler configuration of one environment: the CLIENTS namespace id,
 * the account id (remote), MAX_ACCESS_TOKEN_TTL (`keys rotate`) and PBKDF2_ITERATIONS (new secrets). Read with wrangler's own reader
 * (its environment rules), which costs seconds to load, so the result is kept beside the config in
 * `.wrangler/tollgate/config.json`, keyed by a hash of the file: a changed file is read again.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER = resolve(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin/wrangler.js");

/** The binding the Worker reads its clients and keys:generation from (wrangler.toml). */
export const KV_BINDING = "CLIENTS";

export interface WranglerSettings {
  /** The CLIENTS namespace id: also names the local state's namespace directory. */
  namespaceId: string;
  /** `account_id` of the config, if it names one. */
  accountId: string | null;
  /** The environment's MAX_ACCESS_TOKEN_TTL var as written (undefined: unset). */
  maxAccessTokenTtl: unknown;
  /** The environment's PBKDF2_ITERATIONS var as written (undefined: unset): new secrets are hashed with it. */
  pbkdf2Iterations: unknown;
  /** The environment's ISSUER and TRUSTED_ISSUERS vars as written (undefined: unset): a federated client's issuer is checked against them. */
  issuer: unknown;
  trustedIssuers: unknown;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The config file a command uses: --config, relative to the working directory, else the project's. */
export function configPath(config: string | undefined): string {
  return config === undefined ? join(PROJECT_ROOT, "wrangler.toml") : resolve(config);
}

function readWithWrangler(path: string, env: string | undefined): WranglerSettings {
  // require(), not import(): wrangler's bundle is CommonJS, and import() would first scan all of it.
  const { unstable_readConfig } = createRequire(import.meta.url)("wrangler") as typeof import("wrangler");
  const config = unstable_readConfig({ config: path, env });
  const binding = config.kv_namespaces.find((ns: { binding: string }) => ns.binding === KV_BINDING);
  const namespaceId = binding?.id ?? binding?.preview_id;
  if (!namespaceId)
    throw new ConfigError(`${path}${env ? ` [env.${env}]` : ""}: no kv_namespaces entry with binding = "${KV_BINDING}" and an id`);
  const vars = config.vars as Record<string, unknown>;
  return {
    namespaceId,
    accountId: config.account_id ?? null,
    maxAccessTokenTtl: vars.MAX_ACCESS_TOKEN_TTL,
    pbkdf2Iterations: vars.PBKDF2_ITERATIONS,
    issuer: vars.ISSUER,
    trustedIssuers: vars.TRUSTED_ISSUERS,
  };
}

/** The settings of `env` in the config at `path`, from the cache when the file is unchanged. */
export function readWranglerSettings(path: string, env: string | undefined): WranglerSettings {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read the wrangler config ${path}: ${(error as Error).message}`);
  }
  // "v3": the settings' shape; entries of an older shape are read again.
  const key = `v3 ${createHash("sha256").update(text).digest("hex")} ${env ?? ""}`;
  const cacheFile = join(dirname(path), ".wrangler", "tollgate", "config.json");
  let cache: Record<string, WranglerSettings> = {};
  try {
    cache = JSON.parse(readFileSync(cacheFile, "utf8")) as Record<string, WranglerSettings>;
  } catch {
    // no cache yet, or an unreadable one: read the config
  }
  const cached = cache[key];
  if (cached && typeof cached.namespaceId === "string") return cached;
  const settings = readWithWrangler(path, env);
  try {
    // Only entries of the file as it is now are kept.
    const hash = key.split(" ")[0]!;
    const kept = Object.fromEntries(Object.entries(cache).filter(([k]) => k.startsWith(hash)));
    mkdirSync(dirname(cacheFile), { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ ...kept, [key]: settings }));
    renameSync(tmp, cacheFile);
  } catch {
    // a read-only checkout still works, only slower
  }
  return settings;
}
