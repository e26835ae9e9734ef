/**
 * The vars `npm start` checks and passes to wrangler dev (scripts/dev-vars.ts), read with wrangler's
 * own loader from a fixture project: --var over .dev.vars over wrangler.toml, and --port moving only
 * the shipped local URLs.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkDevVars, moveToPort, parseVarOption, readDevVars } from "../../scripts/dev-vars.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-dev-vars-"));
const config = join(dir, "wrangler.toml");
writeFileSync(
  config,
  `name = "fixture"
main = "index.ts"
compatibility_date = "2026-11-01"
[vars]
ISSUER = "http://localhost:8787"
DEFAULT_AUDIENCE = "http://localhost:8787/demo"
[[vars.GATEWAY_ROUTES]]
prefix = "/demo"
origin = "http://127.0.0.1:8788"
audience = "http://localhost:8787/demo"
[secrets]
required = ["KEY_SEED"]
`,
);
const devRoutes = [
  { prefix: "/demo", origin: "http://127.0.0.1:8788", audience: "http://localhost:8787/demo" },
  { prefix: "/mine", origin: "http://127.0.0.1:7000", audience: "https://mine.example" },
];
writeFileSync(join(dir, ".dev.vars"), `KEY_SEED=seed\nGATEWAY_ROUTES='${JSON.stringify(devRoutes)}'\nUNDECLARED=x\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("npm start's vars", () => {
  it("takes GATEWAY_ROUTES from .dev.vars over wrangler.toml, and only the names wrangler dev loads", () => {
    const { values, sources } = readDevVars(config, {});
    expect(JSON.parse(values.GATEWAY_ROUTES as string)).toEqual(devRoutes);
    expect(sources).toMatchObject({ GATEWAY_ROUTES: ".dev.vars", KEY_SEED: ".dev.vars", ISSUER: "wrangler.toml [vars]" });
    expect(values).not.toHaveProperty("UNDECLARED");
  });

  it("takes --var over .dev.vars", () => {
    const [name, value] = parseVarOption('GATEWAY_ROUTES:[{"prefix":"/v","origin":"http://127.0.0.1:1","public":true}]');
    const { values, sources } = readDevVars(config, { [name]: value });
    expect(values.GATEWAY_ROUTES).toBe(value);
    expect(sources.GATEWAY_ROUTES).toBe("--var");
  });

  it("moves the shipped issuer, default audience and /demo route to --port, from .dev.vars too, and keeps the developer's own values", () => {
    const { values } = readDevVars(config, {});
    const moved = moveToPort(values, 9000, "http://127.0.0.1:9001");
    expect(moved.ISSUER).toBe("http://localhost:9000");
    expect(moved.DEFAULT_AUDIENCE).toBe("http://localhost:9000/demo");
    expect(JSON.parse(moved.GATEWAY_ROUTES!)).toEqual([
      { prefix: "/demo", origin: "http://127.0.0.1:9001", audience: "http://localhost:9000/demo" },
      devRoutes[1],
    ]);
    expect(moveToPort({ ...values, ISSUER: "http://127.0.0.1:5555" }, 9000, "http://127.0.0.1:9001").ISSUER).toBe("http://127.0.0.1:5555");
    expect(checkDevVars({ ...values, ...moved })).toBeUndefined();
  });

  it("checks them with the Worker's own parser", () => {
    expect(
      checkDevVars({
        ISSUER: "http://localhost:8787",
        DEFAULT_AUDIENCE: "http://localhost:8787/demo",
        GATEWAY_ROUTES: '[{"prefix":"/x","origin":"https://o.example"}]',
      }),
    ).toBe("GATEWAY_ROUTES[0].audience: is required on a protected route (or set public = true)");
  });

  it("checks EXTERNAL_ISSUERS and the routes that name them, as the Worker will", () => {
    const vars = { ISSUER: "http://localhost:8787", DEFAULT_AUDIENCE: "http://localhost:8787/demo" };
    const issuer = { issuer: "http://127.0.0.1:9999/idp", algorithms: ["RS256"], token_type: "jwt" };
    const route = { prefix: "/x", origin: "https://o.example", audience: "https://api", issuers: ["self", issuer.issuer] };
    expect(checkDevVars({ ...vars, EXTERNAL_ISSUERS: JSON.stringify([issuer]), GATEWAY_ROUTES: JSON.stringify([route]) })).toBeUndefined();
    expect(checkDevVars({ ...vars, EXTERNAL_ISSUERS: JSON.stringify([{ ...issuer, token_type: "JWT" }]) })).toBe(
      'EXTERNAL_ISSUERS[0].token_type: must be one of "at+jwt", "jwt"',
    );
    expect(checkDevVars({ ...vars, GATEWAY_ROUTES: JSON.stringify([route]) })).toMatch(
      /^GATEWAY_ROUTES\[0\]\.issuers\[1\]: .* is not a configured issuer/,
    );
  });
});
