/**
 * The CLI's --remote path against a fake Cloudflare REST API on loopback (test/e2e/support/fake-cloudflare-api.ts):
 * the requests it sends (auth header, paths, bodies, list cursors) and how it reads the answers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { validateClientRecord } from "../../src/clients/record.ts";
import { verifyClientSecret } from "../../src/clients/secret.ts";
import { runTollgate } from "./support/cli.ts";
import { startFakeCloudflareAPI, type FakeCloudflareAPI } from "./support/fake-cloudflare-api.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
const TOKEN = "test-api-token";
// wrangler.toml's [env.production] CLIENTS namespace id.
const NAMESPACE = "00000000000000000000000000000000";
const NS_PATH = `/client/v4/accounts/${ACCOUNT}/storage/kv/namespaces/${NAMESPACE}`;

let api: FakeCloudflareAPI;
let dir: string;

beforeAll(async () => {
  api = await startFakeCloudflareAPI({
    token: TOKEN,
    accounts: [{ id: ACCOUNT, name: "Test account" }],
    namespaceIds: [NAMESPACE],
    pageSize: 2,
  });
  dir = mkdtempSync(join(tmpdir(), "tollgate-remote-"));
});

afterAll(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  api.requests.length = 0;
});

const env = { CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_ACCOUNT_ID: ACCOUNT };
const remote = (args: string[], extraEnv: Record<string, string> = {}) =>
  runTollgate([...args, "--remote", "--env", "production"], { ...env, TOLLGATE_CLOUDFLARE_API_BASE: api.base, ...extraEnv });
const kv = () => api.namespaces.get(NAMESPACE)!;

describe("tollgate --remote through Cloudflare's REST API", () => {
  it("creates a client: reads the key (absent), then PUTs the record with the API token", async () => {
    const result = await remote(["clients", "create", "orders-svc", "--scope", "orders:read", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const { client_secret } = JSON.parse(result.stdout) as { client_secret: string };
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${NS_PATH}/values/client%3Aorders-svc`,
      `PUT ${NS_PATH}/values/client%3Aorders-svc`,
    ]);
    expect(api.requests.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    const put = api.requests[1]!;
    expect(put.contentType).toMatch(/^text\/plain/);
    const record = validateClientRecord(JSON.parse(put.body));
    expect(record.allowed_scopes).toEqual(["orders:read"]);
    expect(await verifyClientSecret(client_secret, record.secrets[0]!.hash)).toBe(true);
  });

  it("refuses a duplicate id after one GET, writing nothing", async () => {
    const result = await remote(["clients", "create", "orders-svc", "--scope", "orders:read"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('client "orders-svc" already exists');
    expect(api.requests.map((r) => r.method)).toEqual(["GET"]);
  });

  it("lists every client across pages, following the API's cursors", async () => {
    for (const id of ["a", "b", "c", "d"]) expect((await remote(["clients", "create", id, "--scope", "x"])).code).toBe(0);
    kv().set("keys:generation", JSON.stringify({ generation: 1, since: 0 }));
    api.requests.length = 0;
    const result = await remote(["clients", "list"]);
    expect(result.code, result.stderr).toBe(0);
    expect(
      result.stdout
        .trim()
        .split("\n")
        .map((l) => l.split("\t")[0]),
    ).toEqual(["a", "b", "c", "d", "orders-svc"]);
    const lists = api.requests.filter((r) => r.path === `${NS_PATH}/keys`);
    expect(lists.map((r) => r.query.get("prefix"))).toEqual(["client:", "client:", "client:"]);
    expect(lists[0]!.query.get("cursor")).toBeNull();
    expect(lists[1]!.query.get("cursor")).toBeTruthy();
  });

  it("applies a clients file and exports it back as a no-op plan", async () => {
    const path = join(dir, "clients.toml");
    writeFileSync(
      path,
      '[clients.orders-svc]\nallowed_scopes = ["orders:read", "orders:write"]\n\n[clients.new-svc]\nallowed_scopes = ["x"]\n',
    );
    const applied = await remote(["apply", "-f", path, "--prune"]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stderr).toContain("→ remote namespace (env production)");
    expect(applied.stderr).toContain("+ create new-svc");
    expect(applied.stderr).toContain("~ update orders-svc");
    expect(applied.stderr).toContain("- delete a");
    expect([...kv().keys()].sort()).toEqual(["client:new-svc", "client:orders-svc", "keys:generation"]);
    expect(api.requests.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual(
      ["a", "b", "c", "d"].map((id) => `${NS_PATH}/values/client%3A${id}`),
    );

    const exported = await remote(["export"]);
    writeFileSync(path, exported.stdout);
    api.requests.length = 0;
    const again = await remote(["apply", "-f", path, "--prune"]);
    expect(again.stderr).toContain("No changes");
    expect(api.requests.filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("rotates keys remotely: keys:generation read and written", async () => {
    kv().delete("keys:generation");
    const result = await remote(["keys", "rotate", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(kv().get("keys:generation")!)).toMatchObject({ generation: 1 });
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${NS_PATH}/values/keys%3Ageneration`,
      `PUT ${NS_PATH}/values/keys%3Ageneration`,
    ]);
  });

  it("deletes a client with one DELETE", async () => {
    const result = await remote(["clients", "delete", "new-svc"]);
    expect(result.code, result.stderr).toBe(0);
    expect(api.requests.map((r) => r.method)).toEqual(["GET", "DELETE"]);
    expect(kv().has("client:new-svc")).toBe(false);
  });

  it("finds the account when neither CLOUDFLARE_ACCOUNT_ID nor the config names one", async () => {
    const result = await remote(["clients", "show", "orders-svc"], { CLOUDFLARE_ACCOUNT_ID: "" });
    expect(result.code, result.stderr).toBe(0);
    expect(api.requests[0]!.path).toBe("/client/v4/accounts");
  });

  it("reports the API's own error message, and exits 1", async () => {
    const result = await remote(["clients", "show", "orders-svc"], { CLOUDFLARE_API_TOKEN: "wrong" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Authentication error (code 10000)");
  });

  it("uses wrangler's stored login when CLOUDFLARE_API_TOKEN is not set", async () => {
    const config = join(dir, "xdg");
    mkdirSync(join(config, ".wrangler", "config"), { recursive: true });
    writeFileSync(
      join(config, ".wrangler", "config", "default.toml"),
      `oauth_token = "${TOKEN}"\nrefresh_token = "unused"\nexpiration_time = "2099-01-01T00:00:00.000Z"\n`,
    );
    const result = await remote(["clients", "show", "orders-svc"], { CLOUDFLARE_API_TOKEN: "", HOME: dir, XDG_CONFIG_HOME: config });
    expect(result.code, result.stderr).toBe(0);
    expect(api.requests[0]!.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("never sends the token over plain HTTP off loopback", async () => {
    const result = await remote(["clients", "show", "orders-svc"], { TOLLGATE_CLOUDFLARE_API_BASE: "http://api.example.com/client/v4" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("must be https");
    expect(api.requests).toEqual([]);
  });
});
