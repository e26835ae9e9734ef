/**
 * `npm start` as a developer runs it: the configuration is checked before anything starts, vars given
 * with --var reach the Worker next to --port, and a `kill -9` of npm start's process group leaves no
 * server behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../cli/kv.ts";
import { freePort } from "../../scripts/dev-server.ts";
import { startStandInIssuer } from "../../scripts/stand-in-issuer.ts";
import { importJWK, SignJWT } from "jose";
import { waitFor } from "./support/wait.ts";

let stateDir: string | undefined;
let npm: ChildProcess | undefined;

/** `npm start -- ARGS` in a process group of its own (as a terminal would run it), on a fresh state directory. */
function npmStart(args: string[]): { child: ChildProcess; output: () => string } {
  stateDir = mkdtempSync(join(tmpdir(), "tollgate-start-"));
  let output = "";
  const child = spawn("npm", ["start", "--", "--persist-to", stateDir, ...args], {
    cwd: PROJECT_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" },
  });
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  npm = child;
  return { child, output: () => output };
}

/** The process group of `pid`: field 5 of /proc/PID/stat, after the parenthesized command name. */
function pgidOf(pid: number | string): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Pids of the processes in process group `pgid` (Linux /proc). */
function groupMembers(pgid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry) && pgidOf(entry) === pgid)
    .map(Number);
}

/** Pids of the processes whose command line names `text` (our unique state directory). */
function processesNaming(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

/** A free port whose successor (npm start's demo origin) is free too. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 65535 && !(await listening(port + 1))) return port;
  }
}

/** The shipped /demo route's shape, at the shipped port: npm start moves it to its --port. */
const DEMO_ROUTE = {
  prefix: "/demo",
  origin: "http://127.0.0.1:8788",
  audience: "http://localhost:8787/demo",
  scopes: ["demo:read"],
  strip_prefix: true,
};

/** An access token for the demo client npm start seeded into this test's state directory. */
async function demoToken(base: string, output: () => string): Promise<string> {
  const demo = JSON.parse(readFileSync(join(stateDir!, "tollgate-demo-client.json"), "utf8")) as {
    client_id: string;
    client_secret: string;
  };
  const tokenRes = await fetch(`${base}/token`, {
    method: "POST",
    headers: {
      Authorization: `Basic ${btoa(`${demo.client_id}:${demo.client_secret}`)}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  });
  expect(tokenRes.status, output()).toBe(200);
  return ((await tokenRes.json()) as { access_token: string }).access_token;
}

afterEach(() => {
  // Whatever happened: every process of this test (npm's group, and wrangler dev's group, found
  // through the state directory its command line names) is killed by pid.
  const pids = new Set<number>();
  if (npm?.pid !== undefined) for (const pid of groupMembers(npm.pid)) pids.add(pid);
  if (stateDir !== undefined) {
    for (const pid of processesNaming(stateDir)) {
      pids.add(pid);
      const pgid = pgidOf(pid);
      if (pgid !== undefined && pgid !== process.pid && pgid !== pgidOf(process.pid))
        for (const member of groupMembers(pgid)) pids.add(member);
    }
  }
  for (const pid of pids) killPid(pid);
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
  npm = undefined;
  stateDir = undefined;
});

describe("npm start", () => {
  it("refuses a protected route without audience at once, printing the Worker's one error, and starts nothing", async () => {
    const port = await freePortPair();
    const { child, output } = npmStart([
      "--port",
      String(port),
      "--var",
      'GATEWAY_ROUTES:[{"prefix":"/x","origin":"https://origin.example"}]',
    ]);
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, output()).not.toBe(0);
    expect(output()).toContain(
      "npm start: GATEWAY_ROUTES[0].audience: is required on a protected route (or set public = true) (GATEWAY_ROUTES from --var)",
    );
    expect(output()).not.toMatch(/^\s+at /m); // no stack trace
    expect(await listening(port)).toBe(false);
  }, 120_000);

  it("serves GATEWAY_ROUTES given with --var next to --port (the /demo route moved to the port), and leaves no server after a kill -9 of its process group", async () => {
    const port = await freePortPair();
    const routes = [DEMO_ROUTE, { prefix: "/open", origin: `http://127.0.0.1:${port + 1}`, public: true }];
    const { child, output } = npmStart(["--port", String(port), "--var", `GATEWAY_ROUTES:${JSON.stringify(routes)}`]);
    await waitFor("npm start to print its banner", 150_000, () => {
      if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${output()}`);
      return output().includes("Tollgate is running on");
    });
    const base = `http://localhost:${port}`;
    // The /demo route, moved with --port to the echo server on port+1, needs a token for the moved audience.
    const access_token = await demoToken(base, output);
    expect((await fetch(`${base}/demo/hello`)).status).toBe(401);
    const proxied = await fetch(`${base}/demo/hello`, { headers: { Authorization: `Bearer ${access_token}` } });
    expect(proxied.status, await proxied.clone().text()).toBe(200);
    expect(((await proxied.json()) as { path: string }).path).toBe("/hello");
    // The /open route exists only in the --var routes: they replaced wrangler.toml's.
    expect((await fetch(`${base}/open/x`)).status).toBe(200);
    expect(output()).toContain(`curl -i ${base}/demo/hello`);

    process.kill(-child.pid!, "SIGKILL");
    await waitFor(`port ${port} to close after kill -9`, 30_000, async () => !(await listening(port)));
    await waitFor("wrangler dev's processes to end", 30_000, () => processesNaming(stateDir!).length === 0);
  }, 240_000); // a cold wrangler dev on a loaded machine, then the generous deadlines above

  it("serves a route that takes an external issuer's tokens next to its own (EXTERNAL_ISSUERS given with --var)", async () => {
    const port = await freePortPair();
    const standIn = await startStandInIssuer();
    try {
      const issuer = `${standIn.url}/good-e2e`;
      const externalIssuers = [{ issuer, algorithms: ["RS256"], token_type: "jwt", scope_claim: "permissions", client_id_claim: "azp" }];
      const routes = [{ ...DEMO_ROUTE, issuers: ["self", issuer] }];
      const { child, output } = npmStart([
        "--port",
        String(port),
        "--var",
        `EXTERNAL_ISSUERS:${JSON.stringify(externalIssuers)}`,
        "--var",
        `GATEWAY_ROUTES:${JSON.stringify(routes)}`,
      ]);
      await waitFor("npm start to print its banner", 150_000, () => {
        if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${output()}`);
        return output().includes("Tollgate is running on");
      });
      const base = `http://localhost:${port}`;
      const sign = async (iss: string) =>
        new SignJWT({ azp: "external-app", permissions: ["demo:read"] })
          .setProtectedHeader({ alg: "RS256", kid: standIn.keys.a.kid, typ: "JWT" })
          .setIssuer(iss)
          .setAudience(`${base}/demo`)
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(await importJWK({ ...standIn.keys.a, alg: "RS256" }, "RS256"));
      const proxied = await fetch(`${base}/demo/hello`, { headers: { Authorization: `Bearer ${await sign(issuer)}` } });
      expect(proxied.status, `${await proxied.clone().text()}\n${output()}`).toBe(200);
      const seen = (await proxied.json()) as { headers: Record<string, string> };
      expect(seen.headers["x-tollgate-issuer"]).toBe(issuer);
      expect(seen.headers["x-tollgate-client-id"]).toBe("external-app");
      // Tollgate's own demo token on the same route.
      const own = await fetch(`${base}/demo/hello`, { headers: { Authorization: `Bearer ${await demoToken(base, output)}` } });
      expect(own.status).toBe(200);
      expect(((await own.json()) as { headers: Record<string, string> }).headers["x-tollgate-issuer"]).toBe(base);
      // The same key under an issuer the route does not list: refused, and never fetched.
      const unlisted = await fetch(`${base}/demo/hello`, {
        headers: { Authorization: `Bearer ${await sign(`${standIn.url}/good-other`)}` },
      });
      expect(unlisted.status).toBe(401);
      expect(standIn.log.filter((path) => path.startsWith("/good-other"))).toEqual([]);
      process.kill(-child.pid!, "SIGKILL");
      await waitFor(`port ${port} to close after kill -9`, 30_000, async () => !(await listening(port)));
    } finally {
      await standIn.close();
    }
  }, 240_000);
});
