/**
 * Regression tests for the findings of the independent attack on private_key_jwt and DPoP, named
 * after them; each failed before its fix (docs/security.md, "Findings fixed in review",
 * "private_key_jwt and DPoP").
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { assertionForm, assertionTokenRequest, clientKey, seedKeyClient, signAssertion } from "../support/assertions.ts";
import { expectJSONError, FORM, fetchWithEnv } from "../support/worker.ts";
import { nowSeconds } from "../support/tokens.ts";
import { authenticateAssertion } from "../../src/client-auth/assertion.ts";
import { useJtiOnce } from "../../src/client-auth/jti-guard.ts";
import { loadClient } from "../../src/clients/store.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../../src/policy.ts";

describe("K1: a client key Web Crypto cannot import (an EC point off its curve, a short coordinate, an RSA exponent of 0, a short Ed25519 key) gave 500", () => {
  const broken = [
    ["ES256", { x: "A".repeat(43), y: "A".repeat(43) }],
    ["ES256", { x: "AAAA" }],
    ["RS256", { e: "AA" }],
    ["EdDSA", { x: "AAAA" }],
  ] as const;

  it.each(broken)("an inline %s key with %o: 401 invalid_client", async (alg, members) => {
    const key = await clientKey(alg);
    const client = await seedKeyClient({ jwks: { keys: [{ ...key.publicJWK, ...members }] } as never }, key);
    await expectJSONError(await assertionTokenRequest(await signAssertion(client)), 401, "invalid_client");
  });

  it.each(broken)("a %s key with %o at the jwks_uri: 401 invalid_client", async (alg, members) => {
    const issuer = "http://localhost:8787";
    const key = await clientKey(alg);
    const name = crypto.randomUUID();
    await fetch(`${env.TEST_KEY_HOST_URL}/sets/${name}`, {
      method: "PUT",
      body: JSON.stringify({ keys: [{ ...key.publicJWK, ...members }] }),
    });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, key);
    const body = new URLSearchParams(assertionForm(await signAssertion(client, {}, {}, issuer))).toString();
    const res = await fetchWithEnv(`${issuer}/token`, { method: "POST", headers: { "Content-Type": FORM }, body }, { ISSUER: issuer });
    await expectJSONError(res, 401, "invalid_client");
  });
});

describe("K2: a set holding two keys of one type without kid refused every assertion without kid (jose's JWKSMultipleMatchingKeys), so a client rotating kid-less keys could not authenticate", () => {
  const kidless = async () => {
    const key = await clientKey();
    return { ...key, kid: undefined as never, publicJWK: { ...key.publicJWK, kid: undefined } };
  };

  it("an assertion without kid verifies with whichever of the record's kid-less keys signed it", async () => {
    const [oldKey, newKey] = [await kidless(), await kidless()];
    const client = await seedKeyClient({ jwks: { keys: [oldKey.publicJWK, newKey.publicJWK] } as never }, newKey);
    expect((await assertionTokenRequest(await signAssertion(client))).status).toBe(200);
    expect((await assertionTokenRequest(await signAssertion({ ...client, key: oldKey }))).status).toBe(200);
    // A third key, in neither: refused.
    await expectJSONError(await assertionTokenRequest(await signAssertion({ ...client, key: await kidless() })), 401, "invalid_client");
  });

  it("likewise at a jwks_uri", async () => {
    const issuer = "http://localhost:8787";
    const [oldKey, newKey] = [await kidless(), await kidless()];
    const name = crypto.randomUUID();
    await fetch(`${env.TEST_KEY_HOST_URL}/sets/${name}`, {
      method: "PUT",
      body: JSON.stringify({ keys: [oldKey.publicJWK, newKey.publicJWK] }),
    });
    const client = await seedKeyClient({ jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}` }, newKey);
    for (const key of [newKey, oldKey]) {
      const body = new URLSearchParams(assertionForm(await signAssertion({ ...client, key }, {}, {}, issuer))).toString();
      const res = await fetchWithEnv(`${issuer}/token`, { method: "POST", headers: { "Content-Type": FORM }, body }, { ISSUER: issuer });
      expect(res.status, await res.clone().text()).toBe(200);
    }
  });
});

describe('K3 (low): a typ that is not a string passed when its String() was an accepted type (an array of one: ["JWT"], ["client-authentication+jwt"])', () => {
  it.each([[["JWT"]], [["client-authentication+jwt"]], [["application/jwt"]]])("typ %j: 401 invalid_client", async (typ) => {
    const client = await seedKeyClient();
    await expectJSONError(await assertionTokenRequest(await signAssertion(client, {}, { typ } as never)), 401, "invalid_client");
  });
});

describe("K4: a replay whose request read the clock before the assertion's last second, and reached the JtiGuard after it, was accepted: the guard let an expired entry be taken over by the same jti", () => {
  it("refuses the replay of a spent assertion whose guard entry expired while the request was under way", async () => {
    const client = await seedKeyClient();
    const start = nowSeconds();
    // Valid for one more second within the 30 s tolerance: the guard keeps its jti until start + 1.
    const assertion = await signAssertion(client, { iat: start - 60, exp: start + 1 - CLOCK_TOLERANCE_SECONDS });
    const record = await loadClient(env.CLIENTS, client.client_id);
    expect(await authenticateAssertion(record, assertion, env, start)).toEqual({ ok: true });
    // A second request whose `now` was read at `start` (authenticateAssertionRequest reads it before the
    // KV read, a jwks_uri fetch and the guard's answer), its guard call only after start + 1.
    const deadline = Date.now() + 10_000;
    while (nowSeconds() <= start + 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(nowSeconds()).toBeGreaterThan(start + 1);
    expect(await authenticateAssertion(record, assertion, env, start)).toMatchObject({ ok: false });
  });

  it("the guard never answers first for a jti whose until has passed by its own clock", async () => {
    const jti = crypto.randomUUID();
    expect(await useJtiOnce(env.JTI_GUARD, `k4-${jti}`, jti, nowSeconds() - 1)).toBe("expired");
  });
});
