#!/usr/bin/env node
/**
 * `npm run timing [-- --samples 300]`: can a caller tell an unknown client, a wrong secret and a
 * disabled client apart by how long /token takes to refuse them (CWE-208)? Sends the three kinds in
 * random interleaved order, one at a time, to the production bundle in workerd, and compares the
 * latency distributions (medians and the two-sample Kolmogorov-Smirnov test).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClientRecord, updateClientRecord } from "../src/clients/manage.ts";
import { clientKey } from "../src/clients/record.ts";
import { generateSigningKey } from "../src/keys/new-key-pair.ts";
import { startRawWorkerd, tokenRequest } from "./workerd.ts";

const { values } = parseArgs({ options: { samples: { type: "string", default: "300" } } });
const samples = Number(values.samples);

/** Two-sample KS statistic D and its asymptotic p-value. */
export function ksTest(a: number[], b: number[]): { d: number; p: number } {
  const x = [...a].sort((m, n) => m - n);
  const y = [...b].sort((m, n) => m - n);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i]! <= v) i++;
    while (j < y.length && y[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  const ne = (x.length * y.length) / (x.length + y.length);
  const lambda = (Math.sqrt(ne) + 0.12 + 0.11 / Math.sqrt(ne)) * d;
  let p = 0;
  for (let k = 1; k <= 100; k++) p += 2 * (-1) ** (k - 1) * Math.exp(-2 * k * k * lambda * lambda);
  return { d, p: Math.min(1, Math.max(0, p)) };
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;

const dir = mkdtempSync(join(tmpdir(), "tollgate-timing-"));
const now = Math.floor(Date.now() / 1000);
const enabled = await createClientRecord("timing-enabled", { scope: "t" }, now);
const disabled = await createClientRecord("timing-disabled", { scope: "t" }, now);
const worker = await startRawWorkerd(
  dir,
  { ISSUER: "http://localhost:8787", DEFAULT_AUDIENCE: "https://api.timing.test", SIGNING_KEY: JSON.stringify(await generateSigningKey()) },
  {
    [clientKey("timing-enabled")]: JSON.stringify(enabled.record),
    [clientKey("timing-disabled")]: JSON.stringify(updateClientRecord(disabled.record, { disabled: true }, now)),
  },
);
const secretId = enabled.record.secrets[0]!.id;
const kinds = {
  // A client id nobody registered.
  unknown_client: () => ["nobody", enabled.clientSecret] as const,
  // The right client, a wrong secret with its real secret id (the costliest wrong guess).
  wrong_secret: () => ["timing-enabled", `${secretId}.${"x".repeat(43)}`] as const,
  // A disabled client presenting its correct secret.
  disabled_client: () => ["timing-disabled", disabled.clientSecret] as const,
};
type Kind = keyof typeof kinds;
const times: Record<Kind, number[]> = { unknown_client: [], wrong_secret: [], disabled_client: [] };
try {
  const order: Kind[] = [];
  for (let i = 0; i < samples; i++) order.push("unknown_client", "wrong_secret", "disabled_client");
  order.sort(() => Math.random() - 0.5);
  const bodies = new Set<string>();
  for (const [n, kind] of order.entries()) {
    const [id, secret] = kinds[kind]();
    const request = tokenRequest(`${worker.url}/token`, id, secret);
    const t0 = performance.now();
    const res = await fetch(request.url, request);
    const body = await res.text();
    const elapsed = performance.now() - t0;
    if (res.status !== 401) throw new Error(`${kind}: expected 401, got ${res.status}`);
    bodies.add(body);
    if (n >= 30) times[kind].push(elapsed); // the first requests warm the isolate up
  }
  console.log(
    `Refusal latency, ms (${samples} requests of each kind, interleaved; ${bodies.size} distinct response bod${bodies.size === 1 ? "y" : "ies"})`,
  );
  console.log("| kind | n | p10 | median | mean | p90 |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [kind, xs] of Object.entries(times)) {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `| ${kind} | ${xs.length} | ${quantile(xs, 0.1).toFixed(2)} | ${quantile(xs, 0.5).toFixed(2)} | ${mean.toFixed(2)} | ${quantile(xs, 0.9).toFixed(2)} |`,
    );
  }
  console.log("\nKolmogorov-Smirnov, pairwise (p > 0.01: no evidence the distributions differ)");
  const pairs: [Kind, Kind][] = [
    ["unknown_client", "wrong_secret"],
    ["unknown_client", "disabled_client"],
    ["wrong_secret", "disabled_client"],
  ];
  for (const [a, b] of pairs) {
    const { d, p } = ksTest(times[a], times[b]);
    console.log(`  ${a} vs ${b}: D = ${d.toFixed(3)}, p = ${p.toFixed(3)}`);
  }
} finally {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
}
