/**
 * Header hygiene (src/gateway/headers.ts): docs/security.md items 12 (spoofed identity headers,
 * CVE-2025-64484, CVE-2022-1388, CVE-2021-32813) and 14 (token leakage), RFC 9110 §7.6.1
 * hop-by-hop headers, RFC 9700 §4.13. What the origin got is read from the echo origin's rawHeaders,
 * so duplicates and letter-case variants are visible.
 */
import { describe, expect, it } from "vitest";
import { forwardRequestHeaders, forwardResponseHeaders, IDENTITY_HEADERS, type ForwardOptions } from "../../src/gateway/headers.ts";
import { expectProxied, gatewayFetch, marker, rawHeaderNames, rawHeaderValues, withBearer, type EchoRecord } from "../support/gateway.ts";
import { accessTokenClaims, ISSUER, mintToken } from "../support/tokens.ts";

/** Every request-header name the gateway owns, in the spellings an attacker tries. */
const SPOOFS: [string, string][] = [
  ["X-Tollgate-Client-Id", "spoofed-client"],
  ["x-tollgate-scope", "admin orders:admin"],
  ["X_Tollgate_Token_Id", "spoofed-jti"],
  ["x_tollgate_client_id", "spoofed-underscore"],
  ["X-TOLLGATE-SCOPE", "spoofed-upper"],
  ["X-Tollgate_Client-Id", "spoofed-mixed"],
  ["X-Tollgate-Issuer", "https://spoofed-issuer.example"],
  ["x_tollgate_issuer", "spoofed-underscore-issuer"],
  ["X-Forwarded-For", "10.0.0.1"],
  ["X_Forwarded_For", "10.0.0.2"],
  ["X-Forwarded-Host", "evil.example"],
  ["X-Forwarded-Proto", "http"],
  ["X-Forwarded-Port", "81"],
  ["X-Forwarded-Prefix", "/admin"],
  ["Forwarded", "for=10.0.0.3;host=evil.example;proto=http"],
  ["X-Real-IP", "10.0.0.4"],
];

function spoofedHeaders(extra: [string, string][] = []): Headers {
  const headers = new Headers();
  for (const [name, value] of [...SPOOFS, ...extra]) headers.append(name, value);
  // A duplicate of each identity header (they arrive joined by ", ").
  for (const name of Object.values(IDENTITY_HEADERS)) headers.append(name, "second-copy");
  return headers;
}

/** Names the gateway sets or strips, canonical: lower case, "_" as "-". */
const canonical = (name: string) => name.toLowerCase().replace(/_/g, "-");

/** Asserts that for each owned name the origin got exactly `expected` (one copy) or nothing (undefined). */
function expectOwnedHeaders(echo: EchoRecord, expected: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(expected)) {
    const copies = echo.rawHeaders.filter((_, i) => i % 2 === 0 && canonical(echo.rawHeaders[i]!) === canonical(name));
    expect({ name, copies: copies.length }).toEqual({ name, copies: value === undefined ? 0 : 1 });
    if (value !== undefined) expect(rawHeaderValues(echo, name)).toEqual([value]);
  }
}

describe("docs/security.md item 12: the origin sees exactly the gateway's identity headers", () => {
  it("replaces every client-sent copy, in any case, with _ for -, duplicated, or named in Connection", async () => {
    const claims = accessTokenClaims({ client_id: "real-client", sub: "real-client", scope: "orders:read" });
    const token = await mintToken({ claims });
    const headers = spoofedHeaders([
      ["Connection", "X-Tollgate-Client-Id, x-tollgate-scope, X_Tollgate_Token_Id, X-Forwarded-Host, X-Forwarded-Proto"],
    ]);
    const mark = marker("spoof");
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(token, { headers })));
    expectOwnedHeaders(echo, {
      "X-Tollgate-Client-Id": "real-client",
      "X-Tollgate-Scope": "orders:read",
      "X-Tollgate-Token-Id": claims.jti as string,
      // Who vouched: this server's ISSUER for its own tokens (EXTERNAL_ISSUERS' issuer otherwise).
      "X-Tollgate-Issuer": ISSUER,
      "X-Forwarded-Host": "auth.tollgate.test",
      "X-Forwarded-Proto": "https",
      // No CF-Connecting-IP in this request: the gateway has no client address to vouch for.
      "X-Forwarded-For": undefined,
      "X-Forwarded-Port": undefined,
      "X-Forwarded-Prefix": undefined,
      Forwarded: undefined,
      "X-Real-IP": undefined,
    });
    for (const name of rawHeaderNames(echo)) expect(name).not.toContain("_");
    expect(JSON.stringify(echo.rawHeaders)).not.toMatch(/spoofed|second-copy|evil\.example|10\.0\.0\./);
  });

  it("sets X-Forwarded-For from CF-Connecting-IP only, never from the client's own claim", async () => {
    const mark = marker("xff");
    const headers = spoofedHeaders([["CF-Connecting-IP", "203.0.113.7"]]);
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { headers })));
    expectOwnedHeaders(echo, { "X-Forwarded-For": "203.0.113.7", Forwarded: undefined, "X-Real-IP": undefined });
  });

  it("sends an empty X-Tollgate-Scope (not the client's) for a token without scope", async () => {
    const mark = marker("no-scope");
    const token = await mintToken({ claims: { aud: "https://other.tollgate.test", scope: undefined } });
    const echo = await expectProxied(
      await gatewayFetch(`/other-aud/${mark}`, withBearer(token, { headers: { "X-Tollgate-Scope": "admin" } })),
    );
    expectOwnedHeaders(echo, { "X-Tollgate-Scope": "", "X-Tollgate-Client-Id": "gateway-test-client" });
  });

  it("on a public route removes client copies of identity headers and sets none", async () => {
    const mark = marker("public");
    const echo = await expectProxied(
      await gatewayFetch(`/public/${mark}`, { headers: spoofedHeaders([["Connection", "X-Forwarded-Host"]]) }),
    );
    expect(echo.path).toBe(`/public/${mark}`);
    expectOwnedHeaders(echo, {
      "X-Tollgate-Client-Id": undefined,
      "X-Tollgate-Scope": undefined,
      "X-Tollgate-Token-Id": undefined,
      "X-Tollgate-Issuer": undefined,
      "X-Forwarded-Host": "auth.tollgate.test",
      "X-Forwarded-Proto": "https",
      "X-Forwarded-For": undefined,
      Forwarded: undefined,
    });
  });

  it("sets the identity headers on a service-binding route too", async () => {
    const mark = marker("svc");
    const claims = accessTokenClaims({ client_id: "svc-client", sub: "svc-client", scope: "x y" });
    const res = await gatewayFetch(`/svc/${mark}`, withBearer(await mintToken({ claims }), { headers: spoofedHeaders() }));
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { via: string; url: string; headers: Record<string, string> };
    expect(seen.via).toBe("service");
    expect(seen.url).toBe(`https://service.internal/svc/${mark}`);
    expect(seen.headers["x-tollgate-client-id"]).toBe("svc-client");
    expect(seen.headers["x-tollgate-scope"]).toBe("x y");
    expect(seen.headers["x-tollgate-token-id"]).toBe(claims.jti);
    expect(seen.headers["x-forwarded-host"]).toBe("auth.tollgate.test");
    expect(seen.headers).not.toHaveProperty("authorization");
    expect(Object.keys(seen.headers).filter((n) => n.includes("_"))).toEqual([]);
  });

  it("keeps the client's ordinary headers", async () => {
    const mark = marker("ordinary");
    const headers = { Accept: "application/json", "X-Request-Id": "req-1", "User-Agent": "gateway-test", Cookie: "a=b" };
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { headers })));
    for (const [name, value] of Object.entries(headers)) expect(rawHeaderValues(echo, name)).toEqual([value]);
  });

  it("drops hop-by-hop request headers and those the client names in Connection (RFC 9110 §7.6.1)", async () => {
    const mark = marker("hop");
    const headers = {
      Connection: "X-Drop-Me",
      "X-Drop-Me": "1",
      "Keep-Alive": "timeout=5",
      "Proxy-Connection": "keep-alive",
      "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
      TE: "trailers",
      Trailer: "X-Checksum",
      Upgrade: "websocket",
    };
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { headers })));
    const names = rawHeaderNames(echo);
    for (const name of ["x-drop-me", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade"])
      expect(names).not.toContain(name);
    expect(JSON.stringify(echo.rawHeaders)).not.toContain("cHJveHk6c2VjcmV0");
  });
});

describe("the whole X-Forwarded-* family, the client-IP, rewrite and method headers never reach the origin", () => {
  const FAMILY: [string, string][] = [
    ["X-Forwarded-Ssl", "on"],
    ["X-Forwarded-Scheme", "https"],
    ["X-Forwarded-Server", "evil.example"],
    ["X-Forwarded-Uri", "/api/admin"],
    ["X-Forwarded-Path", "/api/admin"],
    ["X_Forwarded_Client_Cert", "By=evil"],
    ["X-Forwarded-Anything-New", "spoofed"],
    ["X-Original-URI", "/api/admin"],
    ["X-Original-URL", "/api/admin"],
    ["X-Rewrite-URL", "/api/admin"],
    ["X-Original-Host", "evil.example"],
    ["X-Host", "evil.example"],
    ["X-HTTP-Host-Override", "evil.example"],
    ["X-Client-IP", "10.0.0.9"],
    ["X-Cluster-Client-IP", "10.0.0.9"],
    ["Client-IP", "10.0.0.9"],
    ["True-Client-IP", "10.0.0.9"],
    ["X-Envoy-Original-Path", "/api/admin"],
    ["Front-End-Https", "on"],
    ["X-Url-Scheme", "https"],
    ["X-Forwarded", "for=10.0.0.9"],
    ["Forwarded-For", "10.0.0.9"],
    ["Fastly-Client-IP", "10.0.0.9"],
    ["X-Original-Method", "DELETE"],
    ["X-Middleware-Subrequest", "middleware:middleware:middleware:middleware:middleware"],
    ["X-Override-URL", "/api/admin"],
    ["X-Request-URI", "/api/admin"],
  ];

  it.each(["/api", "/public"])("removes each of them on %s, then sets only the gateway's own", async (prefix) => {
    const mark = marker("family");
    const headers = new Headers(FAMILY);
    const init = prefix === "/api" ? withBearer(await mintToken(), { headers }) : { headers };
    const echo = await expectProxied(await gatewayFetch(`${prefix}/${mark}`, init));
    const names = rawHeaderNames(echo).map(canonical);
    for (const [name] of FAMILY) expect(names, name).not.toContain(canonical(name));
    expect(names.filter((n) => n.startsWith("x-forwarded-")).sort()).toEqual(["x-forwarded-host", "x-forwarded-proto"]);
    expect(JSON.stringify(echo.rawHeaders)).not.toMatch(/evil\.example|\/api\/admin|10\.0\.0\.9|spoofed/);
  });
});

describe("docs/security.md item 14: the Authorization header reaches the origin only where a route opts in", () => {
  it("does not forward Authorization by default", async () => {
    const token = await mintToken();
    const mark = marker("no-authz");
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(token)));
    expect(rawHeaderNames(echo)).not.toContain("authorization");
    expect(JSON.stringify(echo)).not.toContain(token);
  });

  it("does not let a public route forward it either", async () => {
    const mark = marker("public-authz");
    const echo = await expectProxied(await gatewayFetch(`/public/${mark}`, { headers: { Authorization: "Bearer some.client.token" } }));
    expect(rawHeaderNames(echo)).not.toContain("authorization");
  });

  it("forwards it unchanged on /strip (keep_authorization)", async () => {
    const token = await mintToken();
    const mark = marker("keep-authz");
    const echo = await expectProxied(await gatewayFetch(`/strip/${mark}`, withBearer(token)));
    expect(rawHeaderValues(echo, "Authorization")).toEqual([`Bearer ${token}`]);
  });

  it("sets the origin_auth header from the Worker secret on /strip, over any client copy", async () => {
    const mark = marker("origin-auth");
    const headers = new Headers([
      ["X-Origin-Auth", "forged"],
      ["x_origin_auth", "forged-underscore"],
      ["Connection", "X-Origin-Auth"],
    ]);
    headers.append("x-origin-auth", "forged-again");
    const echo = await expectProxied(await gatewayFetch(`/strip/${mark}`, withBearer(await mintToken(), { headers })));
    expectOwnedHeaders(echo, { "X-Origin-Auth": "origin-secret-value" });
    expect(JSON.stringify(echo.rawHeaders)).not.toContain("forged");
  });

  it("sends no origin_auth header to routes without one, even when the client sends it", async () => {
    const mark = marker("no-origin-auth");
    const echo = await expectProxied(
      await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { headers: { "X-Origin-Auth": "client-value" } })),
    );
    // Not a reserved name on this route, so it passes as an ordinary header, but never the secret.
    expect(JSON.stringify(echo.rawHeaders)).not.toContain("origin-secret-value");
  });
});

describe("RFC 9110 §7.6.1: hop-by-hop response headers stay between origin and gateway", () => {
  it("drops Connection and X-Hop (named in the echo's Connection) from the answer", async () => {
    const mark = marker("response-hop");
    const res = await gatewayFetch(`/api/${mark}`, withBearer(await mintToken()));
    await expectProxied(res.clone());
    expect(res.headers.get("X-Origin")).toBe("echo");
    expect(res.headers.get("Connection")).toBeNull();
    expect(res.headers.get("X-Hop")).toBeNull();
    expect(res.headers.get("Content-Type")).toBe("application/json");
  });
});

/** The headers as the Request or Response built from what headers.ts returns carries them. */
const upstream = (incoming: Headers, options: ForwardOptions) => new Headers(forwardRequestHeaders(incoming, options));
const downstream = (incoming: Headers) => new Headers(forwardResponseHeaders(incoming));

describe("forwardRequestHeaders", () => {
  const base = { keepAuthorization: false, websocket: false, reserved: [] as string[], set: {} as Record<string, string> };

  it("drops gateway-owned names in any spelling, hop-by-hop names, Host and Content-Length, then sets its own", () => {
    const incoming = new Headers([
      ["X_TOLLGATE_CLIENT_ID", "a"],
      ["x-tollgate-token_id", "b"],
      ["X-Real-IP", "c"],
      ["Host", "evil.example"],
      ["Content-Length", "5"],
      ["Transfer-Encoding", "chunked"],
      ["Connection", "keep-alive, X-Custom-Hop, X_Tollgate_Scope"],
      ["X-Custom-Hop", "d"],
      ["Authorization", "Bearer t"],
      ["Accept", "text/plain"],
    ]);
    const out = upstream(incoming, { ...base, set: { "X-Tollgate-Client-Id": "real", "X-Tollgate-Scope": "s" } });
    expect([...out]).toEqual([
      ["accept", "text/plain"],
      ["x-tollgate-client-id", "real"],
      ["x-tollgate-scope", "s"],
    ]);
  });

  it("keeps Authorization only with keepAuthorization, and reserved names never", () => {
    const incoming = new Headers([
      ["Authorization", "Bearer t"],
      ["X-Origin-Auth", "forged"],
      ["x_origin_auth", "forged"],
    ]);
    const out = upstream(incoming, { ...base, keepAuthorization: true, reserved: ["X-Origin-Auth"] });
    expect([...out]).toEqual([["authorization", "Bearer t"]]);
  });

  it("passes Upgrade: websocket only on websocket routes", () => {
    const incoming = new Headers([
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
    ]);
    expect(upstream(incoming, base).get("Upgrade")).toBeNull();
    expect(upstream(incoming, { ...base, websocket: true }).get("Upgrade")).toBe("websocket");
    expect(upstream(new Headers([["Upgrade", "h2c"]]), { ...base, websocket: true }).get("Upgrade")).toBeNull();
  });

  it("forwards headers named like Object members (__proto__, constructor, toString) as ordinary headers", () => {
    const incoming = new Headers([
      ["__proto__", "p"],
      ["constructor", "c"],
      ["toString", "t"],
      ["X-Multi", "1"],
      ["X-Multi", "2"],
    ]);
    const out = upstream(incoming, base);
    expect([...out]).toEqual([
      ["__proto__", "p"],
      ["constructor", "c"],
      ["tostring", "t"],
      ["x-multi", "1, 2"],
    ]);
  });

  it("cannot be made to drop a gateway-set header by naming it in Connection (CVE-2022-1388)", () => {
    const incoming = new Headers([["Connection", "X-Tollgate-Client-Id, X-Forwarded-Host"]]);
    const out = upstream(incoming, { ...base, set: { "X-Tollgate-Client-Id": "real", "X-Forwarded-Host": "h" } });
    expect(out.get("X-Tollgate-Client-Id")).toBe("real");
    expect(out.get("X-Forwarded-Host")).toBe("h");
  });
});

describe("forwardResponseHeaders", () => {
  it("drops a header named in Connection in any spelling (x_hop for X-Hop)", () => {
    const out = downstream(
      new Headers([
        ["Connection", "X-Hop"],
        ["x_hop", "dropped"],
        ["X-Kept", "k"],
      ]),
    );
    expect([...out]).toEqual([["x-kept", "k"]]);
  });

  it("drops hop-by-hop and Connection-named headers and keeps each Set-Cookie", () => {
    const incoming = new Headers([
      ["Connection", "close, X-Hop"],
      ["X-Hop", "dropped"],
      ["Keep-Alive", "timeout=5"],
      ["Transfer-Encoding", "chunked"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
      ["Content-Type", "text/plain"],
    ]);
    const out = downstream(incoming);
    expect(out.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect([...out].map(([name]) => name).sort()).toEqual(["content-type", "set-cookie", "set-cookie"]);
  });
});
