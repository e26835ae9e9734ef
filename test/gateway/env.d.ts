// Bindings vitest.config.ts adds for the gateway tests (not in wrangler.toml).
declare namespace Cloudflare {
  interface Env {
    /** Base URL of the echo origin (scripts/echo-origin.ts) the test routes point at. */
    TEST_ORIGIN_URL: string;
    /** The secret named by the /strip route's origin_auth. */
    ORIGIN_SECRET: string;
  }
}
