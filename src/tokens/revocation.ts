/**
 * Revoked access tokens in Workers KV under `revoked:{jti}` (docs/storage.md): written by POST
 * /revoke, read by the gateway and by POST /introspect. An entry expires by itself once the token
 * could no longer be accepted anywhere.
 */
import { StoreUnavailableError } from "../http/errors.ts";
import { CLOCK_TOLERANCE_SECONDS, REVOKED_ENTRY_MARGIN_SECONDS } from "../policy.ts";
import type { AccessTokenClaims } from "./mint.ts";

export const REVOKED_KEY_PREFIX = "revoked:";
/** The KV key of a revoked token: `revoked:{jti}`. */
export const revokedKey = (jti: string): string => `${REVOKED_KEY_PREFIX}${jti}`;

/** The value stored under `revoked:{jti}`. */
export interface RevokedRecord {
  client_id: string;
  /** The token's `exp`, epoch seconds. */
  exp: number;
  /** Epoch seconds. */
  revoked_at: number;
}

/** KV refuses an `expirationTtl` below this. */
export const MIN_EXPIRATION_TTL_SECONDS = 60;
/**
 * Seconds to keep the entry: the token's remaining life plus REVOKED_ENTRY_MARGIN_SECONDS, more than
 * the gateway's clock tolerance (CLOCK_TOLERANCE_SECONDS) past `exp`, and never below KV's minimum.
 */
export function revocationTtl(exp: number, now: number): number {
  return Math.max(MIN_EXPIRATION_TTL_SECONDS, exp - now + REVOKED_ENTRY_MARGIN_SECONDS);
}

/** Whether any gateway could still accept a token with this `exp` (it allows the clock tolerance). */
export function isStillAcceptable(exp: number, now: number): boolean {
  return exp + CLOCK_TOLERANCE_SECONDS > now;
}

/**
 * Whether `revoked:{jti}` exists. KV unreachable → StoreUnavailableError (503). `cacheTtl` bounds how long
 * KV's edge cache may answer with an older result, a missing key included.
 */
export async function isRevoked(kv: KVNamespace, jti: string, options: { cacheTtl?: number } = {}): Promise<boolean> {
  try {
    const value = await kv.get(
      revokedKey(jti),
      options.cacheTtl === undefined ? { type: "text" } : { type: "text", cacheTtl: options.cacheTtl },
    );
    return value !== null;
  } catch (error) {
    throw new StoreUnavailableError("token", "read", error);
  }
}

/**
 * Records the revocation of a token (its signature already verified). A token already revoked is
 * left as it is (the first `revoked_at` stays, and KV's one-write-per-second-per-key limit is never
 * hit by repeats). KV unreachable → StoreUnavailableError (503): RFC 7009 §2.2.1 lets the client retry.
 * @see https://www.rfc-editor.org/rfc/rfc7009#section-2.2.1
 */
export async function recordRevocation(
  kv: KVNamespace,
  claims: Pick<AccessTokenClaims, "jti" | "client_id" | "exp">,
  now: number,
): Promise<"revoked" | "already_revoked"> {
  if (await isRevoked(kv, claims.jti)) return "already_revoked";
  const record: RevokedRecord = { client_id: claims.client_id, exp: claims.exp, revoked_at: now };
  try {
    await kv.put(revokedKey(claims.jti), JSON.stringify(record), { expirationTtl: revocationTtl(claims.exp, now) });
  } catch (error) {
    throw new StoreUnavailableError("token", "write", error);
  }
  return "revoked";
}
