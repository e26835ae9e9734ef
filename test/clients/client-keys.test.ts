import { exportJWK, generateKeyPair, generateSecret } from "jose";
import { describe, expect, it } from "vitest";
import { buildClientRecord } from "../support/worker.ts";
import { ClientRecordError, validateClientRecord } from "../../src/clients/record.ts";
import { createClientRecord, createKeyClientRecord, rotateClientSecret, updateClientRecord } from "../../src/clients/manage.ts";
import { isWellFormedJwksUri, MAX_CLIENT_KEYS, parseClientJWKS, rsaModulusBits } from "../../src/clients/client-keys.ts";
import { nowSeconds } from "../support/tokens.ts";

async function publicJWK(alg = "ES256", options: { modulusLength?: number } = {}) {
  const { publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { ...(await exportJWK(publicKey)), kid: crypto.randomUUID() };
}

describe("jwks in a client record: public signature keys only (RFC 7591 §2)", () => {
  it("keeps EC, RSA and Ed25519 public keys, each reduced to its public members and its certificate (x5c)", async () => {
    const keys = [await publicJWK("ES256"), await publicJWK("ES384"), await publicJWK("RS256"), await publicJWK("EdDSA")];
    const parsed = parseClientJWKS({
      keys: keys.map((k) => ({ ...k, x5c: ["MIIB"], x5u: "https://x.example", ext: true, key_ops: ["verify"] })),
    });
    expect(parsed.keys).toHaveLength(4);
    for (const key of parsed.keys) {
      expect(Object.keys(key).every((m) => ["kty", "kid", "crv", "x", "y", "n", "e", "x5c"].includes(m))).toBe(true);
      expect(key.x5c).toEqual(["MIIB"]);
    }
  });

  it("refuses an x5c that is not 1-3 standard base64 certificates (RFC 7517 §4.7)", async () => {
    const ec = await publicJWK("ES256");
    for (const x5c of [[], ["MIIB", "MIIB", "MIIB", "MIIB"], "MIIB", ["MII-"], ["MIIB="], [""], ["A".repeat(8196)], [1]])
      expect(() => parseClientJWKS({ keys: [{ ...ec, x5c }] })).toThrow(/jwks\.keys\[0\]: x5c/);
  });

  it("refuses a private key (d, p, q, dp, dq, qi), naming the member and the key", async () => {
    for (const alg of ["ES256", "RS256", "EdDSA"]) {
      const { privateKey } = await generateKeyPair(alg, { extractable: true });
      const jwk = await exportJWK(privateKey);
      expect(() => parseClientJWKS({ keys: [jwk] })).toThrow(/jwks\.keys\[0\]: carries the private member "d"/);
    }
    const rsa = await publicJWK("RS256");
    for (const member of ["p", "q", "dp", "dq", "qi"]) {
      expect(() => parseClientJWKS({ keys: [{ ...rsa, [member]: "AQAB" }] })).toThrow(new RegExp(`"${member}"`));
    }
  });

  it("refuses symmetric (oct) keys, unknown key types and other curves", async () => {
    const oct = await exportJWK(await generateSecret("HS256", { extractable: true }));
    expect(() => parseClientJWKS({ keys: [oct] })).toThrow(/symmetric key/);
    expect(() => parseClientJWKS({ keys: [{ kty: "XYZ", x: "AA" }] })).toThrow(/kty "XYZ"/);
    const ec = await publicJWK("ES256");
    expect(() => parseClientJWKS({ keys: [{ ...ec, crv: "secp256k1" }] })).toThrow(/crv/);
    expect(() => parseClientJWKS({ keys: [{ ...ec, alg: "HS256" }] })).toThrow(/alg "HS256"/);
    expect(() => parseClientJWKS({ keys: [{ ...ec, alg: "RS256" }] })).toThrow(/does not fit/);
    expect(() => parseClientJWKS({ keys: [{ ...ec, use: "enc" }] })).toThrow(/use/);
  });

  it("refuses RSA moduli under 2048 bits", async () => {
    const { publicKey } = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const small = await exportJWK(publicKey);
    expect(rsaModulusBits(small.n!)).toBe(1024);
    expect(rsaModulusBits((await publicJWK("RS256")).n!)).toBe(2048);
    expect(() => parseClientJWKS({ keys: [small] })).toThrow(/2048 bits/);
  });

  it("caps the number of keys and refuses duplicate kids and an empty set", async () => {
    const key = await publicJWK();
    expect(() => parseClientJWKS({ keys: [] })).toThrow(/1 to/);
    expect(() => parseClientJWKS({ keys: Array.from({ length: MAX_CLIENT_KEYS + 1 }, () => key) })).toThrow(/1 to/);
    expect(() => parseClientJWKS({ keys: [key, key] })).toThrow(/duplicate/);
    expect(() => parseClientJWKS([key])).toThrow(/JWK Set/);
  });
});

describe("jwks_uri in a client record", () => {
  it("takes https, and http only to a loopback host; never user info or a fragment", () => {
    expect(isWellFormedJwksUri("https://keys.example.com/jwks.json")).toBe(true);
    expect(isWellFormedJwksUri("http://127.0.0.1:9000/jwks")).toBe(true);
    expect(isWellFormedJwksUri("http://localhost/jwks")).toBe(true);
    for (const bad of [
      "http://keys.example.com/jwks",
      "https://u:p@keys.example.com/",
      "https://keys.example.com/#k",
      "file:///etc/passwd",
      "ftp://x/",
      "not a url",
    ]) {
      expect(isWellFormedJwksUri(bad), bad).toBe(false);
    }
  });
});

describe("token_endpoint_auth_method: a record names its method, a private_key_jwt client has no secret", () => {
  const now = nowSeconds();

  it("creates a private_key_jwt client with keys and no secret, and refuses one without keys or with both sources", async () => {
    const jwks = { keys: [await publicJWK()] };
    const record = createKeyClientRecord("svc-keys", { scope: "orders:read", jwks }, now);
    expect(record).toMatchObject({ token_endpoint_auth_method: "private_key_jwt", secrets: [] });
    expect(record.jwks!.keys).toHaveLength(1);
    expect(() => createKeyClientRecord("svc-none", {}, now)).toThrow(ClientRecordError);
    expect(() => validateClientRecord({ ...record, jwks_uri: "https://keys.example.com/" })).toThrow(/exactly one/);
    await expect(createClientRecord("svc-x", { token_endpoint_auth_method: "private_key_jwt", jwks }, now)).rejects.toThrow(
      ClientRecordError,
    );
  });

  it("refuses secrets on a private_key_jwt record, and keys or the audience flag on a secret one", async () => {
    const jwks = { keys: [await publicJWK()] };
    const secretClient = (await buildClientRecord()).record;
    expect(() => validateClientRecord({ ...secretClient, token_endpoint_auth_method: "private_key_jwt", jwks })).toThrow(/no secrets/);
    expect(() => validateClientRecord({ ...secretClient, jwks })).toThrow(/only a private_key_jwt client/);
    expect(() => validateClientRecord({ ...secretClient, allow_token_endpoint_audience: true })).toThrow(/private_key_jwt clients only/);
    expect(() => validateClientRecord({ ...secretClient, token_endpoint_auth_method: "client_secret_jwt" })).toThrow(
      /token_endpoint_auth_method/,
    );
  });

  it("keeps older records without the field as they are (a secret client)", async () => {
    const old = (await buildClientRecord()).record;
    const parsed = validateClientRecord(old);
    expect(parsed).not.toHaveProperty("token_endpoint_auth_method");
    expect(parsed).not.toHaveProperty("jwks");
  });

  it("new secret clients name client_secret_basic; the method cannot switch between a secret and an assertion", async () => {
    const { record } = await createClientRecord("svc-secret", { scope: "a" }, now, { iterations: 10_000 });
    expect(record.token_endpoint_auth_method).toBe("client_secret_basic");
    expect(updateClientRecord(record, { token_endpoint_auth_method: "client_secret_post" }, now).token_endpoint_auth_method).toBe(
      "client_secret_post",
    );
    expect(() => updateClientRecord(record, { token_endpoint_auth_method: "private_key_jwt" }, now)).toThrow(/cannot change/);
    const keyed = createKeyClientRecord("svc-keyed", { jwks: { keys: [await publicJWK()] } }, now);
    expect(() => updateClientRecord(keyed, { token_endpoint_auth_method: "client_secret_basic" }, now)).toThrow(/cannot change/);
    await expect(rotateClientSecret(keyed, 0, now)).rejects.toThrow(/no secret/);
  });

  it("replaces one key source with the other on update (key rotation)", async () => {
    const keyed = createKeyClientRecord("svc-rotate", { jwks: { keys: [await publicJWK()] } }, now);
    const moved = updateClientRecord(keyed, { jwks_uri: "https://keys.example.com/jwks" }, now + 1);
    expect(moved).toMatchObject({ jwks_uri: "https://keys.example.com/jwks" });
    expect(moved).not.toHaveProperty("jwks");
    const back = updateClientRecord(moved, { jwks: { keys: [await publicJWK(), await publicJWK()] } }, now + 2);
    expect(back.jwks!.keys).toHaveLength(2);
    expect(back).not.toHaveProperty("jwks_uri");
  });
});
