/**
 * DPoP (RFC 9449) through the Worker's entry point: /token binds tokens to a proof's key (§5, §6.1),
 * a client registered with dpop_bound_access_tokens needs a proof (§5.2), and the metadata names
 * the proof algorithms. The proof rules themselves are test/tokens/dpop.test.ts's.
 */
import { env, exports } from "cloudflare:workers";
import { calculateJwkThumbprint, decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { DPOP_SIGNING_ALGS } from "../../src/tokens/dpop.ts";
import { proofKey, signProof, type ProofKey } from "../support/dpop.ts";
import { basic, expectJSONError, FORM, METADATA_URL, seedClient, TOKEN_URL, type TokenResponse } from "../support/worker.ts";

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
    expect(metadata.dpop_signing_alg_values_supported).toEqual([...DPOP_SIGNING_ALGS]);
  });
});
