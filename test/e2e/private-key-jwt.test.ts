/**
 * private_key_jwt end to end: the Worker under `wrangler dev` (what `npm start` runs), clients whose
 * records hold public keys (inline, or at a jwks_uri on loopback), oauth4webapi's PrivateKeyJwt
 * client authentication at /token, /introspect and /revoke, and the token used at the gateway.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvPut } from "../../cli/kv.ts";
import { createKeyClientRecord } from "../../src/clients/manage.ts";
import { clientKey } from "../../src/clients/record.ts";
import { generateSigningKey } from "../../src/keys/new-key-pair.ts";
import { startWorker, type WorkerProcess } from "../../scripts/dev-server.ts";
import { startEchoOrigin, type EchoOrigin } from "../../scripts/echo-origin.ts";
import { startKeyHost, type KeyHost } from "../../scripts/key-host.ts";
import { discover, insecure } from "./support/oauth.ts";
import { waitFor } from "./support/wait.ts";

const AUDIENCE = "https://orders.example";

let worker: WorkerProcess;
let origin: EchoOrigin;
let keyHost: KeyHost;
let stateDir: string;

/** An ES256 key pair: the private half for oauth4webapi, the public JWK for the record. */
async function keyPair(kid: string) {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const key = await crypto.subtle.importKey("jwk", privateKey.export({ format: "jwk" }), { name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
  ]);
  return { privateKey: { key, kid }, publicJWK: { ...publicKey.export({ format: "jwk" }), kid } };
}

const signer = await keyPair("signer-1");
const remote = await keyPair("remote-1");

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-e2e-pkjwt-"));
  origin = await startEchoOrigin();
  // The jwks_uri of the second client: a real HTTP server on loopback (allowed while ISSUER is localhost).
  keyHost = await startKeyHost();
  const jwksUri = `${keyHost.url}/sets/remote-keys`;
  const published = await fetch(jwksUri, { method: "PUT", body: JSON.stringify({ keys: [remote.publicJWK] }) });
  if (!published.ok) throw new Error(`the key host did not take the key set: ${published.status}`);
  const routes = [{ prefix: "/orders", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"] }];
  worker = await startWorker({
    persistTo: stateDir,
    vars: { SIGNING_KEY: JSON.stringify(await generateSigningKey()), GATEWAY_ROUTES: JSON.stringify(routes) },
  });
  const now = Math.floor(Date.now() / 1000);
  const target = { remote: false, persistTo: stateDir };
  const common = { scope: "orders:read", audiences: [AUDIENCE] };
  for (const record of [
    createKeyClientRecord("signer", { ...common, jwks: { keys: [signer.publicJWK] } }, now),
    createKeyClientRecord("remote-keys", { ...common, jwks_uri: jwksUri }, now),
  ])
    await kvPut(clientKey(record.client_id), JSON.stringify(record), target);
});

afterAll(async () => {
  await worker?.stop();
  await origin?.close();
  keyHost?.server.close();
  rmSync(stateDir, { recursive: true, force: true });
});

async function token(as: oauth.AuthorizationServer, clientId: string, key: oauth.PrivateKey): Promise<string> {
  const client: oauth.Client = { client_id: clientId };
  const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.PrivateKeyJwt(key), new URLSearchParams(), insecure);
  return (await oauth.processClientCredentialsResponse(as, client, response)).access_token;
}

describe("private_key_jwt with oauth4webapi against the running Worker", { timeout: 120_000 }, () => {
  it("announces private_key_jwt and its algorithms in the metadata", async () => {
    const as = await discover(worker.url);
    expect(as.token_endpoint_auth_methods_supported).toContain("private_key_jwt");
    expect(as.token_endpoint_auth_signing_alg_values_supported).toContain("ES256");
  });

  it("issues a token for an inline-jwks client, and the gateway accepts it", async () => {
    const as = await discover(worker.url);
    const accessToken = await token(as, "signer", signer.privateKey);
    const res = await fetch(`${worker.url}/orders/1`, { headers: { Authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { headers: Record<string, string> }).headers["x-tollgate-client-id"]).toBe("signer");
  });

  it("issues a token for a client whose keys are at its jwks_uri", async () => {
    const as = await discover(worker.url);
    const accessToken = await token(as, "remote-keys", remote.privateKey);
    expect((await fetch(`${worker.url}/orders/1`, { headers: { Authorization: `Bearer ${accessToken}` } })).status).toBe(200);
  });

  it("introspects and revokes with an assertion; the revoked token is refused at the gateway", async () => {
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "signer" };
    const accessToken = await token(as, "signer", signer.privateKey);
    const introspected = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, oauth.PrivateKeyJwt(signer.privateKey), accessToken, insecure),
    );
    expect(introspected).toMatchObject({ active: true, client_id: "signer" });
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, oauth.PrivateKeyJwt(signer.privateKey), accessToken, insecure),
    );
    let status = 200;
    const refused = async () =>
      (status = (await fetch(`${worker.url}/orders/1`, { headers: { Authorization: `Bearer ${accessToken}` } })).status) !== 200;
    await waitFor("the gateway to refuse the revoked token", 45_000, refused, 500);
    expect(status).toBe(401);
  });

  it("refuses another client's key, and a replayed assertion, as invalid_client", async () => {
    const as = await discover(worker.url);
    const client: oauth.Client = { client_id: "signer" };
    const wrongKey = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.PrivateKeyJwt(remote.privateKey),
      new URLSearchParams(),
      insecure,
    );
    await expect(oauth.processClientCredentialsResponse(as, client, wrongKey)).rejects.toMatchObject({ error: "invalid_client" });
    // The same assertion sent twice: captured from the first request's body.
    let body = new URLSearchParams();
    const capture: oauth.ClientAuth = async (...args) => {
      await oauth.PrivateKeyJwt(signer.privateKey)(...args);
      body = new URLSearchParams(args[2]);
    };
    const first = await oauth.clientCredentialsGrantRequest(as, client, capture, new URLSearchParams(), insecure);
    expect(first.status).toBe(200);
    const replay = await fetch(`${worker.url}/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...Object.fromEntries(body), grant_type: "client_credentials" }).toString(),
    });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toBe("invalid_client");
  });
});
