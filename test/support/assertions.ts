/**
 * private_key_jwt in the tests: client key pairs, clients whose records hold the public halves,
 * assertions signed with jose (and forged ones built by hand), and token requests that carry them.
 */
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from "jose";
import { buildClientRecord, putClientRecord, tokenRequest, type SeedOverrides } from "./worker.ts";
import { validateClientRecord } from "../../src/clients/record.ts";
import { JWT_BEARER_ASSERTION_TYPE } from "../../src/client-auth/credentials.ts";
import { nowSeconds } from "./tokens.ts";

export { JWT_BEARER_ASSERTION_TYPE };

export interface ClientKey {
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  publicJWK: JWK;
}

/** A fresh key pair for `alg`, its public JWK carrying a random kid. */
export async function clientKey(alg = "ES256", options: { modulusLength?: number } = {}): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  const kid = crypto.randomUUID();
  return { alg, kid, privateKey, publicJWK: { ...(await exportJWK(publicKey)), kid } };
}

export interface KeyClient {
  client_id: string;
  key: ClientKey;
}

/** Stores a private_key_jwt client with `key`'s public JWK inline (or the given key source). */
export async function seedKeyClient(overrides: SeedOverrides & Record<string, unknown> = {}, key?: ClientKey): Promise<KeyClient> {
  const k = key ?? (await clientKey());
  const source = overrides.jwks_uri !== undefined || overrides.federated_identity !== undefined ? {} : { jwks: { keys: [k.publicJWK] } };
  const seeded = await buildClientRecord({ secrets: [], ...overrides });
  const record = { ...seeded.record, token_endpoint_auth_method: "private_key_jwt", ...source, ...overrides, secrets: [] };
  validateClientRecord(record);
  await putClientRecord(record as { client_id: string });
  return { client_id: seeded.client_id, key: k };
}

/** The claims of a valid assertion of `clientId` for this issuer, now. */
export function assertionClaims(clientId: string, issuer = env.ISSUER): JWTPayload {
  const now = nowSeconds();
  return { iss: clientId, sub: clientId, aud: issuer, iat: now, exp: now + 60, jti: crypto.randomUUID() };
}

/** Signs `claims` (default: a valid assertion) with the client's key; `header` adds or overrides members. */
export function signAssertion(
  client: KeyClient,
  claims: JWTPayload = {},
  header: Partial<JWTHeaderParameters> = {},
  issuer = env.ISSUER,
): Promise<string> {
  const payload = { ...assertionClaims(client.client_id, issuer), ...claims };
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: client.key.alg, kid: client.key.kid, ...header } as JWTHeaderParameters)
    .sign(client.key.privateKey);
}

/** The form of a client-credentials request authenticated by `assertion`. */
export function assertionForm(assertion: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    grant_type: "client_credentials",
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: assertion,
    ...extra,
  };
}

/** POST /token with `assertion` through the Worker's entry point. */
export function assertionTokenRequest(assertion: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) {
  return tokenRequest(assertionForm(assertion, extra), headers);
}

const b64url = (data: string | Uint8Array) =>
  btoa(typeof data === "string" ? unescape(encodeURIComponent(data)) : String.fromCharCode(...data))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

/**
 * A JWS built byte by byte, so an attack never depends on what jose will sign: header and payload as
 * given, then `sign` over the signing input (none: an empty signature).
 */
export async function forgeAssertion(
  header: Record<string, unknown>,
  payload: JWTPayload,
  sign?: (input: Uint8Array) => Promise<ArrayBuffer>,
): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (!sign) return `${input}.`;
  return `${input}.${b64url(new Uint8Array(await sign(new TextEncoder().encode(input))))}`;
}

/** A signer for forgeAssertion: HMAC-SHA256 under `secret`. */
export function hmacSigner(secret: Uint8Array): (input: Uint8Array) => Promise<ArrayBuffer> {
  return async (input) => {
    const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return crypto.subtle.sign("HMAC", key, input);
  };
}
