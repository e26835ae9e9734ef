/**
 * Sends an authorized request to its route's origin and streams the answer back: bodies are never
 * buffered, redirects are passed back, not followed, and failures become JSON 502/504.
 */
import { OAuthError } from "../errors.ts";
import { forwardRequestHeaders, forwardResponseHeaders } from "./headers.ts";
import type { GatewayRoute } from "./routes.ts";

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
}

/** The upstream URL: the origin's base path joined with the authorized path (minus the prefix when stripped). */
export function upstreamURL(route: GatewayRoute, path: string, query: string): string {
  let rest = path;
  if (route.stripPrefix && route.prefix !== "/") rest = path.slice(route.prefix.length) || "/";
  const base = route.origin ?? new URL("https://service.internal/");
  const basePath = base.pathname.replace(/\/$/, "");
  return `${base.origin}${basePath}${rest}${query}`;
}

export async function proxyRequest({ method, body, route, path, query, env, set, ...input }: ProxyInput): Promise<Response> {
  const headers = forwardRequestHeaders(input.headers, {
    keepAuthorization: route.keepAuthorization,
    websocket: route.websocket,
    reserved: route.originAuth ? [route.originAuth.header] : [],
    set,
  });
  if (route.originAuth) {
    const value = env[route.originAuth.secret];
    if (typeof value !== "string" || value === "") {
      throw new OAuthError("server_error", "the gateway is misconfigured", { reason: `Worker secret ${route.originAuth.secret} (origin_auth) is not set` });
    }
    headers.set(route.originAuth.header, value);
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
      throw new OAuthError("gateway_timeout", "the origin did not answer in time", { reason: `${url.split("?")[0]}: no response in ${route.timeoutMs} ms` });
    }
    throw new OAuthError("bad_gateway", "the origin could not be reached", { reason: `${url.split("?")[0]}: ${(error as Error).message}` });
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 101 && response.webSocket) return response;
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: forwardResponseHeaders(response.headers),
  });
}
