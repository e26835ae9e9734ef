import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { expectJSONError, fetchWithEnv, JWKS_URL, seedClient, tokenRequestObject, type SeededClient } from "../support/worker.ts";
import { importSigningKeys, SigningKeyError } from "../../src/keys/signing.ts";

const configured = (JSON.parse(env.SIGNING_KEY) as { keys: JWK[] }).keys;
const first = configured[0]!;

function without(jwk: JWK, ...members: string[]): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const m of members) delete copy[m];
  return copy as JWK;
}

async function rsaKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true, modulusLength: 2048 });
  return { ...(await exportJWK(privateKey)), kid: "rsa-1", alg: "RS256" };
}

let client: SeededClient;
let lines: string[];

beforeAll(async () => {
  client = await seedClient();
});

afterEach(() => {
  vi.restoreAllMocks();
});

function captureLogs(): void {
  lines = [];
  const capture = (...args: unknown[]) => void lines.push(args.map((a) => (typeof a === "string" ? a : String(a))).join(" "));
  vi.spyOn(console, "log").mockImplementation(capture);
  vi.spyOn(console, "error").mockImplementation(capture);
}

const brokenKeys: [string, () => Promise<string | undefined>][] = [
  ["missing", async () => undefined],
  ["empty", async () => ""],
  ["not JSON", async () => "{not json"],
  ["a JSON string", async () => JSON.stringify("key")],
  ["an empty JWK Set", async () => JSON.stringify({ keys: [] })],
  ["a public-only JWK (no d)", async () => JSON.stringify(without(first, "d"))],
  ["a JWK Set whose published key is public-only", async () => JSON.stringify({ keys: [first, without(configured[1]!, "d")] })],
  ["an RSA key", async () => JSON.stringify(await rsaKey())],
  ["an EC key without kid", async () => JSON.stringify(without(first, "kid"))],
  ["an EC key with a path-like kid", async () => JSON.stringify({ ...first, kid: "../../etc/passwd" })],
  ["an EC key with alg HS256", async () => JSON.stringify({ ...first, alg: "HS256" })],
  ["a P-384 key", async () => JSON.stringify({ ...first, crv: "P-384" })],
  ["a key whose d is not a P-256 scalar", async () => JSON.stringify({ ...first, d: "AAAA" })],
  ["a JWK whose d belongs to another key", async () => JSON.stringify({ ...first, d: configured[1]!.d })],
  ["the same kid twice", async () => JSON.stringify({ keys: [first, first] })],
];

describe("Missing or malformed SIGNING_KEY (docs/security.md item 22)", () => {
  for (const [what, make] of brokenKeys) {
    it(`answers /token with 503 temporarily_unavailable and no token when SIGNING_KEY is ${what}`, async () => {
      const raw = await make();
      captureLogs();
      const res = await fetchWithEnv(tokenRequestObject(client), undefined, { SIGNING_KEY: raw });
      const text = JSON.stringify(await expectJSONError(res, 503, "temporarily_unavailable"));
      // Private key material reaches neither the wire nor the log (item 23).
      expect(text).not.toContain(first.d!);
      expect(lines.join("\n")).not.toContain(first.d!);
      expect(lines.join("\n")).toContain("SIGNING_KEY");
    });
  }

  it("answers the JWKS with 503 when SIGNING_KEY is malformed", async () => {
    captureLogs();
    const res = await fetchWithEnv(JWKS_URL, undefined, { SIGNING_KEY: JSON.stringify(without(first, "d")) });
    expect(res.status).toBe(503);
    expect(JSON.parse(await res.text()).error).toBe("temporarily_unavailable");
  });

  it("signs again once SIGNING_KEY is fixed (a failed import is not cached)", async () => {
    captureLogs();
    const broken = await fetchWithEnv(tokenRequestObject(client), undefined, { SIGNING_KEY: "{not json" });
    expect(broken.status).toBe(503);
    const fixed = await fetchWithEnv(tokenRequestObject(client), undefined, { SIGNING_KEY: env.SIGNING_KEY });
    expect(fixed.status).toBe(200);
  });

  it("signs with a single private JWK (not a set) as SIGNING_KEY", async () => {
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, { SIGNING_KEY: JSON.stringify(first) });
    expect(res.status).toBe(200);
  });
});

describe("importSigningKeys", () => {
  it("names SIGNING_KEY in every error", async () => {
    for (const [what, make] of brokenKeys) {
      const error = await importSigningKeys(await make()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(SigningKeyError);
      expect((error as Error).message, what).toMatch(/SIGNING_KEY/);
      expect((error as Error).message, what).not.toContain(first.d!);
    }
  });

  it("makes the first key the signer and publishes every key without d", async () => {
    const keys = await importSigningKeys(env.SIGNING_KEY);
    expect(keys.signer.kid).toBe(first.kid);
    expect([...keys.verifiers.keys()]).toEqual(configured.map((k) => k.kid));
    for (const jwk of keys.jwks.keys) expect(jwk).not.toHaveProperty("d");
  });
});
