/**
 * mTLS under `wrangler dev` (what `npm start` runs): no client certificate reaches the Worker, so a
 * tls_client_auth client cannot authenticate. Miniflare takes the request's `cf` object from the
 * `MF-CF-Blob` header of whoever calls the local server; Tollgate ignores the certificate report of
 * a request carrying that header (docs/security.md item 37.6).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { runCLI } from "./support/cli.ts";

const SUBJECT = "CN=orders-batch,O=Example Corp,C=DE";
let worker: WorkerProcess;
let stateDir: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-mtls-"));
  worker = await startWorker({ persistTo: stateDir, vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()) } });
  const created = await runCLI(
    stateDir,
    "clients",
    "create",
    "batch",
    "--scope",
    "a",
    "--auth-method",
    "tls_client_auth",
    "--tls-subject",
    SUBJECT,
  );
  expect(created.code, created.stderr).toBe(0);
});

afterAll(async () => {
  await worker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

const tokenRequest = (headers: Record<string, string> = {}) =>
  fetch(`${worker.url}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
    body: "grant_type=client_credentials&client_id=batch",
  });

describe("mTLS under wrangler dev", () => {
  it("has no client certificate: a tls_client_auth client gets 401 invalid_client", async () => {
    const res = await tokenRequest();
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_client");
  });

  it("ignores a certificate report made up with Miniflare's MF-CF-Blob header (which sets request.cf locally)", async () => {
    const tlsClientAuth = {
      certPresented: "1",
      certVerified: "SUCCESS",
      certRevoked: "0",
      certSubjectDNRFC2253: SUBJECT,
      certFingerprintSHA256: "ab".repeat(32),
    };
    const res = await tokenRequest({ "MF-CF-Blob": JSON.stringify({ tlsClientAuth }) });
    expect(res.status).toBe(401);
  });
});
