/**
 * Per-isolate memory of access tokens this isolate has already verified (as Envoy's jwt_authn
 * cache does), so a client re-using its token pays a map lookup instead of an ES256 verify.
 * Keyed by the exact token string and tied to the key that verified it: an entry is used only while
 * the key set in use still holds that very key under that kid. A key set that changes around it (an
 * epoch of the KEY_SEED schedule begins, a rotation publishes more keys) keeps the entry; a key that
 * leaves the set (retired, or the secret changed) takes its tokens with it. An entry ends at the
 * token's `exp`; the audience is checked again on every hit, since routes differ in what they accept.
 */
import type { SigningKeys } from "../keys/signing.ts";
import { BoundedCache } from "../bounded-cache.ts";
import type { AccessTokenClaims } from "./mint.ts";

export const TOKEN_CACHE_MAX_ENTRIES = 4096;

interface Entry {
  claims: AccessTokenClaims;
  kid: string;
  /** The verification key (by identity: keys are imported once per isolate). */
  key: CryptoKey;
}

const cache = new BoundedCache<string, Entry>(TOKEN_CACHE_MAX_ENTRIES);

/** Claims of a token verified before with a key still in `keys`, and not yet expired; or undefined. */
export function getVerifiedToken(keys: SigningKeys, token: string, nowSeconds: number): AccessTokenClaims | undefined {
  const entry = cache.get(token);
  if (!entry) return undefined;
  if (entry.claims.exp <= nowSeconds) {
    cache.delete(token);
    return undefined;
  }
  return keys.verifiers.get(entry.kid) === entry.key ? entry.claims : undefined;
}

/** Remembers a token `verifyAccessToken` has just verified with `keys`, under the `kid` of its header. */
export function rememberVerifiedToken(keys: SigningKeys, token: string, claims: AccessTokenClaims, kid: unknown): void {
  const key = typeof kid === "string" ? keys.verifiers.get(kid) : undefined;
  if (!key) return;
  // The newest entry; the bound drops the oldest.
  cache.set(token, { claims, kid: kid as string, key });
}

/** RFC 7519 §4.1.3: the token is for this audience if `aud` is it or contains it. */
export function hasAudience(claims: AccessTokenClaims, audience: string): boolean {
  return Array.isArray(claims.aud) ? claims.aud.includes(audience) : claims.aud === audience;
}
