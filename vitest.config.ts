import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateSigningKey } from "./src/keys/generate.ts";

// A fresh signing key per run, so no key ever lives in the repository.
const testKeys = { keys: [await generateSigningKey(), await generateSigningKey()] };

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ISSUER: "https://auth.tollgate.test",
                DEFAULT_AUDIENCE: "https://api.tollgate.test",
                SIGNING_KEY: JSON.stringify(testKeys),
                TEST_PUBLISHED_ONLY_KID: testKeys.keys[1]!.kid!,
              },
              // Outbound network from the Worker under test is an error unless a test set up the peer.
              outboundService: (request: Request) => {
                throw new Error(`unexpected outbound request to ${request.url}`);
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
