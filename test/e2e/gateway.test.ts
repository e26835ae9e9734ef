/**
 * End to end: the gateway under `wrangler dev` in front of a real HTTP origin on a local port.
 * Tokens come from the Worker's own /token for a client made with the CLI.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startEchoOrigin, type EchoOrigin, type EchoRecord } from "../../scripts/echo-origin.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { createClientWithCLI } from "./support/cli.ts";

const AUDIENCE = "https://orders.example";
let worker: WorkerProcess;
let origin: EchoOrigin;
let stateDir: string;
let token: string;
let secret: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-gw-"));
  origin = await startEchoOrigin();
  const closedPort = await freePort(); // nothing listens here: the origin is down
  const routes = [
    { prefix: "/orders", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"], method_scopes: { POST: ["orders:write"] } },
    { prefix: "/slow", origin: origin.url, audience: AUDIENCE, timeout_ms: 500 },
    { prefix: "/ws", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"], websocket: true },
    { prefix: "/down", origin: `http://127.0.0.1:${closedPort}`, audience: AUDIENCE },
  ];
  worker = await startWorker({
    persistTo: stateDir,
    vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()), GATEWAY_ROUTES: JSON.stringify(routes) },
  });
  secret = await createClientWithCLI(stateDir, "shop", "orders:read orders:write", AUDIENCE);
  const res = await fetch(`${worker.url}/token`, {
    method: "POST",
    headers: { Authorization: `Basic ${btoa(`shop:${secret}`)}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
  });
  token = ((await res.json()) as { access_token: string }).access_token;
});

afterAll(async () => {
  await worker?.stop();
  await origin?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const auth = () => ({ Authorization: `Bearer ${token}` });

describe("gateway end to end", () => {
  it("refuses without a token and never contacts the origin", async () => {
    const before = origin.log.length;
    const res = await fetch(`${worker.url}/orders/1`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${worker.url}"`);
    expect(origin.log.length).toBe(before);
  });

  it("forwards an authorized request with the normalized path, identity headers and no Authorization", async () => {
    const res = await fetch(`${worker.url}/orders/%7Ea//b/./c?x=1&y=%2F`, {
      headers: { ...auth(), "X-Tollgate-Client-Id": "spoofed", "X-Forwarded-For": "6.6.6.6" },
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as EchoRecord;
    expect(seen.path).toBe("/orders/~a/b/c?x=1&y=%2F");
    expect(seen.headers["x-tollgate-client-id"]).toBe("shop");
    expect(seen.headers["x-tollgate-scope"]).toBe("orders:read orders:write");
    expect(seen.headers["x-tollgate-token-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["x-forwarded-for"]).not.toContain("6.6.6.6");
    expect(seen.rawHeaders.filter((h) => h.toLowerCase() === "x-tollgate-client-id")).toHaveLength(1);
  });

  it("streams a multi-megabyte request body to the origin intact", async () => {
    const size = 8 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 31) & 0xff;
    const res = await fetch(`${worker.url}/orders/upload`, {
      method: "POST",
      headers: { ...auth(), "Content-Type": "application/octet-stream" },
      body,
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as EchoRecord;
    expect(seen.body_bytes).toBe(size);
    expect(seen.body_sha256).toBe(createHash("sha256").update(body).digest("hex"));
  });

  it("streams a multi-megabyte response body back intact", async () => {
    const size = 16 * 1024 * 1024;
    const res = await fetch(`${worker.url}/orders/__big?bytes=${size}`, { headers: auth() });
    expect(res.status).toBe(200);
    const data = Buffer.from(await res.arrayBuffer());
    expect(data.length).toBe(size);
    expect(data.every((b) => b === 0x61)).toBe(true);
  });

  it("answers 502 JSON when the origin is unreachable", async () => {
    const res = await fetch(`${worker.url}/down/x`, { headers: auth() });
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: "bad_gateway", error_description: "the origin could not be reached" });
  });

  it("answers 504 JSON when the origin is slower than the route's timeout", async () => {
    const res = await fetch(`${worker.url}/slow/__slow?ms=3000`, { headers: auth() });
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({ error: "gateway_timeout", error_description: "the origin did not answer in time" });
  });

  it("answers 403 insufficient_scope naming the scopes a method needs, and 401 for a bad token", async () => {
    const narrow = await fetch(`${worker.url}/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "orders:read", client_id: "shop", client_secret: secret }),
    });
    const { access_token } = (await narrow.json()) as { access_token: string };
    const before = origin.log.length;
    const post = await fetch(`${worker.url}/orders/1`, {
      method: "POST",
      headers: { Authorization: `Bearer ${access_token}` },
      body: "{}",
    });
    expect(post.status).toBe(403);
    expect(post.headers.get("www-authenticate")).toBe(
      `Bearer realm="${worker.url}", error="insufficient_scope", error_description="the access token lacks a scope this request needs", scope="orders:read orders:write"`,
    );
    const bad = await fetch(`${worker.url}/orders/1`, { headers: { Authorization: "Bearer a.b.c" } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(origin.log.length).toBe(before);
    const get = await fetch(`${worker.url}/orders/1`, { headers: { Authorization: `Bearer ${access_token}` } });
    expect(get.status).toBe(200);
  });

  it("passes a WebSocket upgrade through on a route that allows it, after the token check", async () => {
    const { WebSocket } = await import("ws");
    const wsURL = `${worker.url.replace("http", "ws")}/ws/chat`;
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(wsURL);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
    });
    expect(refused).toBe(401);
    const reply = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(wsURL, { headers: auth() });
      ws.on("open", () => ws.send("ping"));
      ws.on("message", (data) => {
        resolve(data.toString());
        ws.close();
      });
      ws.on("error", reject);
    });
    expect(reply).toBe("shop: ping");
  });
});

describe("origin faults end to end", () => {
  it("ends the client's response with an error, not a hang, when the origin dies mid-body; the Worker keeps serving", async () => {
    const res = await fetch(`${worker.url}/orders/__reset`, { headers: auth(), signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(200);
    const outcome = await res.arrayBuffer().then(
      (body) => `complete:${body.byteLength}`,
      (error: Error) => `error:${error.name}`,
    );
    // Either an error or a short body: never the 1 MiB the origin promised, never a hang.
    expect(outcome).not.toBe("complete:1048576");
    expect(outcome).not.toBe("error:TimeoutError");
    const after = await fetch(`${worker.url}/orders/after-reset`, { headers: auth() });
    expect(after.status).toBe(200);
  });

  it("streams a slow body as it comes: the first chunk arrives before the origin has written the last", async () => {
    // Accept-Encoding identity: for clients that accept gzip, wrangler dev's local proxy compresses
    // text responses and so delivers them whole; the Worker itself streams either way.
    const res = await fetch(`${worker.url}/orders/__trickle?chunks=8&ms=500`, { headers: { ...auth(), "Accept-Encoding": "identity" } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now();
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(8);
    // Each line carries the time the origin (this process, same clock) wrote it. An order, not a
    // duration: a buffering proxy could deliver the first byte only after the last was written.
    const lastWrittenAt = Number(/ at (\d+)$/.exec(lines[7]!)![1]);
    expect(firstAt).toBeLessThan(lastWrittenAt);
  });
});
