/**
 * End to end: signing keys derived from KEY_SEED under `wrangler dev`, rotated now with the CLI while
 * the Worker runs. A token from before and one from after the switch both pass the gateway in front of
 * a real origin and jose's remote-JWKS verification, as a resource server elsewhere would check them.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import { runCLI, type CLIResult } from "./support/cli.ts";
import { waitFor } from "./support/wait.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startEchoOrigin, type EchoOrigin, type EchoRecord } from "../../scripts/echo-origin.ts";
import { deriveSigningKey } from "../../src/keys/derive.ts";
import { generateKeySeed } from "../../src/keys/new-key-pair.ts";

const run = promisify(execFile);
const AUDIENCE = "https://orders.example";
// The shortest period MAX_ACCESS_TOKEN_TTL 120 allows is 120 + 300 + 30 = 450 (src/config.ts).
const PERIOD = 450;
const TTL = 120;
const seedRaw = generateKeySeed();
const seed = Buffer.from(seedRaw, "base64url");
let worker: WorkerProcess;
let origin: EchoOrigin;
let stateDir: string;
let secret: string;

const tollgate = (...args: string[]): Promise<CLIResult> => runCLI(stateDir, ...args);

/** The kid the schedule gives generation `generation` at `time` (epoch seconds). */
async function kidAt(generation: number, time: number): Promise<string> {
  return (await deriveSigningKey(seed, generation, Math.floor(time / PERIOD))).kid;
}

async function mintToken(): Promise<string> {
  const res = await fetch(`${worker.url}/token`, {
    method: "POST",
    headers: { Authorization: `Basic ${btoa(`shop:${secret}`)}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** Through the gateway to the echo origin. */
async function callGateway(token: string): Promise<EchoRecord> {
  const res = await fetch(`${worker.url}/orders/${crypto.randomUUID()}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as EchoRecord;
}

/** As a resource server elsewhere: a fresh remote JWKS, so nothing is cached from before. */
async function verifyRemotely(token: string) {
  const jwks = createRemoteJWKSet(new URL(`${worker.url}/.well-known/jwks.json`));
  return jwtVerify(token, jwks, { issuer: worker.url, audience: AUDIENCE, typ: "at+jwt", algorithms: ["ES256"] });
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-rotation-"));
  origin = await startEchoOrigin();
  worker = await startWorker({
    persistTo: stateDir,
    vars: {
      KEY_SEED: seedRaw,
      // An empty SIGNING_KEY, so a developer's .dev.vars cannot add one (it would be generation 0).
      SIGNING_KEY: "",
      ROTATION_PERIOD: String(PERIOD),
      MAX_ACCESS_TOKEN_TTL: String(TTL),
      ACCESS_TOKEN_TTL: String(TTL),
      GATEWAY_ROUTES: JSON.stringify([{ prefix: "/orders", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"] }]),
    },
  });
  const created = await tollgate("clients", "create", "shop", "--scope", "orders:read", "--audience", AUDIENCE, "--json");
  expect(created.code).toBe(0);
  secret = (JSON.parse(created.stdout) as { client_secret: string }).client_secret;
});

afterAll(async () => {
  await worker?.stop();
  await origin?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("KEY_SEED keys, rotated now with the CLI while the Worker runs", () => {
  let before: string;
  let after: string;

  it("prints a KEY_SEED with `keys seed`", async () => {
    const { stdout, code } = await run(process.execPath, ["cli/tollgate.ts", "keys", "seed"]).then((r) => ({ ...r, code: 0 }));
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(stdout.trim(), "base64url")).toHaveLength(32);
  });

  it("signs with generation 0's key of the current epoch, which the JWKS publishes with the next one", async () => {
    before = await mintToken();
    const { iat } = decodeJwt(before);
    expect(decodeProtectedHeader(before).kid).toBe(await kidAt(0, iat!));
    const jwks = (await (await fetch(`${worker.url}/.well-known/jwks.json`)).json()) as { keys: Record<string, unknown>[] };
    const kids = jwks.keys.map((k) => k.kid);
    expect(kids).toContain(await kidAt(0, iat!));
    expect(kids).toContain(await kidAt(0, iat! + PERIOD));
    expect(JSON.stringify(jwks)).not.toMatch(/"d"/);
    await callGateway(before);
    await verifyRemotely(before);
  });

  it("switches to generation 1 after `keys rotate --in 3`; both tokens pass the gateway and jose", async () => {
    const rotated = await tollgate("keys", "rotate", "--in", "3", "--json");
    expect(rotated.code, rotated.stderr).toBe(0);
    const record = JSON.parse(rotated.stdout) as { generation: number; since: number };
    expect(record.generation).toBe(1);
    expect(record.since - Date.now() / 1000).toBeLessThanOrEqual(3);

    // The Worker sees the record within its 30 s cache; then every new token is generation 1's.
    // (An epoch boundary meanwhile changes generation 0's kid too: the test waits for generation 1's.)
    const switched = async () => {
      after = await mintToken();
      const { iat } = decodeJwt(after);
      if (decodeProtectedHeader(after).kid === (await kidAt(1, iat!))) return true;
      expect(decodeProtectedHeader(after).kid, "a kid of neither generation").toBe(await kidAt(0, iat!));
      return false;
    };
    await waitFor("the Worker to switch to generation 1", 45_000, switched, 1000);
    expect(decodeJwt(after).iat!).toBeGreaterThanOrEqual(record.since);
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);

    for (const token of [before, after]) {
      const seen = await callGateway(token);
      expect(seen.headers["x-tollgate-client-id"]).toBe("shop");
      const { protectedHeader, payload } = await verifyRemotely(token);
      expect(protectedHeader.kid).toBe(decodeProtectedHeader(token).kid);
      expect(payload.client_id).toBe("shop");
    }
  });

  it("refuses another rotation while generation 0 is still published for its tokens", async () => {
    const again = await tollgate("keys", "rotate", "--in", "0");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/generation 0 stays published until/);
  });
});
