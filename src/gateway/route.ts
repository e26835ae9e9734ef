/**
 * The gateway: every path the Worker does not serve itself. A request on a configured route is
 * authorized (unless the route is explicitly public) and only then proxied to the route's origin.
 */
import { Hono } from "hono";
import { getConfig } from "../config.ts";
import { BearerError, OAuthError } from "../errors.ts";
import { getSigningKeys, SigningKeyError } from "../keys/signing.ts";
import { checkScopes, extractBearerToken, verifyAccessToken } from "./bearer.ts";
import { IDENTITY_HEADERS } from "./headers.ts";
import { normalizePath, rawPathOf } from "./path.ts";
import { proxyRequest } from "./proxy.ts";
import { findRoute, requiredScopes } from "./routes.ts";

/** Form bodies on protected routes are read (up to this size) to refuse a token sent in them. */
const MAX_FORM_BODY_BYTES = 64 * 1024;

export const gateway = new Hono<{ Bindings: Env }>();

function hasTokenParameter(params: URLSearchParams): boolean {
  return params.has("access_token");
}

gateway.all("*", async (c) => {
  const config = getConfig(c.env);
  const request = c.req.raw;
  const url = new URL(request.url);
  const path = normalizePath(rawPathOf(request.url));
  const route = findRoute(config.routes, url.hostname.toLowerCase(), path);
  if (!route) throw new OAuthError("not_found", `no route for ${path}`);

  const set: Record<string, string> = {
    "X-Forwarded-Proto": url.protocol.slice(0, -1),
    "X-Forwarded-Host": url.host,
  };
  const clientIP = request.headers.get("CF-Connecting-IP");
  if (clientIP) set["X-Forwarded-For"] = clientIP;

  let body: BodyInit | null = request.body;
  if (!route.public) {
    // RFC 6750 §2: this gateway accepts the token only in the Authorization header.
    if (hasTokenParameter(url.searchParams)) throw new BearerError("invalid_request", "send the access token in the Authorization header, not the query");
    const token = extractBearerToken(request.headers);
    if (/^application\/x-www-form-urlencoded\b/i.test(request.headers.get("Content-Type") ?? "") && request.body) {
      const length = Number(request.headers.get("Content-Length") ?? NaN);
      if (length <= MAX_FORM_BODY_BYTES) {
        const text = await request.text();
        if (hasTokenParameter(new URLSearchParams(text))) throw new BearerError("invalid_request", "send the access token in the Authorization header, not the body");
        body = text;
      }
    }
    if (token === undefined) throw new BearerError(undefined, "an access token is required");
    const keys = await getSigningKeys(c.env).catch((error: unknown) => {
      if (error instanceof SigningKeyError) throw new OAuthError("temporarily_unavailable", "token verification is unavailable", { reason: error.message });
      throw error;
    });
    const claims = await verifyAccessToken(token, keys, { issuer: config.issuer, audience: route.audience!, maxLifetime: config.maxAccessTokenTtl });
    checkScopes(claims, requiredScopes(route, request.method));
    set[IDENTITY_HEADERS.clientId] = claims.client_id;
    set[IDENTITY_HEADERS.scope] = claims.scope ?? "";
    set[IDENTITY_HEADERS.tokenId] = claims.jti;
  }
  const query = url.search;
  return proxyRequest({ method: request.method, headers: request.headers, body, route, path, query, env: c.env as unknown as Record<string, unknown>, set });
});
