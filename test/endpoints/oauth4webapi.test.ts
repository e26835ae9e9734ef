/**
 * oauth4webapi, the most used JS OAuth client, as a real client of the Worker's entry point (its
 * requests go to the Worker through `customFetch`): what it reports for a refused client.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import * as oauth from "oauth4webapi";
import { seedClient } from "../support/worker.ts";

const options = { [oauth.customFetch]: (url: string, init: RequestInit) => exports.default.fetch(url, init) };

async function discover(): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(env.ISSUER);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...options }));
}

/** What `process` throws (null when nothing): oauth4webapi's reading of the server's answer. */
async function thrown(process: () => Promise<unknown>): Promise<unknown> {
  try {
    await process();
    return null;
  } catch (error) {
    return error;
  }
}

/** A client-credentials request with `auth`, and what oauth4webapi throws processing the answer. */
async function tokenRequestError(clientId: string, auth: oauth.ClientAuth): Promise<unknown> {
  const as = await discover();
  const client: oauth.Client = { client_id: clientId };
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams(), options);
  return thrown(() => oauth.processClientCredentialsResponse(as, client, response));
}

describe("oauth4webapi reads a refused client_secret_post client as invalid_client (RFC 6749 §5.2)", () => {
  it("at /token: ResponseBodyError invalid_client, not WWWAuthenticateChallengeError", async () => {
    const seeded = await seedClient();
    const error = await tokenRequestError(seeded.client_id, oauth.ClientSecretPost(`${seeded.client_secret}x`));
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect(error).toMatchObject({ error: "invalid_client", status: 401 });
    // The right secret the same way gets a token, so the refusal was the secret's.
    expect(await tokenRequestError(seeded.client_id, oauth.ClientSecretPost(seeded.client_secret))).toBeNull();
  });

  it("at /revoke and /introspect too", async () => {
    const seeded = await seedClient();
    const as = await discover();
    const client: oauth.Client = { client_id: seeded.client_id };
    const auth = oauth.ClientSecretPost(`${seeded.client_secret}x`);
    const revocation = await oauth.revocationRequest(as, client, auth, "not-a-token", options);
    const introspection = await oauth.introspectionRequest(as, client, auth, "not-a-token", options);
    for (const error of [
      await thrown(() => oauth.processRevocationResponse(revocation)),
      await thrown(() => oauth.processIntrospectionResponse(as, client, introspection)),
    ]) {
      expect(error).toBeInstanceOf(oauth.ResponseBodyError);
      expect(error).toMatchObject({ error: "invalid_client", status: 401 });
    }
  });

  it("while a refused client_secret_basic client meets the Basic challenge RFC 6749 §5.2 requires", async () => {
    const seeded = await seedClient();
    const error = await tokenRequestError(seeded.client_id, oauth.ClientSecretBasic(`${seeded.client_secret}x`));
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    expect((error as oauth.WWWAuthenticateChallengeError).cause).toEqual([
      expect.objectContaining({ scheme: "basic", parameters: expect.objectContaining({ realm: env.ISSUER }) }),
    ]);
  });
});

describe("oauth4webapi's DPoP (RFC 9449) as the real client", () => {
  it("gets a DPoP-bound token and calls the gateway with its proof; the same token as Bearer is refused", async () => {
    const seeded = await seedClient();
    const as = await discover();
    expect(as.dpop_signing_alg_values_supported).toContain("ES256");
    const client: oauth.Client = { client_id: seeded.client_id };
    const keyPair = await oauth.generateKeyPair("ES256");
    const DPoP = oauth.DPoP(client, keyPair);
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(seeded.client_secret),
      new URLSearchParams(),
      {
        ...options,
        DPoP,
      },
    );
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    expect(result.token_type).toBe("dpop");
    const url = new URL(`${env.ISSUER}/api/oauth4webapi-dpop`);
    const call = await oauth.protectedResourceRequest(result.access_token, "GET", url, new Headers(), null, { ...options, DPoP });
    expect(call.status).toBe(200);
    expect(call.headers.get("X-Origin")).toBe("echo");
    // A second call gets a fresh proof (new jti, iat): also accepted.
    expect((await oauth.protectedResourceRequest(result.access_token, "GET", url, new Headers(), null, { ...options, DPoP })).status).toBe(
      200,
    );
    // Sent as Bearer: oauth4webapi reads the refusal as a DPoP challenge (RFC 9449 §7.1).
    const error = await thrown(() => oauth.protectedResourceRequest(result.access_token, "GET", url, new Headers(), null, options));
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    expect((error as oauth.WWWAuthenticateChallengeError).cause).toEqual([
      expect.objectContaining({
        scheme: "dpop",
        parameters: expect.objectContaining({ error: "invalid_token", algs: expect.stringContaining("ES256") }),
      }),
    ]);
  });
});
