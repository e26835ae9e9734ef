/**
 * TOML for clients files. Parsing uses the TOML parser wrangler bundles (smol-toml, through
 * `experimental_readRawConfig`), since the project has no TOML package of its own; loading wrangler
 * costs about two seconds of CPU. Writing needs only the few shapes a clients file has.
 */
import { createRequire } from "node:module";
import { extname } from "node:path";

export class TOMLError extends Error {
  override name = "TOMLError";
}

/** The document in `path` as plain data; errors name the file, line and column. */
export function readTOMLFile(path: string): Record<string, unknown> {
  if (extname(path) !== ".toml") throw new TOMLError(`${path}: a clients file is TOML and its name ends in .toml`);
  const { experimental_readRawConfig } = createRequire(import.meta.url)("wrangler") as typeof import("wrangler");
  try {
    return experimental_readRawConfig({ config: path }).rawConfig as Record<string, unknown>;
  } catch (error) {
    const { location, message } = error as { location?: { line: number; column: number }; message: string };
    throw new TOMLError(location ? `${path}:${location.line}:${location.column + 1}: ${message}` : `${path}: ${message}`);
  }
}

/** A bare key when TOML allows one, else a quoted key. */
export function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

/** A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped too. */
export function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\x7f/g, "\\u007F");
}

export type TOMLValue = string | number | boolean | string[];

export function tomlValue(value: TOMLValue): string {
  if (Array.isArray(value)) return `[${value.map(tomlString).join(", ")}]`;
  return typeof value === "string" ? tomlString(value) : String(value);
}
