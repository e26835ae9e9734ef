/**
 * `tollgate doctor` (cli/doctor.ts): each check over small wrangler.toml fixtures read by wrangler's
 * own config reader, and one run of the real command on the repository's wrangler.toml.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { unstable_readConfig } from "wrangler";
import { afterAll, describe, expect, it } from "vitest";
import { diagnose, type Finding } from "../../cli/doctor.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-doctor-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A production environment that passes every check. */
const GOOD = `
name = "tollgate"
main = "src/index.ts"
compatibility_date = "2026-11-01"
workers_dev = false

[env.production]
routes = [{ pattern = "auth.acme.test", custom_domain = true }]

[[env.production.kv_namespaces]]
binding = "CLIENTS"
id = "4f1e0c9a2b3d4e5f60718293a4b5c6d7"

[[env.production.ratelimits]]
name = "TOKEN_IP_LIMITER"
namespace_id = "1001"
simple = { limit = 600, period = 60 }

[[env.production.ratelimits]]
name = "TOKEN_FAILURE_LIMITER"
namespace_id = "1002"
simple = { limit = 10, period = 60 }

[[env.production.ratelimits]]
name = "TOKEN_CLIENT_LIMITER"
namespace_id = "1003"
simple = { limit = 600, period = 60 }

[[env.production.ratelimits]]
name = "API_LIMITER"
namespace_id = "1004"
simple = { limit = 1200, period = 60 }

[env.production.secrets]
required = ["KEY_SEED", "API_ORIGIN_SECRET"]

[env.production.vars]
ISSUER = "https://auth.acme.test"
DEFAULT_AUDIENCE = "https://api.acme.test"
MAX_ACCESS_TOKEN_TTL = "3600"
ROTATION_PERIOD = "86400"

[[env.production.vars.GATEWAY_ROUTES]]
prefix = "/api"
origin = "https://api.internal.acme.test"
audience = "https://api.acme.test"
rate_limit = "API_LIMITER"
origin_auth = { header = "X-Origin-Auth", secret = "API_ORIGIN_SECRET" }
`;
const ALL_SECRETS = ["KEY_SEED", "API_ORIGIN_SECRET"];
let fixtures = 0;

/** diagnose() on `toml` for --env production, as the command runs it. */
function check(toml: string, secrets: string[] | undefined = ALL_SECRETS, env: string | undefined = "production"): Finding[] {
  const file = join(dir, `wrangler-${++fixtures}.toml`);
  writeFileSync(file, toml);
  const config = unstable_readConfig({ config: file, env });
  return diagnose({ config, env, file: "wrangler.toml", secrets, today: "2026-11-29" });
}

function only(findings: Finding[], level: Finding["level"]): string[] {
  return findings.filter((f) => f.level === level).map((f) => `${f.where}: ${f.message}`);
}

/** Exactly one error, at `where`, whose message matches `message`. */
function expectOneError(findings: Finding[], where: string, message: RegExp): void {
  const errors = findings.filter((f) => f.level === "error");
  expect(errors, JSON.stringify(findings, null, 1)).toHaveLength(1);
  expect(errors[0]!.where).toBe(where);
  expect(errors[0]!.message).toMatch(message);
}

describe("tollgate doctor's checks", () => {
  it("finds nothing wrong with a complete production environment", () => {
    expect(check(GOOD)).toEqual([]);
  });

  it("reports the placeholder KV namespace id and how to get a real one", () => {
    expectOneError(
      check(GOOD.replace("4f1e0c9a2b3d4e5f60718293a4b5c6d7", "00000000000000000000000000000000")),
      "wrangler.toml [[env.production.kv_namespaces]] id",
      /placeholder.*npx wrangler kv namespace create CLIENTS --env production/,
    );
  });

  it("reports an ISSUER that is not https, and one no custom domain serves", () => {
    expectOneError(
      check(GOOD.replace('ISSUER = "https://auth.acme.test"', 'ISSUER = "http://localhost:8787"')),
      "wrangler.toml [env.production.vars] ISSUER",
      /not https/,
    );
    expectOneError(
      check(GOOD.replace('pattern = "auth.acme.test"', 'pattern = "login.acme.test"')),
      "wrangler.toml [env.production] routes",
      /none serves ISSUER's host auth\.acme\.test/,
    );
    expectOneError(check(GOOD.replace(/^routes = .*$/m, "")), "wrangler.toml [env.production]", /no routes.*custom_domain = true/);
  });

  it("reports the shipped example route and its leftovers", () => {
    const example = `${GOOD.replace(/\[\[env\.production\.vars\.GATEWAY_ROUTES\]\][\s\S]*$/, "")}
[[env.production.vars.GATEWAY_ROUTES]]
prefix = "/orders"
origin = "https://orders.internal.example.com"
audience = "https://api.acme.test"
`;
    expectOneError(
      check(example.replace('"API_ORIGIN_SECRET"]', '"ORDERS_ORIGIN_SECRET"]')),
      'wrangler.toml [[env.production.vars.GATEWAY_ROUTES]] prefix = "/orders"',
      /shipped example route/,
    );
    expect(only(check(example.replace('"API_ORIGIN_SECRET"]', '"ORDERS_ORIGIN_SECRET"]')), "warning").join("\n")).toMatch(
      /"ORDERS_ORIGIN_SECRET" is named by no route's origin_auth \(the shipped example's\)/,
    );
  });

  it("reports required secrets that are not set, and skips that check when they cannot be listed", () => {
    expectOneError(
      check(GOOD, ["API_ORIGIN_SECRET"]),
      "secret KEY_SEED",
      /npx tollgate keys seed \| npx wrangler secret put KEY_SEED --env production/,
    );
    expectOneError(check(GOOD, ["KEY_SEED"]), "secret API_ORIGIN_SECRET", /npx wrangler secret put API_ORIGIN_SECRET --env production/);
    expect(check(GOOD, undefined)).toEqual([]);
  });

  it("warns about SIGNING_KEY without KEY_SEED, and refuses either as a plain var", () => {
    expect(only(check(GOOD, ["SIGNING_KEY", "API_ORIGIN_SECRET"]), "warning").join("\n")).toMatch(/only SIGNING_KEY is set/);
    expectOneError(
      check(GOOD.replace('ROTATION_PERIOD = "86400"', 'ROTATION_PERIOD = "86400"\nSIGNING_KEY = "{}"')),
      "wrangler.toml [env.production.vars] SIGNING_KEY",
      /is a secret: remove it from vars/,
    );
  });

  it("holds ROTATION_PERIOD to its minimum through the Worker's own parser", () => {
    expectOneError(
      check(GOOD.replace('ROTATION_PERIOD = "86400"', 'ROTATION_PERIOD = "3900"')),
      "wrangler.toml [env.production.vars] ROTATION_PERIOD",
      /must be at least .* = 3930 s/,
    );
  });

  it("reports a GATEWAY_ROUTES parse error with the Worker's message", () => {
    expectOneError(
      check(GOOD.replace('audience = "https://api.acme.test"\nrate_limit', "rate_limit")),
      "wrangler.toml [env.production.vars] GATEWAY_ROUTES",
      /^GATEWAY_ROUTES\[0\]\.audience: is required on a protected route/,
    );
  });

  it("checks EXTERNAL_ISSUERS with the Worker's parser, and routes that name its issuers", () => {
    const external = `${GOOD}issuers = ["self", "https://tenant.auth0.com/"]

[[env.production.vars.EXTERNAL_ISSUERS]]
issuer = "https://tenant.auth0.com/"
algorithms = ["RS256"]
token_type = "jwt"
scope_claim = "permissions"
client_id_claim = "azp"
`;
    expect(check(external)).toEqual([]);
    expectOneError(
      check(external.replace('scope_claim = "permissions"', 'scope_claim = "perms"')),
      "wrangler.toml [env.production.vars] EXTERNAL_ISSUERS",
      /^EXTERNAL_ISSUERS\[0\]\.scope_claim: must be one of/,
    );
    expectOneError(
      check(external.replace('"self", "https://tenant.auth0.com/"', '"self", "https://tenant.auth0.com"')),
      "wrangler.toml [env.production.vars] GATEWAY_ROUTES",
      /^GATEWAY_ROUTES\[0\]\.issuers\[1\]: "https:\/\/tenant\.auth0\.com" is not a configured issuer/,
    );
  });

  it("reports an origin that is not https", () => {
    expectOneError(
      check(GOOD.replace("https://api.internal.acme.test", "http://api.internal.acme.test")),
      'wrangler.toml [[env.production.vars.GATEWAY_ROUTES]] prefix = "/api" origin',
      /not https.*origin_auth secret/,
    );
  });

  it("reports a rate_limit binding a route names but nothing declares", () => {
    expectOneError(
      check(GOOD.replace('name = "API_LIMITER"', 'name = "OTHER_LIMITER"')),
      'wrangler.toml [[env.production.vars.GATEWAY_ROUTES]] prefix = "/api" rate_limit',
      /API_LIMITER is not declared/,
    );
  });

  it("warns about an origin_auth secret missing from [secrets] required", () => {
    const findings = check(GOOD.replace('required = ["KEY_SEED", "API_ORIGIN_SECRET"]', 'required = ["KEY_SEED"]'));
    expect(only(findings, "error")).toEqual([]);
    expect(only(findings, "warning")).toEqual([
      expect.stringMatching(/^wrangler.toml \[env.production.secrets\] required: add "API_ORIGIN_SECRET"/),
    ]);
  });

  it("reports a missing or future compatibility_date", () => {
    expectOneError(check(GOOD.replace("2026-11-01", "2027-01-01")), "wrangler.toml compatibility_date", /in the future/);
  });

  it("warns about workers_dev and preview_urls, a long MAX_ACCESS_TOKEN_TTL and a missing abuse limit", () => {
    const findings = check(
      GOOD.replace("[env.production]\n", "[env.production]\nworkers_dev = true\npreview_urls = true\n")
        .replace('MAX_ACCESS_TOKEN_TTL = "3600"', 'MAX_ACCESS_TOKEN_TTL = "7200"')
        .replace('name = "TOKEN_FAILURE_LIMITER"', 'name = "SOMETHING_ELSE"'),
    );
    expect(only(findings, "error")).toEqual([]);
    const warnings = only(findings, "warning").join("\n");
    expect(warnings).toMatch(/workers_dev: true/);
    expect(warnings).toMatch(/preview_urls: true/);
    expect(warnings).toMatch(/MAX_ACCESS_TOKEN_TTL: 7200 s/);
    expect(warnings).toMatch(/no TOKEN_FAILURE_LIMITER/);
  });
});

describe("npx tollgate doctor", () => {
  it("reports the repository's placeholder KV id and example route for --env production, notes that secrets could not be listed, and exits 1", async () => {
    // No wrangler login here (a fresh HOME, no API token) and no internet: the secrets check is skipped with a note.
    const home = mkdtempSync(join(tmpdir(), "tollgate-doctor-home-"));
    try {
      const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: home, CLOUDFLARE_API_TOKEN: "", WRANGLER_SEND_METRICS: "false" };
      const result = await promisify(execFile)(process.execPath, ["cli/tollgate.ts", "doctor", "--env", "production"], { env }).then(
        ({ stdout }) => ({ stdout, code: 0 }),
        (error: { stdout: string; code: number }) => ({ stdout: error.stdout, code: error.code }),
      );
      expect(result.code, result.stdout).toBe(1);
      expect(result.stdout).toMatch(/^error +wrangler\.toml \[\[env\.production\.kv_namespaces\]\] id: "0{32}" is the placeholder/m);
      expect(result.stdout).toMatch(
        /^error +wrangler\.toml \[\[env\.production\.vars\.GATEWAY_ROUTES\]\] prefix = "\/orders": is the shipped example route/m,
      );
      expect(result.stdout).toMatch(
        /^note +secrets: not checked \(not logged in or offline: .+\)\. Check by hand: `npx wrangler secret list --env production`/m,
      );
      expect(result.stdout).toMatch(/\d+ errors?, \d+ warnings?: fix the errors before deploying\.$/m);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
