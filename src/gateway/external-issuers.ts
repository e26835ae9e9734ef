/**
 * EXTERNAL_ISSUERS: the other OAuth servers whose access tokens gateway routes may accept (a route
 * names them in its `issuers`), parsed and validated once. A TOML array of tables under [vars]
 * arrives as an array; the same JSON as a string is accepted (`.dev.vars`, `--var`). Every error
 * names the field, as GATEWAY_ROUTES' do.
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3.8
 */
import { isAllowedRemoteUrl } from "../http/remote-url.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../policy.ts";
import { parseTableArrayVar } from "../table-vars.ts";
import { ASYMMETRIC_ALGORITHMS } from "../trusted-issuers.ts";

/** A route's `issuers` entry for Tollgate's own tokens; the default, alone. */
export const SELF = "self";
/** The `issuers` of every route that names no other: one shared array, so the hot path compares identity. */
export const SELF_ONLY: readonly string[] = Object.freeze([SELF]);

/** Where an external issuer's tokens carry their scopes: a space-separated string, or an array of strings. */
const SCOPE_CLAIMS = ["scope", "scp", "permissions", "roles"] as const;
/** The claim that becomes X-Tollgate-Client-Id. */
const CLIENT_ID_CLAIMS = ["client_id", "azp", "sub", "appid"] as const;
/** Asymmetric JWS algorithms only, as for a trusted issuer: never `none` or an HMAC, whose key the issuer would share. */
const EXTERNAL_ALGORITHMS = ASYMMETRIC_ALGORITHMS;
/** Upper bounds of the numeric fields, in seconds. */
const MAX_CLOCK_TOLERANCE = 300;
const MAX_LIFETIME = 86_400;
/** `max_lifetime` when unset: the cap of Tollgate's own tokens (MAX_ACCESS_TOKEN_TTL's default). */
const DEFAULT_MAX_LIFETIME = 3600;

export interface ExternalIssuer {
  /** The exact `iss` (RFC 8414 §2), trailing slash and all: Auth0's ends in "/", Entra ID's does not. */
  issuer: string;
  /** Its JWKS; undefined: found by OpenID Connect discovery, RFC 8414 as the fallback. */
  jwksUri: string | undefined;
  /** The `alg` values accepted (RFC 8725 §3.1). */
  algorithms: string[];
  /** `at+jwt`: RFC 9068 tokens, `typ` required; `jwt`: the plain JWTs many IdPs issue (src/tokens/external.ts). */
  tokenType: "at+jwt" | "jwt";
  scopeClaim: (typeof SCOPE_CLAIMS)[number];
  clientIdClaim: (typeof CLIENT_ID_CLAIMS)[number];
  /** Seconds of clock skew allowed on exp, nbf and iat. */
  clockTolerance: number;
  /** Seconds: the longest `exp` − `iat` accepted. */
  maxLifetime: number;
}

const FIELDS = new Set([
  "issuer",
  "jwks_uri",
  "algorithms",
  "token_type",
  "scope_claim",
  "client_id_claim",
  "clock_tolerance",
  "max_lifetime",
]);

export class ExternalIssuerConfigError extends Error {
  override name = "ExternalIssuerConfigError";
}

function fail(where: string, message: string): never {
  throw new ExternalIssuerConfigError(`EXTERNAL_ISSUERS${where}: ${message}`);
}

function oneOf<T extends string>(value: unknown, choices: readonly T[], where: string, fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    fail(where, `must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`);
  }
  return value as T;
}

function wholeSeconds(value: unknown, where: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    fail(where, `must be whole seconds from ${min} to ${max}`);
  }
  return value;
}

function parseIssuerURL(value: unknown, where: string, ownIssuer: string): string {
  if (typeof value !== "string" || value === "") fail(where, "is required: the exact iss of the issuer's tokens");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(where, "must be an absolute URL");
  }
  // RFC 8414 §2: no query or fragment.
  if (url.search || value.includes("?") || value.includes("#")) fail(where, "must not have a query or fragment");
  if (!isAllowedRemoteUrl(value, ownIssuer)) {
    fail(where, "must use https (http only for a loopback issuer while ISSUER is itself loopback http), without user or password");
  }
  if (value.replace(/\/+$/, "") === ownIssuer) fail(where, `is this server's ISSUER: name it "self" in a route's issuers instead`);
  return value;
}

function parseEntry(raw: unknown, index: number, ownIssuer: string): ExternalIssuer {
  const at = `[${index}]`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(at, "must be a table");
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!FIELDS.has(key)) fail(`${at}.${key}`, `is not a field (one of ${[...FIELDS].join(", ")})`);
  const issuer = parseIssuerURL(r.issuer, `${at}.issuer`, ownIssuer);
  let jwksUri: string | undefined;
  if (r.jwks_uri !== undefined) {
    if (typeof r.jwks_uri !== "string" || !isAllowedRemoteUrl(r.jwks_uri, ownIssuer)) {
      fail(
        `${at}.jwks_uri`,
        "must be an https URL (http only on loopback while ISSUER is loopback http), without user, password or fragment",
      );
    }
    jwksUri = r.jwks_uri;
  }
  if (
    !Array.isArray(r.algorithms) ||
    r.algorithms.length === 0 ||
    !r.algorithms.every((a) => typeof a === "string" && EXTERNAL_ALGORITHMS.includes(a)) ||
    new Set(r.algorithms).size !== r.algorithms.length
  ) {
    fail(`${at}.algorithms`, `must be a non-empty list of distinct asymmetric JWS algorithms (${EXTERNAL_ALGORITHMS.join(", ")})`);
  }
  return {
    issuer,
    jwksUri,
    algorithms: r.algorithms as string[],
    tokenType: oneOf(r.token_type, ["at+jwt", "jwt"] as const, `${at}.token_type`),
    scopeClaim: oneOf(r.scope_claim, SCOPE_CLAIMS, `${at}.scope_claim`, "scope"),
    clientIdClaim: oneOf(r.client_id_claim, CLIENT_ID_CLAIMS, `${at}.client_id_claim`, "client_id"),
    clockTolerance: wholeSeconds(r.clock_tolerance, `${at}.clock_tolerance`, 0, MAX_CLOCK_TOLERANCE, CLOCK_TOLERANCE_SECONDS),
    maxLifetime: wholeSeconds(r.max_lifetime, `${at}.max_lifetime`, 1, MAX_LIFETIME, DEFAULT_MAX_LIFETIME),
  };
}

/**
 * Parses EXTERNAL_ISSUERS (absent = none) into a map by exact issuer. `ownIssuer` is this server's
 * ISSUER: an http issuer or jwks_uri is allowed only on loopback while it is loopback http too.
 */
export function parseExternalIssuers(raw: unknown, ownIssuer: string): Map<string, ExternalIssuer> {
  const entries = parseTableArrayVar(raw, "issuer tables", (message) => fail("", message));
  const issuers = new Map<string, ExternalIssuer>();
  entries.forEach((entry, i) => {
    const parsed = parseEntry(entry, i, ownIssuer);
    if (issuers.has(parsed.issuer)) fail(`[${i}].issuer`, `repeats ${parsed.issuer}`);
    issuers.set(parsed.issuer, parsed);
  });
  return issuers;
}

/**
 * The issuers EXTERNAL_ISSUERS names, read without validating the rest (parseConfig does): for a
 * tool that checks GATEWAY_ROUTES on its own (`tollgate doctor`).
 */
export function externalIssuerNames(raw: unknown): Set<string> {
  try {
    const entries = parseTableArrayVar(raw, "issuer tables", (message) => fail("", message));
    return new Set(
      entries.flatMap((e) =>
        typeof e === "object" && e !== null && typeof (e as { issuer?: unknown }).issuer === "string"
          ? [(e as { issuer: string }).issuer]
          : [],
      ),
    );
  } catch {
    return new Set();
  }
}
