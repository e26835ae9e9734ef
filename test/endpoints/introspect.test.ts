/**
 * POST /introspect (RFC 7662) through the Worker's real entry point, against Miniflare's KV.
 */
import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { basic, expectJSONError, fetchWithEnv, FORM, issueToken, putClientRecord, seedClient, tokenRequest } from "../support/worker.ts";
import { accessTokenClaims, attackerKey, es256, forgeJWS, mintToken, nowSeconds } from "../support/tokens.ts";
import { clientKey } from "../../src/clients/record.ts";
import { expectInvalidToken, expectProxied, gatewayFetch, marker, withBearer } from "../support/gateway.ts";
import { revokedKey } from "../../src/tokens/revocation.ts";
import {
  captureLogEvents,
  expectInactive,
  expectInvalidClient,
  expectRevocationOK,
  failingKV,
  formPost,
  INTROSPECT_URL,
  introspect,
  introspection,
  partlyFailingKV,
  revoke,
  jtiOf,
  tokenOf,
  foreignTokens,
  type TokenMaker,
} from "../support/revocation.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("RFC 7662 §2.2 an active token", () => {
  it("is described to its own client: active, scope, client_id, sub, aud, iss, exp, iat, jti, token_type", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client, { scope: "orders:read orders:write" });
    const claims = decodeJwt(access_token);
    const body = await introspection(await introspect(client, access_token));
    expect(body).toEqual({
      active: true,
      scope: "orders:read orders:write",
      client_id: client.client_id,
      sub: client.client_id,
      aud: env.DEFAULT_AUDIENCE,
      iss: env.ISSUER,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      token_type: "Bearer",
    });
    expect(body.exp as number).toBeGreaterThan(nowSeconds());
  });

  it("omits scope for a token that has none, and keeps an aud array as it is", async () => {
    const orders = "https://api.tollgate.test/orders";
    const billing = "https://api.tollgate.test/billing";
    const client = await seedClient({ default_scopes: [], allowed_audiences: [orders, billing] });
    const { access_token } = await issueToken(client, [
      ["resource", orders],
      ["resource", billing],
    ]);
    const body = await introspection(await introspect(client, access_token));
    expect(body).not.toHaveProperty("scope");
    expect(body.active).toBe(true);
    expect(body.aud).toEqual([orders, billing]);
  });

  it("accepts client_secret_post and ignores token_type_hint, whatever its value", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    expect(
      (
        await introspection(
          await formPost("/introspect", { token: access_token, client_id: client.client_id, client_secret: client.client_secret }),
        )
      ).active,
    ).toBe(true);
    for (const hint of ["access_token", "refresh_token", "unknown"]) {
      expect((await introspection(await introspect(client, access_token, { token_type_hint: hint }))).active).toBe(true);
    }
  });
});

describe("One set of claim rules with the gateway (RFC 9068 §4, RFC 8725 §3.11)", () => {
  const MAX = Number(env.MAX_ACCESS_TOKEN_TTL);
  const cases: [string, () => Record<string, unknown>][] = [
    ["nbf 120 s ahead", () => ({ nbf: nowSeconds() + 120 })],
    ["iat 120 s ahead", () => ({ iat: nowSeconds() + 120, exp: nowSeconds() + 300 })],
    ["a lifetime one second over MAX_ACCESS_TOKEN_TTL", () => ({ iat: nowSeconds(), exp: nowSeconds() + MAX + 1 })],
    ["a 100-year lifetime", () => ({ iat: nowSeconds(), exp: nowSeconds() + 100 * 365 * 86400 })],
    ["exp before iat", () => ({ iat: nowSeconds(), exp: nowSeconds() - 1 })],
    ["tg_inst not a string", () => ({ tg_inst: 42 })],
  ];
  for (const [what, claims] of cases) {
    it(`refuses a token signed with the issuer's key with ${what}: 401 at the gateway, inactive at /introspect`, async () => {
      const client = await seedClient({ created_at: nowSeconds() - 3600 });
      const token = await tokenOf(client.client_id, claims());
      const mark = marker("claim-rules");
      await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(token)), mark);
      const logs = captureLogEvents();
      await expectInactive(await introspect(client, token));
      expect(logs().find((e) => e.event === "introspection_inactive")).toMatchObject({
        reason: expect.stringMatching(/^not a token of this issuer: /),
      });
    });
  }

  it("accepts at both the same token without the bad claim (the control)", async () => {
    const client = await seedClient({ created_at: nowSeconds() - 3600 });
    const token = await tokenOf(client.client_id, { iat: nowSeconds(), exp: nowSeconds() + MAX });
    await expectProxied(await gatewayFetch(`/api/${marker("claim-rules-ok")}`, withBearer(token)));
    expect((await introspection(await introspect(client, token))).active).toBe(true);
  });
});

describe('RFC 7662 §2.2 inactive tokens: exactly {"active": false}', () => {
  const malformed: [string, TokenMaker][] = [
    ["an unknown string", async () => "not-a-token"],
    ...foreignTokens,
    [
      "a token of another issuer (signed with another key)",
      async (id) =>
        forgeJWS(
          { alg: "ES256", typ: "at+jwt", kid: "elsewhere" },
          accessTokenClaims({ client_id: id, sub: id, iss: "https://elsewhere.example" }),
          async (input) => es256((await attackerKey()).privateKey, input),
        ),
    ],
    ["an unknown crit header", (id) => mintToken({ claims: { client_id: id, sub: id }, header: { crit: ["urn:x"], "urn:x": 1 } })],
    ["a non-numeric exp", (id) => tokenOf(id, { exp: "soon" })],
  ];
  for (const [what, make] of malformed) {
    it(`for ${what}`, async () => {
      const client = await seedClient();
      const logs = captureLogEvents();
      await expectInactive(await introspect(client, await make(client.client_id)));
      expect(logs().filter((e) => e.event === "introspection_inactive")).toEqual([
        { event: "introspection_inactive", client_id: client.client_id, reason: expect.stringMatching(/^not a token of this issuer: /) },
      ]);
    });
  }

  it("for a token just past exp (no clock tolerance at the issuer)", async () => {
    // Created an hour ago, so tokens from 300 s ago are after its tokens_not_before.
    const client = await seedClient({ created_at: nowSeconds() - 3600 });
    const now = nowSeconds();
    const token = await tokenOf(client.client_id, { iat: now - 300, exp: now - 1 });
    const logs = captureLogEvents();
    await expectInactive(await introspect(client, token));
    expect(logs().find((e) => e.event === "introspection_inactive")).toMatchObject({ jti: jtiOf(token), reason: "expired" });
    // The same claims one minute later are active: only exp made the difference.
    expect((await introspection(await introspect(client, await tokenOf(client.client_id, { iat: now - 300, exp: now + 60 })))).active).toBe(
      true,
    );
  });

  it("for a token revoked through /revoke", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    expect((await introspection(await introspect(client, access_token))).active).toBe(true);
    await expectRevocationOK(await revoke(client, access_token));
    const logs = captureLogEvents();
    await expectInactive(await introspect(client, access_token));
    expect(logs().find((e) => e.event === "introspection_inactive")).toMatchObject({
      client_id: client.client_id,
      jti: jtiOf(access_token),
      reason: "revoked",
    });
  });

  it("for a token whose client was disabled, and again active once it is enabled", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const owner = await seedClient();
    const { access_token } = await issueToken(owner);
    expect((await introspection(await introspect(resourceServer, access_token))).active).toBe(true);
    await putClientRecord({ ...owner.record, client_id: owner.client_id, disabled: true });
    await expectInactive(await introspect(resourceServer, access_token));
    await putClientRecord({ ...owner.record, client_id: owner.client_id, disabled: false });
    expect((await introspection(await introspect(resourceServer, access_token))).active).toBe(true);
  });

  it("for a token whose client was deleted", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const owner = await seedClient();
    const { access_token } = await issueToken(owner);
    expect((await introspection(await introspect(resourceServer, access_token))).active).toBe(true);
    await env.CLIENTS.delete(clientKey(owner.client_id));
    const logs = captureLogEvents();
    await expectInactive(await introspect(resourceServer, access_token));
    expect(logs().find((e) => e.event === "introspection_inactive")).toMatchObject({
      reason: "client deleted",
      token_client_id: owner.client_id,
    });
  });
});

describe("Who may introspect what (RFC 7662 §2.1, §4)", () => {
  it('answers {"active": false} to a client asking about another client\'s token, and logs the refusal', async () => {
    const owner = await seedClient();
    const other = await seedClient();
    const { access_token } = await issueToken(owner);
    const logs = captureLogEvents();
    await expectInactive(await introspect(other, access_token));
    expect(logs().filter((e) => e.event === "introspection_inactive")).toEqual([
      {
        event: "introspection_inactive",
        client_id: other.client_id,
        token_client_id: owner.client_id,
        jti: jtiOf(access_token),
        reason: "token of another client, and introspect_any is false",
      },
    ]);
    expect(JSON.stringify(logs())).not.toContain(access_token.split(".")[2]);
    // The same token is active to its owner: only the caller made the difference.
    expect((await introspection(await introspect(owner, access_token))).active).toBe(true);
  });

  it("describes any client's token to a client with introspect_any", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const owner = await seedClient();
    const { access_token } = await issueToken(owner);
    const body = await introspection(await introspect(resourceServer, access_token));
    expect(body).toMatchObject({
      active: true,
      client_id: owner.client_id,
      sub: owner.client_id,
      jti: jtiOf(access_token),
      token_type: "Bearer",
    });
  });

  it("treats a record without introspect_any (written before the field) as false", async () => {
    const owner = await seedClient();
    const old = await seedClient();
    expect(old.record).not.toHaveProperty("introspect_any");
    await expectInactive(await introspect(old, (await issueToken(owner)).access_token));
  });

  it("does not let introspect_any see a revoked token", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const owner = await seedClient();
    const { access_token } = await issueToken(owner);
    await expectRevocationOK(await revoke(owner, access_token));
    await expectInactive(await introspect(resourceServer, access_token));
  });
});

describe("RFC 7662 §2.1 client authentication, as at /token", () => {
  it("answers 401 invalid_client with a Basic challenge without credentials", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expectInvalidClient(await formPost("/introspect", { token: access_token }));
  });

  it("answers 401 invalid_client to a wrong secret, an unknown client and a disabled client", async () => {
    const client = await seedClient();
    const disabled = await seedClient({ disabled: true, introspect_any: true });
    const { access_token } = await issueToken(client);
    await expectInvalidClient(
      await introspect({ client_id: client.client_id, client_secret: `${client.client_secret.split(".")[0]}.wrong` }, access_token),
    );
    await expectInvalidClient(await introspect({ client_id: `nobody-${crypto.randomUUID()}`, client_secret: "x.y" }, access_token));
    await expectInvalidClient(await introspect(disabled, access_token));
  });

  it("counts failures with /token's limiter", async () => {
    const client = await seedClient();
    const address = `introspect-attacker-${crypto.randomUUID()}`;
    const wrong = basic(client.client_id, `${client.client_secret.split(".")[0]}.wrong`);
    const send = () =>
      fetchWithEnv(
        INTROSPECT_URL,
        { method: "POST", headers: { "Content-Type": FORM, Authorization: wrong, "CF-Connecting-IP": address }, body: "token=x" },
        { TOKEN_FAILURE_LIMITER: env.TEST_STRICT_LIMITER },
      );
    for (let i = 0; i < 3; i++) expect((await send()).status).toBe(401);
    await expectJSONError(await send(), 429, "temporarily_unavailable");
  });
});

describe("Malformed introspection requests", () => {
  it("answers 400 invalid_request when token is missing", async () => {
    const client = await seedClient();
    const body = await expectJSONError(
      await formPost("/introspect", {}, { Authorization: basic(client.client_id, client.client_secret) }),
      400,
      "invalid_request",
    );
    expect(body.error_description).toContain("token");
  });

  it("answers 400 invalid_request to a repeated token and to parameters in the query", async () => {
    const client = await seedClient();
    const auth = { Authorization: basic(client.client_id, client.client_secret) };
    await expectJSONError(
      await formPost(
        "/introspect",
        [
          ["token", "a"],
          ["token", "b"],
        ],
        auth,
      ),
      400,
      "invalid_request",
    );
    await expectJSONError(await tokenRequest({ token: "a" }, auth, "/introspect?token=a"), 400, "invalid_request");
  });

  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    it(`answers ${method} /introspect with 405 and Allow: POST`, async () => {
      const res = await exports.default.fetch(INTROSPECT_URL, { method });
      expect(res.headers.get("Allow")).toBe("POST");
      await expectJSONError(res, 405, "invalid_request");
    });
  }
});

describe("Storage failures at /introspect: never active when the status is unknown", () => {
  const request = (client: { client_id: string; client_secret: string }, token: string) =>
    new Request(INTROSPECT_URL, {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body: `token=${token}`,
    });

  it("answers 503 temporarily_unavailable when KV is down", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    captureLogEvents();
    await expectJSONError(
      await fetchWithEnv(request(client, access_token), undefined, { CLIENTS: failingKV }),
      503,
      "temporarily_unavailable",
    );
  });

  it("answers 503, not active, when only the revocation lookup fails", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    captureLogEvents();
    const kv = partlyFailingKV({ failGet: new RegExp(`^${revokedKey("")}`) });
    await expectJSONError(await fetchWithEnv(request(client, access_token), undefined, { CLIENTS: kv }), 503, "temporarily_unavailable");
  });

  it("answers 503, not active, when only the owner's record cannot be read (introspect_any)", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const owner = await seedClient();
    const { access_token } = await issueToken(owner);
    captureLogEvents();
    const kv = partlyFailingKV({ failGet: new RegExp(`^${clientKey(owner.client_id)}$`) });
    await expectJSONError(
      await fetchWithEnv(request(resourceServer, access_token), undefined, { CLIENTS: kv }),
      503,
      "temporarily_unavailable",
    );
  });
});
