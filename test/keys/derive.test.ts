import { mapHashToField } from "@noble/curves/abstract/modular.js";
import { p256 } from "@noble/curves/nist.js";
import { base64url, calculateJwkThumbprint, compactVerify, importJWK, CompactSign } from "jose";
import { describe, expect, it } from "vitest";
import {
  deriveKeyMaterial,
  derivePrivateScalar,
  deriveSigningKey,
  publicCoordinates,
  scalarFromKeyMaterial,
} from "../../src/keys/derive.ts";
import { generateKeySeed } from "../../src/keys/new-key-pair.ts";
import { parseKeySeed, SigningKeyError } from "../../src/keys/signing.ts";

const N = p256.Point.Fn.ORDER;
const encoder = new TextEncoder();
const seed = parseKeySeed(generateKeySeed());

/** HMAC-SHA256, for an HKDF written out by hand (RFC 5869 §2.2-2.3) to check the WebCrypto one. */
async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

async function hkdfByHand(ikm: Uint8Array, salt: string, info: string, length: number): Promise<Uint8Array> {
  const prk = await hmac(encoder.encode(salt), ikm);
  const out: number[] = [];
  let block: Uint8Array = new Uint8Array(0);
  for (let i = 1; out.length < length; i++) {
    block = await hmac(prk, new Uint8Array([...block, ...encoder.encode(info), i]));
    out.push(...block);
  }
  return new Uint8Array(out.slice(0, length));
}

const toBigInt = (bytes: Uint8Array): bigint => bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
const fromBigInt = (value: bigint, length: number): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => Number((value >> BigInt(8 * (length - 1 - i))) & 0xffn));

describe("KEY_SEED key derivation (HKDF-SHA256, FIPS 186-5 A.2.1)", () => {
  it('derives okm = HKDF-SHA256(seed, salt "tollgate ES256 signing key", info "g=<g>;e=<e>", 48 bytes)', async () => {
    const okm = await deriveKeyMaterial(seed, 3, 20_000);
    expect(okm).toHaveLength(48);
    expect(base64url.encode(okm)).toBe(base64url.encode(await hkdfByHand(seed, "tollgate ES256 signing key", "g=3;e=20000", 48)));
  });

  it("reduces okm to d = (okm mod (n - 1)) + 1, as noble's mapHashToField does", async () => {
    for (const [g, e] of [
      [0, 0],
      [0, 1],
      [1, 20_000],
      [7, 123_456],
    ] as const) {
      const okm = await deriveKeyMaterial(seed, g, e);
      const d = await derivePrivateScalar(seed, g, e);
      expect(base64url.encode(d), `g=${g} e=${e}`).toBe(base64url.encode(mapHashToField(okm, N)));
    }
  });

  it("keeps d in [1, n - 1] at the edges of the reduction", () => {
    expect(scalarFromKeyMaterial(new Uint8Array(48))).toBe(1n);
    expect(scalarFromKeyMaterial(fromBigInt(N - 2n, 48))).toBe(N - 1n);
    expect(scalarFromKeyMaterial(fromBigInt(N - 1n, 48))).toBe(1n);
    expect(scalarFromKeyMaterial(fromBigInt(N, 48))).toBe(2n);
    const max = scalarFromKeyMaterial(new Uint8Array(48).fill(0xff));
    expect(max).toBe((((1n << 384n) - 1n) % (N - 1n)) + 1n);
    expect(max >= 1n && max <= N - 1n).toBe(true);
  });

  it("derives a d in range for many generations and epochs, 32 bytes big-endian", async () => {
    for (let e = 0; e < 24; e++) {
      const d = await derivePrivateScalar(seed, e % 3, 19_000 + e);
      expect(d).toHaveLength(32);
      const value = toBigInt(d);
      expect(value >= 1n && value < N).toBe(true);
    }
  });

  it("derives the same key from the same seed, generation and epoch in two independent imports", async () => {
    const a = await deriveSigningKey(seed, 2, 20_500);
    const b = await deriveSigningKey(seed, 2, 20_500);
    expect(a.privateKey).not.toBe(b.privateKey);
    expect(b.kid).toBe(a.kid);
    expect(b.publicJWK).toEqual(a.publicJWK);
    // What one import signs, the other's public key verifies.
    const jws = await new CompactSign(encoder.encode("same key")).setProtectedHeader({ alg: "ES256" }).sign(a.privateKey);
    await expect(compactVerify(jws, b.publicKey)).resolves.toBeDefined();
  });

  it("derives a different key for another epoch, generation or seed", async () => {
    const other = parseKeySeed(generateKeySeed());
    const keys = await Promise.all([
      deriveSigningKey(seed, 0, 20_000),
      deriveSigningKey(seed, 0, 20_001),
      deriveSigningKey(seed, 1, 20_000),
      deriveSigningKey(seed, 1, 20_001),
      deriveSigningKey(other, 0, 20_000),
    ]);
    expect(new Set(keys.map((k) => k.kid)).size).toBe(keys.length);
    expect(new Set(keys.map((k) => k.publicJWK.x)).size).toBe(keys.length);
    // "g=1;e=1" and "g=11;e=" style collisions cannot happen: each field is delimited.
    const a = await deriveSigningKey(seed, 1, 11);
    const b = await deriveSigningKey(seed, 11, 1);
    expect(a.kid).not.toBe(b.kid);
  });

  it("publishes d·G: the public key is the private scalar's point, and signatures verify with it", async () => {
    const key = await deriveSigningKey(seed, 0, 20_000);
    const d = await derivePrivateScalar(seed, 0, 20_000);
    const point = p256.Point.BASE.multiply(toBigInt(d)).toAffine();
    expect(toBigInt(base64url.decode(key.publicJWK.x!))).toBe(point.x);
    expect(toBigInt(base64url.decode(key.publicJWK.y!))).toBe(point.y);
    const jws = await new CompactSign(encoder.encode("payload")).setProtectedHeader({ alg: "ES256" }).sign(key.privateKey);
    const published = await importJWK(key.publicJWK, "ES256");
    await expect(compactVerify(jws, published)).resolves.toBeDefined();
  });

  it("computes d·G in WebCrypto as @noble/curves does, for the edge scalars and random ones", async () => {
    const scalars = [1n, 2n, 3n, 0x1ffn, 1n << 200n, N - 2n, N - 1n];
    for (let i = 0; i < 24; i++) scalars.push(scalarFromKeyMaterial(crypto.getRandomValues(new Uint8Array(48))));
    for (const d of scalars) {
      const expected = p256.Point.BASE.multiply(d).toAffine();
      const { x, y } = await publicCoordinates(fromBigInt(d, 32));
      expect({ x: toBigInt(base64url.decode(x)), y: toBigInt(base64url.decode(y)) }, `d=${d.toString(16)}`).toEqual(expected);
      expect([base64url.decode(x).length, base64url.decode(y).length]).toEqual([32, 32]);
    }
    await expect(publicCoordinates(new Uint8Array(31).fill(1))).rejects.toThrow(RangeError);
  });

  // Computed with the earlier implementation (@noble/curves' getPublicKey): the switch to WebCrypto
  // must not change any deployed key, or every token issued before an upgrade would stop verifying.
  it.each([
    [
      0,
      20_000,
      "HkukND0luagDmbCy9VgNU7PVeAgMRxsVNM6z-FHMbm0",
      "q-FwB_EASNNWUZ0Tvuv_dFk4OALKtd6XCPg9QNEI3gw",
      "ydxiayITEiDdCbgMCe-Z_EIpC98OVhKXJwULes48tmE",
      "udX824UWi8iw42iFwuQ0QPAzBNXzhSo3LGnp-gewGSk",
    ],
    [
      3,
      123_456,
      "nK1ydlL2Pdoc-tEUdVeymUreHnz31_OR_-sl_MIkS7o",
      "j33skwZ0yWPPIho_denk2YF9L3Ut-2p5HhTztlZTFWU",
      "1libDNTdjjstmEo2qUJ7g5u9grsJUTpKHjk0x8Mrkxg",
      "gkBu_ijqbjk49MHP3ETMD_IauATzhnvPJ1PN2_mktss",
    ],
    [
      1,
      0,
      "G7fgN5I9K3b1gHo-SfqJr3dlSXEkBqZHL25rnSgYa0U",
      "lwvc5Urb5DB3i0M2Nz3HkpiwGw70qVDmv0LuML4rURA",
      "apwk-ILMvBrZonWa_d2PlBkqa-OJtiXoynPk56rP9Do",
      "Pt4r8DU5ux0m_lZV2J7Ibd47lSbRMPUKdkJ-0wyX7XM",
    ],
  ])("derives the pinned key for seed 00 01 .. 1f, generation %i, epoch %i", async (generation, epoch, d, x, y, kid) => {
    const fixed = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(base64url.encode(await derivePrivateScalar(fixed, generation, epoch))).toBe(d);
    const key = await deriveSigningKey(fixed, generation, epoch);
    expect(key.publicJWK).toEqual({ alg: "ES256", use: "sig", kty: "EC", crv: "P-256", x, y, kid });
    expect(key.kid).toBe(kid);
    const jws = await new CompactSign(encoder.encode("pinned")).setProtectedHeader({ alg: "ES256" }).sign(key.privateKey);
    await expect(compactVerify(jws, await importJWK({ kty: "EC", crv: "P-256", x, y }, "ES256"))).resolves.toBeDefined();
  });

  it("names each key by its RFC 7638 thumbprint and publishes no private member", async () => {
    const key = await deriveSigningKey(seed, 0, 20_000);
    const { kty, crv, x, y } = key.publicJWK;
    expect(key.kid).toBe(await calculateJwkThumbprint({ kty: kty!, crv: crv!, x: x!, y: y! }));
    expect(key.publicJWK).toEqual({ alg: "ES256", use: "sig", kty: "EC", crv: "P-256", x, y, kid: key.kid });
    expect(key.privateKey.extractable).toBe(false);
    expect(key.privateKey.type).toBe("private");
    expect(key.publicKey.type).toBe("public");
  });
});

describe("KEY_SEED parsing", () => {
  it("accepts `tollgate keys seed` output (32 bytes, base64url), with a trailing newline", () => {
    const raw = generateKeySeed();
    expect(raw).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(parseKeySeed(`${raw}\n`)).toEqual(base64url.decode(raw));
  });

  it.each([
    ["31 bytes", base64url.encode(new Uint8Array(31).fill(7))],
    ["standard base64 with + and /", "ab+/".repeat(12)],
    ["padded base64", `${base64url.encode(new Uint8Array(40).fill(9))}==`],
    ["spaces inside", `${"a".repeat(30)} ${"b".repeat(30)}`],
    ["a JWK", '{"kty":"EC"}'],
    ["empty after trimming", "  "],
  ])("refuses %s with a SigningKeyError naming KEY_SEED and not echoing it", (_, raw) => {
    let error: unknown;
    try {
      parseKeySeed(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SigningKeyError);
    expect((error as Error).message).toMatch(/KEY_SEED/);
    if (raw.trim().length > 8) expect((error as Error).message).not.toContain(raw.trim());
  });
});
