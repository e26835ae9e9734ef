/**
 * Keys under KEY_SEED (src/keys/signing.ts on the schedule of schedule.ts): the signer and the
 * published set at chosen times (`now` passed explicitly), tokens across an epoch boundary and a
 * rotate-now switch as the gateway verifies them, the migration from SIGNING_KEY, and the endpoints.
 */
import { env } from "cloudflare:workers";
import { base64url, createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { BearerError } from "../../src/http/errors.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../../src/policy.ts";
import { verifyAccessToken } from "../../src/tokens/verify.ts";
import { getVerifiedToken } from "../../src/tokens/verified-cache.ts";
import { derivePrivateScalar, deriveSigningKey } from "../../src/keys/derive.ts";
import { generateKeySeed } from "../../src/keys/new-key-pair.ts";
import { GENERATION_KEY } from "../../src/keys/generation-record.ts";
import { generationRetention, type GenerationRecord } from "../../src/keys/schedule.ts";
import { getSigningKeys, parseKeySeed, SigningKeyError, type SigningKeys } from "../../src/keys/signing.ts";
import { mintAccessToken } from "../../src/tokens/mint.ts";
import { fetchWithEnv, JWKS_URL, seedClient, tokenRequestObject, type SeededClient } from "../support/worker.ts";

const P = 86_400;
const MAX_TTL = 3600;
const E = 20_000;
const T = E * P; // the first second of epoch E
const AUDIENCE = "https://api.tollgate.test";
const seedRaw = generateKeySeed();
const seed = parseKeySeed(seedRaw);
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] as const;

/** A namespace holding only keys:generation (or nothing). */
function generationKV(record: GenerationRecord | null | string): KVNamespace {
  const value = record === null ? null : typeof record === "string" ? record : JSON.stringify(record);
  return { get: async (key: string) => (key === GENERATION_KEY ? value : null) } as unknown as KVNamespace;
}

/** The Worker's env with KEY_SEED, no SIGNING_KEY, and `record` as keys:generation. */
function seedEnv(record: GenerationRecord | null | string = null, overrides: Record<string, unknown> = {}): Env {
  return {
    ...env,
    KEY_SEED: seedRaw,
    SIGNING_KEY: undefined,
    ROTATION_PERIOD: String(P),
    MAX_ACCESS_TOKEN_TTL: String(MAX_TTL),
    CLIENTS: generationKV(record),
    ...overrides,
  } as unknown as Env;
}

const kidOf = async (generation: number, epoch: number) => (await deriveSigningKey(seed, generation, epoch)).kid;

function mint(keys: SigningKeys, now: number, lifetime = MAX_TTL) {
  return mintAccessToken(keys, {
    issuer: env.ISSUER,
    clientId: "rotation-test",
    audience: [AUDIENCE],
    scopes: ["orders:read"],
    lifetime,
    now,
  });
}

function verifyAt(token: string, keys: SigningKeys, now: number) {
  return verifyAccessToken(token, keys, {
    issuer: env.ISSUER,
    audience: AUDIENCE,
    maxLifetime: MAX_TTL,
    currentDate: new Date(now * 1000),
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("signer and JWKS under KEY_SEED at chosen times", () => {
  it("signs with key(0, e) and publishes it first, then key(0, e + 1) and key(0, e - 1)", async () => {
    const keys = await getSigningKeys(seedEnv(), T + 1234);
    const expected = [await kidOf(0, E), await kidOf(0, E + 1), await kidOf(0, E - 1)];
    expect(keys.signer.kid).toBe(expected[0]);
    expect(keys.jwks.keys.map((k) => k.kid)).toEqual(expected);
    expect([...keys.verifiers.keys()]).toEqual(expected);
  });

  it("signs with the next key from the first second of the next epoch", async () => {
    expect((await getSigningKeys(seedEnv(), T + P - 1)).signer.kid).toBe(await kidOf(0, E));
    expect((await getSigningKeys(seedEnv(), T + P)).signer.kid).toBe(await kidOf(0, E + 1));
  });

  it("follows ROTATION_PERIOD", async () => {
    const period = 4000; // >= 3600 + 300 + 30
    const now = 1_900_000_000;
    const keys = await getSigningKeys(seedEnv(null, { ROTATION_PERIOD: String(period) }), now);
    expect(keys.signer.kid).toBe(await kidOf(0, Math.floor(now / period)));
  });

  it("publishes no private member, no d and not the seed (docs/security.md item 23)", async () => {
    const keys = await getSigningKeys(seedEnv(), T + 5);
    const text = JSON.stringify(keys.jwks);
    for (const key of keys.jwks.keys as Record<string, unknown>[]) {
      for (const member of PRIVATE_MEMBERS) expect(key, member).not.toHaveProperty(member);
      expect(Object.keys(key).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x", "y"]);
    }
    for (const epoch of [E - 1, E, E + 1]) expect(text).not.toContain(base64url.encode(await derivePrivateScalar(seed, 0, epoch)));
    expect(text).not.toContain(seedRaw);
  });

  it("hands every request under the same plan the same key set, and keeps keys across an epoch change", async () => {
    const a = await getSigningKeys(seedEnv(), T + P - 2);
    const b = await getSigningKeys(seedEnv(), T + P - 1);
    expect(b).toBe(a);
    const next = await getSigningKeys(seedEnv(), T + P);
    expect(next).not.toBe(a);
    // The two keys both epochs publish are the very same imported keys: only key(0, e + 2) is new.
    for (const kid of [await kidOf(0, E), await kidOf(0, E + 1)]) expect(next.verifiers.get(kid)).toBe(a.verifiers.get(kid));
  });
});

describe("a token signed one second before an epoch boundary, at the gateway", () => {
  it("verifies after the boundary until it expires, and is then refused as expired, not as unknown", async () => {
    const boundary = T + P;
    const signedAt = boundary - 1;
    const { token, claims } = await mint(await getSigningKeys(seedEnv(), signedAt), signedAt);
    expect(decodeProtectedHeader(token).kid).toBe(await kidOf(0, E));
    for (const now of [boundary, boundary + 1, boundary + 600, claims.exp - 1, claims.exp + CLOCK_TOLERANCE_SECONDS - 1]) {
      const keys = await getSigningKeys(seedEnv(), now);
      expect(keys.signer.kid, String(now - boundary)).not.toBe(decodeProtectedHeader(token).kid);
      await expect(verifyAt(token, keys, now), `${now - boundary} s after the boundary`).resolves.toMatchObject({ jti: claims.jti });
    }
    const late = claims.exp + CLOCK_TOLERANCE_SECONDS;
    await expect(verifyAt(token, await getSigningKeys(seedEnv(), late), late)).rejects.toMatchObject({
      description: "the access token has expired",
    });
  });

  it("keeps the signing key published until the next boundary but one, long after its longest token", async () => {
    const kid = await kidOf(0, E);
    expect((await getSigningKeys(seedEnv(), T + 2 * P - 1)).verifiers.has(kid)).toBe(true);
    expect((await getSigningKeys(seedEnv(), T + 2 * P)).verifiers.has(kid)).toBe(false);
    // ROTATION_PERIOD's minimum guarantees the longest token signed at the end of E is gone by then.
    expect(T + P - 1 + MAX_TTL + CLOCK_TOLERANCE_SECONDS).toBeLessThan(T + 2 * P);
  });

  it("refuses a token whose key has left the set (a key of another seed)", async () => {
    const otherEnv = seedEnv(null, { KEY_SEED: generateKeySeed() });
    const { token } = await mint(await getSigningKeys(otherEnv, T + 10), T + 10);
    await expect(verifyAt(token, await getSigningKeys(seedEnv(), T + 20), T + 20)).rejects.toBeInstanceOf(BearerError);
  });
});

describe("the gateway's verified-token cache across an epoch change", () => {
  it("keeps a cached token when the epoch changes, and not when its key is gone", async () => {
    const signedAt = T + P - 10;
    const before = await getSigningKeys(seedEnv(), signedAt);
    const { token, claims } = await mint(before, signedAt);
    await verifyAt(token, before, signedAt);
    const after = await getSigningKeys(seedEnv(), T + P + 10);
    expect(after).not.toBe(before);
    expect(getVerifiedToken(after, token, T + P + 10)).toMatchObject({ jti: claims.jti });
    const foreign = await getSigningKeys(seedEnv(null, { KEY_SEED: generateKeySeed() }), T + P + 10);
    expect(getVerifiedToken(foreign, token, T + P + 10)).toBeUndefined();
  });
});

describe("rotate now: keys:generation {generation: 1, since}", () => {
  const since = T + 40_000;
  const record = { generation: 1, since };
  const retention = generationRetention(MAX_TTL);

  it("before since: generation 0 signs; generation 1's keys are published ahead", async () => {
    const keys = await getSigningKeys(seedEnv(record), since - 1);
    expect(keys.signer.kid).toBe(await kidOf(0, E));
    const kids = [...keys.verifiers.keys()];
    for (const epoch of [E - 1, E, E + 1]) {
      expect(kids).toContain(await kidOf(0, epoch));
      expect(kids).toContain(await kidOf(1, epoch));
    }
    expect(keys.jwks.keys).toHaveLength(6);
  });

  it("from since: generation 1 signs; tokens of generation 0 verify until they expire", async () => {
    const { token: old } = await mint(await getSigningKeys(seedEnv(record), since - 1), since - 1);
    const keys = await getSigningKeys(seedEnv(record), since);
    expect(keys.signer.kid).toBe(await kidOf(1, E));
    const { token: fresh } = await mint(keys, since);
    expect(decodeProtectedHeader(fresh).kid).not.toBe(decodeProtectedHeader(old).kid);
    for (const now of [since, since + 1800, since - 1 + MAX_TTL + CLOCK_TOLERANCE_SECONDS - 1]) {
      const at = await getSigningKeys(seedEnv(record), now);
      await expect(verifyAt(old, at, now), `old at since+${now - since}`).resolves.toBeDefined();
      await expect(verifyAt(fresh, at, now), `fresh at since+${now - since}`).resolves.toBeDefined();
    }
  });

  it("accepts a token from an isolate that had not yet seen the record when since passed", async () => {
    const staleAt = since + 100;
    const { token } = await mint(await getSigningKeys(seedEnv(null), staleAt), staleAt);
    expect(decodeProtectedHeader(token).kid).toBe(await kidOf(0, E));
    const lastSecond = staleAt + MAX_TTL + CLOCK_TOLERANCE_SECONDS - 1;
    await expect(verifyAt(token, await getSigningKeys(seedEnv(record), lastSecond), lastSecond)).resolves.toBeDefined();
  });

  it("verifies a stale isolate's token signed just after an epoch boundary with the JWKS served between since and the boundary", async () => {
    // keys rotate --in 0 written 60 s before the boundary; a resource server fetches the JWKS 20 s
    // before it; 10 s after it an isolate that has not read the record signs with generation 0.
    const boundary = T + P;
    const rotated = { generation: 1, since: boundary - 60 };
    const cached = createLocalJWKSet((await getSigningKeys(seedEnv(rotated), boundary - 20)).jwks);
    const { token } = await mint(await getSigningKeys(seedEnv(null), boundary + 10), boundary + 10);
    expect(decodeProtectedHeader(token).kid).toBe(await kidOf(0, E + 1));
    const options = {
      issuer: env.ISSUER,
      audience: AUDIENCE,
      typ: "at+jwt",
      algorithms: ["ES256"],
      currentDate: new Date((boundary + 10) * 1000),
    };
    await expect(jwtVerify(token, cached, options)).resolves.toBeDefined();
  });

  it("drops generation 0 at since + generationRetention", async () => {
    const keep = await getSigningKeys(seedEnv(record), since + retention - 1);
    const drop = await getSigningKeys(seedEnv(record), since + retention);
    expect(keep.verifiers.has(await kidOf(0, E))).toBe(true);
    expect(drop.verifiers.has(await kidOf(0, E))).toBe(false);
    expect([...drop.verifiers.keys()]).toEqual([await kidOf(1, E), await kidOf(1, E + 1), await kidOf(1, E - 1)]);
  });

  it("answers 503 on a malformed keys:generation rather than guessing a generation", async () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const error = await getSigningKeys(seedEnv('{"generation":"next"}'), since).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SigningKeyError);
    expect((error as Error).message).toMatch(/keys:generation/);
    const res = await fetchWithEnv(JWKS_URL, undefined, {
      KEY_SEED: seedRaw,
      SIGNING_KEY: undefined,
      CLIENTS: generationKV('{"generation":"next"}'),
    });
    expect(res.status).toBe(503);
  });
});

describe("SIGNING_KEY beside KEY_SEED: generation 0 until the first rotation (migration)", () => {
  const configured = (JSON.parse(env.SIGNING_KEY) as { keys: JWK[] }).keys;
  const since = T + 1000;
  const both = (record: GenerationRecord | null) => seedEnv(record, { SIGNING_KEY: env.SIGNING_KEY });

  it("keeps signing with SIGNING_KEY and publishes only its keys while no rotation is recorded", async () => {
    const keys = await getSigningKeys(both(null), T);
    expect(keys.signer.kid).toBe(configured[0]!.kid);
    expect(keys.jwks.keys.map((k) => k.kid)).toEqual(configured.map((k) => k.kid));
  });

  it("publishes generation 1 ahead, signs with it from since, and keeps SIGNING_KEY's keys published meanwhile", async () => {
    const record = { generation: 1, since };
    const before = await getSigningKeys(both(record), since - 1);
    expect(before.signer.kid).toBe(configured[0]!.kid);
    expect([...before.verifiers.keys()]).toContain(await kidOf(1, E));
    const { token } = await mint(before, since - 1);
    const after = await getSigningKeys(both(record), since);
    expect(after.signer.kid).toBe(await kidOf(1, E));
    for (const k of configured) expect(after.verifiers.has(k.kid!)).toBe(true);
    await expect(verifyAt(token, after, since + 60)).resolves.toBeDefined();
    const done = await getSigningKeys(both(record), since + generationRetention(MAX_TTL));
    for (const k of configured) expect(done.verifiers.has(k.kid!)).toBe(false);
  });
});

describe("the endpoints under KEY_SEED (docs/security.md items 22, 23)", () => {
  let client: SeededClient;
  beforeAll(async () => {
    client = await seedClient();
  });
  // The real namespace holds no keys:generation: generation 0.
  const overrides = { KEY_SEED: seedRaw, SIGNING_KEY: undefined };
  const currentKids = async () => {
    const epoch = Math.floor(Date.now() / 1000 / 86_400);
    return [await kidOf(0, epoch), await kidOf(0, epoch + 1), await kidOf(0, epoch - 1)];
  };

  it("serves the current, next and retired keys in the JWKS, without any private member", async () => {
    const expected = await currentKids();
    const res = await fetchWithEnv(JWKS_URL, undefined, overrides);
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as { keys: Record<string, unknown>[] };
    expect(body.keys.map((k) => k.kid)).toEqual(expected);
    for (const key of body.keys) for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
    expect(text).not.toContain(seedRaw);
  });

  it("issues a token signed by the current key that the JWKS verifies and the gateway accepts", async () => {
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, overrides);
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    expect(decodeProtectedHeader(access_token).kid).toBe((await currentKids())[0]);
    const jwks = createLocalJWKSet((await (await fetchWithEnv(JWKS_URL, undefined, overrides)).json()) as { keys: JWK[] });
    await expect(
      jwtVerify(access_token, jwks, { issuer: env.ISSUER, audience: AUDIENCE, typ: "at+jwt", algorithms: ["ES256"] }),
    ).resolves.toBeDefined();
    const through = await fetchWithEnv(
      `${env.ISSUER}/api/rotation-${crypto.randomUUID()}`,
      { headers: { Authorization: `Bearer ${access_token}` } },
      overrides,
    );
    expect(through.status).toBe(200);
    expect(through.headers.get("X-Origin")).toBe("echo");
  });

  it("answers 503 and no token for a malformed KEY_SEED, naming it in the log without echoing it", async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    const bad = "c2hvcnQtc2VlZA";
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, { KEY_SEED: bad, SIGNING_KEY: undefined });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).not.toContain("access_token");
    expect(JSON.parse(text).error).toBe("temporarily_unavailable");
    expect(lines.join("\n")).toContain("KEY_SEED");
    expect(lines.join("\n")).not.toContain(bad);
    expect((await fetchWithEnv(JWKS_URL, undefined, { KEY_SEED: bad, SIGNING_KEY: undefined })).status).toBe(503);
  });

  it("answers 503 when neither KEY_SEED nor SIGNING_KEY is set", async () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, { KEY_SEED: undefined, SIGNING_KEY: undefined });
    expect(res.status).toBe(503);
    expect((await fetchWithEnv(JWKS_URL, undefined, { KEY_SEED: "", SIGNING_KEY: "" })).status).toBe(503);
  });

  it("fails loudly (500, logged) when ROTATION_PERIOD is too short for MAX_ACCESS_TOKEN_TTL under KEY_SEED", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const res = await fetchWithEnv(JWKS_URL, undefined, { ...overrides, ROTATION_PERIOD: "3929", MAX_ACCESS_TOKEN_TTL: "3600" });
    expect(res.status).toBe(500);
    expect(lines.join("\n")).toMatch(/ROTATION_PERIOD.*MAX_ACCESS_TOKEN_TTL/);
    expect((await fetchWithEnv(JWKS_URL, undefined, { ...overrides, ROTATION_PERIOD: "3930", MAX_ACCESS_TOKEN_TTL: "3600" })).status).toBe(
      200,
    );
  });
});
