#!/usr/bin/env node
/**
 * `npm run bench [-- --duration 10 --connections 10]`: Tollgate in workerd (wrangler dev) and its
 * peer node-oidc-provider, driven by autocannon on loopback in one run. Prints a table, writes
 * bench/results/latest.json. Cases: /token warm and cold, /token with a private_key_jwt assertion,
 * gateway protected vs passthrough vs the origin directly, the gateway with an external issuer's
 * token (a loopback stand-in issuer, its keys cached), the peer's token endpoint, and the DPoP twins
 * of warm /token and the protected gateway (token_dpop, gateway_dpop: a fresh proof per request,
 * signed here). CPU per request is read from /proc.
 */
import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { PROJECT_ROOT } from "../cli/kv.ts";
import { createClientRecord, createKeyClientRecord } from "../src/clients/manage.ts";
import { clientKey, validateClientRecord } from "../src/clients/record.ts";
import { generateSigningKey } from "../src/keys/new-key-pair.ts";
import { freePort } from "../scripts/dev-server.ts";
import { startEchoOrigin } from "../scripts/echo-origin.ts";
import { startStandInIssuer } from "../scripts/stand-in-issuer.ts";
import { importJWK, SignJWT } from "jose";
import { basicAuth, signAssertion, startRawWorkerd, tokenRequest } from "./workerd.ts";
import { dpopKey, proofPool, signProof, type ProofPool } from "./dpop-proofs.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "3" },
    rounds: { type: "string", default: "10" },
    connections: { type: "string", default: "10" },
    "cold-clients": { type: "string", default: "5000" },
    cases: { type: "string" },
    "no-pin": { type: "boolean", default: false },
  },
});
const only = values.cases?.split(",");
/**
 * With 2 CPUs or more, the servers under test (Tollgate's workerd, node-oidc-provider) run on CPU 1
 * and this process (autocannon, the echo origin) and the KV stand-in on CPU 0: each server gets the
 * same one core, and none competes with the load generator. `--no-pin` leaves scheduling to Linux.
 */
const pin = !values["no-pin"] && cpus().length >= 2 && spawnSync("taskset", ["-p", "-c", "0", String(process.pid)]).status === 0;
const SERVER_CPU = pin ? 1 : undefined;
const onServerCpu = (command: string[]) => (SERVER_CPU === undefined ? command : ["taskset", "-c", String(SERVER_CPU), ...command]);
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const coldClients = Number(values["cold-clients"]);
const AUDIENCE = "https://api.bench.test";

/** CPU seconds (user + system) used so far by the given pids. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
    } catch {
      // gone
    }
  }
  return ticks / 100; // USER_HZ
}

interface CaseResult {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  errors: number;
  cpuMsPerRequest: number | null;
  /** Each round's req/s and CPU ms per request, in round order (for paired ratios). */
  perRound: { rps: number; cpuMsPerRequest: number | null }[];
}

interface Case {
  name: string;
  opts: autocannon.Options;
  cpuPids: number[];
  /** Runs before the warm-up and before each round, outside the measured time. */
  prepare?: () => void;
}

/** The answer to a case's base request (without its per-request setup), for a round that was refused. */
async function sendOnce(opts: autocannon.Options): Promise<string> {
  try {
    const res = await fetch(opts.url, {
      method: opts.method ?? "GET",
      headers: opts.headers as Record<string, string>,
      body: opts.body as string,
    });
    const challenge = res.headers.get("WWW-Authenticate");
    return `${res.status}${challenge ? ` WWW-Authenticate: ${challenge}` : ""} ${(await res.text()).slice(0, 300)}`;
  } catch (error) {
    return `no answer: ${(error as Error).message}`;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Runs every case `rounds` times, interleaved, so a burst of load elsewhere on the machine hits all
 * cases alike; reports the median of each figure.
 */
async function benchAll(allCases: Case[]): Promise<CaseResult[]> {
  const cases = only ? allCases.filter((c) => only.includes(c.name)) : allCases;
  const runs = new Map<string, CaseResult[]>(cases.map((c) => [c.name, []]));
  for (const c of cases) {
    c.prepare?.();
    await autocannon({ ...c.opts, connections, duration: 2 }); // warm-up: JIT, isolate, caches
  }
  for (let round = 1; round <= rounds; round++) {
    for (const c of cases) {
      c.prepare?.();
      const cpu0 = cpuSeconds(c.cpuPids);
      const r = await autocannon({ ...c.opts, connections, duration });
      const cpu1 = cpuSeconds(c.cpuPids);
      const total = r.requests.total;
      runs.get(c.name)!.push({
        name: c.name,
        rps: r.requests.average,
        p50: r.latency.p50,
        p99: r.latency.p99,
        total,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
        cpuMsPerRequest: c.cpuPids.length && total ? ((cpu1 - cpu0) * 1000) / total : null,
        perRound: [],
      });
      // A refusal is a finding, not a figure: say which statuses came back.
      const statuses = r.non2xx > 0 ? ` (non-2xx: ${JSON.stringify(r.statusCodeStats)})` : "";
      console.log(`  round ${round} ${c.name}: ${Math.round(r.requests.average)} req/s, p99 ${r.latency.p99} ms${statuses}`);
      if (r.non2xx > 0) console.log(`    the case's request sent once more: ${await sendOnce(c.opts)}`);
    }
  }
  return cases.map(({ name }) => {
    const rs = runs.get(name)!;
    const cpu = rs.every((r) => r.cpuMsPerRequest !== null) ? Number(median(rs.map((r) => r.cpuMsPerRequest!)).toFixed(3)) : null;
    return {
      name,
      rps: Math.round(median(rs.map((r) => r.rps))),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      total: rs.reduce((n, r) => n + r.total, 0),
      non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      cpuMsPerRequest: cpu,
      perRound: rs.map((r) => ({ rps: r.rps, cpuMsPerRequest: r.cpuMsPerRequest })),
    };
  });
}

const stateDir = mkdtempSync(join(tmpdir(), "tollgate-bench-"));
const origin = await startEchoOrigin();
const peerPort = await freePort();
const peerSecret = "peer-bench-secret-0123456789abcdef";
const [peerCommand, ...peerArgs] = onServerCpu([
  process.execPath,
  join(PROJECT_ROOT, "bench/peer-oidc-provider.ts"),
  String(peerPort),
  "bench-peer",
  peerSecret,
]);
const peer = spawn(peerCommand!, peerArgs, { detached: true, stdio: ["ignore", "pipe", "inherit"] });
const stopPeer = () => {
  try {
    process.kill(-peer.pid!, "SIGKILL");
  } catch {
    // gone
  }
};
process.once("exit", stopPeer);
await new Promise<void>((resolve) => peer.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()));

// Clients: one warm, many cold ones sharing a hash (the Worker cannot know, so each pays PBKDF2).
const now = Math.floor(Date.now() / 1000);
const warm = await createClientRecord("bench-warm", { scope: "bench:read", audiences: [AUDIENCE], token_ttl: 3600 }, now);
const cold = await createClientRecord("bench-cold", { scope: "bench:read", audiences: [AUDIENCE] }, now);
const kv: Record<string, string> = { [clientKey("bench-warm")]: JSON.stringify(warm.record) };
// private_key_jwt clients sharing one ES256 key, taken in turn: each request a fresh assertion (a new
// jti: one verify and one JtiGuard round trip), several clients so one client's one-check-at-a-time
// turn does not serialize the whole load.
const ASSERTION_CLIENTS = 10;
const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"; // RFC 7523 §2.2
const assertionKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const assertionJWK = { ...assertionKey.publicKey.export({ format: "jwk" }), kid: "bench", alg: "ES256", use: "sig" };
for (let i = 0; i < ASSERTION_CLIENTS; i++) {
  const record = createKeyClientRecord(
    `bench-pkjwt-${i}`,
    { scope: "bench:read", audiences: [AUDIENCE], token_ttl: 3600, jwks: { keys: [assertionJWK] } },
    now,
  );
  kv[clientKey(record.client_id)] = JSON.stringify(record);
}
for (let i = 0; i < coldClients; i++) {
  kv[clientKey(`bench-cold-${i}`)] = JSON.stringify(validateClientRecord({ ...cold.record, client_id: `bench-cold-${i}` }));
}
// An external issuer (issue 15): a stand-in on loopback, discovery and JWKS; its token is an RS256
// plain JWT, its keys fetched once and then cached, as a route in front of Auth0 or Entra ID sees them.
const standIn = await startStandInIssuer();
const externalIssuer = `${standIn.url}/good-bench`;
const externalToken = await new SignJWT({ azp: "bench-external", scope: "bench:read" })
  .setProtectedHeader({ alg: "RS256", kid: standIn.keys.a.kid, typ: "JWT" })
  .setIssuer(externalIssuer)
  .setAudience(AUDIENCE)
  .setIssuedAt()
  .setExpirationTime("1h")
  .sign(await importJWK({ ...standIn.keys.a, alg: "RS256" }, "RS256"));
const routes = [
  { prefix: "/protected", origin: origin.url, audience: AUDIENCE, scopes: ["bench:read"] },
  { prefix: "/external", origin: origin.url, audience: AUDIENCE, scopes: ["bench:read"], issuers: ["self", externalIssuer] },
  { prefix: "/open", origin: origin.url, public: true },
];
const worker = await startRawWorkerd(
  stateDir,
  {
    ISSUER: "http://localhost:8787",
    DEFAULT_AUDIENCE: AUDIENCE,
    ACCESS_TOKEN_TTL: "300",
    MAX_ACCESS_TOKEN_TTL: "3600",
    SIGNING_KEY: JSON.stringify(await generateSigningKey()),
    GATEWAY_ROUTES: JSON.stringify(routes),
    EXTERNAL_ISSUERS: JSON.stringify([
      { issuer: externalIssuer, algorithms: ["RS256"], token_type: "jwt", client_id_claim: "azp", max_lifetime: 3600 },
    ]),
  },
  kv,
  { cpu: SERVER_CPU },
);
const results: CaseResult[] = [];
/** The `n`th signed client assertion (RFC 7523 §3) of the bench's key clients, valid for 300 s from now. */
const benchAssertion = (n: number, issuer: string): string =>
  signAssertion(
    assertionKey.privateKey,
    { kid: "bench", typ: "client-authentication+jwt" },
    { clientId: `bench-pkjwt-${n % ASSERTION_CLIENTS}`, audience: issuer, lifetime: 300 },
  );
/** Assertions signed ahead of each run (so the load generator does not sign while measuring); more are signed if they run out. */
let assertions: string[] = [];
let nextAssertion = 0;
const refillAssertions = (issuer: string) => {
  assertions = Array.from({ length: 6000 * (duration + 1) }, (_, i) => benchAssertion(i, issuer));
  nextAssertion = 0;
};
const pools: ProofPool[] = [];
try {
  const workerd = [worker.pid];
  const peerPids = [peer.pid!];
  const warmRequest = tokenRequest(`${worker.url}/token`, "bench-warm", warm.clientSecret);
  const tokenRes = await fetch(warmRequest.url, warmRequest);
  const issued = await tokenRes.text();
  // Two full runs measured every gateway_protected request as a fast 401 (cause not caught): the
  // token is checked here, and a refused round prints its answer.
  if (!tokenRes.ok) throw new Error(`the bench's access token was not issued: ${tokenRes.status} ${issued}`);
  const { access_token } = JSON.parse(issued) as { access_token: string };
  // The DPoP twins (RFC 9449): the same client with a proof gets a bound token; each request its own proof.
  const key = await dpopKey();
  const boundRes = await fetch(warmRequest.url, {
    ...warmRequest,
    headers: { ...warmRequest.headers, DPoP: await signProof(key, "POST", warmRequest.url) },
  });
  const bound = await boundRes.text();
  const { access_token: boundToken, token_type } = JSON.parse(bound) as { access_token: string; token_type: string };
  if (token_type !== "DPoP") throw new Error(`expected a DPoP-bound token, got ${boundRes.status} ${bound}`);
  // Enough for the longest a case runs between refills (the pool tops itself up every 100 ms).
  const poolSize = 20_000;
  const tokenProofs = await proofPool(key, "POST", warmRequest.url, undefined, poolSize);
  const gatewayProofs = await proofPool(key, "GET", `${worker.url}/protected/item`, boundToken, poolSize);
  pools.push(tokenProofs, gatewayProofs);
  const withProof = (pool: ProofPool) => [
    { setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, DPoP: pool.take() } }) },
  ];

  console.log(
    `Benchmark: ${connections} connections, ${rounds} interleaved rounds of ${duration} s per case, ${cpus().length} CPUs${pin ? " (servers on CPU 1, load on CPU 0)" : ""}, Node ${process.version}`,
  );
  let n = 0;
  results.push(
    ...(await benchAll([
      { name: "token_warm", opts: warmRequest, cpuPids: workerd },
      {
        name: "peer_token",
        opts: tokenRequest(
          `http://127.0.0.1:${peerPort}/token`,
          "bench-peer",
          peerSecret,
          "grant_type=client_credentials&scope=bench%3Aread",
        ),
        cpuPids: peerPids,
      },
      {
        name: "token_cold",
        opts: {
          ...warmRequest,
          requests: [
            {
              setupRequest: (req) => ({
                ...req,
                headers: { ...req.headers, Authorization: basicAuth(`bench-cold-${n++ % coldClients}`, cold.clientSecret) },
              }),
            },
          ],
        },
        cpuPids: workerd,
      },
      { name: "token_dpop", opts: { ...warmRequest, requests: withProof(tokenProofs) }, cpuPids: workerd },
      {
        name: "token_private_key_jwt",
        opts: {
          url: `${worker.url}/token`,
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          requests: [
            {
              setupRequest: (req) => {
                const n = nextAssertion++;
                const assertion = assertions[n] ?? benchAssertion(n, "http://localhost:8787");
                return {
                  ...req,
                  body: `grant_type=client_credentials&client_assertion_type=${encodeURIComponent(JWT_BEARER_ASSERTION_TYPE)}&client_assertion=${assertion}`,
                };
              },
            },
          ],
        },
        cpuPids: workerd,
        prepare: () => refillAssertions("http://localhost:8787"),
      },
      {
        name: "gateway_protected",
        opts: { url: `${worker.url}/protected/item`, headers: { Authorization: `Bearer ${access_token}` } },
        cpuPids: workerd,
      },
      { name: "gateway_passthrough", opts: { url: `${worker.url}/open/item` }, cpuPids: workerd },
      {
        name: "gateway_dpop",
        opts: { url: `${worker.url}/protected/item`, headers: { Authorization: `DPoP ${boundToken}` }, requests: withProof(gatewayProofs) },
        cpuPids: workerd,
      },
      {
        name: "gateway_external",
        opts: { url: `${worker.url}/external/item`, headers: { Authorization: `Bearer ${externalToken}` } },
        cpuPids: workerd,
      },
      { name: "worker_floor", opts: { url: `${worker.url}/.well-known/jwks.json` }, cpuPids: workerd },
      { name: "origin_direct", opts: { url: `${origin.url}/item` }, cpuPids: [] },
    ])),
  );
} finally {
  for (const pool of pools) pool.stop();
  await worker.stop();
  stopPeer();
  await origin.close();
  await standIn.close();
  rmSync(stateDir, { recursive: true, force: true });
}

const by = Object.fromEntries(results.map((r) => [r.name, r]));
/**
 * A ratio is the median of the per-round ratios: round i of `a` over round i of `b`, run seconds
 * apart. This VM's host speed drifts for seconds at a time (throughput moved 2.5x within one 15 s
 * run at a constant CPU use, docs/benchmarks.md), and a pair of neighbouring rounds shares the
 * drift that a ratio of two medians taken minutes apart does not. Null for cases left out by --cases.
 */
const pairedRatio = (a: string, b: string, figure: (r: CaseResult["perRound"][number]) => number | null) => {
  if (!by[a] || !by[b]) return null;
  const pairs = by[a].perRound.map((r, i) => {
    const x = figure(r);
    const y = figure(by[b]!.perRound[i]!);
    return x === null || y === null || y === 0 ? null : x / y;
  });
  return pairs.includes(null) ? null : Number(median(pairs as number[]).toFixed(2));
};
const ratio = (a: string, b: string) => pairedRatio(a, b, (r) => r.rps);
const cpuRatio = (a: string, b: string) => pairedRatio(a, b, (r) => r.cpuMsPerRequest);
const ratios = {
  token_warm_vs_peer: ratio("token_warm", "peer_token"),
  token_warm_vs_peer_cpu: cpuRatio("token_warm", "peer_token"),
  token_private_key_jwt_vs_warm: ratio("token_private_key_jwt", "token_warm"),
  token_private_key_jwt_vs_warm_cpu: cpuRatio("token_private_key_jwt", "token_warm"),
  gateway_protected_vs_passthrough_cpu: cpuRatio("gateway_protected", "gateway_passthrough"),
  gateway_dpop_vs_protected_cpu: cpuRatio("gateway_dpop", "gateway_protected"),
  token_dpop_vs_warm_cpu: cpuRatio("token_dpop", "token_warm"),
  token_cold_vs_peer: ratio("token_cold", "peer_token"),
  gateway_protected_vs_passthrough: ratio("gateway_protected", "gateway_passthrough"),
  gateway_external_vs_protected: ratio("gateway_external", "gateway_protected"),
  gateway_external_vs_protected_cpu: cpuRatio("gateway_external", "gateway_protected"),
  gateway_passthrough_vs_origin: ratio("gateway_passthrough", "origin_direct"),
};
// Workers Standard pricing as published: $0.30 per million requests, $0.02 per million CPU ms.
const costPerMillion = (cpuMs: number | null) => (cpuMs === null ? "n/a" : `$${(0.3 + 0.02 * cpuMs).toFixed(3)}`);
console.log("\n| case | req/s | p50 ms | p99 ms | requests | non-2xx | errors | CPU ms/req | $ per million (Workers) |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
  const priced = r.name.startsWith("token") || r.name.startsWith("gateway") ? costPerMillion(r.cpuMsPerRequest) : "";
  console.log(
    `| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.total} | ${r.non2xx} | ${r.errors} | ${r.cpuMsPerRequest ?? "n/a"} | ${priced} |`,
  );
}
console.log("\nRatios (same run):");
for (const [k, v] of Object.entries(ratios)) console.log(`  ${k}: ${v}`);
const out = {
  date: new Date().toISOString(),
  pinned: pin,
  node: process.version,
  cpus: cpus().map((c) => c.model)[0],
  cpuCount: cpus().length,
  duration,
  rounds,
  connections,
  results,
  ratios,
};
mkdirSync(join(PROJECT_ROOT, "bench/results"), { recursive: true });
writeFileSync(join(PROJECT_ROOT, "bench/results/latest.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("\nWrote bench/results/latest.json");
const failed = results.some((r) => r.errors > 0 || r.non2xx > 0);
process.exit(failed ? 1 : 0);
