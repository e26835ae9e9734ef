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
