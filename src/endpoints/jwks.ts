/**
 * GET /.well-known/jwks.json: the public halves of every key in use (RFC 7517 §5): with KEY_SEED the
 * current, next and retired keys of the schedule, else every SIGNING_KEY key.
 */
import { Hono } from "hono";
import { JWKS_MAX_AGE } from "../policy.ts";
import { OAuthError } from "../http/errors.ts";
import { getSigningKeys } from "../keys/signing.ts";

export const jwks = new Hono<{ Bindings: Env }>();

jwks.get("/", async (c) => {
  const keys = await getSigningKeys(c.env);
  return c.json(keys.jwks, 200, {
    "Content-Type": "application/jwk-set+json",
    "Cache-Control": `public, max-age=${JWKS_MAX_AGE}`,
    "Access-Control-Allow-Origin": "*",
  });
});

// HEAD is served by the GET handler; every other method is 405 here, not the gateway's 404.
jwks.all("/", () => {
  throw new OAuthError("invalid_request", "the JWKS accepts only GET and HEAD", { status: 405, headers: { Allow: "GET, HEAD" } });
});
