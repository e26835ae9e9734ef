/**
 * DPoP (RFC 9449) through the Worker's entry point: /token binds tokens to a proof's key (§5, §6.1),
 * a client registered with dpop_bound_access_tokens needs a proof (§5.2), and the metadata names
 * the proof algorithms. The proof rules themselves are test/tokens/dpop.test.ts's.
 */
import { env, exports } from "cloudflare:workers";
import { calculateJwkThumbprint, decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { expectDPoPRefusal, proofKey, proofParts, signProof, type ProofKey, type ProofOptions } from "../support/dpop.ts";
import { expectProxied, gatewayFetch, GATEWAY, marker, originRequestsWith, rawHeaderValues } from "../support/gateway.ts";
import { forgeJWS, hs256, nowSeconds } from "../support/tokens.ts";
import { basic, expectJSONError, FORM, issueToken, METADATA_URL, seedClient, TOKEN_URL, type TokenResponse } from "../support/worker.ts";
import { introspect, introspection } from "../support/revocation.ts";
import { CLOCK_TOLERANCE_SECONDS, DPOP_PROOF_MAX_AGE_SECONDS } from "../../src/policy.ts";

let key: ProofKey;
let jkt: string;

beforeAll(async () => {
  key = await proofKey("ES256");
  jkt = await calculateJwkThumbprint(key.jwk);
});

/** POST /token with Basic credentials and, when given, a DPoP header. */
function dpopTokenRequest(client: { client_id: string; client_secret: string }, proof?: string): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) };
  if (proof !== undefined) headers.DPoP = proof;
  return exports.default.fetch(TOKEN_URL, { method: "POST", headers, body: "grant_type=client_credentials" });
}

const tokenProof = (options: Parameters<typeof signProof>[1] = { url: TOKEN_URL }) => signProof(key, { method: "POST", ...options });

describe("RFC 9449 §5: DPoP at /token", () => {
  it("binds the token to the proof's key: cnf.jkt is its RFC 7638 thumbprint, token_type DPoP", async () => {
    const client = await seedClient();
    const res = await dpopTokenRequest(client, await tokenProof());
    expect(res.status).toBe(200);
    const body = (await res.json()) as TokenResponse;
    expect(body.token_type).toBe("DPoP");
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt });
  });

  it("issues a Bearer token without cnf when no proof comes", async () => {
    const client = await seedClient();
    const body = (await (await dpopTokenRequest(client)).json()) as TokenResponse;
    expect(body.token_type).toBe("Bearer");
    expect(decodeJwt(body.access_token)).not.toHaveProperty("cnf");
  });

  it("answers a bad proof with 400 invalid_dpop_proof and no challenge, before any secret is checked", async () => {
    const client = await seedClient();
    for (const proof of [
      await tokenProof({ url: TOKEN_URL, method: "GET" }),
      await tokenProof({ url: `${env.ISSUER}/introspect` }),
      await tokenProof({ url: TOKEN_URL, header: { typ: "JWT" } }),
    ]) {
      const res = await dpopTokenRequest(client, proof);
      await expectJSONError(res, 400, "invalid_dpop_proof");
      expect(res.headers.get("WWW-Authenticate")).toBeNull();
    }
    // With a wrong secret too: the proof is checked first, before the secret's PBKDF2.
    const res = await dpopTokenRequest(
      { ...client, client_secret: `${client.client_secret}x` },
      await tokenProof({ url: TOKEN_URL, method: "GET" }),
    );
    await expectJSONError(res, 400, "invalid_dpop_proof");
  });

  it("refuses a proof used before at /token (RFC 9449 §11.1)", async () => {
    const client = await seedClient();
    const proof = await tokenProof();
    expect((await dpopTokenRequest(client, proof)).status).toBe(200);
    const body = await expectJSONError(await dpopTokenRequest(client, proof), 400, "invalid_dpop_proof");
    expect(body.error_description).toBe("the DPoP proof was used before");
  });
});

describe("RFC 9449 §5.2: dpop_bound_access_tokens", () => {
  it("refuses the client's request without a proof with 400 invalid_dpop_proof, and binds the one with", async () => {
    const client = await seedClient({ dpop_bound_access_tokens: true });
    const body = await expectJSONError(await dpopTokenRequest(client), 400, "invalid_dpop_proof");
    expect(body.error_description).toBe("this client must send a DPoP proof");
    const res = await dpopTokenRequest(client, await tokenProof());
    expect(res.status).toBe(200);
    expect(((await res.json()) as TokenResponse).token_type).toBe("DPoP");
  });

  it("is settable through the admin API and shown in its client information", async () => {
    const admin = await seedClient({
      allowed_scopes: ["tollgate:admin"],
      default_scopes: ["tollgate:admin"],
      allowed_audiences: [`${env.ISSUER}/register`],
    });
    const adminToken = ((await (await dpopTokenRequest(admin)).json()) as TokenResponse).access_token;
    const id = `dpop-${crypto.randomUUID()}`;
    const res = await exports.default.fetch(`${env.ISSUER}/register`, {
      method: "POST",
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: id, scope: "orders:read", dpop_bound_access_tokens: true }),
    });
    expect(res.status).toBe(201);
    const info = (await res.json()) as { dpop_bound_access_tokens: boolean; client_secret: string };
    expect(info.dpop_bound_access_tokens).toBe(true);
    await expectJSONError(await dpopTokenRequest({ client_id: id, client_secret: info.client_secret }), 400, "invalid_dpop_proof");
    const wrongType = await exports.default.fetch(`${env.ISSUER}/register`, {
      method: "POST",
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ scope: "orders:read", dpop_bound_access_tokens: "yes" }),
    });
    await expectJSONError(wrongType, 400, "invalid_client_metadata");
  });
});

describe("RFC 9449 §5.1: metadata", () => {
  it("names dpop_signing_alg_values_supported", async () => {
    const metadata = (await (await exports.default.fetch(METADATA_URL)).json()) as Record<string, unknown>;
    expect(metadata.dpop_signing_alg_values_supported).toEqual(["ES256", "ES384", "PS256", "RS256", "EdDSA"]);
  });
});

/** A fresh client's DPoP-bound token (bound to `key`). */
async function boundToken(): Promise<string> {
  const res = await dpopTokenRequest(await seedClient(), await tokenProof());
  expect(res.status).toBe(200);
  return ((await res.json()) as TokenResponse).access_token;
}

/** A request to the gateway with `Authorization: <scheme> <token>` and the given DPoP headers. */
function gatewayCall(path: string, scheme: string, token: string, proofs: string[], init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `${scheme} ${token}`);
  for (const proof of proofs) headers.append("DPoP", proof);
  return gatewayFetch(path, { ...init, headers });
}

/** A proof by `key` for GET `path` at the gateway, carrying the token's ath. */
const resourceProof = (path: string, token: string, options: Partial<ProofOptions> = {}, by: ProofKey = key) =>
  signProof(by, { url: `${GATEWAY}${path}`, accessToken: token, ...options });

describe("RFC 9449 §7: a DPoP-bound token at the gateway", () => {
  it("is accepted as Authorization: DPoP with a proof for the request; the origin gets neither", async () => {
    const token = await boundToken();
    const path = `/api/${marker("dpop")}`;
    const echo = await expectProxied(await gatewayCall(path, "DPoP", token, [await resourceProof(path, token)]));
    expect(rawHeaderValues(echo, "authorization")).toEqual([]);
    expect(rawHeaderValues(echo, "dpop")).toEqual([]);
    // The query is no part of htu (§4.3 step 9), nor is the case of the scheme.
    const again = await expectProxied(await gatewayCall(`${path}?page=2`, "dpop", token, [await resourceProof(path, token)]));
    expect(again.path).toContain("page=2");
  });

  it("forwards the DPoP header with Authorization on a keep_authorization route", async () => {
    const token = await boundToken();
    const path = `/strip/${marker("keep")}`;
    const proof = await resourceProof(path, token);
    const echo = await expectProxied(await gatewayCall(path, "DPoP", token, [proof]));
    expect(rawHeaderValues(echo, "authorization")).toEqual([`DPoP ${token}`]);
    expect(rawHeaderValues(echo, "dpop")).toEqual([proof]);
  });

  it("is refused as Bearer, even with a valid proof (§7.2)", async () => {
    const token = await boundToken();
    const mark = marker("bearer");
    const path = `/api/${mark}`;
    const res = await gatewayCall(path, "Bearer", token, [await resourceProof(path, token)]);
    await expectDPoPRefusal(res, mark, "invalid_token", "the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof");
  });

  it("is refused without a proof", async () => {
    const token = await boundToken();
    const mark = marker("noproof");
    await expectDPoPRefusal(await gatewayCall(`/api/${mark}`, "DPoP", token, []), mark, "invalid_dpop_proof", "a DPoP proof is required");
  });

  it("is refused with a proof by another key (the thumbprint is not cnf.jkt)", async () => {
    const token = await boundToken();
    const mark = marker("otherkey");
    const path = `/api/${mark}`;
    const other = await proofKey("ES256");
    await expectDPoPRefusal(
      await gatewayCall(path, "DPoP", token, [await resourceProof(path, token, {}, other)]),
      mark,
      "invalid_token",
      "the DPoP proof's key is not the one the access token is bound to",
    );
  });

  const now = () => nowSeconds();
  const refusedProofs: [string, (path: string, token: string) => Promise<string>][] = [
    ["another htm", (path, token) => resourceProof(path, token, { method: "POST" })],
    ["another htu path", (path, token) => resourceProof(`${path}x`, token)],
    ["another htu host", (path, token) => signProof(key, { url: `https://evil.test${path}`, accessToken: token })],
    ["no ath", (path) => signProof(key, { url: `${GATEWAY}${path}` })],
    ["the ath of another token", (path) => resourceProof(path, "another-token")],
    ["an iat too old", (path, token) => resourceProof(path, token, { claims: { iat: now() - DPOP_PROOF_MAX_AGE_SECONDS - 5 } })],
    ["an iat in the future", (path, token) => resourceProof(path, token, { claims: { iat: now() + CLOCK_TOLERANCE_SECONDS + 5 } })],
    ["no jti", (path, token) => resourceProof(path, token, { claims: { jti: undefined } })],
    ["typ JWT", (path, token) => resourceProof(path, token, { header: { typ: "JWT" } })],
    ["a private jwk", (path, token) => resourceProof(path, token, { header: { jwk: key.privateJWK } })],
    [
      "alg none",
      async (path, token) => {
        const { header, claims } = await proofParts(key, { url: `${GATEWAY}${path}`, accessToken: token, header: { alg: "none" } });
        return forgeJWS(header, claims, "");
      },
    ],
    [
      "alg HS256",
      async (path, token) => {
        const { header, claims } = await proofParts(key, { url: `${GATEWAY}${path}`, accessToken: token, header: { alg: "HS256" } });
        return forgeJWS(header, claims, (input) => hs256(JSON.stringify(key.jwk), input));
      },
    ],
  ];
  it.each(refusedProofs)("is refused with a proof with %s: 401 invalid_dpop_proof", async (_, makeProof) => {
    const token = await boundToken();
    const mark = marker("refused");
    const path = `/api/${mark}`;
    await expectDPoPRefusal(await gatewayCall(path, "DPoP", token, [await makeProof(path, token)]), mark, "invalid_dpop_proof");
  });

  it("is refused with two DPoP headers, even both valid", async () => {
    const token = await boundToken();
    const mark = marker("two");
    const path = `/api/${mark}`;
    const res = await gatewayCall(path, "DPoP", token, [await resourceProof(path, token), await resourceProof(path, token)]);
    await expectDPoPRefusal(res, mark, "invalid_dpop_proof", "send exactly one DPoP header");
  });

  it("refuses a proof replayed in the same isolate within its iat window (§11.1)", async () => {
    const token = await boundToken();
    const mark = marker("replay");
    const path = `/api/${mark}`;
    const proof = await resourceProof(path, token);
    await expectProxied(await gatewayCall(path, "DPoP", token, [proof]));
    await expectDPoPRefusal(
      await gatewayCall(path, "DPoP", token, [proof]),
      undefined,
      "invalid_dpop_proof",
      "the DPoP proof was used before",
    );
    // The origin saw the first request only.
    expect(await originRequestsWith(mark)).toHaveLength(1);
  });
});

describe("RFC 9449 §7.1: the DPoP Authorization scheme", () => {
  it("answers a malformed one (two tokens, or two headers joined) with 400 invalid_request and a DPoP challenge", async () => {
    const token = await boundToken();
    for (const authorization of [`DPoP ${token} ${token}`, `DPoP ${token}, DPoP ${token}`, "DPoP"]) {
      const mark = marker("malformed");
      const res = await gatewayFetch(`/api/${mark}`, { headers: { Authorization: authorization } });
      expect(res.status).toBe(400);
      expect(res.headers.get("WWW-Authenticate")).toMatch(/^DPoP realm=".*", error="invalid_request", .*algs="/);
      expect(((await res.json()) as { error: string }).error).toBe("invalid_request");
    }
  });
});

describe("RFC 9449 §7.2: an unbound token with the DPoP scheme", () => {
  it("is refused with 401 invalid_token and a DPoP challenge, even with a valid proof", async () => {
    const { access_token: token } = await issueToken(await seedClient());
    const mark = marker("unbound");
    const path = `/api/${mark}`;
    await expectDPoPRefusal(
      await gatewayCall(path, "DPoP", token, [await resourceProof(path, token)]),
      mark,
      "invalid_token",
      "the access token is not DPoP-bound: send it as Authorization: Bearer",
    );
  });

  it("passes as Bearer with a stray DPoP header, which the origin does not get", async () => {
    const { access_token: token } = await issueToken(await seedClient());
    const path = `/api/${marker("stray")}`;
    const echo = await expectProxied(await gatewayCall(path, "Bearer", token, [await resourceProof(path, token)]));
    expect(rawHeaderValues(echo, "dpop")).toEqual([]);
  });
});

describe("RFC 9449 §7: the admin API takes DPoP-bound admin tokens too", () => {
  it("accepts one with a proof, refuses it as Bearer", async () => {
    const admin = await seedClient({
      allowed_scopes: ["tollgate:admin"],
      default_scopes: ["tollgate:admin"],
      allowed_audiences: [`${env.ISSUER}/register`],
      dpop_bound_access_tokens: true,
    });
    const res = await dpopTokenRequest(admin, await tokenProof());
    const token = ((await res.json()) as TokenResponse).access_token;
    const url = `${env.ISSUER}/register/${admin.client_id}`;
    const withProof = await exports.default.fetch(url, {
      headers: { Authorization: `DPoP ${token}`, DPoP: await signProof(key, { url, accessToken: token }) },
    });
    expect(withProof.status).toBe(200);
    const asBearer = await exports.default.fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get("WWW-Authenticate")).toMatch(/^DPoP realm=.*error="invalid_token"/);
  });
});

describe("RFC 9449 §6.2: introspection of a DPoP-bound token", () => {
  it("answers token_type DPoP and cnf.jkt; an unbound token stays Bearer without cnf", async () => {
    const client = await seedClient();
    const bound = ((await (await dpopTokenRequest(client, await tokenProof())).json()) as TokenResponse).access_token;
    expect(await introspection(await introspect(client, bound))).toMatchObject({ active: true, token_type: "DPoP", cnf: { jkt } });
    const { access_token: unbound } = await issueToken(client);
    const answer = await introspection(await introspect(client, unbound));
    expect(answer).toMatchObject({ active: true, token_type: "Bearer" });
    expect(answer).not.toHaveProperty("cnf");
  });
});
