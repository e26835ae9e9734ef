/**
 * The CLI's in-place access to the local KV state (cli/kv-files.ts) against Miniflare's own: what
 * either writes, the other reads, in the layout `wrangler dev` keeps. Fails when a wrangler or
 * Miniflare upgrade moves the database, changes its table or the blobs' place, so that the CLI's
 * writes would no longer reach the Worker (or the CLI would silently fall back to Miniflare).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openLocalFileStore, openMiniflareStore, type KVStore, type KVTarget } from "../../cli/kv.ts";
import { objectId } from "../../cli/kv-files.ts";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { runCLI, runTollgate } from "./support/cli.ts";

/** wrangler.toml's CLIENTS namespace id, which names the blobs' directory. */
const NAMESPACE_ID = "00000000000000000000000000000000";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-e2e-kv-files-"));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileStore(target: KVTarget): KVStore {
  const store = openLocalFileStore(target);
  if (!store) throw new Error("the CLI cannot open the local state in place: has Miniflare's KV layout changed?");
  return store;
}

async function using<T>(open: KVStore | Promise<KVStore>, action: (store: KVStore) => Promise<T>): Promise<T> {
  const store = await open;
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}

describe("the local KV state, in place and through Miniflare", () => {
  it("derives the database's name as workerd does (the file Miniflare made for this namespace)", () => {
    // Pinned from a state wrangler 4.156.2 made: workerd's idFromName in the namespace "miniflare-KVNamespaceObject".
    expect(objectId(NAMESPACE_ID)).toBe("1ce34801eb0d7520faecc9eb9d9dc1bb8372940b1d8312d25ac599f06bdb8780");
  });

  it("opens nothing in place before Miniflare has made the namespace (the CLI then starts Miniflare)", () => {
    expect(openLocalFileStore({ remote: false, persistTo: join(dir, "never-used") })).toBeUndefined();
  });

  it("reads what Miniflare wrote, and Miniflare reads what it wrote, overwrote and deleted", async () => {
    const target = { remote: false, persistTo: join(dir, "round-trip") };
    const written: Record<string, string> = {
      "client:a": JSON.stringify({ client_id: "a", name: "Grüße ✓ 𝄞" }),
      "client:b": JSON.stringify({ client_id: "b" }),
      "client:%2e": JSON.stringify({ client_id: "%2e" }),
      "keys:generation": JSON.stringify({ generation: 3, since: 1795627636 }),
      // Not under the "client:" prefix, though it starts alike.
      clientele: "x",
    };
    await using(openMiniflareStore(target), async (mf) => {
      for (const [key, value] of Object.entries(written)) await mf.put(key, value);
    });

    await using(fileStore(target), async (files) => {
      for (const [key, value] of Object.entries(written)) expect(await files.get(key), key).toBe(value);
      expect(await files.get("client:missing")).toBeNull();
      expect(await files.list("client:")).toEqual(["client:%2e", "client:a", "client:b"]);
      await files.put("client:a", JSON.stringify({ client_id: "a", name: "changed" }));
      await files.put("client:c", JSON.stringify({ client_id: "c", name: "new ✓" }));
      await files.delete("client:b");
      await files.delete("client:never-there");
    });
    // One blob per key: the replaced and the deleted values' blobs are gone.
    expect(readdirSync(join(target.persistTo, "v3", "kv", NAMESPACE_ID, "blobs"))).toHaveLength(5);

    await using(openMiniflareStore(target), async (mf) => {
      expect(await mf.get("client:a")).toBe(JSON.stringify({ client_id: "a", name: "changed" }));
      expect(await mf.get("client:c")).toBe(JSON.stringify({ client_id: "c", name: "new ✓" }));
      expect(await mf.get("client:b")).toBeNull();
      expect(await mf.get("keys:generation")).toBe(written["keys:generation"]);
      expect(await mf.list("client:")).toEqual(["client:%2e", "client:a", "client:c"]);
      await mf.put("client:c", "overwritten by Miniflare");
    });
    await using(fileStore(target), async (files) => expect(await files.get("client:c")).toBe("overwritten by Miniflare"));
  });

  it("works through Miniflare where Node has no node:sqlite, on the same state", async () => {
    const stateDir = join(dir, "no-sqlite");
    const withoutSqlite = { NODE_OPTIONS: "--no-experimental-sqlite" };
    const created = await runTollgate(["clients", "create", "old-node", "--scope", "a", "--persist-to", stateDir], withoutSqlite);
    expect(created.code, created.stderr).toBe(0);
    // In place now; node:sqlite's ExperimentalWarning is not the operator's business.
    expect(await runCLI(stateDir, "clients", "disable", "old-node")).toMatchObject({ code: 0, stderr: "" });
    const shown = await runTollgate(["clients", "show", "old-node", "--json", "--persist-to", stateDir], withoutSqlite);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ client_id: "old-node", disabled: true });
  });
});

describe("the CLI beside a running wrangler dev", () => {
  let worker: WorkerProcess;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = join(dir, "dev");
    worker = await startWorker({ persistTo: stateDir, vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()) } });
  });

  afterAll(async () => {
    await worker?.stop();
  });

  async function tollgate(...args: string[]): Promise<string> {
    const { stdout, stderr, code } = await runCLI(stateDir, ...args);
    if (code !== 0) throw new Error(`tollgate ${args.join(" ")} exited ${code}: ${stderr}`);
    return stdout;
  }

  async function token(id: string, secret: string, resource?: string): Promise<Response> {
    return fetch(`${worker.url}/token`, {
      method: "POST",
      headers: { Authorization: `Basic ${btoa(`${id}:${secret}`)}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: `grant_type=client_credentials${resource ? `&resource=${encodeURIComponent(resource)}` : ""}`,
    });
  }

  it("writes clients the Worker serves, and reads and deletes those the Worker wrote", { timeout: 120_000 }, async () => {
    const register = `${worker.url}/register`;
    const admin = JSON.parse(
      await tollgate("clients", "create", "admin", "--scope", "tollgate:admin", "--audience", register, "--json"),
    ) as { client_secret: string };
    // From here on the CLI works on the files in place while workerd has them open.
    await using(fileStore({ remote: false, persistTo: stateDir }), async () => {});

    const created = JSON.parse(await tollgate("clients", "create", "svc", "--scope", "orders:read", "--json")) as { client_secret: string };
    expect((await token("svc", created.client_secret)).status).toBe(200);

    const adminToken = (await (await token("admin", admin.client_secret, register)).json()) as { access_token: string };
    const registered = await fetch(register, {
      method: "POST",
      headers: { Authorization: `Bearer ${adminToken.access_token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: "from-api", scope: "orders:write" }),
    });
    expect(registered.status).toBe(201);
    expect(JSON.parse(await tollgate("clients", "show", "from-api", "--json"))).toMatchObject({ client_id: "from-api" });
    expect(
      (await tollgate("clients", "list"))
        .split("\n")
        .filter(Boolean)
        .map((line) => line.split("\t")[0]),
    ).toEqual(["admin", "from-api", "svc"]);

    await tollgate("clients", "delete", "from-api");
    const gone = await fetch(`${register}/from-api`, { headers: { Authorization: `Bearer ${adminToken.access_token}` } });
    expect(gone.status).toBe(401); // RFC 7592 §2.1: an unknown client
  });

  it("leaves a database SQLite finds intact, every row's value in place", async () => {
    await worker.stop();
    const { DatabaseSync } = process.getBuiltinModule("node:sqlite");
    const db = new DatabaseSync(join(stateDir, "v3", "kv", "miniflare-KVNamespaceObject", `${objectId(NAMESPACE_ID)}.sqlite`));
    try {
      expect(db.prepare("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
      const blobs = new Set(readdirSync(join(stateDir, "v3", "kv", NAMESPACE_ID, "blobs")));
      for (const row of db.prepare("SELECT key, blob_id FROM _mf_entries").all())
        expect(blobs.has(row.blob_id as string), String(row.key)).toBe(true);
    } finally {
      db.close();
    }
  });
});
