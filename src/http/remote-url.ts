/**
 * Which URLs Tollgate may fetch a document from (a key set, a discovery document): the rule that
 * the config parsers (TRUSTED_ISSUERS in src/trusted-issuers.ts, EXTERNAL_ISSUERS) and client records
 * check, without importing the key code; src/keys/remote-key-set.ts re-exports it.
 */

/** 127.0.0.0/8, ::1 and localhost, as the WHATWG URL parser writes them. */
const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/;

function isLoopbackHttp(url: URL): boolean {
  return url.protocol === "http:" && LOOPBACK_HOST.test(url.hostname);
}

/**
 * An absolute https URL, or http to a loopback host (127.0.0.0/8, ::1, localhost), without user,
 * password or fragment: what a record or a config may name, whatever ISSUER is (isAllowedRemoteUrl
 * decides what may be fetched). The parsed URL, or undefined.
 */
export function wellFormedRemoteUrl(url: string): URL | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.username || parsed.password || url.includes("#")) return undefined;
  return parsed.protocol === "https:" || isLoopbackHttp(parsed) ? parsed : undefined;
}

/**
 * https only; http only to a loopback host (127.0.0.0/8, ::1, localhost) and only when `ownIssuer`
 * (this server's ISSUER) is itself a loopback http URL. Never a user, password or fragment.
 */
export function isAllowedRemoteUrl(url: string, ownIssuer: string): boolean {
  const parsed = wellFormedRemoteUrl(url);
  if (parsed === undefined) return false;
  if (parsed.protocol === "https:") return true;
  try {
    return isLoopbackHttp(new URL(ownIssuer));
  } catch {
    return false;
  }
}
