/**
 * DPoP (RFC 9449): the proof a client sends in the `DPoP` header to show it holds the private key an
 * access token is bound to (`cnf.jkt`, the RFC 7638 thumbprint of that key). /token checks a proof
 * and binds the token it issues; the gateway and the admin API (requireAccessToken) accept a bound
 * token only with a fresh proof for the very request. No Hono here: callers map DPoPProofError to
 * their wire format (400 at /token, 401 with a `DPoP` challenge at resources).
 * @see https://www.rfc-editor.org/rfc/rfc9449
 */
import { base64url, calculateJwkThumbprint, importJWK, type JWK } from "jose";
import { BoundedCache } from "../bounded-cache.ts";
import { ASSERTION_ALGORITHMS, MAX_JTI_LENGTH, MIN_RSA_MODULUS_BITS, PRIVATE_JWK_MEMBERS } from "../clients/client-keys.ts";
import { BearerError } from "../http/errors.ts";
import { CLOCK_TOLERANCE_SECONDS, DPOP_PROOF_MAX_AGE_SECONDS } from "../policy.ts";
import type { AccessTokenClaims } from "./mint.ts";

/**
 * The proof algorithms accepted (metadata `dpop_signing_alg_values_supported`): asymmetric only
 * (RFC 9449 §4.2: never `none` nor a MAC), the same as a client assertion's; RSA keys of at least
 * MIN_RSA_MODULUS_BITS (checkProofHeader).
 */
export const DPOP_SIGNING_ALGS = ASSERTION_ALGORITHMS;
/** The Web Crypto verification of each (RFC 7518 §3.3-3.5, RFC 8037 §3.1). */
const VERIFY_PARAMS: Record<string, SubtleCryptoSignAlgorithm> = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  ES384: { name: "ECDSA", hash: "SHA-384" },
  PS256: { name: "RSA-PSS", saltLength: 32 },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  EdDSA: { name: "Ed25519" },
};
const ALGS: ReadonlySet<string> = new Set(DPOP_SIGNING_ALGS);
/** The `algs` parameter of a resource's DPoP challenge (RFC 9449 §7.1). */
export const DPOP_ALGS = DPOP_SIGNING_ALGS.join(" ");

/** A proof longer than this is refused before decoding; an RSA-4096 proof is under 2.5 KiB. */
export const MAX_PROOF_LENGTH = 8192;
/** Proofs remembered per isolate for replay detection (RFC 9449 §11.1); the oldest drop first. */
const DPOP_REPLAY_CACHE_MAX_ENTRIES = 16384;

/** A compact JWS of three base64url parts (RFC 7515 §7.1); an empty signature is alg none's, refused by alg. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** RFC 9449 §7.1: `Authorization: DPoP <token>`, the token68 syntax RFC 6750 §2.1 gives Bearer. */
const DPOP_AUTHORIZATION = /^dpop +([A-Za-z0-9\-._~+/]+=*) *$/i;
const UNRESERVED = /[A-Za-z0-9._~-]/;

/** A proof that failed a rule of RFC 9449 §4.3: `description` goes to the client, `reason` to the log. */
export class DPoPProofError extends Error {
  override name = "DPoPProofError";
  readonly description: string;
  readonly reason: string;

  constructor(reason: string, description = "the DPoP proof is invalid") {
    super(reason);
    this.description = description;
    this.reason = reason;
  }
}

/** A verified proof: the RFC 7638 thumbprint of its key, and its identity for replay detection. */
export interface DPoPProof {
  jkt: string;
  jti: string;
  iat: number;
}

/** What a proof must match: the request as the client made it, and at a resource, its access token. */
export interface DPoPExpectation {
  /** The request method (`htm`). */
  method: string;
  /** The request URL as the client made it (`htu`: compared without query and fragment, normalized). */
  url: string;
  /** At a protected resource: the access token sent with the proof (`ath`). */
  accessToken?: string;
  /** Epoch seconds; now when omitted (tests freeze time with it). */
  now?: number;
}

/** Per isolate: (jkt, jti) of every proof accepted, until it could no longer be accepted anyway. */
const seen = new BoundedCache<string, number>(DPOP_REPLAY_CACHE_MAX_ENTRIES);
/** Per isolate: checked proof headers, by their exact base64url text (checkProofHeader). */
const proofHeaders = new BoundedCache<string, ProofHeader>(1024);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * RFC 9449 §4.3 step 9 with RFC 3986 §6.2.2-6.2.3 normalization: scheme and host in lower case, the
 * default port dropped, an empty path as `/`, dot segments removed (the WHATWG parser does these),
 * escapes of unreserved characters decoded and other escapes in upper case; no query, no fragment.
 * Undefined for what is not an absolute http(s) URL.
 */
export function normalizeHTU(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  const path = url.pathname.includes("%")
    ? url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
        const char = String.fromCharCode(Number.parseInt(hex, 16));
        return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
      })
    : url.pathname;
  return `${url.protocol}//${url.host}${path}`;
}

/** RFC 9449 §4.2: `ath` is base64url(SHA-256(ASCII(access token))). */
async function accessTokenHash(token: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token))));
}

/** What a proof's protected header yields once checked: its alg, its key and that key's thumbprint. */
interface ProofHeader {
  alg: string;
  jkt: string;
  key: CryptoKey;
}

/** A JWS header or payload (`segment`: still base64url-encoded) as a JSON object, or DPoPProofError. */
function parseJSON(segment: string | Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(typeof segment === "string" ? base64url.decode(segment) : segment));
  } catch (error) {
    throw new DPoPProofError(`undecodable ${what}: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new DPoPProofError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * The checks of a proof's protected header (RFC 9449 §4.3 steps 3-5 and 7: typ, alg, a public
 * `jwk`), its key imported and its RFC 7638 thumbprint. A client signs every proof with one key, so
 * its header is the same base64url string each time: what that exact string yields is remembered
 * per isolate, and a repeat costs a map lookup instead of a decode, a digest and a key import.
 */
async function checkProofHeader(encoded: string): Promise<ProofHeader> {
  const cached = proofHeaders.get(encoded);
  if (cached) return cached;
  const header = parseJSON(encoded, "header");
  if (header.typ !== "dpop+jwt") throw new DPoPProofError(`typ ${JSON.stringify(header.typ)}, not dpop+jwt`);
  const alg = header.alg;
  if (typeof alg !== "string" || !ALGS.has(alg))
    throw new DPoPProofError(
      `alg ${JSON.stringify(alg)} not one of ${DPOP_ALGS}`,
      `the DPoP proof must be signed with one of ${DPOP_ALGS}`,
    );
  // RFC 7515 §4.1.11: no extension is understood here, so any crit is refused (b64 among them).
  if (header.crit !== undefined || header.b64 !== undefined) throw new DPoPProofError("crit or b64 header parameter");
  const jwk = header.jwk;
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) throw new DPoPProofError("no jwk header parameter");
  // RFC 9449 §4.2: a proof's jwk carries no member of a private (or symmetric) key.
  for (const member of PRIVATE_JWK_MEMBERS) {
    if ((jwk as Record<string, unknown>)[member] !== undefined)
      throw new DPoPProofError(`jwk carries the private member ${member}`, "the DPoP proof's jwk must be a public key");
  }
  const { alg: _alg, key_ops: _ops, ext: _ext, use, ...members } = jwk as JWK;
  if (use !== undefined && use !== "sig") throw new DPoPProofError(`jwk use ${JSON.stringify(use)}`);
  let jkt: string;
  let key: CryptoKey;
  try {
    jkt = await calculateJwkThumbprint(members);
    key = (await importJWK(members, alg)) as CryptoKey;
  } catch (error) {
    throw new DPoPProofError(`jwk not usable with ${alg}: ${(error as Error).message}`);
  }
  if (key.type !== "public") throw new DPoPProofError("jwk is not a public key", "the DPoP proof's jwk must be a public key");
  // RFC 7518 §3.3, §3.5: RSA keys of 2048 bits or more.
  const bits = (key.algorithm as Partial<CryptoKeyRsaKeyAlgorithm>).modulusLength;
  if (bits !== undefined && bits < MIN_RSA_MODULUS_BITS) throw new DPoPProofError(`RSA key of ${bits} bits, under ${MIN_RSA_MODULUS_BITS}`);
  const checked = { alg, jkt, key };
  proofHeaders.set(encoded, checked);
  return checked;
}

/** The URL without query and fragment, as a client most likely wrote its htu. */
function withoutQuery(url: string): string {
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
}

/**
 * Verifies the request's DPoP proof per RFC 9449 §4.3 and records it against replay (§11.1):
 * exactly one `DPoP` header holding a compact JWS with `typ: dpop+jwt`, an alg of DPOP_SIGNING_ALGS,
 * no `crit`, a public `jwk` that verifies the signature (Web Crypto with the alg's fixed parameters,
 * as oauth4webapi verifies: jose's compactVerify would decode the header a second time); `jti` (at most MAX_JTI_LENGTH characters), `htm` the method, `htu` the URL
 * (normalizeHTU), `iat` at most DPOP_PROOF_MAX_AGE_SECONDS old and at most CLOCK_TOLERANCE_SECONDS
 * ahead, `ath` the token's hash when one is expected, and (jkt, jti) not seen by this isolate
 * within that window. Undefined when the request has no DPoP header; throws DPoPProofError otherwise.
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-4.3
 */
export async function verifyDPoPProof(headers: Headers, expected: DPoPExpectation): Promise<DPoPProof | undefined> {
  const proof = headers.get("DPoP");
  if (proof === null) return undefined;
  // Several DPoP headers arrive joined by ", ", which a compact JWS cannot contain (§4.3 step 1).
  if (proof.includes(",")) throw new DPoPProofError("more than one DPoP header", "send exactly one DPoP header");
  if (proof.length > MAX_PROOF_LENGTH) throw new DPoPProofError(`proof of ${proof.length} characters`, "the DPoP proof is too large");
  if (!COMPACT_JWS.test(proof)) throw new DPoPProofError("not a compact JWS");
  const { alg, jkt, key } = await checkProofHeader(proof.slice(0, proof.indexOf(".")));
  const now = expected.now ?? Math.floor(Date.now() / 1000);
  // RFC 7515 §5.2: the signature over the ASCII of header.payload, with the alg the header pinned.
  const signed = proof.lastIndexOf(".");
  let valid: boolean;
  try {
    valid = await crypto.subtle.verify(
      VERIFY_PARAMS[alg]!,
      key,
      base64url.decode(proof.slice(signed + 1)),
      encoder.encode(proof.slice(0, signed)),
    );
  } catch (error) {
    throw new DPoPProofError(`verification failed: ${(error as Error).message}`);
  }
  if (!valid) throw new DPoPProofError("verification failed: signature");
  const { jti, htm, htu, iat, ath } = parseJSON(proof.slice(proof.indexOf(".") + 1, signed), "payload");
  if (typeof jti !== "string" || jti.length === 0 || jti.length > MAX_JTI_LENGTH)
    throw new DPoPProofError(`jti must be a string of 1-${MAX_JTI_LENGTH} characters`);
  if (htm !== expected.method) throw new DPoPProofError(`htm ${JSON.stringify(htm)} for a ${expected.method} request`);
  if (typeof htu !== "string") throw new DPoPProofError("htu must be a string");
  // The exact URL needs no parsing; anything else is compared normalized (§4.3 step 9).
  if (htu !== withoutQuery(expected.url)) {
    const target = normalizeHTU(expected.url);
    if (target === undefined || normalizeHTU(htu) !== target)
      throw new DPoPProofError(`htu ${JSON.stringify(htu.slice(0, 200))} for ${target}`);
  }
  if (typeof iat !== "number" || !Number.isFinite(iat)) throw new DPoPProofError("iat must be a number");
  // §4.3 step 11: recent, and no further ahead than clocks differ.
  const issued = iat;
  if (now - issued > DPOP_PROOF_MAX_AGE_SECONDS)
    throw new DPoPProofError(`iat ${issued} is ${now - issued} s old`, "the DPoP proof is too old");
  if (issued - now > CLOCK_TOLERANCE_SECONDS)
    throw new DPoPProofError(`iat ${issued} is ${issued - now} s ahead`, "the DPoP proof is from the future");
  if (expected.accessToken !== undefined && ath !== (await accessTokenHash(expected.accessToken)))
    throw new DPoPProofError(
      ath === undefined ? "no ath" : "ath is not the access token's hash",
      "the DPoP proof is not for this access token",
    );
  // §11.1: each proof once. Its entry outlives the last second the iat window would accept it.
  const id = `${jkt} ${jti}`;
  const until = seen.get(id);
  if (until !== undefined && until >= now)
    throw new DPoPProofError(`jti ${JSON.stringify(jti.slice(0, 64))} replayed`, "the DPoP proof was used before");
  seen.set(id, issued + DPOP_PROOF_MAX_AGE_SECONDS);
  return { jkt, jti, iat: issued };
}

/** The token from `Authorization: DPoP <token>`, undefined for another scheme (RFC 9449 §7.1). */
export function extractDPoPToken(headers: Headers): string | undefined {
  const authorization = headers.get("Authorization");
  if (authorization === null || !/^dpop(\s|$)/i.test(authorization)) return undefined;
  const match = DPOP_AUTHORIZATION.exec(authorization);
  if (!match) throw new BearerError("invalid_request", "the Authorization header is not a single DPoP token", { dpopAlgs: DPOP_ALGS });
  return match[1];
}

function dpopRefusal(code: "invalid_token" | "invalid_dpop_proof", description: string, reason: string): BearerError {
  return new BearerError(code, description, { reason, dpopAlgs: DPOP_ALGS });
}

/**
 * The resource side (RFC 9449 §7): a token bound to a key (`cnf.jkt`) only as `Authorization: DPoP`
 * with a valid proof by that key for this request and this token; a bound token sent as Bearer, or
 * an unbound one sent as DPoP, is refused (§7.2). Throws BearerError with a DPoP challenge.
 * `viaDPoP` says which scheme carried the token; `url` is the request URL as the client made it.
 */
export async function checkDPoPBinding(
  headers: Headers,
  method: string,
  url: string,
  token: string,
  viaDPoP: boolean,
  claims: AccessTokenClaims,
): Promise<void> {
  const jkt = claims.cnf?.jkt;
  if (!viaDPoP)
    throw dpopRefusal(
      "invalid_token",
      "the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof",
      "bound token sent as Bearer",
    );
  if (jkt === undefined)
    throw dpopRefusal(
      "invalid_token",
      "the access token is not DPoP-bound: send it as Authorization: Bearer",
      "unbound token sent as DPoP",
    );
  let proof: DPoPProof | undefined;
  try {
    proof = await verifyDPoPProof(headers, { method, url, accessToken: token });
  } catch (error) {
    if (error instanceof DPoPProofError) throw dpopRefusal("invalid_dpop_proof", error.description, error.reason);
    throw error;
  }
  if (!proof) throw dpopRefusal("invalid_dpop_proof", "a DPoP proof is required", "no DPoP header");
  if (proof.jkt !== jkt)
    throw dpopRefusal(
      "invalid_token",
      "the DPoP proof's key is not the one the access token is bound to",
      `proof key ${proof.jkt}, token bound to ${jkt}`,
    );
}
