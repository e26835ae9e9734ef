/**
 * Client authentication by TLS client certificate (RFC 8705 §2), on the certificate Cloudflare's edge
 * reports for the request (src/http/client-certificate.ts): `tls_client_auth`, a certificate the zone's CA
 * verified, not revoked, with the subject the record names; `self_signed_tls_client_auth`, a
 * certificate whose SHA-256 thumbprint is that of one registered in the record's `jwks` (`x5c`).
 * @see https://www.rfc-editor.org/rfc/rfc8705#section-2
 */
import type { ClientRecord } from "../clients/record.ts";
import { encodeBase64Url } from "../clients/secret.ts";
import type { PresentedCertificate } from "../http/client-certificate.ts";

export type CertificateResult = { ok: true } | { ok: false; reason: string };

/** The x5t#S256 of each registered certificate (the first of each key's x5c), per record object (records are frozen, one object per stored text). */
const registeredThumbprints = new WeakMap<ClientRecord, Promise<string[]>>();

/** RFC 8705 §3.1: base64url of the SHA-256 of the DER certificate (x5c entries are standard base64 DER). */
export async function certificateThumbprint(x5c: string): Promise<string> {
  const der = Uint8Array.from(atob(x5c), (ch) => ch.charCodeAt(0));
  return encodeBase64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", der)));
}

function thumbprintsOf(record: ClientRecord): Promise<string[]> {
  let thumbprints = registeredThumbprints.get(record);
  if (!thumbprints) {
    const certificates = (record.jwks?.keys ?? []).flatMap((key) => (key.x5c ? [key.x5c[0]!] : []));
    thumbprints = Promise.all(certificates.map(certificateThumbprint));
    registeredThumbprints.set(record, thumbprints);
  }
  return thumbprints;
}

/** Whether `certificate` authenticates `record`, a tls_client_auth or self_signed_tls_client_auth client (or why not). */
export async function authenticateCertificate(
  record: ClientRecord | null,
  certificate: PresentedCertificate | undefined,
): Promise<CertificateResult> {
  if (!record) return { ok: false, reason: "unknown client" };
  const method = record.token_endpoint_auth_method;
  if (method !== "tls_client_auth" && method !== "self_signed_tls_client_auth")
    return { ok: false, reason: "client_id without client_secret" };
  if (!certificate) return { ok: false, reason: `${method} without a client certificate` };
  if (record.disabled) return { ok: false, reason: "client disabled" };
  // Cloudflare's certVerified stays SUCCESS for a revoked certificate: certRevoked says it.
  if (certificate.revoked) return { ok: false, reason: "certificate revoked" };
  if (method === "tls_client_auth") {
    if (certificate.verification !== "SUCCESS")
      return { ok: false, reason: `certificate not verified (${certificate.verification.slice(0, 100)})` };
    if (certificate.subjectDN !== record.tls_client_auth_subject_dn)
      return { ok: false, reason: `certificate subject ${JSON.stringify(certificate.subjectDN.slice(0, 200))} is not the registered one` };
    return { ok: true };
  }
  if (!(await thumbprintsOf(record)).includes(certificate.x5tS256))
    return { ok: false, reason: `certificate ${certificate.x5tS256} is not registered` };
  return { ok: true };
}
