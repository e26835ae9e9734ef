#!/usr/bin/env node
/**
 * `npm start [-- --port N] [-- --persist-to DIR] [-- --var NAME:VALUE]`: the Worker on
 * http://localhost:8787 with local KV, a generated KEY_SEED (.dev.vars, gitignored; an older
 * .dev.vars with SIGNING_KEY is kept as it is) and a seeded demo client whose credentials are
 * printed. Vars: --var over .dev.vars over wrangler.toml, checked by the Worker's own parser before
 * anything starts. Other arguments go to `wrangler dev`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT, kvPut } from "../cli/kv.ts";
import { clientKey } from "../src/clients/record.ts";
import { createClientRecord } from "../src/clients/manage.ts";
import { generateKeySeed } from "../src/keys/new-key-pair.ts";
import { checkDevVars, DEMO_PREFIX, moveToPort, parseVarOption, readDevVars } from "./dev-vars.ts";
import { startWorker } from "./dev-server.ts";
import { startEchoOrigin } from "./echo-origin.ts";

const { values, tokens } = parseArgs({
  strict: false,
  tokens: true,
  options: { port: { type: "string" }, "persist-to": { type: "string" }, var: { type: "string", multiple: true }, env: { type: "string" } },
});
const port = Number(values.port ?? 8787);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`npm start: --port must be a TCP port, got ${JSON.stringify(values.port)}`);
  process.exit(2);
}
const persistTo = resolve(PROJECT_ROOT, (values["persist-to"] as string | undefined) ?? ".wrangler/state");
const passThrough = tokens
  .filter((t) => !(t.kind === "option" && (t.name === "port" || t.name === "persist-to" || t.name === "var")))
  .flatMap((t) =>
    t.kind === "option" ? (t.value === undefined ? [t.rawName] : [t.rawName, t.value]) : t.kind === "positional" ? [t.value] : [],
  );

// 1. The dev key seed, made once into .dev.vars (gitignored), which wrangler dev reads. Keys then
// rotate as in production (ROTATION_PERIOD; `tollgate keys rotate` works locally). A .dev.vars from
// before KEY_SEED, holding SIGNING_KEY, is left as it is and signs as it did.
const devVarsFile = join(PROJECT_ROOT, ".dev.vars");
if (!existsSync(devVarsFile) || !/^(KEY_SEED|SIGNING_KEY)=/m.test(readFileSync(devVarsFile, "utf8"))) {
  appendFileSync(devVarsFile, `KEY_SEED=${generateKeySeed()}\n`);
  console.log(`Generated a development KEY_SEED into .dev.vars (signing keys derive from it; kids in the JWKS).`);
}

// 2. The vars wrangler dev will use (--var over .dev.vars over wrangler.toml), moved to the port and
// checked by the Worker's own parser: a bad value stops here with its one message, before anything
// starts, instead of as a 500 on every request.
const cliVars = Object.fromEntries(((values.var ?? []) as string[]).map(parseVarOption));
const env = values.env as string | undefined;
const { values: devVars, sources } = readDevVars(join(PROJECT_ROOT, "wrangler.toml"), cliVars, env);
const demoOriginUrl = `http://127.0.0.1:${port + 1}`;
const vars = { ...cliVars, ...moveToPort(devVars, port, demoOriginUrl) };
const problem = checkDevVars({ ...devVars, ...vars });
if (problem !== undefined) {
  const name = Object.keys(sources).find((n) => problem.startsWith(n));
  console.error(`npm start: ${problem}${name ? ` (${name} from ${sources[name]})` : ""}`);
  process.exit(1);
}
const routes = JSON.parse(vars.GATEWAY_ROUTES ?? "[]") as { prefix: string; origin?: string }[];
const demoRouted = routes.some((r) => r.prefix === DEMO_PREFIX && r.origin === demoOriginUrl);

// 3. The demo client, seeded once per local state directory; its secret is kept beside that state.
const demoFile = join(persistTo, "tollgate-demo-client.json");
if (!existsSync(demoFile)) {
  mkdirSync(persistTo, { recursive: true });
  const now = Math.floor(Date.now() / 1000);
  const { record, clientSecret } = await createClientRecord(
    "demo",
    { name: "Demo client", scope: "demo:read demo:write", default_scope: "demo:read" },
    now,
  );
  await kvPut(clientKey("demo"), JSON.stringify(record), { remote: false, persistTo });
  writeFileSync(demoFile, JSON.stringify({ client_id: "demo", client_secret: clientSecret }, null, 2), { mode: 0o600 });
}
const demo = JSON.parse(readFileSync(demoFile, "utf8")) as { client_id: string; client_secret: string };

// 4. The demo origin (an echo server) on port+1, behind the demo route.
const origin = await startEchoOrigin(port + 1);
const worker = await startWorker({ port, persistTo, vars, stdio: "inherit", extraArgs: passThrough, readyTimeoutMs: 120_000 });
console.log(`
Tollgate is running on ${worker.url}

  Demo client   client_id=${demo.client_id}  client_secret=${demo.client_secret}

  Get a token:
    TOKEN=$(curl -s -u '${demo.client_id}:${demo.client_secret}' -d grant_type=client_credentials ${worker.url}/token | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')

${
  demoRouted
    ? `  Call the demo API through the gateway (origin: echo server on ${origin.url}):
    curl -i ${worker.url}/demo/hello                                    # 401, no token
    curl -s -H "Authorization: Bearer $TOKEN" ${worker.url}/demo/hello  # 200, what the origin saw`
    : `  GATEWAY_ROUTES (from ${sources.GATEWAY_ROUTES ?? "nowhere"}) has no /demo route to the echo server on ${origin.url}.`
}

  Metadata: ${worker.url}/.well-known/oauth-authorization-server
  JWKS:     ${worker.url}/.well-known/jwks.json
  Press Ctrl-C to stop.
`);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => void Promise.all([worker.stop(), origin.close()]).then(() => process.exit(0)));
}
worker.child.on("exit", (code) => void origin.close().then(() => process.exit(code ?? 0)));
