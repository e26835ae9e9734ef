/**
 * End to end: workload identity federation on the Worker under `wrangler dev` (as `npm start` runs
 * it, ISSUER on localhost), with TRUSTED_ISSUERS given as a --var naming a loopback stand-in issuer
 * (scripts/stand-in-issuer.ts: discovery + JWKS), clients created with the CLI, and workloads sending
 * GitHub-shaped and Kubernetes-shaped tokens as client_assertion, as the README shows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRemoteJWKSet, importJWK, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startStandInIssuer, type StandInIssuer } from "../../scripts/stand-in-issuer.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { runCLI } from "./support/cli.ts";
import { waitFor } from "./support/wait.ts";

const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

let worker: WorkerProcess;
let standIn: StandInIssuer;
let stateDir: string;
let github: string;
let k8s: string;
let untrusted: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-fed-"));
  standIn = await startStandInIssuer();
  github = `${standIn.url}/good-github`;
  k8s = `${standIn.url}/good-k8s`;
  untrusted = `${standIn.url}/good-untrusted`;
  const trusted = [
    { issuer: github, algorithms: ["RS256"], max_token_lifetime: 900 },
    { issuer: k8s, jwks_uri: `${k8s}/jwks` },
  ];
  worker = await startWorker({
    persistTo: stateDir,
    vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()), TRUSTED_ISSUERS: JSON.stringify(trusted) },
  });
});

afterAll(async () => {
  await worker?.stop();
  await standIn?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

async function platformToken(claims: JWTPayload): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iat: now, nbf: now, exp: now + 300, jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: standIn.keys.a.kid })
    .sign(await importJWK(standIn.keys.a, "RS256"));
}

/** The workload's token request: its platform token as client_assertion, and its client_id. */
function requestToken(clientId: string, assertion: string): Promise<Response> {
  return fetch(`${worker.url}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
    }),
  });
}

const githubClaims = (overrides: JWTPayload = {}): JWTPayload => ({
  iss: github,
  sub: "repo:octo-org/app:environment:prod",
  aud: worker.url,
  repository: "octo-org/app",
  environment: "prod",
  ref: "refs/heads/main",
  ...overrides,
});

/** `tollgate clients create NAME` for the GitHub stand-in's prod environment, with these --federated-claim conditions. */
const createGithubClient = (name: string, ...conditions: string[]) =>
  runCLI(
    stateDir,
    "clients",
    "create",
    name,
    "--scope",
    "deploy",
    "--federated-issuer",
    github,
    "--federated-subject",
    "repo:octo-org/app:environment:prod",
    ...conditions.flatMap((condition) => ["--federated-claim", condition]),
    "--json",
  );

describe("workload identity federation end to end", { timeout: 120_000 }, () => {
  it("creates a federated client with the CLI: no secret anywhere", async () => {
    const created = await createGithubClient("deploy-bot", "repository=octo-org/app", "environment=prod");
    expect(created.code, created.stderr).toBe(0);
    const body = JSON.parse(created.stdout) as Record<string, unknown>;
    expect(body).toMatchObject({
      client_id: "deploy-bot",
      token_endpoint_auth_method: "private_key_jwt",
      secrets: [],
      federated_identity: { issuer: github, claims: { repository: "octo-org/app", environment: "prod" }, audience: null },
    });
    expect(body.client_secret).toBeUndefined();
    // TRUSTED_ISSUERS came as a --var here, not from wrangler.toml: the CLI says it cannot see it.
    expect(created.stderr).toMatch(/not in TRUSTED_ISSUERS of the wrangler config/);
  });

  it("refuses --federated-claim __proto__=VALUE instead of creating the client without that condition", async () => {
    const created = await createGithubClient("proto-bot", "__proto__=prod");
    expect(created.code, created.stdout).not.toBe(0);
    expect(created.stderr).toMatch(/"__proto__" is not a claim name/);
  });

  it("issues a token for a GitHub Actions job's OIDC token, verifiable with the JWKS", async () => {
    const res = await requestToken("deploy-bot", await platformToken(githubClaims()));
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    const { payload } = await jwtVerify(access_token, createRemoteJWKSet(new URL(`${worker.url}/.well-known/jwks.json`)), {
      issuer: worker.url,
    });
    expect(payload).toMatchObject({ client_id: "deploy-bot", scope: "deploy" });
  });

  it("refuses a job of another environment with 401 invalid_client", async () => {
    const res = await requestToken("deploy-bot", await platformToken(githubClaims({ environment: "dev" })));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: "invalid_client" });
  });

  it("changes the claim conditions with clients update: the job's old environment no longer passes", async () => {
    const updated = await runCLI(stateDir, "clients", "update", "deploy-bot", "--federated-claim", "environment=staging", "--json");
    expect(updated.code, updated.stderr).toBe(0);
    expect((JSON.parse(updated.stdout) as { federated_identity: unknown }).federated_identity).toEqual({
      issuer: github,
      subject: "repo:octo-org/app:environment:prod",
      claims: { environment: "staging" },
      audience: null,
    });
    // The isolate that authenticated deploy-bot keeps its record for CLIENT_CACHE_SECONDS (10 s,
    // src/client-auth/warm-records.ts); local KV has no edge cache. Poll until the change is visible.
    let status = 200;
    const change = async () => (status = (await requestToken("deploy-bot", await platformToken(githubClaims()))).status) !== 200;
    await waitFor("the new claim conditions to apply", 45_000, change, 1000);
    expect(status).toBe(401);
    expect((await requestToken("deploy-bot", await platformToken(githubClaims({ environment: "staging" })))).status).toBe(200);
  });

  it("issues a token for a Kubernetes projected service-account token (aud an array, nested claims)", async () => {
    const created = await runCLI(
      stateDir,
      "clients",
      "create",
      "k8s-deployer",
      "--scope",
      "deploy",
      "--federated-issuer",
      k8s,
      "--federated-subject",
      "system:serviceaccount:prod:deployer",
      "--federated-claim",
      "kubernetes.io.namespace=prod",
    );
    expect(created.code, created.stderr).toBe(0);
    const claims = {
      iss: k8s,
      sub: "system:serviceaccount:prod:deployer",
      aud: [worker.url],
      "kubernetes.io": { namespace: "prod", serviceaccount: { name: "deployer", uid: "3f1c" } },
    };
    expect((await requestToken("k8s-deployer", await platformToken(claims))).status).toBe(200);
  });

  it("never fetches from an issuer outside TRUSTED_ISSUERS", async () => {
    const created = await runCLI(
      stateDir,
      "clients",
      "create",
      "rogue",
      "--scope",
      "",
      "--federated-issuer",
      untrusted,
      "--federated-subject",
      "x",
    );
    expect(created.code, created.stderr).toBe(0);
    const res = await requestToken("rogue", await platformToken({ iss: untrusted, sub: "x", aud: worker.url }));
    expect(res.status).toBe(401);
    expect(standIn.log.filter((path) => path.startsWith("/good-untrusted"))).toEqual([]);
  });
});
