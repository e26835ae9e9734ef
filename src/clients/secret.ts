/**
 * Client secrets: generated from the CSPRNG, stored only as self-describing PBKDF2-HMAC-SHA256
 * hashes (`pbkdf2-sha256$<iterations>$<salt>$<hash>`, base64url), compared in constant time.
 * Plain Web Crypto, so the CLI (Node) and the Worker share this module.
 */

/** Cloudflare's production runtime refuses PBKDF2 above this; local workerd does not, so we do. */
export const MAX_PBKDF2_ITERATIONS = 100_000;
export const PBKDF2_ITERATIONS = MAX_PBKDF2_ITERATIONS;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const SECRET_BYTES = 32;
const SECRET_ID_BYTES = 6;
const PREFIX = "pbkdf2-sha256";

const encoder = new TextEncoder();

export function encodeBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError("not base64url");
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

/** Compares in time that depends only on the lengths, never on where the bytes differ. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i % b.length] ?? 0);
  return diff === 0;
}

/**
 * A new client secret: `<secret id>.<256 bits of CSPRNG output>`, both base64url. The id names
 * which stored hash to check, so verification costs exactly one PBKDF2 whatever the number of
 * secrets a client holds during a rotation.
 */
export function generateClientSecret(): { id: string; secret: string } {
  const id = encodeBase64Url(crypto.getRandomValues(new Uint8Array(SECRET_ID_BYTES)));
  const secret = `${id}.${encodeBase64Url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)))}`;
  return { id, secret };
}

/** The secret id a presented secret claims, or undefined when it has none. */
export function secretIdOf(secret: string): string | undefined {
  const dot = secret.indexOf(".");
  return dot > 0 ? secret.slice(0, dot) : undefined;
}

function checkIterations(iterations: number): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations must be 1..${MAX_PBKDF2_ITERATIONS}, got ${iterations}`);
  }
}

async function derive(secret: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  checkIterations(iterations);
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    key,
    HASH_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** Hashes a secret for storage. Refuses iteration counts the production runtime would reject. */
export async function hashClientSecret(secret: string, iterations = PBKDF2_ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(secret, salt, iterations);
  return `${PREFIX}$${iterations}$${encodeBase64Url(salt)}$${encodeBase64Url(hash)}`;
}

/** Parses a stored hash; throws on anything that is not a well-formed, capped PBKDF2 hash. */
export function parseSecretHash(stored: string): { iterations: number; salt: Uint8Array; hash: Uint8Array } {
  const parts = stored.split("$");
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new TypeError("unsupported secret hash format");
  const iterations = Number(parts[1]);
  checkIterations(iterations);
  return { iterations, salt: decodeBase64Url(parts[2]!), hash: decodeBase64Url(parts[3]!) };
}

/** Verifies a presented secret against a stored hash in constant time. */
export async function verifyClientSecret(secret: string, stored: string): Promise<boolean> {
  const { iterations, salt, hash } = parseSecretHash(stored);
  const derived = await derive(secret, salt, iterations);
  return timingSafeEqual(derived, hash);
}

/**
 * A hash no secret matches (its salt and hash are zero bytes): checked when the client or the
 * secret id is unknown, so every failure pays the same PBKDF2 (CWE-208).
 */
export const DUMMY_SECRET_HASH = `${PREFIX}$${PBKDF2_ITERATIONS}$${"A".repeat(22)}$${"A".repeat(43)}`;
