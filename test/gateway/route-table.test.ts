/**
 * GATEWAY_ROUTES (src/gateway/route-table.ts): parsing that names the field at fault, whole-segment
 * prefix matching, and docs/security.md item 13: only configuration chooses the origin, never the
 * request's Host, X-Forwarded-Host or target.
 */
import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { expectJSONError } from "../support/worker.ts";
import app from "../../src/index.ts";
import { findRoute, matchesPrefix, parseGatewayRoutes, requiredScopes, RouteConfigError } from "../../src/gateway/route-table.ts";
import {
  expectBearerError,
  expectOriginNotContacted,
  expectProxied,
  gatewayFetch,
  marker,
  originRequestsWith,
  rawHeaderValues,
  withBearer,
} from "../support/gateway.ts";
import { AUDIENCE, mintToken } from "../support/tokens.ts";

const ORIGIN = "https://origin.example";
const route = (fields: Record<string, unknown> = {}) => ({ prefix: "/api", origin: ORIGIN, audience: AUDIENCE, ...fields });

/** parseGatewayRoutes must refuse `routes`, with a message starting with `field`. */
function expectRefused(routes: unknown, field: string, detail?: RegExp): void {
  let error: unknown;
  try {
    parseGatewayRoutes(routes);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(RouteConfigError);
  const message = (error as Error).message;
  expect(message.startsWith(`${field}:`), `message ${JSON.stringify(message)} does not name ${field}`).toBe(true);
  if (detail) expect(message).toMatch(detail);
}

/** The Worker's fetch with this env's bindings overridden (a misconfiguration). */
function fetchWithEnv(url: string, init: RequestInit, overrides: Record<string, unknown>): Promise<Response> {
  return Promise.resolve(app.fetch(new Request(url, init), { ...env, ...overrides } as Env, createExecutionContext()));
}

describe("parseGatewayRoutes: valid configurations", () => {
  it("parses a route with every field, from a JSON string or an array (TOML)", () => {
    const full = {
      prefix: "/orders/",
      host: "API.Example.com",
      origin: "https://orders.internal.example:8443/v1",
      audience: AUDIENCE,
      scopes: ["orders:read"],
      method_scopes: { POST: ["orders:write"] },
      strip_prefix: true,
      timeout_ms: 1500,
      keep_authorization: true,
      websocket: true,
      origin_auth: { header: "X-Origin-Auth", secret: "ORIGIN_SECRET" },
    };
    for (const raw of [[full], JSON.stringify([full])]) {
      const [parsed] = parseGatewayRoutes(raw);
      expect(parsed).toMatchObject({
        prefix: "/orders",
        host: "api.example.com",
        service: undefined,
        public: false,
        audience: AUDIENCE,
        scopes: ["orders:read"],
        methodScopes: { POST: ["orders:write"] },
        stripPrefix: true,
        timeoutMs: 1500,
        keepAuthorization: true,
        websocket: true,
        originAuth: { header: "X-Origin-Auth", secret: "ORIGIN_SECRET" },
      });
      expect(parsed!.origin!.href).toBe("https://orders.internal.example:8443/v1");
    }
  });

  it("defaults: protected, 30 s timeout, no Authorization forwarding, no prefix stripping", () => {
    expect(parseGatewayRoutes([route()])[0]).toMatchObject({
      public: false,
      timeoutMs: 30_000,
      keepAuthorization: false,
      stripPrefix: false,
      websocket: false,
      scopes: [],
      methodScopes: {},
    });
  });

  it.each([undefined, null, ""])("reads %j as no routes", (raw) => {
    expect(parseGatewayRoutes(raw)).toEqual([]);
  });

  it("orders routes longest prefix first, host-bound before any-host", () => {
    const parsed = parseGatewayRoutes([
      route({ prefix: "/a" }),
      route({ prefix: "/a/b/c" }),
      route({ prefix: "/a/b" }),
      route({ prefix: "/a", host: "h.example" }),
    ]);
    expect(parsed.map((r) => `${r.host ?? "*"} ${r.prefix}`)).toEqual(["* /a/b/c", "* /a/b", "h.example /a", "* /a"]);
  });

  it("accepts a public route without audience, and a /tokens prefix that only looks like /token", () => {
    expect(parseGatewayRoutes([{ prefix: "/tokens", origin: ORIGIN, public: true }])[0]).toMatchObject({
      prefix: "/tokens",
      public: true,
      audience: undefined,
    });
  });
});

describe("parseGatewayRoutes: every error names the field", () => {
  it("refuses a string that is not JSON, and a value that is not an array", () => {
    expectRefused("[{", "GATEWAY_ROUTES", /not JSON/);
    expectRefused({ prefix: "/api" }, "GATEWAY_ROUTES", /array/);
    expectRefused("{}", "GATEWAY_ROUTES", /array/);
    expectRefused(["/api"], "GATEWAY_ROUTES[0]", /table/);
    expectRefused([null], "GATEWAY_ROUTES[0]", /table/);
  });

  it.each(["scope", "audiences", "Prefix", "strip-prefix", "public_route", "__proto__x"])("refuses the unknown field %j", (field) => {
    expectRefused([route({ [field]: ["x"] })], `GATEWAY_ROUTES[0].${field}`, /not a route field/);
  });

  it("refuses a protected route without audience, naming audience", () => {
    expectRefused([{ prefix: "/api", origin: ORIGIN }], "GATEWAY_ROUTES[0].audience", /required/);
    expectRefused([route({ audience: "" })], "GATEWAY_ROUTES[0].audience");
    expectRefused([route({ audience: ["a"] })], "GATEWAY_ROUTES[0].audience");
  });

  it("refuses a route with both origin and service, or neither", () => {
    expectRefused([route({ service: "ECHO_SERVICE" })], "GATEWAY_ROUTES[0]", /origin or service/);
    expectRefused([{ prefix: "/api", audience: AUDIENCE }], "GATEWAY_ROUTES[0]", /origin or service/);
  });

  it.each([
    "ftp://origin.example",
    "not a url",
    "/relative",
    "https://user:pass@origin.example",
    "https://origin.example/?q=1",
    "https://origin.example/#f",
    42,
  ])("refuses origin %j", (origin) => {
    expectRefused([route({ origin })], "GATEWAY_ROUTES[0].origin");
  });

  it.each(["", "1BINDING", "MY-SERVICE", 7])("refuses service %j", (service) => {
    expectRefused([{ prefix: "/api", service, audience: AUDIENCE }], "GATEWAY_ROUTES[0].service");
  });

  it.each([
    "/token",
    "/token/",
    "/token/x",
    "/revoke",
    "/revoke/x",
    "/introspect",
    "/introspect/",
    "/.well-known",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
  ])("refuses the prefix %j, which overlaps a path Tollgate serves", (prefix) => {
    expectRefused([route({ prefix })], "GATEWAY_ROUTES[0].prefix", /overlaps/);
  });

  it.each(["api", "", "/api?x=1", "/api#x", "/api/../admin", "/api/./x", "/api//x", "//api", "/api%2fx", "/api;x", "/api\\x", "/api x", 5])(
    "refuses the prefix %j, which is not a plain normalized path",
    (prefix) => {
      expectRefused([route({ prefix })], "GATEWAY_ROUTES[0].prefix");
    },
  );

  it.each([
    ["a string", "orders:read"],
    ["a token with a space", ["orders read"]],
    ["an empty token", [""]],
    ["a token with a quote", ['orders"read']],
    ["a token with a backslash", ["orders\\read"]],
    ["a number", [1]],
  ])("refuses scopes as %s", (_, scopes) => {
    expectRefused([route({ scopes })], "GATEWAY_ROUTES[0].scopes", /scope/);
  });

  it("refuses method_scopes with an unknown method or bad scopes, naming the method", () => {
    expectRefused([route({ method_scopes: { FETCH: ["x"] } })], "GATEWAY_ROUTES[0].method_scopes.FETCH");
    expectRefused([route({ method_scopes: { post: ["x"] } })], "GATEWAY_ROUTES[0].method_scopes.post");
    expectRefused([route({ method_scopes: { POST: "x" } })], "GATEWAY_ROUTES[0].method_scopes.POST");
    expectRefused([route({ method_scopes: [["POST", ["x"]]] })], "GATEWAY_ROUTES[0].method_scopes");
  });

  it.each([0, -1, 1.5, "1000", 300_001, Number.NaN, null])("refuses timeout_ms %j", (timeout_ms) => {
    expectRefused([route({ timeout_ms })], "GATEWAY_ROUTES[0].timeout_ms");
  });

  it("refuses a repeated prefix, also when the two spell it differently", () => {
    expectRefused([route(), route({ origin: "https://other.example" })], "GATEWAY_ROUTES[1]", /repeats prefix \/api/);
    expectRefused([route(), route({ prefix: "/api/" })], "GATEWAY_ROUTES[1]", /repeats prefix \/api/);
    expectRefused([route({ host: "h.example" }), route({ host: "H.example" })], "GATEWAY_ROUTES[1]", /repeats prefix \/api on h\.example/);
    // The same prefix on another host is a different route.
    expect(parseGatewayRoutes([route(), route({ host: "h.example" })])).toHaveLength(2);
  });

  it("refuses a host with a port or a scheme", () => {
    expectRefused([route({ host: "h.example:443" })], "GATEWAY_ROUTES[0].host");
    expectRefused([route({ host: "https://h.example" })], "GATEWAY_ROUTES[0].host");
  });

  it("refuses a public route that also names an audience or scopes", () => {
    expectRefused([{ prefix: "/p", origin: ORIGIN, public: true, audience: AUDIENCE }], "GATEWAY_ROUTES[0]", /public/);
    expectRefused([{ prefix: "/p", origin: ORIGIN, public: true, scopes: ["a"] }], "GATEWAY_ROUTES[0]", /public/);
  });

  it.each([
    ["public", "yes"],
    ["strip_prefix", 1],
    ["keep_authorization", "true"],
    ["websocket", null],
  ])("refuses a non-boolean %s", (field, value) => {
    expectRefused([route({ [field]: value })], `GATEWAY_ROUTES[0].${field}`, /true or false/);
  });

  it("refuses a malformed origin_auth, naming it", () => {
    expectRefused([route({ origin_auth: "X-Origin-Auth" })], "GATEWAY_ROUTES[0].origin_auth");
    expectRefused([route({ origin_auth: { header: "X Origin", secret: "S" } })], "GATEWAY_ROUTES[0].origin_auth");
    expectRefused([route({ origin_auth: { header: "X-Origin-Auth", secret: "not-a-name" } })], "GATEWAY_ROUTES[0].origin_auth");
    expectRefused(
      [route({ origin_auth: { header: "X-Origin-Auth", secret: "S", value: "inline" } })],
      "GATEWAY_ROUTES[0].origin_auth.value",
    );
  });

  it("names the index of the faulty route", () => {
    expectRefused([route(), route({ prefix: "/b", timeout_ms: 0 })], "GATEWAY_ROUTES[1].timeout_ms");
  });
});

describe("matchesPrefix, findRoute, requiredScopes", () => {
  it.each([
    ["/api", "/api", true],
    ["/api/", "/api", true],
    ["/api/x/y", "/api", true],
    ["/apix", "/api", false],
    ["/api-admin", "/api", false],
    ["/ap", "/api", false],
    ["/API", "/api", false],
    ["/", "/", true],
    ["/anything", "/", true],
    ["/a/b", "/a/b", true],
    ["/a/bc", "/a/b", false],
  ])("matchesPrefix(%j, %j) is %s", (path, prefix, expected) => {
    expect(matchesPrefix(path, prefix)).toBe(expected);
  });

  const routes = parseGatewayRoutes([
    route({ prefix: "/api", scopes: ["r"], method_scopes: { POST: ["w", "r"] } }),
    route({ prefix: "/api/admin", scopes: ["admin"] }),
    route({ prefix: "/api", host: "internal.example", scopes: ["internal"] }),
  ]);

  it("findRoute takes the longest prefix, and a host-bound route only on its host", () => {
    expect(findRoute(routes, "public.example", "/api/admin/x")?.scopes).toEqual(["admin"]);
    expect(findRoute(routes, "public.example", "/api/x")?.scopes).toEqual(["r"]);
    expect(findRoute(routes, "internal.example", "/api/x")?.scopes).toEqual(["internal"]);
    expect(findRoute(routes, "public.example", "/apix")).toBeUndefined();
  });

  it("requiredScopes joins the route's and the method's scopes without repeats", () => {
    const api = findRoute(routes, "public.example", "/api")!;
    expect(requiredScopes(api, "GET")).toEqual(["r"]);
    expect(requiredScopes(api, "POST")).toEqual(["r", "w"]);
    expect(requiredScopes(api, "post")).toEqual(["r"]);
  });
});

describe("through the gateway: unknown paths and misconfiguration", () => {
  it("answers a path no route serves with a JSON 404, token or not", async () => {
    for (const init of [{}, withBearer(await mintToken())]) {
      const mark = marker("unknown");
      const body = await expectJSONError(await gatewayFetch(`/nowhere/${mark}`, init), 404, "not_found");
      expect(body.error_description).toContain(`/nowhere/${mark}`);
      await expectOriginNotContacted(mark);
    }
  });

  it("answers every gateway request with a JSON 500 when GATEWAY_ROUTES is invalid, leaking no detail", async () => {
    const broken = [
      JSON.stringify([{ prefix: "/api", origin: env.TEST_ORIGIN_URL, scopes: ["orders:read"] }]),
      JSON.stringify([{ prefix: "/api", origin: env.TEST_ORIGIN_URL, audience: AUDIENCE, scope: ["orders:read"] }]),
      "not json",
    ];
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const logs = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      for (const GATEWAY_ROUTES of broken) {
        for (const path of ["/api", "/public", "/nowhere"]) {
          const mark = marker("misconfigured");
          const res = await fetchWithEnv(`${env.ISSUER}${path}/${mark}`, withBearer(await mintToken()), { GATEWAY_ROUTES });
          const body = await expectJSONError(res, 500, "server_error");
          expect(body.error_description).toBe("internal error");
          await expectOriginNotContacted(mark);
        }
      }
      // The operator learns which field is wrong from the log (once per env object, as per isolate), the caller does not.
      const logged = logs.mock.calls.map(([line]) => String(line)).filter((line) => line.includes('"config_error"'));
      expect(logged).toHaveLength(9);
      expect(logged.some((line) => line.includes("GATEWAY_ROUTES[0].audience"))).toBe(true);
      expect(logged.some((line) => line.includes("GATEWAY_ROUTES[0].scope"))).toBe(true);
      expect(errors).not.toHaveBeenCalled();
    } finally {
      errors.mockRestore();
      logs.mockRestore();
    }
  });

  it("serves routes given as a TOML array (not a JSON string) through the same parser", async () => {
    const mark = marker("toml");
    const GATEWAY_ROUTES = [{ prefix: "/toml", origin: env.TEST_ORIGIN_URL, audience: AUDIENCE, scopes: ["orders:read"] }];
    const echo = await expectProxied(await fetchWithEnv(`${env.ISSUER}/toml/${mark}`, withBearer(await mintToken()), { GATEWAY_ROUTES }));
    expect(echo.path).toBe(`/toml/${mark}`);
  });

  it("answers 503 temporarily_unavailable when the signing keys cannot be loaded, and proxies nothing", async () => {
    const mark = marker("no-keys");
    const token = await mintToken();
    await expectJSONError(
      await fetchWithEnv(`${env.ISSUER}/api/${mark}`, withBearer(token), { SIGNING_KEY: "not json" }),
      503,
      "temporarily_unavailable",
    );
    await expectOriginNotContacted(mark);
  });

  it("answers 500 and proxies nothing when the origin_auth secret is not set", async () => {
    const mark = marker("no-secret");
    await expectJSONError(
      await fetchWithEnv(`${env.ISSUER}/strip/${mark}`, withBearer(await mintToken()), { ORIGIN_SECRET: "" }),
      500,
      "server_error",
    );
    await expectOriginNotContacted(mark);
  });

  it("answers 500 when the service binding of a route is missing", async () => {
    await expectJSONError(
      await fetchWithEnv(`${env.ISSUER}/svc/x`, withBearer(await mintToken()), { ECHO_SERVICE: undefined }),
      500,
      "server_error",
    );
  });
});

describe("docs/security.md item 13: only configuration chooses the origin", () => {
  it("ignores Host and X-Forwarded-Host naming another site", async () => {
    const mark = marker("host");
    const headers = {
      Host: "evil.example",
      "X-Forwarded-Host": "evil.example",
      "X-Original-URL": "http://evil.example/",
      "X-Rewrite-URL": "/api/admin",
    };
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { headers })));
    expect(echo.path).toBe(`/api/${mark}`);
    expect(rawHeaderValues(echo, "Host")).toEqual([new URL(env.TEST_ORIGIN_URL).host]);
    expect(rawHeaderValues(echo, "X-Forwarded-Host")).toEqual(["auth.tollgate.test"]);
    expect(await originRequestsWith(mark)).toHaveLength(1);
  });

  it("sends a request addressed to another hostname to the configured origin all the same", async () => {
    const mark = marker("other-host");
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await mintToken()), "https://evil.example"));
    expect(rawHeaderValues(echo, "Host")).toEqual([new URL(env.TEST_ORIGIN_URL).host]);
    expect(rawHeaderValues(echo, "X-Forwarded-Host")).toEqual(["evil.example"]);
  });

  it("keeps an absolute URL inside the path as path: /api/http://evil.example/x goes to the /api origin", async () => {
    const mark = marker("absolute");
    const echo = await expectProxied(await gatewayFetch(`/api/http://evil.example/${mark}`, withBearer(await mintToken())));
    expect(echo.path).toBe(`/api/http:/evil.example/${mark}`);
    const schemeRelative = marker("scheme-relative");
    await expectJSONError(await gatewayFetch(`//evil.example/api/${schemeRelative}`, withBearer(await mintToken())), 404, "not_found");
    await expectOriginNotContacted(schemeRelative);
  });

  it("matches /internal only on host internal.tollgate.test", async () => {
    const token = await mintToken();
    const ok = marker("internal");
    expect((await expectProxied(await gatewayFetch(`/internal/${ok}`, withBearer(token), "https://internal.tollgate.test"))).path).toBe(
      `/internal/${ok}`,
    );
    const upper = marker("internal-upper");
    await expectProxied(await gatewayFetch(`/internal/${upper}`, withBearer(token), "https://INTERNAL.tollgate.test:8443"));
    for (const [base, headers] of [
      [undefined, {}],
      [undefined, { Host: "internal.tollgate.test" }],
      [undefined, { "X-Forwarded-Host": "internal.tollgate.test" }],
      ["https://internal.tollgate.test.evil.example", {}],
      ["https://evil-internal.tollgate.test", {}],
    ] as [string | undefined, Record<string, string>][]) {
      const mark = marker("internal-elsewhere");
      await expectJSONError(await gatewayFetch(`/internal/${mark}`, withBearer(token, { headers }), base), 404, "not_found");
      await expectOriginNotContacted(mark);
    }
  });

  it("still checks the token on the host-bound route", async () => {
    const mark = marker("internal-no-token");
    const res = await gatewayFetch(`/internal/${mark}`, { headers: { "X-Tollgate-Client-Id": "x" } }, "https://internal.tollgate.test");
    expect(res.status).toBe(401);
    await expectOriginNotContacted(mark);
    const other = marker("internal-other-aud");
    await expectBearerError(
      await gatewayFetch(
        `/internal/${other}`,
        withBearer(await mintToken({ claims: { aud: "https://other.tollgate.test" } })),
        "https://internal.tollgate.test",
      ),
      {
        status: 401,
        error: "invalid_token",
      },
    );
  });
});

describe("the reserved paths are never an origin's, whatever a catch-all route says", () => {
  // vitest.config.ts: { prefix: "/", host: "catchall.tollgate.test", public: true }.
  const CATCHALL = "https://catchall.tollgate.test";
  const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

  it.each([
    "//token",
    "/token/",
    "//register",
    "//introspect",
    "//revoke",
    "/.well-known//jwks.json",
    "//.well-known/oauth-authorization-server",
    "/TOKEN",
    "/token.",
    "/Token%20",
    "/%EF%BD%94oken",
    "/x/../token",
    "/register//x",
    "/token%E2%80%A8",
    "/register%EF%BB%BF/x",
    "/.well-known%E1%9A%80/jwks.json",
    "/to%E2%80%8Bken",
  ])("does not forward %j to the catch-all's origin, secret and all", async (path) => {
    const mark = marker("reserved");
    const res = await exports.default.fetch(
      new Request(`${CATCHALL}${path}?m=${mark}`, {
        method: "POST",
        headers: FORM,
        body: `grant_type=client_credentials&client_id=shop&client_secret=s3cr3t-${mark}`,
      }),
    );
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    await res.body?.cancel();
    await expectOriginNotContacted(mark);
  });

  it("answers //token with a JSON 404 (it is no route of the gateway)", async () => {
    const mark = marker("reserved-404");
    await expectJSONError(
      await exports.default.fetch(
        new Request(`${CATCHALL}//token?m=${mark}`, { method: "POST", headers: FORM, body: "client_id=a&client_secret=b" }),
      ),
      404,
      "not_found",
    );
    await expectOriginNotContacted(mark);
  });

  it("still forwards paths that only look like a reserved one (/tokens, /token-x, /x/token)", async () => {
    for (const path of ["/tokens", "/token-x", "/x/token", "/well-known"]) {
      const mark = marker("reserved-lookalike");
      expect((await expectProxied(await exports.default.fetch(new Request(`${CATCHALL}${path}?m=${mark}`)))).path).toBe(
        `${path}?m=${mark}`,
      );
    }
  });

  it.each(["/TOKEN", "/Token.", "/token%20", "/REGISTER/x", "/.Well-Known"])(
    "refuses the prefix %j, which folds onto a reserved path",
    (prefix) => {
      expectRefused([route({ prefix })], "GATEWAY_ROUTES[0].prefix");
    },
  );
});

describe("the Host that selects a host-bound route is normalized: case, port, trailing dot", () => {
  // /hostbound needs orders:read on any host, internal:admin on internal.tollgate.test.
  it.each([
    "https://internal.tollgate.test.",
    "https://INTERNAL.TOLLGATE.TEST.",
    "https://internal.tollgate.test.:8443",
    "https://Internal.Tollgate.Test:8443",
  ])("gives %s the host-bound route's check, not the any-host one", async (base) => {
    const mark = marker("host-dot");
    const res = await gatewayFetch(`/hostbound/${mark}`, withBearer(await mintToken({ claims: { scope: "orders:read" } })), base);
    await expectBearerError(res, { status: 403, error: "insufficient_scope", scope: "internal:admin" });
    await expectOriginNotContacted(mark);
    const ok = marker("host-dot-ok");
    await expectProxied(await gatewayFetch(`/hostbound/${ok}`, withBearer(await mintToken({ claims: { scope: "internal:admin" } })), base));
  });

  it.each(["https://internal.tollgate.test..", "https://.internal.tollgate.test", "https://internal..tollgate.test"])(
    "refuses the odd host %s with 400",
    async (base) => {
      const mark = marker("host-odd");
      await expectJSONError(
        await gatewayFetch(`/hostbound/${mark}`, withBearer(await mintToken({ claims: { scope: "orders:read" } })), base),
        400,
        "invalid_request",
      );
      await expectOriginNotContacted(mark);
    },
  );

  it.each(["internal.tollgate.test.", ".internal.tollgate.test", "internal..test"])("refuses the route host %j", (host) => {
    expectRefused([route({ host })], "GATEWAY_ROUTES[0].host");
  });
});
