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
} as const;

const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];
/** Set by the gateway: any copy from the client is a spoof. */
const GATEWAY_SET = [
  ...Object.values(IDENTITY_HEADERS).map((h) => h.toLowerCase()),
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "forwarded",
  "x-real-ip",
  "true-client-ip",
];
/**
 * Headers that make some origins act on another method or path than the one authorized
 * (method override, IIS/Symfony URL rewrites): never forwarded.
 */
const OVERRIDES = ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url"];

/** Letter case and `_` for `-` are the same header to many origins (CVE-2025-64484). */
const canonical = (name: string): string => name.toLowerCase().replace(/_/g, "-");

function namedInConnection(headers: Headers): Set<string> {
  const names = new Set<string>();
  for (const token of (headers.get("Connection") ?? "").split(",")) {
    const name = token.trim();
    if (name) names.add(canonical(name));
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

/** The headers to send upstream. */
export function forwardRequestHeaders(incoming: Headers, options: ForwardOptions): Headers {
  const drop = new Set([...HOP_BY_HOP, ...GATEWAY_SET, ...OVERRIDES, ...options.reserved.map(canonical), "host", "content-length"]);
  // RFC 9110 §7.6.1: a header named in Connection is hop-by-hop. The gateway's own headers are
  // set after this filter, so naming them cannot get them dropped (CVE-2022-1388).
  for (const name of namedInConnection(incoming)) drop.add(name);
  if (!options.keepAuthorization) drop.add("authorization");
  const isUpgrade = options.websocket && /websocket/i.test(incoming.get("Upgrade") ?? "");
  const out = new Headers();
  for (const [name, value] of incoming) {
    const key = canonical(name);
    if (drop.has(key)) continue;
    out.append(name, value);
  }
  if (isUpgrade) out.set("Upgrade", "websocket");
  for (const [name, value] of Object.entries(options.set)) out.set(name, value);
  return out;
}

/** The origin's response headers minus hop-by-hop ones. */
export function forwardResponseHeaders(incoming: Headers): Headers {
  const drop = new Set([...HOP_BY_HOP, ...namedInConnection(incoming)]);
  const out = new Headers();
  for (const [name, value] of incoming) if (!drop.has(name.toLowerCase())) out.append(name, value);
  return out;
}
