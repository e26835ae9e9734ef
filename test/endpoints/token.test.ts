import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { basic, issueToken, requestToken, seedClient, tokenRequest, TOKEN_URL, verifyAccessToken } from "../support/worker.ts";
import { expectJSONError } from "../support/worker.ts";

const ORDERS = "https://api.tollgate.test/orders";
const INVENTORY = "https://api.tollgate.test/inventory";
const BILLING = "https://api.tollgate.test/billing";

describe("RFC 6749 §4.4 client credentials grant", () => {
  it("issues a Bearer token to a client using client_secret_basic", async () => {
    const client = await seedClient();
    const res = await tokenRequest({ grant_type: "client_credentials" }, { Authorization: basic(client.client_id, client.client_secret) });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    const body = (await res.json()) as Record<string, unknown>;
    expect(typeof body.access_token).toBe("string");
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(300);
    expect(body.scope).toBe("orders:read");
    expect(Object.keys(body).sort()).toEqual(["access_token", "expires_in", "scope", "token_type"]);
    expect((await verifyAccessToken(body.access_token as string)).client_id).toBe(client.client_id);
  });

  it("issues a Bearer token to a client using client_secret_post", async () => {
    const client = await seedClient();
    const res = await tokenRequest({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(300);
    expect(body.scope).toBe("orders:read");
    expect((await verifyAccessToken(body.access_token as string)).sub).toBe(client.client_id);
  });

  it("authenticates with any unexpired secret of a client during a rotation", async () => {
    const client = await seedClient({ secrets: [{}, { expires_at: Math.floor(Date.now() / 1000) + 3600 }] });
    for (const secret of client.client_secrets) {
      const res = await requestToken({ client_id: client.client_id, client_secret: secret });
      expect(res.status).toBe(200);
    }
  });
});

describe("RFC 6749 §5.1 successful response", () => {
  it("forbids caching with Cache-Control: no-store and Pragma: no-cache", async () => {
    const client = await seedClient();
    for (const res of [
      await requestToken(client),
      await tokenRequest({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret }),
    ]) {
      expect(res.status).toBe(200);
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      expect(res.headers.get("Pragma")).toBe("no-cache");
    }
  });
});

describe("RFC 6749 §3.2 token endpoint methods", () => {
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    it(`answers ${method} /token with 405, Allow: POST and a JSON error`, async () => {
      const res = await exports.default.fetch(TOKEN_URL, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("POST");
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      const body = (await res.json()) as Record<string, unknown>;
      expect(typeof body.error).toBe("string");
      expect(typeof body.error_description).toBe("string");
    });
  }
});

describe("RFC 6749 §4.4.2 grant_type", () => {
  it("answers invalid_request when grant_type is missing", async () => {
    const client = await seedClient();
    await expectJSONError(
      await tokenRequest({ scope: "orders:read" }, { Authorization: basic(client.client_id, client.client_secret) }),
      400,
      "invalid_request",
    );
  });

  for (const grant of ["password", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"]) {
    it(`answers unsupported_grant_type for grant_type=${grant}`, async () => {
      const client = await seedClient();
      await expectJSONError(
        await tokenRequest({ grant_type: grant }, { Authorization: basic(client.client_id, client.client_secret) }),
        400,
        "unsupported_grant_type",
      );
    });
  }

  it("answers unauthorized_client to a client whose record allows no grant types", async () => {
    const client = await seedClient({ grant_types: [] });
    await expectJSONError(await requestToken(client), 400, "unauthorized_client");
  });

  it("ignores unknown parameters", async () => {
    const client = await seedClient();
    const res = await requestToken(client, { foo: "bar", state: "xyz", nonce: "1" });
    expect(res.status).toBe(200);
  });
});

describe("RFC 6749 §3.3 scope", () => {
  const scopes = { allowed_scopes: ["orders:read", "orders:write", "inventory:read"], default_scopes: ["orders:read"] };

  it("grants a requested subset of the allowed scopes, in request order", async () => {
    const client = await seedClient(scopes);
    const body = await issueToken(client, { scope: "inventory:read orders:read" });
    expect(body.scope).toBe("inventory:read orders:read");
    expect((await verifyAccessToken(body.access_token)).scope).toBe("inventory:read orders:read");
  });

  it("grants every allowed scope when all are asked for", async () => {
    const client = await seedClient(scopes);
    const body = await issueToken(client, { scope: "orders:write orders:read inventory:read" });
    expect(body.scope).toBe("orders:write orders:read inventory:read");
  });

  it("collapses duplicate scope tokens", async () => {
    const client = await seedClient(scopes);
    const body = await issueToken(client, { scope: "orders:write orders:read orders:write" });
    expect(body.scope).toBe("orders:write orders:read");
    expect(decodeJwt(body.access_token).scope).toBe("orders:write orders:read");
  });

  for (const [what, scope] of [
    ["a scope the client is not allowed", "admin"],
    ["a look-alike of an allowed scope", "orders:readx"],
    ["a prefix of an allowed scope", "orders:rea"],
    ["an allowed scope with a disallowed one", "orders:read admin"],
    ["an allowed scope in another case", "Orders:Read"],
  ] as const) {
    it(`answers invalid_scope to ${what} (${JSON.stringify(scope)})`, async () => {
      const client = await seedClient(scopes);
      await expectJSONError(await requestToken(client, { scope }), 400, "invalid_scope");
    });
  }

  for (const [what, scope] of [
    ["a double space", "orders:read  orders:write"],
    ["a leading space", " orders:read"],
    ["a trailing space", "orders:read "],
    ['a `"`', 'orders:read"'],
    ["a `\\`", "orders:read\\"],
    ["a tab", "orders:read\torders:write"],
    ["a non-ASCII character", "orders:réad"],
  ] as const) {
    it(`answers invalid_scope to a malformed scope with ${what}`, async () => {
      const client = await seedClient(scopes);
      await expectJSONError(await requestToken(client, { scope }), 400, "invalid_scope");
    });
  }

  it("grants the client's default_scopes when none is requested", async () => {
    const client = await seedClient({ ...scopes, default_scopes: ["orders:read", "inventory:read"] });
    const body = await issueToken(client);
    expect(body.scope).toBe("orders:read inventory:read");
    expect((await verifyAccessToken(body.access_token)).scope).toBe("orders:read inventory:read");
  });

  it("omits scope from the response and the token when none is requested and default_scopes is empty", async () => {
    const client = await seedClient({ ...scopes, default_scopes: [] });
    const body = await issueToken(client);
    expect(body).not.toHaveProperty("scope");
    expect(await verifyAccessToken(body.access_token)).not.toHaveProperty("scope");
  });
});

describe("RFC 8707 resource indicators (token audience)", () => {
  const audiences = { allowed_audiences: [ORDERS, INVENTORY] };

  it("issues a token for the one allowed resource asked for", async () => {
    const client = await seedClient(audiences);
    const body = await issueToken(client, { resource: INVENTORY });
    expect(await verifyAccessToken(body.access_token, { audience: INVENTORY })).toMatchObject({ aud: INVENTORY });
  });

  it("accepts `audience` as an alias of resource", async () => {
    const client = await seedClient(audiences);
    const body = await issueToken(client, { audience: INVENTORY });
    expect(decodeJwt(body.access_token).aud).toBe(INVENTORY);
  });

  it("answers invalid_target to a resource the client is not allowed", async () => {
    const client = await seedClient(audiences);
    await expectJSONError(await requestToken(client, { resource: BILLING }), 400, "invalid_target");
    await expectJSONError(await requestToken(client, { audience: BILLING }), 400, "invalid_target");
  });

  it("answers invalid_target to one disallowed resource among allowed ones", async () => {
    const client = await seedClient(audiences);
    await expectJSONError(
      await requestToken(client, [
        ["resource", ORDERS],
        ["resource", BILLING],
      ]),
      400,
      "invalid_target",
    );
  });

  it("answers invalid_target to env.DEFAULT_AUDIENCE when the client has audiences of its own", async () => {
    const client = await seedClient(audiences);
    await expectJSONError(await requestToken(client, { resource: env.DEFAULT_AUDIENCE }), 400, "invalid_target");
  });

  for (const [what, resource] of [
    ["a relative reference", "/orders"],
    ["a bare word", "orders"],
    ["a URI with a fragment", `${ORDERS}#section`],
  ] as const) {
    it(`answers invalid_target to ${what}`, async () => {
      const client = await seedClient(audiences);
      await expectJSONError(await requestToken(client, { resource }), 400, "invalid_target");
    });
  }

  it("answers invalid_request when both resource and audience are sent", async () => {
    const client = await seedClient(audiences);
    await expectJSONError(await requestToken(client, { resource: ORDERS, audience: ORDERS }), 400, "invalid_request");
  });

  it("issues a token with an aud array when two allowed resources are asked for", async () => {
    const client = await seedClient(audiences);
    const body = await issueToken(client, [
      ["resource", INVENTORY],
      ["resource", ORDERS],
    ]);
    const claims = await verifyAccessToken(body.access_token, { audience: ORDERS });
    expect(claims.aud).toEqual([INVENTORY, ORDERS]);
  });

  it("collapses a resource repeated with the same value into a single aud", async () => {
    const client = await seedClient(audiences);
    const body = await issueToken(client, [
      ["resource", ORDERS],
      ["resource", ORDERS],
    ]);
    expect(decodeJwt(body.access_token).aud).toBe(ORDERS);
  });

  it("uses the client's default_audience when none is asked for", async () => {
    const client = await seedClient({ ...audiences, default_audience: INVENTORY });
    const body = await issueToken(client);
    expect(decodeJwt(body.access_token).aud).toBe(INVENTORY);
  });

  it("uses the client's first allowed audience when it has no default_audience", async () => {
    const client = await seedClient({ allowed_audiences: [INVENTORY, ORDERS], default_audience: null });
    const body = await issueToken(client);
    expect(decodeJwt(body.access_token).aud).toBe(INVENTORY);
  });

  it("uses env.DEFAULT_AUDIENCE when the client's record names no audiences", async () => {
    const client = await seedClient({ allowed_audiences: [], default_audience: null });
    const body = await issueToken(client);
    expect(await verifyAccessToken(body.access_token, { audience: env.DEFAULT_AUDIENCE })).toMatchObject({ aud: env.DEFAULT_AUDIENCE });
  });

  it("accepts env.DEFAULT_AUDIENCE asked for explicitly by a client with no audiences, and nothing else", async () => {
    const client = await seedClient({ allowed_audiences: [] });
    const body = await issueToken(client, { resource: env.DEFAULT_AUDIENCE });
    expect(decodeJwt(body.access_token).aud).toBe(env.DEFAULT_AUDIENCE);
    await expectJSONError(await requestToken(client, { resource: ORDERS }), 400, "invalid_target");
  });
});

describe("Access token lifetime", () => {
  it.each([
    ["defaults to ACCESS_TOKEN_TTL (300 s)", {}, 300],
    ["follows the client's token_ttl", { token_ttl: 60 }, 60],
    ["caps a token_ttl above MAX_ACCESS_TOKEN_TTL (3600 s)", { token_ttl: 7200 }, 3600],
  ])("%s", async (_name, record, lifetime) => {
    const client = await seedClient(record);
    const body = await issueToken(client);
    expect(body.expires_in).toBe(lifetime);
    const claims = decodeJwt(body.access_token);
    expect(claims.exp! - claims.iat!).toBe(lifetime);
  });

  it("keeps a token_ttl equal to the cap", async () => {
    const client = await seedClient({ token_ttl: 3600 });
    expect((await issueToken(client)).expires_in).toBe(3600);
  });
});
