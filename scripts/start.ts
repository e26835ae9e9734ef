#!/usr/bin/env node
/**
 * `npm start [-- --port N] [-- --persist-to DIR]`: the Worker on http://localhost:8787 with local KV,
 * a generated KEY_SEED (.dev.vars, gitignored; an older .dev.vars with SIGNING_KEY is kept as it is)
 * and a seeded demo client whose credentials are printed. Other arguments go to `wrangler dev`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT, kvPut } from "../cli/kv.ts";
import { clientKey } from "../src/clients/record.ts";
import { createClientRecord } from "../src/clients/manage.ts";
import { generateKeySeed } from "../src/keys/generate.ts";
import { unstable_readConfig } from "wrangler";
import { startWorker } from "./dev-server.ts";
import { startEchoOrigin } from "./echo-origin.ts";

const { values, tokens } = parseArgs({
  strict: false,
  tokens: true,
  options: { port: { type: "string" }, "persist-to": { type: "string" } },
});
const port = Number(values.port ?? 8787);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`npm start: --port must be a TCP port, got ${JSON.stringify(values.port)}`);
  process.exit(2);
}
const persistTo = resolve(PROJECT_ROOT, (values["persist-to"] as string | undefined) ?? ".wrangler/state");
const passThrough = tokens
  .filter((t) => !(t.kind === "option" && (t.name === "port" || t.name === "persist-to")))
  .flatMap((t) => (t.kind === "option" ? (t.value === undefined ? [t.rawName] : [t.rawName, t.value]) : t.kind === "positional" ? [t.value] : []));

// 1. The dev key seed, made once into .dev.vars (gitignored), which wrangler dev reads. Keys then
// rotate as in production (ROTATION_PERIOD; `tollgate keys rotate` works locally). A .dev.vars from
// before KEY_SEED, holding SIGNING_KEY, is left as it is and signs as it did.
const devVars = join(PROJECT_ROOT, ".dev.vars");
if (!existsSync(devVars) || !/^(KEY_SEED|SIGNING_KEY)=/m.test(readFileSync(devVars, "utf8"))) {
  appendFileSync(devVars, `KEY_SEED=${generateKeySeed()}\n`);
  console.log(`Generated a development KEY_SEED into .dev.vars (signing keys derive from it; kids in the JWKS).`);
}

// 2. The demo client, seeded once per local state directory; its secret is kept beside that state.
const demoFile = join(persistTo, "tollgate-demo-client.json");
if (!existsSync(demoFile)) {
  mkdirSync(persistTo, { recursive: true });
  const now = Math.floor(Date.now() / 1000);
  const { record, clientSecret } = await createClientRecord("demo", { name: "Demo client", scope: "demo:read demo:write", default_scope: "demo:read" }, now);
  await kvPut(clientKey("demo"), JSON.stringify(record), { remote: false, persistTo });
  writeFileSync(demoFile, JSON.stringify({ client_id: "demo", client_secret: clientSecret }, null, 2), { mode: 0o600 });
}
const demo = JSON.parse(readFileSync(demoFile, "utf8")) as { client_id: string; client_secret: string };

// 3. The demo origin (an echo server) on port+1, behind the demo route of wrangler.toml.
const origin = await startEchoOrigin(port + 1);
const vars: Record<string, string> = {};
if (port !== 8787) {
  // The routes in wrangler.toml name port 8788 and audience :8787; move them with the port.
  const routes = (unstable_readConfig({ config: join(PROJECT_ROOT, "wrangler.toml") }).vars.GATEWAY_ROUTES ?? []) as Record<string, unknown>[];
  vars.GATEWAY_ROUTES = JSON.stringify(
    routes.map((r) => (r.prefix === "/demo" ? { ...r, origin: origin.url, audience: `http://localhost:${port}/demo` } : r)),
  );
}
const worker = await startWorker({ port, persistTo, vars, stdio: "inherit", extraArgs: passThrough, readyTimeoutMs: 120_000 });
console.log(`
Tollgate is running on ${worker.url}

  Demo client   client_id=${demo.client_id}  client_secret=${demo.client_secret}

  Get a token:
    TOKEN=$(curl -s -u '${demo.client_id}:${demo.client_secret}' -d grant_type=client_credentials ${worker.url}/token | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')

  Call the demo API through the gateway (origin: echo server on ${origin.url}):
    curl -i ${worker.url}/demo/hello                                    # 401, no token
    curl -s -H "Authorization: Bearer $TOKEN" ${worker.url}/demo/hello  # 200, what the origin saw

  Metadata: ${worker.url}/.well-known/oauth-authorization-server
  JWKS:     ${worker.url}/.well-known/jwks.json
  Press Ctrl-C to stop.
`);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => void Promise.all([worker.stop(), origin.close()]).then(() => process.exit(0)));
}
worker.child.on("exit", (code) => void origin.close().then(() => process.exit(code ?? 0)));
