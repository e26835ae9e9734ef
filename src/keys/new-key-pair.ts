/**
 * New key material for the CLI (`tollgate keys seed`, `tollgate keys generate`) and `npm start`.
 */
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";

/** A KEY_SEED: 32 bytes from the CSPRNG, base64url. */
export function generateKeySeed(): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
}

/** A new ES256 signing key as a private JWK, its kid the RFC 7638 thumbprint. */
export async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! });
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d, kid, alg: "ES256", use: "sig" };
}
