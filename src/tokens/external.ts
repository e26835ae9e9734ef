/**
 * Access tokens of other issuers (EXTERNAL_ISSUERS) on the gateway routes that name them: the key
 * set is chosen by the token's `iss` before any key is used, among the issuers the route accepts
 * (an `iss` it does not list is refused without a fetch), then the same RFC 8725 rules as for
 * Tollgate's own tokens, in one jwtVerify call: the issuer's algorithms, exact `iss`, the route's
 * audience, no key references in the header, the issuer's `typ` rule, `exp` and `iat` required, the
 * lifetime bound. Scopes and identity come from the claims the issuer names. Revocation status
 * (src/tokens/status.ts) is Tollgate's own: it does not apply to these tokens.
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
import { decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { BoundedCache } from "../bounded-cache.ts";
import { isValidScopeToken } from "../clients/record.ts";
import { SELF, type ExternalIssuer } from "../gateway/external-issuers.ts";
import { BearerError, OAuthError } from "../http/errors.ts";
import { type Clock, discoveredKeySet, KeySetUnavailableError, remoteKeySet } from "../keys/remote-key-set.ts";
import { REMOTE_KEYS_MIN_SECONDS } from "../policy.ts";
import type { AccessTokenClaims } from "./mint.ts";
import { hasAudience } from "./verified-cache.ts";
import { invalidToken as invalid, refuseKeyReferences } from "./verify.ts";

/** A claim value for the log: a short JSON excerpt. */
const excerpt = (value: unknown): string => JSON.stringify(value)?.slice(0, 200) ?? "undefined";

/**
 * Whose token this is, read from its unverified payload and looked up among the route's `accepted`
 * issuers: undefined for Tollgate's own (`ownIssuer`, when the route accepts "self"), the external
 * issuer otherwise. Anything else, a token without `iss` included, is 401 invalid_token before any
 * key is fetched or used: a token claiming issuer A is never checked with B's keys.
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3.8
 */
export function issuerForToken(
  token: string,
  accepted: readonly string[],
  ownIssuer: string,
  external: ReadonlyMap<string, ExternalIssuer>,
): ExternalIssuer | undefined {
  let iss: unknown;
  try {
    ({ iss } = decodeJwt(token));
  } catch (error) {
    throw invalid(`not a JWT: ${(error as Error).message}`);
  }
  if (typeof iss !== "string") throw invalid(`iss ${excerpt(iss)} is not a string`);
  if (iss === ownIssuer && accepted.includes(SELF)) return undefined;
  const issuer = external.get(iss);
  if (issuer === undefined || !accepted.includes(iss)) throw invalid(`iss ${excerpt(iss)} is not an issuer this route accepts`);
  return issuer;
}

const keySets = new WeakMap<ExternalIssuer, JWTVerifyGetKey>();

/**
 * The issuer's key set (its jwks_uri, else the one its discovery document names), behind the
 * RFC 8725 §3.10 rule: a header that carries its own key or a key URL is refused before any fetch.
 */
function keySetOf(issuer: ExternalIssuer, ownIssuer: string, clock: Clock | undefined): JWTVerifyGetKey {
  let keys: JWTVerifyGetKey | undefined = clock === undefined ? keySets.get(issuer) : undefined;
  if (keys === undefined) {
    const remote = issuer.jwksUri === undefined ? discoveredKeySet(issuer.issuer, ownIssuer, clock) : remoteKeySet(issuer.jwksUri, clock);
    keys = (header, token) => {
      refuseKeyReferences(header);
      return remote(header, token);
    };
    if (clock === undefined) keySets.set(issuer, keys);
  }
  return keys;
}

/** `typ` without the optional "application/" prefix, lower case (RFC 7515 §4.1.9). */
const mediaType = (typ: unknown): unknown => (typeof typ === "string" ? typ.toLowerCase().replace(/^application\//, "") : typ);

/**
 * RFC 8725 §3.11 for an issuer of plain JWTs: absent or `JWT` (what they issue), or `at+jwt` (an
 * RFC 9068 access token, what the gateway wants anyway); any other explicit type names another kind
 * of JWT (an ID token's, a DPoP proof's `dpop+jwt`, a logout token's, a SET's `secevent+jwt`) and is refused.
 */
function checkPlainType(typ: unknown): void {
  const type = mediaType(typ);
  if (type !== undefined && type !== "jwt" && type !== "at+jwt") throw invalid(`typ ${excerpt(typ)} is not a JWT access token's`);
}

/**
 * The scopes in `value` as one space-separated string: a string is taken as a space-separated list
 * (`scope`, and Entra ID's `scp`), an array as a list (`scp` of Okta, `permissions`, `roles`). A value
 * of another shape, or with an entry that is not one scope token, grants nothing: an array entry
 * "read admin" must not become two scopes.
 */
function scopesOf(value: unknown): string | undefined {
  const list = typeof value === "string" ? value.split(" ").filter((s) => s !== "") : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string" && isValidScopeToken(s))) return undefined;
  return list.join(" ");
}

/**
 * What may go into an identity header as it is (RFC 9110 §5.5): printable ASCII, no control
 * character, no leading or trailing space (which a header value loses, so " admin" would reach the
 * origin as "admin").
 */
const HEADER_SAFE = /^[\x21-\x7E](?:[\x20-\x7E]{0,254}[\x21-\x7E])?$/;

/** The rules jose's options do not express; exp and iat are numbers (jose checked their type). */
function toClaims(payload: JWTPayload, issuer: ExternalIssuer, now: number): AccessTokenClaims {
  const { exp, iat, aud } = payload as { exp: number; iat: number; aud: string | string[] };
  if (iat > now + issuer.clockTolerance) throw invalid(`iat ${iat} is in the future`);
  const lifetime = exp - iat;
  if (!(lifetime > 0 && lifetime <= issuer.maxLifetime)) throw invalid(`lifetime ${lifetime} s not within 1..${issuer.maxLifetime}`);
  // Both become header values at the origin (X-Tollgate-Client-Id, X-Tollgate-Token-Id).
  const identity = payload[issuer.clientIdClaim];
  if (typeof identity !== "string" || !HEADER_SAFE.test(identity)) {
    throw invalid(`${issuer.clientIdClaim} ${excerpt(identity)} is not 1-256 printable ASCII characters, none a space at either end`);
  }
  if (payload.jti !== undefined && (typeof payload.jti !== "string" || !HEADER_SAFE.test(payload.jti))) {
    throw invalid(`jti ${excerpt(payload.jti)} is not 1-256 printable ASCII characters, none a space at either end`);
  }
  // RFC 7800 / RFC 9449 §6: a DPoP binding is enforced as for Tollgate's own tokens (cnf.jkt); a
  // binding of any other kind (an mTLS certificate, ...) cannot be checked here, so the token is refused.
  const cnf = payload.cnf as Record<string, unknown> | undefined;
  let jkt: string | undefined;
  if (cnf !== undefined) {
    const keys = typeof cnf === "object" && cnf !== null && !Array.isArray(cnf) ? Object.keys(cnf) : [];
    if (keys.length !== 1 || keys[0] !== "jkt" || typeof cnf.jkt !== "string" || cnf.jkt === "") {
      throw invalid(`a confirmation (cnf) other than a DPoP key thumbprint: ${excerpt(cnf)}`);
    }
    jkt = cnf.jkt;
  }
  return {
    ...(jkt === undefined ? {} : { cnf: { jkt } }),
    iss: issuer.issuer,
    sub: typeof payload.sub === "string" ? payload.sub : identity,
    client_id: identity,
    aud,
    iat,
    exp,
    jti: payload.jti ?? "",
    scope: scopesOf(payload[issuer.scopeClaim]),
  };
}

/** Tokens verified in this isolate, by token string, tied to the issuer entry that verified them. */
interface Verified {
  claims: AccessTokenClaims;
  issuer: ExternalIssuer;
  /** Epoch seconds: the token's exp, or REMOTE_KEYS_MIN_SECONDS after the verification, whichever comes first. */
  until: number;
}
const verified = new BoundedCache<string, Verified>(4096);

export interface ExternalVerifyOptions {
  /** The route's audience (RFC 8707): `aud` must be it or contain it. */
  audience: string;
  /** This server's ISSUER: loopback http key URLs are allowed only while it is loopback http. */
  ownIssuer: string;
  /** For tests that move time: the tokens' clock and the key cache's. */
  currentDate?: Date;
}

/**
 * Verifies `token` as an access token of `issuer` for the route's audience and returns its claims
 * in Tollgate's shape: `client_id` from the issuer's client_id_claim, `scope` from its scope_claim
 * (space-separated), `jti` empty when the token has none. 401 invalid_token on any failure; 503
 * temporarily_unavailable when the issuer's keys cannot be had (none cached, or the cached ones
 * older than the stale bound of src/keys/remote-key-set.ts while the issuer does not answer).
 * A token verified before in this isolate is served from memory until its exp, for at most
 * REMOTE_KEYS_MIN_SECONDS, the shortest a key set is kept.
 */
export async function verifyExternalToken(
  token: string,
  issuer: ExternalIssuer,
  options: ExternalVerifyOptions,
): Promise<AccessTokenClaims> {
  const clock = options.currentDate === undefined ? undefined : () => options.currentDate!.getTime();
  const now = Math.floor((clock?.() ?? Date.now()) / 1000);
  const remembered = verified.get(token);
  if (remembered !== undefined && remembered.issuer === issuer && now < remembered.until) {
    if (!hasAudience(remembered.claims, options.audience))
      throw invalid(`aud ${excerpt(remembered.claims.aud)} does not include ${options.audience}`);
    return remembered.claims;
  }
  let payload: JWTPayload;
  try {
    const result = await jwtVerify(token, keySetOf(issuer, options.ownIssuer, clock), {
      algorithms: issuer.algorithms,
      issuer: issuer.issuer,
      audience: options.audience,
      typ: issuer.tokenType === "at+jwt" ? "at+jwt" : undefined,
      requiredClaims: ["exp", "iat"],
      clockTolerance: issuer.clockTolerance,
      currentDate: options.currentDate,
    });
    if (issuer.tokenType === "jwt") checkPlainType(result.protectedHeader.typ);
    payload = result.payload;
  } catch (error) {
    if (error instanceof BearerError) throw error;
    if (error instanceof KeySetUnavailableError) {
      throw new OAuthError("temporarily_unavailable", "the token issuer's keys are unavailable, try again later", {
        reason: `${issuer.issuer}: ${error.message}`,
      });
    }
    if (error instanceof errors.JWTExpired) throw invalid(error.message, "the access token has expired");
    if (error instanceof errors.JOSEError) throw invalid(`${error.code}: ${error.message}`);
    throw invalid(`verification error: ${(error as Error).message}`);
  }
  const claims = toClaims(payload, issuer, now);
  verified.set(token, { claims, issuer, until: Math.min(claims.exp, now + REMOTE_KEYS_MIN_SECONDS) });
  return claims;
}
