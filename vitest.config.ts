import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { startEchoOrigin } from "./scripts/echo-origin.ts";
import { startKeyHost } from "./scripts/key-host.ts";
import { startStandInIssuer } from "./scripts/stand-in-issuer.ts";
import { generateSigningKey } from "./src/keys/new-key-pair.ts";

// A fresh signing key per run, so no key ever lives in the repository.
const testKeys = { keys: [await generateSigningKey(), await generateSigningKey()] };

// A real HTTP origin for the gateway tests in workerd, on a free loopback port; it lives as long as
// this (the vitest) process. Every route points at loopback: tests never reach the internet.
const origin = await startEchoOrigin();
origin.server.unref();
// A key-set publisher on loopback for the private_key_jwt tests of jwks_uri (scripts/key-host.ts).
const keyHost = await startKeyHost();
keyHost.server.unref();
const AUDIENCE = "https://api.tollgate.test";
// A stand-in external issuer and JWKS host (discovery, good and hostile key sets) on loopback, for
// the remote key set and workload identity federation tests; its private keys go to the tests.
const standIn = await startStandInIssuer();
standIn.server.unref();
const gatewayRoutes = [
  {
    prefix: "/api",
    origin: origin.url,
    audience: AUDIENCE,
    scopes: ["orders:read"],
    method_scopes: { POST: ["orders:write"], DELETE: ["orders:admin"] },
  },
  { prefix: "/api/admin", origin: origin.url, audience: AUDIENCE, scopes: ["admin"] },
  { prefix: "/public", origin: origin.url, public: true },
  {
    prefix: "/strip",
    origin: `${origin.url}/base`,
    audience: AUDIENCE,
    strip_prefix: true,
    keep_authorization: true,
    origin_auth: { header: "X-Origin-Auth", secret: "ORIGIN_SECRET" },
  },
  { prefix: "/internal", host: "internal.tollgate.test", origin: origin.url, audience: AUDIENCE },
  { prefix: "/other-aud", origin: origin.url, audience: "https://other.tollgate.test" },
  { prefix: "/down", origin: "http://127.0.0.1:1", audience: AUDIENCE },
  { prefix: "/slow", origin: origin.url, audience: AUDIENCE, timeout_ms: 300 },
  { prefix: "/svc", service: "ECHO_SERVICE", audience: AUDIENCE },
  { prefix: "/limited", origin: origin.url, audience: AUDIENCE, rate_limit: "TEST_STRICT_LIMITER" },
  { prefix: "/ws", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"], websocket: true },
  // A stricter route under a public one, the same prefix weaker on any host than on its own, and a
  // catch-all on one host: the shapes the path-folding, Host and reserved-path tests attack.
  { prefix: "/public/private", origin: origin.url, audience: AUDIENCE, scopes: ["admin"] },
  { prefix: "/hostbound", origin: origin.url, audience: AUDIENCE, scopes: ["orders:read"] },
  { prefix: "/hostbound", host: "internal.tollgate.test", origin: origin.url, audience: AUDIENCE, scopes: ["internal:admin"] },
  { prefix: "/", host: "catchall.tollgate.test", origin: origin.url, public: true },
];
// The suite makes many requests from one (absent) address: production-shaped limits would trip
// across tests. Tests of the limits swap in TEST_STRICT_LIMITER (3 a minute) and use unique keys.
const lenient = { simple: { limit: 1_000_000, period: 60 as const } };

export default defineConfig({
  test: {
    // The Worker's JSON log lines are shown for failing tests only.
    silent: "passed-only",
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ISSUER: "https://auth.tollgate.test",
                DEFAULT_AUDIENCE: AUDIENCE,
                SIGNING_KEY: JSON.stringify(testKeys),
                // The suite runs on SIGNING_KEY; a KEY_SEED in a developer's .dev.vars must not switch it
                // to the schedule. Tests of KEY_SEED (test/keys/) set one per request.
                KEY_SEED: "",
                GATEWAY_ROUTES: JSON.stringify(gatewayRoutes),
                ORIGIN_SECRET: "origin-secret-value",
                TEST_PUBLISHED_ONLY_KID: testKeys.keys[1]!.kid!,
                TEST_ORIGIN_URL: origin.url,
                TEST_KEY_HOST_URL: keyHost.url,
                TEST_STAND_IN: JSON.stringify({ url: standIn.url, keys: standIn.keys }),
              },
              ratelimits: {
                TOKEN_IP_LIMITER: { namespace_id: "1001", ...lenient },
                TOKEN_FAILURE_LIMITER: { namespace_id: "1002", ...lenient },
                TOKEN_CLIENT_LIMITER: { namespace_id: "1003", ...lenient },
                TEST_STRICT_LIMITER: { namespace_id: "1999", simple: { limit: 3, period: 60 } },
              },
              serviceBindings: {
                // A service-binding origin: answers with the URL and headers it got.
                ECHO_SERVICE: async (request: Request) =>
                  Response.json({
                    via: "service",
                    url: request.url,
                    headers: Object.fromEntries(request.headers as unknown as Iterable<[string, string]>),
                  }),
              },
            },
          }),
        ],
        test: { name: "workerd", include: ["test/**/*.test.ts"], exclude: ["test/e2e/**"] },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
