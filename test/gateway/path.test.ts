/**
 * docs/security.md item 11, path confusion (CVE-2019-9901, CVE-2021-29492, CVE-2021-31920): the gateway
 * normalizes the path once (src/gateway/path.ts), matches the route on the result, and the origin
 * receives exactly that path. Unit tests cover what workerd's own URL parser would already have
 * normalized before the Worker sees it (literal `\`, `.` segments); Worker tests cover the rest.
 */
import { describe, expect, it } from "vitest";
import { expectJSONError } from "../support/worker.ts";
import { BearerError } from "../../src/http/errors.ts";
import { checkBodyForOverride } from "../../src/gateway/method-override.ts";
import { foldPath, normalizePath, rawPathOf } from "../../src/gateway/path.ts";
import { expectBearerError, expectOriginNotContacted, expectProxied, gatewayFetch, marker, withBearer } from "../support/gateway.ts";
import { mintToken } from "../support/tokens.ts";

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

describe("foldPath: how origins that ignore case, compatibility forms or trailing dots and spaces read a path", () => {
  it.each([
    ["/api/x", "/api/x"],
    ["/API/Admin", "/api/admin"],
    ["/api/admin.", "/api/admin"],
    ["/api/admin.../x", "/api/admin/x"],
    ["/", "/"],
    // Unicode case: dotless ı and İ (Java's equalsIgnoreCase, JS toUpperCase), long s, Kelvin sign, ß.
    ["/api/adm%C4%B1n", "/api/admin"],
    ["/api/ADM%C4%B0N", "/api/admin"],
    ["/api/%C5%BFecret", "/api/secret"],
    ["/api/%E2%84%AAey", "/api/key"],
    ["/api/STRA%C3%9FE", "/api/strasse"],
    // NFKC: fullwidth letters, a fullwidth solidus and full stops become a path of their own.
    ["/api/%EF%BD%81dmin", "/api/admin"],
    ["/api/x%EF%BC%8Fadmin", "/api/x/admin"],
    ["/api/x/%EF%BC%8E%EF%BC%8E/admin", "/api/admin"],
    ["/api/x%EF%BC%BCadmin", "/api/x/admin"],
    // Spaces (encoded, or NFKC's no-break space) and dots at the end of a segment.
    ["/api/admin%20", "/api/admin"],
    ["/api/admin%20.%20/x", "/api/admin/x"],
    ["/api/%20admin", "/api/admin"],
    ["/api/admin%C2%A0", "/api/admin"],
    ["/api/caf%C3%A9", "/api/café"],
    // Unicode white space that trim() removes (U+2028, U+2029, U+1680, U+3000) and .NET's U+0085, at
    // either end of a segment; Default_Ignorable characters (BOM, ZWSP, soft hyphen, word joiner) anywhere.
    ["/api/admin%E2%80%A8", "/api/admin"],
    ["/api/admin%E2%80%A9/users", "/api/admin/users"],
    ["/api/%E1%9A%80admin", "/api/admin"],
    ["/api/admin%E3%80%80.", "/api/admin"],
    ["/api/admin%C2%85", "/api/admin"],
    ["/api/%EF%BB%BFadmin", "/api/admin"],
    ["/api/adm%E2%80%8Bin", "/api/admin"],
    ["/api/ad%C2%ADmin", "/api/admin"],
    ["/api/admin%E2%81%A0/x", "/api/admin/x"],
    ["/api/%E2%80%8B/admin", "/api/admin"],
    ["/api/%E2%80%A8..%E2%80%A8/admin", "/admin"],
  ])("folds %j to %j", (path, folded) => {
    expect(foldPath(normalizePath(path))).toBe(folded);
  });

  it.each([
    ["/api/%C4", "a truncated sequence"],
    ["/api/%FF", "a byte that is never UTF-8"],
    ["/api/%C0%AF", "an overlong /"],
    ["/api/%ED%A0%80", "a surrogate"],
    ["/api/caf%E9", "Latin-1"],
  ])("refuses %j (%s, not UTF-8) with invalid_request", (path) => {
    expect(() => foldPath(normalizePath(path))).toThrow(expect.objectContaining({ code: "invalid_request", status: 400 }));
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
    const echo = await expectProxied(
      await gatewayFetch(`/api/%2E%2E/api/admin/${mark}`, withBearer(await mintToken({ claims: { scope: "admin" } }))),
    );
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

  it.each([
    ["dotless ı", "/api/adm%C4%B1n"],
    ["dotted İ", "/api/ADM%C4%B0N"],
    ["a fullwidth a", "/api/%EF%BD%81dmin"],
    ["a trailing space", "/api/admin%20"],
    ["a trailing no-break space", "/api/admin%C2%A0"],
    ["a leading space", "/api/%20admin"],
    ["trailing dot and space", "/api/admin.%20"],
    ["a fullwidth solidus", "/api/x%EF%BC%8F..%EF%BC%8Fadmin"],
    ["a trailing line separator U+2028", "/api/admin%E2%80%A8"],
    ["a trailing paragraph separator U+2029", "/api/admin%E2%80%A9"],
    ["a trailing BOM", "/api/admin%EF%BB%BF"],
    ["a trailing Ogham space mark U+1680", "/api/admin%E1%9A%80"],
    ["a trailing NEL U+0085", "/api/admin%C2%85"],
    ["a BOM at the segment's start", "/api/%EF%BB%BFadmin"],
    ["a zero-width space inside", "/api/adm%E2%80%8Bin"],
    ["a soft hyphen inside", "/api/ad%C2%ADmin"],
  ])("refuses with 400 a path that an origin folding Unicode would serve from a stricter route (%s)", async (_, path) => {
    // An orders:read token, the /api route's: an origin that equates "admın" with "admin" (Java's
    // equalsIgnoreCase), NFKC-normalizes, or trims trailing spaces would serve /api/admin.
    const token = await mintToken({ claims: { scope: "orders:read" } });
    const mark = marker("unicode-fold");
    await expectJSONError(await gatewayFetch(`${path}/${mark}`, withBearer(token)), 400, "invalid_request");
    await expectJSONError(await gatewayFetch(`${path}?m=${mark}`, withBearer(token)), 400, "invalid_request");
    await expectOriginNotContacted(mark);
  });

  it("refuses public-route paths that fold onto the protected /public/private, without a token", async () => {
    for (const path of [
      "/public/private%20",
      "/public/pr%C4%B1vate",
      "/public/PR%C4%B0VATE/x",
      "/public/%EF%BD%90rivate",
      "/public/private.%20",
    ]) {
      const mark = marker("public-fold");
      await expectJSONError(await gatewayFetch(`${path}?m=${mark}`), 400, "invalid_request");
      await expectOriginNotContacted(mark);
    }
    // The route itself still needs its token.
    const mark = marker("private");
    expect((await gatewayFetch(`/public/private/${mark}`)).status).toBe(401);
    await expectOriginNotContacted(mark);
  });

  it("proxies non-ASCII paths whose fold stays on their route, and refuses ones that are not UTF-8", async () => {
    const token = await mintToken({ claims: { scope: "orders:read" } });
    const mark = marker("unicode-ok");
    expect((await expectProxied(await gatewayFetch(`/api/caf%C3%A9/adm%C4%B1nistration/${mark}`, withBearer(token)))).path).toBe(
      `/api/caf%C3%A9/adm%C4%B1nistration/${mark}`,
    );
    const bad = marker("latin1");
    await expectBearerError(await gatewayFetch(`/api/caf%E9/${bad}`, withBearer(token)), { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(bad);
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
      await gatewayFetch(
        `/api/${mark}`,
        withBearer(token, {
          headers: {
            "X-HTTP-Method-Override": "DELETE",
            "X-HTTP-Method": "DELETE",
            "X-Method-Override": "DELETE",
            "X-Original-URL": "/api/admin",
            "X-Rewrite-URL": "/api/admin",
            "True-Client-IP": "6.6.6.6",
            X_HTTP_Method_Override: "PUT",
          },
        }),
      ),
    );
    const names = echo.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, "-"));
    for (const name of [
      "x-http-method-override",
      "x-http-method",
      "x-method-override",
      "x-original-url",
      "x-rewrite-url",
      "true-client-ip",
    ])
      expect(names).not.toContain(name);
    expect(echo.method).toBe("GET");
  });
});

/** A body that arrives in these chunks, without Content-Length (so the gateway checks it as it streams). */
function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(encoder.encode(next));
    },
  });
}

describe("parameters that would make the origin act on another method (_method overrides)", () => {
  // Rails (Rack::MethodOverride), Laravel and Symfony, Slim (_METHOD) and Express's method-override
  // act on a POST's `_method`: on /api, DELETE needs orders:admin, which this token lacks.
  const writeToken = () => mintToken({ claims: { scope: "orders:read orders:write" } });
  const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

  it("refuses DELETE itself with 403 (the check the overrides would get around)", async () => {
    const mark = marker("delete");
    await expectBearerError(await gatewayFetch(`/api/items/${mark}`, withBearer(await writeToken(), { method: "DELETE" })), {
      status: 403,
      error: "insufficient_scope",
      scope: "orders:read orders:admin",
    });
    await expectOriginNotContacted(mark);
  });

  it.each([
    "_method=DELETE",
    "_METHOD=delete",
    "_Method=PUT",
    "a=1&_method=DELETE",
    "%5Fmethod=DELETE",
    ".method=DELETE",
    "%5Bmethod=DELETE",
    "+_method=DELETE",
    "_method",
  ])("refuses ?%s on a protected route with 400 invalid_request", async (query) => {
    const mark = marker("override-query");
    await expectBearerError(await gatewayFetch(`/api/items/${mark}?${query}`, withBearer(await writeToken(), { method: "POST" })), {
      status: 400,
      error: "invalid_request",
    });
    await expectOriginNotContacted(mark);
  });

  it.each([
    "_method=DELETE",
    "_METHOD=delete",
    "x=1&_method=DELETE&y=2",
    "%5Fmethod=DELETE",
    "[_method]=DELETE",
    "%5B_method%5D=DELETE",
    "]_method=DELETE",
    "_method]=DELETE",
    "_method[]=DELETE",
    "_method[0]=DELETE",
    "_method%00=DELETE",
    "_method%00x=DELETE",
  ])("refuses a form body %j on a protected route with 400 invalid_request", async (body) => {
    const mark = marker("override-form");
    await expectBearerError(
      await gatewayFetch(`/api/items/${mark}`, withBearer(await writeToken(), { method: "POST", headers: FORM, body })),
      { status: 400, error: "invalid_request" },
    );
    await expectOriginNotContacted(mark);
  });

  it("refuses a POST body without Content-Type holding _method (Rack reads it as a form)", async () => {
    const mark = marker("override-untyped");
    const res = await gatewayFetch(
      `/api/items/${mark}`,
      withBearer(await writeToken(), { method: "POST", body: new TextEncoder().encode("_method=DELETE") }),
    );
    await expectBearerError(res, { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(mark);
  });

  it("refuses a multipart body with a _method part on a protected route, and the origin never gets the whole body", async () => {
    for (const name of ["_method", "_METHOD"]) {
      const mark = marker("override-multipart");
      const form = new FormData();
      form.append("file", new Blob(["x".repeat(100)]), "a.txt");
      form.append(name, "DELETE");
      const res = await gatewayFetch(`/api/items/${mark}`, withBearer(await writeToken(), { method: "POST", body: form }));
      expect(res.status).toBe(400);
      await res.body?.cancel();
      await expectOriginNotContacted(mark);
    }
  });

  it("withholds a streamed multipart body from its _method part on: the origin never gets it, the client gets 400", async () => {
    // Over 64 KiB and without Content-Length, so it is checked as it streams; /slow's 300 ms
    // timeout ends the withheld request.
    const mark = marker("override-stream");
    const body = streamOf([
      `--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n${"x".repeat(80 * 1024)}\r\n`,
      '--XyZ\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n',
      "--XyZ--\r\n",
    ]);
    const res = await gatewayFetch(
      `/slow/${mark}`,
      withBearer(await writeToken(), { method: "POST", headers: { "Content-Type": "multipart/form-data; boundary=XyZ" }, body }),
    );
    await expectBearerError(res, { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(mark);
  });

  it("withholds a streamed POST body without Content-Type from its _method parameter on", async () => {
    const mark = marker("override-untyped-stream");
    const body = streamOf([`a=${"x".repeat(80 * 1024)}&_met`, "hod=DELETE&b=", "2"]);
    await expectBearerError(await gatewayFetch(`/slow/${mark}`, withBearer(await writeToken(), { method: "POST", body })), {
      status: 400,
      error: "invalid_request",
    });
    await expectOriginNotContacted(mark);
  });

  it.each([
    ["application/json", '{"_method":"DELETE"}'],
    ["application/json; charset=utf-8", '{"a":[1,{"b":"}"}],\n "\\u005Fmethod" : "DELETE"}'],
    ["application/vnd.api+json", '{"_METHOD":"DELETE"}'],
    ["text/json", '{"_method[]":["DELETE"]}'],
  ])("refuses a POST body of type %j with a top-level _method member: %s", async (type, body) => {
    const mark = marker("override-json");
    await expectBearerError(
      await gatewayFetch(`/api/${mark}`, withBearer(await writeToken(), { method: "POST", headers: { "Content-Type": type }, body })),
      { status: 400, error: "invalid_request" },
    );
    await expectOriginNotContacted(mark);
  });

  it("withholds a streamed JSON body from its _method member on", async () => {
    const mark = marker("override-json-stream");
    const body = streamOf([`{"a":"${"x".repeat(80 * 1024)}","_met`, 'hod"', ':"DELETE"}']);
    await expectBearerError(
      await gatewayFetch(
        `/slow/${mark}`,
        withBearer(await writeToken(), { method: "POST", headers: { "Content-Type": "application/json" }, body }),
      ),
      { status: 400, error: "invalid_request" },
    );
    await expectOriginNotContacted(mark);
  });

  it("refuses a JSON body declared in another charset than UTF-8 with 415 (body-parser would decode UTF-16)", async () => {
    const mark = marker("override-json-utf16");
    const res = await gatewayFetch(
      `/api/${mark}`,
      withBearer(await writeToken(), { method: "POST", headers: { "Content-Type": "application/json; charset=utf-16le" }, body: "{}" }),
    );
    await expectJSONError(res, 415, "invalid_request");
    await expectOriginNotContacted(mark);
  });

  it("forwards JSON whose _method is nested, a value, or in a PUT, and JSON in UTF-8 declared as such", async () => {
    const token = await writeToken();
    for (const [method, type, body] of [
      ["POST", "application/json", '{"a":{"_method":"DELETE"},"b":"_method","c":"\\"_method\\":1"}'],
      ["POST", "application/json", '[{"_method":"DELETE"}]'],
      ["POST", 'application/json; charset="UTF-8"', '{"_method_x":"DELETE"}'],
      ["PUT", "application/json", '{"_method":"PATCH"}'],
    ] as const) {
      const mark = marker("json-ok");
      expect(
        (await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(token, { method, headers: { "Content-Type": type }, body }))))
          .method,
      ).toBe(method);
    }
  });

  it.each([
    ["a form", "gzip", "application/x-www-form-urlencoded"],
    ["a JSON", "gzip", "application/json"],
    ["a multipart", "deflate", "multipart/form-data; boundary=XyZ"],
    ["an untyped", "br", undefined],
    ["a form", "identity, gzip", "application/x-www-form-urlencoded"],
  ])(
    "refuses %s body with Content-Encoding %j with 415 and Accept-Encoding: identity (the origin would inflate what the gateway could not read)",
    async (_label, coding, type) => {
      const mark = marker("override-coded");
      const gz = await new Response(new Blob(["_method=DELETE"]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
      const headers: Record<string, string> = { "Content-Encoding": coding };
      if (type) headers["Content-Type"] = type;
      const res = await gatewayFetch(`/api/${mark}`, withBearer(await writeToken(), { method: "POST", headers, body: gz }));
      await expectJSONError(res, 415, "invalid_request");
      expect(res.headers.get("Accept-Encoding")).toBe("identity");
      await expectOriginNotContacted(mark);
    },
  );

  it("forwards coded bodies of other types, identity-coded forms, and coded bodies on public routes", async () => {
    const token = await writeToken();
    const octets = marker("coded-octets");
    expect(
      (
        await expectProxied(
          await gatewayFetch(
            `/api/${octets}`,
            withBearer(token, {
              method: "POST",
              headers: { "Content-Type": "application/octet-stream", "Content-Encoding": "gzip" },
              body: "x",
            }),
          ),
        )
      ).method,
    ).toBe("POST");
    const identity = marker("coded-identity");
    expect(
      (
        await expectProxied(
          await gatewayFetch(
            `/api/${identity}`,
            withBearer(token, { method: "POST", headers: { ...FORM, "Content-Encoding": "Identity" }, body: "a=1" }),
          ),
        )
      ).method,
    ).toBe("POST");
    const pub = marker("coded-public");
    expect(
      (
        await expectProxied(
          await gatewayFetch(`/public/${pub}`, { method: "POST", headers: { ...FORM, "Content-Encoding": "gzip" }, body: "a=1" }),
        )
      ).method,
    ).toBe("POST");
  });

  it("still proxies forms, multipart bodies and queries without an override, and overrides on public routes", async () => {
    const token = await writeToken();
    const form = marker("form-ok");
    expect(
      (
        await expectProxied(
          await gatewayFetch(
            `/api/${form}?method=x&_methods=y`,
            withBearer(token, { method: "POST", headers: FORM, body: "a=1&method=DELETE" }),
          ),
        )
      ).method,
    ).toBe("POST");
    const multipart = new FormData();
    multipart.append("method", "DELETE");
    multipart.append("file", new Blob(["_method=DELETE"]), "_method.txt");
    const mp = marker("multipart-ok");
    expect((await expectProxied(await gatewayFetch(`/api/${mp}`, withBearer(token, { method: "POST", body: multipart })))).method).toBe(
      "POST",
    );
    const pub = marker("public-override");
    expect((await expectProxied(await gatewayFetch(`/public/${pub}?_method=DELETE`, { method: "POST" }))).path).toBe(
      `/public/${pub}?_method=DELETE`,
    );
  });
});

describe("checkBodyForOverride: multipart parts' names, as multipart parsers read them (RFC 7578 §4.2)", () => {
  const TYPE = "multipart/form-data; boundary=XyZ";
  const part = (disposition: string, value = "DELETE") => `--XyZ\r\nContent-Disposition: ${disposition}\r\n\r\n${value}\r\n`;
  const bytes = (text: string) => new TextEncoder().encode(text);

  it.each([
    'form-data; name="_method"',
    'form-data; name="_METHOD"',
    "form-data; name=_method",
    'form-data; NAME = "_method"',
    "form-data; name*=UTF-8''%5Fmethod",
    'form-data; name=".method"',
    'form-data; filename="a.txt"; name="_method"',
    "form-data; name='_method'",
    'form-data;\r\n name="_method"',
    'form-data;\r\n\tname="_method"',
    'form-data; name="_method\u0000"',
    'form-data; name="[_method]"',
    'form-data; name="_method[]"',
  ])("refuses a part with Content-Disposition: %j", (disposition) => {
    const body = `${part('form-data; name="a"', "1")}${part(disposition)}--XyZ--\r\n`;
    expect(() => checkBodyForOverride(bytes(body), TYPE)).toThrow(expect.objectContaining({ code: "invalid_request", status: 400 }));
    // Bare LF line endings, which lenient parsers accept, too.
    expect(() => checkBodyForOverride(bytes(body.replace(/\r\n/g, "\n")), TYPE)).toThrow(
      expect.objectContaining({ code: "invalid_request" }),
    );
  });

  it.each([
    [
      "a 'boundary' in another parameter, before the real one (PHP reads 'evil')",
      "multipart/form-data; foo=boundary; x=evil; boundary=XyZ",
    ],
    ["a lower-case 'boundary' inside an upper-case parameter's value (PHP reads 'evil')", "multipart/form-data; BOUNDARY=xboundary=evil"],
    ["two boundary parameters", "multipart/form-data; boundary=XyZ; boundary=evil"],
  ])("refuses a Content-Type with %s", (_label, type) => {
    const body = `--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--XyZ--\r\n`;
    expect(() => checkBodyForOverride(bytes(body), type)).toThrow(expect.objectContaining({ code: "invalid_request", status: 400 }));
  });

  it("accepts the boundaries browsers send, 'Boundary' in the value included (WebKit)", () => {
    for (const boundary of [
      "----WebKitFormBoundary7MA4YWxkTrZu0gW",
      "---------------------------9051914041544843365972754266",
      "----formdata-undici-0123456789",
    ]) {
      const body = `--${boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--${boundary}--\r\n`;
      expect(() => checkBodyForOverride(bytes(body), `multipart/form-data; boundary=${boundary}`)).not.toThrow();
    }
  });

  it("passes parts merely containing _method: a filename, a value, a file's content, the epilogue", () => {
    const body = `${part('form-data; name="file"; filename="_method"', 'Content-Disposition: form-data; name="_method"')}${part('form-data; name="method"', "_method")}--XyZ--\r\n${part('form-data; name="_method"')}`;
    expect(() => checkBodyForOverride(bytes(body), TYPE)).not.toThrow();
  });

  it.each([
    "_method=DELETE",
    "a=1&_METHOD=delete",
    "a=1;_method=PUT",
    "%5f%6Dethod=DELETE",
    "+_method=DELETE",
    ".method=DELETE",
    "_method",
    `${"+".repeat(100)}_method=DELETE`,
    `a=1&${"%20".repeat(100)}_method=DELETE`,
    `${"[".repeat(100)}_method]=DELETE`,
    `${"%5B%5d".repeat(50)}%5Fmethod=DELETE`,
    `${"+".repeat(100)}[method=DELETE`,
  ])("refuses the untyped (form) body %j", (body) => {
    expect(() => checkBodyForOverride(bytes(body), "")).toThrow(expect.objectContaining({ code: "invalid_request", status: 400 }));
  });

  it.each([
    '{"_method":1}',
    '{"a":"x\\\\","_method":1}',
    '{"a":"\\"","b":[{"c":"]}"}],"\\u005f\\u006Dethod":1}',
    '\ufeff {"_method" :1}',
    '{"x":1,"_method\\u0000":1}',
    ']}{"_method":1}',
  ])("refuses the JSON body %j", (body) => {
    expect(() => checkBodyForOverride(bytes(body), "application/json")).toThrow(
      expect.objectContaining({ code: "invalid_request", status: 400 }),
    );
  });

  it.each([
    '{"a":{"_method":1}}',
    '[{"_method":1}]',
    '{"a":"_method"}',
    '{"a":"\\",\\"_method\\":1"}',
    '{"a":["_method",":"]}',
    '"_method":1',
    '{"_methodx":1}',
  ])("passes the JSON body %j", (body) => {
    expect(() => checkBodyForOverride(bytes(body), "application/json")).not.toThrow();
  });

  it.each([
    "a=_method",
    "x_method=DELETE",
    "method=DELETE",
    "_methods=DELETE",
    "\u0000\u00ff_method",
    "_method_x=DELETE",
    "x%00_method=DELETE",
    "a[_method]=DELETE",
    `${"+".repeat(100)}x_method=DELETE`,
    `${"%2B".repeat(30)}_method=DELETE`,
  ])("passes the untyped body %j", (body) => {
    expect(() => checkBodyForOverride(bytes(body), "")).not.toThrow();
  });

  it.each([
    "multipart/form-data",
    'multipart/form-data; boundary="a,b"',
    "multipart/form-data; boundary=a; boundary=b",
    "multipart/form-data; boundary=a b",
    'multipart/form-data; boundary=a; x="y boundary=b"',
  ])("refuses the Content-Type %j (no single plain boundary)", (type) => {
    expect(() => checkBodyForOverride(bytes("--a\r\n\r\n"), type)).toThrow(expect.objectContaining({ code: "invalid_request" }));
  });
});
