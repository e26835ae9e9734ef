/**
 * Runs the production bundle (`wrangler deploy --dry-run`) in workerd itself, with no dev tooling
 * in front: wrangler dev and Miniflare add several milliseconds per request here (a hello-world
 * Worker does ~130 sequential requests/s under them, ~1,600 in plain workerd), which would hide
 * everything Tollgate does. KV is an in-memory service in a second workerd process speaking the KV
 * binding's protocol over loopback HTTP, seeded with the given records.
 */
import { execFile, spawn } from "node:child_process";
import { randomUUID, sign, type KeyObject } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { PROJECT_ROOT, WRANGLER } from "../cli/kv.ts";
import { freePort } from "../scripts/dev-server.ts";

const run = promisify(execFile);
/** How long workerd and the KV process may take to answer after their start. */
const START_DEADLINE_MS = 60_000;
const WORKERD = join(PROJECT_ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

const KV_SERVICE = `
import data from "data.json";
const store = new Map(Object.entries(JSON.parse(data)));
export default {
  async fetch(request) {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (request.method !== "GET") return new Response("read-only", { status: 405 });
    const value = store.get(key);
    return value === undefined ? new Response(null, { status: 404 }) : new Response(value);
  },
};
`;

/** RFC 6749 §2.3.1 Basic client credentials: id and secret form-encoded, then base64. */
export function basicAuth(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64")}`;
}

/** A client-credentials token request, in the shape both fetch (as init) and autocannon take. */
export function tokenRequest(url: string, clientId: string, clientSecret: string, body = "grant_type=client_credentials") {
  return {
    url,
    method: "POST" as const,
    headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: basicAuth(clientId, clientSecret) },
    body,
  };
}

/**
 * A client assertion (RFC 7523 §3) signed ES256 with node:crypto alone (no JOSE library in the
 * measured client): iss and sub `clientId`, aud `audience`, valid `lifetime` seconds from now, a
 * fresh jti; the header names `kid` and, when given, `typ`.
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-3
 */
export function signAssertion(
  key: KeyObject,
  header: { kid: string; typ?: string },
  claims: { clientId: string; audience: string; lifetime: number },
): string {
  const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");
  const iat = Math.floor(Date.now() / 1000);
  const { clientId, audience, lifetime } = claims;
  const input = `${b64url(JSON.stringify({ alg: "ES256", ...header }))}.${b64url(
    JSON.stringify({ iss: clientId, sub: clientId, aud: audience, iat, exp: iat + lifetime, jti: randomUUID() }),
  )}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }))}`;
}

export interface RawWorkerd {
  url: string;
  /** With `options.secondInstance`: a second Worker of the same bundle, an isolate of its own, sharing KV and the JtiGuard namespace (as another location does). */
  secondUrl?: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startRawWorkerd(
  dir: string,
  vars: Record<string, string>,
  kv: Record<string, string>,
  options: { inspectorPort?: number; cpu?: number; secondInstance?: boolean } = {},
): Promise<RawWorkerd> {
  const dist = join(dir, "dist");
  mkdirSync(dist, { recursive: true });
  await run(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", dist], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  writeFileSync(join(dir, "kv.js"), KV_SERVICE);
  mkdirSync(join(dir, "do"), { recursive: true });
  writeFileSync(join(dir, "data.json"), JSON.stringify(kv));
  const bindings: string[] = [
    '(name = "CLIENTS", kvNamespace = "kv")',
    // private_key_jwt's jti guard (wrangler.toml JTI_GUARD): a SQLite Durable Object in this process.
    '(name = "JTI_GUARD", durableObjectNamespace = "JtiGuard")',
  ];
  for (const [name, value] of Object.entries(vars)) {
    writeFileSync(join(dir, `var-${name}.txt`), value);
    bindings.push(`(name = "${name}", text = embed "var-${name}.txt")`);
  }
  const port = await freePort();
  const secondPort = await freePort();
  // The second instance reaches the first's Durable Object namespace, not one of its own.
  const secondBindings = bindings.map((b) =>
    b.includes('"JTI_GUARD"') ? '(name = "JTI_GUARD", durableObjectNamespace = (className = "JtiGuard", serviceName = "main"))' : b,
  );
  const second = options.secondInstance
    ? {
        service: '    (name = "second", worker = .second),\n',
        socket: `, (name = "second", address = "127.0.0.1:${secondPort}", http = (), service = "second")`,
        worker: `const second :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "dist/index.js") ],
  compatibilityDate = "2026-11-01",
  bindings = [ ${secondBindings.join(",\n    ")} ],
  globalOutbound = "internet",
);
`,
      }
    : { service: "", socket: "", worker: "" };
  const kvPort = await freePort();
  // KV runs in a workerd process of its own, reached over loopback HTTP, so the Worker's process
  // pays what a network KV read costs it (a subrequest), not the store's own work.
  writeFileSync(
    join(dir, "kv.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "kv", worker = .kv) ],
  sockets = [ (name = "http", address = "127.0.0.1:${kvPort}", http = (), service = "kv") ],
);
const kv :Workerd.Worker = (
  modules = [ (name = "kv.js", esModule = embed "kv.js"), (name = "data.json", text = embed "data.json") ],
  compatibilityDate = "2026-11-01",
);
`,
  );
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .tollgate),
${second.service}    (name = "kv", external = (address = "127.0.0.1:${kvPort}", http = ())),
    (name = "internet", network = (allow = ["public", "private", "local"])),
    (name = "do-disk", disk = (path = "${join(dir, "do")}", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main")${second.socket} ],
);
${second.worker}const tollgate :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "dist/index.js") ],
  compatibilityDate = "2026-11-01",
  bindings = [ ${bindings.join(",\n    ")} ],
  durableObjectNamespaces = [ (className = "JtiGuard", uniqueKey = "tollgate-jti-guard", enableSql = true) ],
  durableObjectStorage = (localDisk = "do-disk"),
  globalOutbound = "internet",
);
`,
  );
  const kvChild = spawn(WORKERD, ["serve", join(dir, "kv.capnp")], { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  const inspector = options.inspectorPort ? ["--inspector-addr", `127.0.0.1:${options.inspectorPort}`] : [];
  const command = [WORKERD, "serve", join(dir, "config.capnp"), ...inspector];
  // taskset execs workerd in its own place: the pid is workerd's.
  if (options.cpu !== undefined) command.unshift("taskset", "-c", String(options.cpu));
  const child = spawn(command[0]!, command.slice(1), { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  const stop = async () => {
    for (const pid of [child.pid, kvChild.pid]) {
      try {
        process.kill(-pid!, "SIGKILL");
      } catch {
        // gone
      }
    }
  };
  process.once("exit", () => void stop());
  const url = `http://127.0.0.1:${port}`;
  const secondUrl = options.secondInstance ? `http://127.0.0.1:${secondPort}` : undefined;
  // Ready when every listener answers: the Worker's JWKS (both instances') needs no KV, so the KV
  // process is asked too (a missing key is its 404); a request that reads KV before it listens would
  // be a 503. A deadline, not a count of tries: a busy machine starts workerd slowly.
  const ready = async () =>
    (await fetch(`${url}/.well-known/jwks.json`)).ok &&
    (secondUrl === undefined || (await fetch(`${secondUrl}/.well-known/jwks.json`)).ok) &&
    (await fetch(`http://127.0.0.1:${kvPort}/ready`)).status === 404;
  const deadline = Date.now() + START_DEADLINE_MS;
  while (Date.now() < deadline) {
    try {
      if (await ready()) return { url, secondUrl, pid: child.pid!, stop };
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`workerd did not start within ${START_DEADLINE_MS / 1000} s`);
}
