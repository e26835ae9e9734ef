/**
 * The gateway refuses revoked tokens and every token of a disabled or deleted client: through the
 * Worker's real entry point against a real origin, and the per-isolate status cache
 * (src/tokens/status.ts) directly, with a KV of the test's own and time passed in.
 */
import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BearerError, OAuthError } from "../../src/http/errors.ts";
import { revokeClientSecret, updateClientRecord } from "../../src/clients/manage.ts";
import { clientKey, generateInstanceId, validateClientRecord } from "../../src/clients/record.ts";
import { forgetClient } from "../../src/client-auth/warm-records.ts";
import { revokedKey } from "../../src/tokens/revocation.ts";
import { REVOCATION_CHECK_SECONDS } from "../../src/policy.ts";
import { checkTokenStatus, STALE_GRACE_SECONDS, STATUS_CACHE_MAX_ENTRIES } from "../../src/tokens/status.ts";
import { expectJSONError, fetchWithEnv, issueToken, putClientRecord, seedClient, type SeedOverrides } from "../support/worker.ts";
import {
  captureLogEvents,
  expectInactive,
  expectRevocationOK,
  failingKV,
  introspect,
  introspection,
  revoke,
} from "../support/revocation.ts";
import {
  expectInvalidToken,
  expectOriginNotContacted,
  expectProxied,
  gatewayFetch,
  GATEWAY,
  marker,
  withBearer,
} from "../support/gateway.ts";
import { legacyClientRecord, mintToken } from "../support/tokens.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

const REVOKED = "the access token has been revoked";

describe("Gateway: revoked tokens and tokens of disabled or deleted clients", () => {
  it("refuses a revoked token with 401 invalid_token, and the origin is not contacted", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expectRevocationOK(await revoke(client, access_token));
    const mark = marker("revoked");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
  });

  it("refuses every token of a disabled client, and serves them again once it is enabled and the check is redone", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await putClientRecord({ ...client.record, client_id: client.client_id, disabled: true });
    const mark = marker("disabled");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
    // Enabled again: the refusal is remembered for REVOCATION_CHECK_SECONDS, then the next check reads KV.
    await putClientRecord({ ...client.record, client_id: client.client_id, disabled: false });
    await expect(
      checkTokenStatus(env.CLIENTS, decodeJwt(access_token) as { jti: string; client_id: string; iat: number }),
    ).rejects.toBeInstanceOf(BearerError);
    await expect(
      checkTokenStatus(
        env.CLIENTS,
        decodeJwt(access_token) as { jti: string; client_id: string; iat: number },
        Date.now() + REVOCATION_CHECK_SECONDS * 1000,
      ),
    ).resolves.toBeUndefined();
  });

  it("refuses every token of a deleted client", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await env.CLIENTS.delete(clientKey(client.client_id));
    const mark = marker("deleted");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
  });

  it("refuses a revoked token before its scopes are looked at (401, not 403)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client, { scope: "orders:read" });
    await expectRevocationOK(await revoke(client, access_token));
    const mark = marker("revoked-post");
    // POST /api needs orders:write, which this token lacks: revocation is reported first.
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token, { method: "POST", body: "{}" })), mark, REVOKED);
  });

  it("serves a token that is neither revoked nor of a disabled client (the check itself lets it through)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const echo = await expectProxied(await gatewayFetch(`/api/${marker("ok")}`, withBearer(access_token)));
    expect(echo.headers["x-tollgate-client-id"]).toBe(client.client_id);
  });

  it("refuses a token already in the verified-token cache once its status entry is gone (cache-hit path)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    await expectProxied(await gatewayFetch(`/api/${marker("warm")}`, withBearer(access_token)));
    await expectRevocationOK(await revoke(client, access_token));
    // Push this token's status entries out of the bounded caches; its signature stays cached.
    const filler = fakeKV();
    // (The fillers' clients do not exist, so each check refuses; both answers are remembered all the same.)
    for (let i = 0; i < STATUS_CACHE_MAX_ENTRIES; i++) {
      await checkTokenStatus(filler.kv, {
        jti: `filler-${i}-${crypto.randomUUID()}`,
        client_id: `filler-${i}-${crypto.randomUUID()}`,
        iat: 0,
      }).catch(() => undefined);
    }
    expect(filler.reads).toHaveLength(2 * STATUS_CACHE_MAX_ENTRIES);
    const mark = marker("hit");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
  });

  it("answers 503 temporarily_unavailable, and never proxies, when KV is down and the token's status was never seen", async () => {
    captureLogEvents();
    const token = await mintToken();
    const mark = marker("kv-down");
    const res = await fetchWithEnv(`${GATEWAY}/api/${mark}`, withBearer(token), { CLIENTS: failingKV });
    const body = await expectJSONError(res, 503, "temporarily_unavailable");
    expect(JSON.stringify(body)).not.toContain("KV down");
    await expectOriginNotContacted(mark);
  });

  it("serves a token checked moments ago from the isolate's memory, without asking KV", async () => {
    const token = await mintToken();
    await expectProxied(await gatewayFetch(`/api/${marker("first")}`, withBearer(token)));
    // KV is down now, but the answer is younger than REVOCATION_CHECK_SECONDS.
    await expectProxied(await fetchWithEnv(`${GATEWAY}/api/${marker("cached")}`, withBearer(token), { CLIENTS: failingKV }));
  });
});

/** A KV namespace of the test's own: what it holds, every read (with its options), and a switch to fail. */
function fakeKV() {
  const values = new Map<string, string>();
  const reads: { key: string; options: unknown }[] = [];
  const state = { failing: false };
  const kv = {
    get: (key: string, options: unknown) => {
      reads.push({ key, options });
      if (state.failing) return Promise.reject(new Error("KV unreachable"));
      return Promise.resolve(values.get(key) ?? null);
    },
  } as unknown as KVNamespace;
  return {
    kv,
    reads,
    state,
    readsOf: (key: string) => reads.filter((r) => r.key === key).length,
    putClient(clientId: string, disabled = false) {
      values.set(clientKey(clientId), JSON.stringify(legacyClientRecord(clientId, { name: "c", disabled })));
    },
    revoke(jti: string) {
      values.set(revokedKey(jti), JSON.stringify({ client_id: "x", exp: 2_000_000_000, revoked_at: 1 }));
    },
    deleteClient(clientId: string) {
      values.delete(clientKey(clientId));
    },
  };
}

function subject() {
  const id = crypto.randomUUID();
  // Issued now: after any tokens_not_before the fake KV's records carry.
  return { jti: `jti-${id}`, client_id: `client-${id}`, iat: Math.floor(Date.now() / 1000) + 10 };
}

const T0 = 1_900_000_000_000;
const SECOND = 1000;

describe("Status cache (src/tokens/status.ts), time passed in", () => {
  it("reads revoked:{jti} and client:{id} with cacheTtl 30 (KV's minimum), once per REVOCATION_CHECK_SECONDS", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    await checkTokenStatus(kv.kv, claims, T0);
    expect(kv.reads).toEqual([
      { key: revokedKey(claims.jti), options: { type: "text", cacheTtl: 30 } },
      { key: clientKey(claims.client_id), options: { type: "text", cacheTtl: 30 } },
    ]);
    await checkTokenStatus(kv.kv, claims, T0 + REVOCATION_CHECK_SECONDS * SECOND - 1);
    expect(kv.reads).toHaveLength(2);
    await checkTokenStatus(kv.kv, claims, T0 + REVOCATION_CHECK_SECONDS * SECOND);
    expect(kv.reads).toHaveLength(4);
  });

  it("notices a revocation at the first check after REVOCATION_CHECK_SECONDS, not before", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    await checkTokenStatus(kv.kv, claims, T0);
    kv.revoke(claims.jti);
    await expect(checkTokenStatus(kv.kv, claims, T0 + 9_999)).resolves.toBeUndefined();
    const refused = await checkTokenStatus(kv.kv, claims, T0 + 10_000).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BearerError);
    expect(refused).toMatchObject({ code: "invalid_token", status: 401, description: REVOKED });
    expect((refused as BearerError).reason).toContain("token revoked");
  });

  it("notices a disabled client, then a deleted one, at the next check", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    await checkTokenStatus(kv.kv, claims, T0);
    kv.putClient(claims.client_id, true);
    await expect(checkTokenStatus(kv.kv, claims, T0 + 5 * SECOND)).resolves.toBeUndefined();
    await expect(checkTokenStatus(kv.kv, claims, T0 + 10 * SECOND)).rejects.toMatchObject({
      code: "invalid_token",
      reason: expect.stringContaining("client disabled"),
    });
    kv.deleteClient(claims.client_id);
    await expect(checkTokenStatus(kv.kv, claims, T0 + 20 * SECOND)).rejects.toMatchObject({
      code: "invalid_token",
      reason: expect.stringContaining("client deleted"),
    });
  });

  it("remembers refusals too, and lets a re-enabled client through at the next check", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id, true);
    await expect(checkTokenStatus(kv.kv, claims, T0)).rejects.toBeInstanceOf(BearerError);
    kv.putClient(claims.client_id, false);
    await expect(checkTokenStatus(kv.kv, claims, T0 + 9 * SECOND)).rejects.toBeInstanceOf(BearerError);
    expect(kv.readsOf(clientKey(claims.client_id))).toBe(1);
    await expect(checkTokenStatus(kv.kv, claims, T0 + 10 * SECOND)).resolves.toBeUndefined();
    expect(kv.readsOf(clientKey(claims.client_id))).toBe(2);
  });

  it("shares the client answer between tokens of one client, and keeps jti answers apart", async () => {
    const kv = fakeKV();
    const a = subject();
    const b = { jti: `jti-${crypto.randomUUID()}`, client_id: a.client_id, iat: a.iat };
    kv.putClient(a.client_id);
    kv.revoke(b.jti);
    await checkTokenStatus(kv.kv, a, T0);
    await expect(checkTokenStatus(kv.kv, b, T0)).rejects.toBeInstanceOf(BearerError);
    expect(kv.readsOf(clientKey(a.client_id))).toBe(1);
    await expect(checkTokenStatus(kv.kv, a, T0 + 1)).resolves.toBeUndefined();
  });

  it("keeps the last answer while KV fails, up to STALE_GRACE_SECONDS past its refresh time, then fails closed with 503", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    await checkTokenStatus(kv.kv, claims, T0);
    kv.state.failing = true;
    const logs = captureLogEvents();
    const lastStale = T0 + (REVOCATION_CHECK_SECONDS + STALE_GRACE_SECONDS) * SECOND - 1;
    await expect(checkTokenStatus(kv.kv, claims, T0 + REVOCATION_CHECK_SECONDS * SECOND)).resolves.toBeUndefined();
    await expect(checkTokenStatus(kv.kv, claims, lastStale)).resolves.toBeUndefined();
    expect(logs().filter((e) => e.event === "token_status_stale").length).toBeGreaterThanOrEqual(2);
    const closed = await checkTokenStatus(kv.kv, claims, lastStale + 1).catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(OAuthError);
    expect(closed).toMatchObject({ code: "temporarily_unavailable", status: 503 });
    // KV back: answers again, and the entry is fresh.
    kv.state.failing = false;
    await expect(checkTokenStatus(kv.kv, claims, lastStale + 2)).resolves.toBeUndefined();
  });

  it("keeps refusing a revoked token while KV fails (the stale answer is a refusal too)", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    kv.revoke(claims.jti);
    await expect(checkTokenStatus(kv.kv, claims, T0)).rejects.toBeInstanceOf(BearerError);
    kv.state.failing = true;
    captureLogEvents();
    await expect(checkTokenStatus(kv.kv, claims, T0 + 30 * SECOND)).rejects.toBeInstanceOf(BearerError);
    // Past the grace the revocation is no longer known, but the token is still not passed.
    await expect(checkTokenStatus(kv.kv, claims, T0 + 71 * SECOND)).rejects.toMatchObject({ code: "temporarily_unavailable", status: 503 });
  });

  it("fails closed with 503 at once when KV fails and there is no earlier answer", async () => {
    const kv = fakeKV();
    kv.state.failing = true;
    captureLogEvents();
    await expect(checkTokenStatus(kv.kv, subject(), T0)).rejects.toMatchObject({ code: "temporarily_unavailable", status: 503 });
  });

  it("answers a corrupt client record with 500 server_error, never a pass", async () => {
    const kv = fakeKV();
    const claims = subject();
    kv.putClient(claims.client_id);
    (kv.kv as unknown as { get: unknown }).get = (key: string) => Promise.resolve(key.startsWith("client:") ? '{"client_id": 1}' : null);
    await expect(checkTokenStatus(kv.kv, claims, T0)).rejects.toMatchObject({ code: "server_error", status: 500 });
  });

  it(`holds at most ${STATUS_CACHE_MAX_ENTRIES} entries per cache: the oldest is read again`, async () => {
    const kv = fakeKV();
    const first = subject();
    kv.putClient(first.client_id);
    await checkTokenStatus(kv.kv, first, T0);
    for (let i = 0; i < STATUS_CACHE_MAX_ENTRIES; i++) {
      const claims = { jti: `bound-${i}-${first.jti}`, client_id: first.client_id, iat: first.iat };
      await checkTokenStatus(kv.kv, claims, T0 + 1);
    }
    expect(kv.readsOf(revokedKey(first.jti))).toBe(1);
    await checkTokenStatus(kv.kv, first, T0 + 2);
    expect(kv.readsOf(revokedKey(first.jti))).toBe(2);
  });
});

describe("Record instances: tokens die with a re-created id, a disable, or a revoked secret, whatever the clock", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const REGISTER = `${env.ISSUER}/register`;

  async function adminToken(): Promise<string> {
    const admin = await seedClient({
      allowed_scopes: ["tollgate:admin"],
      default_scopes: ["tollgate:admin"],
      allowed_audiences: [REGISTER],
    });
    return (await issueToken(admin, { resource: REGISTER })).access_token;
  }

  function register(method: "POST" | "DELETE", path: string, token: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return exports.default.fetch(`${env.ISSUER}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  /** Polls (never races) until the clock reaches `second`. */
  async function waitUntilSecond(second: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (now() < second) {
      if (Date.now() > deadline) throw new Error(`the clock did not reach ${second}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A client whose record has an instance_id, as the CLI and the admin API write them now. */
  const seedCurrentClient = (overrides: SeedOverrides = {}) => seedClient({ instance_id: generateInstanceId(), ...overrides });

  it("refuses the old token of a client deleted and re-created through the admin API within the same second, at the gateway and at /introspect", async () => {
    const admin = await adminToken();
    const metadata = { scope: "orders:read", audience: [env.DEFAULT_AUDIENCE] };
    let sameSecond = 0;
    // The reproduction needs the re-creation in the token's own second; a second boundary in
    // between is not a failure, only another try.
    for (let attempt = 0; attempt < 5 && sameSecond === 0; attempt++) {
      const id = `recreated-${crypto.randomUUID()}`;
      const first = (await (await register("POST", "/register", admin, { client_id: id, ...metadata })).json()) as {
        client_secret: string;
      };
      const { access_token } = await issueToken({ client_id: id, client_secret: first.client_secret });
      expect((await register("DELETE", `/register/${id}`, admin)).status).toBe(204);
      const created = await register("POST", "/register", admin, { client_id: id, ...metadata });
      expect(created.status).toBe(201);
      const second = (await created.json()) as { client_secret: string; client_id_issued_at: number };
      if (second.client_id_issued_at !== decodeJwt(access_token).iat) continue;
      sameSecond++;
      const mark = marker("recreated-same-second");
      await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
      await expectInactive(await introspect({ client_id: id, client_secret: second.client_secret }, access_token));
      // The new record's own tokens are served.
      const { access_token: fresh } = await issueToken({ client_id: id, client_secret: second.client_secret });
      await expectProxied(await gatewayFetch(`/api/${marker("recreated-fresh")}`, withBearer(fresh)));
    }
    expect(sameSecond).toBe(1);
  });

  it("refuses a token an isolate mints from its remembered record after the client was disabled and enabled again (tokens_not_before passed)", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const client = await seedCurrentClient();
    // Authenticating puts the record in this isolate's client cache (src/client-auth/warm-records.ts) for 10 s.
    const { access_token: before } = await issueToken(client);
    const record = validateClientRecord(client.record);
    const disabled = updateClientRecord(record, { disabled: true }, now());
    const enabled = updateClientRecord(disabled, { disabled: false }, now());
    expect(disabled.instance_id).not.toBe(record.instance_id);
    expect(enabled.instance_id).toBe(disabled.instance_id);
    // Written as the CLI writes, so this isolate's remembered record is now stale.
    await putClientRecord(enabled as unknown as { client_id: string } & Record<string, unknown>);
    await expectInvalidToken(
      await gatewayFetch(`/api/${marker("reenabled-before")}`, withBearer(before)),
      marker("reenabled-before"),
      REVOKED,
    );
    // Past tokens_not_before, the stale record still issues: the clock cannot tell these tokens apart.
    await waitUntilSecond(enabled.tokens_not_before);
    const { access_token: stale } = await issueToken(client);
    expect(decodeJwt(stale).iat).toBeGreaterThanOrEqual(enabled.tokens_not_before);
    const mark = marker("reenabled-stale");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(stale)), mark, REVOKED);
    await expectInactive(await introspect(resourceServer, stale));
    await expectInactive(await introspect(resourceServer, before));
    // It was the remembered record's instance that the token carried.
    expect(decodeJwt(stale).tg_inst).toBe(record.instance_id);
  });

  it("refuses a token minted with a revoked secret, even by an isolate that still remembers it after tokens_not_before, and serves the other secret's new tokens", async () => {
    const resourceServer = await seedClient({ introspect_any: true });
    const client = await seedCurrentClient({ secrets: [{}, {}] });
    const { access_token: before } = await issueToken(client);
    const record = validateClientRecord(client.record);
    const revoked = revokeClientSecret(record, record.secrets[0]!.id, now());
    expect(revoked.instance_id).not.toBe(record.instance_id);
    await putClientRecord(revoked as unknown as { client_id: string } & Record<string, unknown>);
    await expectInvalidToken(await gatewayFetch(`/api/${marker("leaked-before")}`, withBearer(before)), marker("leaked-before"), REVOKED);
    await waitUntilSecond(revoked.tokens_not_before);
    const { access_token: stale } = await issueToken(client);
    expect(decodeJwt(stale).iat).toBeGreaterThanOrEqual(revoked.tokens_not_before);
    const mark = marker("leaked-stale");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(stale)), mark, REVOKED);
    await expectInactive(await introspect(resourceServer, stale));
    // The other secret, read from KV once this isolate forgets the record, gets tokens that work.
    forgetClient(client.client_id);
    const { access_token: fresh } = await issueToken({ client_id: client.client_id, client_secret: client.client_secrets[1]! });
    expect(decodeJwt(fresh).tg_inst).toBe(revoked.instance_id);
    await expectProxied(await gatewayFetch(`/api/${marker("leaked-fresh")}`, withBearer(fresh)));
    expect((await introspection(await introspect(resourceServer, fresh))).active).toBe(true);
  });

  it("refuses a token without tg_inst once the record has an instance, and one naming another instance", async () => {
    const client = await seedCurrentClient();
    const instance = client.record.instance_id as string;
    const claims = { jti: crypto.randomUUID(), client_id: client.client_id, iat: now() };
    await expect(checkTokenStatus(env.CLIENTS, claims)).rejects.toMatchObject({
      code: "invalid_token",
      reason: expect.stringContaining("earlier instance"),
    });
    await expect(
      checkTokenStatus(env.CLIENTS, { ...claims, jti: crypto.randomUUID(), tg_inst: generateInstanceId() }),
    ).rejects.toBeInstanceOf(BearerError);
    await expect(checkTokenStatus(env.CLIENTS, { ...claims, jti: crypto.randomUUID(), tg_inst: instance })).resolves.toBeUndefined();
  });

  it("refuses a token of a record from before instance ids when it was deleted and re-created a second later (tokens_not_before)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    expect(decodeJwt(access_token)).not.toHaveProperty("tg_inst");
    await env.CLIENTS.delete(`client:${client.client_id}`);
    // Re-created a second later by an older writer (its created_at is after the old token's iat).
    const later = now() + 1;
    await putClientRecord({ ...client.record, client_id: client.client_id, created_at: later, updated_at: later });
    const mark = marker("recreated");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(access_token)), mark, REVOKED);
  });
});
