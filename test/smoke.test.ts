import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("smoke", () => {
  it("serves metadata", async () => {
    const res = await exports.default.fetch("https://auth.tollgate.test/.well-known/oauth-authorization-server");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { issuer: string }).issuer).toBe(env.ISSUER);
  });
});
