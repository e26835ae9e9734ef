import { env, exports } from "cloudflare:workers";
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { JWKS_URL } from "../support/worker.ts";

const configured = (JSON.parse(env.SIGNING_KEY) as { keys: JWK[] }).keys;
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] as const;

describe("RFC 7517 §5 GET /.well-known/jwks.json", () => {
  it("serves a JWK Set with the public half of every configured key and nothing else", async () => {
    const res = await exports.default.fetch(JWKS_URL);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/jwk-set\+json/);
    const body = (await res.json()) as { keys: JWK[] };
    expect(Object.keys(body)).toEqual(["keys"]);
    expect(body.keys).toHaveLength(configured.length);
    for (const key of body.keys) {
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
      expect(typeof key.kid).toBe("string");
      expect(typeof key.x).toBe("string");
      expect(typeof key.y).toBe("string");
    }
  });

  it("publishes no private key member (docs/security.md item 23)", async () => {
    const res = await exports.default.fetch(JWKS_URL);
    const text = await res.text();
    const body = JSON.parse(text) as { keys: Record<string, unknown>[] };
    for (const key of body.keys) {
      for (const member of PRIVATE_MEMBERS) expect(key, `${String(key.kid)} ${member}`).not.toHaveProperty(member);
    }
    for (const key of configured) expect(text).not.toContain(key.d!);
  });

  it("publishes both configured kids: the signing key and the published-only one", async () => {
    const body = (await (await exports.default.fetch(JWKS_URL)).json()) as { keys: JWK[] };
    const kids = body.keys.map((k) => k.kid);
    expect(kids).toEqual(configured.map((k) => k.kid));
    expect(kids).toContain(env.TEST_PUBLISHED_ONLY_KID);
    expect(kids[0]).not.toBe(env.TEST_PUBLISHED_ONLY_KID);
  });

  it("publishes each key's own public coordinates", async () => {
    const body = (await (await exports.default.fetch(JWKS_URL)).json()) as { keys: JWK[] };
    for (const [i, key] of body.keys.entries()) {
      expect({ x: key.x, y: key.y }).toEqual({ x: configured[i]!.x, y: configured[i]!.y });
    }
  });

  it("verifies a token signed by the published-only key, so a retired key's tokens keep verifying", async () => {
    const retired = configured.find((k) => k.kid === env.TEST_PUBLISHED_ONLY_KID)!;
    const token = await new SignJWT({ client_id: "c" })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: retired.kid })
      .setIssuer(env.ISSUER)
      .setExpirationTime("1m")
      .sign(await importJWK(retired, "ES256"));
    const jwks = createLocalJWKSet((await (await exports.default.fetch(JWKS_URL)).json()) as { keys: JWK[] });
    const { protectedHeader } = await jwtVerify(token, jwks, { issuer: env.ISSUER, algorithms: ["ES256"] });
    expect(protectedHeader.kid).toBe(env.TEST_PUBLISHED_ONLY_KID);
  });

  it("may be cached publicly and read cross-origin", async () => {
    const res = await exports.default.fetch(JWKS_URL);
    expect(res.headers.get("Cache-Control")).toMatch(/^public, max-age=\d+$/);
    expect(Number(/max-age=(\d+)/.exec(res.headers.get("Cache-Control")!)![1])).toBeGreaterThan(0);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
  });
});
