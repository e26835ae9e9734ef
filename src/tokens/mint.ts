/**
 * Access tokens in the JWT profile of RFC 9068.
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2
 */
import { CompactSign } from "jose";
import { LEGACY_INSTANCE_ID } from "../clients/record.ts";
import type { SigningKeys } from "../keys/signing.ts";

const encoder = new TextEncoder();

export interface AccessTokenClaims {
  iss: string;
  sub: string;
  client_id: string;
  aud: string | string[];
  iat: number;
  exp: number;
  jti: string;
  scope?: string;
  /** Private claim: the instance_id of the client record the token was issued under (docs/storage.md). */
  tg_inst?: string;
  /**
   * RFC 9449 §6.1: the RFC 7638 thumbprint of the DPoP key the token is bound to (`jkt`); RFC 8705
   * §3.1: the SHA-256 thumbprint of the client certificate it is bound to (`x5t#S256`).
   */
  cnf?: { jkt?: string; "x5t#S256"?: string };
}

export interface MintInput {
  issuer: string;
  clientId: string;
  /** The client record's instance_id; absent or LEGACY_INSTANCE_ID ("") leaves the claim out. */
  instanceId?: string;
  audience: string[];
  scopes: string[];
  lifetime: number;
  now: number;
  /** RFC 9449 §6.1: the thumbprint of the DPoP proof's key; the token is then bound to it (`cnf.jkt`). */
  jkt?: string;
  /** RFC 8705 §3.1: the thumbprint of the client certificate presented at /token; the token is then bound to it (`cnf.x5t#S256`). */
  x5tS256?: string;
}

export async function mintAccessToken(keys: SigningKeys, input: MintInput): Promise<{ token: string; claims: AccessTokenClaims }> {
  const claims: AccessTokenClaims = {
    iss: input.issuer,
    // RFC 9068 §2.2: with no resource owner, sub is the client's own identifier.
    sub: input.clientId,
    client_id: input.clientId,
    aud: input.audience.length === 1 ? input.audience[0]! : input.audience,
    iat: input.now,
    exp: input.now + input.lifetime,
    jti: crypto.randomUUID(),
  };
  if (input.scopes.length > 0) claims.scope = input.scopes.join(" ");
  // Bound to the record it was issued under: a re-created, disabled or secret-revoked record has
  // another instance_id, and the gateway and /introspect refuse the token (src/tokens/status.ts).
  if (input.instanceId !== undefined && input.instanceId !== LEGACY_INSTANCE_ID) claims.tg_inst = input.instanceId;
  if (input.jkt !== undefined) claims.cnf = { jkt: input.jkt };
  if (input.x5tS256 !== undefined) claims.cnf = { ...claims.cnf, "x5t#S256": input.x5tS256 };
  // The claims are built and checked here, so they are signed as a plain JWS payload: SignJWT would
  // copy and re-validate them on every token (RFC 7519 §7.1: a JWT is a JWS of its claims).
  const token = await new CompactSign(encoder.encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: keys.signer.kid })
    .sign(keys.signer.key);
  return { token, claims };
}
