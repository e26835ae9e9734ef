import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createExecutionContext } from "cloudflare:test";
import app from "../src/index.ts";
import { fetchWithEnv, METADATA_URL, seedClient, TOKEN_URL, tokenRequestObject } from "./support/worker.ts";
import { parseConfig } from "../src/config.ts";
import { BASE_VARS as base, configError } from "./support/config.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("parseConfig", () => {
  it("parses the vars into a typed config, with lifetimes 300 and 3600 by default", () => {
    expect(parseConfig(base)).toMatchObject({
      issuer: base.ISSUER,
      defaultAudience: base.DEFAULT_AUDIENCE,
      accessTokenTtl: 300,
      maxAccessTokenTtl: 3600,
    });
  });

  it("reads PBKDF2_ITERATIONS, 25,000 when unset", () => {
    expect(parseConfig(base).pbkdf2Iterations).toBe(25_000);
    expect(parseConfig({ ...base, PBKDF2_ITERATIONS: "10000" }).pbkdf2Iterations).toBe(10_000);
    expect(parseConfig({ ...base, PBKDF2_ITERATIONS: "100000" }).pbkdf2Iterations).toBe(100_000);
  });

  it("reads ACCESS_TOKEN_TTL and MAX_ACCESS_TOKEN_TTL as whole seconds", () => {
    expect(parseConfig({ ...base, ACCESS_TOKEN_TTL: "60", MAX_ACCESS_TOKEN_TTL: "600" })).toMatchObject({
      accessTokenTtl: 60,
      maxAccessTokenTtl: 600,
    });
  });

  it("drops a trailing slash from ISSUER, so iss and token_endpoint are built one way", () => {
    expect(parseConfig({ ...base, ISSUER: "https://auth.example.com/" }).issuer).toBe("https://auth.example.com");
  });

  it("allows http on loopback hosts only, for development", () => {
    for (const issuer of ["http://localhost:8787", "http://127.0.0.1:8787", "http://[::1]:8787"]) {
      expect(parseConfig({ ...base, ISSUER: issuer }).issuer, issuer).toBe(issuer);
    }
  });

  describe("names the variable at fault", () => {
    for (const [what, vars, name] of [
      ["ISSUER missing", { DEFAULT_AUDIENCE: base.DEFAULT_AUDIENCE }, "ISSUER"],
      ["ISSUER blank", { ...base, ISSUER: "  " }, "ISSUER"],
      ["ISSUER not a URL", { ...base, ISSUER: "auth.example.com" }, "ISSUER"],
      ["ISSUER http on a non-loopback host", { ...base, ISSUER: "http://auth.example.com" }, "ISSUER"],
      ["ISSUER http on a host that merely starts with localhost", { ...base, ISSUER: "http://localhost.evil.example" }, "ISSUER"],
      ["ISSUER with another scheme", { ...base, ISSUER: "ftp://auth.example.com" }, "ISSUER"],
      ["ISSUER with a query", { ...base, ISSUER: "https://auth.example.com/?x=1" }, "ISSUER"],
      ["ISSUER with an empty query", { ...base, ISSUER: "https://auth.example.com/?" }, "ISSUER"],
      ["ISSUER with a fragment", { ...base, ISSUER: "https://auth.example.com/#x" }, "ISSUER"],
      ["DEFAULT_AUDIENCE missing", { ISSUER: base.ISSUER }, "DEFAULT_AUDIENCE"],
      ["DEFAULT_AUDIENCE not absolute", { ...base, DEFAULT_AUDIENCE: "/api" }, "DEFAULT_AUDIENCE"],
      ["DEFAULT_AUDIENCE with a fragment (RFC 8707 §2)", { ...base, DEFAULT_AUDIENCE: "https://api.example.com/#x" }, "DEFAULT_AUDIENCE"],
      ["ISSUER with user and password", { ...base, ISSUER: "https://user:pw@auth.example.com" }, "ISSUER"],
      ["ISSUER with a path (endpoints are served at the root)", { ...base, ISSUER: "https://auth.example.com/tenant" }, "ISSUER"],
      ["ACCESS_TOKEN_TTL not a number", { ...base, ACCESS_TOKEN_TTL: "five minutes" }, "ACCESS_TOKEN_TTL"],
      ["ACCESS_TOKEN_TTL zero", { ...base, ACCESS_TOKEN_TTL: "0" }, "ACCESS_TOKEN_TTL"],
      ["ACCESS_TOKEN_TTL fractional", { ...base, ACCESS_TOKEN_TTL: "1.5" }, "ACCESS_TOKEN_TTL"],
      ["ACCESS_TOKEN_TTL negative", { ...base, ACCESS_TOKEN_TTL: "-1" }, "ACCESS_TOKEN_TTL"],
      ["ACCESS_TOKEN_TTL over a day", { ...base, ACCESS_TOKEN_TTL: "86401" }, "ACCESS_TOKEN_TTL"],
      ["MAX_ACCESS_TOKEN_TTL not a number", { ...base, MAX_ACCESS_TOKEN_TTL: "1h" }, "MAX_ACCESS_TOKEN_TTL"],
      [
        "ACCESS_TOKEN_TTL above MAX_ACCESS_TOKEN_TTL",
        { ...base, ACCESS_TOKEN_TTL: "600", MAX_ACCESS_TOKEN_TTL: "300" },
        "ACCESS_TOKEN_TTL",
      ],
      ["PBKDF2_ITERATIONS over the 100,000 Cloudflare's runtime accepts", { ...base, PBKDF2_ITERATIONS: "100001" }, "PBKDF2_ITERATIONS"],
      ["PBKDF2_ITERATIONS under the minimum of 10,000", { ...base, PBKDF2_ITERATIONS: "9999" }, "PBKDF2_ITERATIONS"],
      ["PBKDF2_ITERATIONS zero", { ...base, PBKDF2_ITERATIONS: "0" }, "PBKDF2_ITERATIONS"],
      ["PBKDF2_ITERATIONS not a number", { ...base, PBKDF2_ITERATIONS: "a lot" }, "PBKDF2_ITERATIONS"],
      ["PBKDF2_ITERATIONS fractional", { ...base, PBKDF2_ITERATIONS: "25000.5" }, "PBKDF2_ITERATIONS"],
    ] as const) {
      it(what, () => {
        expect(configError(vars).message).toContain(name);
      });
    }
  });
});

describe("A configuration error in the Worker", () => {
  for (const [what, overrides] of [
    ["ISSUER uses http on a non-loopback host", { ISSUER: "http://auth.example.com" }],
    ["DEFAULT_AUDIENCE is missing", { DEFAULT_AUDIENCE: undefined }],
    ["ACCESS_TOKEN_TTL exceeds MAX_ACCESS_TOKEN_TTL", { ACCESS_TOKEN_TTL: "7200" }],
    ["PBKDF2_ITERATIONS exceeds 100,000", { PBKDF2_ITERATIONS: "600000" }],
  ] as const) {
    it(`answers /token with a JSON 500 server_error and no token when ${what}, and logs why`, async () => {
      const client = await seedClient();
      const logged = vi.spyOn(console, "log").mockImplementation(() => {});
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const res = await fetchWithEnv(tokenRequestObject(client), undefined, overrides);
      expect(res.status).toBe(500);
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      const text = await res.text();
      expect(JSON.parse(text).error).toBe("server_error");
      expect(text).not.toContain("access_token");
      expect(text).not.toMatch(/ISSUER|DEFAULT_AUDIENCE|TTL|PBKDF2|ConfigError/);
      expect(logged.mock.calls.flat().join("\n")).toMatch(/"event":"config_error"/);
      expect(errors).not.toHaveBeenCalled();
    });
  }

  it("logs a bad GATEWAY_ROUTES once per isolate, naming the field, and answers every request with a JSON 500 without a stack trace", async () => {
    const logged = vi.spyOn(console, "log").mockImplementation(() => {});
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    // One env object, as an isolate has: the config is parsed (and refused) once for all its requests.
    const isolateEnv = { ...env, GATEWAY_ROUTES: JSON.stringify([{ prefix: "/x", origin: "https://origin.example" }]) } as unknown as Env;
    for (const url of ["https://tollgate.test/x/1", METADATA_URL, "https://tollgate.test/x/2", TOKEN_URL]) {
      const res = await app.fetch(new Request(url, { method: url === TOKEN_URL ? "POST" : "GET" }), isolateEnv, createExecutionContext());
      expect(res.status, url).toBe(500);
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: "server_error", error_description: "internal error" });
      expect(text).not.toMatch(/GATEWAY_ROUTES|at |\.ts/);
    }
    const lines = logged.mock.calls.map((call) => String(call[0]));
    const configLines = lines.filter((line) => line.includes("GATEWAY_ROUTES"));
    expect(configLines).toHaveLength(1);
    expect(JSON.parse(configLines[0]!)).toMatchObject({
      event: "config_error",
      level: "error",
      message: "GATEWAY_ROUTES[0].audience: is required on a protected route (or set public = true)",
    });
    expect(lines.join("\n")).not.toContain("internal_error");
    expect(errors).not.toHaveBeenCalled();
  });

  it("answers the metadata with a JSON 500 too", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await fetchWithEnv(METADATA_URL, undefined, { ISSUER: "http://auth.example.com" });
    expect(res.status).toBe(500);
    expect(JSON.parse(await res.text()).error).toBe("server_error");
  });

  it("serves normally through the same direct call with the test's own vars", async () => {
    const res = await fetchWithEnv(METADATA_URL, undefined, {});
    expect(res.status).toBe(200);
    expect(((await res.json()) as { issuer: string }).issuer).toBe(env.ISSUER);
  });
});

describe("ROTATION_PERIOD (the KEY_SEED key schedule)", () => {
  const seeded = { ...base, KEY_SEED: "any-seed" };

  it("is a day by default and reads whole seconds", () => {
    expect(parseConfig(base).rotationPeriod).toBe(86_400);
    expect(parseConfig({ ...base, ROTATION_PERIOD: "604800" }).rotationPeriod).toBe(604_800);
  });

  it.each([["0"], ["-5"], ["1.5"], ["1d"], ["31536001"]])("refuses %s, naming ROTATION_PERIOD", (value) => {
    expect(configError({ ...base, ROTATION_PERIOD: value }).message).toContain("ROTATION_PERIOD");
  });

  it("must be at least MAX_ACCESS_TOKEN_TTL + JWKS max-age 300 + clock tolerance 30 under KEY_SEED", () => {
    const error = configError({ ...seeded, MAX_ACCESS_TOKEN_TTL: "3600", ROTATION_PERIOD: "3929" });
    expect(error.message).toContain("ROTATION_PERIOD");
    expect(error.message).toContain("MAX_ACCESS_TOKEN_TTL");
    expect(parseConfig({ ...seeded, MAX_ACCESS_TOKEN_TTL: "3600", ROTATION_PERIOD: "3930" }).rotationPeriod).toBe(3930);
    expect(configError({ ...seeded, MAX_ACCESS_TOKEN_TTL: "86400" }).message).toContain("ROTATION_PERIOD");
  });

  it("is not held to that without KEY_SEED (SIGNING_KEY alone does not use it)", () => {
    expect(parseConfig({ ...base, MAX_ACCESS_TOKEN_TTL: "86400" }).rotationPeriod).toBe(86_400);
    expect(parseConfig({ ...base, KEY_SEED: "", ROTATION_PERIOD: "60" }).rotationPeriod).toBe(60);
  });
});
