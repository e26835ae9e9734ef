/**
 * POST /token for a workload-identity client (README, "Workload identity federation"): the workload
 * sends its platform token as a jwt-bearer client_assertion with its client_id, through the Worker's
 * real entry point, against the loopback stand-in issuer.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { JWT_BEARER_ASSERTION_TYPE } from "../../src/client-auth/credentials.ts";
import type { FederatedIdentity } from "../../src/clients/record.ts";
import {
  DOWN_ISSUER,
  FED_ISSUER,
  fedEnv,
  GITHUB_ISSUER,
  GITHUB_SUBJECT,
  githubClaims,
  K8S_ISSUER,
  K8S_SUBJECT,
  k8sClaims,
  signPlatformToken,
  standInLog,
  UNTRUSTED_ISSUER,
} from "../support/federation.ts";
import { FORM, fetchWithEnv, seedClient } from "../support/worker.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

async function federatedClient(identity: Partial<FederatedIdentity> & { issuer: string; subject: string }) {
  return seedClient({
    secrets: [],
    token_endpoint_auth_method: "private_key_jwt",
    federated_identity: { claims: {}, audience: null, ...identity },
  });
}

function tokenRequest(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetchWithEnv(
    `${FED_ISSUER}/token`,
    {
      method: "POST",
      headers: { "Content-Type": FORM, ...headers },
      body: new URLSearchParams({ grant_type: "client_credentials", ...fields }),
    },
    fedEnv as unknown as Record<string, unknown>,
  );
}

function assertionRequest(clientId: string, assertion: string): Promise<Response> {
  return tokenRequest({ client_id: clientId, client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: assertion });
}

/** The response, which must be 401 invalid_client without a Basic challenge, and the log lines written meanwhile. */
async function expectInvalidClient(send: () => Promise<Response>): Promise<string> {
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
  const res = await send();
  expect(res.status).toBe(401);
  expect(res.headers.get("WWW-Authenticate")).toBeNull();
  expect(await res.json()).toMatchObject({ error: "invalid_client" });
  return lines.join("\n");
}

describe("POST /token with a platform token as client_assertion", () => {
  it("issues a token to a GitHub Actions job", async () => {
    const { client_id } = await federatedClient({ issuer: GITHUB_ISSUER, subject: GITHUB_SUBJECT, claims: { environment: "prod" } });
    const res = await assertionRequest(client_id, await signPlatformToken(githubClaims()));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string };
    expect(body.token_type).toBe("Bearer");
    const claims = JSON.parse(atob(body.access_token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
    expect(claims).toMatchObject({ iss: FED_ISSUER, client_id, sub: client_id });
  });

  it("issues a token to a Kubernetes pod", async () => {
    const { client_id } = await federatedClient({
      issuer: K8S_ISSUER,
      subject: K8S_SUBJECT,
      claims: { "kubernetes.io.namespace": "prod" },
    });
    expect((await assertionRequest(client_id, await signPlatformToken(k8sClaims()))).status).toBe(200);
  });

  it("answers 401 invalid_client, the reason in the log, for a wrong claim", async () => {
    const { client_id } = await federatedClient({ issuer: GITHUB_ISSUER, subject: GITHUB_SUBJECT, claims: { environment: "prod" } });
    const log = await expectInvalidClient(async () =>
      assertionRequest(client_id, await signPlatformToken(githubClaims({ environment: "dev" }))),
    );
    expect(log).toMatch(/claim environment is \\"dev\\", not \\"prod\\"/);
  });

  it("answers 401, not a 5xx, when the issuer is down", async () => {
    const { client_id } = await federatedClient({ issuer: DOWN_ISSUER, subject: GITHUB_SUBJECT });
    const log = await expectInvalidClient(async () =>
      assertionRequest(client_id, await signPlatformToken(githubClaims({ iss: DOWN_ISSUER }))),
    );
    expect(log).toMatch(/unavailable/);
  });

  it("never contacts an issuer outside TRUSTED_ISSUERS", async () => {
    const { client_id } = await federatedClient({ issuer: UNTRUSTED_ISSUER, subject: GITHUB_SUBJECT });
    const log = await expectInvalidClient(async () =>
      assertionRequest(client_id, await signPlatformToken(githubClaims({ iss: UNTRUSTED_ISSUER }))),
    );
    expect(log).toMatch(/is not in TRUSTED_ISSUERS/);
    expect((await standInLog()).filter((path) => path.startsWith("/good-untrusted"))).toEqual([]);
  });

  it("refuses an assertion from a client with a secret", async () => {
    const secretClient = await seedClient();
    const log = await expectInvalidClient(async () =>
      assertionRequest(secretClient.client_id, await signPlatformToken(githubClaims({ sub: secretClient.client_id }))),
    );
    expect(log).toMatch(/not private_key_jwt/);
    // A federated client holds no secret to present: the record's rules (test/clients/federated-identity.test.ts).
  });

  it("refuses a disabled federated client", async () => {
    const { client_id } = await seedClient({
      secrets: [],
      disabled: true,
      token_endpoint_auth_method: "private_key_jwt",
      federated_identity: { issuer: GITHUB_ISSUER, subject: GITHUB_SUBJECT, claims: {}, audience: null },
    });
    const log = await expectInvalidClient(async () => assertionRequest(client_id, await signPlatformToken(githubClaims())));
    expect(log).toMatch(/client disabled/);
  });

  it("answers 400 for an assertion with a secret, without its type, or of another type", async () => {
    const assertion = await signPlatformToken(githubClaims());
    const cases: Record<string, string>[] = [
      { client_id: "x", client_secret: "s", client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: assertion },
      { client_id: "x", client_assertion: assertion },
      { client_id: "x", client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", client_assertion: assertion },
    ];
    for (const fields of cases) {
      const res = await tokenRequest(fields);
      expect(res.status, JSON.stringify(Object.keys(fields))).toBe(400);
      expect(await res.json()).toMatchObject({ error: "invalid_request" });
    }
  });
});
