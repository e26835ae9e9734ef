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
 * https only; http only to a loopback host (127.0.0.0/8, ::1, localhost) and only when `ownIssuer`
 * (this server's ISSUER) is itself a loopback http URL. Never a user, password or fragment.
 */
export function isAllowedRemoteUrl(url: string, ownIssuer: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.username || parsed.password || url.includes("#")) return false;
  if (parsed.protocol === "https:") return true;
  if (!isLoopbackHttp(parsed)) return false;
  try {
    return isLoopbackHttp(new URL(ownIssuer));
  } catch {
    return false;
  }
}
