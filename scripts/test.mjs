#!/usr/bin/env node
// `npm test`: the dependency rule (scripts/check-imports.mjs) and the format and lint check (Biome,
// biome.json; `npm run fmt` fixes what it can), then the whole suite (workerd and end-to-end), then
// one plain summary line for CI. Each of the two checks counts as one test.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const imports = spawnSync(process.execPath, [new URL("./check-imports.mjs", import.meta.url).pathname], { stdio: "inherit" });
const importsOK = imports.status === 0;
if (!importsOK) console.error("npm test: the import check failed (see above; docs/architecture.md, the dependency rule)");
const lint = spawnSync("biome", ["check", "."], { stdio: "inherit" });
const lintOK = lint.status === 0;
if (!lintOK) console.error("npm test: the format and lint check failed (see above; `npm run fmt` fixes formatting)");

const results = ".vitest-results.json";
rmSync(results, { force: true });
const run = spawnSync(
  "vitest",
  ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${results}`, ...process.argv.slice(2)],
  { stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" } },
);
let passed = 0;
let failed = 0;
try {
  const report = JSON.parse(readFileSync(results, "utf8"));
  passed = report.numPassedTests;
  // A file that failed to load or in a hook has no failed test of its own: count it once.
  const brokenFiles = report.testResults.filter(
    (f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed"),
  ).length;
  failed = report.numFailedTests + brokenFiles;
} catch {
  failed = 1; // no report: the run itself broke
}
for (const ok of [importsOK, lintOK]) {
  if (ok) passed += 1;
  else failed += 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
