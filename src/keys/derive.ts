/**
 * ES256 signing keys derived from the KEY_SEED secret, one per (generation, epoch), so that no key is
 * ever stored and every isolate computes the same key for the same inputs:
 *
 *   okm = HKDF-SHA256(ikm = seed, salt = "tollgate ES256 signing key", info = "g=<g>;e=<e>", 48 bytes)
 *   d   = (okm as a big-endian integer mod (n - 1)) + 1
 *
 * The reduction is FIPS 186-5 A.2.1 (key pair generation using extra random bits): 128 bits more
 * than n makes the bias negligible. The public point d·G is computed by the runtime's WebCrypto
 * (BoringSSL in workerd): d goes in as a PKCS#8 ECPrivateKey without the optional publicKey, which
 * the import computes, and an extractable copy's JWK export reads x and y back. That costs ~1 ms of
 * CPU on a new isolate, where the JavaScript scalar multiplication of @noble/curves (which builds
 * its tables on first use) cost ~45 ms (docs/benchmarks.md, "KEY_SEED on a new isolate"). The kid
 * is the RFC 7638 thumbprint.
 * @see https://www.rfc-editor.org/rfc/rfc5869
 * @see https://www.rfc-editor.org/rfc/rfc5915
 */
import { calculateJwkThumbprint, type JWK } from "jose";

const encoder = new TextEncoder();
const SALT = encoder.encode("tollgate ES256 signing key");
const OKM_BYTES = 48;
/** The order n of the P-256 group (SEC 2 §2.4.2; the tests check it against @noble/curves). */
const ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/**
 * DER of a PKCS#8 PrivateKeyInfo (RFC 5208) for P-256 up to the 32 bytes of d, which end it:
 * SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
 * OCTET STRING { ECPrivateKey (RFC 5915) SEQUENCE { version 1, OCTET STRING (32 bytes) d } } },
 * no parameters and no publicKey in the ECPrivateKey (both optional; the algorithm names the curve).
 */
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
  0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20,
]);

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

/** The PKCS#8 DER of the P-256 private key d (32 bytes, big-endian), without its public key. */
function pkcs8(d: Uint8Array): Uint8Array<ArrayBuffer> {
  if (d.length !== 32) throw new RangeError("a P-256 private scalar is 32 bytes");
  const der = new Uint8Array(PKCS8_PREFIX.length + 32);
  der.set(PKCS8_PREFIX);
  der.set(d, PKCS8_PREFIX.length);
  return der;
}

/** The public point d·G of the P-256 private scalar d (32 bytes, big-endian, 1 <= d <= n - 1), as JWK x and y. */
export async function publicCoordinates(d: Uint8Array): Promise<{ x: string; y: string }> {
  // Extractable only so that x and y can be read; this copy is dropped, the signing key is not extractable.
  const key = await crypto.subtle.importKey("pkcs8", pkcs8(d), ECDSA_P256, true, ["sign"]);
  const { x, y } = (await crypto.subtle.exportKey("jwk", key)) as JsonWebKey;
  if (typeof x !== "string" || typeof y !== "string") throw new Error("the runtime exported a P-256 key without x and y");
  return { x, y };
}

/** key(generation, epoch), imported for signing and verifying. */
export async function deriveSigningKey(seed: Uint8Array, generation: number, epoch: number): Promise<DerivedKey> {
  const d = await derivePrivateScalar(seed, generation, epoch);
  const coordinates = { kty: "EC", crv: "P-256", ...(await publicCoordinates(d)) };
  const kid = await calculateJwkThumbprint(coordinates);
  const publicJWK: JWK = { alg: "ES256", use: "sig", ...coordinates, kid };
  // Straight to WebCrypto rather than through jose's importJWK: on a new isolate that saves compiling
  // jose's JWK import, ~1-2 ms of the first derivation (docs/benchmarks.md, "KEY_SEED on a new isolate").
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8(d), ECDSA_P256, false, ["sign"]);
  const publicKey = await crypto.subtle.importKey("jwk", coordinates, ECDSA_P256, true, ["verify"]);
  return { kid, privateKey, publicKey, publicJWK };
}
