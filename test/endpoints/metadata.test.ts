import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { issueToken, METADATA_URL, seedClient } from "../support/worker.ts";

async function metadata(): Promise<Record<string, unknown>> {
  const res = await exports.default.fetch(METADATA_URL);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

describe("RFC 8414 §3 authorization server metadata", () => {
  it("is JSON at /.well-known/oauth-authorization-server", async () => {
    const res = await exports.default.fetch(METADATA_URL);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  });

  it("names the issuer env.ISSUER, the very iss of the tokens issued (RFC 8414 §3.3)", async () => {
    const { issuer } = await metadata();
    expect(issuer).toBe(env.ISSUER);
    const client = await seedClient();
    expect(decodeJwt((await issueToken(client)).access_token).iss).toBe(issuer);
  });

  it("points token_endpoint at issuer + /token, which issues tokens", async () => {
    const { issuer, token_endpoint } = await metadata();
    expect(token_endpoint).toBe(`${issuer as string}/token`);
    const res = await exports.default.fetch(token_endpoint as string, { method: "GET" });
    expect(res.status).toBe(405);
  });

  it("points jwks_uri at the served JWK Set", async () => {
    const { issuer, jwks_uri } = await metadata();
    expect(jwks_uri).toBe(`${issuer as string}/.well-known/jwks.json`);
    const res = await exports.default.fetch(jwks_uri as string);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it("lists client_credentials as the only grant type", async () => {
    expect((await metadata()).grant_types_supported).toEqual(["client_credentials"]);
  });

  it("lists client_secret_basic, client_secret_post, private_key_jwt and the two mTLS methods as the token endpoint auth methods", async () => {
    expect((await metadata()).token_endpoint_auth_methods_supported).toEqual([
      "client_secret_basic",
      "client_secret_post",
      "private_key_jwt",
      "tls_client_auth",
      "self_signed_tls_client_auth",
    ]);
  });

  it("announces certificate-bound tokens (RFC 8705 §3.3) and no mtls_endpoint_aliases (§5)", async () => {
    const body = await metadata();
    expect(body.tls_client_certificate_bound_access_tokens).toBe(true);
    expect(body).not.toHaveProperty("mtls_endpoint_aliases");
  });

  it("lists the asymmetric algorithms a client assertion may use, never none or an HMAC (RFC 8414 §2)", async () => {
    const body = await metadata();
    for (const endpoint of ["token_endpoint", "revocation_endpoint", "introspection_endpoint"]) {
      expect(body[`${endpoint}_auth_signing_alg_values_supported`]).toEqual(["ES256", "ES384", "PS256", "RS256", "EdDSA"]);
    }
  });

  it("points revocation_endpoint (RFC 7009) and introspection_endpoint (RFC 7662) at endpoints that answer POST only", async () => {
    const body = await metadata();
    expect(body.revocation_endpoint).toBe(`${body.issuer as string}/revoke`);
    expect(body.introspection_endpoint).toBe(`${body.issuer as string}/introspect`);
    for (const endpoint of [body.revocation_endpoint, body.introspection_endpoint]) {
      const res = await exports.default.fetch(endpoint as string, { method: "GET" });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("POST");
    }
  });

  it("lists the same client authentication methods for revocation and introspection as for /token", async () => {
    const body = await metadata();
    expect(body.revocation_endpoint_auth_methods_supported).toEqual(body.token_endpoint_auth_methods_supported);
    expect(body.introspection_endpoint_auth_methods_supported).toEqual(body.token_endpoint_auth_methods_supported);
  });

  it("carries the REQUIRED response_types_supported and announces ES256 access tokens", async () => {
    const body = await metadata();
    expect(body.response_types_supported).toEqual([]);
    expect(body.access_token_signing_alg_values_supported).toEqual(["ES256"]);
  });

  it("may be cached publicly and read cross-origin", async () => {
    const res = await exports.default.fetch(METADATA_URL);
    expect(res.headers.get("Cache-Control")).toMatch(/^public, max-age=\d+$/);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
  });
});
