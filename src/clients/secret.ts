/**
 * Client secrets: generated from the CSPRNG, stored only as self-describing PBKDF2-HMAC-SHA256
 * hashes (`pbkdf2-sha256$<iterations>$<salt>$<hash>`, base64url), compared in constant time.
 * Plain Web Crypto, so the CLI (Node) and the Worker share this module.
 */

/** Cloudflare's production runtime refuses PBKDF2 above this; local workerd does not, so we do. */
export const MAX_PBKDF2_ITERATIONS = 100_000;
/** The fewest iterations new hashes may use (PBKDF2_ITERATIONS below this is a configuration error). */
export const MIN_PBKDF2_ITERATIONS = 10_000;
/**
 * The work factor of new hashes when PBKDF2_ITERATIONS is unset: ~4 ms of CPU here, so a first
 * `/token` fits Workers Free's 10 ms with room to spare (docs/benchmarks.md, "PBKDF2 cost"). Secrets
 * are 256 random bits: the work factor adds nothing their entropy does not already give.
 */
export const DEFAULT_PBKDF2_ITERATIONS = 25_000;
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

function checkIterations(iterations: number, min = 1): void {
  if (!Number.isSafeInteger(iterations) || iterations < min || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations must be ${min}..${MAX_PBKDF2_ITERATIONS}, got ${iterations}`);
  }
}

/**
 * The PBKDF2_ITERATIONS setting: whole iterations from MIN_PBKDF2_ITERATIONS to
 * MAX_PBKDF2_ITERATIONS, DEFAULT_PBKDF2_ITERATIONS when unset. Throws a RangeError naming the variable.
 */
export function parsePBKDF2Iterations(raw: unknown): number {
  if (raw === undefined || raw === "") return DEFAULT_PBKDF2_ITERATIONS;
  const value = typeof raw === "number" ? raw : /^\d+$/.test(String(raw)) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < MIN_PBKDF2_ITERATIONS || value > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(
      `PBKDF2_ITERATIONS must be a whole number from ${MIN_PBKDF2_ITERATIONS} to ${MAX_PBKDF2_ITERATIONS}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
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

/**
 * Hashes a secret for storage at `iterations` (MIN_PBKDF2_ITERATIONS..MAX_PBKDF2_ITERATIONS: never
 * more than the production runtime accepts, never fewer than the configured minimum).
 */
export async function hashClientSecret(secret: string, iterations = DEFAULT_PBKDF2_ITERATIONS): Promise<string> {
  checkIterations(iterations, MIN_PBKDF2_ITERATIONS);
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(secret, salt, iterations);
  return `${PREFIX}$${iterations}$${encodeBase64Url(salt)}$${encodeBase64Url(hash)}`;
}

/**
 * Parses a stored hash; throws on anything that is not a well-formed, capped PBKDF2 hash. Any count
 * up to the cap verifies: a hash keeps the count it was made with, whatever PBKDF2_ITERATIONS says now.
 */
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
 * A hash no secret matches (its salt and hash are zero bytes), at the count new secrets are hashed
 * with: checked when the client or the secret id is unknown, so an unknown id pays the same PBKDF2
 * as a known one (CWE-208).
 */
export function dummySecretHash(iterations: number): string {
  checkIterations(iterations, MIN_PBKDF2_ITERATIONS);
  return `${PREFIX}$${iterations}$${"A".repeat(22)}$${"A".repeat(43)}`;
}
