/**
 * `node bench/pbkdf2.ts [--samples 200] [--counts 1,10000,25000,50000,100000]`: the CPU one
 * PBKDF2-HMAC-SHA256 verification costs per iteration count, in
 * workerd (the runtime Workers bill) and in Node (the CLI). workerd's clock does not advance while a
 * request computes, so its figure is the process's CPU time (/proc) over sequential requests that
 * each derive once, minus a 1-iteration baseline request's. docs/benchmarks.md, "PBKDF2 cost".
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../cli/kv.ts";
import { freePort } from "../scripts/dev-server.ts";

const { values } = parseArgs({
  options: { samples: { type: "string", default: "200" }, counts: { type: "string", default: "1,10000,25000,50000,100000" } },
});
const samples = Number(values.samples);
const counts = values.counts.split(",").map(Number);

const WORKER = `
export default {
  async fetch(request) {
    const iterations = Number(new URL(request.url).searchParams.get("iterations"));
    const key = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(48)), "PBKDF2", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(16), iterations }, key, 256);
    return new Response(String(bits.byteLength));
  },
};
`;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime (fields 14 and 15 of stat, 12 and 13 after the command), in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function workerdCosts(): Promise<Map<number, number>> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-pbkdf2-"));
  const port = await freePort();
  writeFileSync(join(dir, "worker.js"), WORKER);
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = (modules = [ (name = "worker.js", esModule = embed "worker.js") ], compatibilityDate = "2026-11-01")) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
`,
  );
  const workerd = spawn(join(PROJECT_ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd"), ["serve", join(dir, "config.capnp")], {
    detached: true,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const stop = () => {
    try {
      process.kill(-workerd.pid!, "SIGKILL");
    } catch {
      // gone
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stop);
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}?iterations=1`)).ok) break;
    } catch {
      if (i > 100) throw new Error("workerd did not start");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const perRequest = new Map<number, number>();
  for (const iterations of counts) {
    const before = cpuMs(workerd.pid!);
    for (let i = 0; i < samples; i++) await (await fetch(`${url}?iterations=${iterations}`)).text();
    perRequest.set(iterations, (cpuMs(workerd.pid!) - before) / samples);
  }
  stop();
  const baseline = perRequest.get(1) ?? 0;
  return new Map([...perRequest].map(([n, ms]) => [n, Math.max(0, ms - baseline)]));
}

async function nodeCost(iterations: number): Promise<number> {
  const key = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(48)), "PBKDF2", false, ["deriveBits"]);
  const runs = Math.max(5, Math.min(samples, Math.floor(2_000_000 / iterations)));
  const start = performance.now();
  for (let i = 0; i < runs; i++)
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(16), iterations }, key, 256);
  return (performance.now() - start) / runs;
}

const inWorkerd = await workerdCosts();
console.log(`PBKDF2-HMAC-SHA256, 32-byte output, ${samples} sequential derivations per count; Node ${process.version}`);
console.log("| iterations | workerd CPU ms | Node ms |");
console.log("|---:|---:|---:|");
for (const iterations of counts.filter((n) => n > 1)) {
  console.log(
    `| ${iterations.toLocaleString("en")} | ${inWorkerd.get(iterations)!.toFixed(2)} | ${(await nodeCost(iterations)).toFixed(2)} |`,
  );
}
process.exit(0);
