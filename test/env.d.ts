// The binding vitest.config.ts adds for the workerd tests only (not in wrangler.toml).
declare namespace Cloudflare {
  interface Env {
    /** The suite signs with a SIGNING_KEY set (vitest.config.ts), optional in production. */
    SIGNING_KEY: string;
    /** kid of the second, published-only key in the test SIGNING_KEY set. */
    TEST_PUBLISHED_ONLY_KID: string;
    TEST_STRICT_LIMITER: RateLimit;
    /** scripts/key-host.ts: key sets for the jwks_uri tests. */
    TEST_KEY_HOST_URL: string;
  }
}

// Vite's `?raw` import: a file's text (test/policy.test.ts reads README.md so).
declare module "*?raw" {
  const text: string;
  export default text;
}
