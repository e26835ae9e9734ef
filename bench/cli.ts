/**
 * `node bench/cli.ts [--runs 5]`: how long each local `tollgate` command takes, as an operator runs
 * it (`node cli/tollgate.ts …`, a new process each time) on a scratch local state with three clients,
 * both ways the CLI reaches that state: in place (cli/kv-files.ts) and through Miniflare (forced by
 * turning node:sqlite off, `--no-experimental-sqlite`, as on a Node without it). Every command runs
 * `runs` times each way, interleaved with the others, and the table has the medians of wall time and
 * of CPU time (user + system of the command and its children, from /proc). docs/benchmarks.md, "CLI".
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../cli/config.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const runs = Number(values.runs);

const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-cli-"));
const state = join(dir, "state");

/** Clock ticks of the children this process has waited for (utime + stime of those, /proc/self/stat fields 16 and 17). */
function childTicks(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return Number(fields[13]) + Number(fields[14]);
}

interface Sample {
  wallMs: number;
  cpuMs: number;
  code: number | null;
}

type Way = "in place" | "Miniflare";
const WAYS: Way[] = ["Miniflare", "in place"];

function tollgate(args: string[], way: Way = "in place"): Promise<Sample> {
  const ticks = childTicks();
  const start = performance.now();
  const env = way === "Miniflare" ? { ...process.env, NODE_OPTIONS: "--no-experimental-sqlite" } : process.env;
  const child = spawn(process.execPath, ["cli/tollgate.ts", ...args, "--persist-to", state], { cwd: PROJECT_ROOT, stdio: "ignore", env });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => resolve({ wallMs: performance.now() - start, cpuMs: (childTicks() - ticks) * 10, code }));
  });
}

let serial = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++serial}`;

/** Each case: a label and the arguments of one run (called anew per run: creates need new ids). */
const CASES: { label: string; args: () => string[]; expectCode?: number }[] = [
  { label: '`clients create ID --scope "a b"`', args: () => ["clients", "create", unique("new"), "--scope", "a b"] },
  { label: "`clients create c1` again (duplicate id: one read)", args: () => ["clients", "create", "c1", "--scope", "a"], expectCode: 1 },
  {
    label: "`clients create ID --audience bad` (refused before storage)",
    args: () => ["clients", "create", unique("bad"), "--scope", "a", "--audience", "bad"],
    expectCode: 2,
  },
  { label: "`clients list` (3 clients, plus those the runs create)", args: () => ["clients", "list"] },
  { label: "`clients show c1`", args: () => ["clients", "show", "c1"] },
  { label: "`clients rotate-secret c1`", args: () => ["clients", "rotate-secret", "c1"] },
  { label: "`clients disable c2`", args: () => ["clients", "disable", "c2"] },
  { label: "`keys rotate --in 0 --force`", args: () => ["keys", "rotate", "--in", "0", "--force"] },
  {
    label: "`apply -f clients.toml` (2 new clients)",
    args: () => {
      const file = join(dir, `${unique("apply")}.toml`);
      const [a, b] = [unique("applied"), unique("applied")];
      writeFileSync(file, `[clients.${a}]\nallowed_scopes = ["a"]\n\n[clients.${b}]\nallowed_scopes = ["b"]\n`);
      return ["apply", "-f", file];
    },
  },
  { label: "`export`", args: () => ["export"] },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  for (const id of ["c1", "c2", "c3"]) {
    const setup = await tollgate(["clients", "create", id, "--scope", "a b"]);
    if (setup.code !== 0) throw new Error(`creating ${id} exited ${setup.code}`);
  }
  const samples = new Map(WAYS.map((way) => [way, CASES.map(() => [] as Sample[])]));
  for (let round = 0; round < runs; round++)
    for (const [i, c] of CASES.entries())
      for (const way of WAYS) {
        const sample = await tollgate(c.args(), way);
        if (sample.code !== (c.expectCode ?? 0)) throw new Error(`${c.label} (${way}) exited ${sample.code}`);
        samples.get(way)![i]!.push(sample);
      }
  const cells = (xs: Sample[]) =>
    `${(median(xs.map((s) => s.wallMs)) / 1000).toFixed(2)} | ${(median(xs.map((s) => s.cpuMs)) / 1000).toFixed(2)}`;
  console.log(`| command | ${WAYS.map((w) => `${w}: wall s | ${w}: CPU s`).join(" | ")} |`);
  console.log(`|---|${WAYS.map(() => "---:|---:").join("|")}|`);
  for (const [i, c] of CASES.entries()) console.log(`| ${c.label} | ${WAYS.map((w) => cells(samples.get(w)![i]!)).join(" | ")} |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
