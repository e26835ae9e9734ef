#!/usr/bin/env node
/**
 * `node bench/cold-keys.ts [--processes 10] [--keys seed|static]`: the CPU a new isolate's first
 * requests cost with `KEY_SEED` (keys derived on first use) or a static `SIGNING_KEY`. Runs the
 * production bundle in plain workerd (bench/workerd.ts), one fresh process per sample, reads its
 * CPU time from /proc/<pid>/task/<tid>/schedstat (nanoseconds, all threads) around each request:
 * first a metadata request (no key; it pays workerd starting to serve), then the first
 * `GET /.well-known/jwks.json` or the first `POST /token` (separate processes), then a repeat of
 * the same request. docs/benchmarks.md, "KEY_SEED on a new isolate".
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../cli/kv.ts";
import { createClientRecord } from "../src/clients/manage.ts";
import { clientKey } from "../src/clients/record.ts";
import { generateKeySeed, generateSigningKey } from "../src/keys/new-key-pair.ts";
import { startRawWorkerd, tokenRequest } from "./workerd.ts";

const { values } = parseArgs({ options: { processes: { type: "string", default: "10" }, keys: { type: "string", default: "seed" } } });
const WORKERD = join(PROJECT_ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");
const AUDIENCE = "https://api.bench.test";

/** CPU time of every live thread of the process, in milliseconds. */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended
    }
  }
  return ns / 1e6;
}

const stateDir = mkdtempSync(join(tmpdir(), "tollgate-cold-keys-"));
const now = Math.floor(Date.now() / 1000);
const client = await createClientRecord("bench-cold", { scope: "bench:read", audiences: [AUDIENCE], token_ttl: 3600 }, now);
const keys: Record<string, string> =
  values.keys === "static" ? { SIGNING_KEY: JSON.stringify(await generateSigningKey()) } : { KEY_SEED: generateKeySeed() };
// Builds the bundle, writes the configs and starts the KV process; its own Worker process is
// replaced by fresh ones below (it has served a JWKS already).
const built = await startRawWorkerd(
  stateDir,
  { ISSUER: "http://localhost:8787", DEFAULT_AUDIENCE: AUDIENCE, ...keys },
  { [clientKey("bench-cold")]: JSON.stringify(client.record) },
);
process.kill(-built.pid, "SIGKILL");
const { url } = built;

async function fresh(): Promise<{ pid: number; stop: () => void }> {
  const child = spawn(WORKERD, ["serve", join(stateDir, "config.capnp")], { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  const stop = () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  };
  for (let i = 0; i < 200; i++) {
    try {
      // A TCP connection and no request, so that the first request measured is the isolate's first.
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(new URL(url).port), "127.0.0.1", () => {
          socket.end();
          resolve();
        }).once("error", reject);
      });
      return { pid: child.pid!, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  stop();
  throw new Error("workerd did not start");
}

async function measure(pid: number, request: () => Promise<Response>): Promise<number> {
  const before = cpuMs(pid);
  const response = await request();
  await response.arrayBuffer();
  const spent = cpuMs(pid) - before;
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return spent;
}

const metadata = () => fetch(`${url}/.well-known/oauth-authorization-server`);
const jwks = () => fetch(`${url}/.well-known/jwks.json`);
const token = () => {
  const request = tokenRequest(`${url}/token`, "bench-cold", client.clientSecret);
  return fetch(request.url, request);
};
const rows: Record<string, number[]> = {};
const record = (name: string, ms: number) => (rows[name] ??= []).push(ms);
try {
  for (let i = 0; i < Number(values.processes); i++) {
    for (const [name, first] of [
      ["jwks", jwks],
      ["token", token],
    ] as const) {
      await new Promise((r) => setTimeout(r, 200)); // the port of the process before is free again
      const worker = await fresh();
      try {
        record("first request (metadata: loads the Worker, no key)", await measure(worker.pid, metadata));
        record(`first ${name}`, await measure(worker.pid, first));
        record(`second ${name}`, await measure(worker.pid, first));
        record("metadata, warm", await measure(worker.pid, metadata));
      } finally {
        worker.stop();
      }
    }
  }
} finally {
  await built.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
const median = (list: number[]) => {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};
console.log(
  `${values.keys === "static" ? "SIGNING_KEY" : "KEY_SEED"}, ${values.processes} fresh workerd processes per request kind; whole-process CPU ms`,
);
console.log("| request | median | min | max |");
console.log("|---|---:|---:|---:|");
for (const [name, list] of Object.entries(rows)) {
  console.log(`| ${name} | ${median(list).toFixed(2)} | ${Math.min(...list).toFixed(2)} | ${Math.max(...list).toFixed(2)} |`);
}
process.exit(0);
