/**
 * Which client a token request claims to be, and what it presents: a secret (`client_secret_basic`
 * or `client_secret_post`), a signed assertion (`private_key_jwt`), or its client_id alone, for the
 * TLS client certificate to decide (RFC 8705 §2), exactly one of them.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
 * @see https://www.rfc-editor.org/rfc/rfc7521#section-4.2
 */
import { decodeJwt } from "jose";
import { basicChallenge, OAuthError } from "../http/errors.ts";
import { utf8, type TokenForm } from "./form.ts";
import type { TokenEndpointAuthMethod } from "../clients/record.ts";

/** The RFC 7591 token_endpoint_auth_method names, as client records hold them. */
export type ClientAuthMethod = TokenEndpointAuthMethod;

export type ClientCredentials =
  | { method: "client_secret_basic" | "client_secret_post"; clientId: string; clientSecret: string }
  /**
   * The assertion is not verified yet. `clientId` is the body's client_id, else the assertion's
   * `sub` (`subject`); they differ only for a workload-identity client, whose assertion is its
   * platform's token naming the workload (authenticate.ts refuses the difference for any other).
   */
  | { method: "private_key_jwt"; clientId: string; assertion: string; subject: string }
  /**
   * RFC 8705 §2: client_id alone in the body; the record says which certificate method applies, and
   * the certificate the edge reports decides (certificate.ts). Any other client fails there.
   */
  | { method: "certificate"; clientId: string };

/** RFC 7523 §2.2: the one client_assertion_type Tollgate accepts. */
export const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** RFC 7521 §4.2: a client_id that is not the assertion's sub (answered once the record shows it is not a federated client). */
export function clientIdNotSubject(): OAuthError {
  return new OAuthError("invalid_request", "client_id in the body does not match the client assertion's sub");
}

/** RFC 6749 §2.3.1 / Appendix B: id and secret are form-urlencoded before Basic encoding. */
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, " "));
}

function malformedBasic(): OAuthError {
  return new OAuthError("invalid_request", "the Authorization header is not valid Basic credentials");
}

/**
 * The 401 for every failed or missing client authentication. RFC 6749 §5.2 requires the Basic
 * challenge when the client authenticated with the Authorization header; it also names the scheme to
 * a request that sent no credentials at all (`method` undefined). A client that authenticated in the
 * body (`client_secret_post`, an assertion, or a client_id alone) gets none, as node-oidc-provider answers: with
 * one, oauth4webapi reports a WWWAuthenticateChallengeError instead of the body's invalid_client.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export function invalidClient(realm: string, reason: string, method: ClientAuthMethod | "certificate" | undefined): OAuthError {
  return new OAuthError("invalid_client", "client authentication failed", {
    headers: method === "client_secret_basic" || method === undefined ? { "WWW-Authenticate": basicChallenge(realm) } : {},
    reason,
  });
}

function parseBasic(header: string): { clientId: string; clientSecret: string } {
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (!match) throw malformedBasic();
  let text: string;
  try {
    const binary = atob(match[1]!);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    text = utf8.decode(bytes);
  } catch {
    throw malformedBasic();
  }
  const colon = text.indexOf(":");
  if (colon < 0) throw malformedBasic();
  try {
    return { clientId: formDecode(text.slice(0, colon)), clientSecret: formDecode(text.slice(colon + 1)) };
  } catch {
    throw new OAuthError("invalid_request", "client_id and client_secret in the Authorization header are not properly form-encoded");
  }
}

/**
 * RFC 7521 §4.2: a client assertion, alone (no Basic, no client_secret). The client is the one the
 * body's client_id names, else the one its `sub` names, read unverified only to find the keys that
 * then verify everything (assertion.ts, federation.ts); for a private_key_jwt client the two must agree.
 */
function parseAssertion(authorization: string | null, form: TokenForm, realm: string): ClientCredentials {
  const postId = form.get("client_id");
  if (authorization !== null || form.get("client_secret") !== undefined) {
    throw new OAuthError("invalid_request", "use exactly one client authentication method, not a client assertion and a secret together");
  }
  // node-oidc-provider answers these two so too: the request is malformed, nothing was authenticated.
  if (form.get("client_assertion_type") !== JWT_BEARER_ASSERTION_TYPE) {
    throw new OAuthError("invalid_request", `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`);
  }
  const assertion = form.get("client_assertion");
  if (assertion === undefined) throw new OAuthError("invalid_request", "client_assertion_type was sent without client_assertion");
  let sub: unknown;
  try {
    ({ sub } = decodeJwt(assertion));
  } catch {
    throw new OAuthError("invalid_request", "client_assertion is not a JWT");
  }
  if (typeof sub !== "string" || sub === "") throw invalidClient(realm, "client assertion without sub", "private_key_jwt");
  return { method: "private_key_jwt", clientId: postId ?? sub, assertion, subject: sub };
}

export function parseClientAuthentication(headers: Headers, form: TokenForm, realm: string): ClientCredentials {
  const authorization = headers.get("Authorization");
  if (form.get("client_assertion") !== undefined || form.get("client_assertion_type") !== undefined) {
    return parseAssertion(authorization, form, realm);
  }
  const postId = form.get("client_id");
  const postSecret = form.get("client_secret");
  if (authorization !== null) {
    if (!/^basic(\s|$)/i.test(authorization)) {
      throw new OAuthError("invalid_request", "the token endpoint accepts only Basic client authentication in the Authorization header");
    }
    const { clientId, clientSecret } = parseBasic(authorization);
    if (postSecret !== undefined) {
      throw new OAuthError("invalid_request", "use exactly one client authentication method, not Basic and client_secret together");
    }
    if (postId !== undefined && postId !== clientId) {
      throw new OAuthError("invalid_request", "client_id in the body does not match the Authorization header");
    }
    if (clientId === "") throw invalidClient(realm, "empty client_id in Basic credentials", "client_secret_basic");
    return { method: "client_secret_basic", clientId, clientSecret };
  }
  if (postSecret !== undefined && postId === undefined) {
    throw new OAuthError("invalid_request", "client_secret was sent without client_id");
  }
  if (postId === undefined) throw invalidClient(realm, "no client authentication", undefined);
  if (postSecret === undefined) return { method: "certificate", clientId: postId };
  return { method: "client_secret_post", clientId: postId, clientSecret: postSecret };
}
