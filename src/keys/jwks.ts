/**
 * GET /.well-known/jwks.json: the public halves of every key in use (RFC 7517 §5): with KEY_SEED the
 * current, next and retired keys of the schedule, else every SIGNING_KEY key.
 */
import { Hono } from "hono";
import { JWKS_MAX_AGE } from "./schedule.ts";
import { getSigningKeys } from "./signing.ts";

/**
 * Resource servers may cache the set this long (300 s). Rotation publishes a new key at least this
 * long before it signs: KEY_SEED's schedule a whole ROTATION_PERIOD before (README, "Rotate signing
 * keys"). Defined beside the schedule, which config.ts holds ROTATION_PERIOD to.
 */
export { JWKS_MAX_AGE };

export const jwks = new Hono<{ Bindings: Env }>();

jwks.get("/.well-known/jwks.json", async (c) => {
  const keys = await getSigningKeys(c.env);
  return c.json(keys.jwks, 200, {
    "Content-Type": "application/jwk-set+json",
    "Cache-Control": `public, max-age=${JWKS_MAX_AGE}`,
    "Access-Control-Allow-Origin": "*",
  });
});
