/**
 * Workload identity federation in the workerd tests: an env whose ISSUER is loopback http (so the
 * loopback stand-in issuer of scripts/stand-in-issuer.ts may be trusted), its TRUSTED_ISSUERS, and
 * tokens shaped as GitHub Actions and Kubernetes issue them, signed with the stand-in's keys.
 */
import { env } from "cloudflare:workers";
import { importJWK, SignJWT, type JWTPayload } from "jose";
import { LOCAL_ISSUER, requestsTo, standIn } from "./external-issuers.ts";
import { nowSeconds } from "./tokens.ts";

export { standIn };

/** This server's issuer in these tests: loopback http, as under `npm start`. */
export const FED_ISSUER = LOCAL_ISSUER;
/** Discovery, key a, RS256 (as GitHub Actions). */
export const GITHUB_ISSUER = `${standIn.url}/good-github`;
/** Its jwks_uri configured, max_token_lifetime 3600 (a projected service-account token's default). */
export const K8S_ISSUER = `${standIn.url}/good-k8s`;
/** Key a until /__rotate, then key b. */
export const ROTATING_ISSUER = `${standIn.url}/rotating-fed`;
/** Answers 503 to everything. */
export const DOWN_ISSUER = `${standIn.url}/down-fed`;
/** Serves keys, but is not in TRUSTED_ISSUERS. */
export const UNTRUSTED_ISSUER = `${standIn.url}/good-untrusted`;

export const TRUSTED_ISSUERS = [
  { issuer: GITHUB_ISSUER, algorithms: ["RS256"], max_token_lifetime: 900 },
  { issuer: K8S_ISSUER, jwks_uri: `${K8S_ISSUER}/jwks`, algorithms: ["RS256", "ES256"] },
  { issuer: ROTATING_ISSUER },
  { issuer: DOWN_ISSUER },
];

/** The test env with FED_ISSUER and TRUSTED_ISSUERS; one object, so the config is parsed once. */
export const fedEnv = { ...env, ISSUER: FED_ISSUER, TRUSTED_ISSUERS: JSON.stringify(TRUSTED_ISSUERS) } as Env;

export const GITHUB_SUBJECT = "repo:octo-org/app:environment:prod";
export const K8S_SUBJECT = "system:serviceaccount:prod:deployer";

/** The claims of a GitHub Actions OIDC token of a deploy job (its documented shape), valid 5 minutes. */
export function githubClaims(overrides: JWTPayload = {}): JWTPayload {
  const iat = nowSeconds();
  return {
    iss: GITHUB_ISSUER,
    sub: GITHUB_SUBJECT,
    aud: FED_ISSUER,
    jti: crypto.randomUUID(),
    iat,
    nbf: iat - 5,
    exp: iat + 300,
    ref: "refs/heads/main",
    repository: "octo-org/app",
    repository_owner: "octo-org",
    environment: "prod",
    event_name: "push",
    job_workflow_ref: "octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
    run_id: "8675309",
    runner_environment: "github-hosted",
    ...overrides,
  };
}

/** The claims of a Kubernetes projected service-account token (audience FED_ISSUER, an hour). */
export function k8sClaims(overrides: JWTPayload = {}): JWTPayload {
  const iat = nowSeconds();
  return {
    aud: [FED_ISSUER],
    exp: iat + 3600,
    iat,
    nbf: iat,
    iss: K8S_ISSUER,
    jti: crypto.randomUUID(),
    "kubernetes.io": {
      namespace: "prod",
      node: { name: "node-1", uid: "5d0d4f6e-0000-4000-8000-000000000001" },
      pod: { name: "deployer-7d9f8", uid: "5d0d4f6e-0000-4000-8000-000000000002" },
      serviceaccount: { name: "deployer", uid: "5d0d4f6e-0000-4000-8000-000000000003" },
    },
    sub: K8S_SUBJECT,
    ...overrides,
  };
}

/** `claims` signed RS256 with the stand-in's key `key` (its kid in the header unless `header` says otherwise). */
export async function signPlatformToken(claims: JWTPayload, key: "a" | "b" = "a", header: Record<string, unknown> = {}): Promise<string> {
  const jwk = standIn.keys[key];
  return new SignJWT(claims).setProtectedHeader({ alg: "RS256", typ: "JWT", kid: jwk.kid, ...header }).sign(await importJWK(jwk, "RS256"));
}

/** The paths the stand-in has been asked for so far. */
export function standInLog(): Promise<string[]> {
  return requestsTo(standIn);
}
