/**
 * GET /.well-known/oauth-authorization-server: RFC 8414 authorization server metadata.
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-2
 */
import { Hono } from "hono";
import { getConfig } from "../config.ts";
import { OAuthError } from "../http/errors.ts";
import { METADATA_MAX_AGE } from "../policy.ts";
import { ASSERTION_ALGORITHMS } from "../clients/client-keys.ts";
import { DPOP_SIGNING_ALGS } from "../tokens/dpop.ts";
import { TOKEN_ENDPOINT_AUTH_METHODS } from "../clients/record.ts";

/**
 * RFC 8414 §2: every endpoint authenticates clients the same way, by secret, by assertion (RFC 7523
 * §2.2) or by TLS client certificate (RFC 8705 §2).
 */
const AUTH_METHODS = [...TOKEN_ENDPOINT_AUTH_METHODS];
const AUTH_SIGNING_ALGS = [...ASSERTION_ALGORITHMS];

export const metadata = new Hono<{ Bindings: Env }>();

metadata.get("/", (c) => {
  const { issuer } = getConfig(c.env);
  return c.json(
    {
      issuer,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      grant_types_supported: ["client_credentials"],
      token_endpoint_auth_methods_supported: AUTH_METHODS,
      token_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      // RFC 8414 §2: revocation (RFC 7009) and introspection (RFC 7662) authenticate as /token does.
      revocation_endpoint: `${issuer}/revoke`,
      revocation_endpoint_auth_methods_supported: AUTH_METHODS,
      revocation_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      introspection_endpoint: `${issuer}/introspect`,
      introspection_endpoint_auth_methods_supported: AUTH_METHODS,
      introspection_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      // RFC 8414 §2 / RFC 7591: the admin API (an access token with the tollgate:admin scope).
      registration_endpoint: `${issuer}/register`,
      // RFC 8414 §2 requires this member; there is no authorization endpoint, so no response types.
      response_types_supported: [],
      // The JWT access-token profile (RFC 9068) signs with ES256 only.
      access_token_signing_alg_values_supported: ["ES256"],
      // RFC 9449 §5.1: /token binds tokens to DPoP proofs signed with these.
      dpop_signing_alg_values_supported: DPOP_SIGNING_ALGS,
      // RFC 8705 §3.3: tokens bound to the client certificate (cnf.x5t#S256). No mtls_endpoint_aliases
      // (§5): client certificates are enabled on the Worker's own hostname (README, "Mutual TLS").
      tls_client_certificate_bound_access_tokens: true,
    },
    200,
    { "Cache-Control": `public, max-age=${METADATA_MAX_AGE}`, "Access-Control-Allow-Origin": "*" },
  );
});

// HEAD is served by the GET handler; every other method is 405 here, not the gateway's 404.
metadata.all("/", () => {
  throw new OAuthError("invalid_request", "the metadata document accepts only GET and HEAD", {
    status: 405,
    headers: { Allow: "GET, HEAD" },
  });
});
