/**
 * The gateway: every path the Worker does not serve itself. A request on a configured route is
 * authorized (unless the route is explicitly public) and only then proxied to the route's origin.
 */
import { Hono } from "hono";
import { auditOf, countEvent, type AppEnv } from "../audit.ts";
import { readBodyCapped } from "../body.ts";
import { getConfig } from "../config.ts";
import { BearerError, OAuthError } from "../errors.ts";
import { getSigningKeys } from "../keys/signing.ts";
import { enforceLimit } from "../limits.ts";
import { checkScopes, extractBearerToken, verifyAccessToken } from "./bearer.ts";
import { IDENTITY_HEADERS } from "./headers.ts";
import { normalizePath, rawPathOf } from "./path.ts";
import { proxyRequest } from "./proxy.ts";
import { findUnambiguousRoute, METHODS, normalizeHost, requiredScopes } from "./routes.ts";
import { checkTokenStatus } from "./token-status.ts";

/** Form bodies on protected routes are read (up to this size) to refuse a token sent in them. */
const MAX_FORM_BODY_BYTES = 64 * 1024;

export const gateway = new Hono<AppEnv>();

function hasTokenParameter(params: URLSearchParams): boolean {
  return params.has("access_token");
}

gateway.all("*", async (c) => {
  const config = getConfig(c.env);
  const request = c.req.raw;
  const url = new URL(request.url);
  const path = normalizePath(rawPathOf(request.url));
  const host = normalizeHost(url.hostname);
  if (host === undefined) throw new OAuthError("invalid_request", "the request's host is not a plain hostname", { reason: `odd host ${url.hostname.slice(0, 200)}` });
  const route = findUnambiguousRoute(config.routes, host, path);
  if (route === "ambiguous") {
    throw new OAuthError("invalid_request", "the request path is ambiguous (letter case, Unicode compatibility forms, or trailing dots or spaces select another route)", { reason: `ambiguous path ${path.slice(0, 200)}` });
  }
  // A reserved path that Hono did not route (//token, /token/) is no route, whatever a catch-all says.
  if (!route || route === "reserved") throw new OAuthError("not_found", `no route for ${path.slice(0, 200)}`);
  if (!METHODS.has(request.method)) {
    throw new OAuthError("invalid_request", `the gateway does not forward ${request.method.slice(0, 20)} requests`, { status: 405, headers: { Allow: [...METHODS].join(", ") } });
  }
  const audit = auditOf(c);
  audit.route = route.prefix;

  const set: Record<string, string> = {
    "X-Forwarded-Proto": url.protocol.slice(0, -1),
    "X-Forwarded-Host": url.host,
  };
  const clientIP = request.headers.get("CF-Connecting-IP");
  if (clientIP) set["X-Forwarded-For"] = clientIP;

  let body: BodyInit | null = request.body;
  if (!route.public) {
    // RFC 6750 §2: this gateway accepts the token only in the Authorization header.
    if (url.search.length > 1 && hasTokenParameter(url.searchParams)) throw new BearerError("invalid_request", "send the access token in the Authorization header, not the query");
    const token = extractBearerToken(request.headers);
    if (token === undefined) throw new BearerError(undefined, "an access token is required");
    const keys = await getSigningKeys(c.env);
    const claims = await verifyAccessToken(token, keys, { issuer: config.issuer, audience: route.audience!, maxLifetime: config.maxAccessTokenTtl });
    audit.client_id = claims.client_id;
    audit.jti = claims.jti;
    audit.scope = claims.scope;
    // Revoked, or its client disabled or deleted: the signature cannot say (token-status.ts).
    await checkTokenStatus(c.env.CLIENTS, claims);
    checkScopes(claims, requiredScopes(route, request.method));
    if (/^application\/x-www-form-urlencoded\b/i.test(request.headers.get("Content-Type") ?? "") && request.body) {
      // Read only once the token is known good (reading costs). Every form body is checked, chunked
      // or not; past the limit it is refused rather than forwarded unchecked. Inspected as text,
      // forwarded as the bytes that came.
      const bytes = await readBodyCapped(request, MAX_FORM_BODY_BYTES);
      if (!bytes) throw new OAuthError("invalid_request", `form bodies over ${MAX_FORM_BODY_BYTES} bytes are not accepted on protected routes`, { status: 413 });
      if (hasTokenParameter(new URLSearchParams(new TextDecoder().decode(bytes)))) throw new BearerError("invalid_request", "send the access token in the Authorization header, not the body");
      body = bytes;
    }
    if (route.rateLimit) {
      const limiter = (c.env as unknown as Record<string, RateLimit | undefined>)[route.rateLimit];
      if (!limiter) throw new OAuthError("server_error", "the gateway is misconfigured", { reason: `rate_limit binding ${route.rateLimit} is not bound` });
      await enforceLimit(limiter, `${claims.client_id}\u0000${route.prefix}`, `requests per client on ${route.prefix}`);
    }
    set[IDENTITY_HEADERS.clientId] = claims.client_id;
    set[IDENTITY_HEADERS.scope] = claims.scope ?? "";
    set[IDENTITY_HEADERS.tokenId] = claims.jti;
  }
  countEvent(c.env, "gateway_allowed", audit);
  const query = url.search;
  return proxyRequest({ method: request.method, headers: request.headers, body, route, path, query, env: c.env as unknown as Record<string, unknown>, set });
});
