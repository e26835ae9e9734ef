/**
 * Mutual TLS (RFC 8705) through the Worker's entry point, on the certificate Cloudflare's edge reports
 * in `request.cf.tlsClientAuth` (faked here with `new Request(url, { cf })`, which the edge sets in
 * production and no client header reaches): the two certificate methods at /token (§2), tokens bound
 * to the certificate (§3.1) refused at the gateway without it, and their cnf at /introspect.
 */
import { env, exports } from "cloudflare:workers";
import { decodeJwt, exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { hexFingerprintToX5t } from "../../src/http/client-certificate.ts";
import {
  fakeCertificate,
  mtlsTokenRequest,
  NO_CERTIFICATE,
  SUBJECT,
  tlsClientAuth,
  withCf,
  type FakeCertificate,
} from "../support/mtls.ts";
import { expectProxied, GATEWAY, marker, withBearer } from "../support/gateway.ts";
import { basic, expectJSONError, fetchWithEnv, FORM, seedClient, TOKEN_URL, type TokenResponse } from "../support/worker.ts";
import { introspect, introspection } from "../support/revocation.ts";

const tlsClient = (overrides: Parameters<typeof seedClient>[0] = {}) =>
  seedClient({ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: SUBJECT, secrets: [], ...overrides });

async function selfSignedClient(certs: FakeCertificate[]) {
  const keys = [];
  for (const cert of certs) {
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    keys.push({ ...(await exportJWK(publicKey)), x5c: [cert.x5c] });
  }
  return seedClient({ token_endpoint_auth_method: "self_signed_tls_client_auth", jwks: { keys } as never, secrets: [] });
}

async function tokenOf(res: Response): Promise<TokenResponse> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as TokenResponse;
}

async function expectInvalidClient(res: Response): Promise<void> {
  await expectJSONError(res, 401, "invalid_client");
  // The client authenticated in the body: no Basic challenge (as for client_secret_post).
  expect(res.headers.get("WWW-Authenticate")).toBeNull();
}

describe("RFC 8705 §2.1: tls_client_auth", () => {
  it("authenticates a verified certificate with the registered subject; the token is bound to it (cnf.x5t#S256)", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const body = await tokenOf(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert)));
    expect(body.token_type).toBe("Bearer");
    expect(decodeJwt(body.access_token).cnf).toEqual({ "x5t#S256": cert.x5t });
  });

  it("refuses another subject, an unverified (FAILED, NONE) or a revoked certificate, and none: 401 invalid_client", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    for (const auth of [
      tlsClientAuth(cert, { certSubjectDNRFC2253: "CN=orders-batch-2,O=Example Corp,C=DE" }),
      tlsClientAuth(cert, { certSubjectDNRFC2253: "CN=orders-batch, O=Example Corp, C=DE" }),
      tlsClientAuth(cert, { certVerified: "FAILED:self signed certificate" }),
      tlsClientAuth(cert, { certVerified: "FAILED:certificate has expired" }),
      tlsClientAuth(cert, { certVerified: "NONE" }),
      tlsClientAuth(cert, { certRevoked: "1" }),
      NO_CERTIFICATE,
      undefined,
    ]) {
      await expectInvalidClient(await mtlsTokenRequest(client.client_id, auth));
    }
  });

  it("does not take the certificate from a header the client sends", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const body = new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id }).toString();
    const res = await exports.default.fetch(TOKEN_URL, {
      method: "POST",
      headers: {
        "Content-Type": FORM,
        "Cf-Client-Cert-Sha256": cert.hex,
        "Client-Cert": `:${cert.x5c}:`,
        "X-SSL-Client-S-DN": SUBJECT,
      },
      body,
    });
    await expectInvalidClient(res);
    // Miniflare's MF-CF-Blob header sets request.cf under wrangler dev: a request carrying it is not believed.
    const forged = withCf(TOKEN_URL, { method: "POST", headers: { "Content-Type": FORM, "MF-CF-Blob": "{}" }, body }, tlsClientAuth(cert));
    await expectInvalidClient(await exports.default.fetch(forged));
  });

  it("gives no token to a disabled client, nor to a secret client presenting only its client_id and a certificate", async () => {
    const cert = await fakeCertificate();
    const disabled = await tlsClient({ disabled: true });
    await expectInvalidClient(await mtlsTokenRequest(disabled.client_id, tlsClientAuth(cert)));
    const secretClient = await seedClient();
    await expectInvalidClient(await mtlsTokenRequest(secretClient.client_id, tlsClientAuth(cert)));
  });

  it("takes exactly one method: a secret or Basic beside the certificate does not authenticate an mTLS client", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    await expectInvalidClient(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert), { client_secret: "x.y" }));
    const res = await exports.default.fetch(
      withCf(
        TOKEN_URL,
        {
          method: "POST",
          headers: { "Content-Type": FORM, Authorization: basic(client.client_id, "x.y") },
          body: "grant_type=client_credentials",
        },
        tlsClientAuth(cert),
      ),
    );
    await expectJSONError(res, 401, "invalid_client");
  });

  it("counts failures like every other method: the client and address are blocked after the limit", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const send = (auth: Record<string, unknown>) =>
      fetchWithEnv(
        withCf(
          TOKEN_URL,
          {
            method: "POST",
            headers: { "Content-Type": FORM, "CF-Connecting-IP": "198.51.100.8" },
            body: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id }).toString(),
          },
          auth,
        ),
        undefined,
        { TOKEN_FAILURE_LIMITER: env.TEST_STRICT_LIMITER },
      );
    const wrong = tlsClientAuth(cert, { certVerified: "FAILED:unable to verify the first certificate" });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await send(wrong)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // Blocked now even with the right certificate.
    expect((await send(tlsClientAuth(cert))).status).toBe(429);
  });
});

describe("RFC 8705 §2.2: self_signed_tls_client_auth", () => {
  it("authenticates a certificate whose SHA-256 thumbprint is that of a registered x5c, and binds the token to it", async () => {
    const [first, second] = [await fakeCertificate(), await fakeCertificate()];
    const client = await selfSignedClient([first, second]);
    // Self-signed: Cloudflare cannot verify it, and need not.
    const auth = tlsClientAuth(second, { certVerified: "FAILED:self signed certificate", certSubjectDNRFC2253: "CN=anything" });
    const body = await tokenOf(await mtlsTokenRequest(client.client_id, auth));
    expect(decodeJwt(body.access_token).cnf).toEqual({ "x5t#S256": second.x5t });
  });

  it("refuses an unregistered certificate, a revoked one and none", async () => {
    const [registered, other] = [await fakeCertificate(), await fakeCertificate()];
    const client = await selfSignedClient([registered]);
    for (const auth of [tlsClientAuth(other), tlsClientAuth(registered, { certRevoked: "1" }), NO_CERTIFICATE, undefined]) {
      await expectInvalidClient(await mtlsTokenRequest(client.client_id, auth));
    }
  });
});

describe("RFC 8705 §3.4: tls_client_certificate_bound_access_tokens for a secret client", () => {
  it("binds the token to the certificate presented with the secret, and refuses a request without one", async () => {
    const cert = await fakeCertificate();
    const client = await seedClient({ tls_client_certificate_bound_access_tokens: true });
    const init = {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body: "grant_type=client_credentials",
    };
    // Binding needs possession only: an unverified (self-signed) certificate binds as well.
    const auth = tlsClientAuth(cert, { certVerified: "FAILED:self signed certificate" });
    const body = await tokenOf(await exports.default.fetch(withCf(TOKEN_URL, init, auth)));
    expect(decodeJwt(body.access_token).cnf).toEqual({ "x5t#S256": cert.x5t });
    await expectJSONError(await exports.default.fetch(withCf(TOKEN_URL, init, NO_CERTIFICATE)), 400, "invalid_request");
  });

  it("leaves a secret client's token unbound when its record does not ask, certificate or not", async () => {
    const client = await seedClient();
    const init = {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body: "grant_type=client_credentials",
    };
    const body = await tokenOf(await exports.default.fetch(withCf(TOKEN_URL, init, tlsClientAuth(await fakeCertificate()))));
    expect(decodeJwt(body.access_token)).not.toHaveProperty("cnf");
  });
});

describe("RFC 8705 §3: a certificate-bound token at the gateway and /introspect", () => {
  it("passes with the same certificate (200), and is 401 invalid_token with another or none", async () => {
    const [cert, other] = [await fakeCertificate(), await fakeCertificate()];
    const client = await tlsClient();
    const { access_token } = await tokenOf(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert)));
    const path = `/api/${marker("mtls")}`;
    const call = (auth: Record<string, unknown> | undefined) =>
      exports.default.fetch(withCf(`${GATEWAY}${path}`, withBearer(access_token), auth));
    await expectProxied(await call(tlsClientAuth(cert, { certVerified: "FAILED:self signed certificate" })));
    for (const auth of [tlsClientAuth(other), NO_CERTIFICATE, undefined]) {
      const res = await call(auth);
      expect(res.status).toBe(401);
      expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer .*error="invalid_token"/);
    }
  });

  it("is active at /introspect with its cnf", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const { access_token } = await tokenOf(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert)));
    const introspector = await seedClient({ introspect_any: true });
    const body = await introspection(await introspect(introspector, access_token));
    expect(body).toMatchObject({ active: true, client_id: client.client_id, token_type: "Bearer", cnf: { "x5t#S256": cert.x5t } });
  });

  it("the client authenticates at /introspect with its certificate too", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const { access_token } = await tokenOf(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert)));
    const body = new URLSearchParams({ token: access_token, client_id: client.client_id }).toString();
    const res = await exports.default.fetch(
      withCf(`${env.ISSUER}/introspect`, { method: "POST", headers: { "Content-Type": FORM }, body }, tlsClientAuth(cert)),
    );
    expect((await introspection(res)).active).toBe(true);
  });
});

describe("RFC 8705 at /revoke and the admin API", () => {
  it("a tls_client_auth client revokes its own token with its certificate", async () => {
    const cert = await fakeCertificate();
    const client = await tlsClient();
    const { access_token } = await tokenOf(await mtlsTokenRequest(client.client_id, tlsClientAuth(cert)));
    const body = new URLSearchParams({ token: access_token, client_id: client.client_id }).toString();
    const revoke = (auth: Record<string, unknown>) =>
      exports.default.fetch(withCf(`${env.ISSUER}/revoke`, { method: "POST", headers: { "Content-Type": FORM }, body }, auth));
    await expectInvalidClient(await revoke(tlsClientAuth(await fakeCertificate(), { certSubjectDNRFC2253: "CN=other" })));
    expect((await revoke(tlsClientAuth(cert))).status).toBe(200);
    const introspector = await seedClient({ introspect_any: true });
    expect((await introspection(await introspect(introspector, access_token))).active).toBe(false);
  });

  it("a certificate-bound admin token works at /register only with its certificate", async () => {
    const [cert, other] = [await fakeCertificate(), await fakeCertificate()];
    const register = `${env.ISSUER}/register`;
    const admin = await tlsClient({
      allowed_scopes: ["tollgate:admin"],
      default_scopes: ["tollgate:admin"],
      allowed_audiences: [register],
    });
    const { access_token } = await tokenOf(await mtlsTokenRequest(admin.client_id, tlsClientAuth(cert), { resource: register }));
    const read = (auth: Record<string, unknown> | undefined) =>
      exports.default.fetch(withCf(`${register}/${encodeURIComponent(admin.client_id)}`, withBearer(access_token), auth));
    expect((await read(tlsClientAuth(cert))).status).toBe(200);
    for (const auth of [tlsClientAuth(other), undefined]) expect((await read(auth)).status).toBe(401);
  });
});

describe("hexFingerprintToX5t", () => {
  it("turns Cloudflare's hex SHA-256 into the base64url of the same 32 bytes (RFC 8705 §3.1)", async () => {
    const cert = await fakeCertificate();
    expect(hexFingerprintToX5t(cert.hex)).toBe(cert.x5t);
    expect(hexFingerprintToX5t(cert.hex.toUpperCase())).toBe(cert.x5t);
  });
});
