// The binding vitest.config.ts adds for the workerd tests only (not in wrangler.toml).
declare namespace Cloudflare {
  interface Env {
    /** kid of the second, published-only key in the test SIGNING_KEY set. */
    TEST_PUBLISHED_ONLY_KID: string;
    TEST_STRICT_LIMITER: RateLimit;
  }
}
