/**
 * Key sets published by others: a client's `jwks_uri`, a trusted external issuer's JWKS, found
 * directly or by its discovery document. Every fetch goes through one function (fetchDocument) with
 * the same rules: a timeout, no redirects, a size cap read while streaming, JSON only. A JWK Set
 * with a private member or a symmetric key is refused whole: its publisher leaked a secret, and
 * none of its keys is trusted. The parsed set is kept per isolate (BoundedCache) as long as its
 * Cache-Control allows within src/policy.ts's bounds, and the document at the edge (the Cache API:
 * one location's isolates share a fetch; a document is put there only once it was taken); a failure
 * is remembered briefly so a dead issuer is not asked on every request; while a refetch fails the
 * last good keys (the isolate's, else the edge's) keep verifying for REMOTE_KEYS_STALE_SECONDS. An unknown `kid` refetches at most once per
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
import { PRIVATE_JWK_MEMBERS } from "../clients/client-keys.ts";
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

// Where the rule of what may be fetched lives (src/http/remote-url.ts): config parsers use it too.
export { isAllowedRemoteUrl };

/** The whole fetch, headers and body, must be done within this. */
export const REMOTE_FETCH_TIMEOUT_MS = 3000;
/** A JWK Set or discovery document larger than this is refused (GitHub's JWKS is about 3 KiB). */
export const MAX_REMOTE_DOCUMENT_BYTES = 64 * 1024;
/** A JWK Set with more keys than this is refused. */
const MAX_KEYS = 100;

/**
 * Why a remote key set could not be used; the message is the log reason. Callers answer 401
 * invalid_client (or, for a gateway later, 503), never a 5xx for other clients.
 */
export class KeySetUnavailableError extends Error {
  override name = "KeySetUnavailableError";
  /**
   * The edge's last good copy of the document (or, once parsed, its value) and when it stopped being
   * fresh, when the fetch failed and the edge cache still had one within the stale bound.
   */
  stale?: { value: unknown; freshUntil: number };
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

/** Where the edge copy records until when (epoch ms) its document is fresh. */
const EDGE_FRESH_UNTIL = "X-Tollgate-Fresh-Until";

/**
 * This location's copy of a document (Cache API), written by fetchDocument below and by nothing else:
 * it saves each new isolate a fetch, and lets one that has no copy of its own bridge an outage.
 */
async function readEdgeCopy(url: string): Promise<{ document: unknown; freshUntil: number } | undefined> {
  if (typeof caches === "undefined") return undefined;
  try {
    const hit = await caches.default.match(url);
    const freshUntil = Number(hit?.headers.get(EDGE_FRESH_UNTIL));
    if (!hit || !Number.isSafeInteger(freshUntil)) return undefined;
    return { document: await hit.json(), freshUntil };
  } catch {
    // No edge copy is no error: the document is fetched.
    return undefined;
  }
}

/** Keeps `document` at the edge through its freshness and the stale bound after it. */
async function writeEdgeCopy(url: string, document: unknown, freshUntil: number, now: number): Promise<void> {
  if (typeof caches === "undefined") return;
  const seconds = Math.ceil((freshUntil - now) / 1000) + REMOTE_KEYS_STALE_SECONDS;
  const headers = { "Content-Type": "application/json", "Cache-Control": `max-age=${seconds}`, [EDGE_FRESH_UNTIL]: String(freshUntil) };
  try {
    await caches.default.put(url, new Response(JSON.stringify(document), { headers }));
  } catch {
    // The isolate's copy still holds it.
  }
}

/**
 * The JSON at `url` and how long it may be used: this location's edge copy while it is fresh (not
 * when `force`d: an unknown kid asks the issuer itself), else fetched under the rules above
 * (`fetched`). A failed fetch is a KeySetUnavailableError carrying the edge copy, if it is within the
 * stale bound, as `stale`.
 */
async function fetchDocument(
  url: string,
  clock: Clock,
  force: boolean,
): Promise<{ document: unknown; freshSeconds: number; fetched: boolean }> {
  const edge = await readEdgeCopy(url);
  const now = clock();
  if (edge && !force && now < edge.freshUntil) {
    return { document: edge.document, freshSeconds: (edge.freshUntil - now) / 1000, fetched: false };
  }
  try {
    return { ...(await fetchFromNetwork(url)), fetched: true };
  } catch (error) {
    if (error instanceof KeySetUnavailableError && edge && now < edge.freshUntil + REMOTE_KEYS_STALE_SECONDS * 1000) {
      error.stale = { value: edge.document, freshUntil: edge.freshUntil };
    }
    throw error;
  }
}

/**
 * fetchDocument, its document turned into a value by `parse` (which throws a KeySetUnavailableError
 * for a document it refuses), and a fetched document kept at the edge once `parse` took it; an edge
 * copy carried by a failure is parsed the same way.
 */
async function fetchParsed<T>(
  url: string,
  clock: Clock,
  force: boolean,
  parse: (document: unknown) => T,
): Promise<{ value: T; freshSeconds: number }> {
  try {
    const now = clock();
    const { document, freshSeconds, fetched } = await fetchDocument(url, clock, force);
    const value = parse(document);
    if (fetched) await writeEdgeCopy(url, document, now + freshSeconds * 1000, now);
    return { value, freshSeconds };
  } catch (error) {
    if (error instanceof KeySetUnavailableError && error.stale) {
      try {
        error.stale = { value: parse(error.stale.value), freshUntil: error.stale.freshUntil };
      } catch {
        error.stale = undefined;
      }
    }
    throw error;
  }
}

/** GETs `url` under the rules above: its parsed JSON and how long it may be used, or a KeySetUnavailableError. */
async function fetchFromNetwork(url: string): Promise<{ document: unknown; freshSeconds: number }> {
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
    const member = PRIVATE_JWK_MEMBERS.find((name) => name in key);
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

/** Epoch milliseconds: Date.now, or a test's frozen or advanced time. */
export type Clock = () => number;

/**
 * The value of the document at `url`: the remembered one while fresh (or `force`d otherwise), else
 * fetched and parsed by `parse`; when that fails, the last good value for REMOTE_KEYS_STALE_SECONDS
 * past its freshness (logged), else the failure. `fetched` says whether this call fetched.
 */
async function load<T>(
  cache: BoundedCache<string, Remembered<T>>,
  url: string,
  fetchValue: (force: boolean) => Promise<{ value: T; freshSeconds: number }>,
  clock: Clock,
  force = false,
): Promise<{ value: T; fetched: boolean }> {
  const now = clock();
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
      const { value, freshSeconds } = await fetchValue(force);
      entry.good = { value, freshUntil: clock() + freshSeconds * 1000 };
      entry.failure = undefined;
      return { value, fetched: true };
    } catch (error) {
      if (!(error instanceof KeySetUnavailableError)) throw error;
      reason = error.message;
      entry.failure = { reason, until: clock() + REMOTE_KEYS_FAILURE_SECONDS * 1000 };
      // A new isolate while the issuer is down: the edge's copy, under the same stale bound.
      if (!entry.good && error.stale) entry.good = error.stale as { value: T; freshUntil: number };
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

function fetchKeySet(jwksUri: string, clock: Clock, force: boolean): Promise<{ value: KeyResolver; freshSeconds: number }> {
  // createLocalJWKSet: a key is chosen by kid, alg, kty, use and key_ops, as for a local set.
  return fetchParsed(jwksUri, clock, force, (document) => createLocalJWKSet(parsePublicKeySet(document, jwksUri)));
}

/**
 * A jose-compatible key resolver (JWTVerifyGetKey) over the JWKS at `jwksUri`: fetched with a
 * timeout and a size cap, no redirects, JSON only, private and symmetric keys refused, cached per
 * isolate, refetched on an unknown kid at most once per minute per URI. Throws
 * KeySetUnavailableError when no usable set exists, jose's JWKS errors when the set has no key for the token.
 * `clock` tells the time the cache's bounds are measured in.
 */
export function remoteKeySet(jwksUri: string, clock: Clock = Date.now): JWTVerifyGetKey {
  return async (header, token) => {
    const { value: resolve, fetched } = await load(keySets, jwksUri, (force) => fetchKeySet(jwksUri, clock, force), clock);
    try {
      return await resolve(header, token);
    } catch (error) {
      // A kid the set does not have: the issuer may have rotated since the set was fetched.
      const entry = keySets.get(jwksUri);
      if (!(error instanceof errors.JWKSNoMatchingKey) || fetched || !entry) throw error;
      if (clock() - entry.forcedAt < REMOTE_KEYS_REFETCH_SECONDS * 1000) throw error;
      entry.forcedAt = clock();
      const { value: refetched } = await load(keySets, jwksUri, (force) => fetchKeySet(jwksUri, clock, force), clock, true);
      return refetched(header, token);
    }
  };
}

const discoveries = new BoundedCache<string, Remembered<string>>(64);

/** The jwks_uri of one discovery document (fetchParsed, jwksUriOf). */
function fetchJwksUri(
  issuer: string,
  url: string,
  ownIssuer: string,
  clock: Clock,
  force: boolean,
): Promise<{ value: string; freshSeconds: number }> {
  return fetchParsed(url, clock, force, (document) => jwksUriOf(document, issuer, url, ownIssuer));
}

/** The jwks_uri a discovery document at `url` names, after checking its `issuer`. */
function jwksUriOf(document: unknown, issuer: string, url: string, ownIssuer: string): string {
  const metadata = typeof document === "object" && document !== null ? (document as Record<string, unknown>) : {};
  // OpenID Connect Discovery §4.3, RFC 8414 §3.3: the document must name exactly the issuer asked for.
  if (metadata.issuer !== issuer) {
    throw new KeySetUnavailableError(`${url}: its issuer ${JSON.stringify(metadata.issuer)} is not ${JSON.stringify(issuer)}`);
  }
  const jwksUri = metadata.jwks_uri;
  if (typeof jwksUri !== "string" || !isAllowedRemoteUrl(jwksUri, ownIssuer)) {
    throw new KeySetUnavailableError(`${url}: jwks_uri ${JSON.stringify(jwksUri)} is not an allowed URL (https)`);
  }
  return jwksUri;
}

/**
 * The jwks_uri `issuer` publishes in its OpenID Connect discovery document
 * (`{issuer}/.well-known/openid-configuration`), or when that is 404 its RFC 8414 metadata
 * (`/.well-known/oauth-authorization-server{path}`); the document's `issuer` must equal `issuer`
 * exactly. Fetched under the same rules and cache as a key set.
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationRequest
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3.1
 */
export async function discoverJwksUri(issuer: string, ownIssuer: string, clock: Clock = Date.now): Promise<string> {
  const { value } = await load(
    discoveries,
    issuer,
    async (force) => {
      try {
        return await fetchJwksUri(issuer, `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, ownIssuer, clock, force);
      } catch (error) {
        if (!(error instanceof UnexpectedAnswer) || error.status !== 404) throw error;
        const url = new URL(issuer);
        const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
        return fetchJwksUri(issuer, `${url.origin}/.well-known/oauth-authorization-server${path}`, ownIssuer, clock, force);
      }
    },
    clock,
  );
  return value;
}

/** A key resolver over the JWKS that `issuer`'s discovery document names (discoverJwksUri, remoteKeySet). */
export function discoveredKeySet(issuer: string, ownIssuer: string, clock: Clock = Date.now): JWTVerifyGetKey {
  return async (header, token) => remoteKeySet(await discoverJwksUri(issuer, ownIssuer, clock), clock)(header, token);
}
