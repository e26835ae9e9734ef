/**
 * TRUSTED_ISSUERS: the external token issuers (GitHub Actions, a Kubernetes cluster, GitLab CI) whose
 * tokens a workload-identity client may present instead of a secret. The only issuers whose keys
 * Tollgate ever fetches; a `[[vars.TRUSTED_ISSUERS]]` table array in wrangler.toml, or the same JSON
 * as a string. Every error names the field: `TRUSTED_ISSUERS[0].issuer: ...`.
 */
import { isAllowedRemoteUrl } from "./http/remote-url.ts";
import { parseTableArrayVar } from "./table-vars.ts";

export interface TrustedIssuer {
  /** The `iss` its tokens carry, compared exactly (no trailing-slash or case folding). */
  issuer: string;
  /** Where its keys are; when absent, the jwks_uri of its discovery document. */
  jwksUri?: string;
  /** The JWS algorithms accepted from it, asymmetric only. */
  algorithms: string[];
  /** Seconds: the longest lifetime (exp - iat) a token of this issuer may have. */
  maxTokenLifetime: number;
}

/** Asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1); never `none` or HMAC. EXTERNAL_ISSUERS takes the same. */
export const ASYMMETRIC_ALGORITHMS = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA", "Ed25519"];
/** `algorithms` when unset: what GitHub Actions, GitLab and Kubernetes sign with (RS256), and the usual others. */
export const DEFAULT_ISSUER_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
/**
 * `max_token_lifetime` when unset: an hour, the default of a Kubernetes projected service-account
 * token (GitHub's live minutes). At most a day.
 */
export const DEFAULT_MAX_TOKEN_LIFETIME = 3600;
const MAX_MAX_TOKEN_LIFETIME = 86_400;
const MAX_TRUSTED_ISSUERS = 50;
const FIELDS = new Set(["issuer", "jwks_uri", "algorithms", "max_token_lifetime"]);

export class TrustedIssuerError extends Error {
  override name = "TrustedIssuerError";
}

function fail(field: string, message: string): never {
  throw new TrustedIssuerError(`TRUSTED_ISSUERS${field}: ${message}`);
}

function parseIssuerEntry(value: unknown, i: number, ownIssuer: string): TrustedIssuer {
  const at = `[${i}]`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(at, "must be a table (an object)");
  const entry = value as Record<string, unknown>;
  for (const name of Object.keys(entry)) if (!FIELDS.has(name)) fail(`${at}.${name}`, `is not a field (${[...FIELDS].join(", ")})`);
  const issuer = entry.issuer;
  if (typeof issuer !== "string" || issuer === "") fail(`${at}.issuer`, "must be the issuer's URL, exactly as its tokens' iss");
  if (issuer.includes("?")) fail(`${at}.issuer`, "must not have a query");
  if (!isAllowedRemoteUrl(issuer, ownIssuer)) {
    fail(`${at}.issuer`, `must be an https URL (http only on localhost, while ISSUER is too), got ${JSON.stringify(issuer)}`);
  }
  if (issuer.replace(/\/$/, "") === ownIssuer) fail(`${at}.issuer`, "is this server's own ISSUER");
  let jwksUri: string | undefined;
  if (entry.jwks_uri !== undefined) {
    if (typeof entry.jwks_uri !== "string" || !isAllowedRemoteUrl(entry.jwks_uri, ownIssuer)) {
      fail(`${at}.jwks_uri`, `must be an https URL (http only on localhost, while ISSUER is too), got ${JSON.stringify(entry.jwks_uri)}`);
    }
    jwksUri = entry.jwks_uri;
  }
  let algorithms = DEFAULT_ISSUER_ALGORITHMS;
  if (entry.algorithms !== undefined) {
    if (!Array.isArray(entry.algorithms) || entry.algorithms.length === 0) fail(`${at}.algorithms`, "must be a non-empty array");
    for (const alg of entry.algorithms) {
      if (typeof alg !== "string" || !ASYMMETRIC_ALGORITHMS.includes(alg)) {
        fail(`${at}.algorithms`, `${JSON.stringify(alg)} is not an asymmetric JWS algorithm (${ASYMMETRIC_ALGORITHMS.join(", ")})`);
      }
    }
    algorithms = [...new Set(entry.algorithms as string[])];
  }
  let maxTokenLifetime = DEFAULT_MAX_TOKEN_LIFETIME;
  if (entry.max_token_lifetime !== undefined) {
    const raw = entry.max_token_lifetime;
    const lifetime = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw;
    if (!Number.isSafeInteger(lifetime) || (lifetime as number) < 1 || (lifetime as number) > MAX_MAX_TOKEN_LIFETIME) {
      fail(`${at}.max_token_lifetime`, `must be whole seconds from 1 to ${MAX_MAX_TOKEN_LIFETIME}, got ${JSON.stringify(raw)}`);
    }
    maxTokenLifetime = lifetime as number;
  }
  return { issuer, ...(jwksUri === undefined ? {} : { jwksUri }), algorithms, maxTokenLifetime };
}

/**
 * Parses TRUSTED_ISSUERS (an array, or the same as a JSON string; unset = none) against `ownIssuer`
 * (this server's ISSUER, for the loopback http rule). Throws TrustedIssuerError naming the field.
 */
export function parseTrustedIssuers(raw: unknown, ownIssuer: string): TrustedIssuer[] {
  const value = parseTableArrayVar(raw, "tables ([[vars.TRUSTED_ISSUERS]])", (message) => fail("", message));
  if (value.length > MAX_TRUSTED_ISSUERS) fail("", `lists more than ${MAX_TRUSTED_ISSUERS} issuers`);
  const issuers = value.map((entry, i) => parseIssuerEntry(entry, i, ownIssuer));
  issuers.forEach((entry, i) => {
    if (issuers.findIndex((other) => other.issuer === entry.issuer) !== i) fail(`[${i}].issuer`, `repeats ${entry.issuer}`);
  });
  return issuers;
}

/** The trusted issuer whose identifier is exactly `issuer`, if any. */
export function findTrustedIssuer(issuers: readonly TrustedIssuer[], issuer: string): TrustedIssuer | undefined {
  return issuers.find((entry) => entry.issuer === issuer);
}
