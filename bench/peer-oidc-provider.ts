/**
 * The peer for `npm run bench`: node-oidc-provider (panva) on loopback, configured as a
 * client-credentials token service issuing ES256 JWT access tokens (RFC 9068 profile), like Tollgate.
 * Run as its own process: `node bench/peer-oidc-provider.ts <port> <client_id> <client_secret>`.
 */
import Provider from "oidc-provider";
import { generateSigningKey } from "../src/keys/new-key-pair.ts";

const [port, clientId, clientSecret] = process.argv.slice(2) as [string, string, string];
const audience = "https://api.bench.test";

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
    },
  ],
  jwks: { keys: [(await generateSigningKey()) as never] },
  scopes: ["bench:read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "bench:read",
        audience,
        accessTokenTTL: 300,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\n"));
