/**
 * Signing keys: the `SIGNING_KEY` Worker secret holds one private P-256 JWK with a `kid`, or a
 * JWK Set `{"keys": [...]}` whose first key signs and whose others are published only (the next
 * key ahead of a rotation, or a retired one until its tokens expire). Imported once per isolate.
 */
import { importJWK, type JWK } from "jose";

export interface SigningKeys {
  /** The key that signs new tokens. */
  signer: { kid: string; key: CryptoKey };
  /** Public keys by kid, for verification (the gateway). */
  verifiers: Map<string, CryptoKey>;
  /** RFC 7517 JWK Set with public parts only. */
  jwks: { keys: JWK[] };
}

/** The secret is missing or malformed: no token may be signed (SECURITY.md item 22). */
export class SigningKeyError extends Error {
  override name = "SigningKeyError";
}

const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "kid"] as const;

function checkPrivateJWK(value: unknown, index: number): JWK & { kid: string; d: string } {
  const where = `SIGNING_KEY key ${index}`;
  if (typeof value !== "object" || value === null) throw new SigningKeyError(`${where} is not a JSON object`);
  const jwk = value as JWK;
  if (jwk.kty !== "EC" || jwk.crv !== "P-256") throw new SigningKeyError(`${where} must be an EC P-256 key (ES256)`);
  if (typeof jwk.d !== "string" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new SigningKeyError(`${where} must be a private JWK (x, y and d)`);
  }
  if (typeof jwk.kid !== "string" || !/^[A-Za-z0-9._~-]{1,128}$/.test(jwk.kid)) {
    throw new SigningKeyError(`${where} needs a kid of 1-128 URL-safe characters`);
  }
  if (jwk.alg !== undefined && jwk.alg !== "ES256") throw new SigningKeyError(`${where} has alg ${jwk.alg}, not ES256`);
  return jwk as JWK & { kid: string; d: string };
}

/** Parses and imports the key material; throws SigningKeyError naming what is wrong. */
export async function importSigningKeys(raw: string | undefined): Promise<SigningKeys> {
  if (!raw) throw new SigningKeyError("SIGNING_KEY is not set (wrangler secret put SIGNING_KEY)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new SigningKeyError("SIGNING_KEY is not JSON");
  }
  const list: unknown[] =
    typeof parsed === "object" && parsed !== null && Array.isArray((parsed as { keys?: unknown }).keys)
      ? (parsed as { keys: unknown[] }).keys
      : [parsed];
  if (list.length === 0) throw new SigningKeyError("SIGNING_KEY has no keys");
  const jwks: JWK[] = [];
  const verifiers = new Map<string, CryptoKey>();
  let signer: SigningKeys["signer"] | undefined;
  for (const [index, entry] of list.entries()) {
    const jwk = checkPrivateJWK(entry, index);
    if (verifiers.has(jwk.kid)) throw new SigningKeyError(`SIGNING_KEY has kid ${jwk.kid} twice`);
    const publicJWK: JWK = { alg: "ES256", use: "sig" };
    for (const member of PUBLIC_MEMBERS) publicJWK[member] = jwk[member] as string;
    let privateKey: CryptoKey;
    let publicKey: CryptoKey;
    try {
      privateKey = (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey;
      publicKey = (await importJWK(publicJWK, "ES256")) as CryptoKey;
    } catch (error) {
      throw new SigningKeyError(`SIGNING_KEY key ${index} does not import: ${(error as Error).message}`);
    }
    if (index === 0) signer = { kid: jwk.kid, key: privateKey };
    verifiers.set(jwk.kid, publicKey);
    jwks.push(publicJWK);
  }
  return { signer: signer!, verifiers, jwks: { keys: jwks } };
}

let cached: { raw: string | undefined; keys: Promise<SigningKeys> } | undefined;

/** The imported keys for this secret value, imported once per isolate (and again only if it changes). */
export function getSigningKeys(env: { SIGNING_KEY?: string }): Promise<SigningKeys> {
  if (!cached || cached.raw !== env.SIGNING_KEY) {
    const keys = importSigningKeys(env.SIGNING_KEY);
    cached = { raw: env.SIGNING_KEY, keys };
    // A failed import is not cached: the next request tries again and logs again.
    keys.catch(() => {
      if (cached?.keys === keys) cached = undefined;
    });
  }
  return cached.keys;
}
