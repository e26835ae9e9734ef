import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("Routing", () => {
  for (const [method, path] of [
    ["GET", "/"],
    ["GET", "/nope"],
    ["POST", "/tokens"],
    ["GET", "/.well-known/openid-configuration"],
    ["GET", "/token/extra"],
  ] as const) {
    it(`answers ${method} ${path} with a JSON 404`, async () => {
      const res = await exports.default.fetch(`${env.ISSUER}${path}`, { method });
      expect(res.status).toBe(404);
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      const body = (await res.json()) as Record<string, unknown>;
      expect(typeof body.error).toBe("string");
      expect(typeof body.error_description).toBe("string");
    });
  }
});

/** Headers that may differ between two answers to the same request. */
const headersOf = (res: Response): Record<string, string> => {
  const { date: _date, ...rest } = Object.fromEntries(res.headers as unknown as Iterable<[string, string]>);
  return rest;
};

describe("RFC 9110 §9 methods on the built-in endpoints", () => {
  const getEndpoints = ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server"];
  const postEndpoints = ["/token", "/revoke", "/introspect", "/register"];

  it.each(getEndpoints)("answers HEAD %s as GET: same status and headers, no body (§9.3.2)", async (path) => {
    const get = await exports.default.fetch(`${env.ISSUER}${path}`);
    const head = await exports.default.fetch(`${env.ISSUER}${path}`, { method: "HEAD" });
    expect(get.status).toBe(200);
    expect(head.status).toBe(200);
    expect(headersOf(head)).toEqual(headersOf(get));
    expect(await head.text()).toBe("");
  });

  it.each(getEndpoints.flatMap((path) => ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"].map((method) => [method, path])))(
    "answers %s %s with 405 and Allow: GET, HEAD, not the gateway's 404",
    async (method, path) => {
      const res = await exports.default.fetch(`${env.ISSUER}${path}`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("GET, HEAD");
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      expect(((await res.json()) as { error: string }).error).toBe("invalid_request");
    },
  );

  it.each(postEndpoints.flatMap((path) => ["HEAD", "OPTIONS"].map((method) => [method, path])))(
    "answers %s %s with 405 and Allow: POST",
    async (method, path) => {
      const res = await exports.default.fetch(`${env.ISSUER}${path}`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("POST");
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      if (method === "HEAD") expect(await res.text()).toBe("");
    },
  );

  it.each(["OPTIONS", "POST", "PATCH"])("answers %s /register/{client_id} with 405 and Allow: GET, HEAD, PUT, DELETE", async (method) => {
    const res = await exports.default.fetch(`${env.ISSUER}/register/someone`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET, HEAD, PUT, DELETE");
  });
});
