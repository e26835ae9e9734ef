/**
 * DPoP proof verification (src/tokens/dpop.ts), by direct import: every rule of RFC 9449 §4.3 and
 * the per-isolate replay cache of §11.1. The endpoints' use of it is tested in
 * test/endpoints/dpop.test.ts.
 */
import { calculateJwkThumbprint, decodeJwt } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import { clearAllCaches } from "../../src/bounded-cache.ts";
import { MAX_JTI_LENGTH } from "../../src/clients/client-keys.ts";
import { CLOCK_TOLERANCE_SECONDS, DPOP_PROOF_MAX_AGE_SECONDS } from "../../src/policy.ts";
import { DPOP_SIGNING_ALGS, DPoPProofError, normalizeHTU, verifyDPoPProof, type DPoPExpectation } from "../../src/tokens/dpop.ts";
import { proofKey, proofParts, signProof, type ProofKey, type ProofOptions } from "../support/dpop.ts";
import { b64, derEncode, es256, forgeJWS, hs256, nowSeconds, signatureOf } from "../support/tokens.ts";

const URL_ = "https://api.tollgate.test/orders/7";

function dpopHeaders(...proofs: string[]): Headers {
  const headers = new Headers();
  for (const proof of proofs) headers.append("DPoP", proof);
  return headers;
}

async function verify(proof: string, expected: Partial<DPoPExpectation> = {}) {
  return verifyDPoPProof(dpopHeaders(proof), { method: "GET", url: URL_, ...expected });
}

/** The reason (log only) verifyDPoPProof refused `proof` with. */
async function refusal(proof: string, expected: Partial<DPoPExpectation> = {}): Promise<string> {
  const error = await verify(proof, expected).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DPoPProofError);
  return (error as DPoPProofError).reason;
}

let key: ProofKey;
const proof = (options: Partial<ProofOptions> = {}) => signProof(key, { url: URL_, ...options });

beforeEach(async () => {
  clearAllCaches();
  key ??= await proofKey("ES256");
});

describe("RFC 9449 §4.3: a valid proof", () => {
  it("verifies and yields the RFC 7638 thumbprint of its key", async () => {
    const result = await verify(await proof());
    expect(result?.jkt).toBe(await calculateJwkThumbprint(key.jwk));
  });

  it("is undefined when the request has no DPoP header", async () => {
    expect(await verifyDPoPProof(new Headers(), { method: "GET", url: URL_ })).toBeUndefined();
  });

  it.each(DPOP_SIGNING_ALGS)("is accepted with %s", async (alg) => {
    const k = await proofKey(alg);
    const result = await verify(await signProof(k, { url: URL_ }));
    expect(result?.jkt).toBe(await calculateJwkThumbprint(k.jwk));
  });
});

describe("RFC 9449 §4.3: the header", () => {
  it("refuses two DPoP headers (step 1)", async () => {
    const error = await verifyDPoPProof(dpopHeaders(await proof(), await proof()), { method: "GET", url: URL_ }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DPoPProofError);
    expect((error as DPoPProofError).reason).toBe("more than one DPoP header");
  });

  it("refuses what is not a compact JWS (step 2)", async () => {
    expect(await refusal("not-a-jwt")).toBe("not a compact JWS");
    expect(await refusal(`${await proof()}.x`)).toBe("not a compact JWS");
  });

  it("refuses a typ other than dpop+jwt (step 4)", async () => {
    expect(await refusal(await proof({ header: { typ: "JWT" } }))).toMatch(/^typ "JWT"/);
    expect(await refusal(await proof({ header: { typ: undefined } }))).toMatch(/^typ undefined/);
  });

  it("refuses alg none (step 5)", async () => {
    const { header, claims } = await proofParts(key, { url: URL_, header: { alg: "none" } });
    expect(await refusal(await forgeJWS(header, claims, ""))).toMatch(/^alg "none"/);
  });

  it("refuses HS256, even keyed with the proof's own public key (step 5)", async () => {
    const { header, claims } = await proofParts(key, { url: URL_, header: { alg: "HS256" } });
    const forged = await forgeJWS(header, claims, (input) => hs256(JSON.stringify(key.jwk), input));
    expect(await refusal(forged)).toMatch(/^alg "HS256"/);
  });

  it("refuses a symmetric jwk (kty oct) whatever the alg", async () => {
    const { header, claims } = await proofParts(key, { url: URL_, header: { alg: "HS256", jwk: { kty: "oct", k: b64("secret") } } });
    const forged = await forgeJWS(header, claims, (input) => hs256("secret", input));
    expect(await refusal(forged)).toMatch(/^alg "HS256"/);
    // Under an accepted alg, the oct jwk itself is what is refused (its key `k` is private).
    const asES256 = await proofParts(key, { url: URL_, header: { jwk: { kty: "oct", k: b64("secret") } } });
    const claimed = await forgeJWS(asES256.header, asES256.claims, (input) => hs256("secret", input));
    expect(await refusal(claimed)).toBe("jwk carries the private member k");
  });

  it("refuses a jwk with a private member (step 7)", async () => {
    expect(await refusal(await proof({ header: { jwk: key.privateJWK } }))).toBe("jwk carries the private member d");
    // Any private member, even without d (RSA's CRT parameters).
    expect(await refusal(await proof({ header: { jwk: { ...key.jwk, p: b64("x") } } }))).toBe("jwk carries the private member p");
  });

  it("refuses a proof without jwk (step 3)", async () => {
    expect(await refusal(await proof({ header: { jwk: undefined } }))).toBe("no jwk header parameter");
  });

  it("refuses a jwk that does not verify the signature (step 6)", async () => {
    const other = await proofKey("ES256");
    expect(await refusal(await proof({ header: { jwk: other.jwk } }))).toMatch(/^verification failed/);
  });

  it("refuses an empty, truncated or DER-encoded signature (RFC 7518 §3.4: r || s only)", async () => {
    const valid = await proof();
    const [h, p, sig] = valid.split(".") as [string, string, string];
    expect(await refusal(`${h}.${p}.`)).toMatch(/^verification failed/);
    expect(await refusal(`${h}.${p}.${sig.slice(0, 40)}`)).toMatch(/^verification failed/);
    expect(await refusal(`${h}.${p}.${b64(derEncode(signatureOf(valid)))}`)).toMatch(/^verification failed/);
    // Another payload under the same signature.
    const changed = b64(JSON.stringify({ ...decodeJwt(valid), jti: "another" }));
    expect(await refusal(`${h}.${changed}.${sig}`)).toBe("verification failed: signature");
  });

  it("refuses a jwk of another algorithm than alg", async () => {
    const es384 = await proofKey("ES384");
    expect(await refusal(await signProof(es384, { url: URL_, header: { jwk: key.jwk } }))).toMatch(
      /^jwk not usable with ES384|^verification failed/,
    );
  });

  it("refuses RSA keys under 2048 bits", async () => {
    const weak = await proofKey("RS256", 1024);
    const { header, claims } = await proofParts(weak, { url: URL_ });
    // jose will not sign with it either: WebCrypto does.
    const sign = async (input: string) =>
      new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", weak.privateKey, new TextEncoder().encode(input)));
    expect(await refusal(await forgeJWS(header, claims, sign))).toMatch(/2048/);
  });

  it("refuses an unknown crit extension (RFC 7515 §4.1.11)", async () => {
    // jose will not sign it: signed by hand.
    const { header, claims } = await proofParts(key, { url: URL_, header: { crit: ["x-unknown"], "x-unknown": true } });
    expect(await refusal(await forgeJWS(header, claims, (input) => es256(key.privateKey, input)))).toBe("crit or b64 header parameter");
  });

  it("checks every header text on its own: one remembered from a valid proof lets no other header pass", async () => {
    expect(await verify(await proof())).toBeDefined();
    expect(await refusal(await proof({ header: { typ: "jwt" } }))).toMatch(/^typ "jwt"/);
    expect(await refusal(await proof({ header: { jwk: key.privateJWK } }))).toBe("jwk carries the private member d");
    // And the remembered key verifies only its own signatures.
    const other = await proofKey("ES256");
    expect(await refusal(await signProof(other, { url: URL_, header: { jwk: key.jwk } }))).toMatch(/^verification failed/);
  });

  it("refuses a proof over MAX_PROOF_LENGTH before decoding it", async () => {
    expect(await refusal(await proof({ claims: { pad: "x".repeat(9000) } }))).toMatch(/^proof of \d+ characters/);
  });
});

describe("RFC 9449 §4.3: the claims", () => {
  it.each(["jti", "htm", "htu", "iat"])("refuses a proof without %s (step 3)", async (claim) => {
    expect(await refusal(await proof({ claims: { [claim]: undefined } }))).toMatch(new RegExp(`^(?:${claim} must be|htm undefined)`));
  });

  it("refuses a jti over MAX_JTI_LENGTH, or empty", async () => {
    expect(await refusal(await proof({ claims: { jti: "j".repeat(MAX_JTI_LENGTH + 1) } }))).toMatch(/^jti must be/);
    expect(await refusal(await proof({ claims: { jti: "" } }))).toMatch(/^jti must be/);
    expect(await verify(await proof({ claims: { jti: "j".repeat(MAX_JTI_LENGTH) } }))).toBeDefined();
  });

  it("refuses another htm (step 8)", async () => {
    expect(await refusal(await proof({ method: "POST" }))).toMatch(/^htm "POST" for a GET request/);
    expect(await refusal(await proof({ method: "get" }))).toMatch(/^htm "get"/);
  });

  it("refuses another htu (step 9)", async () => {
    expect(await refusal(await proof({ url: "https://api.tollgate.test/orders/8" }))).toMatch(/^htu/);
    expect(await refusal(await proof({ url: "https://evil.test/orders/7" }))).toMatch(/^htu/);
    expect(await refusal(await proof({ url: "http://api.tollgate.test/orders/7" }))).toMatch(/^htu/);
    expect(await refusal(await proof({ url: "https://api.tollgate.test/orders/7/" }))).toMatch(/^htu/);
    expect(await refusal(await proof({ url: "/orders/7" }))).toMatch(/^htu/);
  });

  it("compares htu without query and fragment, normalized (RFC 3986 §6.2.2, §6.2.3)", async () => {
    for (const htu of [
      "https://API.Tollgate.TEST/orders/7",
      "HTTPS://api.tollgate.test:443/orders/7",
      "https://api.tollgate.test/orders/%37",
      "https://api.tollgate.test/orders/./7",
      "https://api.tollgate.test/orders/7?x=1#f",
    ]) {
      expect(await verify(await proof({ url: htu })), htu).toBeDefined();
    }
    // The request's own URL is normalized alike: its query never matters.
    expect(await verify(await proof(), { url: `${URL_}?page=2` })).toBeDefined();
    expect(normalizeHTU("https://a.test/x%2fy%7e")).toBe("https://a.test/x%2Fy~");
    expect(normalizeHTU("ftp://a.test/x")).toBeUndefined();
  });

  it(`accepts iat up to ${DPOP_PROOF_MAX_AGE_SECONDS} s old and ${CLOCK_TOLERANCE_SECONDS} s ahead, no further (step 11)`, async () => {
    const now = nowSeconds();
    expect(await verify(await proof({ claims: { iat: now - DPOP_PROOF_MAX_AGE_SECONDS } }), { now })).toBeDefined();
    expect(await verify(await proof({ claims: { iat: now + CLOCK_TOLERANCE_SECONDS } }), { now })).toBeDefined();
    expect(await refusal(await proof({ claims: { iat: now - DPOP_PROOF_MAX_AGE_SECONDS - 1 } }), { now })).toMatch(/s old$/);
    expect(await refusal(await proof({ claims: { iat: now + CLOCK_TOLERANCE_SECONDS + 1 } }), { now })).toMatch(/s ahead$/);
    expect(await refusal(await proof({ claims: { iat: String(now) } }), { now })).toBe("iat must be a number");
  });

  it("requires ath = base64url(SHA-256(token)) when an access token is expected (step 12)", async () => {
    const token = "eyJ.access.token";
    expect(await verify(await proof({ accessToken: token }), { accessToken: token })).toBeDefined();
    expect(await refusal(await proof({ accessToken: "another" }), { accessToken: token })).toBe("ath is not the access token's hash");
    expect(await refusal(await proof(), { accessToken: token })).toBe("no ath");
  });
});

describe("RFC 9449 §11.1: replayed proofs in one isolate", () => {
  it("refuses a proof seen before, within its iat window", async () => {
    const once = await proof();
    expect(await verify(once)).toBeDefined();
    expect(await refusal(once)).toMatch(/replayed$/);
  });

  it("keys the jti by the proof's key: another key may use the same jti", async () => {
    const jti = crypto.randomUUID();
    expect(await verify(await proof({ claims: { jti } }))).toBeDefined();
    const other = await proofKey("ES256");
    expect(await verify(await signProof(other, { url: URL_, claims: { jti } }))).toBeDefined();
  });

  it("a refused proof does not use up its jti", async () => {
    const jti = crypto.randomUUID();
    await refusal(await proof({ method: "POST", claims: { jti } }));
    expect(await verify(await proof({ claims: { jti } }))).toBeDefined();
  });
});
