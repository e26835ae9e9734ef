#!/usr/bin/env node
/**
 * `npm run profile [-- --case token_warm|token_cold|gateway_protected|gateway_passthrough --duration 8]`: where the Worker's CPU
 * goes on one hot path. Runs the production bundle in plain workerd (as `npm run bench` does) with
 * the V8 inspector on, drives the case with autocannon while V8's sampling profiler runs, and prints
 * self and total time per function, as a share and in microseconds per request. Writes the raw profile to bench/results/<case>.cpuprofile, which
 * Chrome DevTools opens.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import WebSocket from "ws";
import { PROJECT_ROOT } from "../cli/kv.ts";
import { createClientRecord } from "../src/clients/manage.ts";
import { clientKey } from "../src/clients/record.ts";
import { generateSigningKey } from "../src/keys/new-key-pair.ts";
import { freePort } from "../scripts/dev-server.ts";
import { startEchoOrigin } from "../scripts/echo-origin.ts";
import { basicAuth, startRawWorkerd, tokenRequest } from "./workerd.ts";

const { values } = parseArgs({
  options: {
    case: { type: "string", default: "token_warm" },
    duration: { type: "string", default: "8" },
    top: { type: "string", default: "30" },
  },
});
const AUDIENCE = "https://api.bench.test";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A tiny Chrome DevTools Protocol client over the inspector's WebSocket. */
async function inspect(port: number) {
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as typeof targets;
    if (targets.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  return {
    send<T = unknown>(method: string, params: object = {}): Promise<T> {
      const n = ++id;
      return new Promise<T>((resolve) => {
        pending.set(n, resolve as (r: unknown) => void);
        socket.send(JSON.stringify({ id: n, method, params }));
      });
    },
    close: () => socket.close(),
  };
}

function summarize(profile: Profile, top: number, requests: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((sample, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    all += dt;
    const node = byId.get(sample)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const l = label(byId.get(id)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + dt);
    }
  });
  const print = (title: string, m: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [name, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((100 * us) / all).toFixed(1).padStart(6)}%  ${(us / requests).toFixed(1).padStart(6)} µs/req  ${name}`);
    }
  };
  print("self time", self);
  print("total time (function and what it calls)", total);
}

const stateDir = mkdtempSync(join(tmpdir(), "tollgate-profile-"));
const origin = await startEchoOrigin();
const now = Math.floor(Date.now() / 1000);
const warm = await createClientRecord("bench-warm", { scope: "bench:read", audiences: [AUDIENCE], token_ttl: 3600 }, now);
// token_cold: a different client each request (a shared hash: the Worker cannot know), PBKDF2 every time.
const COLD_CLIENTS = 2000;
const kv: Record<string, string> = { [clientKey("bench-warm")]: JSON.stringify(warm.record) };
for (let i = 0; i < COLD_CLIENTS; i++) kv[clientKey(`bench-cold-${i}`)] = JSON.stringify({ ...warm.record, client_id: `bench-cold-${i}` });
const inspectorPort = await freePort();
const worker = await startRawWorkerd(
  stateDir,
  {
    ISSUER: "http://localhost:8787",
    DEFAULT_AUDIENCE: AUDIENCE,
    SIGNING_KEY: JSON.stringify(await generateSigningKey()),
    GATEWAY_ROUTES: JSON.stringify([
      { prefix: "/protected", origin: origin.url, audience: AUDIENCE, scopes: ["bench:read"] },
      { prefix: "/open", origin: origin.url, public: true },
    ]),
  },
  kv,
  { inspectorPort },
);
try {
  const warmRequest = tokenRequest(`${worker.url}/token`, "bench-warm", warm.clientSecret);
  const { access_token } = (await (await fetch(warmRequest.url, warmRequest)).json()) as { access_token: string };
  let cold = 0;
  const cases: Record<string, autocannon.Options> = {
    token_warm: warmRequest,
    token_cold: {
      ...warmRequest,
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            headers: { ...req.headers, Authorization: basicAuth(`bench-cold-${cold++ % COLD_CLIENTS}`, warm.clientSecret) },
          }),
        },
      ],
    },
    gateway_protected: { url: `${worker.url}/protected/item`, headers: { Authorization: `Bearer ${access_token}` } },
    gateway_passthrough: { url: `${worker.url}/open/item` },
    passthrough_with_token: { url: `${worker.url}/open/item`, headers: { Authorization: `Bearer ${access_token}` } },
  };
  const opts = cases[values.case];
  if (!opts) throw new Error(`unknown case ${values.case}; one of ${Object.keys(cases).join(", ")}`);
  await autocannon({ ...opts, connections: 10, duration: 2 });
  const inspector = await inspect(inspectorPort);
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: 100 });
  await inspector.send("Profiler.start");
  const result = await autocannon({ ...opts, connections: 10, duration: Number(values.duration) });
  const { profile } = await inspector.send<{ profile: Profile }>("Profiler.stop");
  inspector.close();
  console.log(`${values.case}: ${Math.round(result.requests.average)} req/s under the profiler, ${result.non2xx} non-2xx`);
  mkdirSync(join(PROJECT_ROOT, "bench/results"), { recursive: true });
  writeFileSync(join(PROJECT_ROOT, `bench/results/${values.case}.cpuprofile`), JSON.stringify(profile));
  summarize(profile, Number(values.top), result.requests.total);
} finally {
  await worker.stop();
  await origin.close();
  rmSync(stateDir, { recursive: true, force: true });
}
process.exit(0);
