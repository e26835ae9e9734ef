/**
 * POST /revoke (RFC 7009) through the Worker's real entry point, against Miniflare's KV.
 */
import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { basic, expectJSONError, fetchWithEnv, FORM, issueToken, seedClient, tokenRequest } from "../support/worker.ts";
import { nowSeconds } from "../support/tokens.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../../src/policy.ts";
import { revocationTtl, revokedKey } from "../../src/tokens/revocation.ts";
import {
  captureLogEvents,
  expectInvalidClient,
  expectRevocationOK,
  failingKV,
  formPost,
  partlyFailingKV,
  REVOKE_URL,
  revocationExpiration,
  revoke,
  revokeWithEnv,
  storedRevocation,
  jtiOf,
  tokenOf,
  foreignTokens,
  type TokenMaker,
} from "../support/revocation.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("RFC 7009 §2.1 revoking an access token", () => {
  it("answers 200 with an empty body and no-store, and records revoked:{jti} with client_id, exp and revoked_at", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const { jti, exp } = decodeJwt(access_token);
    expect(await storedRevocation(jti!)).toBeNull();
    const before = nowSeconds();
    await expectRevocationOK(await revoke(client, access_token));
    const stored = await storedRevocation(jti!);
    expect(stored).toEqual({ client_id: client.client_id, exp, revoked_at: expect.any(Number) });
    expect(stored!.revoked_at).toBeGreaterThanOrEqual(before);
    expect(stored!.revoked_at).toBeLessThanOrEqual(nowSeconds());
  });

  it("lets the entry expire 60 s after the token does (expirationTtl = exp - now + 60)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const { jti, exp } = decodeJwt(access_token);
    await expectRevocationOK(await revoke(client, access_token));
    const expiration = await revocationExpiration(jti!);
    expect(expiration).toBeDefined();
    // KV computes expiration = its clock + expirationTtl; allow for the second boundary.
    expect(Math.abs(expiration! - (exp! + 60))).toBeLessThanOrEqual(1);
  });

  it("keeps the entry KV's minimum of 60 s for a token within the gateway's clock tolerance past exp", async () => {
    const client = await seedClient();
    const now = nowSeconds();
    const token = await tokenOf(client.client_id, { iat: now - 300, exp: now - 10 });
    await expectRevocationOK(await revoke(client, token));
    // The gateway still accepts it for CLOCK_TOLERANCE_SECONDS past exp: it must be revoked.
    expect(await storedRevocation(jtiOf(token))).toMatchObject({ client_id: client.client_id, exp: now - 10 });
    const expiration = await revocationExpiration(jtiOf(token));
    expect(expiration! - now).toBeGreaterThanOrEqual(59);
    expect(expiration! - now).toBeLessThanOrEqual(62);
  });

  it("computes the TTL as max(60, exp - now + 60)", () => {
    expect(revocationTtl(1000 + 300, 1000)).toBe(360);
    expect(revocationTtl(1000 + 1, 1000)).toBe(61);
    expect(revocationTtl(1000, 1000)).toBe(60);
    expect(revocationTtl(1000 - 25, 1000)).toBe(60);
  });

  it("answers 200 and writes nothing for a token expired beyond the gateway's clock tolerance", async () => {
    const client = await seedClient();
    const now = nowSeconds();
    const token = await tokenOf(client.client_id, { iat: now - 600, exp: now - CLOCK_TOLERANCE_SECONDS - 5 });
    const logs = captureLogEvents();
    await expectRevocationOK(await revoke(client, token));
    expect(await storedRevocation(jtiOf(token))).toBeNull();
    expect(logs().filter((e) => e.event === "token_revocation_ignored")).toEqual([
      { event: "token_revocation_ignored", client_id: client.client_id, jti: jtiOf(token), reason: expect.stringMatching(/^expired/) },
    ]);
  });

  it("accepts client_secret_post as well as Basic", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expectRevocationOK(
      await formPost("/revoke", { token: access_token, client_id: client.client_id, client_secret: client.client_secret }),
    );
    expect(await storedRevocation(jtiOf(access_token))).not.toBeNull();
  });

  for (const hint of ["access_token", "refresh_token", "something_else"]) {
    it(`ignores token_type_hint=${hint} and revokes the access token`, async () => {
      const client = await seedClient();
      const { access_token } = await issueToken(client);
      await expectRevocationOK(await revoke(client, access_token, { token_type_hint: hint }));
      expect(await storedRevocation(jtiOf(access_token))).toMatchObject({ client_id: client.client_id });
    });
  }

  it("answers 200 again for a token already revoked and keeps the first revoked_at", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const { jti, exp } = decodeJwt(access_token);
    const first = { client_id: client.client_id, exp, revoked_at: 1_700_000_000 };
    await env.CLIENTS.put(revokedKey(jti!), JSON.stringify(first), { expirationTtl: 600 });
    await expectRevocationOK(await revoke(client, access_token));
    expect(await storedRevocation(jti!)).toEqual(first);
  });

  it("writes one audit line with client_id, jti and reason, and never the token or the secret", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const logs = captureLogEvents();
    await expectRevocationOK(await revoke(client, access_token));
    const lines = logs().filter((e) => String(e.event).startsWith("token_revo"));
    expect(lines).toEqual([
      {
        event: "token_revoked",
        client_id: client.client_id,
        jti: jtiOf(access_token),
        exp: decodeJwt(access_token).exp,
        reason: "revoked by its client",
      },
    ]);
    const all = JSON.stringify(logs());
    expect(all).not.toContain(access_token.split(".")[2]);
    expect(all).not.toContain(client.client_secret);
  });
});

describe("RFC 7009 §2.2 invalid tokens cause no error", () => {
  const cases: [string, TokenMaker][] = [
    ["not a JWT at all", async () => "not-a-token"],
    ...foreignTokens,
    ["with a string exp", (id) => tokenOf(id, { exp: String(nowSeconds() + 300) })],
    ["without jti", (id) => tokenOf(id, { jti: undefined })],
    // The gateway's claim rules (one verifier): a token it refuses is not one of this issuer's here either.
    ["with nbf 120 s ahead", (id) => tokenOf(id, { nbf: nowSeconds() + 120 })],
    ["with iat 120 s ahead", (id) => tokenOf(id, { iat: nowSeconds() + 120, exp: nowSeconds() + 300 })],
    [
      "with a lifetime over MAX_ACCESS_TOKEN_TTL",
      (id) => tokenOf(id, { iat: nowSeconds(), exp: nowSeconds() + Number(env.MAX_ACCESS_TOKEN_TTL) + 1 }),
    ],
  ];
  for (const [what, make] of cases) {
    it(`answers 200 and writes nothing for a token ${what}`, async () => {
      const client = await seedClient();
      const token = await make(client.client_id);
      const logs = captureLogEvents();
      await expectRevocationOK(await revoke(client, token));
      const { keys } = await env.CLIENTS.list({ prefix: "revoked:" });
      const jti = (() => {
        try {
          return decodeJwt(token).jti;
        } catch {
          return undefined;
        }
      })();
      if (jti !== undefined) expect(keys.map((k) => k.name)).not.toContain(revokedKey(jti));
      expect(logs().filter((e) => e.event === "token_revocation_ignored")).toEqual([
        { event: "token_revocation_ignored", client_id: client.client_id, reason: expect.stringMatching(/^not a token of this issuer: /) },
      ]);
    });
  }
});

describe("RFC 7009 §2.1 a token issued to another client", () => {
  it("is refused with 400 unauthorized_client, and not revoked", async () => {
    const owner = await seedClient();
    const other = await seedClient();
    const { access_token } = await issueToken(owner);
    const logs = captureLogEvents();
    const body = await expectJSONError(await revoke(other, access_token), 400, "unauthorized_client");
    expect(body.error_description).toBe("the token was not issued to this client");
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
    const refusal = logs().find((e) => e.event === "request_refused");
    expect(refusal).toMatchObject({ path: "/revoke", error: "unauthorized_client" });
    expect(String(refusal!.reason)).toContain(jtiOf(access_token));
    expect(String(refusal!.reason)).toContain(other.client_id);
    // The owner can still revoke it.
    await expectRevocationOK(await revoke(owner, access_token));
    expect(await storedRevocation(jtiOf(access_token))).toMatchObject({ client_id: owner.client_id });
  });
});

describe("RFC 7009 §2.1 client authentication, as at /token", () => {
  it("answers 401 invalid_client with a Basic challenge without credentials, and revokes nothing", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expectInvalidClient(await formPost("/revoke", { token: access_token }));
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
  });

  it("answers 401 invalid_client to a wrong secret, an unknown client and a disabled client", async () => {
    const client = await seedClient();
    const disabled = await seedClient({ disabled: true });
    const { access_token } = await issueToken(client);
    await expectInvalidClient(
      await revoke({ client_id: client.client_id, client_secret: `${client.client_secret.split(".")[0]}.wrong` }, access_token),
    );
    await expectInvalidClient(await revoke({ client_id: `nobody-${crypto.randomUUID()}`, client_secret: "x.y" }, access_token));
    await expectInvalidClient(await revoke(disabled, await tokenOf(disabled.client_id)));
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
  });

  it("counts failures with /token's limiter: blocked at /revoke means blocked at /token for that client and address", async () => {
    const client = await seedClient();
    const address = `revoke-attacker-${crypto.randomUUID()}`;
    const strict = { TOKEN_FAILURE_LIMITER: env.TEST_STRICT_LIMITER };
    const wrong = basic(client.client_id, `${client.client_secret.split(".")[0]}.wrong`);
    const attempt = (url: string, body: string, auth: string) =>
      fetchWithEnv(
        url,
        { method: "POST", headers: { "Content-Type": FORM, Authorization: auth, "CF-Connecting-IP": address }, body },
        strict,
      );
    for (let i = 0; i < 3; i++) expect((await attempt(REVOKE_URL, "token=x", wrong)).status).toBe(401);
    const blocked = await attempt(REVOKE_URL, "token=x", wrong);
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get("Retry-After")).toBe("60");
    // The block is shared: the right secret at /token from that address is refused too.
    expect(
      (await attempt(`${env.ISSUER}/token`, "grant_type=client_credentials", basic(client.client_id, client.client_secret))).status,
    ).toBe(429);
  });

  it("limits requests per address with /token's per-address limiter", async () => {
    const client = await seedClient();
    const address = `revoke-flood-${crypto.randomUUID()}`;
    const send = () =>
      fetchWithEnv(
        REVOKE_URL,
        {
          method: "POST",
          headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret), "CF-Connecting-IP": address },
          body: "token=x",
        },
        { TOKEN_IP_LIMITER: env.TEST_STRICT_LIMITER },
      );
    for (let i = 0; i < 3; i++) expect((await send()).status).toBe(200);
    await expectJSONError(await send(), 429, "temporarily_unavailable");
  });
});

describe("Malformed revocation requests", () => {
  it("answers 400 invalid_request when token is missing", async () => {
    const client = await seedClient();
    const body = await expectJSONError(
      await formPost("/revoke", { token_type_hint: "access_token" }, { Authorization: basic(client.client_id, client.client_secret) }),
      400,
      "invalid_request",
    );
    expect(body.error_description).toContain("token");
  });

  it("answers 400 invalid_request when token is repeated", async () => {
    const client = await seedClient();
    await expectJSONError(
      await formPost(
        "/revoke",
        [
          ["token", "a"],
          ["token", "b"],
        ],
        { Authorization: basic(client.client_id, client.client_secret) },
      ),
      400,
      "invalid_request",
    );
  });

  it("answers 400 invalid_request to parameters in the query string", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const res = await tokenRequest(
      { token: access_token },
      { Authorization: basic(client.client_id, client.client_secret) },
      "/revoke?token=x",
    );
    await expectJSONError(res, 400, "invalid_request");
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
  });

  it("answers 400 invalid_request to a JSON body", async () => {
    const client = await seedClient();
    await expectJSONError(
      await formPost("/revoke", JSON.stringify({ token: "x" }), {
        Authorization: basic(client.client_id, client.client_secret),
        "Content-Type": "application/json",
      }),
      400,
      "invalid_request",
    );
  });

  it("answers 400 invalid_request to Basic and client_secret together", async () => {
    const client = await seedClient();
    await expectJSONError(
      await formPost(
        "/revoke",
        { token: "x", client_secret: client.client_secret },
        { Authorization: basic(client.client_id, client.client_secret) },
      ),
      400,
      "invalid_request",
    );
  });

  it("answers 413 to a body over 8 KiB", async () => {
    const client = await seedClient();
    await expectJSONError(
      await formPost("/revoke", { token: "x".repeat(9000) }, { Authorization: basic(client.client_id, client.client_secret) }),
      413,
      "invalid_request",
    );
  });

  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    it(`answers ${method} /revoke with 405 and Allow: POST`, async () => {
      const res = await exports.default.fetch(REVOKE_URL, { method });
      expect(res.headers.get("Allow")).toBe("POST");
      await expectJSONError(res, 405, "invalid_request");
    });
  }
});

describe("Storage and key failures at /revoke", () => {
  it("answers 503 temporarily_unavailable when KV is down, revoking nothing", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    captureLogEvents();
    const res = await revokeWithEnv(client, access_token, { CLIENTS: failingKV });
    const body = await expectJSONError(res, 503, "temporarily_unavailable");
    expect(JSON.stringify(body)).not.toContain("KV down");
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
  });

  it("answers 503 when the revocation cannot be written (RFC 7009 §2.2.1: the client may retry)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    captureLogEvents();
    const res = await revokeWithEnv(client, access_token, { CLIENTS: partlyFailingKV({ failPut: true }) });
    await expectJSONError(res, 503, "temporarily_unavailable");
    expect(await storedRevocation(jtiOf(access_token))).toBeNull();
    // Once KV works again, the retry succeeds.
    await expectRevocationOK(await revoke(client, access_token));
    expect(await storedRevocation(jtiOf(access_token))).not.toBeNull();
  });

  it("answers 503 when the signing keys are unusable (nothing can be verified)", async () => {
    const client = await seedClient();
    captureLogEvents();
    const res = await revokeWithEnv(client, "x", { SIGNING_KEY: "not json" });
    await expectJSONError(res, 503, "temporarily_unavailable");
  });
});
