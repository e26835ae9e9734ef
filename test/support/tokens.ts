/**
 * Access tokens for the gateway tests: well-formed ones signed with the test SIGNING_KEY set, and
 * forged ones built byte by byte (header, payload and signature each base64url-encoded by hand), so
 * an attack never depends on what a JOSE library is willing to produce.
 */
import { env } from "cloudflare:workers";
import { base64url, importJWK, type JWK } from "jose";
import { clientKey, isValidClientId } from "../../src/clients/record.ts";

/** The audience of every protected test route but /other-aud (vitest.config.ts). */
export const AUDIENCE = "https://api.tollgate.test";
export const ISSUER = env.ISSUER;

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

const encoder = new TextEncoder();
const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

/** The private JWKs of env.SIGNING_KEY: [0] signs, [1] is published only (env.TEST_PUBLISHED_ONLY_KID). */
export function testSigningJWKs(): (JWK & { kid: string })[] {
  return (JSON.parse(env.SIGNING_KEY) as { keys: (JWK & { kid: string })[] }).keys;
}

/** The public part of a P-256 JWK. */
export function publicJWK(jwk: JWK): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

/** One of the test keys, ready to sign: index 0 is the signer, 1 the published-only key. */
export async function testKey(index = 0): Promise<{ kid: string; privateKey: CryptoKey; jwk: JWK }> {
  const jwk = testSigningJWKs()[index]!;
  const privateKey = (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey;
  return { kid: jwk.kid, privateKey, jwk };
}

/** A fresh P-256 key pair that Tollgate has never seen. */
export async function attackerKey(): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JWK;
  return { privateKey: pair.privateKey, jwk: publicJWK(jwk) };
}

/** ES256 over the JWS signing input: WebCrypto's ECDSA output is already JWS's r || s (RFC 7518 §3.4). */
export async function es256(privateKey: CryptoKey, signingInput: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign(ECDSA, privateKey, encoder.encode(signingInput)));
}

/** HS256 with any bytes (or string) as the secret: the algorithm-confusion attacker's tool. */
export async function hs256(secret: Uint8Array | string, signingInput: string): Promise<Uint8Array> {
  const raw = typeof secret === "string" ? encoder.encode(secret) : secret;
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(signingInput)));
}

export const b64 = (value: Uint8Array | string): string => base64url.encode(value);

/** A JSON header or payload, or an exact string to encode as is (duplicate members, non-JSON). */
export type Part = Record<string, unknown> | string;

const encodePart = (part: Part): string => b64(typeof part === "string" ? part : JSON.stringify(part));

/**
 * A compact JWS built by hand. `sign` gets the signing input and returns the signature bytes, or
 * is a fixed signature (bytes, or an already-encoded string such as "").
 */
export async function forgeJWS(
  header: Part,
  payload: Part,
  sign: ((input: string) => Promise<Uint8Array>) | Uint8Array | string,
): Promise<string> {
  const input = `${encodePart(header)}.${encodePart(payload)}`;
  const signature = typeof sign === "string" ? sign : b64(typeof sign === "function" ? await sign(input) : sign);
  return `${input}.${signature}`;
}

/** Claims Tollgate's /token would issue for the /api routes; override or delete (undefined) any. */
export function accessTokenClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    sub: "gateway-test-client",
    client_id: "gateway-test-client",
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    jti: crypto.randomUUID(),
    scope: "orders:read",
    ...overrides,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return claims;
}

export interface MintOptions {
  /** Claim overrides; undefined deletes the claim. */
  claims?: Record<string, unknown>;
  /** Header overrides; undefined deletes the member. */
  header?: Record<string, unknown>;
  /** Which test key signs (0: the signer, 1: the published-only key). */
  keyIndex?: number;
}

/**
 * A client record as written before `introspect_any`, `instance_id` and `tokens_not_before` existed:
 * enabled, nothing allowed, no secret. Tests of the legacy rules (and tokens without `tg_inst`) use it.
 */
export function legacyClientRecord(clientId: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: clientId,
    name: clientId,
    allowed_scopes: [],
    default_scopes: [],
    allowed_audiences: [],
    default_audience: null,
    grant_types: ["client_credentials"],
    token_ttl: null,
    disabled: false,
    secrets: [],
    created_at: 1,
    updated_at: 1,
    ...fields,
  };
}

/**
 * The gateway refuses a token whose client has no record or a disabled one (src/tokens/status.ts): this
 * stores an enabled record without secrets for `clientId`, unless a record exists (a test that
 * disabled or deleted it keeps it so). Not a string or not a valid id: nothing to store.
 */
export async function ensureTokenClient(clientId: unknown): Promise<void> {
  if (typeof clientId !== "string" || !isValidClientId(clientId)) return;
  if ((await env.CLIENTS.get(clientKey(clientId))) !== null) return;
  const now = nowSeconds();
  // Long before any token a test mints (tokens_not_before defaults to created_at).
  const record = legacyClientRecord(clientId, { name: "gateway test client", created_at: now - 86_400, updated_at: now - 86_400 });
  await env.CLIENTS.put(clientKey(clientId), JSON.stringify(record));
}

/**
 * A token Tollgate would accept on /api (ES256, typ at+jwt, the signer's kid), unless overridden;
 * its client is stored (ensureTokenClient) so the gateway's status check passes.
 */
export async function mintToken(options: MintOptions = {}): Promise<string> {
  const key = await testKey(options.keyIndex ?? 0);
  const header: Record<string, unknown> = { alg: "ES256", typ: "at+jwt", kid: key.kid, ...options.header };
  for (const [name, value] of Object.entries(header)) if (value === undefined) delete header[name];
  const claims = accessTokenClaims(options.claims);
  await ensureTokenClient(claims.client_id);
  return forgeJWS(header, claims, (input) => es256(key.privateKey, input));
}

/** Replaces the signature of a compact JWS. */
export function withSignature(token: string, signature: Uint8Array | string): string {
  const [header, payload] = token.split(".");
  return `${header}.${payload}.${typeof signature === "string" ? signature : b64(signature)}`;
}

/** The signature bytes of a compact JWS. */
export function signatureOf(token: string): Uint8Array {
  return base64url.decode(token.split(".")[2]!);
}

/** The order n of the P-256 group (FIPS 186-4 D.1.2.3), big-endian. */
export const P256_ORDER = Uint8Array.from(
  "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551".match(/../g)!.map((h) => Number.parseInt(h, 16)),
);

/** An ECDSA r || s signature re-encoded as ASN.1 DER (what OpenSSL produces, not what JWS uses). */
export function derEncode(rawSignature: Uint8Array): Uint8Array {
  const integer = (bytes: Uint8Array): number[] => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const value = [...bytes.subarray(i)];
    if (value[0]! & 0x80) value.unshift(0);
    return [0x02, value.length, ...value];
  };
  const body = [...integer(rawSignature.subarray(0, 32)), ...integer(rawSignature.subarray(32))];
  return Uint8Array.from([0x30, body.length, ...body]);
}

/** A public key in the forms an algorithm-confusion attacker tries as an HMAC secret. */
export async function publicKeyForms(jwk: JWK): Promise<{ jwkJSON: string; pem: string; rawXY: Uint8Array; uncompressed: Uint8Array }> {
  const key = await crypto.subtle.importKey(
    "jwk",
    { ...publicJWK(jwk), ext: true } as JsonWebKey,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", key)) as ArrayBuffer);
  const base64 = btoa(String.fromCharCode(...spki));
  const pem = `-----BEGIN PUBLIC KEY-----\n${base64.match(/.{1,64}/g)!.join("\n")}\n-----END PUBLIC KEY-----\n`;
  const uncompressed = new Uint8Array((await crypto.subtle.exportKey("raw", key)) as ArrayBuffer);
  return { jwkJSON: JSON.stringify(publicJWK(jwk)), pem, rawXY: uncompressed.subarray(1), uncompressed };
}
