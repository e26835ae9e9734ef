/**
 * The admin API (RFC 7591 registration, RFC 7592 management), protected by access tokens with the
 * tollgate:admin scope for the audience <issuer>/register. It applies the CLI's rules.
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clientKey, isValidClientId } from "../../src/clients/record.ts";
import { parseSecretHash } from "../../src/clients/secret.ts";
import { fcParams } from "../support/arbitraries.ts";
import { fetchWithEnv, issueToken, requestToken, seedClient } from "../support/worker.ts";
import { assertionTokenRequest, clientKey as assertionKey, signAssertion } from "../support/assertions.ts";
import { decodeJwt, exportJWK, generateKeyPair } from "jose";
import { fakeCertificate, mtlsTokenRequest, SUBJECT, tlsClientAuth } from "../support/mtls.ts";

const REGISTER = `${env.ISSUER}/register`;

async function adminToken(scope = "tollgate:admin"): Promise<string> {
  const admin = await seedClient({
    allowed_scopes: ["tollgate:admin", "orders:read"],
    default_scopes: [scope],
    allowed_audiences: [REGISTER, env.DEFAULT_AUDIENCE],
  });
  return (await issueToken(admin, { resource: REGISTER, scope })).access_token;
}

function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return exports.default.fetch(`${env.ISSUER}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

describe("RFC 7591 §3 client registration (POST /register)", () => {
  it("registers a client and returns its secret once; the secret works at /token", async () => {
    const token = await adminToken();
    const id = `reg-${crypto.randomUUID()}`;
    const res = await call("POST", "/register", token, {
      client_id: id,
      client_name: "Orders",
      scope: "orders:read orders:write",
      default_scope: "orders:read",
      audience: [env.DEFAULT_AUDIENCE],
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_basic",
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const info = (await res.json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      client_id: id,
      client_name: "Orders",
      scope: "orders:read orders:write",
      default_scope: "orders:read",
      grant_types: ["client_credentials"],
      client_secret_expires_at: 0,
      registration_client_uri: `${REGISTER}/${id}`,
    });
    expect(typeof info.client_id_issued_at).toBe("number");
    expect(info.client_secret).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(info)).not.toContain("pbkdf2");
    const stored = await env.CLIENTS.get(clientKey(id));
    expect(stored).not.toContain(info.client_secret as string);
    const tokenRes = await requestToken({ client_id: id, client_secret: info.client_secret as string });
    expect(tokenRes.status).toBe(200);
    expect(((await tokenRes.json()) as { scope: string }).scope).toBe("orders:read");
  });

  it("hashes the new secret at the Worker's PBKDF2_ITERATIONS", async () => {
    const token = await adminToken();
    const id = `reg-${crypto.randomUUID()}`;
    const request = new Request(REGISTER, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: id, scope: "orders:read" }),
    });
    const res = await fetchWithEnv(request, undefined, { PBKDF2_ITERATIONS: "40000" });
    expect(res.status).toBe(201);
    const record = JSON.parse((await env.CLIENTS.get(clientKey(id)))!) as { secrets: { hash: string }[] };
    expect(parseSecretHash(record.secrets[0]!.hash).iterations).toBe(40_000);
  });

  it("ignores metadata it does not understand (RFC 7591 §2)", async () => {
    const res = await call("POST", "/register", await adminToken(), {
      scope: "orders:read",
      software_id: "x",
      redirect_uris: ["https://x"],
    });
    expect(res.status).toBe(201);
    expect(await res.json()).not.toHaveProperty("software_id");
  });

  it("refuses a token request that names the admin API together with another resource", async () => {
    const admin = await seedClient({
      allowed_scopes: ["tollgate:admin"],
      default_scopes: ["tollgate:admin"],
      allowed_audiences: [REGISTER, env.DEFAULT_AUDIENCE],
    });
    const res = await requestToken(admin, [
      ["resource", REGISTER],
      ["resource", env.DEFAULT_AUDIENCE],
    ]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_target");
  });

  it("assigns a client_id when none is given", async () => {
    const res = await call("POST", "/register", await adminToken(), { scope: "orders:read" });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { client_id: string }).client_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    [{ scope: 'bad"scope' }, /scope/],
    [{ scope: "a", default_scope: "b" }, /default_scopes/],
    [{ grant_types: ["authorization_code"] }, /grant_types/],
    [{ token_endpoint_auth_method: "private_key_jwt" }, /token_endpoint_auth_method/],
    [{ audience: ["not a uri"] }, /allowed_audiences/],
    [{ client_secret: "mine" }, /client_secret/],
    [{ client_id: "has space" }, /client_id/],
    [{ client_id: "." }, /client_id/],
    [{ client_id: ".." }, /client_id/],
    [{ client_id: "%2e" }, /client_id/],
    [{ client_id: "%2E%2e" }, /client_id/],
    [{ access_token_ttl: "60" }, /access_token_ttl/],
  ])("answers invalid_client_metadata for %j (the CLI's rules)", async (metadata, description) => {
    const res = await call("POST", "/register", await adminToken(), metadata);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe("invalid_client_metadata");
    expect(body.error_description).toMatch(description);
  });

  it("refuses a duplicate client_id", async () => {
    const token = await adminToken();
    const existing = await seedClient();
    const res = await call("POST", "/register", token, { client_id: existing.client_id, scope: "x" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_client_metadata");
  });

  it("refuses non-JSON bodies and oversized bodies", async () => {
    const token = await adminToken();
    const form = await exports.default.fetch(REGISTER, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "scope=x",
    });
    expect(form.status).toBe(400);
    const big = await call("POST", "/register", token, { client_name: "x".repeat(20_000) });
    expect(big.status).toBe(413);
  });
});

describe("the admin API is only for admin tokens", () => {
  it("answers 401 without a token, with a Bearer challenge", async () => {
    const res = await call("POST", "/register", undefined, { scope: "x" });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${env.ISSUER}"`);
    expect(await res.json()).toEqual({ error_description: "an access token with the tollgate:admin scope is required" });
  });

  it("answers 403 insufficient_scope for a token without tollgate:admin", async () => {
    const res = await call("POST", "/register", await adminToken("orders:read"), { scope: "x" });
    expect(res.status).toBe(403);
    expect(res.headers.get("WWW-Authenticate")).toContain('scope="tollgate:admin"');
  });

  it("answers 401 for an admin-scoped token issued for another audience", async () => {
    const admin = await seedClient({ allowed_scopes: ["tollgate:admin"], default_scopes: ["tollgate:admin"] });
    const { access_token } = await issueToken(admin);
    const res = await call("POST", "/register", access_token, { scope: "x" });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
  });

  it("answers 405 with Allow for other methods", async () => {
    const token = await adminToken();
    const get = await call("GET", "/register", token);
    expect(get.status).toBe(405);
    expect(get.headers.get("Allow")).toBe("POST");
    const post = await call("POST", "/register/someone", token, {});
    expect(post.status).toBe(405);
    expect(post.headers.get("Allow")).toBe("GET, HEAD, PUT, DELETE");
  });
});

describe("RFC 7592 §2 client management (GET, PUT, DELETE /register/{client_id})", () => {
  it("reads a client without any secret material", async () => {
    const client = await seedClient();
    const res = await call("GET", `/register/${client.client_id}`, await adminToken());
    expect(res.status).toBe(200);
    const info = (await res.json()) as Record<string, unknown>;
    expect(info.client_id).toBe(client.client_id);
    expect(info).not.toHaveProperty("client_secret");
    expect(JSON.stringify(info)).not.toContain("pbkdf2");
  });

  it("answers HEAD as GET (RFC 9110 §9.3.2): same status and headers, no body, nothing changed", async () => {
    const token = await adminToken();
    const client = await seedClient();
    const before = await env.CLIENTS.get(clientKey(client.client_id));
    const get = await call("GET", `/register/${client.client_id}`, token);
    const head = await call("HEAD", `/register/${client.client_id}`, token);
    expect(head.status).toBe(200);
    const { date: _g, ...getHeaders } = Object.fromEntries(get.headers as unknown as Iterable<[string, string]>);
    const { date: _h, ...headHeaders } = Object.fromEntries(head.headers as unknown as Iterable<[string, string]>);
    expect(headHeaders).toEqual(getHeaders);
    expect(await head.text()).toBe("");
    expect(await env.CLIENTS.get(clientKey(client.client_id))).toBe(before);
  });

  it("answers an unknown client with 401 invalid_token (RFC 7592 §2.1)", async () => {
    const res = await call("GET", `/register/nobody-${crypto.randomUUID()}`, await adminToken());
    expect(res.status).toBe(401);
  });

  it("replaces the metadata on PUT, resetting what is left out, and keeps the secret working", async () => {
    const token = await adminToken();
    const client = await seedClient({ token_ttl: 600 });
    const res = await call("PUT", `/register/${client.client_id}`, token, {
      client_id: client.client_id,
      client_name: "Renamed",
      scope: "orders:read",
    });
    expect(res.status).toBe(200);
    const info = (await res.json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      client_name: "Renamed",
      scope: "orders:read",
      default_scope: "orders:read",
      access_token_ttl: null,
      disabled: false,
    });
    const tokenRes = await requestToken(client, { scope: "orders:write" });
    expect(tokenRes.status).toBe(400);
    expect(((await tokenRes.json()) as { error: string }).error).toBe("invalid_scope");
    expect((await requestToken(client)).status).toBe(200);
  });

  it("round-trips: a GET response PUT back unchanged is accepted (read-only members ignored)", async () => {
    const token = await adminToken();
    const client = await seedClient();
    const info = (await (await call("GET", `/register/${client.client_id}`, token)).json()) as Record<string, unknown>;
    const res = await call("PUT", `/register/${client.client_id}`, token, info);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ scope: info.scope, default_scope: info.default_scope, disabled: false });
  });

  it("never re-enables a disabled client by leaving `disabled` out of a PUT", async () => {
    const token = await adminToken();
    const client = await seedClient({ disabled: true });
    const res = await call("PUT", `/register/${client.client_id}`, token, {
      client_id: client.client_id,
      client_name: "renamed",
      scope: "orders:read",
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { disabled: boolean }).disabled).toBe(true);
    expect((await requestToken(client)).status).toBe(401);
  });

  it("refuses a PUT whose body names another client or sets a secret", async () => {
    const token = await adminToken();
    const client = await seedClient();
    expect((await call("PUT", `/register/${client.client_id}`, token, { client_id: "other", scope: "x" })).status).toBe(400);
    expect((await call("PUT", `/register/${client.client_id}`, token, { client_id: client.client_id, client_secret: "x" })).status).toBe(
      400,
    );
  });

  it("disables a client through PUT: it can no longer get tokens, at once in this isolate even when it was warm", async () => {
    const token = await adminToken();
    const client = await seedClient();
    expect((await requestToken(client)).status).toBe(200);
    const res = await call("PUT", `/register/${client.client_id}`, token, {
      client_id: client.client_id,
      scope: "orders:read",
      disabled: true,
    });
    expect(res.status).toBe(200);
    expect((await requestToken(client)).status).toBe(401);
  });

  it("deletes a client with 204; it is gone from KV and from /token, at once in this isolate", async () => {
    const token = await adminToken();
    const client = await seedClient();
    expect((await requestToken(client)).status).toBe(200);
    const res = await call("DELETE", `/register/${client.client_id}`, token);
    expect(res.status).toBe(204);
    expect(await env.CLIENTS.get(clientKey(client.client_id))).toBeNull();
    expect((await requestToken(client)).status).toBe(401);
  });
});

describe("client ids the admin API can address", () => {
  // Printable ASCII, biased towards dots, %2e and the characters URLs treat specially.
  const idChar = fc.oneof(
    fc.constantFrom(".", "%2e", "%2E", "%", "/", "?", "#", "\\", ";", "%25", "%2f", "a"),
    fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  );
  const clientIds = fc
    .array(idChar, { minLength: 1, maxLength: 4 })
    .map((parts) => parts.join(""))
    .filter((id) => id.length <= 128);

  it("registers exactly the ids isValidClientId allows, and each is read back at its registration_client_uri", {
    timeout: 120_000,
  }, async () => {
    const token = await adminToken();
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(clientIds, async (base) => {
        const id = seen.has(base) ? `${base}${seen.size}` : base;
        seen.add(id);
        const res = await call("POST", "/register", token, { client_id: id, scope: "" });
        if (!isValidClientId(id)) {
          expect(res.status, id).toBe(400);
          return;
        }
        // An id taken by an earlier run of this file (the KV state is shared) is not a finding.
        if (res.status === 400) return;
        expect(res.status, id).toBe(201);
        const { registration_client_uri: uri } = (await res.json()) as { registration_client_uri: string };
        const read = await exports.default.fetch(uri, { headers: { Authorization: `Bearer ${token}` } });
        expect(read.status, `${id} at ${uri}`).toBe(200);
        expect(((await read.json()) as { client_id: string }).client_id).toBe(id);
      }),
      fcParams({ numRuns: 120 }),
    );
  });

  it("keeps serving a client stored under a dot-segment id before the rule; /register/{id} cannot address it", async () => {
    const legacy = await seedClient({ client_id: ".." });
    // It keeps working at /token: the rule is for new ids only.
    expect((await requestToken(legacy)).status).toBe(200);
    const res = await call("GET", "/register/..", await adminToken());
    expect(res.status).toBe(404);
    await env.CLIENTS.delete(clientKey(".."));
  });
});

describe("RFC 7591 §2 private_key_jwt clients through the admin API (token_endpoint_auth_method, jwks, jwks_uri)", () => {
  it("registers a client with inline jwks and no secret; its assertion works at /token", async () => {
    const key = await assertionKey();
    const id = `reg-keys-${crypto.randomUUID()}`;
    const res = await call("POST", "/register", await adminToken(), {
      client_id: id,
      scope: "orders:read",
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [{ ...key.publicJWK, ext: true }] },
    });
    expect(res.status).toBe(201);
    const info = (await res.json()) as Record<string, unknown>;
    expect(info).toMatchObject({ client_id: id, token_endpoint_auth_method: "private_key_jwt", allow_token_endpoint_audience: false });
    expect(info).not.toHaveProperty("client_secret");
    expect(info).not.toHaveProperty("client_secret_expires_at");
    expect(info).not.toHaveProperty("secrets");
    expect((info.jwks as { keys: Record<string, unknown>[] }).keys[0]).not.toHaveProperty("ext");
    const tokenRes = await assertionTokenRequest(await signAssertion({ client_id: id, key }));
    expect(tokenRes.status).toBe(200);
  });

  it("refuses a private key, both key sources, an http jwks_uri and a private_key_jwt client without keys", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const key = await assertionKey();
    for (const [metadata, description] of [
      [{ jwks: { keys: [await exportJWK(privateKey)] } }, /private member "d"/],
      [{ jwks: { keys: [key.publicJWK] }, jwks_uri: "https://keys.example.com/jwks" }, /not both/],
      [{ jwks_uri: "http://keys.example.com/jwks" }, /jwks_uri/],
      [{ jwks_uri: "http://127.0.0.1:9/jwks" }, /jwks_uri/],
      [{}, /token_endpoint_auth_method/],
    ] as const) {
      const res = await call("POST", "/register", await adminToken(), {
        scope: "orders:read",
        token_endpoint_auth_method: "private_key_jwt",
        ...metadata,
      });
      const body = (await res.json()) as { error: string; error_description: string };
      expect({ status: res.status, error: body.error }).toEqual({ status: 400, error: "invalid_client_metadata" });
      expect(body.error_description).toMatch(description);
    }
  });

  it("rotates the keys with PUT (read-modify-write) and keeps them when PUT leaves them out", async () => {
    const token = await adminToken();
    const [oldKey, newKey] = [await assertionKey(), await assertionKey()];
    const id = `reg-rotate-${crypto.randomUUID()}`;
    await call("POST", "/register", token, {
      client_id: id,
      scope: "orders:read",
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [oldKey.publicJWK] },
    });
    const info = (await (await call("GET", `/register/${id}`, token)).json()) as Record<string, unknown>;
    const put = await call("PUT", `/register/${id}`, token, { ...info, jwks: { keys: [newKey.publicJWK] } });
    expect(put.status).toBe(200);
    expect((await assertionTokenRequest(await signAssertion({ client_id: id, key: newKey }))).status).toBe(200);
    expect((await call("PUT", `/register/${id}`, token, { client_id: id, scope: "orders:read" })).status).toBe(200);
    const after = (await (await call("GET", `/register/${id}`, token)).json()) as { jwks: { keys: { kid: string }[] } };
    expect(after.jwks.keys.map((k) => k.kid)).toEqual([newKey.kid]);
    const switched = await call("PUT", `/register/${id}`, token, { client_id: id, token_endpoint_auth_method: "client_secret_basic" });
    expect(switched.status).toBe(400);
  });
});

describe("RFC 8705 clients through the admin API (tls_client_auth_subject_dn, jwks with x5c, tls_client_certificate_bound_access_tokens)", () => {
  it("registers a tls_client_auth client with its subject and no secret; its certificate gets a bound token at /token", async () => {
    const id = `reg-mtls-${crypto.randomUUID()}`;
    const res = await call("POST", "/register", await adminToken(), {
      client_id: id,
      scope: "orders:read",
      token_endpoint_auth_method: "tls_client_auth",
      tls_client_auth_subject_dn: SUBJECT,
    });
    expect(res.status).toBe(201);
    const info = (await res.json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      client_id: id,
      token_endpoint_auth_method: "tls_client_auth",
      tls_client_auth_subject_dn: SUBJECT,
      tls_client_certificate_bound_access_tokens: false,
    });
    for (const member of ["client_secret", "client_secret_expires_at", "secrets"]) expect(info).not.toHaveProperty(member);
    const cert = await fakeCertificate();
    const tokenRes = await mtlsTokenRequest(id, tlsClientAuth(cert));
    expect(tokenRes.status).toBe(200);
    expect(decodeJwt(((await tokenRes.json()) as { access_token: string }).access_token).cnf).toEqual({ "x5t#S256": cert.x5t });
  });

  it("registers a self_signed_tls_client_auth client with its certificate in jwks (x5c)", async () => {
    const cert = await fakeCertificate();
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    const id = `reg-self-${crypto.randomUUID()}`;
    const res = await call("POST", "/register", await adminToken(), {
      client_id: id,
      scope: "orders:read",
      token_endpoint_auth_method: "self_signed_tls_client_auth",
      jwks: { keys: [{ ...(await exportJWK(publicKey)), x5c: [cert.x5c] }] },
    });
    expect(res.status).toBe(201);
    expect((await mtlsTokenRequest(id, tlsClientAuth(cert, { certVerified: "FAILED:self signed certificate" }))).status).toBe(200);
  });

  it("refuses a tls_client_auth client without a subject, a self-signed one without x5c, a subject on another method, a bad flag", async () => {
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    for (const [metadata, description] of [
      [{ token_endpoint_auth_method: "tls_client_auth" }, /tls_client_auth_subject_dn/],
      [{ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a\nCN=b" }, /tls_client_auth_subject_dn/],
      [{ token_endpoint_auth_method: "self_signed_tls_client_auth" }, /jwks/],
      [{ token_endpoint_auth_method: "self_signed_tls_client_auth", jwks: { keys: [await exportJWK(publicKey)] } }, /x5c/],
      [{ tls_client_auth_subject_dn: SUBJECT }, /tls_client_auth_subject_dn/],
      [{ tls_client_certificate_bound_access_tokens: "yes" }, /tls_client_certificate_bound_access_tokens/],
    ] as const) {
      const res = await call("POST", "/register", await adminToken(), { scope: "orders:read", ...metadata });
      const body = (await res.json()) as { error: string; error_description: string };
      expect({ status: res.status, error: body.error }).toEqual({ status: 400, error: "invalid_client_metadata" });
      expect(body.error_description).toMatch(description);
    }
  });

  it("sets tls_client_certificate_bound_access_tokens on a secret client, and PUT without it sets it back to false", async () => {
    const token = await adminToken();
    const id = `reg-bound-${crypto.randomUUID()}`;
    const res = await call("POST", "/register", token, {
      client_id: id,
      scope: "orders:read",
      tls_client_certificate_bound_access_tokens: true,
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as Record<string, unknown>).tls_client_certificate_bound_access_tokens).toBe(true);
    const put = await call("PUT", `/register/${id}`, token, { client_id: id, scope: "orders:read" });
    expect(((await put.json()) as Record<string, unknown>).tls_client_certificate_bound_access_tokens).toBe(false);
  });
});
