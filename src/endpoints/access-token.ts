/**
 * The one access-token check of every protected endpoint (the gateway's routes, the admin API), as
 * Hono middleware in the manner of hono's own `bearerAuth` and `jwt`: RFC 6750 extraction, RFC 9068
 * §4 validation with the RFC 8725 rules (src/tokens/verify.ts), the token's status (revoked, client
 * disabled or deleted: src/tokens/status.ts, which the signature cannot say), then the scopes. The
 * verified claims are left in the context as `accessToken`; a refusal is a BearerError (401/403)
 * that src/index.ts answers with the challenge.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConfig, type Config } from "../config.ts";
import { auditOf, type AppEnv } from "./app-env.ts";
import { BearerError } from "../http/errors.ts";
import { getSigningKeys } from "../keys/signing.ts";
import type { AccessTokenClaims } from "../tokens/mint.ts";
import { checkTokenStatus } from "../tokens/status.ts";
import { checkScopes, extractBearerToken, verifyAccessToken } from "../tokens/verify.ts";
import { checkDPoPBinding, extractDPoPToken } from "../tokens/dpop.ts";
import { SELF_ONLY } from "../gateway/external-issuers.ts";
import { issuerForToken, verifyExternalToken } from "../tokens/external.ts";
import { checkCertificateBinding } from "../tokens/mtls.ts";

export interface AccessTokenRequirement {
  /** The audience the token must carry (RFC 8707). */
  audience: (c: Context<AppEnv>, config: Config) => string;
  /** The scopes it must grant, all of them. */
  scopes: (c: Context<AppEnv>) => string[];
  /** The description of the 401 when no token came. */
  missing: string;
  /** Fill the request's audit context with the token's client_id, jti and scope once verified. */
  audit?: boolean;
  /** When given and false for a request, it passes without a token (a public gateway route). */
  when?: (c: Context<AppEnv>) => boolean;
  /** Whose tokens are accepted (a gateway route's `issuers`); Tollgate's own only when not given. */
  issuers?: (c: Context<AppEnv>) => readonly string[];
}

export function requireAccessToken(requirement: AccessTokenRequirement): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (requirement.when && !requirement.when(c)) return next();
    const config = getConfig(c.env);
    const headers = c.req.raw.headers;
    const bearer = extractBearerToken(headers);
    // RFC 9449 §7.1: or `Authorization: DPoP`, looked for only when Bearer is not there.
    const token = bearer ?? extractDPoPToken(headers);
    if (token === undefined) throw new BearerError(undefined, requirement.missing);
    // External issuers (src/tokens/external.ts): chosen by the token's iss among the route's; a
    // route that names only "self" (SELF_ONLY) does nothing more than before.
    const accepted = requirement.issuers?.(c) ?? SELF_ONLY;
    const external = accepted === SELF_ONLY ? undefined : issuerForToken(token, accepted, config.issuer, config.externalIssuers);
    const audience = requirement.audience(c, config);
    const claims =
      external !== undefined
        ? await verifyExternalToken(token, external, { audience, ownIssuer: config.issuer })
        : await verifyAccessToken(token, await getSigningKeys(c.env), {
            issuer: config.issuer,
            audience,
            maxLifetime: config.maxAccessTokenTtl,
          });
    if (requirement.audit) {
      const audit = auditOf(c);
      // The issuer is logged only when it is not Tollgate itself.
      if (external !== undefined) audit.issuer = claims.iss;
      audit.client_id = claims.client_id;
      audit.jti = claims.jti;
      audit.scope = claims.scope;
    }
    // RFC 9449 §7: a DPoP-bound token (ours or an external issuer's), or the DPoP scheme: a proof for
    // this very request decides (no work for an unbound Bearer token).
    if (bearer === undefined || claims.cnf?.jkt !== undefined) {
      const url = c.get("gatewayRoute")?.url.href ?? c.req.raw.url;
      await checkDPoPBinding(headers, c.req.raw.method, url, token, bearer === undefined, claims);
    }
    // RFC 8705 §3: a certificate-bound token only with that certificate, as the edge reports it (no work without cnf).
    if (claims.cnf?.["x5t#S256"] !== undefined) checkCertificateBinding(c.req.raw, claims);
    // Revoked, or its client disabled or deleted: the signature cannot say. Tollgate's own tokens
    // only: revocation and client records do not apply to an external issuer's.
    if (external === undefined) await checkTokenStatus(c.env.CLIENTS, claims);
    checkScopes(claims, requirement.scopes(c));
    c.set("accessToken", claims);
    return next();
  };
}

/** The claims requireAccessToken verified for this request. */
export function accessTokenOf(c: Context<AppEnv>): AccessTokenClaims {
  const claims = c.get("accessToken");
  if (!claims) throw new Error("requireAccessToken did not run before this handler");
  return claims;
}
