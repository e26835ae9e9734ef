/**
 * The project builds and deploys as documented: types are current and check, and
 * `wrangler deploy --dry-run` bundles the production environment.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { WRANGLER } from "../../cli/kv.ts";

const run = promisify(execFile);
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" };

describe("build and deploy", () => {
  it("worker-configuration.d.ts matches wrangler.toml (wrangler types --check)", async () => {
    await expect(
      run(process.execPath, [WRANGLER, "types", "--include-runtime=false", "--strict-vars=false", "--check"], { env }),
    ).resolves.toBeDefined();
  });

  it("type-checks the Worker, the CLI and the tests", async () => {
    const tsc = join("node_modules", "typescript", "bin", "tsc");
    await expect(run(process.execPath, [tsc, "-p", "tsconfig.json"], { env })).resolves.toBeDefined();
    await expect(run(process.execPath, [tsc, "-p", "tsconfig.node.json"], { env })).resolves.toBeDefined();
  });

  it("bundles for production with wrangler deploy --dry-run", async () => {
    const outdir = mkdtempSync(join(tmpdir(), "tollgate-dist-"));
    try {
      const { stdout } = await run(process.execPath, [WRANGLER, "deploy", "--dry-run", "--env", "production", "--outdir", outdir], { env });
      expect(stdout).toContain("--dry-run: exiting now.");
      expect(existsSync(join(outdir, "index.js"))).toBe(true);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
