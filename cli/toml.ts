/**
 * TOML for clients files. Parsing uses smol-toml (the TOML 1.0 parser wrangler itself bundles, as a
 * dependency of our own: loading all of wrangler for it cost about two seconds of CPU). Writing needs
 * only the few shapes a clients file has.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse, TomlError } from "smol-toml";

export class TOMLError extends Error {
  override name = "TOMLError";
}

/** The document in `path` as plain data; errors name the file, line and column. */
export function readTOMLFile(path: string): Record<string, unknown> {
  if (extname(path) !== ".toml") throw new TOMLError(`${path}: a clients file is TOML and its name ends in .toml`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new TOMLError(`${path}: ${(error as Error).message}`);
  }
  try {
    return parse(text) as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // smol-toml's message repeats the offending line under a caret; the first line says what is wrong.
    throw new TOMLError(`${path}:${error.line}:${error.column}: ${error.message.split("\n")[0]}`);
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

export type TOMLValue = string | number | boolean | TOMLValue[] | { [key: string]: TOMLValue };

export function tomlValue(value: TOMLValue): string {
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(", ")}]`;
  // An inline table (TOML 1.0 §Inline Table): a federated identity and its claim conditions, a JWK Set and its keys.
  if (typeof value === "object")
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v)}`)
      .join(", ")} }`;
  return typeof value === "string" ? tomlString(value) : String(value);
}
