// The binding vitest.config.ts adds for the remote key set and federation tests (not in wrangler.toml).
declare namespace Cloudflare {
  interface Env {
    /** JSON `{ url, keys: { a, b } }`: the stand-in issuer (scripts/stand-in-issuer.ts) and its private JWKs. */
    TEST_STAND_IN: string;
    /** The same for a second stand-in with keys of its own (the external-issuer gateway tests). */
    TEST_OTHER_STAND_IN: string;
  }
}
