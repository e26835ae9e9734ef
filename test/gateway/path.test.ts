/**
 * docs/security.md item 11, path confusion (CVE-2019-9901, CVE-2021-29492, CVE-2021-31920): the gateway
 * normalizes the path once (src/gateway/path.ts), matches the route on the result, and the origin
 * receives exactly that path. Unit tests cover what workerd's own URL parser would already have
 * normalized before the Worker sees it (literal `\`, `.` segments); Worker tests cover the rest.
 */
import { describe, expect, it } from "vitest";
import { BearerError } from "../../src/errors.ts";
import { normalizePath, rawPathOf } from "../../src/gateway/path.ts";
import {
  expectBearerError,
  expectJSONError,
  expectOriginNotContacted,
  expectProxied,
  gatewayFetch,
  marker,
  withBearer,
} from "./gateway.ts";
import { mintToken } from "./tokens.ts";

describe("normalizePath (RFC 3986 §6.2.2 and §5.2.4)", () => {
  it.each([
    ["/api/x", "/api/x"],
    ["/", "/"],
    ["//api//x", "/api/x"],
    ["/./api/x", "/api/x"],
    ["/api/./x/.", "/api/x"],
    ["/api/%2e%2e/admin", "/admin"],
    ["/api/%2E%2E/api/admin", "/api/admin"],
    ["/api/.%2e/admin", "/admin"],
    ["/api/%2e/x", "/api/x"],
    ["/api/../../../etc/passwd", "/etc/passwd"],
    ["/..", "/"],
    ["/api/x/..", "/api"],
    ["/api/", "/api/"],
    ["/api//", "/api/"],
    ["/api/%7Euser", "/api/~user"],
    ["/api/%7euser", "/api/~user"],
    ["/api/%41%5a%61%7a%30%39%2D%5F", "/api/AZaz09-_"],
    ["/api/%c3%a9", "/api/%C3%A9"],
    ["/api/a%3fb%23c", "/api/a%3Fb%23c"],
    ["/api/%20x", "/api/%20x"],
    // An escaped "%" stays escaped: one decoding pass, never two.
    ["/api/%252e%252e/admin", "/api/%252e%252e/admin"],
    ["/api/%25%32%66", "/api/%252f"],
  ])("normalizes %j to %j", (raw, normalized) => {
    expect(normalizePath(raw)).toBe(normalized);
  });

  it.each([
    ["/api/..%2fadmin", "encoded /"],
    ["/api/..%2Fadmin", "encoded / (upper case)"],
    ["/api/%2f", "encoded / alone"],
    ["/api/..%5cadmin", "encoded \\"],
    ["/api/..%5Cadmin", "encoded \\ (upper case)"],
    ["/api\\..\\admin", "a literal backslash"],
    ["/api/x%00", "an encoded NUL"],
    ["/api/x\u0000", "a literal NUL"],
    ["/api/x%0a", "an encoded newline"],
    ["/api/x%7f", "an encoded DEL"],
    ["/api/x;jsessionid=1", "a ';' path parameter"],
    ["/api;/admin", "';' at the end of the prefix"],
    ["/api/x%3b", "an encoded ';'"],
    ["/api/x y", "a literal space"],
    ["/api/x%", "a lone %"],
    ["/api/x%4", "a short escape"],
    ["/api/x%zz", "a non-hex escape"],
    ["/api/x%+1", "a sign in an escape"],
    ["api/x", "no leading /"],
    ["", "an empty path"],
  ])("refuses %j (%s) with invalid_request", (raw) => {
    expect(() => normalizePath(raw)).toThrow(BearerError);
    expect(() => normalizePath(raw)).toThrow(expect.objectContaining({ code: "invalid_request", status: 400 }));
  });

  it("is idempotent on its own output", () => {
    for (const raw of ["//a/./b/../c/", "/a/%7e/%c3%a9", "/a/%252e", "/"]) {
      const once = normalizePath(raw);
      expect(normalizePath(once)).toBe(once);
    }
  });
});

describe("rawPathOf", () => {
  it.each([
    ["https://h.test/a/b?x=1#f", "/a/b"],
    ["https://h.test/a/b#f?x", "/a/b"],
    ["https://h.test", "/"],
    ["https://h.test/", "/"],
    ["https://h.test:8443//a//b", "//a//b"],
    ["https://h.test/a%2Fb?c=/d", "/a%2Fb"],
  ])("takes the path of %j as %j", (url, path) => {
    expect(rawPathOf(url)).toBe(path);
  });
});

describe("through the gateway: the route is matched on the normalized path", () => {
  const readToken = () => mintToken({ claims: { scope: "orders:read" } });

  it.each([
    ["..%2f (encoded slash)", "/api/..%2fadmin/MARK"],
    ["..%2F", "/api/..%2Fadmin/MARK"],
    ["%5C (encoded backslash)", "/api/..%5Cadmin/MARK"],
    ["%00", "/api/MARK%00"],
    ["a ';' parameter", "/api/MARK;jsessionid=1"],
    ["a ';' right after the prefix", "/api;/admin/MARK"],
    ["%3B", "/api/MARK%3Badmin"],
    ["a malformed escape", "/api/MARK%zz"],
  ])("refuses %s with 400 invalid_request before the bearer check", async (_, path) => {
    const mark = marker("path");
    const url = path.replace("MARK", mark);
    // Without any token: the path is refused first, so nothing can slip past on the way to the bearer check.
    await expectBearerError(await gatewayFetch(url), { status: 400, error: "invalid_request" });
    await expectBearerError(await gatewayFetch(url, withBearer(await readToken())), { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(mark);
  });

  it("does not let /api/%2e%2e/api/admin past the admin route's check", async () => {
    const mark = marker("dotdot");
    const res = await gatewayFetch(`/api/%2e%2e/api/admin/${mark}`, withBearer(await readToken()));
    await expectBearerError(res, { status: 403, error: "insufficient_scope", scope: "admin" });
    await expectOriginNotContacted(mark);
    const echo = await expectProxied(await gatewayFetch(`/api/%2E%2E/api/admin/${mark}`, withBearer(await mintToken({ claims: { scope: "admin" } }))));
    expect(echo.path).toBe(`/api/admin/${mark}`);
  });

  it("does not let /api/%2e%2e/admin reach anything: it is /admin, which no route serves", async () => {
    const mark = marker("dotdot-admin");
    await expectJSONError(await gatewayFetch(`/api/%2e%2e/admin/${mark}`, withBearer(await readToken())), 404, "not_found");
    await expectOriginNotContacted(mark);
  });

  it("does not let a literal backslash past the admin route's check", async () => {
    // The URL parser (WHATWG, as in workerd) turns "\" into "/" in https URLs before the Worker
    // sees the path, so this is /api/admin/…: it must get the admin route's check, not /api's.
    // (normalizePath refuses a literal "\" for any runtime that passes it through; see above.)
    const mark = marker("backslash");
    const res = await gatewayFetch(`/api\\admin\\${mark}`, withBearer(await readToken()));
    await expectBearerError(res, { status: 403, error: "insufficient_scope", scope: "admin" });
    await expectOriginNotContacted(mark);
  });

  it("does not let a path that merely starts like the prefix (/apiX, /api-admin, /ap) reach /api", async () => {
    const token = await mintToken({ claims: { scope: "orders:read admin" } });
    for (const prefix of ["/apiX", "/api-admin", "/ap"]) {
      const mark = marker("lookalike");
      await expectJSONError(await gatewayFetch(`${prefix}/${mark}`, withBearer(token)), 404, "not_found");
      await expectOriginNotContacted(mark);
    }
  });

  it("refuses with 400 a path whose route changes with letter case or trailing dots (/API, /api/ADMIN, /api/admin.)", async () => {
    // An origin that ignores case or trailing dots would serve /api/ADMIN as /api/admin: the
    // gateway must not authorize it by /api's weaker rules.
    const token = await mintToken({ claims: { scope: "orders:read" } });
    for (const path of ["/API", "/api/ADMIN/x", "/api/admin./x", "/Api/Admin"]) {
      const mark = marker("fold");
      await expectJSONError(await gatewayFetch(`${path}/${mark}`, withBearer(token)), 400, "invalid_request");
      await expectOriginNotContacted(mark);
    }
    // Case that selects the same route is fine: /api/ORDERS is still /api.
    const mark = marker("fold-ok");
    expect((await expectProxied(await gatewayFetch(`/api/ORDERS/${mark}`, withBearer(token)))).path).toContain("/api/ORDERS/");
  });

  it.each(["TRACE", "PROPFIND", "PURGE", "MKCOL"])("refuses %s with 405 and Allow, never reaching the origin", async (method) => {
    const mark = marker("method");
    const res = await gatewayFetch(`/public/${mark}`, { method });
    await expectJSONError(res, 405, "invalid_request");
    expect(res.headers.get("Allow")).toBe("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    await expectOriginNotContacted(mark);
  });
});

describe("through the gateway: the origin receives exactly the path that was authorized", () => {
  async function originPathFor(path: string): Promise<string> {
    return (await expectProxied(await gatewayFetch(path, withBearer(await mintToken())))).path;
  }

  it.each([
    ["//api//MARK", "/api/MARK"],
    ["/./api/MARK", "/api/MARK"],
    ["/api/x/../MARK", "/api/MARK"],
    ["/api/%7Euser/MARK", "/api/~user/MARK"],
    ["/api/%7euser/MARK", "/api/~user/MARK"],
    ["/api/%c3%a9/MARK", "/api/%C3%A9/MARK"],
    ["/api/a%3Fb%23c/MARK", "/api/a%3Fb%23c/MARK"],
    ["/api/%252e%252e/MARK", "/api/%252e%252e/MARK"],
    ["/api/MARK/", "/api/MARK/"],
  ])("%j arrives as %j", async (sent, received) => {
    const mark = marker("norm");
    expect(await originPathFor(sent.replace("MARK", mark))).toBe(received.replace("MARK", mark));
  });

  it("passes the query string through unchanged, including what looks like a path", async () => {
    const mark = marker("query");
    const query = "?b=%2F..%2Fadmin&a=1&a=2&c=x+y&d=%zz&e=;&f=/..//x&g=%00";
    expect(await originPathFor(`/api/${mark}${query}`)).toBe(`/api/${mark}${query}`);
  });

  it("takes the route from the path, not the query: /api?x=/api/admin is the /api route", async () => {
    const mark = marker("query-route");
    expect(await originPathFor(`/api/${mark}?next=/api/admin/x`)).toBe(`/api/${mark}?next=/api/admin/x`);
  });
});

describe("headers that would make the origin act on another method or path", () => {
  it("never forwards method overrides, URL rewrites or True-Client-IP", async () => {
    const token = await mintToken();
    const mark = marker("override");
    const echo = await expectProxied(
      await gatewayFetch(`/api/${mark}`, withBearer(token, { headers: { "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE", "X-Original-URL": "/api/admin", "X-Rewrite-URL": "/api/admin", "True-Client-IP": "6.6.6.6", X_HTTP_Method_Override: "PUT" } })),
    );
    const names = echo.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, "-"));
    for (const name of ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url", "true-client-ip"]) expect(names).not.toContain(name);
    expect(echo.method).toBe("GET");
  });
});
