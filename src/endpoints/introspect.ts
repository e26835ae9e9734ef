/**
 * POST /introspect: OAuth 2.0 token introspection for the access tokens this issuer signs. The
 * caller authenticates as at /token. It learns about its own tokens; a client whose record has
 * `introspect_any` (a resource server) learns about every token of this issuer. Anything else, and
 * every token that is unknown, malformed, expired, revoked, of another issuer, or of a disabled or
 * deleted client, is answered `{"active": false}` and nothing more.
 * @see https://www.rfc-editor.org/rfc/rfc7662
 */
import { Hono } from "hono";
import { auditEvent } from "../http/audit.ts";
import type { AppEnv } from "./app-env.ts";
import { authenticateTokenHolder } from "./token-holder.ts";
import type { ClientRecord } from "../clients/record.ts";
import { loadClient } from "../clients/store.ts";
import { getConfig } from "../config.ts";
import { NO_STORE, OAuthError } from "../http/errors.ts";
import type { AccessTokenClaims } from "../tokens/mint.ts";
import { verifyPresentedToken } from "../tokens/presented.ts";
import { clientRefusal, clientStatusOf } from "../tokens/status.ts";
import { isRevoked } from "../tokens/revocation.ts";
import { KV_CACHE_TTL_SECONDS } from "../policy.ts";

export const introspection = new Hono<AppEnv>();

/** RFC 7662 §2.2: the members of an active token's answer. */
function activeResponse(claims: AccessTokenClaims): Record<string, unknown> {
  const body: Record<string, unknown> = { active: true };
  if (claims.scope !== undefined) body.scope = claims.scope;
  Object.assign(body, {
    client_id: claims.client_id,
    sub: claims.sub,
    aud: claims.aud,
    iss: claims.iss,
    exp: claims.exp,
    iat: claims.iat,
    jti: claims.jti,
    // RFC 9449 §6.2: a DPoP-bound token is of type DPoP, and its binding is shown.
    token_type: claims.cnf?.jkt === undefined ? "Bearer" : "DPoP",
  });
  if (claims.cnf !== undefined) body.cnf = claims.cnf;
  return body;
}

introspection.post("/", async (c) => {
  const config = getConfig(c.env);
  // RFC 7662 §2.1: token_type_hint may be ignored; every token here is an access token.
  const { client, token, keys, now } = await authenticateTokenHolder(c);
  // RFC 7662 §2.2: an inactive token gets "active": false and no other member, whatever the reason
  // (the reason goes to the log only, never to the caller).
  const inactive = (reason: string, claims?: AccessTokenClaims) => {
    auditEvent(c.env, "introspection_inactive", {
      client_id: client.client_id,
      token_client_id: claims?.client_id,
      jti: claims?.jti,
      reason,
    });
    return c.json({ active: false }, 200, NO_STORE);
  };

  const presented = await verifyPresentedToken(token, keys, {
    issuer: config.issuer,
    maxLifetime: config.maxAccessTokenTtl,
  });
  if (!presented.ok) return inactive(`not a token of this issuer: ${presented.reason}`);
  const { claims } = presented;
  // RFC 7662 §4: the server may answer callers differently; one not entitled learns nothing more.
  if (claims.client_id !== client.client_id && !client.introspect_any)
    return inactive("token of another client, and introspect_any is false", claims);
  // RFC 7662 §2.2: not active once expired. No clock tolerance here: the issuer's own clock decides.
  if (claims.exp <= now) return inactive("expired", claims);

  // The caller was just authenticated, enabled; another client's record is read as the gateway reads it.
  const owner: Promise<ClientRecord | null> =
    claims.client_id === client.client_id
      ? Promise.resolve(client)
      : loadClient(c.env.CLIENTS, claims.client_id, { cacheTtl: KV_CACHE_TTL_SECONDS });
  const [record, revoked] = await Promise.all([owner, isRevoked(c.env.CLIENTS, claims.jti, { cacheTtl: KV_CACHE_TTL_SECONDS })]);
  if (revoked) return inactive("revoked", claims);
  // The gateway's rules (src/tokens/status.ts): deleted, disabled, or issued under an earlier instance.
  const refusal = clientRefusal(claims, clientStatusOf(record));
  if (refusal) return inactive(refusal, claims);
  return c.json(activeResponse(claims), 200, NO_STORE);
});

introspection.all("/", () => {
  throw new OAuthError("invalid_request", "the introspection endpoint accepts only POST", { status: 405, headers: { Allow: "POST" } });
});
