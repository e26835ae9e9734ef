/**
 * `private_key_jwt`: verifies a client's own signed assertion against the keys of its record (inline
 * `jwks`, or its `jwks_uri`), then spends its `jti` once, network-wide (jti-guard.ts). The rules and
 * why: docs/security.md, "Client assertions (`private_key_jwt`)".
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-3
 * @see https://datatracker.ietf.org/doc/draft-ietf-oauth-rfc7523bis/ (audience, explicit typing)
 */
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from "jose";
import { getConfig } from "../config.ts";
import type { ClientRecord } from "../clients/record.ts";
import { ASSERTION_ALGORITHMS, MAX_CLIENT_KEYS, MAX_JTI_LENGTH } from "../clients/client-keys.ts";
import { isAllowedRemoteUrl, KeySetUnavailableError, remoteKeySet } from "../keys/remote-key-set.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../policy.ts";
import { useJtiOnce } from "./jti-guard.ts";

/** Longest an assertion may live, from `iat` (or now, without one) to `exp`. */
const MAX_ASSERTION_LIFETIME_SECONDS = 300;

/**
 * `typ` values taken for a client assertion: draft-ietf-oauth-rfc7523bis's explicit type (also as a
 * full media type, compared without case: RFC 7515 §4.1.9), the generic "JWT", or none. Any other
 * explicit type names another kind of JWT (RFC 8725 §3.11) and is refused.
 */
const ACCEPTED_TYPES = new Set(["client-authentication+jwt", "application/client-authentication+jwt", "jwt", "application/jwt"]);

/** RFC 8725 §3.10: a key named by the token itself is never used, nor fetched. */
export const KEY_REFERENCES = ["jku", "x5u", "jwk", "x5c"] as const;

export type AssertionResult = { ok: true } | { ok: false; reason: string };

/**
 * The log reason of an assertion's failed verification, a client assertion's or a platform token's:
 * its keys unavailable or its header refused, jose's coded error, or a key jose (TypeError) or Web
 * Crypto (DOMException) will not use (an RSA modulus under 2048 bits, a wrong key type, an EC point
 * off its curve): each a refusal, not a 500. Anything else is rethrown. `prefix` words the first two.
 */
export function verificationRefusal(error: unknown, prefix: { keys?: string; invalid?: string } = {}): string {
  if (error instanceof RefusedHeader || error instanceof KeySetUnavailableError) return `${prefix.keys ?? ""}${error.message}`;
  if (error instanceof errors.JOSEError) return `${prefix.invalid ?? ""}${error.code}: ${error.message}`;
  if (error instanceof TypeError || error instanceof DOMException) return `unusable key: ${error.message}`;
  throw error;
}

/** The inline key set of a record, made once per record version (records are frozen, one object per stored text). */
const localKeySets = new WeakMap<ClientRecord, JWTVerifyGetKey>();

/** The client's keys, or why there are none to use. */
function keysOf(record: ClientRecord, issuer: string): JWTVerifyGetKey | string {
  if (record.jwks) {
    let keys = localKeySets.get(record);
    if (!keys) localKeySets.set(record, (keys = createLocalJWKSet(record.jwks as Parameters<typeof createLocalJWKSet>[0])));
    return keys;
  }
  if (record.jwks_uri) {
    if (!isAllowedRemoteUrl(record.jwks_uri, issuer)) return `jwks_uri ${record.jwks_uri} is not allowed with ISSUER ${issuer}`;
    return remoteKeySet(record.jwks_uri);
  }
  return "the client has no keys";
}

class RefusedHeader extends Error {}

/** The key resolver with the header rules jose's options do not express applied first. */
function checkingHeader(keys: JWTVerifyGetKey): JWTVerifyGetKey {
  return (header, token) => {
    for (const member of KEY_REFERENCES) if (header[member] !== undefined) throw new RefusedHeader(`header carries ${member}`);
    // RFC 7515 §4.1.9: a string; String() would let ["JWT"] through.
    if (header.typ !== undefined && (typeof header.typ !== "string" || !ACCEPTED_TYPES.has(header.typ.toLowerCase())))
      throw new RefusedHeader(`typ ${JSON.stringify(header.typ)} is not a client assertion's`);
    return keys(header, token);
  };
}

/**
 * jwtVerify with the client's keys. Several keys fit a header without `kid` (two kid-less keys of one
 * type, as in a rotation): jose then throws JWKSMultipleMatchingKeys and leaves trying them to the
 * caller, so each is tried in turn, at most MAX_CLIENT_KEYS (a remote set may hold more).
 */
async function verifyWithKeys(assertion: string, keys: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(assertion, keys, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    let tried = 0;
    for await (const key of error) {
      try {
        return (await jwtVerify(assertion, key, options)).payload;
      } catch (attempt) {
        if (!(attempt instanceof errors.JWSSignatureVerificationFailed)) throw attempt;
      }
      if (++tried === MAX_CLIENT_KEYS) break;
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/**
 * draft-ietf-oauth-rfc7523bis: the issuer identifier as the sole audience, a string or an array of
 * exactly that one string; the token endpoint URL likewise, only if the record allows it.
 */
function audienceProblem(aud: unknown, record: ClientRecord, issuer: string): string | undefined {
  const sole = Array.isArray(aud) && aud.length === 1 ? aud[0] : aud;
  if (sole === issuer) return undefined;
  if (sole === `${issuer}/token` && record.allow_token_endpoint_audience === true) return undefined;
  return `aud ${JSON.stringify(aud)?.slice(0, 200)} is not the issuer identifier${record.allow_token_endpoint_audience ? " or the token endpoint" : ""} alone`;
}

/** The claims jose's options do not check; jose already checked exp, nbf, iss, sub and the types of exp, iat, nbf. */
function claimsProblem(payload: JWTPayload, record: ClientRecord, issuer: string, now: number): string | undefined {
  const audience = audienceProblem(payload.aud, record, issuer);
  if (audience) return audience;
  const { jti, iat, exp } = payload as { jti: unknown; iat?: number; exp: number };
  if (typeof jti !== "string" || jti.length === 0 || jti.length > MAX_JTI_LENGTH)
    return `jti must be a string of 1-${MAX_JTI_LENGTH} characters`;
  if (iat !== undefined && iat > now + CLOCK_TOLERANCE_SECONDS) return `iat ${iat} is in the future`;
  const lifetime = exp - (iat ?? now);
  if (lifetime > MAX_ASSERTION_LIFETIME_SECONDS) return `lifetime ${lifetime} s is over ${MAX_ASSERTION_LIFETIME_SECONDS} s`;
  return undefined;
}

/**
 * Verifies `assertion` as `record`'s client authentication at `now` (epoch seconds): signature with
 * the client's keys (ES256, ES384, PS256, RS256 of 2048 bits or more, EdDSA), header without key
 * references and of a client assertion's type, `iss` = `sub` = client_id, `aud` the issuer alone,
 * `exp` within MAX_ASSERTION_LIFETIME_SECONDS, `jti` unused. Every refusal is `{ ok: false }` with
 * the reason for the log; a jti guard that cannot answer throws 503 temporarily_unavailable.
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-3
 */
export async function authenticateAssertion(
  record: ClientRecord | null,
  assertion: string,
  env: Env,
  now: number,
): Promise<AssertionResult> {
  if (!record) return { ok: false, reason: "unknown client" };
  if (record.token_endpoint_auth_method !== "private_key_jwt")
    return { ok: false, reason: `the client authenticates with ${record.token_endpoint_auth_method ?? "a secret"}, not private_key_jwt` };
  const { issuer } = getConfig(env);
  const keys = keysOf(record, issuer);
  if (typeof keys === "string") return { ok: false, reason: keys };
  let payload: JWTPayload;
  try {
    payload = await verifyWithKeys(assertion, checkingHeader(keys), {
      algorithms: [...ASSERTION_ALGORITHMS],
      issuer: record.client_id,
      subject: record.client_id,
      requiredClaims: ["exp", "jti"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now * 1000),
    });
  } catch (error) {
    return { ok: false, reason: verificationRefusal(error) };
  }
  const problem = claimsProblem(payload, record, issuer, now);
  if (problem) return { ok: false, reason: problem };
  if (record.disabled) return { ok: false, reason: "client disabled" };
  // Kept past exp by the clock tolerance: as long as any location could still accept it.
  const use = await useJtiOnce(env.JTI_GUARD, record.client_id, payload.jti!, payload.exp! + CLOCK_TOLERANCE_SECONDS);
  if (use === "replay") return { ok: false, reason: `jti ${JSON.stringify(payload.jti!.slice(0, 64))} was used before` };
  if (use === "expired") return { ok: false, reason: "expired by the time the jti guard was asked" };
  return { ok: true };
}
