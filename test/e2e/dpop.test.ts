/**
 * End to end: DPoP (RFC 9449) under `wrangler dev` with oauth4webapi's `DPoP()` as the client: a
 * client made with the CLI's --require-dpop gets a DPoP-bound token, calls the gateway with a fresh
 * proof each time, and is refused without one; the origin never sees the proof.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startEchoOrigin, type EchoOrigin, type EchoRecord } from "../../scripts/echo-origin.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { runCLI } from "./support/cli.ts";
import { discover, insecure } from "./support/oauth.ts";

const AUDIENCE = "https://orders.example";
let worker: WorkerProcess;
let origin: EchoOrigin;
let stateDir: string;
let secret: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-dpop-"));
  origin = await startEchoOrigin();
  const routes = [{ prefix: "/orders", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"] }];
  worker = await startWorker({
    persistTo: stateDir,
    vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()), GATEWAY_ROUTES: JSON.stringify(routes) },
  });
  const created = await runCLI(
    stateDir,
    "clients",
    "create",
    "shop",
    "--scope",
    "orders:read",
    "--audience",
    AUDIENCE,
    "--require-dpop",
    "--json",
  );
  expect(created.code, created.stderr).toBe(0);
  const record = JSON.parse(created.stdout) as { client_secret: string; dpop_bound_access_tokens?: boolean };
  expect(record.dpop_bound_access_tokens).toBe(true);
  secret = record.client_secret;
});

afterAll(async () => {
  await worker?.stop();
  await origin?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const client: oauth.Client = { client_id: "shop" };

describe("DPoP end to end with oauth4webapi", () => {
  it("a --require-dpop client gets a DPoP-bound token and calls the gateway with fresh proofs", async () => {
    const as = await discover(worker.url);
    expect(as.dpop_signing_alg_values_supported).toEqual(["ES256", "ES384", "PS256", "RS256", "EdDSA"]);
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
    const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(secret), new URLSearchParams(), {
      ...insecure,
      DPoP,
    });
    const token = await oauth.processClientCredentialsResponse(as, client, response);
    expect(token.token_type).toBe("dpop");
    expect(decodeJwt(token.access_token).cnf).toEqual({ jkt: await DPoP.calculateThumbprint() });
    for (const n of [1, 2]) {
      const url = new URL(`${worker.url}/orders/${n}?page=${n}`);
      const res = await oauth.protectedResourceRequest(token.access_token, "GET", url, new Headers(), null, { ...insecure, DPoP });
      expect(res.status).toBe(200);
      const seen = (await res.json()) as EchoRecord;
      expect(seen.path).toBe(`/orders/${n}?page=${n}`);
      expect(seen.headers.dpop).toBeUndefined();
      expect(seen.headers.authorization).toBeUndefined();
    }
  });

  it("refuses that client's token request without a proof, and its token as Bearer", async () => {
    const as = await discover(worker.url);
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(secret),
      new URLSearchParams(),
      insecure,
    );
    const refused = await oauth.processClientCredentialsResponse(as, client, response).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(oauth.ResponseBodyError);
    expect(refused).toMatchObject({ error: "invalid_dpop_proof", status: 400 });

    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
    const bound = await oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(secret), new URLSearchParams(), { ...insecure, DPoP }),
    );
    const before = origin.log.length;
    const res = await fetch(`${worker.url}/orders/3`, { headers: { Authorization: `Bearer ${bound.access_token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^DPoP realm=".*", error="invalid_token", .*algs="ES256 ES384 PS256 RS256 EdDSA"$/);
    expect(origin.log.length).toBe(before);
  });

  it("clients update --no-require-dpop clears the flag; both flags at once are a usage error", async () => {
    const both = await runCLI(stateDir, "clients", "update", "shop", "--require-dpop", "--no-require-dpop");
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain("--require-dpop and --no-require-dpop exclude each other");
    const cleared = await runCLI(stateDir, "clients", "update", "shop", "--no-require-dpop", "--json");
    expect(cleared.code, cleared.stderr).toBe(0);
    expect((JSON.parse(cleared.stdout) as { dpop_bound_access_tokens: boolean }).dpop_bound_access_tokens).toBe(false);
  });
});
