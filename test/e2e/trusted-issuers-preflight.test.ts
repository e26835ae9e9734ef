/**
 * TRUSTED_ISSUERS is checked before anything starts or deploys: `npm start`'s preflight
 * (checkDevVars) and `tollgate doctor` (diagnose) run the Worker's own parser and name the field.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { afterAll, describe, expect, it } from "vitest";
import { diagnose } from "../../cli/doctor.ts";
import { checkDevVars } from "../../scripts/dev-vars.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-trusted-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const local = { ISSUER: "http://localhost:8787", DEFAULT_AUDIENCE: "http://localhost:8787/demo" };

describe("TRUSTED_ISSUERS before start and deploy", () => {
  it("npm start's preflight accepts a loopback issuer locally and names the field of a bad entry", () => {
    expect(checkDevVars({ ...local, TRUSTED_ISSUERS: '[{"issuer":"http://127.0.0.1:9000/ci"}]' })).toBeUndefined();
    expect(checkDevVars({ ...local, TRUSTED_ISSUERS: '[{"issuer":"https://ci.example","algorithms":["HS256"]}]' })).toMatch(
      /^TRUSTED_ISSUERS\[0\]\.algorithms: "HS256" is not an asymmetric JWS algorithm/,
    );
  });

  it("tollgate doctor reports an http issuer for production with the Worker's message", () => {
    const toml = `${readFileSync(join(import.meta.dirname, "../../wrangler.toml"), "utf8")}
[[env.production.vars.TRUSTED_ISSUERS]]
issuer = "http://ci.example.com"
`;
    const file = join(dir, "wrangler.toml");
    writeFileSync(file, toml);
    const findings = diagnose({
      config: unstable_readConfig({ config: file, env: "production" }),
      env: "production",
      file: "wrangler.toml",
      secrets: undefined,
      today: "2026-11-29",
    });
    const finding = findings.find((f) => f.where.endsWith("TRUSTED_ISSUERS"));
    expect(finding, JSON.stringify(findings, null, 1)).toMatchObject({ level: "error" });
    expect(finding!.message).toMatch(/^TRUSTED_ISSUERS\[0\]\.issuer: must be an https URL/);
  });
});
