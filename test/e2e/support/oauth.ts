/** oauth4webapi as the e2e tests use it, against the Worker under `wrangler dev` on plain http://localhost. */
import * as oauth from "oauth4webapi";

/** oauth4webapi refuses http:// unless told otherwise; the local Worker has no TLS. */
export const insecure = { [oauth.allowInsecureRequests]: true };

/** The authorization server metadata (RFC 8414) of the Worker at `issuer`, as oauth4webapi reads it. */
export async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { algorithm: "oauth2", ...insecure }));
}
