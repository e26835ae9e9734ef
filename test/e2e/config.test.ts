/**
 * The CLI's view of the wrangler config (cli/config.ts): read with wrangler's own reader, kept by the
 * file's hash, read again when the file changes, so a command never uses a stale namespace id.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readWranglerSettings } from "../../cli/config.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (id: string, prodId: string) => `name = "t"
main = "src/index.ts"
compatibility_date = "2026-11-01"
account_id = "acct"

[[kv_namespaces]]
binding = "CLIENTS"
id = "${id}"

[vars]
MAX_ACCESS_TOKEN_TTL = "1800"

[env.production]
[[env.production.kv_namespaces]]
binding = "CLIENTS"
id = "${prodId}"
`;

describe("wrangler config settings", () => {
  const path = join(dir, "wrangler.toml");
  const cacheFile = join(dir, ".wrangler", "tollgate", "config.json");

  it("reads each environment's CLIENTS namespace, account and MAX_ACCESS_TOKEN_TTL", () => {
    writeFileSync(path, config("aaaa", "bbbb"));
    expect(readWranglerSettings(path, undefined)).toEqual({ namespaceId: "aaaa", accountId: "acct", maxAccessTokenTtl: "1800" });
    // vars are not inherited by an environment (wrangler's rule).
    expect(readWranglerSettings(path, "production")).toEqual({ namespaceId: "bbbb", accountId: "acct", maxAccessTokenTtl: undefined });
    expect(existsSync(cacheFile)).toBe(true);
  }, 120_000);

  it("answers from the cache while the file is unchanged, and reads a changed file again", () => {
    // A planted cache entry proves the cache is used for the unchanged file...
    const cache = JSON.parse(readFileSync(cacheFile, "utf8")) as Record<string, { namespaceId: string }>;
    const key = Object.keys(cache).find((k) => k.endsWith(" "))!;
    writeFileSync(cacheFile, JSON.stringify({ ...cache, [key]: { ...cache[key], namespaceId: "from-cache" } }));
    expect(readWranglerSettings(path, undefined).namespaceId).toBe("from-cache");
    // ...and a changed file is read again, never served from an entry of its old content.
    writeFileSync(path, config("cccc", "bbbb"));
    expect(readWranglerSettings(path, undefined).namespaceId).toBe("cccc");
  }, 120_000);

  it("names the file when the CLIENTS binding is missing", () => {
    writeFileSync(path, 'name = "t"\nmain = "src/index.ts"\ncompatibility_date = "2026-11-01"\n');
    expect(() => readWranglerSettings(path, undefined)).toThrow(`${path}: no kv_namespaces entry with binding = "CLIENTS"`);
  }, 120_000);
});
