/**
 * The gateway: every path the Worker does not serve itself. A request on a configured route is
 * authorized (unless the route is explicitly public) and only then proxied to the route's origin.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { countEvent } from "../http/audit.ts";
import { requireAccessToken, accessTokenOf } from "./access-token.ts";
import { auditOf, type AppEnv } from "./app-env.ts";
import { readBodyCapped } from "../http/body.ts";
import { getConfig } from "../config.ts";
import { BearerError, OAuthError } from "../http/errors.ts";
import { enforceLimit } from "../http/limits.ts";
import { IDENTITY_HEADERS } from "../gateway/headers.ts";
import { SELF_ONLY } from "../gateway/external-issuers.ts";
import {
  checkBodyForOverride,
  hasMethodOverride,
  methodOverrideRefused,
  overrideBodyKind,
  withoutOverrides,
} from "../gateway/method-override.ts";
import { normalizePath, rawPathOf } from "../gateway/path.ts";
import { proxyRequest, type TokenSession } from "../gateway/proxy.ts";
import { findUnambiguousRoute, METHODS, normalizeHost, requiredScopes, type GatewayRoute } from "../gateway/route-table.ts";
import { checkTokenStatus } from "../tokens/status.ts";
import { REVOCATION_CHECK_SECONDS } from "../policy.ts";

/** Lenient (not fatal): a form body that is not UTF-8 is checked as its replacement text. */
const decoder = new TextDecoder();

/** Form bodies on protected routes are read (up to this size) to refuse a token sent in them. */
const MAX_FORM_BODY_BYTES = 64 * 1024;

export const gateway = new Hono<AppEnv>();

function hasTokenParameter(params: URLSearchParams): boolean {
  return params.has("access_token");
}

/** The route findRoute chose for this request, its normalized path, and the URL parsed once. */
function routeOf(c: Context<AppEnv>): { route: GatewayRoute; path: string; url: URL } {
  return c.get("gatewayRoute")!;
}

/** The request's route, and the checks that come before its token. */
const findRoute: MiddlewareHandler<AppEnv> = async (c, next) => {
  const config = getConfig(c.env);
  const request = c.req.raw;
  const url = new URL(request.url);
  const path = normalizePath(rawPathOf(request.url));
  const host = normalizeHost(url.hostname);
  if (host === undefined)
    throw new OAuthError("invalid_request", "the request's host is not a plain hostname", {
      reason: `odd host ${url.hostname.slice(0, 200)}`,
    });
  const route = findUnambiguousRoute(config.routes, host, path);
  if (route === "ambiguous") {
    throw new OAuthError(
      "invalid_request",
      "the request path is ambiguous (letter case, Unicode compatibility forms, or trailing dots or spaces select another route)",
      { reason: `ambiguous path ${path.slice(0, 200)}` },
    );
  }
  // A reserved path that Hono did not route (//token, /token/) is no route, whatever a catch-all says.
  if (!route || route === "reserved") throw new OAuthError("not_found", `no route for ${path.slice(0, 200)}`);
  if (!METHODS.has(request.method)) {
    throw new OAuthError("invalid_request", `the gateway does not forward ${request.method.slice(0, 20)} requests`, {
      status: 405,
      headers: { Allow: [...METHODS].join(", ") },
    });
  }
  const audit = auditOf(c);
  audit.route = route.prefix;
  // From here on a refusal is the gateway's denial.
  c.set("refusal", { oauth: "gateway_denied", bearer: "gateway_denied" });
  c.set("gatewayRoute", { route, path, url });
  // RFC 6750 §2: this gateway accepts the token only in the Authorization header.
  if (!route.public && url.search.length > 1) {
    if (hasTokenParameter(url.searchParams))
      throw new BearerError("invalid_request", "send the access token in the Authorization header, not the query");
    if (hasMethodOverride(url.searchParams)) throw methodOverrideRefused();
  }
  await next();
};

// Mounted at "*" in src/index.ts: this handler serves every path no other endpoint serves.
gateway.all(
  "/",
  findRoute,
  requireAccessToken({
    when: (c) => !routeOf(c).route.public,
    audience: (c) => routeOf(c).route.audience!,
    scopes: (c) => requiredScopes(routeOf(c).route, c.req.raw.method),
    missing: "an access token is required",
    audit: true,
    issuers: (c) => routeOf(c).route.issuers,
  }),
  async (c) => {
    const request = c.req.raw;
    const { route, path, url } = routeOf(c);
    const audit = auditOf(c);

    const set: Record<string, string> = {
      "X-Forwarded-Proto": url.protocol.slice(0, -1),
      "X-Forwarded-Host": url.host,
    };
    const clientIP = request.headers.get("CF-Connecting-IP");
    if (clientIP) set["X-Forwarded-For"] = clientIP;

    let body: BodyInit | null = request.body;
    let session: TokenSession | undefined;
    let refused: BearerError | undefined;
    if (!route.public) {
      // Verified, its status checked (Tollgate's own tokens) and its scopes granted by requireAccessToken.
      const claims = accessTokenOf(c);
      const own = route.issuers === SELF_ONLY || claims.iss === getConfig(c.env).issuer;
      const contentType = request.headers.get("Content-Type") ?? "";
      const kind = request.body ? overrideBodyKind(contentType, request.method) : undefined;
      // RFC 9110 §8.4: a body the origin inflates (body-parser does) is not the body the gateway read.
      if (kind && !/^\s*(?:identity\s*)?$/i.test(request.headers.get("Content-Encoding") ?? "")) {
        throw new OAuthError(
          "invalid_request",
          "content codings (Content-Encoding) are not accepted on form, multipart, JSON or untyped bodies on protected routes",
          {
            status: 415,
            headers: { "Accept-Encoding": "identity" },
            reason: `Content-Encoding ${request.headers.get("Content-Encoding")!.slice(0, 100)}`,
          },
        );
      }
      // RFC 8259 §8.1: JSON is UTF-8; body-parser would decode a UTF-16 or UTF-32 one the scan cannot read.
      const charset = kind === "json" ? /;\s*charset\s*=\s*"?([^";]*)/i.exec(contentType)?.[1]?.trim() : undefined;
      if (charset !== undefined && !/^(?:utf-8|us-ascii)$/i.test(charset)) {
        throw new OAuthError("invalid_request", "JSON bodies on protected routes must be UTF-8", {
          status: 415,
          reason: `JSON ${contentType.slice(0, 100)}`,
        });
      }
      if (kind === "urlencoded" && request.body) {
        // Read only once the token is known good (reading costs). Every form body is checked, chunked
        // or not; past the limit it is refused rather than forwarded unchecked. Inspected as text,
        // forwarded as the bytes that came.
        const bytes = await readBodyCapped(request, MAX_FORM_BODY_BYTES);
        if (!bytes)
          throw new OAuthError("invalid_request", `form bodies over ${MAX_FORM_BODY_BYTES} bytes are not accepted on protected routes`, {
            status: 413,
          });
        const form = new URLSearchParams(decoder.decode(bytes));
        if (hasTokenParameter(form))
          throw new BearerError("invalid_request", "send the access token in the Authorization header, not the body");
        if (hasMethodOverride(form)) throw methodOverrideRefused();
        body = bytes;
      } else if (kind && request.body) {
        // _method in a multipart body (Rack, Symfony), in a POST body without Content-Type (Rack
        // parses it as a form) or a JSON one (Laravel, method-override's req.body): read first when
        // declared small, else checked as it streams (uploads), the body withheld from the override on.
        const declared = Number(request.headers.get("Content-Length") ?? Number.NaN);
        if (declared <= MAX_FORM_BODY_BYTES) {
          const bytes = await readBodyCapped(request, MAX_FORM_BODY_BYTES);
          if (!bytes) throw new OAuthError("invalid_request", "the body is longer than its Content-Length", { status: 413 });
          checkBodyForOverride(bytes, contentType);
          body = bytes;
        } else {
          body = withoutOverrides(request.body, contentType, (error) => (refused = error));
        }
      }
      if (route.rateLimit) {
        const limiter = (c.env as unknown as Record<string, RateLimit | undefined>)[route.rateLimit];
        if (!limiter)
          throw new OAuthError("server_error", "the gateway is misconfigured", {
            reason: `rate_limit binding ${route.rateLimit} is not bound`,
          });
        // An external issuer's client ids are its own namespace: never the budget of a Tollgate client of that name.
        const client = own ? claims.client_id : `${claims.iss}\u0000${claims.client_id}`;
        await enforceLimit(limiter, `${client}\u0000${route.prefix}`, `requests per client on ${route.prefix}`);
      }
      // A WebSocket lives no longer than its token, nor past its revocation (proxy.ts); an external
      // issuer's token has no status here to check again.
      session = {
        expiresAt: claims.exp,
        recheck: own ? () => checkTokenStatus(c.env.CLIENTS, claims) : undefined,
        recheckEveryMs: REVOCATION_CHECK_SECONDS * 1000,
      };
      set[IDENTITY_HEADERS.clientId] = claims.client_id;
      set[IDENTITY_HEADERS.scope] = claims.scope ?? "";
      set[IDENTITY_HEADERS.tokenId] = claims.jti;
      set[IDENTITY_HEADERS.issuer] = claims.iss;
    }
    countEvent(c.env, "gateway_allowed", audit);
    const query = url.search;
    try {
      return await proxyRequest({
        method: request.method,
        headers: request.headers,
        body,
        route,
        path,
        query,
        env: c.env as unknown as Record<string, unknown>,
        set,
        session,
      });
    } catch (error) {
      // The upstream request failed because its body was cut for a _method part: the client's fault.
      throw refused ?? error;
    }
  },
);
