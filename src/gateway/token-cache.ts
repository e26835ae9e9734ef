/**
 * Per-isolate memory of access tokens this isolate has already verified (as Envoy's jwt_authn
 * cache does), so a client re-using its token pays a map lookup instead of an ES256 verify.
 * Keyed by the exact token string and tied to the key set that verified it: a rotation that
 * changes the keys starts afresh. An entry ends at the token's `exp`; the audience is checked
 * again on every hit, since routes differ in what they accept.
 */
import type { SigningKeys } from "../keys/signing.ts";
import type { AccessTokenClaims } from "../token/mint.ts";

export const TOKEN_CACHE_MAX_ENTRIES = 4096;

const caches = new WeakMap<SigningKeys, Map<string, AccessTokenClaims>>();

function cacheFor(keys: SigningKeys): Map<string, AccessTokenClaims> {
  let cache = caches.get(keys);
  if (!cache) {
    cache = new Map();
    caches.set(keys, cache);
  }
  return cache;
}

/** Claims of a token verified before and not yet expired, or undefined. */
export function getVerifiedToken(keys: SigningKeys, token: string, nowSeconds: number): AccessTokenClaims | undefined {
  const cache = cacheFor(keys);
  const claims = cache.get(token);
  if (!claims) return undefined;
  if (claims.exp <= nowSeconds) {
    cache.delete(token);
    return undefined;
  }
  return claims;
}

export function rememberVerifiedToken(keys: SigningKeys, token: string, claims: AccessTokenClaims): void {
  const cache = cacheFor(keys);
  cache.set(token, claims);
  // Insertion order is age order: drop the oldest beyond the bound.
  if (cache.size > TOKEN_CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
}

/** RFC 7519 §4.1.3: the token is for this audience if `aud` is it or contains it. */
export function hasAudience(claims: AccessTokenClaims, audience: string): boolean {
  return Array.isArray(claims.aud) ? claims.aud.includes(audience) : claims.aud === audience;
}
