/**
 * The bearer check on a protected route: RFC 6750 token extraction, RFC 9068 §4 validation with
 * the RFC 8725 rules, and the route's scopes.
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
import { errors, jwtVerify, type JWSHeaderParameters, type JWTPayload } from "jose";
import { BearerError } from "../http/errors.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../policy.ts";
import type { SigningKeys } from "../keys/signing.ts";
import type { AccessTokenClaims } from "./mint.ts";
import { getVerifiedToken, hasAudience, rememberVerifiedToken } from "./verified-cache.ts";

/** Tokens longer than this are refused before any decoding (docs/security.md item 15). Ours are ~600 bytes. */
export const MAX_TOKEN_LENGTH = 4096;

/** RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The token from `Authorization: Bearer`, undefined when the request carries none.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function extractBearerToken(headers: Headers): string | undefined {
  const authorization = headers.get("Authorization");
  if (authorization === null || !/^bearer(\s|$)/i.test(authorization)) return undefined;
  // Several Authorization headers arrive joined by ", ", which a b64token cannot contain.
  const match = BEARER.exec(authorization);
  if (!match) throw new BearerError("invalid_request", "the Authorization header is not a single Bearer token");
  if (match[1]!.length > MAX_TOKEN_LENGTH)
    throw new BearerError("invalid_token", "the access token is too large", { reason: `token of ${match[1]!.length} characters` });
  return match[1];
}

/** The 401 invalid_token of every refused access token (RFC 6750 §3.1); `reason` goes to the log only. */
export function invalidToken(reason: string, description = "the access token is invalid"): BearerError {
  return new BearerError("invalid_token", description, { reason });
}

export interface VerifyOptions {
  issuer: string;
  /**
   * The resource the token must name (RFC 9068 §4). Undefined at /revoke and /introspect, which
   * take any token of this issuer whatever its audience.
   */
  audience?: string;
  maxLifetime: number;
  /**
   * A token past `exp` (beyond the clock tolerance) still verifies, every other rule holding: /revoke
   * and /introspect decide themselves what an expired token means (RFC 7009 §2.2, RFC 7662 §2.2).
   */
  allowExpired?: boolean;
  /** For tests that freeze time. */
  currentDate?: Date;
}

/**
 * The one verifier of access tokens, for the gateway, the admin API, /revoke and /introspect alike:
 * signature, header and claims (RFC 9068 §4, RFC 8725); throws BearerError invalid_token on any
 * failure (RFC 8725 §3.3). A token this isolate verified before skips the signature (verified-cache.ts).
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export async function verifyAccessToken(token: string, keys: SigningKeys, options: VerifyOptions): Promise<AccessTokenClaims> {
  // docs/security.md item 15: refused before any decoding.
  if (token.length > MAX_TOKEN_LENGTH) throw invalidToken(`token of ${token.length} characters`, "the access token is too large");
  const now = Math.floor((options.currentDate ?? new Date()).getTime() / 1000);
  const cached = getVerifiedToken(keys, token, now);
  if (cached) {
    if (options.audience !== undefined && !hasAudience(cached, options.audience))
      throw invalidToken(`aud ${JSON.stringify(cached.aud)} does not include ${options.audience}`);
    return cached;
  }
  const { claims, expired, kid } = await verifyUncached(token, keys, options, now);
  if (!expired) rememberVerifiedToken(keys, token, claims, kid);
  return claims;
}

/** RFC 8725 §3.10: a token naming or carrying its own key (or a key URL) is refused, before any key is looked up or fetched. */
export function refuseKeyReferences(header: JWSHeaderParameters): void {
  for (const member of ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"] as const) {
    if (header[member] !== undefined) throw invalidToken(`header carries ${member}`);
  }
}

/**
 * The verification key a JWS header names: one of this issuer's keys by `kid`, nothing else.
 * Throws BearerError invalid_token otherwise.
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3.10
 */
function keyResolver(keys: SigningKeys): (header: JWSHeaderParameters) => CryptoKey {
  return (header) => {
    refuseKeyReferences(header);
    const key = typeof header.kid === "string" ? keys.verifiers.get(header.kid) : undefined;
    if (!key) throw invalidToken(`unknown kid ${JSON.stringify(String(header.kid).slice(0, 64))}`);
    return key;
  };
}

async function verifyUncached(
  token: string,
  keys: SigningKeys,
  options: VerifyOptions,
  now: number,
): Promise<{ claims: AccessTokenClaims; expired: boolean; kid: unknown }> {
  let payload: JWTPayload;
  let kid: unknown;
  let expired = false;
  try {
    ({
      payload,
      protectedHeader: { kid },
    } = await jwtVerify(token, keyResolver(keys), {
      algorithms: ["ES256"],
      typ: "at+jwt",
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ["exp", "iat", "sub", "client_id", "jti"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: options.currentDate,
    }));
  } catch (error) {
    if (error instanceof BearerError) throw error;
    if (error instanceof errors.JWTExpired) {
      if (!options.allowExpired) throw invalidToken(error.message, "the access token has expired");
      // jose checks typ, iss, aud, the required claims and nbf before exp (bearer.test.ts pins
      // this), so only the expiry failed; the checks below hold for this token too.
      payload = error.payload;
      expired = true;
    } else if (error instanceof errors.JOSEError) {
      throw invalidToken(`${error.code}: ${error.message}`);
    } else {
      throw invalidToken(`verification error: ${(error as Error).message}`);
    }
  }
  return { claims: checkClaims(payload, now, options.maxLifetime), expired, kid };
}

/** RFC 7519 §4.1.3: a string or a non-empty array of strings. */
function isAudience(value: unknown): value is string | string[] {
  return typeof value === "string" || (Array.isArray(value) && value.length > 0 && value.every((a) => typeof a === "string"));
}

/** The rules jose's options do not express; exp, iat and nbf are numbers (jose checked their type). */
function checkClaims(payload: JWTPayload, now: number, maxLifetime: number): AccessTokenClaims {
  const { sub, client_id, jti, aud, scope, exp, iat, tg_inst } = payload as Record<string, unknown>;
  if (typeof sub !== "string" || typeof client_id !== "string" || typeof jti !== "string") {
    throw invalidToken("sub, client_id and jti must be strings");
  }
  if (!isAudience(aud)) throw invalidToken("aud must be a string or an array of strings");
  if (tg_inst !== undefined && typeof tg_inst !== "string") throw invalidToken("tg_inst must be a string");
  // docs/security.md item 10: a scope claim of the wrong type grants nothing (403 where scopes are needed).
  if (scope !== undefined && typeof scope !== "string") delete payload.scope;
  // docs/security.md item 8: iat not in the future, and a lifetime of at least a second and at most the cap.
  if ((iat as number) > now + CLOCK_TOLERANCE_SECONDS) throw invalidToken(`iat ${iat as number} is in the future`);
  const lifetime = (exp as number) - (iat as number);
  if (!(lifetime > 0 && lifetime <= maxLifetime)) throw invalidToken(`lifetime ${lifetime} s not within 1..${maxLifetime}`);
  return payload as unknown as AccessTokenClaims;
}

/** 403 insufficient_scope naming every scope the route needs (RFC 6750 §3.1). */
export function checkScopes(claims: AccessTokenClaims, required: string[]): void {
  if (required.length === 0) return;
  const granted = new Set((claims.scope ?? "").split(" "));
  const missing = required.filter((s) => !granted.has(s));
  if (missing.length > 0) {
    throw new BearerError("insufficient_scope", "the access token lacks a scope this request needs", {
      scope: required.join(" "),
      reason: `missing ${missing.join(" ")} (client ${claims.client_id})`,
    });
  }
}
