/**
 * POST /token: the OAuth 2.0 client-credentials grant.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 */
import { Hono } from "hono";
import { getConfig } from "../config.ts";
import { auditEvent } from "../http/audit.ts";
import { auditOf, refusalEvents, type AppEnv } from "./app-env.ts";
import { NO_STORE, OAuthError } from "../http/errors.ts";
import { authenticateFormRequest } from "../client-auth/authenticate.ts";
import { isValidAudience, parseScope, type ClientRecord } from "../clients/record.ts";
import { getSigningKeys } from "../keys/signing.ts";
import { enforceLimit } from "../http/limits.ts";
import type { TokenForm } from "../client-auth/form.ts";
import { adminAudience } from "../tokens/admin.ts";
import { mintAccessToken } from "../tokens/mint.ts";
import { DPoPProofError, verifyDPoPProof, type DPoPProof } from "../tokens/dpop.ts";
import { presentedCertificate } from "../http/client-certificate.ts";
import { usesCertificate } from "../clients/record.ts";

export const token = new Hono<AppEnv>();

// Every refusal at /token, a missing signing key included, is logged as token_refused.
token.use("/", refusalEvents({ oauth: "token_refused", signingKey: "token_refused" }));

/** RFC 6749 §3.3: the requested scopes, all allowed, or the client's defaults. */
function grantScopes(record: ClientRecord, requested: string | undefined): string[] {
  if (requested === undefined) return record.default_scopes;
  const scopes = parseScope(requested);
  if (!scopes) throw new OAuthError("invalid_scope", "the scope parameter is malformed");
  const refused = scopes.filter((s) => !record.allowed_scopes.includes(s));
  if (refused.length > 0) {
    throw new OAuthError("invalid_scope", `scope not allowed for this client: ${refused.join(" ")}`);
  }
  return scopes;
}

/** RFC 8707 §2: the audiences asked for, each allowed to this client, or its default. */
function chooseAudience(record: ClientRecord, form: TokenForm, fallback: string, adminAudience: string): string[] {
  const resources = form.getAll("resource");
  const alias = form.get("audience");
  if (resources.length > 0 && alias !== undefined) {
    throw new OAuthError("invalid_request", "send resource or audience, not both");
  }
  const requested = alias !== undefined ? [alias] : [...new Set(resources)];
  const allowed = record.allowed_audiences.length > 0 ? record.allowed_audiences : [fallback];
  if (requested.length === 0) return [record.default_audience ?? allowed[0]!];
  for (const value of requested) {
    if (!isValidAudience(value)) throw new OAuthError("invalid_target", "the resource must be an absolute URI without a fragment");
    if (!allowed.includes(value)) throw new OAuthError("invalid_target", "the resource is not allowed for this client");
  }
  // An admin token goes to the admin API only: one also valid at an API could reach its origin.
  if (requested.length > 1 && requested.includes(adminAudience)) {
    throw new OAuthError("invalid_target", "a token for the admin API cannot name other resources");
  }
  return requested;
}

/** RFC 9449 §5: the request's DPoP proof (undefined without one), or 400 invalid_dpop_proof. */
async function tokenRequestProof(request: Request): Promise<DPoPProof | undefined> {
  try {
    return await verifyDPoPProof(request.headers, { method: request.method, url: request.url });
  } catch (error) {
    if (error instanceof DPoPProofError) throw new OAuthError("invalid_dpop_proof", error.description, { reason: error.reason });
    throw error;
  }
}

/**
 * RFC 8705 §3: the thumbprint a token is bound to, or undefined for an unbound one. A client that
 * authenticated with its certificate gets tokens bound to it; any other client only when its record
 * asks (`tls_client_certificate_bound_access_tokens`), and then a request without a certificate is refused.
 */
function certificateBinding(request: Request, client: ClientRecord): string | undefined {
  if (!usesCertificate(client) && !client.tls_client_certificate_bound_access_tokens) return undefined;
  const certificate = presentedCertificate(request);
  if (!certificate)
    throw new OAuthError("invalid_request", "this client's tokens are bound to its TLS client certificate: present one", {
      reason: "tls_client_certificate_bound_access_tokens and no client certificate",
    });
  return certificate.x5tS256;
}

token.post("/", async (c) => {
  const config = getConfig(c.env);
  const audit = auditOf(c);
  const {
    client,
    form,
    method,
    prepared: { keys, proof },
    now,
  } = await authenticateFormRequest(
    c.req.raw,
    c.env,
    config.issuer,
    async (form) => {
      const grantType = form.get("grant_type");
      if (grantType === undefined) throw new OAuthError("invalid_request", "grant_type is required");
      if (grantType !== "client_credentials") {
        throw new OAuthError("unsupported_grant_type", "only the client_credentials grant is supported");
      }
      // Fail before the PBKDF2 work if no token could be signed anyway, or its DPoP proof is bad.
      const keys = await getSigningKeys(c.env);
      return { keys, proof: await tokenRequestProof(c.req.raw) };
    },
    audit,
  );
  await enforceLimit(c.env.TOKEN_CLIENT_LIMITER, client.client_id, "tokens issued per client");
  if (!client.grant_types.includes("client_credentials")) {
    throw new OAuthError("unauthorized_client", "this client may not use the client_credentials grant");
  }
  // RFC 9449 §5.2: a client registered as DPoP-bound gets no token without a proof.
  if (!proof && client.dpop_bound_access_tokens)
    throw new OAuthError("invalid_dpop_proof", "this client must send a DPoP proof", {
      reason: "dpop_bound_access_tokens and no DPoP header",
    });
  const x5tS256 = certificateBinding(c.req.raw, client);
  const scopes = grantScopes(client, form.get("scope"));
  const audience = chooseAudience(client, form, config.defaultAudience, adminAudience(config.issuer));
  const lifetime = Math.min(client.token_ttl ?? config.accessTokenTtl, config.maxAccessTokenTtl);
  const { token: accessToken, claims } = await mintAccessToken(keys, {
    issuer: config.issuer,
    clientId: client.client_id,
    instanceId: client.instance_id,
    audience,
    scopes,
    lifetime,
    now,
    jkt: proof?.jkt,
    x5tS256,
  });
  auditEvent(c.env, "token_issued", {
    client_id: client.client_id,
    auth_method: method,
    scope: claims.scope ?? "",
    aud: claims.aud,
    jti: claims.jti,
    exp: claims.exp,
    ...(proof && { jkt: proof.jkt }),
    ...(x5tS256 && { "x5t#S256": x5tS256 }),
  });
  // RFC 9449 §5.1: a bound token is of type DPoP.
  const body: Record<string, unknown> = { access_token: accessToken, token_type: proof ? "DPoP" : "Bearer", expires_in: lifetime };
  if (claims.scope) body.scope = claims.scope;
  return c.json(body, 200, NO_STORE);
});

token.all("/", () => {
  throw new OAuthError("invalid_request", "the token endpoint accepts only POST", { status: 405, headers: { Allow: "POST" } });
});
