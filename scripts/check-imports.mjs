#!/usr/bin/env node
// The dependency rule of docs/architecture.md, checked on every `npm test`:
// - no import cycle between units: a unit is a folder under src/ (src/clients/, src/tokens/, ...) or
//   a file at src/'s top (src/index.ts, src/config.ts, src/policy.ts), and cli/, scripts/, bench/;
// - a domain module (not src/endpoints/, not src/http/, not src/index.ts) imports neither hono nor
//   src/endpoints/;
// - nothing in src/ imports cli/, scripts/ or bench/.
// Exits 1 with one line per violation. An argument names another repository root (the tests' fixtures).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), ".."));
const HTTP_UNITS = new Set(["src/endpoints", "src/http", "src/index.ts"]);

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) yield* walk(full);
    else if (/\.(ts|mjs)$/.test(name) && !name.endsWith(".d.ts")) yield full;
  }
}

/** The unit a repository-relative file belongs to. */
function unitOf(file) {
  const parts = file.split("/");
  if (parts[0] !== "src") return parts[0];
  return parts.length === 2 ? file : `src/${parts[1]}`;
}

/** Every module specifier a file imports or re-exports (static and dynamic, type-only included). */
function specifiersOf(text) {
  const found = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"']+)\1/g;
  for (const match of text.matchAll(pattern)) found.push(match[2]);
  return found;
}

const problems = [];
const edges = new Map(); // unit -> Map(unit -> example "file -> file")
for (const top of ["src", "cli", "scripts", "bench"]) {
  if (!existsSync(path.join(root, top))) continue;
  for (const full of walk(path.join(root, top))) {
    const file = path.relative(root, full);
    const from = unitOf(file);
    const domain = from.startsWith("src/") && !HTTP_UNITS.has(from);
    for (const spec of specifiersOf(readFileSync(full, "utf8"))) {
      if (domain && (spec === "hono" || spec.startsWith("hono/"))) problems.push(`${file}: a domain module imports ${spec}`);
      if (!spec.startsWith(".")) continue;
      const target = path.relative(root, path.resolve(path.dirname(full), spec));
      const to = unitOf(target);
      if (domain && to === "src/endpoints") problems.push(`${file}: a domain module imports an endpoint (${target})`);
      if (from.startsWith("src") && !to.startsWith("src")) problems.push(`${file}: src/ imports ${target}`);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      if (!edges.get(from).has(to)) edges.get(from).set(to, `${file} -> ${target}`);
    }
  }
}

// Cycles: a depth-first search; each back edge closes one cycle, reported with its path.
const state = new Map();
const stack = [];
function visit(unit) {
  state.set(unit, "open");
  stack.push(unit);
  for (const [next, example] of edges.get(unit) ?? []) {
    if (state.get(next) === "open") {
      const cycle = [...stack.slice(stack.indexOf(next)), next];
      problems.push(`import cycle: ${cycle.join(" -> ")} (closed by ${example})`);
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(unit, "done");
}
for (const unit of [...edges.keys()].sort()) if (!state.has(unit)) visit(unit);

if (problems.length > 0) {
  for (const problem of problems) console.error(`check-imports: ${problem}`);
  process.exit(1);
}
console.log(`check-imports: ${edges.size} units, no folder-level import cycle, no domain module importing hono or an endpoint`);
