/**
 * One normalization of the request path, done once: the route is matched on its result and the
 * origin receives exactly it, so the gateway and the origin can never disagree on which path was
 * authorized (docs/security.md item 11; CVE-2019-9901, CVE-2021-29492, CVE-2021-31920).
 */
import { BearerError } from "../http/errors.ts";

const UNRESERVED = /[A-Za-z0-9._~-]/;

function badPath(reason: string): BearerError {
  return new BearerError("invalid_request", "the request path is not acceptable", { reason });
}

/** The path exactly as the client sent it, before any URL parser normalizes it. */
export function rawPathOf(url: string): string {
  const afterScheme = url.indexOf("//");
  const pathStart = url.indexOf("/", afterScheme + 2);
  if (pathStart < 0) return "/";
  const end = url.search(/[?#]/);
  return end < 0 || end < pathStart ? url.slice(pathStart) : url.slice(pathStart, end);
}

/**
 * Decodes percent-encoded unreserved characters (RFC 3986 §6.2.2.2), upper-cases the other
 * escapes, removes dot segments (§5.2.4) and repeated slashes, and keeps a trailing slash.
 * Refuses what two parsers read differently: encoded `/` or `\`, a literal `\`, NUL and other
 * control characters, `;` path parameters, and malformed escapes.
 */
export function normalizePath(raw: string): string {
  if (!raw.startsWith("/")) throw badPath("path does not start with /");
  if (/[\\;\x00-\x20\x7f]/.test(raw)) throw badPath("backslash, ';', space or control character in path");
  let decoded = "";
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== "%") {
      decoded += ch;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw badPath("malformed percent-escape");
    const byte = Number.parseInt(hex, 16);
    const char = String.fromCharCode(byte);
    if (byte === 0x2f || byte === 0x5c || byte < 0x20 || byte === 0x7f || byte === 0x3b) {
      throw badPath(`encoded ${JSON.stringify(char)} in path`);
    }
    decoded += UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    i += 2;
  }
  const segments = decoded.split("/").slice(1);
  const trailingSlash = segments.length > 1 && segments[segments.length - 1] === "";
  const out: string[] = [];
  for (const segment of segments) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `/${out.join("/")}${trailingSlash && out.length > 0 ? "/" : ""}`;
}

/** Anything foldPath must resolve segment by segment: a segment's leading or trailing white space
 * or trailing dot, `\`, an empty or dot segment (the last three only after Unicode folding). */
const NEEDS_SEGMENTS = /[.\s\u0085](?:\/|$)|\/[\s\u0085]|\\|\/\/|\/\.\.?(?:\/|$)/u;
const NON_ASCII = /[^\x00-\x7f]/;
/**
 * What String.prototype.trim (and .NET's Trim, Java's strip, Go's TrimSpace) remove at a segment's
 * ends: Unicode White_Space (U+1680, U+2028, U+2029, U+3000, …), the BOM, and U+0085 (.NET, Go).
 */
const WHITE_EDGES = /^[\s\u0085]+|[\s\u0085]+$/gu;
const TRAILING_DOTS_WHITE = /[.\s\u0085]+$/u;
/** Zero-width and format characters (soft hyphen, ZWSP, ZWJ, word joiner, BOM, …) that NFKC_Casefold drops. */
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/**
 * How origins that fold a path before routing would read it, for comparison only (never sent):
 * letter case in Unicode's full mapping (dotless ı and İ as i, ſ as s, the Kelvin sign as k, ß as
 * ss), NFKC compatibility forms (fullwidth letters, `／`, `＼`, `．`), without Default_Ignorable
 * characters (U+00AD, U+200B-U+200F, U+2060, U+FEFF: NFKC_Casefold drops them), and each segment
 * without leading or trailing white space (Unicode's, and U+0085) or trailing dots (Windows, IIS,
 * String.trim, .NET Trim, Java strip). Escapes are decoded as UTF-8 first; bytes that are not
 * UTF-8 are refused, since no fold of them can be vouched for.
 * ASCII paths without escapes (the usual case) cost one toLowerCase and one test.
 */
export function foldPath(path: string): string {
  let folded = path.toLowerCase();
  if (folded.includes("%")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw badPath("percent-encoded bytes that are not UTF-8");
    }
    // İ lowers to "i̇" in Unicode's mapping but to "i" in Java's per-character one: take the latter.
    folded = NON_ASCII.test(decoded)
      ? decoded
          .replace(/\u0130/g, "i")
          .normalize("NFKC")
          .toUpperCase()
          .toLowerCase()
          .normalize("NFKC")
          .replace(IGNORABLE, "")
      : decoded.toLowerCase();
  }
  if (!NEEDS_SEGMENTS.test(folded)) return folded;
  const out: string[] = [];
  for (const raw of folded.replace(/\\/g, "/").split("/")) {
    const segment = raw.replace(WHITE_EDGES, "");
    if (segment === "..") out.pop();
    else if (segment !== ".") {
      const trimmed = segment.replace(TRAILING_DOTS_WHITE, "");
      if (trimmed !== "") out.push(trimmed);
    }
  }
  return `/${out.join("/")}`;
}
