// scripts/check-imports.mjs, the dependency rule `npm test` checks first (docs/architecture.md):
// it passes on this repository and fails on each kind of violation.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const script = path.resolve(import.meta.dirname, "../../scripts/check-imports.mjs");
const roots: string[] = [];

function check(root?: string): { status: number | null; output: string } {
  const run = spawnSync(process.execPath, root ? [script, root] : [script], { encoding: "utf8" });
  return { status: run.status, output: run.stdout + run.stderr };
}

/** A repository of the given files (path → text). */
function fixture(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), "tollgate-imports-"));
  roots.push(root);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  return root;
}

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe("scripts/check-imports.mjs", () => {
  it("passes on this repository", () => {
    const { status, output } = check();
    expect(output).toContain("no folder-level import cycle");
    expect(status).toBe(0);
  });

  it("fails on a cycle between two folders, even through a type-only import", () => {
    const root = fixture({
      "src/a/one.ts": 'import { two } from "../b/two.ts";\nexport const one = two;\n',
      "src/b/two.ts": 'import type { Three } from "../a/three.ts";\nexport const two = 2;\n',
      "src/a/three.ts": "export type Three = 3;\n",
    });
    const { status, output } = check(root);
    expect(output).toContain("import cycle: src/a -> src/b -> src/a");
    expect(status).toBe(1);
  });

  it("fails on a cycle through a file at src/'s top", () => {
    const root = fixture({
      "src/config.ts": 'import { rule } from "./clients/rule.ts";\nexport const config = rule;\n',
      "src/clients/rule.ts": 'import { config } from "../config.ts";\nexport const rule = 1;\nexport const again = config;\n',
    });
    const { status, output } = check(root);
    expect(output).toContain("import cycle");
    expect(status).toBe(1);
  });

  it("fails on a domain module importing hono or an endpoint, and on src/ importing cli/", () => {
    const root = fixture({
      "src/endpoints/token.ts": 'import { Hono } from "hono";\nexport const token = new Hono();\n',
      "src/tokens/mint.ts": 'import { Hono } from "hono";\nimport { token } from "../endpoints/token.ts";\nexport { Hono, token };\n',
      "src/keys/cli-use.ts": 'import { x } from "../../cli/x.ts";\nexport { x };\n',
      "cli/x.ts": "export const x = 1;\n",
    });
    const { status, output } = check(root);
    expect(output).toContain("src/tokens/mint.ts: a domain module imports hono");
    expect(output).toContain("src/tokens/mint.ts: a domain module imports an endpoint");
    expect(output).toContain("src/keys/cli-use.ts: src/ imports cli/x.ts");
    expect(status).toBe(1);
  });

  it("allows endpoints to import hono and the domain", () => {
    const root = fixture({
      "src/index.ts":
        'import { Hono } from "hono";\nimport { token } from "./endpoints/token.ts";\nexport default new Hono().route("/token", token);\n',
      "src/endpoints/token.ts":
        'import { Hono } from "hono";\nimport { mint } from "../tokens/mint.ts";\nexport const token = new Hono();\nexport { mint };\n',
      "src/tokens/mint.ts": "export const mint = 1;\n",
    });
    expect(check(root).status).toBe(0);
  });
});
