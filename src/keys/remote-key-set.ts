/**
 * Key sets fetched from a URL (a client's `jwks_uri`): fetched with a timeout and a size cap, no
 * redirects, JSON only, private and symmetric keys refused, cached per isolate, and refetched on an
 * unknown `kid` at most once a minute per URI.
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3.10
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { isLoopbackHost, publicKeyProblem } from "../clients/client-keys.ts";
import { BoundedCache } from "../bounded-cache.ts";

/** Why a remote key set could not be used; the message is the log reason. Callers answer 401 invalid_client (or, for a gateway later, 503), never a 5xx for other clients. */
export class KeySetUnavailableError extends Error {
  override name = "KeySetUnavailableError";
}

/** A fetch of a key set gives up after this long. */
export const KEY_SET_TIMEOUT_MS = 3000;
/** Largest key set body read. */
export const MAX_KEY_SET_BYTES = 64 * 1024;
/** How long a fetched key set is used before it is fetched again. */
export const KEY_SET_MAX_AGE_MS = 10 * 60 * 1000;
/** An unknown `kid` refetches the set at most this often per URI. */
export const KEY_SET_REFETCH_MS = 60 * 1000;

/**
 * https only; http only to a loopback host (127.0.0.0/8, ::1, localhost) and only when `ownIssuer`
 * (this server's ISSUER) is itself a loopback http URL.
 */
export function isAllowedRemoteUrl(url: string, ownIssuer: string): boolean {
  let target: URL;
  let own: URL;
  try {
    target = new URL(url);
    own = new URL(ownIssuer);
  } catch {
    return false;
  }
  if (target.username || target.password) return false;
  if (target.protocol === "https:") return true;
  return target.protocol === "http:" && isLoopbackHost(target.hostname) && own.protocol === "http:" && isLoopbackHost(own.hostname);
}

async function readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get("Content-Length") ?? "0");
  if (declared > MAX_KEY_SET_BYTES) throw new KeySetUnavailableError(`key set of ${declared} bytes, over ${MAX_KEY_SET_BYTES}`);
  const reader = response.body!.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_KEY_SET_BYTES) {
      await reader.cancel();
      throw new KeySetUnavailableError(`key set over ${MAX_KEY_SET_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
}

async function fetchKeySet(jwksUri: string): Promise<JSONWebKeySet> {
  let response: Response;
  try {
    response = await fetch(jwksUri, {
      redirect: "manual",
      headers: { Accept: "application/jwk-set+json, application/json" },
      signal: AbortSignal.timeout(KEY_SET_TIMEOUT_MS),
    });
  } catch (error) {
    throw new KeySetUnavailableError(`fetching ${jwksUri} failed: ${(error as Error).message}`);
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new KeySetUnavailableError(
      `${jwksUri} answered ${response.status}${response.status >= 300 && response.status < 400 ? " (redirects are not followed)" : ""}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(await readCapped(response));
  } catch (error) {
    if (error instanceof KeySetUnavailableError) throw error;
    throw new KeySetUnavailableError(`${jwksUri} did not answer JSON (${(error as Error).message})`);
  }
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new KeySetUnavailableError(`${jwksUri} is not a JWK Set`);
  for (const [i, key] of keys.entries()) {
    const problem = publicKeyProblem(key);
    // A private or symmetric key published here means the set is compromised: none of it is used.
    if (problem) throw new KeySetUnavailableError(`${jwksUri} keys[${i}] ${problem}`);
  }
  return value as JSONWebKeySet;
}

interface Entry {
  keys?: JWTVerifyGetKey;
  fetchedAt: number;
  pending?: Promise<JWTVerifyGetKey>;
}
const sets = new BoundedCache<string, Entry>(256);

/**
 * A jose-compatible key resolver (JWTVerifyGetKey) over the JWKS at `jwksUri`: fetched with a
 * timeout and a size cap, no redirects, JSON only, private and symmetric keys refused, cached per
 * isolate, refetched on an unknown kid at most once per minute per URI. Failures throw
 * KeySetUnavailableError.
 */
export function remoteKeySet(jwksUri: string): JWTVerifyGetKey {
  const load = (entry: Entry | undefined): Promise<JWTVerifyGetKey> => {
    if (entry?.pending) return entry.pending;
    const next: Entry = { keys: entry?.keys, fetchedAt: Date.now() };
    next.pending = fetchKeySet(jwksUri)
      .then((set) => (next.keys = createLocalJWKSet(set)))
      .finally(() => (next.pending = undefined));
    sets.set(jwksUri, next);
    return next.pending;
  };
  return async (header, token) => {
    const entry = sets.get(jwksUri);
    const fresh = entry?.keys && Date.now() - entry.fetchedAt < KEY_SET_MAX_AGE_MS ? entry.keys : undefined;
    const keys = fresh ?? (await load(entry));
    try {
      return await keys(header, token);
    } catch (error) {
      const current = sets.get(jwksUri);
      // An unknown kid may be a key added since: fetch again, at most once a minute.
      if (
        (error as { code?: string }).code !== "ERR_JWKS_NO_MATCHING_KEY" ||
        !current ||
        Date.now() - current.fetchedAt < KEY_SET_REFETCH_MS
      )
        throw error;
      return (await load(current))(header, token);
    }
  };
}
