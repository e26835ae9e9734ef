/**
 * A token presented to /revoke or /introspect: verified as one of ours by the gateway's own verifier
 * (verifyAccessToken: signature with this issuer's keys, ES256 only, `typ: at+jwt`, exact `iss`, the
 * RFC 9068 claims present and typed, nbf and iat not in the future, the lifetime cap), except that
 * neither its audience nor its expiry is required: each endpoint decides what an expired token means.
 * Anything else is not a token of this issuer, which both endpoints answer without error.
 * @see https://www.rfc-editor.org/rfc/rfc7009#section-2.2
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.2
 */
import { BearerError, OAuthError } from "../http/errors.ts";
import { verifyAccessToken } from "./verify.ts";
import type { SigningKeys } from "../keys/signing.ts";
import type { AccessTokenClaims } from "./mint.ts";

/** A verified token's claims, or why it is not a token of this issuer (for the log only). */
export type PresentedToken = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: string };

/** The `token` parameter both endpoints require (RFC 7009 §2.1, RFC 7662 §2.1). */
export function requireTokenParameter(form: { get(name: string): string | undefined }): string {
  const token = form.get("token");
  if (token === undefined) throw new OAuthError("invalid_request", "the token parameter is required");
  return token;
}

/** Verifies `token` as an access token of `issuer`, expired or not; never throws for a bad token. */
export async function verifyPresentedToken(
  token: string,
  keys: SigningKeys,
  options: { issuer: string; maxLifetime: number },
): Promise<PresentedToken> {
  try {
    return { ok: true, claims: await verifyAccessToken(token, keys, { ...options, allowExpired: true }) };
  } catch (error) {
    if (error instanceof BearerError) return { ok: false, reason: error.reason ?? error.description };
    throw error;
  }
}
