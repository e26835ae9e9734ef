/**
 * The TLS client certificate Cloudflare's edge reports for a request (`request.cf.tlsClientAuth`),
 * the one source of the mTLS checks (RFC 8705): client authentication (src/client-auth/certificate.ts)
 * and certificate-bound tokens (src/tokens/mtls.ts). Cloudflare terminates TLS: `request.cf` is set by
 * its edge and no header a client sends reaches it; nothing here reads a header. Under `wrangler dev`
 * it carries no certificate, and a report made up with Miniflare's MF-CF-Blob header is ignored.
 * @see https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/
 * @see https://www.rfc-editor.org/rfc/rfc8705#section-3.1
 */
import { base64url } from "jose";

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
/** The header Miniflare takes a request's `cf` object from (local development only). */
const MINIFLARE_CF_HEADER = "MF-CF-Blob";

/** Cloudflare's hex SHA-256 fingerprint as RFC 8705's x5t#S256: the same 32 bytes, base64url. */
export function hexFingerprintToX5t(hex: string): string {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return base64url.encode(bytes);
}

/**
 * The certificate the client presented in its TLS handshake with Cloudflare, or undefined: no
 * `cf` (wrangler dev, a Worker-to-Worker call), `certPresented` not "1" (Cloudflare's placeholder
 * values), or a fingerprint that is not 64 hex digits.
 */
export function presentedCertificate(request: Request): PresentedCertificate | undefined {
  // Miniflare (wrangler dev, npm start) builds request.cf from this header of whoever calls it; at
  // Cloudflare's edge it is only a client's header. Either way, a request carrying it made up its report.
  if (request.headers.has(MINIFLARE_CF_HEADER)) return undefined;
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
