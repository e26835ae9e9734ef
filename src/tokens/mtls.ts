/**
 * Mutual TLS at Cloudflare's edge (RFC 8705): the client certificate Cloudflare saw, as
 * `request.cf.tlsClientAuth` reports it, and the gateway's check of a certificate-bound token
 * (`cnf.x5t#S256`, §3). Cloudflare terminates TLS: `request.cf` is set by its edge and no header a
 * client sends reaches it; nothing here reads a header. Under `wrangler dev` it carries no certificate.
 * @see https://www.rfc-editor.org/rfc/rfc8705#section-3
 * @see https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/
 */
import { BearerError } from "../http/errors.ts";
import { encodeBase64Url } from "../clients/secret.ts";
import type { AccessTokenClaims } from "./mint.ts";

/** The client certificate of a request, when the edge reports one. */
export interface PresentedCertificate {
  /** RFC 8705 §3.1: base64url of the SHA-256 of the DER certificate. */
  x5tS256: string;
  /** `certVerified`: "SUCCESS" when the zone's CA (Cloudflare's or an uploaded one) verified the chain, else "FAILED:…". */
  verification: string;
  /** `certRevoked` "1": Cloudflare reports it revoked (certVerified may still say SUCCESS). */
  revoked: boolean;
  /** `certSubjectDNRFC2253`. */
  subjectDN: string;
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** Cloudflare's hex SHA-256 fingerprint as RFC 8705's x5t#S256: the same 32 bytes, base64url. */
export function hexFingerprintToX5t(hex: string): string {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return encodeBase64Url(bytes);
}

/**
 * The certificate the client presented in its TLS handshake with Cloudflare, or undefined: no
 * `cf` (wrangler dev, a Worker-to-Worker call), `certPresented` not "1" (Cloudflare's placeholder
 * values), or a fingerprint that is not 64 hex digits.
 */
export function presentedCertificate(request: Request): PresentedCertificate | undefined {
  const auth = (request.cf as { tlsClientAuth?: Record<string, unknown> } | undefined)?.tlsClientAuth;
  if (auth?.certPresented !== "1") return undefined;
  const fingerprint = auth.certFingerprintSHA256;
  if (typeof fingerprint !== "string" || !SHA256_HEX.test(fingerprint)) return undefined;
  const text = (value: unknown) => (typeof value === "string" ? value : "");
  return {
    x5tS256: hexFingerprintToX5t(fingerprint),
    verification: text(auth.certVerified),
    revoked: auth.certRevoked === "1",
    subjectDN: text(auth.certSubjectDNRFC2253),
  };
}

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
