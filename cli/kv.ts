/**
 * Client records through wrangler's `kv key` commands: the local state `npm start` uses (Miniflare's
 * KV under .wrangler/state, or --persist-to), or the deployed namespace with --remote.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER = resolve(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin/wrangler.js");

export interface KVTarget {
  remote: boolean;
  env?: string;
  persistTo?: string;
  config?: string;
}

export class WranglerError extends Error {
  override name = "WranglerError";
}

function run(args: string[], target: KVTarget): Promise<string> {
  const full = ["kv", "key", ...args, "--binding", "CLIENTS"];
  if (target.remote) full.push("--remote");
  else {
    full.push("--local");
    if (target.persistTo) full.push("--persist-to", resolve(target.persistTo));
  }
  if (target.env) full.push("--env", target.env);
  if (target.config) full.push("--config", resolve(target.config));
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      [WRANGLER, ...full],
      {
        cwd: PROJECT_ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) reject(new WranglerError(`wrangler ${args[0]} failed: ${(stderr || stdout || error.message).trim()}`));
        else resolvePromise(stdout);
      },
    );
  });
}

export async function kvGet(key: string, target: KVTarget): Promise<string | null> {
  const out = await run(["get", key, "--text"], target);
  // wrangler prints this (exit 0) for a missing key; stored values are JSON, never this text.
  return out.trim() === "Value not found" ? null : out;
}

export async function kvPut(key: string, value: string, target: KVTarget): Promise<void> {
  await run(["put", key, value], target);
}

export async function kvDelete(key: string, target: KVTarget): Promise<void> {
  await run(["delete", key], target);
}

export async function kvList(prefix: string, target: KVTarget): Promise<string[]> {
  const out = await run(["list", "--prefix", prefix], target);
  return (JSON.parse(out) as { name: string }[]).map((k) => k.name);
}
