/**
 * `--cert-file`: a self_signed_tls_client_auth client's certificate (PEM) as the JWK its record keeps
 * (RFC 8705 §2.2): the public key's members and the certificate itself in `x5c` (standard base64
 * DER), whose SHA-256 /token compares with the certificate the edge reports.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

/** The first certificate in the PEM file at `path`, as a JWK with x5c; throws with the file named. */
export function certificateJWK(path: string): Record<string, unknown> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(path));
  } catch (error) {
    throw new Error(`--cert-file ${path}: not a PEM or DER certificate (${(error as Error).message})`);
  }
  const jwk = cert.publicKey.export({ format: "jwk" }) as Record<string, unknown>;
  return { ...jwk, x5c: [cert.raw.toString("base64")] };
}
