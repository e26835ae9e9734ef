/**
 * Starts the Worker with `wrangler dev` in its own process group, waits until it answers, and stops
 * it by killing the whole group (wrangler can ignore SIGTERM, and workerd is its child). The group
 * is led by scripts/lifeline.ts, which kills it when this process dies, even by SIGKILL.
 * Used by `npm start`, the end-to-end tests and the benchmarks.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { PROJECT_ROOT, WRANGLER } from "../cli/kv.ts";

const LIFELINE = join(PROJECT_ROOT, "scripts", "lifeline.ts");

export interface WorkerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface StartOptions {
  port?: number;
  persistTo: string;
  /** Extra vars (`--var NAME:VALUE`), e.g. ISSUER, SIGNING_KEY for tests. */
  vars?: Record<string, string>;
  extraArgs?: string[];
  /** "inherit" shows wrangler's output (npm start); "pipe" keeps it for error messages (tests). */
  stdio?: "inherit" | "pipe";
  readyTimeoutMs?: number;
}

/** A TCP port nobody is listening on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export async function startWorker(options: StartOptions): Promise<WorkerProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://localhost:${port}`;
  const vars = { ISSUER: url, DEFAULT_AUDIENCE: `${url}/demo`, ...options.vars };
  const args = [
    WRANGLER,
    "dev",
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--persist-to",
    options.persistTo,
    "--inspector-port",
    "0",
    "--show-interactive-dev-session=false",
  ];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, [LIFELINE, process.execPath, ...args], {
    cwd: PROJECT_ROOT,
    detached: true, // its own process group, so stop() reaches workerd too
    // stdin is the lifeline: it closes when this process dies, and the lifeline then kills the group.
    stdio: options.stdio === "inherit" ? ["pipe", "inherit", "inherit"] : ["pipe", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", FORCE_COLOR: "0" },
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      child.stdin?.destroy();
      resolve();
    }),
  );
  // If this process dies first, take the group with it.
  const onExit = () => killGroup(child, "SIGKILL");
  process.once("exit", onExit);

  const stop = async () => {
    process.removeListener("exit", onExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    killGroup(child, "SIGTERM");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
    killGroup(child, "SIGKILL"); // workerd may outlive wrangler
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer on ${url} in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, port, child, stop };
}
