/**
 * GATEWAY_ROUTES: the protected (and explicitly public) routes, parsed and validated once.
 * A TOML array of tables under [vars] arrives as an array; the same JSON as a string is accepted
 * (`.dev.vars`, `--var`). Anything unexpected fails loudly, naming the field: a typo never yields a
 * silently open route.
 */
import { parseTableArrayVar } from "../table-array-var.ts";
import { isValidScopeToken } from "../clients/record.ts";
import { foldPath } from "./path.ts";

export interface GatewayRoute {
  /** Normalized path prefix, matched on whole segments. */
  prefix: string;
  /** Lowercase hostname the route is limited to, if any. */
  host: string | undefined;
  /** Upstream: an absolute http(s) URL (scheme, host, port, base path)… */
  origin: URL | undefined;
  /** …or the name of a service binding. */
  service: string | undefined;
  /** No token needed: only when the route says `public = true`. */
  public: boolean;
  /** The `aud` a token must contain for this route. */
  audience: string | undefined;
  /** Scopes every request needs. */
  scopes: string[];
  /** Extra scopes per HTTP method (upper case). */
  methodScopes: Record<string, string[]>;
  stripPrefix: boolean;
  timeoutMs: number;
  keepAuthorization: boolean;
  websocket: boolean;
  /** Name of a Rate Limiting binding applied per client on this route. */
  rateLimit: string | undefined;
  /** Header proving to the origin that the request came through the gateway; value from a Worker secret. */
  originAuth: { header: string; secret: string } | undefined;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 300_000;
const FIELDS = new Set([
  "prefix",
  "host",
  "origin",
  "service",
  "public",
  "audience",
  "scopes",
  "method_scopes",
  "strip_prefix",
  "timeout_ms",
  "keep_authorization",
  "websocket",
  "origin_auth",
  "rate_limit",
]);
/** The methods the gateway forwards; anything else (TRACE, CONNECT, WebDAV, PURGE…) is 405. */
export const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Paths the Worker serves itself; a route may not shadow them, nor an origin receive them. */
const RESERVED = ["/token", "/revoke", "/introspect", "/register", "/.well-known"];
const RESERVED_PATH = new RegExp(`^(?:${RESERVED.map((r) => r.replace(/\./g, "\\.")).join("|")})(?:/|$)`);
/** A route's hostname: labels of letters, digits and `-`, none empty (so no trailing dot). */
const HOSTNAME = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/i;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export class RouteConfigError extends Error {
  override name = "RouteConfigError";
}

function fail(where: string, message: string): never {
  throw new RouteConfigError(`GATEWAY_ROUTES${where}: ${message}`);
}

function bool(value: unknown, where: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") fail(where, "must be true or false");
  return value;
}

function scopeList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((s) => typeof s === "string" && isValidScopeToken(s))) {
    fail(where, "must be an array of scope tokens (RFC 6749 §3.3)");
  }
  return value as string[];
}

function parsePrefix(value: unknown, where: string): string {
  if (typeof value !== "string" || !value.startsWith("/")) fail(where, 'must be a path starting with "/"');
  if (/[?#;\\%\s]|\/\.{1,2}(\/|$)|\/\//.test(value))
    fail(where, "must be a plain normalized path (no query, %, ;, \\, dot segments or //)");
  // What a normalized request path keeps literally (RFC 3986 pchar): anything else, non-ASCII
  // included, arrives percent-encoded and could never match.
  if (/[^A-Za-z0-9._~!$&'()*+,=:@/-]/.test(value))
    fail(where, "must use only letters, digits and -._~!$&'()*+,=:@ (a request's other characters arrive percent-encoded)");
  const prefix = value.length > 1 ? value.replace(/\/$/, "") : value;
  if (prefix === "/") return prefix;
  // Compared as foldPath reads it: /TOKEN or /token. would be /token to a folding origin.
  const folded = foldPath(prefix);
  if (folded === "/") fail(where, "names no segment once trailing dots are ignored");
  for (const reserved of RESERVED) {
    if (folded === reserved || folded.startsWith(`${reserved}/`) || reserved.startsWith(`${folded}/`)) {
      fail(where, `overlaps ${reserved}, which Tollgate serves itself`);
    }
  }
  return prefix;
}

function parseRoute(raw: unknown, index: number): GatewayRoute {
  const at = `[${index}]`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(at, "must be a table");
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!FIELDS.has(key)) fail(`${at}.${key}`, `is not a route field (one of ${[...FIELDS].join(", ")})`);
  const prefix = parsePrefix(r.prefix, `${at}.prefix`);
  let host: string | undefined;
  if (r.host !== undefined) {
    if (typeof r.host !== "string" || !HOSTNAME.test(r.host)) fail(`${at}.host`, "must be a hostname without port or trailing dot");
    host = r.host.toLowerCase();
  }
  let origin: URL | undefined;
  let service: string | undefined;
  if ((r.origin === undefined) === (r.service === undefined)) fail(at, "needs exactly one of origin or service");
  if (r.origin !== undefined) {
    try {
      origin = new URL(r.origin as string);
    } catch {
      fail(`${at}.origin`, "must be an absolute URL");
    }
    if (origin.protocol !== "http:" && origin.protocol !== "https:") fail(`${at}.origin`, "must be http or https");
    if (origin.search || origin.hash || origin.username || origin.password)
      fail(`${at}.origin`, "must not have a query, fragment or credentials");
  } else if (typeof r.service !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(r.service)) {
    fail(`${at}.service`, "must be the name of a service binding");
  } else {
    service = r.service;
  }
  const isPublic = bool(r.public, `${at}.public`, false);
  let audience: string | undefined;
  if (r.audience !== undefined) {
    if (typeof r.audience !== "string" || r.audience === "") fail(`${at}.audience`, "must be a string");
    audience = r.audience;
  }
  if (!isPublic && audience === undefined) fail(`${at}.audience`, "is required on a protected route (or set public = true)");
  const scopes = scopeList(r.scopes, `${at}.scopes`);
  const methodScopes: Record<string, string[]> = {};
  if (r.method_scopes !== undefined) {
    if (typeof r.method_scopes !== "object" || r.method_scopes === null || Array.isArray(r.method_scopes))
      fail(`${at}.method_scopes`, "must be a table of METHOD = [scopes]");
    for (const [method, list] of Object.entries(r.method_scopes)) {
      if (!METHODS.has(method)) fail(`${at}.method_scopes.${method}`, `is not one of ${[...METHODS].join(", ")}`);
      methodScopes[method] = scopeList(list, `${at}.method_scopes.${method}`);
    }
  }
  if (isPublic && (scopes.length > 0 || Object.keys(methodScopes).length > 0 || audience !== undefined)) {
    fail(at, "a public route takes no audience or scopes");
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (r.timeout_ms !== undefined) {
    if (!Number.isSafeInteger(r.timeout_ms) || (r.timeout_ms as number) < 1 || (r.timeout_ms as number) > MAX_TIMEOUT_MS) {
      fail(`${at}.timeout_ms`, `must be whole milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
    }
    timeoutMs = r.timeout_ms as number;
  }
  let originAuth: GatewayRoute["originAuth"];
  if (r.origin_auth !== undefined) {
    const oa = r.origin_auth as Record<string, unknown>;
    if (
      typeof oa !== "object" ||
      oa === null ||
      typeof oa.header !== "string" ||
      !TOKEN.test(oa.header) ||
      typeof oa.secret !== "string" ||
      !/^[A-Za-z_][A-Za-z0-9_]*$/.test(oa.secret)
    ) {
      fail(`${at}.origin_auth`, 'must be { header = "X-Name", secret = "WORKER_SECRET_NAME" }');
    }
    for (const key of Object.keys(oa))
      if (key !== "header" && key !== "secret") fail(`${at}.origin_auth.${key}`, "is not a field (header, secret)");
    originAuth = { header: oa.header as string, secret: oa.secret as string };
  }
  let rateLimit: string | undefined;
  if (r.rate_limit !== undefined) {
    if (typeof r.rate_limit !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(r.rate_limit))
      fail(`${at}.rate_limit`, "must be the name of a Rate Limiting binding");
    if (isPublic) fail(`${at}.rate_limit`, "needs a protected route (the limit is per client)");
    rateLimit = r.rate_limit;
  }
  return {
    prefix,
    host,
    origin,
    service,
    public: isPublic,
    audience,
    scopes,
    methodScopes,
    stripPrefix: bool(r.strip_prefix, `${at}.strip_prefix`, false),
    timeoutMs,
    keepAuthorization: bool(r.keep_authorization, `${at}.keep_authorization`, false),
    websocket: bool(r.websocket, `${at}.websocket`, false),
    rateLimit,
    originAuth,
  };
}

/** Parses GATEWAY_ROUTES (absent = no routes). Most specific first: longest prefix, host-bound before any-host. */
export function parseGatewayRoutes(raw: unknown): GatewayRoute[] {
  const routes = parseTableArrayVar(raw, (message) => fail("", message), "route tables").map(parseRoute);
  const seen = new Set<string>();
  for (const [i, route] of routes.entries()) {
    // Two prefixes that fold alike would make every path under them ambiguous (findUnambiguousRoute).
    const key = `${route.host ?? "*"} ${foldedPrefix(route)}`;
    if (seen.has(key))
      fail(`[${i}]`, `repeats prefix ${route.prefix}${route.host ? ` on ${route.host}` : ""} (letter case and trailing dots aside)`);
    seen.add(key);
  }
  return routes.sort((a, b) => b.prefix.length - a.prefix.length || Number(b.host !== undefined) - Number(a.host !== undefined));
}

/** Whether `path` (normalized) is `prefix` or below it, on whole segments. */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix === "/") return true;
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** The route for a normalized path and the request's host, or undefined. */
export function findRoute(routes: GatewayRoute[], host: string, path: string): GatewayRoute | undefined {
  return routes.find((r) => (r.host === undefined || r.host === host) && matchesPrefix(path, r.prefix));
}

const foldedPrefixes = new WeakMap<GatewayRoute, string>();

function foldedPrefix(route: GatewayRoute): string {
  let folded = foldedPrefixes.get(route);
  if (folded === undefined) {
    folded = foldPath(route.prefix);
    foldedPrefixes.set(route, folded);
  }
  return folded;
}

/**
 * The request's hostname as routes are matched on it: lower case (the URL parser's), without the
 * port and without one trailing dot (`internal.example.` is `internal.example` to DNS and TLS), or
 * undefined when it is still not a plain hostname (an empty label, `..`): such a host is refused.
 * An IP literal passes as it is and matches no host-bound route.
 */
export function normalizeHost(hostname: string): string | undefined {
  const host = (hostname.endsWith(".") ? hostname.slice(0, -1) : hostname).toLowerCase();
  if (/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(host) || /^\[[0-9a-f:.]+\]$/.test(host)) return host;
  return undefined;
}

/**
 * The route for a normalized path and host, or why there is none to use. "reserved": the path,
 * as foldPath reads it, is one Tollgate serves itself (`//token` reaches the gateway as `/token`);
 * it is never an origin's. "ambiguous": the route would change under foldPath, so an origin that
 * folds could serve `/api/ADMIN` or `/api/admın` as `/api/admin` after `/api`'s weaker check.
 */
export function findUnambiguousRoute(
  routes: GatewayRoute[],
  host: string,
  path: string,
): GatewayRoute | undefined | "ambiguous" | "reserved" {
  const foldedPath = foldPath(path);
  if (RESERVED_PATH.test(foldedPath)) return "reserved";
  const route = findRoute(routes, host, path);
  const folded = routes.find((r) => (r.host === undefined || r.host === host) && matchesPrefix(foldedPath, foldedPrefix(r)));
  return folded === route ? route : "ambiguous";
}

/** The scopes a request with this method needs on this route; HEAD needs what GET needs. */
export function requiredScopes(route: GatewayRoute, method: string): string[] {
  let byMethod = scopesByRoute.get(route);
  if (!byMethod) scopesByRoute.set(route, (byMethod = new Map()));
  let scopes = byMethod.get(method);
  if (!scopes) {
    const extra = route.methodScopes[method] ?? (method === "HEAD" ? route.methodScopes.GET : undefined) ?? [];
    scopes = Object.freeze([...new Set([...route.scopes, ...extra])]) as string[];
    byMethod.set(method, scopes);
  }
  return scopes;
}

/** requiredScopes per parsed route (routes live as long as the isolate's config) and method. */
const scopesByRoute = new WeakMap<GatewayRoute, Map<string, string[]>>();
