/**
 * Workload identity federation (src/client-auth/federation.ts): GitHub-shaped and Kubernetes-shaped
 * tokens from a loopback stand-in issuer (discovery + JWKS, scripts/stand-in-issuer.ts), and every
 * way one may be wrong.
 */
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { unmetClaimCondition, verifyFederatedAssertion } from "../../src/client-auth/federation.ts";
import { createKeyClientRecord } from "../../src/clients/manage.ts";
import type { ClientRecord, FederatedIdentity } from "../../src/clients/record.ts";
import {
  DOWN_ISSUER,
  fedEnv,
  GITHUB_ISSUER,
  GITHUB_SUBJECT,
  githubClaims,
  K8S_ISSUER,
  K8S_SUBJECT,
  k8sClaims,
  ROTATING_ISSUER,
  signPlatformToken,
  standIn,
  standInLog,
  UNTRUSTED_ISSUER,
} from "../support/federation.ts";
import { nowSeconds } from "../support/tokens.ts";

function federatedClient(identity: Partial<FederatedIdentity> & { issuer: string; subject: string }): ClientRecord {
  return createKeyClientRecord(`fed-${crypto.randomUUID()}`, { scope: "deploy", federated_identity: identity }, nowSeconds());
}

const githubClient = federatedClient({
  issuer: GITHUB_ISSUER,
  subject: GITHUB_SUBJECT,
  claims: {
    repository: "octo-org/app",
    ref: "refs/heads/main",
    environment: "prod",
    job_workflow_ref: "octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
  },
});
const k8sClient = federatedClient({
  issuer: K8S_ISSUER,
  subject: K8S_SUBJECT,
  claims: { "kubernetes.io.namespace": "prod", "kubernetes.io.serviceaccount.name": "deployer" },
});

async function verdict(token: string, record: ClientRecord) {
  return verifyFederatedAssertion(token, record, fedEnv, nowSeconds());
}

async function refusedFor(token: string, record: ClientRecord): Promise<string> {
  const result = await verdict(token, record);
  expect(result.ok).toBe(false);
  return (result as { reason: string }).reason;
}

describe("verifyFederatedAssertion: accepted tokens", () => {
  it("accepts a GitHub Actions token (aud a string, keys by discovery) meeting every claim condition", async () => {
    expect(await verdict(await signPlatformToken(githubClaims()), githubClient)).toEqual({ ok: true });
  });

  it("accepts a Kubernetes projected token (aud an array, nested kubernetes.io claims, configured jwks_uri)", async () => {
    expect(await verdict(await signPlatformToken(k8sClaims()), k8sClient)).toEqual({ ok: true });
  });

  it("accepts the same token again: a platform token is reused until it expires (no jti guard)", async () => {
    const token = await signPlatformToken(k8sClaims());
    expect(await verdict(token, k8sClient)).toEqual({ ok: true });
    expect(await verdict(token, k8sClient)).toEqual({ ok: true });
  });

  it("accepts the audience the record names instead of this issuer", async () => {
    const client = federatedClient({ issuer: GITHUB_ISSUER, subject: GITHUB_SUBJECT, audience: "tollgate-prod" });
    expect(await verdict(await signPlatformToken(githubClaims({ aud: "tollgate-prod" })), client)).toEqual({ ok: true });
    expect(await refusedFor(await signPlatformToken(githubClaims()), client)).toMatch(/ERR_JWT_CLAIM_VALIDATION_FAILED.*"aud"/);
  });

  it("picks up a rotated key (unknown kid: the issuer's JWKS is fetched again)", async () => {
    const client = federatedClient({ issuer: ROTATING_ISSUER, subject: GITHUB_SUBJECT });
    expect(await verdict(await signPlatformToken(githubClaims({ iss: ROTATING_ISSUER }), "a"), client)).toEqual({ ok: true });
    await fetch(`${standIn.url}/__rotate?name=rotating-fed`);
    expect(await verdict(await signPlatformToken(githubClaims({ iss: ROTATING_ISSUER }), "b"), client)).toEqual({ ok: true });
  });
});

describe("verifyFederatedAssertion: refusals, each with its reason", () => {
  it("never contacts an issuer that is not trusted, even one a record names", async () => {
    const client = federatedClient({ issuer: UNTRUSTED_ISSUER, subject: GITHUB_SUBJECT });
    const reason = await refusedFor(await signPlatformToken(githubClaims({ iss: UNTRUSTED_ISSUER })), client);
    expect(reason).toMatch(/is not in TRUSTED_ISSUERS/);
    expect((await standInLog()).filter((path) => path.startsWith("/good-untrusted"))).toEqual([]);
  });

  it("refuses a token of another issuer under this client, before fetching anything", async () => {
    const reason = await refusedFor(await signPlatformToken(k8sClaims()), githubClient);
    expect(reason).toMatch(/iss is not/);
  });

  it("refuses the wrong sub", async () => {
    const token = await signPlatformToken(githubClaims({ sub: "repo:octo-org/app:pull_request" }));
    expect(await refusedFor(token, githubClient)).toMatch(/unexpected "sub" claim value/);
  });

  it("refuses a claim with another value, and a missing one", async () => {
    expect(await refusedFor(await signPlatformToken(githubClaims({ ref: "refs/heads/feature" })), githubClient)).toMatch(
      /claim ref is "refs\/heads\/feature", not "refs\/heads\/main"/,
    );
    expect(await refusedFor(await signPlatformToken(githubClaims({ environment: undefined })), githubClient)).toMatch(
      /claim environment is absent/,
    );
    const otherNamespace = k8sClaims();
    (otherNamespace["kubernetes.io"] as { namespace: string }).namespace = "staging";
    expect(await refusedFor(await signPlatformToken(otherNamespace), k8sClient)).toMatch(/claim kubernetes\.io\.namespace is "staging"/);
  });

  it("refuses a token for another audience, as a string or an array", async () => {
    expect(await refusedFor(await signPlatformToken(githubClaims({ aud: "https://other.example" })), githubClient)).toMatch(/"aud"/);
    expect(await refusedFor(await signPlatformToken(k8sClaims({ aud: ["https://other.example"] })), k8sClient)).toMatch(/"aud"/);
  });

  it("refuses an expired token, and one without exp", async () => {
    const past = nowSeconds() - 3600;
    expect(await refusedFor(await signPlatformToken(githubClaims({ iat: past, nbf: past, exp: past + 300 })), githubClient)).toMatch(
      /ERR_JWT_EXPIRED/,
    );
    expect(await refusedFor(await signPlatformToken(githubClaims({ exp: undefined })), githubClient)).toMatch(/"exp"/);
  });

  it("refuses a token living longer than the issuer's max_token_lifetime", async () => {
    const iat = nowSeconds();
    // GitHub's entry allows 900 s; Kubernetes' the default 3600 s.
    expect(await refusedFor(await signPlatformToken(githubClaims({ iat, exp: iat + 901 })), githubClient)).toMatch(
      /lives 901 s, longer than 900 s/,
    );
    expect(await refusedFor(await signPlatformToken(k8sClaims({ iat, exp: iat + 48 * 3600 })), k8sClient)).toMatch(/longer than 3600 s/);
    expect(await refusedFor(await signPlatformToken(githubClaims({ iat: undefined, exp: nowSeconds() + 7200 })), githubClient)).toMatch(
      /longer than 900 s/,
    );
  });

  it("refuses an algorithm the issuer is not trusted for, and a key the issuer never published", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT(githubClaims()).setProtectedHeader({ alg: "ES256", kid: standIn.keys.a.kid }).sign(privateKey);
    expect(await refusedFor(forged, githubClient)).toMatch(/ERR_JOSE_ALG_NOT_ALLOWED/);
    // Kubernetes' entry allows ES256: the signature must still be the issuer's.
    const k8sForged = await new SignJWT(k8sClaims()).setProtectedHeader({ alg: "ES256", kid: "attacker" }).sign(privateKey);
    expect(await refusedFor(k8sForged, k8sClient)).toMatch(/ERR_JWKS_NO_MATCHING_KEY/);
    // The attacker's own key embedded in the header is never used.
    const embedded = await new SignJWT(k8sClaims()).setProtectedHeader({ alg: "ES256", jwk: await exportJWK(publicKey) }).sign(privateKey);
    expect(await refusedFor(embedded, k8sClient)).toMatch(/carries "jwk"/);
  });

  it("refuses a jku header without fetching it", async () => {
    const jku = `${standIn.url}/good-jku-target/jwks`;
    expect(await refusedFor(await signPlatformToken(githubClaims(), "a", { jku }), githubClient)).toMatch(/carries "jku"/);
    expect((await standInLog()).includes("/good-jku-target/jwks")).toBe(false);
  });

  it("answers a refusal with a reason when the issuer is down (no exception)", async () => {
    const client = federatedClient({ issuer: DOWN_ISSUER, subject: GITHUB_SUBJECT });
    expect(await refusedFor(await signPlatformToken(githubClaims({ iss: DOWN_ISSUER })), client)).toMatch(
      /the keys of .* are unavailable: .*HTTP 503/,
    );
  });

  it("refuses what is not a JWT", async () => {
    expect(await refusedFor("not-a-jwt", githubClient)).toMatch(/not a JWT/);
    expect(await refusedFor("e30.e30.", githubClient)).toMatch(/iss is not/);
  });
});

describe("unmetClaimCondition: dotted names", () => {
  it("reads a member whose name holds a dot, and nested members", () => {
    const payload = { "kubernetes.io": { serviceaccount: { name: "deployer" } }, ref: "main" };
    expect(unmetClaimCondition(payload, "kubernetes.io.serviceaccount.name", "deployer")).toBeUndefined();
    expect(unmetClaimCondition(payload, "ref", "main")).toBeUndefined();
  });

  it("refuses a name with two readings, a non-string value and a prototype member", () => {
    const ambiguous = { "a.b": "x", a: { b: "x" } };
    expect(unmetClaimCondition(ambiguous, "a.b", "x")).toMatch(/ambiguous/);
    expect(unmetClaimCondition({ n: 1 }, "n", "1")).toMatch(/is 1, not "1"/);
    expect(unmetClaimCondition({}, "constructor", "x")).toMatch(/absent/);
  });
});

describe("W2: a key in a trusted issuer's set that jose or Web Crypto will not use threw (500 at /token)", () => {
  // An EC point off its curve (Web Crypto's DOMException), an RSA exponent of 0 (jose's TypeError).
  const broken = [
    ["ES256", { x: "A".repeat(43), y: "A".repeat(43) }],
    ["RS256", { e: "AA" }],
  ] as const;

  it.each(broken)("a %s key with %o: a refusal with its reason, no exception", async (alg, members) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `broken-${crypto.randomUUID()}`;
    const name = crypto.randomUUID();
    await fetch(`${env.TEST_KEY_HOST_URL}/sets/${name}`, {
      method: "PUT",
      body: JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, ...members }] }),
    });
    const issuer = `${standIn.url}/good-broken-${name}`;
    const brokenEnv = {
      ...fedEnv,
      TRUSTED_ISSUERS: JSON.stringify([{ issuer, jwks_uri: `${env.TEST_KEY_HOST_URL}/sets/${name}`, algorithms: [alg] }]),
    } as Env;
    const client = federatedClient({ issuer, subject: GITHUB_SUBJECT });
    const token = await new SignJWT(githubClaims({ iss: issuer })).setProtectedHeader({ alg, kid }).sign(privateKey);
    const result = await verifyFederatedAssertion(token, client, brokenEnv, nowSeconds());
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/unusable key/) });
  });
});
