/**
 * End to end: revocation (RFC 7009) and introspection (RFC 7662) with oauth4webapi against the
 * Worker under `wrangler dev`, and the gateway in front of a real origin refusing revoked tokens and
 * the tokens of a client the CLI disabled, within the status cache's window.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as oauth from "oauth4webapi";
import { runCLI } from "./support/cli.ts";
import { discover, insecure } from "./support/oauth.ts";
import { waitFor } from "./support/wait.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startEchoOrigin, type EchoOrigin } from "../../scripts/echo-origin.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { REVOCATION_CHECK_SECONDS } from "../../src/policy.ts";

const AUDIENCE = "https://orders.example";
/** The longest this suite waits for a refusal; README promises at most 40 s (30 s KV cache + 10 s isolate cache). */
const POLL_LIMIT_MS = 45_000;
/** Local KV has no edge cache: only the isolate's REVOCATION_CHECK_SECONDS remain, plus slack for a slow machine. */
const LOCAL_BOUND_MS = (REVOCATION_CHECK_SECONDS + 5) * 1000;

let worker: WorkerProcess;
let origin: EchoOrigin;
let stateDir: string;
const secrets: Record<string, string> = {};

/** The real `tollgate` CLI on the running Worker's local state; fails the test on a non-zero exit. */
async function tollgate(...args: string[]): Promise<string> {
  const { stdout, stderr, code } = await runCLI(stateDir, ...args);
  if (code !== 0) throw new Error(`tollgate ${args.join(" ")} exited ${code}: ${stderr}`);
  return stdout;
}

async function createClient(id: string, ...options: string[]): Promise<void> {
  const created = JSON.parse(await tollgate("clients", "create", id, ...options, "--json")) as {
    client_secret: string;
    introspect_any: boolean;
  };
  secrets[id] = created.client_secret;
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-lifecycle-"));
  origin = await startEchoOrigin();
  const routes = [{ prefix: "/orders", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"] }];
  worker = await startWorker({
    persistTo: stateDir,
    vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()), GATEWAY_ROUTES: JSON.stringify(routes) },
  });
  await createClient("shop", "--scope", "orders:read", "--audience", AUDIENCE);
  await createClient("resource-server", "--scope", "", "--introspect-any");
  await createClient("nosy", "--scope", "");
});

afterAll(async () => {
  await worker?.stop();
  await origin?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

async function tokenFor(id: string): Promise<string> {
  const as = await discover(worker.url);
  const client: oauth.Client = { client_id: id };
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(secrets[id]!),
    new URLSearchParams(),
    insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, client, response)).access_token;
}

async function introspectAs(id: string, token: string): Promise<oauth.IntrospectionResponse> {
  const as = await discover(worker.url);
  const client: oauth.Client = { client_id: id };
  const response = await oauth.introspectionRequest(as, client, oauth.ClientSecretBasic(secrets[id]!), token, insecure);
  return oauth.processIntrospectionResponse(as, client, response);
}

async function revokeAs(id: string, token: string): Promise<void> {
  const as = await discover(worker.url);
  const response = await oauth.revocationRequest(as, { client_id: id }, oauth.ClientSecretPost(secrets[id]!), token, insecure);
  await oauth.processRevocationResponse(response);
}

function gatewayGet(token: string, path = `/orders/${crypto.randomUUID()}`): Promise<Response> {
  return fetch(`${worker.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
}

/** Polls the gateway until it answers `status` for `token`; the milliseconds it took, or a failure after POLL_LIMIT_MS. */
function pollUntil(token: string, status: number): Promise<number> {
  return waitFor(`the gateway to answer ${status}`, POLL_LIMIT_MS, async () => {
    const res = await gatewayGet(token);
    await res.body?.cancel();
    return res.status === status;
  });
}

describe("revocation and introspection end to end", () => {
  it("announces both endpoints and their client authentication methods in its metadata", async () => {
    const as = await discover(worker.url);
    expect(as.revocation_endpoint).toBe(`${worker.url}/revoke`);
    expect(as.introspection_endpoint).toBe(`${worker.url}/introspect`);
    const methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"];
    expect(as.revocation_endpoint_auth_methods_supported).toEqual(methods);
    expect(as.introspection_endpoint_auth_methods_supported).toEqual(methods);
  });

  it("introspects with oauth4webapi: active to its owner and to an introspect_any client, inactive to another client", async () => {
    const token = await tokenFor("shop");
    const own = await introspectAs("shop", token);
    expect(own).toMatchObject({
      active: true,
      client_id: "shop",
      sub: "shop",
      scope: "orders:read",
      aud: AUDIENCE,
      iss: worker.url,
      token_type: "Bearer",
    });
    expect(typeof own.jti).toBe("string");
    expect(own.exp! - own.iat!).toBe(300);
    expect(await introspectAs("resource-server", token)).toMatchObject({ active: true, client_id: "shop", jti: own.jti });
    expect(await introspectAs("nosy", token)).toEqual({ active: false });
  });

  it("refuses a fresh token revoked before its first use at once: its status is looked up on first use", async () => {
    const token = await tokenFor("shop");
    await revokeAs("shop", token);
    const before = origin.log.length;
    const res = await gatewayGet(token);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(origin.log.length).toBe(before);
    expect(await introspectAs("shop", token)).toEqual({ active: false });
    expect(await introspectAs("resource-server", token)).toEqual({ active: false });
  });

  it("refuses a token in use within the cache window after /revoke", async () => {
    const token = await tokenFor("shop");
    expect((await gatewayGet(token)).status).toBe(200);
    await revokeAs("shop", token);
    expect(await pollUntil(token, 401)).toBeLessThanOrEqual(LOCAL_BOUND_MS);
    expect(await introspectAs("shop", token)).toEqual({ active: false });
  });

  it("refuses another client's revocation of a token with unauthorized_client, leaving it active", async () => {
    const token = await tokenFor("shop");
    const as = await discover(worker.url);
    const response = await oauth.revocationRequest(as, { client_id: "nosy" }, oauth.ClientSecretBasic(secrets.nosy!), token, insecure);
    const error = await oauth.processRevocationResponse(response).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect((error as oauth.ResponseBodyError).error).toBe("unauthorized_client");
    expect((await introspectAs("shop", token)).active).toBe(true);
    expect((await gatewayGet(token)).status).toBe(200);
  });
});

describe("disabling a client with the CLI end to end", () => {
  it("refuses its token at the gateway within the cache window; enabling again serves new tokens, never the old ones", async () => {
    const token = await tokenFor("shop");
    expect((await gatewayGet(token)).status).toBe(200);
    await tollgate("clients", "disable", "shop");
    expect(await pollUntil(token, 401)).toBeLessThanOrEqual(LOCAL_BOUND_MS);
    expect(await introspectAs("resource-server", token)).toEqual({ active: false });
    await tollgate("clients", "enable", "shop");
    // Disabling gave the record a new instance_id: the old token stays dead, a new one works.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await tokenFor("shop");
    expect(await pollUntil(fresh, 200)).toBeLessThanOrEqual(LOCAL_BOUND_MS);
    expect((await introspectAs("resource-server", fresh)).active).toBe(true);
    expect((await gatewayGet(token)).status).toBe(401);
    expect(await introspectAs("resource-server", token)).toEqual({ active: false });
  });
});
