/**
 * Header hygiene between client and origin (RFC 9110 §7.6.1, RFC 9700 §4.13): hop-by-hop headers
 * and every client-sent copy of a header the gateway sets are dropped, then the gateway's own
 * values are set.
 */

/** Identity headers the origin can trust because the gateway always overwrites them. */
export const IDENTITY_HEADERS = {
  clientId: "X-Tollgate-Client-Id",
  scope: "X-Tollgate-Scope",
  tokenId: "X-Tollgate-Token-Id",
  /** Who vouched for the token: ISSUER for Tollgate's own, else the external issuer (EXTERNAL_ISSUERS). */
  issuer: "X-Tollgate-Issuer",
} as const;

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];
/** Set by the gateway: any copy from the client is a spoof. */
const GATEWAY_SET = [
  ...Object.values(IDENTITY_HEADERS).map((h) => h.toLowerCase()),
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
];
/** Every `X-Forwarded-*` header (Ssl, Scheme, Server, Uri, Path, Prefix, Port, Client-Cert, …) is the gateway's to set. */
const FORWARDED_FAMILY = "x-forwarded-";
/**
 * Headers that make some origins act on another client, host, scheme, method or path than the one
 * the gateway saw and authorized (RFC 7239 Forwarded and its pre-standard forms, client-IP headers,
 * Host overrides, IIS/ARR, Symfony, nginx and Envoy URL rewrites, method overrides, and Next.js's
 * internal X-Middleware-Subrequest, CVE-2025-29927): never forwarded.
 */
const OVERRIDES = [
  "forwarded",
  "x-forwarded",
  "forwarded-for",
  "fastly-client-ip",
  "x-real-ip",
  "true-client-ip",
  "x-client-ip",
  "x-cluster-client-ip",
  "client-ip",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
  "x-host",
  "x-original-host",
  "x-http-host-override",
  "x-original-url",
  "x-original-uri",
  "x-rewrite-url",
  "x-envoy-original-path",
  "x-override-url",
  "x-request-uri",
  "x-url-scheme",
  "x-scheme",
  "front-end-https",
  "x-arr-ssl",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-method",
  "x-middleware-subrequest",
];

/** Letter case and `_` for `-` are the same header to many origins (CVE-2025-64484). */
const canonical = (name: string): string => {
  const lower = name.toLowerCase();
  return lower.includes("_") ? lower.replace(/_/g, "-") : lower;
};

/** Never forwarded upstream, whatever the route (built once per isolate). */
const DROPPED_UPSTREAM = new Set([...HOP_BY_HOP, ...GATEWAY_SET, ...OVERRIDES, "host", "content-length"]);
const HOP_BY_HOP_SET = new Set(HOP_BY_HOP);

function namedInConnection(headers: Headers): string[] {
  const connection = headers.get("Connection");
  if (connection === null) return [];
  const names: string[] = [];
  for (const token of connection.split(",")) {
    const name = token.trim();
    if (name) names.push(canonical(name));
  }
  return names;
}

export interface ForwardOptions {
  keepAuthorization: boolean;
  websocket: boolean;
  /** Extra header names (e.g. the origin-auth header) to strip from the client and set ourselves. */
  reserved: string[];
  set: Record<string, string>;
}

/**
 * The headers to send upstream, as the record a Request is built from: a Headers object built here
 * would be copied again by the Request (`npm run profile -- --case gateway_protected`).
 */
export function forwardRequestHeaders(incoming: Headers, options: ForwardOptions): Record<string, string> {
  // Per request: the route's reserved names, the names the gateway sets, and (RFC 9110 §7.6.1) any
  // header named in Connection. The gateway's own headers are added after this filter, so naming
  // them in Connection cannot get them dropped (CVE-2022-1388).
  const drop = new Set(namedInConnection(incoming));
  for (const name of options.reserved) drop.add(canonical(name));
  const set = Object.entries(options.set);
  for (const [name] of set) drop.add(canonical(name));
  // RFC 9449 §7: the DPoP proof goes with the Authorization it proves, for the gateway alone.
  if (!options.keepAuthorization) drop.add("authorization").add("dpop");
  const isUpgrade = options.websocket && /websocket/i.test(incoming.get("Upgrade") ?? "");
  // Built as one record, then one Headers (the Request's): per-header native calls (append, or a
  // list of pairs) cost several times more here (`npm run profile -- --case gateway_protected`).
  // No prototype: a header named __proto__ is a header like any other.
  const kept: Record<string, string> = Object.create(null);
  for (const [name, value] of incoming) {
    const key = canonical(name);
    if (DROPPED_UPSTREAM.has(key) || drop.has(key) || key.startsWith(FORWARDED_FAMILY)) continue;
    // Iteration gives each name once, values joined, except Set-Cookie: join that too.
    kept[name] = kept[name] === undefined ? value : `${kept[name]}, ${value}`;
  }
  if (isUpgrade) kept.upgrade = "websocket";
  for (const [name, value] of set) kept[name] = value;
  return kept;
}

/**
 * The origin's response headers minus hop-by-hop ones: a record the Response is built from, or, when
 * Set-Cookie headers come (each must stay its own header), a Headers object.
 */
export function forwardResponseHeaders(incoming: Headers): Record<string, string> | Headers {
  const named = namedInConnection(incoming);
  // One record, as upstream; each Set-Cookie stays its own header, appended after.
  const kept: Record<string, string> = Object.create(null);
  let cookies = false;
  for (const [name, value] of incoming) {
    const key = name.toLowerCase();
    if (HOP_BY_HOP_SET.has(key) || named.includes(canonical(name))) continue;
    if (key === "set-cookie") cookies = true;
    else kept[name] = value;
  }
  if (!cookies || named.includes("set-cookie")) return kept;
  const out = new Headers(kept);
  for (const cookie of incoming.getSetCookie()) out.append("Set-Cookie", cookie);
  return out;
}
