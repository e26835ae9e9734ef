/**
 * The proxy (src/gateway/proxy.ts): where a request goes (origin base path, strip_prefix, query),
 * that bodies arrive intact both ways, and that origin failures become JSON 502/504.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { expectJSONError } from "../support/worker.ts";
import { upstreamURL } from "../../src/gateway/proxy.ts";
import { parseGatewayRoutes } from "../../src/gateway/route-table.ts";
import { expectProxied, gatewayFetch, marker, originRequestsWith, rawHeaderValues, withBearer } from "../support/gateway.ts";
import { AUDIENCE, mintToken } from "../support/tokens.ts";

const hex = (bytes: ArrayBuffer): string => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (data: Uint8Array): Promise<string> => hex(await crypto.subtle.digest("SHA-256", data));

/** `size` bytes of a fixed, non-repeating-looking pattern (deterministic, unlike random data). */
function patternBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

const writeToken = () => mintToken({ claims: { scope: "orders:read orders:write" } });

describe("upstreamURL", () => {
  const routes = parseGatewayRoutes([
    { prefix: "/a", origin: "https://origin.example", audience: AUDIENCE },
    { prefix: "/s", origin: "http://origin.example:8080/base/", audience: AUDIENCE, strip_prefix: true },
    { prefix: "/v", service: "SVC", audience: AUDIENCE },
  ]);
  const byPrefix = (prefix: string) => routes.find((r) => r.prefix === prefix)!;

  it.each([
    ["/a", "/a/x/y", "?q=1", "https://origin.example/a/x/y?q=1"],
    ["/a", "/a", "", "https://origin.example/a"],
    ["/s", "/s/x/y", "", "http://origin.example:8080/base/x/y"],
    ["/s", "/s", "?q=%2F", "http://origin.example:8080/base/?q=%2F"],
    ["/s", "/s/", "", "http://origin.example:8080/base/"],
    ["/v", "/v/x", "", "https://service.internal/v/x"],
  ])("on route %s sends %j%s to %j", (prefix, path, query, expected) => {
    expect(upstreamURL(byPrefix(prefix), path, query)).toBe(expected);
  });
});

describe("where the request goes", () => {
  it("strips the prefix and prepends the origin's base path on /strip: /strip/a/b → /base/a/b", async () => {
    const mark = marker("strip");
    const echo = await expectProxied(await gatewayFetch(`/strip/${mark}/a/b?x=1`, withBearer(await mintToken())));
    expect(echo.path).toBe(`/base/${mark}/a/b?x=1`);
    expect(await originRequestsWith(mark)).toHaveLength(1);
  });

  it("sends /strip itself to the base path, and /stripx nowhere", async () => {
    const token = await mintToken();
    const mark = marker("strip-root");
    expect((await expectProxied(await gatewayFetch(`/strip?${mark}`, withBearer(token)))).path).toBe(`/base/?${mark}`);
    const lookalike = marker("stripx");
    await expectJSONError(await gatewayFetch(`/stripx/${lookalike}`, withBearer(token)), 404, "not_found");
  });

  it("keeps the whole path on routes without strip_prefix, and the method", async () => {
    for (const method of ["GET", "PUT", "PATCH", "OPTIONS"]) {
      const mark = marker(method.toLowerCase());
      const init = withBearer(await writeToken(), { method, body: method === "GET" || method === "OPTIONS" ? undefined : "x" });
      const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, init));
      expect({ method: echo.method, path: echo.path }).toEqual({ method, path: `/api/${mark}` });
    }
  });

  it("answers HEAD without a body", async () => {
    const mark = marker("head");
    const res = await gatewayFetch(`/api/${mark}`, withBearer(await mintToken(), { method: "HEAD" }));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    expect((await originRequestsWith(mark))[0]?.method).toBe("HEAD");
  });
});

describe("bodies are passed through intact", () => {
  it("delivers a 1 MiB POST body byte for byte", async () => {
    const body = patternBytes(1 << 20);
    const mark = marker("upload");
    const echo = await expectProxied(
      await gatewayFetch(
        `/api/${mark}`,
        withBearer(await writeToken(), { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body }),
      ),
    );
    expect(echo.body_bytes).toBe(1 << 20);
    expect(echo.body_sha256).toBe(await sha256(body));
    expect(rawHeaderValues(echo, "Content-Type")).toEqual(["application/octet-stream"]);
  });

  it("delivers a streamed (chunked) POST body", async () => {
    const chunks = [patternBytes(1000), patternBytes(70_000).subarray(5), new Uint8Array([0, 1, 2])];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((offset, c) => (all.set(c, offset), offset + c.length), 0);
    const mark = marker("stream");
    const echo = await expectProxied(await gatewayFetch(`/api/${mark}`, withBearer(await writeToken(), { method: "POST", body: stream })));
    expect(echo.body_bytes).toBe(all.length);
    expect(echo.body_sha256).toBe(await sha256(all));
  });

  it("streams a large response back whole", async () => {
    const size = 3 * 1024 * 1024 + 7;
    const res = await gatewayFetch(`/api/${marker("big")}/__big?bytes=${size}`, withBearer(await mintToken()));
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/octet-stream");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.length).toBe(size);
    expect(bytes.every((b) => b === 0x61)).toBe(true);
  });
});

describe("origin failures become JSON errors", () => {
  it("answers 502 bad_gateway when the origin cannot be reached, without naming it", async () => {
    const body = await expectJSONError(await gatewayFetch(`/down/${marker("down")}`, withBearer(await mintToken())), 502, "bad_gateway");
    expect(JSON.stringify(body)).not.toContain("127.0.0.1");
  });

  it("checks the token before trying the origin: /down without a token is a 401, not a 502", async () => {
    const res = await gatewayFetch("/down/x");
    expect(res.status).toBe(401);
  });

  it("answers 504 gateway_timeout when the origin sends no headers within timeout_ms", async () => {
    const mark = marker("slow");
    const body = await expectJSONError(
      await gatewayFetch(`/slow/${mark}/__slow?ms=2000`, withBearer(await mintToken())),
      504,
      "gateway_timeout",
    );
    expect(JSON.stringify(body)).not.toContain(env.TEST_ORIGIN_URL);
    // The origin did get the request: the timeout is on its answer, not on reaching it.
    expect(await originRequestsWith(mark)).toHaveLength(1);
  });
});
