/**
 * GET /.well-known/jwks.json: the public halves of every configured key (RFC 7517 §5).
 */
import { Hono } from "hono";
import { OAuthError } from "../errors.ts";
import { getSigningKeys, SigningKeyError } from "./signing.ts";

/**
 * Resource servers may cache the set this long. Rotation publishes a new key at least this long
 * before it signs (README, "Rotate signing keys").
 */
export const JWKS_MAX_AGE = 300;

export const jwks = new Hono<{ Bindings: Env }>();

jwks.get("/.well-known/jwks.json", async (c) => {
  const keys = await getSigningKeys(c.env).catch((error: unknown) => {
    if (error instanceof SigningKeyError) {
      throw new OAuthError("temporarily_unavailable", "signing keys are unavailable", { reason: error.message });
    }
    throw error;
  });
  return c.json(keys.jwks, 200, {
    "Content-Type": "application/jwk-set+json",
    "Cache-Control": `public, max-age=${JWKS_MAX_AGE}`,
    "Access-Control-Allow-Origin": "*",
  });
});
