/**
 * What a request learns on its way, read by src/index.ts's onError: plain types, so a domain module
 * may name them without importing Hono.
 */

/** What is known about the request so far; filled in as the handlers learn it, logged with a refusal. */
export interface AuditContext {
  /** The token's issuer, when it is an external one (EXTERNAL_ISSUERS). */
  issuer?: string;
  client_id?: string;
  jti?: string;
  scope?: string;
  route?: string;
}

/**
 * The audit event a refusal is logged as, said by the endpoint or middleware that refuses, by the
 * class of the error: "request_refused" when unset, and "gateway_denied" for a BearerError.
 */
export interface RefusalEvents {
  /** An OAuthError (400, 401 invalid_client, 404, 405, 413, 429, 503...). */
  oauth?: string;
  /** A BearerError (401 invalid_token, 403 insufficient_scope). */
  bearer?: string;
  /** No signing key to sign or verify with (503). */
  signingKey?: string;
}
