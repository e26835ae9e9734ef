/**
 * What /revoke and /introspect share: the caller authenticates as at /token (RFC 7009 §2.1,
 * RFC 7662 §2.1) and names the token in the `token` parameter; token_type_hint is ignored, since
 * every token here is an access token.
 */
import type { Context } from "hono";
import { authenticateFormRequest } from "../client-auth/authenticate.ts";
import { getConfig } from "../config.ts";
import { getSigningKeys } from "../keys/signing.ts";
import { requireTokenParameter } from "../tokens/presented.ts";
import { auditOf, type AppEnv } from "./app-env.ts";

/** The authenticated caller, the presented token with this issuer's keys, and the request time. */
export async function authenticateTokenHolder(c: Context<AppEnv>) {
  const { client, prepared, now } = await authenticateFormRequest(
    c.req.raw,
    c.env,
    getConfig(c.env).issuer,
    async (form) => ({
      token: requireTokenParameter(form),
      keys: await getSigningKeys(c.env),
    }),
    auditOf(c),
  );
  return { client, token: prepared.token, keys: prepared.keys, now };
}
