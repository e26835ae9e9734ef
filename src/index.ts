/**
 * Tollgate: the token service and the gateway in one Worker.
 */
import { Hono } from "hono";
import { auditEvent } from "./http/audit.ts";
import type { AppEnv } from "./endpoints/app-env.ts";
import { ConfigError, getConfig } from "./config.ts";
import { BearerError, bearerErrorResponse, OAuthError, oauthErrorResponse, StoreUnavailableError } from "./http/errors.ts";
import { logEvent } from "./http/log.ts";
import { jwks } from "./endpoints/jwks.ts";
import { gateway } from "./endpoints/gateway.ts";
import { introspection } from "./endpoints/introspect.ts";
import { revocation } from "./endpoints/revoke.ts";
import { register } from "./endpoints/register.ts";
import { SigningKeyError } from "./keys/signing.ts";
import { metadata } from "./endpoints/metadata.ts";
import { token } from "./endpoints/token.ts";

const app = new Hono<AppEnv>();

/** The realm in Bearer challenges: the issuer, whose tokens the gateway accepts. */
function realmOf(env: Env): string {
  try {
    return getConfig(env).issuer;
  } catch {
    return "tollgate";
  }
}

// The map of the API: each endpoint is mounted at its real path.
app.route("/token", token); // RFC 6749 §4.4: client credentials
app.route("/revoke", revocation); // RFC 7009
app.route("/introspect", introspection); // RFC 7662
app.route("/.well-known/jwks.json", jwks); // RFC 7517
app.route("/.well-known/oauth-authorization-server", metadata); // RFC 8414
app.route("/register", register); // RFC 7591/7592 admin API: /register and /register/:client_id
// Last: every other path is the gateway's.
app.route("*", gateway);

app.onError((thrown, c) => {
  // KV unreachable: 503 temporarily_unavailable, answered like any other OAuthError.
  const error = thrown instanceof StoreUnavailableError ? thrown.toOAuthError() : thrown;
  // The gateway parsed the URL already for its own refusals; other paths parse it here.
  const path = (c.get("gatewayRoute")?.url ?? new URL(c.req.url)).pathname;
  const audit = c.get("audit") ?? {};
  // The event names the refusal: the endpoint or middleware that refused said what it was (RefusalEvents).
  const refusal = c.get("refusal") ?? {};
  if (error instanceof OAuthError) {
    const level = error.status >= 500 ? "error" : "refused";
    auditEvent(c.env, refusal.oauth ?? "request_refused", {
      level,
      path,
      ...audit,
      error: error.code,
      reason: error.reason ?? error.description,
    });
    return oauthErrorResponse(error);
  }
  if (error instanceof BearerError) {
    auditEvent(c.env, refusal.bearer ?? "gateway_denied", {
      path,
      ...audit,
      error: error.code ?? "no_token",
      reason: error.reason ?? error.description,
    });
    return bearerErrorResponse(error, realmOf(c.env));
  }
  if (error instanceof SigningKeyError) {
    // docs/security.md item 22: no key, no token and no verification; the cause goes to the log only.
    const unavailable = new OAuthError("temporarily_unavailable", "signing keys are unavailable, try again later", {
      reason: error.message,
    });
    auditEvent(c.env, refusal.signingKey ?? "request_refused", {
      level: "error",
      path,
      ...audit,
      error: unavailable.code,
      reason: error.message,
    });
    return oauthErrorResponse(unavailable);
  }
  // A bad configuration was logged once by getConfig; every request answers the same 500 until it is fixed.
  if (error instanceof ConfigError) return oauthErrorResponse(new OAuthError("server_error", "internal error"));
  // Not ours: log it whole, answer without detail.
  logEvent("internal_error", { level: "error", path, name: error.name, message: error.message });
  console.error(error);
  return oauthErrorResponse(new OAuthError("server_error", "internal error"));
});

export default app;

// The Durable Object that makes each client assertion single-use network-wide (wrangler.toml, JTI_GUARD).
export { JtiGuard } from "./client-auth/jti-guard.ts";
