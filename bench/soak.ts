#!/usr/bin/env node
/**
 * `npm run soak [-- --duration 60]`: /token and gateway traffic at the same time against the
 * production bundle in workerd and a local origin, for a bounded time. Prints its figures and fails
 * on any error, any 5xx, any unexpected status, or memory growth of the workerd process.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { createClientRecord } from "../src/clients/manage.ts";
import { clientKey } from "../src/clients/record.ts";
import { generateSigningKey } from "../src/keys/new-key-pair.ts";
import { startEchoOrigin } from "../scripts/echo-origin.ts";
import { startRawWorkerd, tokenRequest } from "./workerd.ts";

const { values } = parseArgs({ options: { duration: { type: "string", default: "60" }, connections: { type: "string", default: "8" } } });
const duration = Number(values.duration);
const connections = Number(values.connections);
const AUDIENCE = "https://api.soak.test";

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

const dir = mkdtempSync(join(tmpdir(), "tollgate-soak-"));
const origin = await startEchoOrigin();
const now = Math.floor(Date.now() / 1000);
const client = await createClientRecord("soak", { scope: "soak:read", audiences: [AUDIENCE] }, now);
const worker = await startRawWorkerd(
  dir,
  {
    ISSUER: "http://localhost:8787",
    DEFAULT_AUDIENCE: AUDIENCE,
    SIGNING_KEY: JSON.stringify(await generateSigningKey()),
    GATEWAY_ROUTES: JSON.stringify([{ prefix: "/api", origin: origin.url, audience: AUDIENCE, scopes: ["soak:read"] }]),
  },
  { [clientKey("soak")]: JSON.stringify(client.record) },
);
let failed = false;
try {
  const good = tokenRequest(`${worker.url}/token`, "soak", client.clientSecret);
  const res = await fetch(good.url, good);
  const { access_token } = (await res.json()) as { access_token: string };

  // Warm up, then take the baseline memory.
  await Promise.all([
    autocannon({ ...good, connections: 2, duration: 3 }),
    autocannon({ url: `${worker.url}/api/item`, headers: { Authorization: `Bearer ${access_token}` }, connections: 2, duration: 3 }),
  ]);
  const samples: number[] = [rssMiB(worker.pid)];
  const sampler = setInterval(() => samples.push(rssMiB(worker.pid)), 5000);
  const statuses: Record<string, number> = {};
  const count = (r: autocannon.Result) => {
    for (const [k, v] of Object.entries(r.statusCodeStats ?? {})) statuses[k] = (statuses[k] ?? 0) + (v as { count: number }).count;
  };
  // A mix: token requests (some with a wrong secret), gateway requests with and without a token.
  const [token, bad, gw, anon] = await Promise.all([
    autocannon({ ...good, connections, duration }),
    autocannon({ ...tokenRequest(`${worker.url}/token`, "soak", "wrong.secret"), connections: 1, duration }),
    autocannon({ url: `${worker.url}/api/item`, headers: { Authorization: `Bearer ${access_token}` }, connections, duration }),
    autocannon({ url: `${worker.url}/api/item`, connections: 1, duration }),
  ]);
  clearInterval(sampler);
  samples.push(rssMiB(worker.pid));
  for (const r of [token, bad, gw, anon]) count(r);
  const errors = [token, bad, gw, anon].reduce((n, r) => n + r.errors + r.timeouts, 0);
  const expected = {
    token: token["2xx"] === token.requests.total,
    bad: bad["4xx"] === bad.requests.total,
    gw: gw["2xx"] === gw.requests.total,
    anon: anon["4xx"] === anon.requests.total,
  };
  const fivexx = Object.entries(statuses)
    .filter(([k]) => k.startsWith("5"))
    .reduce((n, [, v]) => n + v, 0);
  // V8 sizes its heap up during the first tens of seconds; a leak keeps growing after that. So the
  // highest reading of the last third must not pass the highest of the middle third.
  const third = Math.max(1, Math.floor(samples.length / 3));
  const middleMax = Math.max(...samples.slice(third, 2 * third));
  const growth = Math.max(...samples.slice(2 * third)) - middleMax;
  const maxRss = Math.max(...samples);
  console.log(`Soak: ${duration} s, ${connections} connections per good stream`);
  console.log(
    `  /token good:     ${token.requests.total} requests, ${Math.round(token.requests.average)} req/s, p99 ${token.latency.p99} ms`,
  );
  console.log(`  /token wrong:    ${bad.requests.total} requests (401 expected)`);
  console.log(`  gateway good:    ${gw.requests.total} requests, ${Math.round(gw.requests.average)} req/s, p99 ${gw.latency.p99} ms`);
  console.log(`  gateway no token:${anon.requests.total} requests (401 expected)`);
  console.log(`  statuses: ${JSON.stringify(statuses)}; errors ${errors}; 5xx ${fivexx}`);
  console.log(
    `  workerd RSS MiB: start ${samples[0]!.toFixed(1)}, max ${maxRss.toFixed(1)}, end ${samples[samples.length - 1]!.toFixed(1)} (samples ${samples.map((s) => s.toFixed(0)).join(" ")}); growth of the last third over the middle third ${growth.toFixed(1)}`,
  );
  // Caches are bounded (1,024 secrets, 4,096 tokens, 1,024 records, 4,096 statuses): memory must plateau.
  const memoryOk = growth < 16;
  failed = errors > 0 || fivexx > 0 || !Object.values(expected).every(Boolean) || !memoryOk;
  console.log(failed ? `SOAK FAILED ${JSON.stringify({ errors, fivexx, expected, growthMiB: growth.toFixed(1) })}` : "SOAK PASSED");
} finally {
  await worker.stop();
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
