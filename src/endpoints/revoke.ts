/**
 * POST /revoke: OAuth 2.0 token revocation for the access tokens this issuer signs. The client
 * authenticates as at /token and may revoke only its own tokens; the gateway refuses a revoked
 * token within the delay in README, "Revocation and disabled clients at the gateway".
 * @see https://www.rfc-editor.org/rfc/rfc7009
 */
import { Hono } from "hono";
import { auditEvent } from "../http/audit.ts";
import type { AppEnv } from "./app-env.ts";
import { authenticateTokenHolder } from "./token-holder.ts";
import { getConfig } from "../config.ts";
import { NO_STORE, OAuthError } from "../http/errors.ts";
import { verifyPresentedToken } from "../tokens/presented.ts";
import { isStillAcceptable, recordRevocation } from "../tokens/revocation.ts";

export const revocation = new Hono<AppEnv>();

revocation.post("/", async (c) => {
  const config = getConfig(c.env);
  // RFC 7009 §2.1: token_type_hint is only a hint; every token here is an access token, so any
  // value (or none) is ignored rather than answered with unsupported_token_type.
  const { client, token, keys, now } = await authenticateTokenHolder(c);
  // RFC 7009 §2.2: the body is ignored by the client; the status says it all.
  const revoked = () => c.body(null, 200, NO_STORE);

  const presented = await verifyPresentedToken(token, keys, {
    issuer: config.issuer,
    maxLifetime: config.maxAccessTokenTtl,
  });
  if (!presented.ok) {
    // RFC 7009 §2.2: an invalid token causes no error; the client cannot act on one.
    auditEvent(c.env, "token_revocation_ignored", {
      client_id: client.client_id,
      reason: `not a token of this issuer: ${presented.reason}`,
    });
    return revoked();
  }
  const { claims } = presented;
  if (claims.client_id !== client.client_id) {
    // RFC 7009 §2.1: the server verifies that the token was issued to the requesting client; if not,
    // the request is refused with an RFC 6749 §5.2 error (§2.2.1). unauthorized_client: this
    // client is not authorized for what it asked.
    throw new OAuthError("unauthorized_client", "the token was not issued to this client", {
      reason: `client ${JSON.stringify(client.client_id)} tried to revoke jti ${claims.jti} of client ${JSON.stringify(claims.client_id)}`,
    });
  }
  if (!isStillAcceptable(claims.exp, now)) {
    auditEvent(c.env, "token_revocation_ignored", {
      client_id: client.client_id,
      jti: claims.jti,
      reason: "expired: no gateway accepts it any more",
    });
    return revoked();
  }
  const outcome = await recordRevocation(c.env.CLIENTS, claims, now);
  auditEvent(c.env, outcome === "revoked" ? "token_revoked" : "token_revocation_ignored", {
    client_id: client.client_id,
    jti: claims.jti,
    exp: claims.exp,
    reason: outcome === "revoked" ? "revoked by its client" : "already revoked",
  });
  return revoked();
});

revocation.all("/", () => {
  throw new OAuthError("invalid_request", "the revocation endpoint accepts only POST", { status: 405, headers: { Allow: "POST" } });
});
