import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import {
  assertionForm,
  assertionTokenRequest,
  clientKey,
  forgeAssertion,
  hmacSigner,
  JWT_BEARER_ASSERTION_TYPE,
  seedKeyClient,
  signAssertion,
  type KeyClient,
} from "../support/assertions.ts";
import { basic, expectJSONError, FORM, fetchWithEnv, seedClient, tokenRequest, TOKEN_URL, verifyAccessToken } from "../support/worker.ts";
import { nowSeconds } from "../support/tokens.ts";
import { JTI_GUARD_TIMEOUT_MS, useJtiOnce, type JtiGuard } from "../../src/client-auth/jti-guard.ts";
import { authenticateAssertion } from "../../src/client-auth/assertion.ts";
import { loadClient } from "../../src/clients/store.ts";

/** A 401 invalid_client exactly as a wrong secret in the body gets it: no Basic challenge. */
async function expectRefused(res: Response): Promise<void> {
  await expectJSONError(res, 401, "invalid_client");
  expect(res.headers.get("WWW-Authenticate")).toBeNull();
}

async function issuedTo(res: Response, clientId: string): Promise<void> {
  expect(res.status, await res.clone().text()).toBe(200);
  const body = (await res.json()) as { access_token: string };
  expect((await verifyAccessToken(body.access_token)).client_id).toBe(clientId);
}

describe("RFC 7523 §2.2 private_key_jwt client authentication", () => {
  it("issues a token for an ES256 assertion with the issuer as aud, untyped, without client_id", async () => {
    const client = await seedKeyClient();
    await issuedTo(await assertionTokenRequest(await signAssertion(client)), client.client_id);
  });

  it("accepts typ client-authentication+jwt (draft-ietf-oauth-rfc7523bis) and aud as an array of the issuer alone", async () => {
    const client = await seedKeyClient();
    for (const typ of ["client-authentication+jwt", "application/client-authentication+jwt", "JWT"]) {
      await issuedTo(await assertionTokenRequest(await signAssertion(client, { aud: [env.ISSUER] }, { typ })), client.client_id);
    }
  });

  it("accepts a client_id in the body equal to the assertion's sub", async () => {
    const client = await seedKeyClient();
    await issuedTo(await assertionTokenRequest(await signAssertion(client), { client_id: client.client_id }), client.client_id);
  });

  for (const [alg, options] of [
    ["ES384", {}],
    ["PS256", {}],
    ["RS256", {}],
    ["EdDSA", {}],
  ] as const) {
    it(`verifies ${alg}`, async () => {
      const client = await seedKeyClient({}, await clientKey(alg, options));
      await issuedTo(await assertionTokenRequest(await signAssertion(client)), client.client_id);
    });
  }

  it("authenticates /revoke and /introspect with an assertion too", async () => {
    const client = await seedKeyClient();
    const res = await assertionTokenRequest(await signAssertion(client));
    const { access_token } = (await res.json()) as { access_token: string };
    const introspect = await exports.default.fetch(`${env.ISSUER}/introspect`, {
      method: "POST",
      headers: { "Content-Type": FORM },
      body: new URLSearchParams({ token: access_token, ...assertionForm(await signAssertion(client)), grant_type: "" }).toString(),
    });
    expect(await introspect.json()).toMatchObject({ active: true, client_id: client.client_id });
    const revoke = await exports.default.fetch(`${env.ISSUER}/revoke`, {
      method: "POST",
      headers: { "Content-Type": FORM },
      body: new URLSearchParams({ token: access_token, ...assertionForm(await signAssertion(client)), grant_type: "" }).toString(),
    });
    expect(revoke.status).toBe(200);
    // Spent assertions stay spent at the other endpoints as well.
    const reused = await signAssertion(client);
    expect((await assertionTokenRequest(reused)).status).toBe(200);
    const again = await exports.default.fetch(`${env.ISSUER}/introspect`, {
      method: "POST",
      headers: { "Content-Type": FORM },
      body: new URLSearchParams({ token: access_token, ...assertionForm(reused), grant_type: "" }).toString(),
    });
    await expectRefused(again);
  });
});

describe("RFC 7521 §4.2 request shape: exactly one method, the right assertion type", () => {
  it("answers 400 invalid_request to Basic plus an assertion, and to client_secret plus an assertion", async () => {
    const secretClient = await seedClient();
    const client = await seedKeyClient();
    const assertion = await signAssertion(client);
    await expectJSONError(
      await assertionTokenRequest(assertion, {}, { Authorization: basic(secretClient.client_id, secretClient.client_secret) }),
      400,
      "invalid_request",
    );
    await expectJSONError(
      await assertionTokenRequest(assertion, { client_id: client.client_id, client_secret: secretClient.client_secret }),
      400,
      "invalid_request",
    );
    // Neither request spent the jti.
    await issuedTo(await assertionTokenRequest(assertion), client.client_id);
  });

  it("answers 400 invalid_request to a wrong or missing client_assertion_type, and to a lone type", async () => {
    const client = await seedKeyClient();
    const assertion = await signAssertion(client);
    for (const type of ["urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "jwt-bearer", ""]) {
      const form = assertionForm(assertion, { client_assertion_type: type });
      await expectJSONError(await tokenRequest(form), 400, "invalid_request");
    }
    await expectJSONError(
      await tokenRequest({ grant_type: "client_credentials", client_assertion_type: JWT_BEARER_ASSERTION_TYPE }),
      400,
      "invalid_request",
    );
  });

  it("answers 400 invalid_request to an assertion that is not a JWT", async () => {
    for (const junk of ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"]) {
      await expectJSONError(await assertionTokenRequest(junk), 400, "invalid_request");
    }
  });

  it("answers 400 invalid_request to a client_id that is not the assertion's sub (another client's assertion)", async () => {
    const victim = await seedKeyClient();
    const attacker = await seedKeyClient();
    await expectJSONError(
      await assertionTokenRequest(await signAssertion(attacker), { client_id: victim.client_id }),
      400,
      "invalid_request",
    );
  });

  it("refuses an assertion naming this client but signed with another client's key", async () => {
    const victim = await seedKeyClient();
    const attacker = await seedKeyClient();
    const forged = await signAssertion({ client_id: victim.client_id, key: attacker.key });
    await expectRefused(await assertionTokenRequest(forged));
    await expectRefused(await assertionTokenRequest(forged, { client_id: victim.client_id }));
  });

  it("refuses an assertion from a secret client, and a secret from a private_key_jwt client", async () => {
    const key = await clientKey();
    const secretClient = await seedClient();
    await expectRefused(await assertionTokenRequest(await signAssertion({ client_id: secretClient.client_id, key })));
    const client = await seedKeyClient();
    const res = await tokenRequest({ grant_type: "client_credentials" }, { Authorization: basic(client.client_id, "s1.guess") });
    await expectJSONError(res, 401, "invalid_client");
  });
});

describe("Client assertion attacks: every one a 401 invalid_client", () => {
  it("alg none", async () => {
    const client = await seedKeyClient();
    const claims = { iss: client.client_id, sub: client.client_id, aud: env.ISSUER, exp: nowSeconds() + 60, jti: crypto.randomUUID() };
    await expectRefused(await assertionTokenRequest(await forgeAssertion({ alg: "none" }, claims)));
  });

  it("HS256 signed with the client's public key (as JWK JSON, and as the raw x coordinate)", async () => {
    const client = await seedKeyClient();
    const claims = { iss: client.client_id, sub: client.client_id, aud: env.ISSUER, exp: nowSeconds() + 60, jti: crypto.randomUUID() };
    const jwkBytes = new TextEncoder().encode(JSON.stringify(client.key.publicJWK));
    const x = Uint8Array.from(atob(client.key.publicJWK.x!.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    for (const secret of [jwkBytes, x]) {
      const header = { alg: "HS256", kid: client.key.kid };
      await expectRefused(
        await assertionTokenRequest(await forgeAssertion(header, { ...claims, jti: crypto.randomUUID() }, hmacSigner(secret))),
      );
    }
  });

  it("an audience that is not the issuer alone: another server, an array with more, the token endpoint without the flag, /revoke", async () => {
    const client = await seedKeyClient();
    for (const aud of [
      "https://other.example",
      [env.ISSUER, "https://other.example"],
      [env.ISSUER, env.ISSUER],
      `${env.ISSUER}/`,
      TOKEN_URL,
      [TOKEN_URL],
      `${env.ISSUER}/revoke`,
      [],
    ]) {
      await expectRefused(await assertionTokenRequest(await signAssertion(client, { aud })));
    }
    await expectRefused(await assertionTokenRequest(await signAssertion(client, { aud: undefined })));
  });

  it("accepts the token endpoint URL as aud only for a client with allow_token_endpoint_audience", async () => {
    const client = await seedKeyClient({ allow_token_endpoint_audience: true });
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { aud: TOKEN_URL })), client.client_id);
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { aud: [TOKEN_URL] })), client.client_id);
    await issuedTo(await assertionTokenRequest(await signAssertion(client)), client.client_id);
    await expectRefused(await assertionTokenRequest(await signAssertion(client, { aud: [TOKEN_URL, env.ISSUER] })));
  });

  it("expired, beyond the clock tolerance; accepted within it", async () => {
    const client = await seedKeyClient();
    const now = nowSeconds();
    await expectRefused(await assertionTokenRequest(await signAssertion(client, { iat: now - 120, exp: now - 40 })));
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { iat: now - 120, exp: now - 20 })), client.client_id);
  });

  it("a far-future exp, a lifetime over 300 s, an iat or nbf in the future; 300 s accepted", async () => {
    const client = await seedKeyClient();
    const now = nowSeconds();
    for (const claims of [
      { iat: undefined, exp: now + 3600 },
      { iat: now, exp: now + 301 },
      { iat: now + 120, exp: now + 180 },
      { nbf: now + 120 },
      { iat: undefined, exp: now + 400 },
    ]) {
      await expectRefused(await assertionTokenRequest(await signAssertion(client, claims)));
    }
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { iat: now, exp: now + 300 })), client.client_id);
  });

  it("no exp, no jti, a jti that is not a string or too long", async () => {
    const client = await seedKeyClient();
    for (const claims of [{ exp: undefined }, { jti: undefined }, { jti: 42 }, { jti: "x".repeat(257) }, { exp: "9999999999" }]) {
      await expectRefused(await assertionTokenRequest(await signAssertion(client, claims as never)));
    }
  });

  it("iss different from sub, or either not the client_id", async () => {
    const client = await seedKeyClient();
    for (const claims of [{ iss: "someone-else" }, { iss: undefined }, { sub: `${client.client_id}x`, iss: client.client_id }]) {
      const res = await assertionTokenRequest(await signAssertion(client, claims), { client_id: client.client_id });
      // A sub that is not the client_id is a mismatch with the body (400); the others reach verification (401).
      if (claims.sub) await expectJSONError(res, 400, "invalid_request");
      else await expectRefused(res);
    }
  });

  it("an unknown kid, and a kid-less assertion against a set with no matching key", async () => {
    const client = await seedKeyClient();
    await expectRefused(await assertionTokenRequest(await signAssertion(client, {}, { kid: "no-such-key" })));
    const other = await clientKey();
    await expectRefused(
      await assertionTokenRequest(await signAssertion({ client_id: client.client_id, key: { ...other, kid: undefined as never } })),
    );
  });

  it("jku, x5u, jwk and x5c headers: refused, and nothing is fetched", async () => {
    const client = await seedKeyClient();
    const name = crypto.randomUUID();
    const url = `${env.TEST_KEY_HOST_URL}/sets/${name}`;
    await fetch(url, { method: "PUT", body: JSON.stringify({ keys: [client.key.publicJWK] }) });
    for (const header of [{ jku: url }, { x5u: url }, { jwk: client.key.publicJWK }, { x5c: ["MIIB"] }]) {
      await expectRefused(await assertionTokenRequest(await signAssertion(client, {}, header)));
    }
    expect(await (await fetch(`${env.TEST_KEY_HOST_URL}/count/${name}`)).text()).toBe("0");
  });

  it("another explicit type (at+jwt, dpop+jwt): a JWT signed for something else", async () => {
    const client = await seedKeyClient();
    for (const typ of ["at+jwt", "dpop+jwt", "oauth-authz-req+jwt"]) {
      await expectRefused(await assertionTokenRequest(await signAssertion(client, {}, { typ })));
    }
  });

  it("a disabled client's valid assertion", async () => {
    const client = await seedKeyClient({ disabled: true });
    await expectRefused(await assertionTokenRequest(await signAssertion(client)));
  });

  it("an unknown client", async () => {
    const client: KeyClient = { client_id: `nobody-${crypto.randomUUID()}`, key: await clientKey() };
    await expectRefused(await assertionTokenRequest(await signAssertion(client)));
  });

  it("a federated client's own signed assertion (its credential is its platform's token, federation.ts)", async () => {
    const client = await seedKeyClient({
      federated_identity: {
        issuer: "https://token.actions.githubusercontent.com",
        subject: "repo:o/r:ref:refs/heads/main",
        claims: {},
        audience: null,
      },
    });
    await expectRefused(await assertionTokenRequest(await signAssertion(client)));
  });

  it("counts each failure against the same failure limit as a wrong secret", async () => {
    const client = await seedKeyClient();
    const send = async (assertion: string) =>
      fetchWithEnv(
        TOKEN_URL,
        {
          method: "POST",
          headers: { "Content-Type": FORM, "CF-Connecting-IP": "198.51.100.7" },
          body: new URLSearchParams(assertionForm(assertion)).toString(),
        },
        { TOKEN_FAILURE_LIMITER: env.TEST_STRICT_LIMITER },
      );
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await send(await signAssertion(client, { aud: "https://other.example" }))).status);
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses.slice(3)).toEqual([429, 429]);
  });
});

describe("Single use of a jti across the network (JtiGuard Durable Object)", () => {
  it("refuses the same assertion twice", async () => {
    const client = await seedKeyClient();
    const assertion = await signAssertion(client);
    await issuedTo(await assertionTokenRequest(assertion), client.client_id);
    await expectRefused(await assertionTokenRequest(assertion));
  });

  it("refuses a new assertion reusing a spent jti", async () => {
    const client = await seedKeyClient();
    const jti = crypto.randomUUID();
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { jti })), client.client_id);
    await expectRefused(await assertionTokenRequest(await signAssertion(client, { jti, iat: nowSeconds() - 1 })));
  });

  it("a jti spent through another stub of the guard (another isolate or location) is refused here, and the other way round", async () => {
    const client = await seedKeyClient();
    // Elsewhere first: a fresh stub from the namespace, as another location's Worker gets it.
    const jti = crypto.randomUUID();
    expect(await useJtiOnce(env.JTI_GUARD, client.client_id, jti, nowSeconds() + 120)).toBe("first");
    await expectRefused(await assertionTokenRequest(await signAssertion(client, { jti })));
    // Here first, then elsewhere.
    const other = crypto.randomUUID();
    await issuedTo(await assertionTokenRequest(await signAssertion(client, { jti: other })), client.client_id);
    expect(await useJtiOnce(env.JTI_GUARD, client.client_id, other, nowSeconds() + 120)).toBe("replay");
  });

  it("the same jti of two different clients is not a replay (one guard per client)", async () => {
    const jti = crypto.randomUUID();
    const a = await seedKeyClient();
    const b = await seedKeyClient();
    await issuedTo(await assertionTokenRequest(await signAssertion(a, { jti })), a.client_id);
    await issuedTo(await assertionTokenRequest(await signAssertion(b, { jti })), b.client_id);
  });

  it("keeps only SHA-256 digests; an expired one blocks nothing and its alarm drops it", async () => {
    const clientId = `guard-${crypto.randomUUID()}`;
    const stub = env.JTI_GUARD.get(env.JTI_GUARD.idFromName(clientId));
    const now = nowSeconds();
    expect(await useJtiOnce(env.JTI_GUARD, clientId, "secret-looking-jti", now + 600)).toBe("first");
    // An entry whose second has passed, put in directly: the guard itself refuses an until already past.
    const digest = btoa(
      String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("short-lived")))),
    )
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const putExpired = () =>
      runInDurableObject(stub, (_instance: JtiGuard, state) => {
        state.storage.sql.exec("INSERT OR REPLACE INTO used (jti, until) VALUES (?, ?)", digest, now - 1);
      });
    await putExpired();
    const rows = await runInDurableObject(stub, (_instance: JtiGuard, state) =>
      state.storage.sql.exec<{ jti: string }>("SELECT jti FROM used").toArray(),
    );
    expect(rows).toHaveLength(2);
    expect(JSON.stringify(rows)).not.toContain("secret-looking-jti");
    expect(rows.every((r) => /^[A-Za-z0-9_-]{43}$/.test(r.jti))).toBe(true);
    // An expired entry blocks nothing (a later assertion reusing the jti takes it over), and is gone after the alarm.
    expect(await useJtiOnce(env.JTI_GUARD, clientId, "short-lived", nowSeconds() + 60)).toBe("first");
    expect(await useJtiOnce(env.JTI_GUARD, clientId, "short-lived", nowSeconds() + 60)).toBe("replay");
    await putExpired();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const left = await runInDurableObject(
      stub,
      (_instance: JtiGuard, state) => state.storage.sql.exec("SELECT jti FROM used").toArray().length,
    );
    expect(left).toBe(1);
    expect(await useJtiOnce(env.JTI_GUARD, clientId, "secret-looking-jti", now + 600)).toBe("replay");
  });

  it("fails closed: a guard that errors or does not answer gives 503 temporarily_unavailable, no token, no failure counted", async () => {
    const client = await seedKeyClient();
    const broken = {
      idFromName: (name: string) => env.JTI_GUARD.idFromName(name),
      get: () => ({
        use: () => Promise.reject(new Error("Durable Object storage overloaded")),
      }),
    };
    const request = async () =>
      fetchWithEnv(
        TOKEN_URL,
        {
          method: "POST",
          headers: { "Content-Type": FORM },
          body: new URLSearchParams(assertionForm(await signAssertion(client))).toString(),
        },
        { JTI_GUARD: broken, TOKEN_FAILURE_LIMITER: env.TEST_STRICT_LIMITER },
      );
    for (let i = 0; i < 4; i++) {
      const res = await request();
      await expectJSONError(res, 503, "temporarily_unavailable");
      expect(res.headers.get("Retry-After")).not.toBeNull();
    }
    // A guard that never answers: the same 503 once JTI_GUARD_TIMEOUT_MS has passed.
    const silent = { idFromName: broken.idFromName, get: () => ({ use: () => new Promise(() => {}) }) };
    const started = Date.now();
    const res = await fetchWithEnv(
      TOKEN_URL,
      {
        method: "POST",
        headers: { "Content-Type": FORM },
        body: new URLSearchParams(assertionForm(await signAssertion(client))).toString(),
      },
      { JTI_GUARD: silent },
    );
    await expectJSONError(res, 503, "temporarily_unavailable");
    expect(Date.now() - started).toBeGreaterThanOrEqual(JTI_GUARD_TIMEOUT_MS - 100);
  });
});

describe("jwks_uri: keys fetched from the client's URL", () => {
  const LOOPBACK_ISSUER = "http://localhost:8787";
  const send = (assertion: string) =>
    fetchWithEnv(
      `${LOOPBACK_ISSUER}/token`,
      { method: "POST", headers: { "Content-Type": FORM }, body: new URLSearchParams(assertionForm(assertion)).toString() },
      { ISSUER: LOOPBACK_ISSUER },
    );
  async function publish(body: unknown): Promise<string> {
    const name = crypto.randomUUID();
    await fetch(`${env.TEST_KEY_HOST_URL}/sets/${name}`, { method: "PUT", body: JSON.stringify(body) });
    return name;
  }

  it("verifies with the published key and fetches it once for many assertions", async () => {
    const key = await clientKey();
    const name = await publish({ keys: [key.publicJWK] });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, key);
    for (let i = 0; i < 3; i++) expect((await send(await signAssertion(client, {}, {}, LOOPBACK_ISSUER))).status).toBe(200);
    expect(await (await fetch(`${env.TEST_KEY_HOST_URL}/count/${name}`)).text()).toBe("1");
  });

  it("an unknown kid fetches the set again at most once a minute", async () => {
    const key = await clientKey();
    const name = await publish({ keys: [key.publicJWK] });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, key);
    expect((await send(await signAssertion(client, {}, {}, LOOPBACK_ISSUER))).status).toBe(200);
    for (let i = 0; i < 4; i++) await expectRefused(await send(await signAssertion(client, {}, { kid: `unknown-${i}` }, LOOPBACK_ISSUER)));
    // The first unknown kid may be a key added since: one more fetch, then none for a minute.
    expect(await (await fetch(`${env.TEST_KEY_HOST_URL}/count/${name}`)).text()).toBe("2");
  });

  it("is never fetched over http while ISSUER is not itself loopback http", async () => {
    const key = await clientKey();
    const name = await publish({ keys: [key.publicJWK] });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, key);
    await expectRefused(await assertionTokenRequest(await signAssertion(client)));
    expect(await (await fetch(`${env.TEST_KEY_HOST_URL}/count/${name}`)).text()).toBe("0");
  });

  for (const [what, path] of [
    ["slow (no answer within the timeout)", "slow"],
    ["huge", "huge"],
    ["not JSON", "not-json"],
    ["redirecting", "redirect"],
  ] as const) {
    it(`a ${what} jwks_uri is 401 invalid_client for that client, and other clients are served`, async () => {
      const key = await clientKey();
      const name = await publish({ keys: [key.publicJWK] });
      const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/${path}/${name}` }, key);
      const started = Date.now();
      await expectRefused(await send(await signAssertion(client, {}, {}, LOOPBACK_ISSUER)));
      expect(Date.now() - started).toBeLessThan(8000);
      const healthy = await seedKeyClient();
      expect((await send(await signAssertion(healthy, {}, {}, LOOPBACK_ISSUER))).status).toBe(200);
    });
  }

  it("a key set carrying a private key, or a symmetric key, is not used at all", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const key = await clientKey();
    for (const extra of [
      { ...(await exportJWK(privateKey)), kid: "leaked" },
      { kty: "oct", k: "c2VjcmV0", kid: "hmac" },
    ]) {
      const name = await publish({ keys: [key.publicJWK, extra] });
      const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, key);
      await expectRefused(await send(await signAssertion(client, {}, {}, LOOPBACK_ISSUER)));
    }
  });

  it("an RSA key of 1024 bits is refused", async () => {
    // jose will not make (nor sign with) a short key: Web Crypto makes it, the assertion is signed by hand.
    const { privateKey, publicKey } = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const publicJWK = { ...(await exportJWK(publicKey)), kid: "small" };
    const name = await publish({ keys: [publicJWK] });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` });
    const claims = { iss: client.client_id, sub: client.client_id, aud: LOOPBACK_ISSUER, exp: nowSeconds() + 60, jti: crypto.randomUUID() };
    const assertion = await forgeAssertion({ alg: "RS256", kid: "small" }, claims, (input) =>
      crypto.subtle.sign("RSASSA-PKCS1-v1_5", privateKey, input),
    );
    await expectRefused(await send(assertion));
    // Refused for the key's size, not for anything else about the assertion.
    const record = await loadClient(env.CLIENTS, client.client_id);
    const result = await authenticateAssertion(record, assertion, { ...env, ISSUER: LOOPBACK_ISSUER } as Env, nowSeconds());
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/2048 bits/) });
  });
});
