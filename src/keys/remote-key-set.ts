/**
 * Key sets published by others: a client's `jwks_uri`, a trusted external issuer's JWKS, found
 * directly or by its discovery document. Every fetch goes through one function (fetchDocument) with
 * the same rules: a timeout, no redirects, a size cap read while streaming, JSON only. A JWK Set
 * with a private member or a symmetric key is refused whole: its publisher leaked a secret, and
 * none of its keys is trusted. The parsed set is kept per isolate (BoundedCache) as long as its
 * Cache-Control allows within src/policy.ts's bounds; a failure is remembered briefly so a dead
 * issuer is not asked on every request; while a refetch fails the last good keys keep verifying
 * for REMOTE_KEYS_STALE_SECONDS. An unknown `kid` refetches at most once per
 * REMOTE_KEYS_REFETCH_SECONDS per URI (the issuer rotated; a forged kid cannot make us hammer it).
 *
 * Nothing here decides what may be fetched: callers pass only URLs their configuration or a record
 * names, checked with isAllowedRemoteUrl.
 * @see https://www.rfc-editor.org/rfc/rfc7517#section-5
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 */
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";
import { BoundedCache } from "../bounded-cache.ts";
import { readBodyCapped } from "../http/body.ts";
import { logEvent } from "../http/log.ts";
import { isAllowedRemoteUrl } from "../http/remote-url.ts";
import {
  REMOTE_KEYS_DEFAULT_SECONDS,
  REMOTE_KEYS_FAILURE_SECONDS,
  REMOTE_KEYS_MAX_SECONDS,
  REMOTE_KEYS_MIN_SECONDS,
  REMOTE_KEYS_REFETCH_SECONDS,
  REMOTE_KEYS_STALE_SECONDS,
} from "../policy.ts";

export { isAllowedRemoteUrl };

/** The whole fetch, headers and body, must be done within this. */
export const REMOTE_FETCH_TIMEOUT_MS = 3000;
/** A JWK Set or discovery document larger than this is refused (GitHub's JWKS is about 3 KiB). */
export const MAX_REMOTE_DOCUMENT_BYTES = 64 * 1024;
/** A JWK Set with more keys than this is refused. */
const MAX_KEYS = 100;
/** JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2; `priv` of AKP keys). */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"] as const;

/**
 * Why a remote key set could not be used; the message is the log reason. Callers answer 401
 * invalid_client (or, for a gateway later, 503), never a 5xx for other clients.
 */
export class KeySetUnavailableError extends Error {
  override name = "KeySetUnavailableError";
}

/** A fetch that answered, but not with the document; `status` lets discovery fall back on a 404. */
class UnexpectedAnswer extends KeySetUnavailableError {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/**
 * Seconds a document may be used: its Cache-Control max-age less its Age (RFC 9111 §4.2.1, §5.1),
 * REMOTE_KEYS_DEFAULT_SECONDS without one, the minimum for `no-store` or `no-cache`, always within
 * REMOTE_KEYS_MIN_SECONDS..REMOTE_KEYS_MAX_SECONDS.
 */
export function freshnessSeconds(headers: Headers): number {
  const cacheControl = headers.get("Cache-Control") ?? "";
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)/i.test(cacheControl)) return REMOTE_KEYS_MIN_SECONDS;
  const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?\s*(?:,|$)/i.exec(cacheControl);
  if (!maxAge) return REMOTE_KEYS_DEFAULT_SECONDS;
  const age = /^\d{1,10}$/.test(headers.get("Age") ?? "") ? Number(headers.get("Age")) : 0;
  return Math.min(REMOTE_KEYS_MAX_SECONDS, Math.max(REMOTE_KEYS_MIN_SECONDS, Number(maxAge[1]) - age));
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const strictUTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** GETs `url` under the rules above: its parsed JSON and how long it may be used, or a KeySetUnavailableError. */
async function fetchDocument(url: string): Promise<{ document: unknown; freshSeconds: number }> {
  const started = Date.now();
  const signal = AbortSignal.timeout(REMOTE_FETCH_TIMEOUT_MS);
  let response: Response;
  try {
    // No redirects: the configured URL is the one trusted, not wherever it points.
    response = await fetch(url, { redirect: "manual", signal, headers: { Accept: "application/json" } });
  } catch (error) {
    throw new KeySetUnavailableError(
      signal.aborted ? `${url}: no answer within ${REMOTE_FETCH_TIMEOUT_MS} ms` : `${url}: fetch failed (${(error as Error).message})`,
    );
  }
  try {
    if (response.status >= 300 && response.status < 400) {
      throw new UnexpectedAnswer(`${url}: answered a redirect (${response.status}), which is not followed`, response.status);
    }
    if (response.status !== 200) throw new UnexpectedAnswer(`${url}: answered HTTP ${response.status}`, response.status);
    const type = response.headers.get("Content-Type") ?? "";
    if (!JSON_TYPE.test(type)) throw new UnexpectedAnswer(`${url}: Content-Type ${JSON.stringify(type)} is not JSON`, response.status);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readBodyCapped(response, MAX_REMOTE_DOCUMENT_BYTES, Math.max(1, REMOTE_FETCH_TIMEOUT_MS - (Date.now() - started)));
    } catch {
      throw new KeySetUnavailableError(`${url}: the body did not arrive within ${REMOTE_FETCH_TIMEOUT_MS} ms`);
    }
    if (bytes === undefined) throw new KeySetUnavailableError(`${url}: larger than ${MAX_REMOTE_DOCUMENT_BYTES} bytes`);
    let document: unknown;
    try {
      document = JSON.parse(strictUTF8.decode(bytes));
    } catch {
      throw new KeySetUnavailableError(`${url}: the body is not valid JSON`);
    }
    return { document, freshSeconds: freshnessSeconds(response.headers) };
  } finally {
    // A body refused unread still holds the connection.
    if (!response.bodyUsed) response.body?.cancel().catch(() => {});
  }
}

/**
 * The public keys of a JWK Set document (RFC 7517 §5), or a KeySetUnavailableError: not a set, too
 * many keys, or any private or symmetric key, which refuses the whole set.
 */
export function parsePublicKeySet(document: unknown, source: string): JSONWebKeySet {
  const keys = typeof document === "object" && document !== null ? (document as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new KeySetUnavailableError(`${source}: not a JWK Set (an object with a "keys" array)`);
  if (keys.length > MAX_KEYS) throw new KeySetUnavailableError(`${source}: more than ${MAX_KEYS} keys`);
  keys.forEach((key: unknown, i) => {
    if (typeof key !== "object" || key === null || Array.isArray(key) || typeof (key as JWK).kty !== "string") {
      throw new KeySetUnavailableError(`${source}: keys[${i}] is not a JWK`);
    }
    if ((key as JWK).kty === "oct")
      throw new KeySetUnavailableError(`${source}: keys[${i}] is a symmetric (oct) key; the whole set is refused`);
    const member = PRIVATE_MEMBERS.find((name) => name in key);
    if (member !== undefined) {
      throw new KeySetUnavailableError(`${source}: keys[${i}] has the private member "${member}"; the whole set is refused`);
    }
  });
  return { keys: keys as JWK[] };
}

/** One remote document, parsed, as this isolate remembers it. Times in epoch milliseconds. */
interface Remembered<T> {
  /** The last good value and until when it is fresh. */
  good?: { value: T; freshUntil: number };
  /** The last fetch's failure, not retried until `until`. */
  failure?: { reason: string; until: number };
  /** When an unknown kid last forced a refetch. */
  forcedAt: number;
}

/**
 * The value of the document at `url`: the remembered one while fresh (or `force`d otherwise), else
 * fetched and parsed by `parse`; when that fails, the last good value for REMOTE_KEYS_STALE_SECONDS
 * past its freshness (logged), else the failure. `fetched` says whether this call fetched.
 */
async function load<T>(
  cache: BoundedCache<string, Remembered<T>>,
  url: string,
  fetchValue: () => Promise<{ value: T; freshSeconds: number }>,
  force = false,
): Promise<{ value: T; fetched: boolean }> {
  const now = Date.now();
  let entry = cache.get(url);
  if (entry === undefined) {
    entry = { forcedAt: 0 };
    cache.set(url, entry);
  }
  if (entry.good && now < entry.good.freshUntil && !force) return { value: entry.good.value, fetched: false };
  let reason: string;
  if (entry.failure && now < entry.failure.until) {
    reason = `${entry.failure.reason} (failed less than ${REMOTE_KEYS_FAILURE_SECONDS} s ago; not retried yet)`;
  } else {
    try {
      const { value, freshSeconds } = await fetchValue();
      entry.good = { value, freshUntil: Date.now() + freshSeconds * 1000 };
      entry.failure = undefined;
      return { value, fetched: true };
    } catch (error) {
      if (!(error instanceof KeySetUnavailableError)) throw error;
      reason = error.message;
      entry.failure = { reason, until: Date.now() + REMOTE_KEYS_FAILURE_SECONDS * 1000 };
      logEvent("remote_document_failed", { level: "warn", url, reason });
    }
  }
  if (!force && entry.good && now < entry.good.freshUntil + REMOTE_KEYS_STALE_SECONDS * 1000) {
    logEvent("remote_document_stale", { level: "warn", url, reason });
    return { value: entry.good.value, fetched: false };
  }
  throw new KeySetUnavailableError(reason);
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;
const keySets = new BoundedCache<string, Remembered<KeyResolver>>(256);

async function fetchKeySet(jwksUri: string): Promise<{ value: KeyResolver; freshSeconds: number }> {
  const { document, freshSeconds } = await fetchDocument(jwksUri);
  // createLocalJWKSet: a key is chosen by kid, alg, kty, use and key_ops, as for a local set.
  return { value: createLocalJWKSet(parsePublicKeySet(document, jwksUri)), freshSeconds };
}

/**
 * A jose-compatible key resolver (JWTVerifyGetKey) over the JWKS at `jwksUri`: fetched with a
 * timeout and a size cap, no redirects, JSON only, private and symmetric keys refused, cached per
 * isolate, refetched on an unknown kid at most once per minute per URI. Throws
 * KeySetUnavailableError when no usable set exists, jose's JWKS errors when the set has no key for the token.
 */
export function remoteKeySet(jwksUri: string): JWTVerifyGetKey {
  return async (header, token) => {
    const { value: resolve, fetched } = await load(keySets, jwksUri, () => fetchKeySet(jwksUri));
    try {
      return await resolve(header, token);
    } catch (error) {
      // A kid the set does not have: the issuer may have rotated since the set was fetched.
      const entry = keySets.get(jwksUri);
      if (!(error instanceof errors.JWKSNoMatchingKey) || fetched || !entry) throw error;
      if (Date.now() - entry.forcedAt < REMOTE_KEYS_REFETCH_SECONDS * 1000) throw error;
      entry.forcedAt = Date.now();
      const { value: refetched } = await load(keySets, jwksUri, () => fetchKeySet(jwksUri), true);
      return refetched(header, token);
    }
  };
}

const discoveries = new BoundedCache<string, Remembered<string>>(64);

/** The jwks_uri of one discovery document, after checking its `issuer`. */
async function fetchJwksUri(issuer: string, url: string, ownIssuer: string): Promise<{ value: string; freshSeconds: number }> {
  const { document, freshSeconds } = await fetchDocument(url);
  const metadata = typeof document === "object" && document !== null ? (document as Record<string, unknown>) : {};
  // OpenID Connect Discovery §4.3, RFC 8414 §3.3: the document must name exactly the issuer asked for.
  if (metadata.issuer !== issuer) {
    throw new KeySetUnavailableError(`${url}: its issuer ${JSON.stringify(metadata.issuer)} is not ${JSON.stringify(issuer)}`);
  }
  const jwksUri = metadata.jwks_uri;
  if (typeof jwksUri !== "string" || !isAllowedRemoteUrl(jwksUri, ownIssuer)) {
    throw new KeySetUnavailableError(`${url}: jwks_uri ${JSON.stringify(jwksUri)} is not an allowed URL (https)`);
  }
  return { value: jwksUri, freshSeconds };
}

/**
 * The jwks_uri `issuer` publishes in its OpenID Connect discovery document
 * (`{issuer}/.well-known/openid-configuration`), or when that is 404 its RFC 8414 metadata
 * (`/.well-known/oauth-authorization-server{path}`); the document's `issuer` must equal `issuer`
 * exactly. Fetched under the same rules and cache as a key set.
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationRequest
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3.1
 */
export async function discoverJwksUri(issuer: string, ownIssuer: string): Promise<string> {
  const { value } = await load(discoveries, issuer, async () => {
    try {
      return await fetchJwksUri(issuer, `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, ownIssuer);
    } catch (error) {
      if (!(error instanceof UnexpectedAnswer) || error.status !== 404) throw error;
      const url = new URL(issuer);
      const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
      return fetchJwksUri(issuer, `${url.origin}/.well-known/oauth-authorization-server${path}`, ownIssuer);
    }
  });
  return value;
}

/** A key resolver over the JWKS that `issuer`'s discovery document names (discoverJwksUri, remoteKeySet). */
export function discoveredKeySet(issuer: string, ownIssuer: string): JWTVerifyGetKey {
  return async (header, token) => remoteKeySet(await discoverJwksUri(issuer, ownIssuer))(header, token);
}
