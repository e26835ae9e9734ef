/**
 * A new ES256 signing key as a private JWK, its kid the RFC 7638 thumbprint.
 * Used by the CLI (`tollgate keys generate`) and by `npm start` for the local dev key.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";

export async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! });
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d, kid, alg: "ES256", use: "sig" };
}
