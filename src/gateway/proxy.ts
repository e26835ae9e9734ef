/**
 * Sends an authorized request to its route's origin and streams the answer back: bodies are never
 * buffered, redirects are passed back, not followed, and failures become JSON 502/504. A WebSocket
 * opened with a token is relayed and closed when the token ends.
 */
import { BearerError, OAuthError } from "../http/errors.ts";
import { forwardRequestHeaders, forwardResponseHeaders } from "./headers.ts";
import type { GatewayRoute } from "./route-table.ts";

export interface ProxyInput {
  method: string;
  headers: Headers;
  body: BodyInit | null;
  route: GatewayRoute;
  /** The normalized path that was authorized. */
  path: string;
  /** The raw query, with its "?" or empty. */
  query: string;
  env: Record<string, unknown>;
  /** Identity and forwarding headers set by the gateway. */
  set: Record<string, string>;
  /** The token a protected route was opened with: bounds a WebSocket's life. None on public routes. */
  session?: TokenSession;
}

/** What a WebSocket needs to know of the token it was opened with. */
export interface TokenSession {
  /** The token's `exp` (epoch seconds): the socket is closed then at the latest. */
  expiresAt: number;
  /**
   * Throws once the token may no longer be used (revoked, its client disabled or deleted). None for
   * a token with no status to check (an external issuer's): then only `expiresAt` ends the socket.
   */
  recheck?: () => Promise<void>;
  /** How often `recheck` runs while the socket is open. */
  recheckEveryMs: number;
}

/** RFC 6455 §7.4: 1008 = policy violation; 1011 = the server cannot go on. */
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_INTERNAL_ERROR = 1011;

/** A close code received that may be sent on (RFC 6455 §7.4.1: 1005, 1006, 1015 are never sent). */
function relayableCode(code: number): number {
  return code === 1000 ||
    (code >= 1001 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
    ? code
    : 1000;
}

/**
 * Relays a WebSocket between the client and the origin, closing both ends with 1008 when the token
 * expires, and when a periodic status check finds it revoked or its client disabled or deleted
 * (README, "Gateway routes"). Verifying the token at the upgrade alone would let a socket outlive it.
 */
function relayWebSocket(upstream: Response, origin: WebSocket, session: TokenSession): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  origin.accept();
  let ended = false;
  const end = (code: number, reason: string): void => {
    if (ended) return;
    ended = true;
    clearTimeout(expiry);
    if (recheck !== undefined) clearInterval(recheck);
    for (const socket of [server, origin]) {
      try {
        socket.close(code, reason);
      } catch {
        // That end is closed already.
      }
    }
  };
  const forward = (to: WebSocket) => (event: MessageEvent) => {
    try {
      to.send(event.data as string | ArrayBuffer);
    } catch {
      end(CLOSE_INTERNAL_ERROR, "the other end is gone");
    }
  };
  server.addEventListener("message", forward(origin));
  origin.addEventListener("message", forward(server));
  for (const socket of [server, origin]) {
    socket.addEventListener("close", (event: CloseEvent) => end(relayableCode(event.code), event.reason));
    socket.addEventListener("error", () => end(CLOSE_INTERNAL_ERROR, "connection error"));
  }
  const expiry = setTimeout(() => end(CLOSE_POLICY_VIOLATION, "access token expired"), Math.max(0, session.expiresAt * 1000 - Date.now()));
  const check = session.recheck;
  const recheck =
    check === undefined
      ? undefined
      : setInterval(() => {
          check().catch((error: unknown) => {
            if (error instanceof BearerError) end(CLOSE_POLICY_VIOLATION, "access token revoked");
            else end(CLOSE_INTERNAL_ERROR, "token status unavailable, try again later");
          });
        }, session.recheckEveryMs);
  return new Response(null, { status: 101, webSocket: client, headers: upstream.headers });
}

/** A service binding's requests need an absolute URL; its host is never contacted. */
const SERVICE_BASE = new URL("https://service.internal/");

/** The upstream URL: the origin's base path joined with the authorized path (minus the prefix when stripped). */
export function upstreamURL(route: GatewayRoute, path: string, query: string): string {
  let rest = path;
  if (route.stripPrefix && route.prefix !== "/") rest = path.slice(route.prefix.length) || "/";
  const base = route.origin ?? SERVICE_BASE;
  const basePath = base.pathname.replace(/\/$/, "");
  return `${base.origin}${basePath}${rest}${query}`;
}

export async function proxyRequest({ method, body, route, path, query, env, set, session, ...input }: ProxyInput): Promise<Response> {
  const headers = forwardRequestHeaders(input.headers, {
    keepAuthorization: route.keepAuthorization,
    websocket: route.websocket,
    reserved: route.originAuth ? [route.originAuth.header] : [],
    set,
  });
  if (route.originAuth) {
    const value = env[route.originAuth.secret];
    if (typeof value !== "string" || value === "") {
      throw new OAuthError("server_error", "the gateway is misconfigured", {
        reason: `Worker secret ${route.originAuth.secret} (origin_auth) is not set`,
      });
    }
    // As Headers.set would: whatever the letter case of a name already there, this value replaces it.
    const name = route.originAuth.header.toLowerCase();
    for (const key of Object.keys(headers)) if (key.toLowerCase() === name) delete headers[key];
    headers[route.originAuth.header] = value;
  }
  const url = upstreamURL(route, path, query);
  const hasBody = method !== "GET" && method !== "HEAD" && body !== null;
  // The timeout covers the wait for the response headers; a long body keeps streaming after them.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), route.timeoutMs);
  const upstream = new Request(url, {
    method,
    headers,
    body: hasBody ? body : null,
    redirect: "manual",
    signal: abort.signal,
  });
  let response: Response;
  try {
    if (route.service) {
      const binding = env[route.service] as Fetcher | undefined;
      if (!binding || typeof binding.fetch !== "function") {
        throw new OAuthError("server_error", "the gateway is misconfigured", { reason: `service binding ${route.service} is not bound` });
      }
      response = await binding.fetch(upstream);
    } else {
      response = await fetch(upstream);
    }
  } catch (error) {
    if (error instanceof OAuthError) throw error;
    if (abort.signal.aborted) {
      throw new OAuthError("gateway_timeout", "the origin did not answer in time", {
        reason: `${url.split("?")[0]}: no response in ${route.timeoutMs} ms`,
      });
    }
    throw new OAuthError("bad_gateway", "the origin could not be reached", { reason: `${url.split("?")[0]}: ${(error as Error).message}` });
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 101 && response.webSocket) return session ? relayWebSocket(response, response.webSocket, session) : response;
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: forwardResponseHeaders(response.headers),
  });
}
