import { env } from "cloudflare:workers";
import { decodeJwt, decodeProtectedHeader, errors, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { nowSeconds } from "../support/tokens.ts";
import { issueToken, seedClient, verifyAccessToken } from "../support/worker.ts";
import { generateInstanceId } from "../../src/clients/record.ts";

const ORDERS = "https://api.tollgate.test/orders";
const signingKeys = (JSON.parse(env.SIGNING_KEY) as { keys: JWK[] }).keys;

describe("RFC 9068 §2.1 access token header", () => {
  it("is ES256, typ at+jwt, signed by the first key of SIGNING_KEY", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const header = decodeProtectedHeader(access_token);
    expect(header).toEqual({ alg: "ES256", typ: "at+jwt", kid: signingKeys[0]!.kid });
    expect(header.kid).not.toBe(env.TEST_PUBLISHED_ONLY_KID);
  });
});

describe("RFC 9068 §2.2 access token claims", () => {
  it("carries iss, sub, client_id, aud, iat, exp, jti and scope", async () => {
    const client = await seedClient({ allowed_audiences: [ORDERS], allowed_scopes: ["orders:read", "orders:write"], default_scopes: [] });
    const before = nowSeconds();
    const body = await issueToken(client, { scope: "orders:write", resource: ORDERS });
    const after = nowSeconds();
    const claims = await verifyAccessToken(body.access_token, { audience: ORDERS });
    expect(Object.keys(claims).sort()).toEqual(["aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"]);
    expect(claims.iss).toBe(env.ISSUER);
    expect(claims.sub).toBe(client.client_id);
    expect(claims.client_id).toBe(client.client_id);
    expect(claims.aud).toBe(ORDERS);
    expect(claims.scope).toBe("orders:write");
    expect(claims.iat).toBeGreaterThanOrEqual(before - 1);
    expect(claims.iat).toBeLessThanOrEqual(after + 1);
    expect(claims.exp).toBe(claims.iat! + body.expires_in);
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it("carries tg_inst, the client record's instance_id, and leaves it out for a record from before the field", async () => {
    const instanceId = generateInstanceId();
    const current = await seedClient({ instance_id: instanceId });
    expect(decodeJwt((await issueToken(current)).access_token).tg_inst).toBe(instanceId);
    expect(decodeJwt((await issueToken(await seedClient())).access_token)).not.toHaveProperty("tg_inst");
  });

  it("gives every token its own jti", async () => {
    const client = await seedClient();
    const first = decodeJwt((await issueToken(client)).access_token);
    const second = decodeJwt((await issueToken(client)).access_token);
    expect(typeof first.jti).toBe("string");
    expect(first.jti).not.toBe(second.jti);
  });

  it("sets exp to iat + the lifetime, and the token stops verifying at exp", async () => {
    const client = await seedClient({ token_ttl: 120 });
    const { access_token, expires_in } = await issueToken(client);
    expect(expires_in).toBe(120);
    const { iat, exp } = decodeJwt(access_token);
    expect(exp).toBe(iat! + 120);
    // jose's currentDate instead of fake timers: valid one second before exp, expired at exp.
    await expect(verifyAccessToken(access_token, { currentDate: new Date((exp! - 1) * 1000) })).resolves.toMatchObject({ exp });
    await expect(verifyAccessToken(access_token, { currentDate: new Date(exp! * 1000) })).rejects.toBeInstanceOf(errors.JWTExpired);
  });
});

describe("RFC 9068 §4 verification by a resource server", () => {
  it("verifies against the JWKS served at /.well-known/jwks.json with the issuer and audience pinned", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const claims = await verifyAccessToken(access_token, { audience: env.DEFAULT_AUDIENCE });
    expect(claims.client_id).toBe(client.client_id);
  });

  it("does not verify for another issuer or another audience", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expect(verifyAccessToken(access_token, { issuer: "https://evil.example" })).rejects.toBeInstanceOf(
      errors.JWTClaimValidationFailed,
    );
    await expect(verifyAccessToken(access_token, { audience: "https://other.example" })).rejects.toBeInstanceOf(
      errors.JWTClaimValidationFailed,
    );
  });

  it("does not verify once a byte of the payload is changed", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const [header, payload, signature] = access_token.split(".");
    const forged = JSON.stringify({ ...decodeJwt(access_token), scope: "orders:read orders:write" });
    const tampered = `${header}.${btoa(forged).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")}.${signature}`;
    expect(tampered).not.toBe(`${header}.${payload}.${signature}`);
    await expect(verifyAccessToken(tampered)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
  });
});
