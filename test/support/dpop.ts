/**
 * DPoP proofs for the tests (RFC 9449 §4.2): valid ones signed with jose, and any rule broken on
 * request (header or claim overrides, undefined deletes). alg none and HS256 are forged by hand
 * (forgeJWS), since no JOSE library signs those as a DPoP proof.
 */
import { base64url, CompactSign, exportJWK, generateKeyPair, type JWK } from "jose";
import { expect } from "vitest";
import { DPOP_ALGS } from "../../src/tokens/dpop.ts";
import { expectOriginNotContacted, parseChallenge, REALM } from "./gateway.ts";
import { nowSeconds } from "./tokens.ts";

const encoder = new TextEncoder();

export interface ProofKey {
  alg: string;
  privateKey: CryptoKey;
  /** The public JWK, as a proof's header carries it. */
  jwk: JWK;
  /** The private JWK (with `d`): what a careless client might put in a proof. */
  privateJWK: JWK;
}

/** A fresh key pair for `alg` (RSA: `modulusLength`, 2048 unless given; under 2048 only for RS256). */
export async function proofKey(alg = "ES256", modulusLength = 2048): Promise<ProofKey> {
  // jose generates no RSA key under 2048 bits: a weak one comes from WebCrypto itself.
  const { privateKey, publicKey } =
    modulusLength < 2048
      ? ((await crypto.subtle.generateKey(
          { name: "RSASSA-PKCS1-v1_5", modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
          true,
          ["sign", "verify"],
        )) as CryptoKeyPair)
      : await generateKeyPair(alg, { extractable: true, modulusLength });
  return { alg, privateKey, jwk: await exportJWK(publicKey), privateJWK: await exportJWK(privateKey) };
}

export interface ProofOptions {
  method?: string;
  url: string;
  /** The access token whose hash goes into `ath`. */
  accessToken?: string;
  /** Header members to set; undefined deletes one. */
  header?: Record<string, unknown>;
  /** Claims to set; undefined deletes one. */
  claims?: Record<string, unknown>;
}

/** base64url(SHA-256(token)): RFC 9449 §4.2's `ath`. */
export async function athOf(token: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token))));
}

function withOverrides(base: Record<string, unknown>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base, ...overrides };
  for (const [name, value] of Object.entries(out)) if (value === undefined) delete out[name];
  return out;
}

/** The header and claims of a proof for `options`, overrides applied. */
export async function proofParts(
  key: ProofKey,
  options: ProofOptions,
): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> {
  const header = withOverrides({ typ: "dpop+jwt", alg: key.alg, jwk: key.jwk }, options.header);
  const claims = withOverrides(
    {
      jti: crypto.randomUUID(),
      htm: options.method ?? "GET",
      htu: options.url,
      iat: nowSeconds(),
      ...(options.accessToken === undefined ? {} : { ath: await athOf(options.accessToken) }),
    },
    options.claims,
  );
  return { header, claims };
}

/** A DPoP proof signed by `key` (its alg unless the header overrides say otherwise). */
export async function signProof(key: ProofKey, options: ProofOptions): Promise<string> {
  const { header, claims } = await proofParts(key, options);
  return new CompactSign(encoder.encode(JSON.stringify(claims))).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
}

/**
 * Asserts an RFC 9449 §7.1 refusal at a resource: 401, `WWW-Authenticate: DPoP realm=…, error=…,
 * error_description=…, algs="…"`, the same error in the JSON body, and (given `mark`) the origin never saw it.
 */
export async function expectDPoPRefusal(
  res: Response,
  mark: string | undefined,
  error: "invalid_token" | "invalid_dpop_proof",
  description?: string,
): Promise<void> {
  const body = (await res.json()) as Record<string, string>;
  expect({ status: res.status, error: body.error }).toEqual({ status: 401, error });
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  expect(parseChallenge(res.headers.get("WWW-Authenticate"), "DPoP")).toEqual({
    realm: REALM,
    error,
    error_description: body.error_description,
    algs: DPOP_ALGS,
  });
  if (description !== undefined) expect(body.error_description).toBe(description);
  if (mark !== undefined) await expectOriginNotContacted(mark);
}
