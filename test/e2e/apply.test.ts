/**
 * Clients as code end to end: `tollgate apply -f clients.toml` and `tollgate export` on a local state
 * directory (the one wrangler dev would use), and the CLI's flag hints.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../cli/kv.ts";
import { clientKey, validateClientRecord, type ClientRecord } from "../../src/clients/record.ts";
import { verifyClientSecret } from "../../src/clients/secret.ts";
import { runCLI } from "./support/cli.ts";

let dir: string;
let stateDir: string;
const tollgate = (...args: string[]) => runCLI(stateDir, ...args);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-apply-"));
  stateDir = join(dir, "state");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function stored(id: string): Promise<ClientRecord | null> {
  const kv = await openStore({ remote: false, persistTo: stateDir });
  try {
    const raw = await kv.get(clientKey(id));
    return raw === null ? null : validateClientRecord(JSON.parse(raw));
  } finally {
    await kv.close();
  }
}

const CLIENTS = `
[clients.orders-svc]
name = "Orders service"
allowed_scopes = ["orders:read", "orders:write"]
default_scopes = ["orders:read"]
allowed_audiences = ["https://api.example.com"]
token_ttl = 600

[clients.billing]
allowed_scopes = ["billing:read"]
`;
const CHANGED = CLIENTS.replace('allowed_scopes = ["billing:read"]', 'allowed_scopes = ["billing:read", "billing:write"]\ndisabled = true');

// Each test runs the CLI several times, each a Node and a workerd start: minutes on a loaded 2-core machine.
describe("tollgate apply", { timeout: 300_000 }, () => {
  it("prints a plan and writes nothing with --dry-run", async () => {
    const result = await tollgate("apply", "-f", file("clients.toml", CLIENTS), "--dry-run");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("+ create orders-svc");
    expect(result.stderr).toMatch(/allowed_scopes\s+\["orders:read","orders:write"\]/);
    expect(result.stderr).toMatch(/token_ttl\s+600/);
    expect(result.stderr).toContain("+ create billing");
    expect(result.stderr).toContain("2 to create, 0 to update, 0 to delete");
    expect(result.stderr).toContain("Dry run: nothing written");
    expect(result.stdout).toBe("");
    expect(await stored("orders-svc")).toBeNull();
  });

  it("creates the clients and prints each new secret once, as JSON on stdout", async () => {
    const result = await tollgate("apply", "-f", join(dir, "clients.toml"));
    expect(result.code, result.stderr).toBe(0);
    const secrets = JSON.parse(result.stdout) as { client_id: string; client_secret: string }[];
    expect(secrets.map((s) => s.client_id).sort()).toEqual(["billing", "orders-svc"]);
    const orders = (await stored("orders-svc"))!;
    expect(orders).toMatchObject({
      name: "Orders service",
      allowed_scopes: ["orders:read", "orders:write"],
      default_scopes: ["orders:read"],
      allowed_audiences: ["https://api.example.com"],
      token_ttl: 600,
      disabled: false,
    });
    // The printed secret is the one whose hash is stored.
    const secret = secrets.find((s) => s.client_id === "orders-svc")!.client_secret;
    expect(await verifyClientSecret(secret, orders.secrets[0]!.hash)).toBe(true);
    expect(result.stderr).not.toContain(secret);
  });

  it("answers a second apply of the same file with no changes, and writes nothing", async () => {
    const before = (await stored("orders-svc"))!;
    const result = await tollgate("apply", "-f", join(dir, "clients.toml"));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("No changes");
    expect(result.stdout).toBe("");
    expect(await stored("orders-svc")).toEqual(before);
  });

  it("shows field diffs for an update and disables a client, ending its tokens", async () => {
    const before = (await stored("billing"))!;
    const result = await tollgate("apply", "-f", file("clients.toml", CHANGED));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("~ update billing");
    expect(result.stderr).toMatch(/allowed_scopes\s+\["billing:read"\] → \["billing:read","billing:write"\]/);
    expect(result.stderr).toMatch(/disabled\s+false → true/);
    expect(result.stderr).toContain("0 to create, 1 to update, 0 to delete");
    const after = (await stored("billing"))!;
    expect(after.disabled).toBe(true);
    expect(after.allowed_scopes).toEqual(["billing:read", "billing:write"]);
    expect(after.tokens_not_before).toBeGreaterThan(before.tokens_not_before);
    expect(after.secrets).toEqual(before.secrets);
  });

  it("leaves clients missing from the file alone, and deletes them with --prune", async () => {
    expect((await tollgate("clients", "create", "legacy", "--scope", "x")).code).toBe(0);
    const kept = await tollgate("apply", "-f", join(dir, "clients.toml"));
    expect(kept.stderr).toContain("No changes");
    expect(kept.stderr).toContain("not in the file, left as they are: legacy");
    expect(await stored("legacy")).not.toBeNull();

    const planned = await tollgate("apply", "-f", join(dir, "clients.toml"), "--prune", "--dry-run");
    expect(planned.stderr).toContain("- delete legacy");
    expect(await stored("legacy")).not.toBeNull();
    const pruned = await tollgate("apply", "-f", join(dir, "clients.toml"), "--prune");
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stderr).toContain("0 to create, 0 to update, 1 to delete");
    expect(await stored("legacy")).toBeNull();
  });

  it("writes new secrets to --secrets-out with mode 0600, and refuses an existing file before any change", async () => {
    const path = file("more.toml", `${CHANGED}\n[clients.reports]\nallowed_scopes = []\n`);
    const out = join(dir, "secrets.json");
    const result = await tollgate("apply", "-f", path, "--secrets-out", out);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const [secret] = JSON.parse(readFileSync(out, "utf8")) as { client_id: string; client_secret: string }[];
    expect(secret!.client_id).toBe("reports");
    expect(await verifyClientSecret(secret!.client_secret, (await stored("reports"))!.secrets[0]!.hash)).toBe(true);

    const again = await tollgate(
      "apply",
      "-f",
      file("again.toml", `${CHANGED}\n[clients.reports]\nallowed_scopes = []\n[clients.audit]\nallowed_scopes = []\n`),
      "--secrets-out",
      out,
    );
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--secrets-out ${out} exists`);
    expect(await stored("audit")).toBeNull();
  });

  it("exports the registry in the same format, without hashes, and export → apply is a no-op", async () => {
    const exported = await tollgate("export");
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).not.toMatch(/pbkdf2|hash|secrets? *=/);
    expect(exported.stdout).toContain("[clients.orders-svc]");
    expect(exported.stdout).toContain('default_scopes = ["orders:read"]');
    expect(exported.stdout).toContain("disabled = true");
    const before = await Promise.all(["orders-svc", "billing", "reports"].map(stored));
    const result = await tollgate("apply", "-f", file("exported.toml", exported.stdout), "--prune");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("No changes");
    expect(await Promise.all(["orders-svc", "billing", "reports"].map(stored))).toEqual(before);
  });

  it("names the file, the client and the field in every error, before touching storage", async () => {
    const cases: [string, string[]][] = [
      ['[clients.svc]\nallowed_scopes = ["a"]\ndefault_scopes = ["b"]\n', ['client "svc"', "default_scopes", "b is not in allowed_scopes"]],
      ['[clients.svc]\nscopes = ["a"]\n', ['client "svc"', 'unknown field "scopes"']],
      ['[clients.svc]\nallowed_scopes = ["a b"]\n', ['client "svc"', "allowed_scopes", '"a b" is not a scope token']],
      ['[clients.svc]\nallowed_scopes = ["a"]\ntoken_ttl = 100000\n', ['client "svc"', "token_ttl"]],
      ['[clients.svc]\nallowed_scopes = ["a"]\nallowed_audiences = ["not a uri"]\n', ['client "svc"', "allowed_audiences"]],
      ['[clients.svc]\nallowed_scopes = ["a"]\nclient_secret = "x"\n', ['client "svc"', "client_secret", "never go in a clients file"]],
      ['[clients.svc]\nname = "x"\n', ['client "svc"', "allowed_scopes: required"]],
      ['[clients.svc]\nallowed_scopes = ["a"\n', [":3:"]],
    ];
    for (const [text, expected] of cases) {
      const path = file("bad.toml", text);
      const fresh = join(dir, "untouched");
      const result = await runCLI(fresh, "apply", "-f", path);
      expect(result.code, text).toBe(1);
      for (const part of [path, ...expected]) expect(result.stderr, text).toContain(part);
      expect(existsSync(fresh), "storage was opened").toBe(false);
    }
  });
});

describe("private_key_jwt clients from the CLI and in clients files", { timeout: 300_000 }, () => {
  it("creates one with --auth-method private_key_jwt --jwks-file, prints no secret, refuses a private key; export → apply is a no-op", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keys = file("keys.json", JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "k1" }] }));
    const created = await tollgate(
      "clients",
      "create",
      "signer",
      "--scope",
      "orders:read",
      "--auth-method",
      "private_key_jwt",
      "--jwks-file",
      keys,
      "--json",
    );
    expect(created.code, created.stderr).toBe(0);
    const shown = JSON.parse(created.stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({ client_id: "signer", token_endpoint_auth_method: "private_key_jwt", secrets: [] });
    expect(shown).not.toHaveProperty("client_secret");
    expect((await stored("signer"))?.jwks?.keys[0]?.kid).toBe("k1");
    const leaked = file("leaked.json", JSON.stringify({ keys: [{ ...privateKey.export({ format: "jwk" }), kid: "k2" }] }));
    const refused = await tollgate("clients", "create", "leaky", "--scope", "a", "--auth-method", "private_key_jwt", "--jwks-file", leaked);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/private member "d"/);
    const rotate = await tollgate("clients", "rotate-secret", "signer");
    expect(rotate.stderr).toMatch(/no secret/);
    const exported = await tollgate("export");
    expect(exported.stdout).toContain('token_endpoint_auth_method = "private_key_jwt"');
    expect(exported.stdout).toMatch(/jwks = \{ keys = \[\{ kty = "EC", kid = "k1"/);
    const again = await tollgate("apply", "-f", file("exported.toml", exported.stdout));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("No changes");
  });
});

describe("CLI flag hints", () => {
  it("suggests the option an unknown one most likely meant", async () => {
    const result = await tollgate("clients", "create", "x", "--scopes", "a");
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option --scopes: did you mean --scope?");
  });

  it("warns that a comma does not separate scopes", async () => {
    const result = await tollgate("clients", "create", "comma", "--scope", "a,b", "--json");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('warning: --scope "a,b" is one scope token containing a comma');
    expect(result.stderr).toContain('(--scope "a b")');
    expect(JSON.parse(result.stdout).allowed_scopes).toEqual(["a,b"]);
  });
});
