/**
 * The client certificate Cloudflare's edge reports in `request.cf.tlsClientAuth`, faked for the
 * workerd tests (`new Request(url, { cf })`), and token requests that carry it (RFC 8705 §2).
 */
import { exports } from "cloudflare:workers";
import { FORM, TOKEN_URL } from "./worker.ts";

export const SUBJECT = "CN=orders-batch,O=Example Corp,C=DE";

/** A certificate as the edge reports it: random DER bytes stand in (Tollgate hashes, never parses, them). */
export interface FakeCertificate {
  der: Uint8Array;
  /** Standard base64, as x5c holds it. */
  x5c: string;
  /** Lower-case hex SHA-256, as certFingerprintSHA256 gives it. */
  hex: string;
  /** base64url SHA-256, as cnf.x5t#S256 holds it. */
  x5t: string;
}

export async function fakeCertificate(): Promise<FakeCertificate> {
  const der = crypto.getRandomValues(new Uint8Array(600));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  const x5t = btoa(String.fromCharCode(...digest))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
  return { der, x5c: btoa(String.fromCharCode(...der)), hex, x5t };
}

/** request.cf.tlsClientAuth for `cert`, verified by the zone's CA unless overridden. */
export function tlsClientAuth(cert: FakeCertificate, overrides: Record<string, string> = {}): Record<string, unknown> {
  return {
    certPresented: "1",
    certVerified: "SUCCESS",
    certRevoked: "0",
    certSubjectDNRFC2253: SUBJECT,
    certIssuerDNRFC2253: "CN=Example Client CA,O=Example Corp,C=DE",
    certFingerprintSHA256: cert.hex,
    certNotBefore: "Jan  1 00:00:00 2026 GMT",
    certNotAfter: "Jan  1 00:00:00 2027 GMT",
    ...overrides,
  };
}

/** Cloudflare's placeholder when no certificate was presented. */
export const NO_CERTIFICATE = {
  certPresented: "0",
  certVerified: "NONE",
  certRevoked: "0",
  certFingerprintSHA256: "",
  certSubjectDNRFC2253: "",
};

export function withCf(url: string, init: RequestInit, auth: Record<string, unknown> | undefined): Request {
  return new Request(url, { ...init, ...(auth && { cf: { tlsClientAuth: auth } }) } as RequestInit);
}

/** POST /token with client_id alone in the body (RFC 8705 §2) and the given edge report. */
export function mtlsTokenRequest(
  clientId: string,
  auth: Record<string, unknown> | undefined,
  extra: Record<string, string> = {},
): Promise<Response> {
  const body = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, ...extra }).toString();
  return exports.default.fetch(withCf(TOKEN_URL, { method: "POST", headers: { "Content-Type": FORM }, body }, auth));
}
