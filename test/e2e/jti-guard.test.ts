/**
 * Single use across locations: two Worker instances of the production bundle in workerd (separate
 * isolates, nothing in memory shared), bound to one KV and one JtiGuard Durable Object namespace, as
 * two Cloudflare locations are. An assertion spent at one is refused at the other.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signAssertion, startRawWorkerd, type RawWorkerd } from "../../bench/workerd.ts";
import { createKeyClientRecord } from "../../src/clients/manage.ts";
import { clientKey } from "../../src/clients/record.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";

const ISSUER = "http://localhost:8787";
const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
let dir: string;
let worker: RawWorkerd;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-e2e-jti-"));
  const record = createKeyClientRecord(
    "far-away",
    { scope: "a", jwks: { keys: [{ ...key.publicKey.export({ format: "jwk" }), kid: "k1" }] } },
    Math.floor(Date.now() / 1000),
  );
  worker = await startRawWorkerd(
    dir,
    { ISSUER, DEFAULT_AUDIENCE: "https://api.example.com", SIGNING_KEY: JSON.stringify(await generateSigningKey()), GATEWAY_ROUTES: "[]" },
    { [clientKey("far-away")]: JSON.stringify(record) },
    { secondInstance: true },
  );
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const assertion = (): string => signAssertion(key.privateKey, { kid: "k1" }, { clientId: "far-away", audience: ISSUER, lifetime: 60 });

function requestToken(base: string, clientAssertion: string): Promise<Response> {
  return fetch(`${base}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: clientAssertion,
    }).toString(),
  });
}

describe("a jti is spent once across Worker instances (the JtiGuard Durable Object)", { timeout: 60_000 }, () => {
  it("refuses at the second instance an assertion the first accepted, and the other way round", async () => {
    const first = assertion();
    expect((await requestToken(worker.url, first)).status).toBe(200);
    const replay = await requestToken(worker.secondUrl!, first);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toBe("invalid_client");

    const second = assertion();
    expect((await requestToken(worker.secondUrl!, second)).status).toBe(200);
    expect((await requestToken(worker.url, second)).status).toBe(401);
  });

  it("lets only one of two simultaneous uses of an assertion through", async () => {
    const both = assertion();
    const statuses = (await Promise.all([requestToken(worker.url, both), requestToken(worker.secondUrl!, both)])).map((r) => r.status);
    expect(statuses.sort()).toEqual([200, 401]);
  });
});
