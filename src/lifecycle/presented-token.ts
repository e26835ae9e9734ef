/**
 * A token presented to /revoke or /introspect: verified as one of ours (signature with this
 * issuer's keys, ES256 only, `typ: at+jwt`, exact `iss`, the RFC 9068 claims present and typed),
 * but neither its audience nor its expiry is required: each endpoint decides what an expired token
 * means. Anything else is not a token of this issuer, which both endpoints answer without error.
 * @see https://www.rfc-editor.org/rfc/rfc7009#section-2.2
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.2
 */
import { compactVerify } from "jose";
import { OAuthError } from "../errors.ts";
import { keyResolver, MAX_TOKEN_LENGTH } from "../gateway/bearer.ts";
import type { SigningKeys } from "../keys/signing.ts";
import type { TokenForm } from "../token/form.ts";
import type { AccessTokenClaims } from "../token/mint.ts";

/** A verified token's claims, or why it is not a token of this issuer (for the log only). */
export type PresentedToken = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: string };

/** The `token` parameter both endpoints require (RFC 7009 §2.1, RFC 7662 §2.1). */
export function requireTokenParameter(form: TokenForm): string {
  const token = form.get("token");
  if (token === undefined) throw new OAuthError("invalid_request", "the token parameter is required");
  return token;
}

/** RFC 8725 §3.11, RFC 9068 §2.1: `at+jwt`, with or without the `application/` prefix, in any case. */
function isAccessTokenType(typ: unknown): boolean {
  if (typeof typ !== "string") return false;
  const type = typ.toLowerCase();
  return type === "at+jwt" || type === "application/at+jwt";
}

const isNumericDate = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);

function isAudience(value: unknown): value is string | string[] {
  return typeof value === "string" || (Array.isArray(value) && value.length > 0 && value.every((a) => typeof a === "string"));
}

/** Verifies `token` as an access token of `issuer`, expired or not; never throws for a bad token. */
export async function verifyPresentedToken(token: string, keys: SigningKeys, issuer: string): Promise<PresentedToken> {
  // docs/security.md item 15: refused before any decoding.
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: `token of ${token.length} characters` };
  let payload: Uint8Array;
  try {
    const verified = await compactVerify(token, keyResolver(keys), { algorithms: ["ES256"] });
    if (!isAccessTokenType(verified.protectedHeader.typ)) return { ok: false, reason: `typ ${JSON.stringify(verified.protectedHeader.typ)}` };
    payload = verified.payload;
  } catch (error) {
    return { ok: false, reason: `verification failed: ${(error as Error).message}` };
  }
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(payload)) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: "the claims are not JSON" };
  }
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return { ok: false, reason: "the claims are not a JSON object" };
  if (claims.iss !== issuer) return { ok: false, reason: `iss ${JSON.stringify(claims.iss)}` };
  const { sub, client_id, jti, aud, exp, iat, scope } = claims;
  if (typeof sub !== "string" || typeof client_id !== "string" || typeof jti !== "string") {
    return { ok: false, reason: "sub, client_id and jti must be strings" };
  }
  if (!isNumericDate(exp) || !isNumericDate(iat)) return { ok: false, reason: "exp and iat must be numbers" };
  if (!isAudience(aud)) return { ok: false, reason: "aud must be a string or an array of strings" };
  const verified: AccessTokenClaims = { iss: issuer, sub, client_id, aud, iat, exp, jti };
  // As at the gateway: a scope of the wrong type grants nothing.
  if (typeof scope === "string") verified.scope = scope;
  return { ok: true, claims: verified };
}
