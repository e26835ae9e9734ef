/**
 * The bearer check on protected routes (src/tokens/verify.ts), through the Worker's entry point:
 * docs/security.md items 1-10 and 15. Every refusal is asserted with its status, RFC 6750 §3 challenge
 * and JSON error, and with the echo origin's log showing the request never reached it.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BearerError } from "../../src/http/errors.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../../src/policy.ts";
import { checkScopes, extractBearerToken, MAX_TOKEN_LENGTH, verifyAccessToken } from "../../src/tokens/verify.ts";
import { importSigningKeys } from "../../src/keys/signing.ts";
import type { AccessTokenClaims } from "../../src/tokens/mint.ts";
import { issueToken, seedClient } from "../support/worker.ts";
import { expectInactive, expectRevocationOK, introspect, introspection, revoke } from "../support/revocation.ts";
import {
  expectBearerError,
  expectInvalidToken,
  expectOriginNotContacted,
  expectProxied,
  gatewayFetch,
  marker,
  originRequestsWith,
  REALM,
  withBearer,
} from "../support/gateway.ts";
import {
  accessTokenClaims,
  attackerKey,
  AUDIENCE,
  b64,
  derEncode,
  es256,
  forgeJWS,
  hs256,
  ISSUER,
  mintToken,
  type MintOptions,
  nowSeconds,
  P256_ORDER,
  publicKeyForms,
  signatureOf,
  testKey,
  withSignature,
} from "../support/tokens.ts";

/** GET /api/<mark> with the token: the route needs orders:read, which accessTokenClaims grants. */
function callAPI(token: string, mark: string, init: RequestInit = {}): Promise<Response> {
  return gatewayFetch(`/api/${mark}`, withBearer(token, init));
}

/** The token is refused with 401 invalid_token and the origin never saw the request. */
async function expectRefused(token: string, description?: string | RegExp): Promise<void> {
  const mark = marker("refused");
  await expectInvalidToken(await callAPI(token, mark), mark, description);
}

/** The token is accepted: the echo origin answers for this very request. */
async function expectAccepted(token: string, path = "/api"): Promise<void> {
  const mark = marker("accepted");
  const echo = await expectProxied(await gatewayFetch(`${path}/${mark}`, withBearer(token)));
  expect(echo.path).toBe(`${path}/${mark}`);
  expect(await originRequestsWith(mark)).toHaveLength(1);
}

describe("a well-formed token is accepted (the controls every refusal below is measured against)", () => {
  it("accepts a token minted by the test helper with the signing key", async () => {
    await expectAccepted(await mintToken());
  });

  it("accepts a real token from POST /token for a seeded client", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const mark = marker("real");
    const echo = await expectProxied(await callAPI(access_token, mark));
    expect(echo.headers["x-tollgate-client-id"]).toBe(client.client_id);
    expect(echo.headers["x-tollgate-scope"]).toBe("orders:read");
  });

  it("takes the auth scheme name in any case (RFC 9110 §11.1)", async () => {
    const mark = marker("case");
    await expectProxied(await gatewayFetch(`/api/${mark}`, { headers: { Authorization: `bEARER ${await mintToken()}` } }));
  });
});

describe("RFC 6750 §2 and §3: where the token may be and what a request without one gets", () => {
  it("answers a request without credentials with 401, a challenge and a JSON body both carrying no error code (§3.1)", async () => {
    const mark = marker("none");
    const res = await gatewayFetch(`/api/${mark}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${REALM}"`);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ error_description: "an access token is required" });
    await expectOriginNotContacted(mark);
  });

  it("treats another auth scheme (Basic) as no credentials: 401 without error code", async () => {
    const mark = marker("basic");
    const res = await gatewayFetch(`/api/${mark}`, { headers: { Authorization: `Basic ${btoa("client:secret")}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${REALM}"`);
    await expectOriginNotContacted(mark);
  });

  it.each([
    ["Bearer", "no token"],
    ["Bearer ", "an empty token"],
    ["Bearer a b", "a space inside the token"],
    ['Bearer "abc.def.ghi"', "a quoted token"],
    ["Bearer abc=def", "'=' inside the token"],
    ["Bearer a, Bearer b", "two tokens in one header"],
    ['Bearer realm="x"', "auth-params instead of a token"],
  ])("answers %j (%s) with 400 invalid_request", async (authorization) => {
    const mark = marker("malformed");
    await expectBearerError(await gatewayFetch(`/api/${mark}`, { headers: { Authorization: authorization } }), {
      status: 400,
      error: "invalid_request",
    });
    await expectOriginNotContacted(mark);
  });

  it("answers two Authorization headers with 400 invalid_request, even when both carry valid tokens", async () => {
    const mark = marker("two-headers");
    const headers = new Headers();
    headers.append("Authorization", `Bearer ${await mintToken()}`);
    headers.append("Authorization", `Bearer ${await mintToken()}`);
    await expectBearerError(await gatewayFetch(`/api/${mark}`, { headers }), { status: 400, error: "invalid_request" });
    await expectOriginNotContacted(mark);
  });

  it("refuses a token in the query (?access_token=) with 400 invalid_request, with or without a header token (§2.3)", async () => {
    const token = await mintToken();
    for (const init of [{}, withBearer(token)]) {
      const mark = marker("query");
      const res = await gatewayFetch(`/api/${mark}?access_token=${token}`, init);
      await expectBearerError(res, { status: 400, error: "invalid_request", description: /query/ });
      await expectOriginNotContacted(mark);
    }
  });

  it("refuses a token in a form body (access_token=) with 400 invalid_request next to a header token, and counts it as no token alone (§2.2)", async () => {
    const token = await mintToken({ claims: { scope: "orders:read orders:write" } });
    const send = (auth: Record<string, string>, mark: string) =>
      gatewayFetch(`/api/${mark}`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", ...auth },
        body: `a=1&access_token=${token}`,
      });
    const both = marker("form");
    await expectBearerError(await send({ Authorization: `Bearer ${token}` }, both), {
      status: 400,
      error: "invalid_request",
      description: /body/,
    });
    await expectOriginNotContacted(both);
    // Alone in the body it is not a credential here: 401 with no error code, body left unread.
    const alone = marker("form-alone");
    const res = await send({}, alone);
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${REALM}"`);
    await expectOriginNotContacted(alone);
  });

  it("checks a chunked form body too: access_token in a streamed body is refused with 400", async () => {
    const token = await mintToken({ claims: { scope: "orders:read orders:write" } });
    const mark = marker("form-chunked");
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("a=1&acc"));
        controller.enqueue(new TextEncoder().encode(`ess_token=${token}`));
        controller.close();
      },
    });
    const res = await gatewayFetch(
      `/api/${mark}`,
      withBearer(token, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body }),
    );
    await expectBearerError(res, { status: 400, error: "invalid_request", description: /body/ });
    await expectOriginNotContacted(mark);
  });

  it("refuses a form body over 64 KiB on a protected route with 413 rather than forwarding it unchecked", async () => {
    const token = await mintToken({ claims: { scope: "orders:read orders:write" } });
    for (const chunked of [false, true]) {
      const mark = marker("form-big");
      const text = `a=${"x".repeat(64 * 1024)}&access_token=${token}`;
      const body = chunked
        ? new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new TextEncoder().encode(text)), c.close()) })
        : text;
      const res = await gatewayFetch(
        `/api/${mark}`,
        withBearer(token, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body }),
      );
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toBe("invalid_request");
      await expectOriginNotContacted(mark);
    }
  });

  it.each([
    ["UTF-8", new TextEncoder().encode("a=1&b=%C3%A9&c=x+y&d=\u00e9")],
    // Raw Latin-1 bytes: not UTF-8, so decoding and re-encoding would change them.
    ["non-UTF-8", Uint8Array.from([0x61, 0x3d, 0xe9, 0x26, 0x62, 0x3d, 0xff, 0xfe])],
  ])("forwards a %s form body without access_token byte for byte after inspecting it", async (_, body) => {
    const mark = marker("form-ok");
    const res = await gatewayFetch(
      `/api/${mark}`,
      withBearer(await mintToken({ claims: { scope: "orders:read orders:write" } }), {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body,
      }),
    );
    const echo = await expectProxied(res);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    expect(echo.body_bytes).toBe(body.length);
    expect(echo.body_sha256).toBe([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""));
  });
});

describe("docs/security.md item 15: oversized tokens are refused before any decoding", () => {
  it("refuses 64 KiB of 'a.b.c' with 401 invalid_token 'too large'", async () => {
    await expectRefused("a.b.c".repeat((64 * 1024) / 5), "the access token is too large");
  });

  it("refuses a correctly signed, otherwise valid token just over the limit, so the size check comes first", async () => {
    const bare = await mintToken({ claims: { pad: "" } });
    // base64url: 3 payload bytes become 4 characters.
    let pad = Math.floor(((MAX_TOKEN_LENGTH - bare.length) * 3) / 4);
    let token = bare;
    while (token.length <= MAX_TOKEN_LENGTH) token = await mintToken({ claims: { pad: "x".repeat(pad++) } });
    expect(token.length).toBeGreaterThan(MAX_TOKEN_LENGTH);
    expect(token.length).toBeLessThan(MAX_TOKEN_LENGTH + 8);
    await expectRefused(token, "the access token is too large");
  });

  it("extractBearerToken takes exactly MAX_TOKEN_LENGTH characters and refuses one more", () => {
    const exact = "a".repeat(MAX_TOKEN_LENGTH);
    expect(extractBearerToken(new Headers({ Authorization: `Bearer ${exact}` }))).toBe(exact);
    expect(() => extractBearerToken(new Headers({ Authorization: `Bearer ${exact}a` }))).toThrow(
      expect.objectContaining({ code: "invalid_token", status: 401 }),
    );
  });
});

describe("docs/security.md item 1: alg none and empty signatures (RFC 8725 §3.1)", () => {
  it.each(["none", "NONE", "nOnE"])("refuses alg %j with an empty signature", async (alg) => {
    const key = await testKey();
    await expectRefused(await forgeJWS({ alg, typ: "at+jwt", kid: key.kid }, accessTokenClaims(), ""));
  });

  it("refuses alg none without kid or typ", async () => {
    await expectRefused(await forgeJWS({ alg: "none" }, accessTokenClaims(), ""));
  });

  it("refuses an ES256 token whose signature was removed", async () => {
    await expectRefused(withSignature(await mintToken(), ""));
  });

  it("refuses a token with only two parts", async () => {
    const [header, payload] = (await mintToken()).split(".");
    await expectRefused(`${header}.${payload}`);
  });
});

describe("docs/security.md item 2: algorithm confusion, HS256 keyed with the public key (CVE-2016-10555, CVE-2022-29217)", () => {
  it("refuses HS256 tokens keyed with every form of the published key", async () => {
    const key = await testKey();
    const forms = await publicKeyForms(key.jwk);
    const jwks = (await (await gatewayFetch("/.well-known/jwks.json")).json()) as { keys: { kid: string }[] };
    const served = jwks.keys.find((k) => k.kid === key.kid);
    expect(served).toBeDefined();
    const secrets: [string, Uint8Array | string][] = [
      ["JWK JSON (minimal)", forms.jwkJSON],
      ["JWK JSON as served by the JWKS", JSON.stringify(served)],
      ["JWK Set JSON as served", JSON.stringify(jwks)],
      ["PEM (SPKI)", forms.pem],
      ["PEM without trailing newline", forms.pem.trimEnd()],
      ["raw x || y", forms.rawXY],
      ["uncompressed point 04 || x || y", forms.uncompressed],
    ];
    for (const [, secret] of secrets) {
      const token = await forgeJWS({ alg: "HS256", typ: "at+jwt", kid: key.kid }, accessTokenClaims(), (input) => hs256(secret, input));
      await expectRefused(token);
    }
  });
});

describe("docs/security.md item 3: key references in the header are never used or followed (RFC 8725 §3.10, CVE-2018-0114)", () => {
  it("refuses a token signed by an attacker key embedded as jwk, with or without a real kid", async () => {
    const attacker = await attackerKey();
    const { kid } = await testKey();
    for (const header of [
      { alg: "ES256", typ: "at+jwt", jwk: attacker.jwk },
      { alg: "ES256", typ: "at+jwt", kid, jwk: attacker.jwk },
      { alg: "ES256", typ: "at+jwt", kid: "attacker", jwk: { ...attacker.jwk, kid: "attacker" } },
    ]) {
      await expectRefused(await forgeJWS(header, accessTokenClaims(), (input) => es256(attacker.privateKey, input)));
    }
  });

  it.each(["jku", "x5u"])("refuses %s and fetches nothing from the URL it names", async (member) => {
    const attacker = await attackerKey();
    const { kid } = await testKey();
    // The URL points at the only other network there is (the echo origin): any fetch would show in its log.
    const keysMark = marker(member);
    for (const headerKid of [kid, "attacker"]) {
      const header = { alg: "ES256", typ: "at+jwt", kid: headerKid, [member]: `${env.TEST_ORIGIN_URL}/${keysMark}/keys.json` };
      await expectRefused(await forgeJWS(header, accessTokenClaims(), (input) => es256(attacker.privateKey, input)));
    }
    await expectOriginNotContacted(keysMark);
  });

  it("refuses x5c (an attacker certificate chain)", async () => {
    const attacker = await attackerKey();
    const { kid } = await testKey();
    const header = {
      alg: "ES256",
      typ: "at+jwt",
      kid,
      x5c: [
        b64(crypto.getRandomValues(new Uint8Array(300)))
          .replace(/-/g, "+")
          .replace(/_/g, "/"),
      ],
    };
    await expectRefused(await forgeJWS(header, accessTokenClaims(), (input) => es256(attacker.privateKey, input)));
  });

  it.each([
    ["jku", `${env.TEST_ORIGIN_URL}/jku-real-key`],
    ["x5u", `${env.TEST_ORIGIN_URL}/x5u-real-key`],
    ["x5t", "AAAA"],
    ["x5t#S256", "AAAA"],
  ])("refuses a key reference %s even on a token the real key signed (strict: our tokens never carry one)", async (member, value) => {
    await expectRefused(await mintToken({ header: { [member]: value } }));
  });
});

describe("docs/security.md item 4: kid is untrusted input", () => {
  it.each([
    ["unknown", "no-such-key"],
    ["path-like", "../../etc/passwd"],
    ["SQL-like", "' OR 1=1 --"],
    ["2 KB long (under the token size cap, so the lookup itself runs)", "k".repeat(2048)],
    ["8 KB long", "k".repeat(8192)],
    ["a number", 1],
    ["null", null],
    ["an object", { kid: "x" }],
    ["an array holding a real kid", "REAL_KID_IN_ARRAY"],
    ["the real kid in another case", "REAL_KID_UPPER"],
    ["prototype member", "__proto__"],
    ["missing", undefined],
  ])("refuses a kid that is %s with 401, never 500", async (_, value) => {
    const { kid } = await testKey();
    const resolved = value === "REAL_KID_IN_ARRAY" ? [kid] : value === "REAL_KID_UPPER" ? kid.toUpperCase() : value;
    await expectRefused(await mintToken({ header: { kid: resolved } }));
  });

  it("accepts a token signed by the published-only (rotation-ahead) key with its kid (docs/security.md item 25)", async () => {
    const key = await testKey(1);
    expect(key.kid).toBe(env.TEST_PUBLISHED_ONLY_KID);
    await expectAccepted(await mintToken({ keyIndex: 1 }));
  });

  it("refuses a token signed by one test key under the other key's kid", async () => {
    await expectRefused(await mintToken({ keyIndex: 1, header: { kid: (await testKey(0)).kid } }));
    await expectRefused(await mintToken({ keyIndex: 0, header: { kid: env.TEST_PUBLISHED_ONLY_KID } }));
  });
});

describe("docs/security.md item 5: crit (RFC 7515 §4.1.11)", () => {
  it.each([
    ["a registered claim name", { crit: ["exp"], exp: 1 }],
    ["an unknown extension that is present", { crit: ["urn:example:ext"], "urn:example:ext": true }],
    ["an unknown extension that is absent", { crit: ["urn:example:ext"] }],
    ["an empty list", { crit: [] }],
    ["a string instead of a list", { crit: "exp" }],
    ["b64 false (an unencoded payload, RFC 7797)", { crit: ["b64"], b64: false }],
  ])("refuses crit with %s, correctly signed", async (_, header) => {
    await expectRefused(await mintToken({ header }));
  });
});

describe("docs/security.md item 6: explicit typing (RFC 8725 §3.11, RFC 9068 §2.1)", () => {
  it.each([
    ["JWT", "JWT"],
    ["application/jwt", "application/jwt"],
    ["missing", undefined],
    ["empty", ""],
    ["a number", 1],
    ["at+jwt with a parameter", "at+jwt; charset=utf-8"],
    ["an ID token's", "id_token+jwt"],
  ])("refuses typ %s", async (_, typ) => {
    await expectRefused(await mintToken({ header: { typ } }));
  });

  it.each(["at+jwt", "application/at+jwt", "AT+JWT"])(
    "accepts typ %j (media types compare case-insensitively, RFC 7515 §4.1.9)",
    async (typ) => {
      await expectAccepted(await mintToken({ header: { typ } }));
    },
  );
});

describe("docs/security.md item 7: ECDSA psychic signatures (CVE-2022-21449)", () => {
  it("refuses r = s = 0, r = s = n, wrong lengths and DER encoding", async () => {
    const token = await mintToken();
    const real = signatureOf(token);
    expect(real).toHaveLength(64);
    const signatures: [string, Uint8Array][] = [
      ["r = s = 0", new Uint8Array(64)],
      ["r = s = n", Uint8Array.from([...P256_ORDER, ...P256_ORDER])],
      ["r = 0, s real", Uint8Array.from([...new Uint8Array(32), ...real.subarray(32)])],
      ["r real, s = n", Uint8Array.from([...real.subarray(0, 32), ...P256_ORDER])],
      ["63 bytes", real.subarray(0, 63)],
      ["65 bytes", Uint8Array.from([...real, 0])],
      ["65 bytes, leading zero", Uint8Array.from([0, ...real])],
      ["DER-encoded real signature", derEncode(real)],
      ["one bit flipped", Uint8Array.from(real, (b, i) => (i === 40 ? b ^ 1 : b))],
    ];
    for (const [, signature] of signatures) await expectRefused(withSignature(token, signature));
    // The same token with its own signature goes through: the refusals are about the signature alone.
    await expectAccepted(token);
  });
});

describe("ECDSA signature malleability: (r, s) and (r, n − s) are one token, by its jti", () => {
  /** The same signature with s replaced by n − s: as valid an ECDSA signature, another token string. */
  function malleate(token: string): string {
    const signature = signatureOf(token);
    const toBigInt = (bytes: Uint8Array) => BigInt(`0x${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
    const flipped = (toBigInt(P256_ORDER) - toBigInt(signature.subarray(32))).toString(16).padStart(64, "0");
    const s = Uint8Array.from(flipped.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    return withSignature(token, Uint8Array.from([...signature.subarray(0, 32), ...s]));
  }

  it("accepts the malleated copy of a token (JWS does not require low-S, nor do other verifiers)", async () => {
    const { access_token } = await issueToken(await seedClient());
    const copy = malleate(access_token);
    expect(copy).not.toBe(access_token);
    await expectAccepted(copy);
  });

  it("ends the malleated copy with the original: revocation keys on jti, not on the token string", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client);
    const copy = malleate(access_token);
    expect((await introspection(await introspect(client, copy))).active).toBe(true);
    await expectRevocationOK(await revoke(client, access_token));
    const mark = marker("malleated");
    await expectInvalidToken(await gatewayFetch(`/api/${mark}`, withBearer(copy)), mark, "the access token has been revoked");
    await expectInactive(await introspect(client, copy));
  });
});

describe("docs/security.md item 8: time claims (RFC 7519 §4.1.4-6, RFC 9068 §4)", () => {
  const now = nowSeconds;

  it("refuses a token expired beyond the leeway, saying it expired", async () => {
    await expectRefused(await mintToken({ claims: { iat: now() - 400, exp: now() - CLOCK_TOLERANCE_SECONDS - 30 } }), /expired/);
  });

  it("accepts a token expired within the leeway", async () => {
    await expectAccepted(await mintToken({ claims: { iat: now() - 300, exp: now() - 10 } }));
  });

  it.each([
    ["exp missing", { exp: undefined }],
    ["iat missing", { iat: undefined }],
    ["nbf in the future", { nbf: nowSeconds() + 600 }],
    ["iat in the future beyond the leeway", { iat: nowSeconds() + 120, exp: nowSeconds() + 300 }],
    ["exp - iat over MAX_ACCESS_TOKEN_TTL", { iat: nowSeconds(), exp: nowSeconds() + 3601 }],
    ["a 100-year lifetime", { iat: nowSeconds(), exp: nowSeconds() + 100 * 365 * 86400 }],
    ["exp as a string", { exp: "9999999999" }],
    ["iat as a string", { iat: String(nowSeconds()) }],
    ["nbf as a string", { nbf: "0" }],
    ["exp as an array", { exp: [nowSeconds() + 300] }],
    ["exp null", { exp: null }],
    ["iat issued long ago (over MAX_ACCESS_TOKEN_TTL plus leeway)", { iat: nowSeconds() - 3600 - 120, exp: nowSeconds() + 60 }],
  ])("refuses %s", async (_, claims) => {
    await expectRefused(await mintToken({ claims }));
  });

  it("accepts exp - iat of exactly MAX_ACCESS_TOKEN_TTL, and nbf and iat within the leeway", async () => {
    await expectAccepted(await mintToken({ claims: { iat: now(), exp: now() + Number(env.MAX_ACCESS_TOKEN_TTL) } }));
    await expectAccepted(await mintToken({ claims: { nbf: now() + 10, iat: now() + 10, exp: now() + 300 } }));
  });

  describe("at the leeway boundary, with time frozen through verifyAccessToken's currentDate", () => {
    const T = 1_900_000_000;
    const currentDate = new Date(T * 1000);
    const verify = async (claims: Record<string, unknown>) => {
      const keys = await importSigningKeys(env.SIGNING_KEY);
      return verifyAccessToken(await mintToken({ claims }), keys, { issuer: ISSUER, audience: AUDIENCE, maxLifetime: 3600, currentDate });
    };
    const refusedAsInvalid = expect.objectContaining({ code: "invalid_token", status: 401 });

    it("accepts exp 29 s ago and refuses exp 30 s ago (jose: exp <= now - tolerance)", async () => {
      await expect(verify({ iat: T - 300, exp: T - CLOCK_TOLERANCE_SECONDS + 1 })).resolves.toMatchObject({
        client_id: "gateway-test-client",
      });
      await expect(verify({ iat: T - 300, exp: T - CLOCK_TOLERANCE_SECONDS })).rejects.toEqual(
        expect.objectContaining({ code: "invalid_token", description: "the access token has expired" }),
      );
    });

    it("accepts nbf 30 s ahead and refuses 31 s ahead", async () => {
      await expect(verify({ iat: T, exp: T + 300, nbf: T + CLOCK_TOLERANCE_SECONDS })).resolves.toBeDefined();
      await expect(verify({ iat: T, exp: T + 300, nbf: T + CLOCK_TOLERANCE_SECONDS + 1 })).rejects.toEqual(refusedAsInvalid);
    });

    it("accepts iat 30 s ahead and refuses 31 s ahead", async () => {
      await expect(verify({ iat: T + CLOCK_TOLERANCE_SECONDS, exp: T + 300 })).resolves.toBeDefined();
      await expect(verify({ iat: T + CLOCK_TOLERANCE_SECONDS + 1, exp: T + 300 })).rejects.toEqual(refusedAsInvalid);
    });

    it("refuses a lifetime one second over maxLifetime", async () => {
      await expect(verify({ iat: T, exp: T + 3600 })).resolves.toBeDefined();
      await expect(verify({ iat: T, exp: T + 3601 })).rejects.toEqual(refusedAsInvalid);
    });

    it("throws only BearerError, never a TypeError, for a non-numeric exp", async () => {
      await expect(verify({ iat: T, exp: "9999999999" })).rejects.toBeInstanceOf(BearerError);
    });
  });
});

describe("allowExpired (/revoke and /introspect): only the expiry is waived, every other rule holds", () => {
  const T = 1_900_000_000;
  const currentDate = new Date(T * 1000);
  const expired = { iat: T - 600, exp: T - CLOCK_TOLERANCE_SECONDS - 60 };
  const verify = async (options: MintOptions) => {
    const keys = await importSigningKeys(env.SIGNING_KEY);
    return verifyAccessToken(await mintToken(options), keys, { issuer: ISSUER, maxLifetime: 3600, allowExpired: true, currentDate });
  };

  it("returns the claims of a token expired beyond the leeway, whatever its audience", async () => {
    await expect(verify({ claims: { ...expired, aud: "https://any.tollgate.test" } })).resolves.toMatchObject({
      exp: expired.exp,
      aud: "https://any.tollgate.test",
    });
  });

  // jose checks these before exp; were that order to change, an expired token would skip them.
  it.each([
    ["typ JWT", { header: { typ: "JWT" } }],
    ["another iss", { claims: { iss: "https://elsewhere.example" } }],
    ["no jti", { claims: { jti: undefined } }],
    ["no sub", { claims: { sub: undefined } }],
    ["a string iat", { claims: { iat: String(expired.iat) } }],
    ["nbf beyond the leeway ahead", { claims: { nbf: T + CLOCK_TOLERANCE_SECONDS + 1 } }],
    ["a lifetime over maxLifetime", { claims: { iat: expired.exp - 3601 } }],
    ["exp before iat", { claims: { iat: expired.exp + 1 } }],
    ["no aud", { claims: { aud: undefined } }],
  ] as [string, MintOptions][])("still refuses an expired token with %s", async (_, options) => {
    await expect(verify({ ...options, claims: { ...expired, ...options.claims } })).rejects.toEqual(
      expect.objectContaining({ code: "invalid_token" }),
    );
  });
});

describe("docs/security.md item 9: issuer and audience (RFC 9068 §4, RFC 8725 §3.8-3.9)", () => {
  it.each([
    ["aud of another resource", { aud: "https://other.tollgate.test" }],
    ["aud missing", { aud: undefined }],
    ["aud an empty array", { aud: [] }],
    ["aud an array without this route's audience", { aud: ["https://other.tollgate.test", "https://api.tollgate.test/"] }],
    ["aud with a trailing slash", { aud: `${AUDIENCE}/` }],
    ["aud a prefix of the route's", { aud: "https://api.tollgate" }],
    ["iss of another issuer", { iss: "https://evil.example" }],
    ["iss missing", { iss: undefined }],
    ["iss with a trailing slash", { iss: `${ISSUER}/` }],
    ["iss in another case", { iss: ISSUER.toUpperCase() }],
    ["iss as an array holding the issuer", { iss: [ISSUER] }],
  ])("refuses %s", async (_, claims) => {
    await expectRefused(await mintToken({ claims }));
  });

  it.each([
    ["sub missing", { sub: undefined }],
    ["client_id missing", { client_id: undefined }],
    ["jti missing", { jti: undefined }],
    ["client_id a number", { client_id: 42 }],
    ["sub an object", { sub: { id: "x" } }],
  ])("refuses %s (RFC 9068 §2.2 requires them, as strings)", async (_, claims) => {
    await expectRefused(await mintToken({ claims }));
  });

  it("accepts an aud array that contains the route's audience", async () => {
    await expectAccepted(await mintToken({ claims: { aud: ["https://other.tollgate.test", AUDIENCE] } }));
  });

  it("refuses a token for api.tollgate.test on the /other-aud route, and accepts one for its audience", async () => {
    const mark = marker("other-aud");
    await expectInvalidToken(await gatewayFetch(`/other-aud/${mark}`, withBearer(await mintToken())), mark);
    await expectAccepted(await mintToken({ claims: { aud: "https://other.tollgate.test" } }), "/other-aud");
  });
});

describe("docs/security.md item 10: scopes (RFC 6750 §3.1 insufficient_scope)", () => {
  async function expectInsufficientScope(res: Response, mark: string, scope: string): Promise<void> {
    await expectBearerError(res, { status: 403, error: "insufficient_scope", scope });
    await expectOriginNotContacted(mark);
  }

  it("answers a token without scope with 403 naming the needed scope, in the challenge and the body", async () => {
    const mark = marker("no-scope");
    const res = await callAPI(await mintToken({ claims: { scope: undefined } }), mark);
    expect(res.headers.get("WWW-Authenticate")).toBe(
      `Bearer realm="${REALM}", error="insufficient_scope", error_description="the access token lacks a scope this request needs", scope="orders:read"`,
    );
    await expectInsufficientScope(res, mark, "orders:read");
  });

  it.each(["orders:readx", "xorders:read", "orders:rea", "ORDERS:READ", "orders:write", "orders:read,orders:write", "", " "])(
    "answers the look-alike scope %j with 403",
    async (scope) => {
      const mark = marker("lookalike");
      await expectInsufficientScope(await callAPI(await mintToken({ claims: { scope } }), mark), mark, "orders:read");
    },
  );

  it.each([
    ["an array", ["orders:read"]],
    ["an object", { "orders:read": true }],
    ["a number", 1],
  ])("answers scope as %s with 403 insufficient_scope: a claim of the wrong type grants nothing", async (_, scope) => {
    const mark = marker("wrong-type");
    await expectInsufficientScope(await callAPI(await mintToken({ claims: { scope } }), mark), mark, "orders:read");
  });

  it("needs orders:read and orders:write for POST, and names both when one is missing", async () => {
    const mark = marker("post");
    const res = await callAPI(await mintToken({ claims: { scope: "orders:read" } }), mark, { method: "POST", body: "{}" });
    await expectInsufficientScope(res, mark, "orders:read orders:write");
    const onlyWrite = marker("post-write");
    await expectInsufficientScope(
      await callAPI(await mintToken({ claims: { scope: "orders:write" } }), onlyWrite, { method: "POST", body: "{}" }),
      onlyWrite,
      "orders:read orders:write",
    );
    const ok = marker("post-ok");
    const echo = await expectProxied(
      await callAPI(await mintToken({ claims: { scope: "orders:write orders:read" } }), ok, { method: "POST", body: "{}" }),
    );
    expect(echo.method).toBe("POST");
  });

  it("needs orders:admin on top of orders:read for DELETE", async () => {
    const mark = marker("delete");
    await expectInsufficientScope(
      await callAPI(await mintToken({ claims: { scope: "orders:read orders:write" } }), mark, { method: "DELETE" }),
      mark,
      "orders:read orders:admin",
    );
    const ok = marker("delete-ok");
    expect(
      (await expectProxied(await callAPI(await mintToken({ claims: { scope: "orders:read orders:admin" } }), ok, { method: "DELETE" })))
        .method,
    ).toBe("DELETE");
  });

  it("applies the longest prefix: /api/admin needs admin, and orders:read does not open it", async () => {
    const mark = marker("admin");
    await expectInsufficientScope(await gatewayFetch(`/api/admin/${mark}`, withBearer(await mintToken())), mark, "admin");
    const bare = marker("admin-bare");
    await expectInsufficientScope(await gatewayFetch(`/api/admin?${bare}`, withBearer(await mintToken())), bare, "admin");
    // The admin route's own scopes replace /api's: admin alone suffices there.
    await expectAccepted(await mintToken({ claims: { scope: "admin" } }), "/api/admin");
  });

  it("checkScopes splits on single spaces and names every required scope", () => {
    const claims = { client_id: "c", scope: "a  b" } as AccessTokenClaims;
    expect(() => checkScopes(claims, ["a", "b"])).not.toThrow();
    expect(() => checkScopes({ ...claims, scope: "a" }, ["a", "b"])).toThrow(
      expect.objectContaining({ code: "insufficient_scope", status: 403, scope: "a b" }),
    );
    expect(() => checkScopes({ ...claims, scope: undefined }, [])).not.toThrow();
  });
});
