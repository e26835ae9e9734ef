/**
 * Regression tests for the findings of the independent attack on issue 10's fixes (R1-R4), named
 * after them; each failed before its fix (docs/security.md, "Paths, hosts and headers at the
 * gateway"). The fuller cases are in path.test.ts, routes.test.ts and headers.test.ts.
 */
import { describe, expect, it } from "vitest";
import { checkBodyForOverride, hasMethodOverride } from "../../src/gateway/method-override.ts";
import { normalizePath } from "../../src/gateway/path.ts";
import { findUnambiguousRoute, parseGatewayRoutes } from "../../src/gateway/route-table.ts";
import { expectBearerError, expectOriginNotContacted, gatewayFetch, marker, withBearer } from "../support/gateway.ts";
import { mintToken } from "../support/tokens.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const refusal = expect.objectContaining({ code: "invalid_request", status: 400 });

describe("R1: foldPath trims only ASCII spaces; String.prototype.trim, .NET Trim and Java strip() also trim U+1680, U+2028, U+2029, U+FEFF (and .NET U+0085)", () => {
  const routes = parseGatewayRoutes([
    { prefix: "/pub", origin: "http://127.0.0.1:1", public: true },
    { prefix: "/pub/private", origin: "http://127.0.0.1:1", audience: "a", scopes: ["admin"] },
    { prefix: "/", host: "catchall.test", origin: "http://127.0.0.1:1", public: true },
  ]);
  it.each(["%E2%80%A8", "%E2%80%A9", "%EF%BB%BF", "%E1%9A%80", "%C2%85"])(
    "/pub/private + %s is ambiguous, /token + it is reserved",
    (ws) => {
      expect(findUnambiguousRoute(routes, "localhost", normalizePath(`/pub/private${ws}`))).toBe("ambiguous");
      expect(findUnambiguousRoute(routes, "catchall.test", normalizePath(`/token${ws}`))).toBe("reserved");
    },
  );
});

describe("R2: _method names that qs (Express), Rack 2 and PHP read as _method pass the query and form checks", () => {
  // qs: [_method] → _method, _method[] / _method[0] → ['DELETE'] (method-override takes val[0]);
  // Rack 2 normalize_params: \A[\[\]]*(key)\]* → [_method], ]_method, _method];
  // PHP: a name is cut at NUL (php_register_variable_ex uses strlen).
  const names = ["[_method]", "]_method", "_method]", "_method[]", "_method[0]", "_method%00", "_method%00x"];
  it.each(names)("query ?%s=DELETE is refused", (name) => {
    expect(hasMethodOverride(new URLSearchParams(`${name}=DELETE`))).toBe(true);
  });
  it.each(names)("untyped POST body %s=DELETE is refused", (name) => {
    expect(() => checkBodyForOverride(bytes(`${name}=DELETE`), "")).toThrow(refusal);
  });
});

describe("R3: multipart parts PHP reads as _method pass the part scanner", () => {
  const TYPE = "multipart/form-data; boundary=XyZ";
  it.each([
    ["single-quoted name (php_ap_getword_conf)", "Content-Disposition: form-data; name='_method'"],
    [
      "folded header line (multipart_buffer_headers: 'space in the beginning means same header')",
      'Content-Disposition: form-data;\r\n name="_method"',
    ],
    ["NUL in the name", 'Content-Disposition: form-data; name="_method\u0000"'],
    ["Rack 2 / qs bracket name", 'Content-Disposition: form-data; name="[_method]"'],
  ])("%s", (_label, headers) => {
    expect(() => checkBodyForOverride(bytes(`--XyZ\r\n${headers}\r\n\r\nDELETE\r\n--XyZ--\r\n`), TYPE)).toThrow(refusal);
  });

  it("a Content-Type whose first 'boundary' substring is not the boundary= parameter is refused (PHP takes the first '=' after it)", () => {
    const type = "multipart/form-data; foo=boundary; x=evil; boundary=XyZ";
    expect(() =>
      checkBodyForOverride(bytes('--evil\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--evil--\r\n'), type),
    ).toThrow(refusal);
  });
});

describe("R4: bodies the origin decodes differently from the gateway", () => {
  const writeToken = () => mintToken({ claims: { scope: "orders:read orders:write" } });

  it("a JSON body with _method (Laravel reads the JSON bag as the request bag; method-override's documented body getter) is refused", async () => {
    const mark = marker("review-json-override");
    const res = await gatewayFetch(
      `/api/${mark}`,
      withBearer(await writeToken(), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: '{"\\u005fmethod":"DELETE"}',
      }),
    );
    await expectBearerError(res, { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(mark);
  });

  it("a gzip-encoded form body (body-parser inflates it) is not forwarded unchecked", async () => {
    const mark = marker("review-gzip-override");
    const gz = await new Response(new Blob(["_method=DELETE"]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
    const res = await gatewayFetch(
      `/api/${mark}`,
      withBearer(await writeToken(), {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip" },
        body: gz,
      }),
    );
    // RFC 9110 §8.4: 415 for a content coding the server does not accept, with Accept-Encoding.
    expect(res.status).toBe(415);
    expect(res.headers.get("Accept-Encoding")).toBe("identity");
    await res.body?.cancel();
    await expectOriginNotContacted(mark);
  });
});
