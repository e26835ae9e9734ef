/**
 * The admin API (POST/PUT /register) and federated clients: the `federated_identity` member, checked
 * by the record's rules and against TRUSTED_ISSUERS; no secret is generated or returned.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { clientKey } from "../../src/clients/record.ts";
import { fetchWithEnv, issueToken, seedClient } from "../support/worker.ts";

const REGISTER = `${env.ISSUER}/register`;
const GITHUB = "https://token.actions.githubusercontent.com";
const trusting = { TRUSTED_ISSUERS: JSON.stringify([{ issuer: GITHUB }]) };

async function adminToken(): Promise<string> {
  const admin = await seedClient({ allowed_scopes: ["tollgate:admin"], default_scopes: ["tollgate:admin"], allowed_audiences: [REGISTER] });
  return (await issueToken(admin, { resource: REGISTER, scope: "tollgate:admin" })).access_token;
}

function call(method: string, path: string, token: string, body: unknown): Promise<Response> {
  return fetchWithEnv(
    `${env.ISSUER}${path}`,
    { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) },
    trusting,
  );
}

describe("POST /register with federated_identity", () => {
  it("registers a federated client without a secret, its auth method private_key_jwt", async () => {
    const id = `fed-${crypto.randomUUID()}`;
    const identity = { issuer: GITHUB, subject: "repo:octo-org/app:ref:refs/heads/main", claims: { repository: "octo-org/app" } };
    const res = await call("POST", "/register", await adminToken(), { client_id: id, scope: "deploy", federated_identity: identity });
    expect(res.status).toBe(201);
    const info = (await res.json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      token_endpoint_auth_method: "private_key_jwt",
      federated_identity: { ...identity, audience: null },
    });
    expect(info.client_secret).toBeUndefined();
    expect(info.secrets).toBeUndefined();
    const stored = JSON.parse((await env.CLIENTS.get(clientKey(id)))!) as Record<string, unknown>;
    expect(stored.secrets).toEqual([]);
    expect(stored.federated_identity).toEqual({ ...identity, audience: null });
  });

  it("refuses an issuer outside TRUSTED_ISSUERS, and a broken identity, naming the field", async () => {
    const token = await adminToken();
    const untrusted = await call("POST", "/register", token, {
      client_id: `fed-${crypto.randomUUID()}`,
      federated_identity: { issuer: "https://gitlab.example.com", subject: "project_path:group/app" },
    });
    expect(untrusted.status).toBe(400);
    expect(await untrusted.json()).toMatchObject({
      error: "invalid_client_metadata",
      error_description: "federated_identity.issuer: https://gitlab.example.com is not one of TRUSTED_ISSUERS",
    });
    const broken = await call("POST", "/register", token, {
      client_id: `fed-${crypto.randomUUID()}`,
      federated_identity: { issuer: GITHUB },
    });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { error_description: string }).error_description).toMatch(/^federated_identity\.subject:/);
  });

  it("PUT checks TRUSTED_ISSUERS for a newly named issuer only: a dropped one does not block other changes", async () => {
    const token = await adminToken();
    const dropped = "https://gitlab.example.com";
    const client = await seedClient({
      secrets: [],
      token_endpoint_auth_method: "private_key_jwt",
      federated_identity: { issuer: dropped, subject: "project_path:group/app", claims: {}, audience: null },
    });
    const path = `/register/${client.client_id}`;
    const renamed = await call("PUT", path, token, { client_id: client.client_id, scope: "deploy", client_name: "kept issuer" });
    expect(renamed.status).toBe(200);
    expect(await renamed.json()).toMatchObject({ client_name: "kept issuer", federated_identity: { issuer: dropped } });
    const untrusted = await call("PUT", path, token, {
      client_id: client.client_id,
      federated_identity: { issuer: "https://other.example.com", subject: "project_path:group/app" },
    });
    expect(untrusted.status).toBe(400);
    expect(await untrusted.json()).toMatchObject({
      error: "invalid_client_metadata",
      error_description: "federated_identity.issuer: https://other.example.com is not one of TRUSTED_ISSUERS",
    });
    const trusted = await call("PUT", path, token, {
      client_id: client.client_id,
      federated_identity: { issuer: GITHUB, subject: "repo:octo-org/app:ref:refs/heads/main" },
    });
    expect(trusted.status).toBe(200);
  });

  it("refuses to add a federated identity to a client holding a secret (PUT)", async () => {
    const client = await seedClient();
    const res = await call("PUT", `/register/${client.client_id}`, await adminToken(), {
      client_id: client.client_id,
      federated_identity: { issuer: GITHUB, subject: "repo:octo-org/app:ref:refs/heads/main" },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error_description: string }).error_description).toMatch(
      /^token_endpoint_auth_method: client_secret_basic cannot change to private_key_jwt/,
    );
  });
});
