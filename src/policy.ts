/**
 * Tollgate's time and cache policy in one place: every duration that another one is computed from
 * or must agree with. Plain constants, no Worker types, so the CLI and the tests read them too.
 * README, "Revocation and disabled clients", states REVOCATION_BOUND_SECONDS; a test holds the two equal.
 */

/**
 * KV's smallest `cacheTtl`, used by every read of client records and token status: a KV location
 * answers from its cache (a missing key included) for at most this long after the value changed centrally.
 */
export const KV_CACHE_TTL_SECONDS = 30;

/**
 * How long the gateway uses an answer about a token's status (revoked? client disabled?) before it
 * asks KV again (src/tokens/status.ts).
 */
export const REVOCATION_CHECK_SECONDS = 10;

/**
 * How long /token's warm path uses a record read from KV (src/client-auth/warm-records.ts): the same
 * window as the gateway's, so both share one bound.
 */
export const CLIENT_CACHE_SECONDS = REVOCATION_CHECK_SECONDS;

/**
 * Worst case from a revocation, a disabled client or a revoked secret (once KV's central store has the
 * write) to a refusal at every location, at the gateway and at /token alike: KV's edge cache, then
 * this isolate's cache.
 */
export const REVOCATION_BOUND_SECONDS = KV_CACHE_TTL_SECONDS + REVOCATION_CHECK_SECONDS;

/**
 * Clock skew allowed between the edge that signed and the edge that checks: the gateway's
 * `clockTolerance` (src/tokens/verify.ts), and part of ROTATION_PERIOD's minimum and of
 * generationRetention (src/keys/schedule.ts).
 */
export const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * RFC 9449 §4.3 step 11: a DPoP proof is accepted until its `iat` is this old (and no more than
 * CLOCK_TOLERANCE_SECONDS ahead); each isolate remembers an accepted proof's jti this long
 * (src/tokens/dpop.ts). Keycloak allows 10 s plus 15 s of skew, node-oidc-provider 300 s either way.
 */
export const DPOP_PROOF_MAX_AGE_SECONDS = 60;

/**
 * How long past a revoked token's `exp` its `revoked:{jti}` entry is kept: more than
 * CLOCK_TOLERANCE_SECONDS, the longest any gateway could still accept it.
 */
export const REVOKED_ENTRY_MARGIN_SECONDS = 2 * CLOCK_TOLERANCE_SECONDS;

/**
 * Resource servers may cache the JWKS this long (its Cache-Control max-age). The schedule publishes
 * every key a whole ROTATION_PERIOD, at least this long, before it signs.
 */
export const JWKS_MAX_AGE = 300;

/** How long the authorization server metadata may be cached (its Cache-Control max-age). */
export const METADATA_MAX_AGE = 3600;

/** MAX_ACCESS_TOKEN_TTL when unset: no token lives longer. */
export const DEFAULT_MAX_ACCESS_TOKEN_TTL = 3600;

/** ACCESS_TOKEN_TTL when unset. */
export const DEFAULT_ACCESS_TOKEN_TTL = 300;

// Remote key sets (src/keys/remote-key-set.ts): the JWKS of trusted external issuers and of clients.

/** A remote JWKS is used this long when its Cache-Control names no max-age. */
export const REMOTE_KEYS_DEFAULT_SECONDS = 600;

/**
 * A remote JWKS's max-age is held within these bounds: at least a minute (a `no-store` set is not
 * fetched per request), at most an hour (a key the issuer withdrew stops verifying within the hour).
 */
export const REMOTE_KEYS_MIN_SECONDS = 60;
export const REMOTE_KEYS_MAX_SECONDS = 3600;

/**
 * While refetching an expired remote JWKS fails, its last good keys keep verifying this long past
 * their freshness: an issuer's outage does not stop its workloads at once.
 */
export const REMOTE_KEYS_STALE_SECONDS = 6 * 3600;

/** An unknown `kid` refetches a remote JWKS at most this often per URI and isolate. */
export const REMOTE_KEYS_REFETCH_SECONDS = 60;

/** A failed fetch of a remote JWKS or discovery document is remembered (not retried) this long. */
export const REMOTE_KEYS_FAILURE_SECONDS = 15;
