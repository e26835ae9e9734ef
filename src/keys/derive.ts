/**
 * ES256 signing keys derived from the KEY_SEED secret, one per (generation, epoch), so that no key is
 * ever stored and every isolate computes the same key for the same inputs:
 *
 *   okm = HKDF-SHA256(ikm = seed, salt = "tollgate ES256 signing key", info = "g=<g>;e=<e>", 48 bytes)
 *   d   = (okm as a big-endian integer mod (n - 1)) + 1
 *
 * The reduction is FIPS 186-5 A.2.1 (key pair generation using extra random bits): 128 bits more
 * than n makes the bias negligible. The public point d·G comes from @noble/curves, since WebCrypto
 * cannot import a private key without it; the kid is the RFC 7638 thumbprint.
 * @see https://www.rfc-editor.org/rfc/rfc5869
 */
import { p256 } from "@noble/curves/nist.js";
import { base64url, calculateJwkThumbprint, importJWK, type JWK } from "jose";

const encoder = new TextEncoder();
const SALT = encoder.encode("tollgate ES256 signing key");
const OKM_BYTES = 48;
/** The order n of the P-256 group. */
const ORDER = p256.Point.Fn.ORDER;

export interface DerivedKey {
  kid: string;
  /** Non-extractable. */
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** What the JWKS publishes: kty, crv, x, y, kid, alg, use; never d. */
  publicJWK: JWK;
}

/** HKDF-SHA256 output keying material for (generation, epoch). */
export async function deriveKeyMaterial(seed: Uint8Array, generation: number, epoch: number): Promise<Uint8Array> {
  const ikm = await crypto.subtle.importKey("raw", Uint8Array.from(seed), "HKDF", false, ["deriveBits"]);
  const info = encoder.encode(`g=${generation};e=${epoch}`);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: SALT, info }, ikm, OKM_BYTES * 8));
}

/** FIPS 186-5 A.2.1: d = (c mod (n - 1)) + 1, so 1 <= d <= n - 1. */
export function scalarFromKeyMaterial(okm: Uint8Array): bigint {
  let c = 0n;
  for (const byte of okm) c = (c << 8n) | BigInt(byte);
  return (c % (ORDER - 1n)) + 1n;
}

function toBytes32(value: bigint): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 31, v = value; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return bytes;
}

/** The private scalar d of key(generation, epoch), big-endian, 32 bytes. */
export async function derivePrivateScalar(seed: Uint8Array, generation: number, epoch: number): Promise<Uint8Array> {
  return toBytes32(scalarFromKeyMaterial(await deriveKeyMaterial(seed, generation, epoch)));
}

/** key(generation, epoch), imported for signing and verifying. */
export async function deriveSigningKey(seed: Uint8Array, generation: number, epoch: number): Promise<DerivedKey> {
  const d = await derivePrivateScalar(seed, generation, epoch);
  const point = p256.getPublicKey(d, false); // SEC 1 uncompressed: 0x04 || x || y
  const coordinates = { kty: "EC", crv: "P-256", x: base64url.encode(point.subarray(1, 33)), y: base64url.encode(point.subarray(33, 65)) };
  const kid = await calculateJwkThumbprint(coordinates);
  const publicJWK: JWK = { alg: "ES256", use: "sig", ...coordinates, kid };
  const privateKey = (await importJWK({ ...coordinates, d: base64url.encode(d), alg: "ES256" }, "ES256", { extractable: false })) as CryptoKey;
  const publicKey = (await importJWK(publicJWK, "ES256")) as CryptoKey;
  return { kid, privateKey, publicKey, publicJWK };
}
