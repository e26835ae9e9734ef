/**
 * Certificate-bound access tokens at a resource (RFC 8705 §3): a token with `cnf.x5t#S256` only
 * over a connection presenting that certificate, as Cloudflare's edge reports it
 * (src/http/client-certificate.ts).
 * @see https://www.rfc-editor.org/rfc/rfc8705#section-3
 */
import { BearerError } from "../http/errors.ts";
import { presentedCertificate } from "../http/client-certificate.ts";
import type { AccessTokenClaims } from "./mint.ts";

/**
 * RFC 8705 §3: a token bound to a certificate is accepted only from a request that presents that
 * same certificate (its possession proven by the TLS handshake); otherwise 401 invalid_token.
 */
export function checkCertificateBinding(request: Request, claims: AccessTokenClaims): void {
  const bound = claims.cnf?.["x5t#S256"];
  if (bound === undefined) return;
  const presented = presentedCertificate(request);
  if (!presented)
    throw new BearerError("invalid_token", "the access token is bound to a client certificate: present it", {
      reason: "certificate-bound token without a client certificate",
    });
  if (presented.x5tS256 !== bound)
    throw new BearerError("invalid_token", "the client certificate is not the one the access token is bound to", {
      reason: `certificate ${presented.x5tS256}, token bound to ${bound}`,
    });
}
