/**
 * The public keys of a `private_key_jwt` client as its record holds them (docs/storage.md): an
 * inline JWK Set (`jwks`, RFC 7591 §2) of public signature keys only, or the `jwks_uri` it is
 * fetched from. Pure TypeScript, shared by the CLI, the admin API and the Worker.
 * @see https://www.rfc-editor.org/rfc/rfc7591#section-2
 * @see https://www.rfc-editor.org/rfc/rfc7517#section-4
 */
import { wellFormedRemoteUrl } from "../http/remote-url.ts";

/** The JWS algorithms a client assertion may use: asymmetric only, never `none` or an HMAC. */
export const ASSERTION_ALGORITHMS = ["ES256", "ES384", "PS256", "RS256", "EdDSA"] as const;

/** RFC 8725 §3.5 and NIST SP 800-131A: no RSA key below 2048 bits. */
export const MIN_RSA_MODULUS_BITS = 2048;

/**
 * Longest `jti` a client-signed JWT (a client assertion, a DPoP proof) may carry: RFC 9449 §4.2 asks
 * for 96 bits of randomness; anything longer is not a nonce but a payload (the jti guard stores only
 * its SHA-256).
 */
export const MAX_JTI_LENGTH = 256;

/** At most this many keys (two or three cover a rotation), and this much JSON, per record. */
export const MAX_CLIENT_KEYS = 10;
const MAX_CLIENT_JWKS_BYTES = 12 * 1024;

/** A public signature key as a record keeps it: only these members, nothing private. */
export interface ClientPublicJWK {
  kty: "EC" | "RSA" | "OKP";
  kid?: string;
  alg?: (typeof ASSERTION_ALGORITHMS)[number];
  use?: "sig";
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  /**
   * RFC 7517 §4.7: the key's certificate (chain), standard base64 DER. A self_signed_tls_client_auth
   * client registers its certificate here (RFC 8705 §2.2); /token hashes the first entry.
   */
  x5c?: string[];
}

export interface ClientJWKS {
  keys: ClientPublicJWK[];
}

/** RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2: the members that make a JWK private (`k`: a symmetric key; `priv`: the AKP keys of post-quantum drafts). */
export const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"] as const;

/** Per key type, the curves and algorithms allowed, and the public members it needs. */
const KEY_TYPES = {
  EC: { curves: ["P-256", "P-384"], members: ["crv", "x", "y"] },
  RSA: { curves: [], members: ["n", "e"] },
  OKP: { curves: ["Ed25519"], members: ["crv", "x"] },
} as const;
const ALGORITHM_KEY: Record<(typeof ASSERTION_ALGORITHMS)[number], { kty: string; crv?: string }> = {
  ES256: { kty: "EC", crv: "P-256" },
  ES384: { kty: "EC", crv: "P-384" },
  PS256: { kty: "RSA" },
  RS256: { kty: "RSA" },
  EdDSA: { kty: "OKP", crv: "Ed25519" },
};

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Bits of an RSA modulus given as base64url (RFC 7518 §6.3.1.1), leading zero bits not counted. */
export function rsaModulusBits(n: string): number {
  const padded = n.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
  let i = 0;
  while (i < binary.length && binary.charCodeAt(i) === 0) i++;
  if (i === binary.length) return 0;
  return (binary.length - i - 1) * 8 + (32 - Math.clz32(binary.charCodeAt(i)));
}

/**
 * Why `value` is not a public signature key a client may register, or undefined when it is one.
 * Refuses private members, symmetric (`oct`) and unknown key types, other curves, RSA below
 * MIN_RSA_MODULUS_BITS, `use` other than `sig` and `alg` outside ASSERTION_ALGORITHMS or not
 * matching the key.
 */
export function publicKeyProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be a JSON object";
  const jwk = value as Record<string, unknown>;
  const secret = PRIVATE_JWK_MEMBERS.find((m) => jwk[m] !== undefined);
  if (jwk.kty === "oct") return "is a symmetric key (kty oct): only public keys are accepted";
  if (secret) return `carries the private member ${JSON.stringify(secret)}: send the public key only`;
  if (typeof jwk.kty !== "string" || !(jwk.kty in KEY_TYPES)) return `kty ${JSON.stringify(jwk.kty)} is not EC, RSA or OKP`;
  const type = KEY_TYPES[jwk.kty as keyof typeof KEY_TYPES];
  for (const member of type.members) {
    if (typeof jwk[member] !== "string" || (member !== "crv" && !BASE64URL.test(jwk[member] as string)))
      return `${member} must be a base64url string`;
  }
  if (type.curves.length > 0 && !(type.curves as readonly string[]).includes(jwk.crv as string))
    return `crv ${JSON.stringify(jwk.crv)} is not one of ${type.curves.join(", ")}`;
  if (jwk.kty === "RSA" && rsaModulusBits(jwk.n as string) < MIN_RSA_MODULUS_BITS)
    return `the RSA modulus has fewer than ${MIN_RSA_MODULUS_BITS} bits`;
  if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || jwk.kid.length === 0 || jwk.kid.length > 256))
    return "kid must be a string of 1-256 characters";
  if (jwk.use !== undefined && jwk.use !== "sig") return 'use must be "sig"';
  const chain = certificateChainProblem(jwk.x5c);
  if (chain) return chain;
  if (jwk.alg !== undefined) {
    const fits = ALGORITHM_KEY[jwk.alg as (typeof ASSERTION_ALGORITHMS)[number]];
    if (!fits) return `alg ${JSON.stringify(jwk.alg)} is not one of ${ASSERTION_ALGORITHMS.join(", ")}`;
    if (fits.kty !== jwk.kty || (fits.crv !== undefined && fits.crv !== jwk.crv)) return `alg ${jwk.alg} does not fit this key`;
  }
  return undefined;
}

/**
 * An inline JWK Set checked and reduced to the public members each key needs; throws an Error whose
 * message names the key at fault (`jwks.keys[1]: ...`).
 */
export function parseClientJWKS(value: unknown): ClientJWKS {
  if (typeof value !== "object" || value === null || !Array.isArray((value as { keys?: unknown }).keys))
    throw new Error('jwks: must be a JWK Set, {"keys": [...]}');
  const keys = (value as { keys: unknown[] }).keys;
  if (keys.length === 0 || keys.length > MAX_CLIENT_KEYS) throw new Error(`jwks: must hold 1 to ${MAX_CLIENT_KEYS} keys`);
  if (JSON.stringify(value).length > MAX_CLIENT_JWKS_BYTES) throw new Error(`jwks: must be at most ${MAX_CLIENT_JWKS_BYTES} bytes of JSON`);
  const kids = new Set<string>();
  return {
    keys: keys.map((key, i) => {
      const problem = publicKeyProblem(key);
      if (problem) throw new Error(`jwks.keys[${i}]: ${problem}`);
      const jwk = key as Record<string, string>;
      if (jwk.kid !== undefined) {
        if (kids.has(jwk.kid)) throw new Error(`jwks.keys[${i}]: kid ${JSON.stringify(jwk.kid)} is a duplicate`);
        kids.add(jwk.kid);
      }
      const kept: Record<string, string> = {};
      for (const member of ["kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"])
        if (jwk[member] !== undefined) kept[member] = jwk[member]!;
      const x5c = (key as { x5c?: string[] }).x5c;
      return (x5c === undefined ? kept : { ...kept, x5c: [...x5c] }) as unknown as ClientPublicJWK;
    }),
  };
}

/** At most this many certificates in one key's x5c, each at most this many base64 characters. */
const MAX_X5C_CERTIFICATES = 3;
const MAX_X5C_CERTIFICATE_CHARS = 8192;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Why an `x5c` member (RFC 7517 §4.7: an array of standard base64 DER certificates) is not one; undefined when it is or is absent. */
function certificateChainProblem(x5c: unknown): string | undefined {
  if (x5c === undefined) return undefined;
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_X5C_CERTIFICATES)
    return `x5c must be an array of 1 to ${MAX_X5C_CERTIFICATES} certificates`;
  for (const cert of x5c)
    if (typeof cert !== "string" || cert === "" || cert.length > MAX_X5C_CERTIFICATE_CHARS || !BASE64.test(cert))
      return `x5c entries must be standard base64 DER certificates of at most ${MAX_X5C_CERTIFICATE_CHARS} characters`;
  return undefined;
}

/**
 * A `jwks_uri` as a record may hold it: an absolute https URL (http only to a loopback host, which
 * src/keys/remote-key-set.ts's isAllowedRemoteUrl further limits to a loopback ISSUER), without
 * user, password or fragment, at most 2048 characters.
 */
export function isWellFormedJwksUri(value: string): boolean {
  return value.length <= 2048 && wellFormedRemoteUrl(value) !== undefined;
}
