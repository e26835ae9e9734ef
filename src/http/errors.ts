/**
 * Every error Tollgate puts on the wire is built here: JSON, `Cache-Control: no-store`, and the
 * `WWW-Authenticate` challenge its status calls for. The public `description` is what a caller
 * learns; the internal `reason` goes to the log only.
 */

/** RFC 6749 §5.2 error codes, RFC 8707's invalid_target, RFC 7591's invalid_client_metadata, RFC 9449's invalid_dpop_proof, and the gateway's HTTP-level ones. */
export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "invalid_target"
  | "invalid_client_metadata"
  | "invalid_dpop_proof"
  | "not_found"
  | "bad_gateway"
  | "gateway_timeout"
  | "server_error"
  | "temporarily_unavailable";

/**
 * Workers KV could not be read or written: raised by the storage code, answered in one place (src/index.ts's
 * onError) as 503 temporarily_unavailable, nothing issued or changed; the cause goes to the log only
 * (docs/security.md item 22). Code that may bridge an outage (src/tokens/status.ts) catches this class.
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  /** Which store: the client records, or the token state (revoked:{jti}). */
  readonly store: "client" | "token";

  constructor(store: "client" | "token", operation: string, cause: unknown) {
    super(`KV ${operation} failed: ${(cause as Error).message}`);
    this.store = store;
  }

  /** The answer: 503, with the cause as the log-only reason. */
  toOAuthError(): OAuthError {
    return new OAuthError("temporarily_unavailable", `the ${this.store} store is unavailable, try again later`, { reason: this.message });
  }
}

/**
 * An error answered per RFC 6749 §5.2.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export class OAuthError extends Error {
  readonly code: OAuthErrorCode;
  readonly status: number;
  readonly description: string;
  /** Extra response headers (Allow, WWW-Authenticate, Retry-After). */
  readonly headers: Record<string, string>;
  /** Why, for the log; never sent. */
  readonly reason: string | undefined;

  constructor(
    code: OAuthErrorCode,
    description: string,
    options: { status?: number; headers?: Record<string, string>; reason?: string } = {},
  ) {
    super(`${code}: ${description}`);
    this.name = "OAuthError";
    this.code = code;
    this.status = options.status ?? defaultStatus(code);
    this.description = description;
    this.headers = options.headers ?? {};
    this.reason = options.reason;
  }
}

function defaultStatus(code: OAuthErrorCode): number {
  switch (code) {
    case "invalid_client":
      return 401;
    case "not_found":
      return 404;
    case "server_error":
      return 500;
    case "bad_gateway":
      return 502;
    case "gateway_timeout":
      return 504;
    case "temporarily_unavailable":
      return 503;
    default:
      return 400;
  }
}

/** RFC 6750 §3.1 error codes and RFC 9449 §7.1's invalid_dpop_proof; `undefined` when the request carried no credentials (§3). */
export type BearerErrorCode = "invalid_request" | "invalid_token" | "insufficient_scope" | "invalid_dpop_proof";

/**
 * An error from a protected route, answered per RFC 6750 §3.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export class BearerError extends Error {
  readonly code: BearerErrorCode | undefined;
  readonly status: number;
  readonly description: string;
  readonly scope: string | undefined;
  readonly reason: string | undefined;
  /** Set for a DPoP refusal (RFC 9449 §7.1): the challenge is `DPoP` with these `algs`, not `Bearer`. */
  readonly dpopAlgs: string | undefined;

  constructor(
    code: BearerErrorCode | undefined,
    description: string,
    options: { scope?: string; reason?: string; dpopAlgs?: string } = {},
  ) {
    super(`${code ?? "no_token"}: ${description}`);
    this.name = "BearerError";
    this.code = code;
    this.status = code === "invalid_request" ? 400 : code === "insufficient_scope" ? 403 : 401;
    this.description = description;
    this.scope = options.scope;
    this.reason = options.reason;
    this.dpopAlgs = options.dpopAlgs;
  }
}

/** RFC 6749 §5.1: no cache may keep a token response, or any answer that names a client or token. */
export const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" } as const;
const noStore = { ...NO_STORE, "X-Content-Type-Options": "nosniff" } as const;

/** RFC 9110 §11.2: a quoted-string escapes `"` and `\`. */
export function quoteHeaderValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

/** The `WWW-Authenticate: Basic` challenge of the form endpoints' invalid_client (RFC 6749 §5.2, RFC 7617). */
export function basicChallenge(realm: string): string {
  return `Basic realm=${quoteHeaderValue(realm)}, charset="UTF-8"`;
}

/** Seconds a client is asked to wait after a 503 (RFC 9110 §10.2.3), unless the error says otherwise. */
const RETRY_AFTER_UNAVAILABLE = "10";

export function oauthErrorResponse(error: OAuthError): Response {
  const retry: Record<string, string> = error.status === 503 ? { "Retry-After": RETRY_AFTER_UNAVAILABLE } : {};
  return Response.json(
    { error: error.code, error_description: error.description },
    { status: error.status, headers: { ...noStore, ...retry, ...error.headers } },
  );
}

/**
 * The RFC 6750 §3 answer of a protected route. A request that carried no credentials at all gets
 * `WWW-Authenticate: Bearer realm="…"` and no error code (§3.1: "SHOULD NOT include an error code"),
 * in the challenge or in the JSON body, which then holds only `error_description`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function bearerErrorResponse(error: BearerError, realm: string): Response {
  const params = [`realm=${quoteHeaderValue(realm)}`];
  const body: Record<string, string> = {};
  if (error.code) {
    params.push(`error=${quoteHeaderValue(error.code)}`);
    params.push(`error_description=${quoteHeaderValue(error.description)}`);
    body.error = error.code;
  }
  body.error_description = error.description;
  if (error.scope !== undefined) {
    params.push(`scope=${quoteHeaderValue(error.scope)}`);
    body.scope = error.scope;
  }
  // RFC 9449 §7.1: a DPoP refusal challenges with the DPoP scheme and the proof algorithms accepted.
  if (error.dpopAlgs !== undefined) params.push(`algs=${quoteHeaderValue(error.dpopAlgs)}`);
  const scheme = error.dpopAlgs === undefined ? "Bearer" : "DPoP";
  return Response.json(body, {
    status: error.status,
    headers: { ...noStore, "WWW-Authenticate": `${scheme} ${params.join(", ")}` },
  });
}
