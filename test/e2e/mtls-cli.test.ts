/**
 * The CLI's RFC 8705 flags (cli/tollgate.ts, cli/certificate.ts) on a local state directory:
 * --auth-method tls_client_auth --tls-subject, and --auth-method self_signed_tls_client_auth
 * --cert-file, whose x5c hashes to the SHA-256 fingerprint Cloudflare would report for it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { runCLI } from "./support/cli.ts";

/** A self-signed P-256 certificate (openssl req -x509), and its SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` gives it. */
const CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgIUR/5FSNkjvkapVAuzClY11rMuFykwCgYIKoZIzj0EAwIw
IjEOMAwGA1UEAwwFYmF0Y2gxEDAOBgNVBAoMB0V4YW1wbGUwHhcNMjYxMTI5MTkz
NDQwWhcNMjYxMjI5MTkzNDQwWjAiMQ4wDAYDVQQDDAViYXRjaDEQMA4GA1UECgwH
RXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEYRCrYG46no4sIg/4od
LNzGMneRD1qXV6qvsXxxSTr3Lf9iFkt5acc3jq0qiUjMHQpmUf5Ln8uyjDyus/iP
MbqjUzBRMB0GA1UdDgQWBBSrGEA5DvJjxiezW07wKxKEpT84lTAfBgNVHSMEGDAW
gBSrGEA5DvJjxiezW07wKxKEpT84lTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0gAMEUCIBdmHwgMa287bu0BJf7tMs3DsFJNQO0WSR5M5BtJiW5qAiEApWgA
MRxNn33M8J2v3xFqOsVQvchlA9tMkqcJX9qQuCE=
-----END CERTIFICATE-----
`;
const FINGERPRINT = "a3714d19499b3344e912dfb2312f6cb8b07318c6dcae036be01d222f5cf25bbb";

const dir = mkdtempSync(join(tmpdir(), "tollgate-mtls-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tollgate clients create with the RFC 8705 methods", () => {
  it("--auth-method self_signed_tls_client_auth --cert-file: no secret, the certificate in jwks (x5c) with its public key", async () => {
    const certFile = join(dir, "client.pem");
    writeFileSync(certFile, CERTIFICATE);
    const state = join(dir, "state");
    const res = await runCLI(
      state,
      "clients",
      "create",
      "batch",
      "--scope",
      "orders:read",
      "--auth-method",
      "self_signed_tls_client_auth",
      "--cert-file",
      certFile,
      "--json",
    );
    expect(res.code, res.stderr).toBe(0);
    const record = JSON.parse(res.stdout) as {
      jwks: { keys: { kty: string; crv: string; x5c: string[] }[] };
      client_secret?: string;
      secrets: unknown[];
    };
    expect(record).not.toHaveProperty("client_secret");
    expect(record.secrets).toEqual([]);
    const [key] = record.jwks.keys;
    expect(key).toMatchObject({ kty: "EC", crv: "P-256" });
    expect(createHash("sha256").update(Buffer.from(key!.x5c[0]!, "base64")).digest("hex")).toBe(FINGERPRINT);
  });

  it("--auth-method tls_client_auth --tls-subject, --certificate-bound; refused without a subject or with a file that is no certificate", async () => {
    const state = join(dir, "state2");
    const res = await runCLI(
      state,
      "clients",
      "create",
      "tls",
      "--scope",
      "a",
      "--auth-method",
      "tls_client_auth",
      "--tls-subject",
      "CN=batch,O=Example",
      "--certificate-bound",
      "--json",
    );
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      token_endpoint_auth_method: "tls_client_auth",
      tls_client_auth_subject_dn: "CN=batch,O=Example",
      tls_client_certificate_bound_access_tokens: true,
      secrets: [],
    });
    const missing = await runCLI(state, "clients", "create", "tls2", "--scope", "a", "--auth-method", "tls_client_auth");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/tls_client_auth_subject_dn/);
    const notCert = join(dir, "not.pem");
    writeFileSync(notCert, "hello");
    const bad = await runCLI(
      state,
      "clients",
      "create",
      "self2",
      "--scope",
      "a",
      "--auth-method",
      "self_signed_tls_client_auth",
      "--cert-file",
      notCert,
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--cert-file/);
    const rotate = await runCLI(state, "clients", "rotate-secret", "tls");
    expect(rotate.stderr).toMatch(/has no secret/);
  });

  it("clients files: apply creates an mTLS client (no secret printed), and export → apply of mTLS clients is a no-op", async () => {
    const state = join(dir, "state3");
    const toml = join(dir, "clients.toml");
    writeFileSync(
      toml,
      [
        "[clients.orders-batch]",
        'allowed_scopes = ["orders:read"]',
        'token_endpoint_auth_method = "tls_client_auth"',
        'tls_client_auth_subject_dn = "CN=orders-batch,O=Example Corp,C=DE"',
        "tls_client_certificate_bound_access_tokens = true",
        "",
      ].join("\n"),
    );
    const applied = await runCLI(state, "apply", "-f", toml);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).not.toContain("client_secret");
    const certFile = join(dir, "client3.pem");
    writeFileSync(certFile, CERTIFICATE);
    const created = await runCLI(
      state,
      "clients",
      "create",
      "probe",
      "--scope",
      "a",
      "--auth-method",
      "self_signed_tls_client_auth",
      "--cert-file",
      certFile,
    );
    expect(created.code, created.stderr).toBe(0);
    const exported = await runCLI(state, "export");
    expect(exported.stdout).toContain('tls_client_auth_subject_dn = "CN=orders-batch,O=Example Corp,C=DE"');
    expect(exported.stdout).toContain("tls_client_certificate_bound_access_tokens = true");
    expect(exported.stdout).toMatch(/x5c = \["MII/);
    const exportedFile = join(dir, "exported.toml");
    writeFileSync(exportedFile, exported.stdout);
    const again = await runCLI(state, "apply", "-f", exportedFile, "--prune");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("No changes");
  });
});
