/**
 * The warm path of client authentication (src/client-auth/warm-records.ts): what it skips, what it
 * never skips, and how long it may use a record, against the real local KV.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nowSeconds } from "../support/tokens.ts";
import { fetchWithEnv, putClientRecord, seedClient, tokenRequestObject, verifyAccessToken } from "../support/worker.ts";
import { CLIENT_CACHE_SECONDS } from "../../src/policy.ts";
import { CLIENT_CACHE_MAX_ENTRIES, forgetClient, rememberClient } from "../../src/client-auth/warm-records.ts";
import { rememberedClient } from "../../src/client-auth/authenticate.ts";
import { validateClientRecord } from "../../src/clients/record.ts";
import { rememberGoodSecret, secretCacheKey } from "../../src/client-auth/warm-secrets.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

/** The real local KV, recording the keys read through it. */
function countingKV(): { kv: KVNamespace; reads: string[] } {
  const reads: string[] = [];
  const target = env.CLIENTS as unknown as Record<string | symbol, unknown>;
  const kv = new Proxy(target, {
    get(_, prop) {
      if (prop === "get") {
        return (key: string, options: unknown) => {
          reads.push(key);
          return env.CLIENTS.get(key, options as KVNamespaceGetOptions<"text">);
        };
      }
      const value = target[prop];
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(env.CLIENTS) : value;
    },
  });
  return { kv: kv as unknown as KVNamespace, reads };
}

/** One /token request through the Worker with the counting KV; what it read and derived. */
async function tokenRound(kv: { kv: KVNamespace; reads: string[] }, client: { client_id: string; client_secret: string }) {
  const deriveBits = vi.spyOn(crypto.subtle, "deriveBits");
  deriveBits.mockClear();
  kv.reads.length = 0;
  const res = await fetchWithEnv(tokenRequestObject(client), undefined, { CLIENTS: kv.kv });
  // Client records only: the signing-key schedule has reads of its own, cached separately.
  const reads = kv.reads.filter((key) => key.startsWith("client:"));
  const result = { status: res.status, body: await res.text(), reads, pbkdf2: deriveBits.mock.calls.length };
  deriveBits.mockRestore();
  return result;
}

describe("client authentication, warm path", () => {
  it("serves a client that authenticated in this isolate from memory: no KV read, no PBKDF2", async () => {
    const client = await seedClient();
    const kv = countingKV();
    const first = await tokenRound(kv, client);
    expect(first).toMatchObject({ status: 200, reads: [`client:${client.client_id}`], pbkdf2: 1 });
    const second = await tokenRound(kv, client);
    expect(second).toMatchObject({ status: 200, reads: [], pbkdf2: 0 });
    // A full token all the same: its own jti, verifiable against the JWKS.
    const a = await verifyAccessToken((JSON.parse(first.body) as { access_token: string }).access_token);
    const b = await verifyAccessToken((JSON.parse(second.body) as { access_token: string }).access_token);
    expect(b.client_id).toBe(client.client_id);
    expect(b.jti).not.toBe(a.jti);
  });

  it("reads KV and pays one PBKDF2 for any other secret of a warm client, answering as for an unknown client", async () => {
    const client = await seedClient();
    const kv = countingKV();
    expect((await tokenRound(kv, client)).status).toBe(200);
    const wrong = await tokenRound(kv, { client_id: client.client_id, client_secret: `${client.client_secret}x` });
    const unknown = await tokenRound(kv, { client_id: `unknown-${crypto.randomUUID()}`, client_secret: client.client_secret });
    expect(wrong).toMatchObject({ status: 401, reads: [`client:${client.client_id}`], pbkdf2: 1 });
    expect(unknown).toMatchObject({ status: 401, pbkdf2: 1 });
    expect(unknown.reads).toHaveLength(1);
    expect(wrong.body).toBe(unknown.body);
    // The right secret is still warm.
    expect(await tokenRound(kv, client)).toMatchObject({ status: 200, reads: [], pbkdf2: 0 });
  });

  it("uses a record for at most CLIENT_CACHE_SECONDS: a client disabled in KV meanwhile is refused after that", async () => {
    const client = await seedClient();
    const kv = countingKV();
    const before = Date.now();
    expect((await tokenRound(kv, client)).status).toBe(200);
    const after = Date.now();
    await putClientRecord({ ...client.record, client_id: client.client_id, disabled: true });
    // Within the window the isolate still answers from the record it read (the documented trade-off)...
    const now = nowSeconds();
    expect(await rememberedClient(client.client_id, client.client_secret, now, before + CLIENT_CACHE_SECONDS * 1000 - 1)).toBeDefined();
    // ...and not a millisecond past it: the entry is dropped, the next request reads KV and is refused.
    expect(await rememberedClient(client.client_id, client.client_secret, now, after + CLIENT_CACHE_SECONDS * 1000)).toBeUndefined();
    expect(await tokenRound(kv, client)).toMatchObject({ status: 401, reads: [`client:${client.client_id}`], pbkdf2: 1 });
  });

  it("never remembers a refusal: a disabled client enabled again gets a token on its next request", async () => {
    const client = await seedClient({ disabled: true });
    const kv = countingKV();
    expect((await tokenRound(kv, client)).status).toBe(401);
    expect(await rememberedClient(client.client_id, client.client_secret, nowSeconds())).toBeUndefined();
    await putClientRecord({ ...client.record, client_id: client.client_id, disabled: false });
    expect(await tokenRound(kv, client)).toMatchObject({ status: 200, reads: [`client:${client.client_id}`], pbkdf2: 1 });
  });

  it("stops a secret at its expires_at even while the record is remembered", async () => {
    const client = await seedClient({ secrets: [{ expires_at: nowSeconds() + 60 }] });
    const kv = countingKV();
    expect((await tokenRound(kv, client)).status).toBe(200);
    const expiresAt = (client.record.secrets as { expires_at: number }[])[0]!.expires_at;
    expect(await rememberedClient(client.client_id, client.client_secret, expiresAt - 1)).toBeDefined();
    expect(await rememberedClient(client.client_id, client.client_secret, expiresAt)).toBeUndefined();
  });

  it("does not remember a record read before this isolate changed the client, even if its request ends after", async () => {
    const client = await seedClient();
    const record = validateClientRecord(client.record);
    await rememberGoodSecret(secretCacheKey(record.client_id, record.secrets[0]!.hash, record.updated_at), client.client_secret);
    const readAt = Date.now();
    // An admin change lands while a slow request (read at readAt) is still in its PBKDF2...
    forgetClient(record.client_id, readAt + 5);
    // ...which then tries to remember what it read: refused, the old record stays forgotten.
    rememberClient(record, readAt);
    expect(await rememberedClient(record.client_id, client.client_secret, nowSeconds())).toBeUndefined();
    // A read after the change is remembered again.
    rememberClient(record, readAt + 6);
    expect(await rememberedClient(record.client_id, client.client_secret, nowSeconds(), readAt + 6)).toBeDefined();
  });

  it(`holds at most ${CLIENT_CACHE_MAX_ENTRIES} clients, dropping the one remembered longest ago`, async () => {
    const { record: template, client_secret } = await seedClient();
    const base = validateClientRecord(template);
    const stored = base.secrets[0]!;
    const ids = Array.from({ length: CLIENT_CACHE_MAX_ENTRIES + 1 }, (_, i) => `bound-${i}-${crypto.randomUUID()}`);
    const rememberSecret = (id: string) => rememberGoodSecret(secretCacheKey(id, stored.hash, base.updated_at), client_secret);
    for (const id of ids) {
      await rememberSecret(id);
      rememberClient({ ...base, client_id: id }, Date.now());
    }
    // The secret cache has the same bound: put the first client's digest back, so only the record is missing.
    await rememberSecret(ids[0]!);
    const now = nowSeconds();
    expect(await rememberedClient(ids[0]!, client_secret, now)).toBeUndefined();
    expect(await rememberedClient(ids[2]!, client_secret, now)).toBeDefined();
    expect(await rememberedClient(ids.at(-1)!, client_secret, now)).toBeDefined();
  });
});
