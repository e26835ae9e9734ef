/**
 * End to end: the Worker under `wrangler dev` (workerd, Miniflare's local KV), a client created with
 * the CLI while it runs, a token obtained with oauth4webapi and validated as a resource server would.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import * as oauth from "oauth4webapi";
import { runCLI, type CLIResult } from "./support/cli.ts";
import { discover, insecure } from "./support/oauth.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvGet, kvPut } from "../../cli/kv.ts";
import { CLIENT_CACHE_SECONDS } from "../../src/policy.ts";
import { createClientRecord } from "../../src/clients/manage.ts";
import { clientKey } from "../../src/clients/record.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";

let worker: WorkerProcess;
let stateDir: string;

/** The longest a poll waits for an answer to change; generous for a busy machine. */
const POLL_LIMIT_MS = 45_000;
/** The grace of the rotation test: long enough for a slow CLI call and a request, on a busy machine. */
const GRACE_SECONDS = 15;

const tollgate = (...args: string[]): Promise<CLIResult> => runCLI(stateDir, ...args);

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-"));
  worker = await startWorker({ persistTo: stateDir, vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()) } });
});

afterAll(async () => {
  await worker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("client-credentials grant end to end", () => {
  let secret: string;

  it("creates a client with the CLI while the Worker runs", async () => {
    const created = await tollgate(
      "clients",
      "create",
      "orders-svc",
      "--scope",
      "orders:read orders:write",
      "--audience",
      "https://orders.example",
      "--json",
    );
    expect(created.code).toBe(0);
    const body = JSON.parse(created.stdout) as { client_id: string; client_secret: string; secrets: object[] };
    expect(body.client_id).toBe("orders-svc");
    expect(body.client_secret).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(body.secrets)).not.toContain("pbkdf2");
    secret = body.client_secret;
  });

  it("issues a token to oauth4webapi (client_secret_basic) that jose validates against the remote JWKS", async () => {
    const as = await discover(worker.url);
    expect(as.issuer).toBe(worker.url);
    const client: oauth.Client = { client_id: "orders-svc" };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(secret),
      new URLSearchParams({ scope: "orders:read" }),
      insecure,
    );
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    expect(result.token_type).toBe("bearer");
    expect(result.scope).toBe("orders:read");
    expect(decodeProtectedHeader(result.access_token).typ).toBe("at+jwt");

    const { payload } = await jwtVerify(result.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), {
      issuer: worker.url,
      audience: "https://orders.example",
      typ: "at+jwt",
      algorithms: ["ES256"],
      requiredClaims: ["exp", "iat", "jti", "sub", "client_id"],
    });
    expect(payload.client_id).toBe("orders-svc");
    expect(payload.sub).toBe("orders-svc");
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it("passes oauth4webapi's RFC 9068 resource-server validation (client_secret_post)", async () => {
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "orders-svc" };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretPost(secret),
      new URLSearchParams({ resource: "https://orders.example" }),
      insecure,
    );
    const { access_token } = await oauth.processClientCredentialsResponse(as, client, response);
    const request = new Request("https://orders.example/orders", { headers: { Authorization: `Bearer ${access_token}` } });
    const claims = await oauth.validateJwtAccessToken(as, request, "https://orders.example", insecure);
    expect(claims.client_id).toBe("orders-svc");
    expect(claims.scope).toBe("orders:read orders:write");
  });

  it("refuses the client within CLIENT_CACHE_SECONDS once the CLI disables it, and serves it again at once when enabled", async () => {
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "orders-svc" };
    const request = () => oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(secret), new URLSearchParams(), insecure);
    // Warm: the isolate now remembers this client and secret (src/client-auth/warm-records.ts).
    expect((await request()).status).toBe(200);
    expect((await tollgate("clients", "disable", "orders-svc")).code).toBe(0);
    // Timed from the CLI's answer (the write is done by then), so a slow CLI cannot eat the window.
    const disabledAt = Date.now();
    let refused = await request();
    while (refused.status === 200 && Date.now() - disabledAt < POLL_LIMIT_MS) {
      await new Promise((r) => setTimeout(r, 250));
      refused = await request();
    }
    // Local KV has no edge cache, so only the isolate's window remains, plus slack for a busy machine.
    expect(Date.now() - disabledAt).toBeLessThanOrEqual((CLIENT_CACHE_SECONDS + 5) * 1000);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await refused.json()).toEqual({ error: "invalid_client", error_description: "client authentication failed" });
    // A refusal is never remembered: enabled again, the client gets a token on its next request.
    expect((await tollgate("clients", "enable", "orders-svc")).code).toBe(0);
    expect((await request()).status).toBe(200);
  });

  it("rotates the secret: the new one works, and once it has, the old one stops when its grace is 0", async () => {
    const rotated = await tollgate("clients", "rotate-secret", "orders-svc", "--grace", "0", "--json");
    expect(rotated.code).toBe(0);
    const fresh = (JSON.parse(rotated.stdout) as { client_secret: string }).client_secret;
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "orders-svc" };
    const ok = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(fresh), new URLSearchParams(), insecure);
    expect(ok.status).toBe(200);
    const old = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(secret), new URLSearchParams(), insecure);
    expect(old.status).toBe(401);
    secret = fresh;
  });

  it("rotates with a grace: both secrets work until the old one's expiry, then only the new one", async () => {
    const rotated = await tollgate("clients", "rotate-secret", "orders-svc", "--grace", String(GRACE_SECONDS), "--json");
    expect(rotated.code).toBe(0);
    const body = JSON.parse(rotated.stdout) as {
      client_secret: string;
      secrets: { id: string; created_at: number; expires_at: number | null }[];
    };
    const oldId = secret.split(".")[0]!;
    const newId = body.client_secret.split(".")[0]!;
    const expiresAt = body.secrets.find((s) => s.id === oldId)!.expires_at!;
    // Relative to what the CLI reported, not to this test's clock: the grace starts with the new secret.
    expect(expiresAt).toBe(body.secrets.find((s) => s.id === newId)!.created_at + GRACE_SECONDS);
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "orders-svc" };
    const request = (s: string) =>
      oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(s), new URLSearchParams(), insecure);
    // Polls the old secret until it is refused: it works until expires_at, the refusal
    // cannot come before expires_at, and must come soon after it.
    let accepted = 0;
    for (;;) {
      const status = (await request(secret)).status;
      // The Worker's clock read falls between sending and this answer: a refusal means it was past expires_at.
      const answeredAt = Date.now();
      if (status === 401) {
        expect(answeredAt, "the old secret was refused before its expires_at").toBeGreaterThanOrEqual(expiresAt * 1000);
        break;
      }
      expect(status).toBe(200);
      accepted++;
      expect(Date.now(), "the old secret still worked long after its expires_at").toBeLessThan((expiresAt + 15) * 1000);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(accepted, `the CLI took longer than the ${GRACE_SECONDS} s grace`).toBeGreaterThan(0);
    expect((await request(body.client_secret)).status).toBe(200);
  });
});

describe("tollgate CLI", () => {
  it("lists and shows clients without any secret material", async () => {
    const list = await tollgate("clients", "list", "--json");
    expect(list.code).toBe(0);
    expect(list.stdout).toContain("orders-svc");
    // No hash and no secret (the record's token_endpoint_auth_method, client_secret_basic, is no secret).
    expect(list.stdout).not.toMatch(/pbkdf2|"client_secret"/);
    expect(list.stdout).toMatch(/"token_endpoint_auth_method": "client_secret_basic"/);
    const show = await tollgate("clients", "show", "orders-svc");
    expect(show.stdout).toMatch(/allowed_scopes\s+\["orders:read","orders:write"\]/);
  });

  it("explains bad input: unknown client, duplicate id, bad scope syntax, bad audience", async () => {
    const unknown = await tollgate("clients", "show", "nobody");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no client "nobody"');
    const duplicate = await tollgate("clients", "create", "orders-svc", "--scope", "x");
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain("already exists");
    const scope = await tollgate("clients", "create", "bad-scope", "--scope", 'a "b');
    expect(scope.code).toBe(1);
    expect(scope.stderr).toContain("RFC 6749 §3.3");
    const audience = await tollgate("clients", "create", "bad-aud", "--scope", "a", "--audience", "not a uri");
    expect(audience.code).toBe(2);
    expect(audience.stderr).toContain("--audience");
  });

  it("refuses to create a client named .. (a URL dot segment), yet shows and deletes one stored so before the rule", {
    timeout: 240_000,
  }, async () => {
    const created = await tollgate("clients", "create", "..", "--scope", "x");
    expect(created.code).toBe(2);
    expect(created.stderr).toContain("dot segment");
    // A record written by an older version, under an id the rule now refuses.
    const target = { remote: false, persistTo: stateDir };
    const { record } = await createClientRecord("legacy", { scope: "x" }, Math.floor(Date.now() / 1000));
    await kvPut(clientKey(".."), JSON.stringify({ ...record, client_id: ".." }), target);
    const show = await tollgate("clients", "show", "..");
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/client_id\s+\.\.\n/);
    expect((await tollgate("clients", "delete", "..")).code).toBe(0);
    expect(await kvGet(clientKey(".."), target)).toBeNull();
  });

  it("deletes a client, after which it cannot get tokens", async () => {
    expect((await tollgate("clients", "delete", "orders-svc")).code).toBe(0);
    const res = await fetch(`${worker.url}/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: `Basic ${btoa("orders-svc:x.y")}` },
      body: "grant_type=client_credentials",
    });
    expect(res.status).toBe(401);
  });

  it("generates a private ES256 JWK that the Worker accepts as SIGNING_KEY", async () => {
    const { stdout, code } = await tollgate("keys", "generate");
    expect(code).toBe(0);
    const jwk = JSON.parse(stdout) as Record<string, string>;
    expect(jwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
    expect(jwk.d).toBeTruthy();
    expect(jwk.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
