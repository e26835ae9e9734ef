/**
 * `tollgate doctor [--env NAME] [--config PATH]`: a preflight check of a wrangler.toml environment
 * before `wrangler deploy`. Each finding says what to change and where (file, section, key).
 * Errors would make the deploy fail or the deployed Worker refuse requests or run unsafely; warnings
 * are worth a look. Exit code 1 on any error, 0 otherwise.
 */
import { execFile } from "node:child_process";
import { relative, resolve } from "node:path";
import type { Unstable_Config } from "wrangler";
import { ConfigError, parseConfig } from "../src/config.ts";
import { parseGatewayRoutes, RouteConfigError, type GatewayRoute } from "../src/gateway/route-table.ts";
import { externalIssuerNames } from "../src/gateway/external-issuers.ts";
import { DEFAULT_MAX_ACCESS_TOKEN_TTL } from "../src/policy.ts";
import { PROJECT_ROOT, WRANGLER } from "./kv.ts";

export interface Finding {
  level: "error" | "warning" | "note";
  /** Where to change it: `wrangler.toml [env.production.vars] ISSUER`. */
  where: string;
  message: string;
}

/** The parts of wrangler's resolved config the checks read. */
export type DoctorConfig = Pick<
  Unstable_Config,
  | "compatibility_date"
  | "vars"
  | "kv_namespaces"
  | "ratelimits"
  | "routes"
  | "route"
  | "workers_dev"
  | "preview_urls"
  | "secrets"
  | "services"
>;

export interface DoctorInput {
  config: DoctorConfig;
  /** The environment checked (`--env`), undefined for the top level. */
  env: string | undefined;
  /** The config file as shown to the operator. */
  file: string;
  /** The Worker's secret names (`wrangler secret list`), undefined when they could not be listed. */
  secrets: string[] | undefined;
  /** YYYY-MM-DD, for compatibility_date. */
  today: string;
}

const SIGNING_SECRETS = ["KEY_SEED", "SIGNING_KEY"];
const TOKEN_LIMITERS = ["TOKEN_IP_LIMITER", "TOKEN_FAILURE_LIMITER", "TOKEN_CLIENT_LIMITER"];
const PLACEHOLDER_KV_ID = /^0+$/;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Hosts of the examples this repository ships (RFC 2606 names): never a real deployment's. */
function isExampleHost(host: string): boolean {
  return /(^|\.)example\.(com|net|org)$/i.test(host) || /\.example$/i.test(host);
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** The hostname a `routes` entry serves: `auth.example.com` or `auth.example.com/*` → auth.example.com. */
function routeHost(pattern: string): string {
  return pattern
    .replace(/^https?:\/\//, "")
    .replace(/[/:].*$/, "")
    .toLowerCase();
}

/** Every check over one environment of a wrangler config; no I/O. */
export function diagnose(input: DoctorInput): Finding[] {
  const { config, env, file, secrets } = input;
  const findings: Finding[] = [];
  const section = (name: string, array = false) => {
    const path = env === undefined ? name : `env.${env}.${name}`;
    return `${file} ${array ? `[[${path}]]` : `[${path}]`}`;
  };
  const top = env === undefined ? `${file} (top level)` : `${file} [env.${env}]`;
  const vars = section("vars");
  const envFlag = env === undefined ? "" : ` --env ${env}`;
  const error = (where: string, message: string) => findings.push({ level: "error", where, message });
  const warn = (where: string, message: string) => findings.push({ level: "warning", where, message });
  const raw = config.vars as Record<string, unknown>;

  // The Worker's own parser, as it will run on the first request. A KEY_SEED stands in for the secret
  // so that ROTATION_PERIOD is held to its minimum, as it is in production.
  try {
    parseConfig({ ...raw, KEY_SEED: "doctor" });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const name = Object.keys(raw).find((n) => e.message.startsWith(n)) ?? "";
    error(`${vars} ${name}`.trimEnd(), `${e.message}. The Worker would answer every request with a 500.`);
  }

  // ISSUER: https, not the example, and served by this Worker.
  const issuer = typeof raw.ISSUER === "string" ? raw.ISSUER : undefined;
  const issuerHost = issuer === undefined ? undefined : hostOf(issuer);
  const patterns = [...(config.routes ?? []), ...(config.route ? [config.route] : [])].map((r) =>
    typeof r === "string" ? { pattern: r } : r,
  );
  if (issuer !== undefined && issuerHost !== undefined) {
    const issuerReported = () => findings.some((f) => f.where === `${vars} ISSUER`);
    if (issuerReported()) {
      // the Worker's parser said what is wrong with it
    } else if (!issuer.startsWith("https://"))
      error(`${vars} ISSUER`, `${JSON.stringify(issuer)} is not https: set it to https://<your domain> (an origin, no path).`);
    else if (LOOPBACK.has(issuerHost)) error(`${vars} ISSUER`, "names this machine: set it to https://<your domain>.");
    else if (isExampleHost(issuerHost))
      error(`${vars} ISSUER`, `${JSON.stringify(issuer)} is the shipped example: set it to https://<your domain>.`);
    const hosts = patterns.map((r) => routeHost(r.pattern));
    const onWorkersDev = config.workers_dev === true && issuerHost.endsWith(".workers.dev");
    const domain = LOOPBACK.has(issuerHost) || isExampleHost(issuerHost) ? "<your domain>" : issuerHost;
    if (patterns.length === 0 && !onWorkersDev) {
      error(top, `no routes: the Worker would serve nothing at ${issuer}. Add routes = [{ pattern = "${domain}", custom_domain = true }].`);
    } else if (patterns.length > 0 && !hosts.includes(issuerHost) && !onWorkersDev && !issuerReported()) {
      error(
        `${top} routes`,
        `none serves ISSUER's host ${issuerHost} (routes: ${hosts.join(", ")}): make ISSUER and the custom domain the same hostname.`,
      );
    }
  }
  if (typeof raw.DEFAULT_AUDIENCE === "string" && isExampleHost(hostOf(raw.DEFAULT_AUDIENCE) ?? "")) {
    warn(`${vars} DEFAULT_AUDIENCE`, `${JSON.stringify(raw.DEFAULT_AUDIENCE)} is the shipped example: set your API's audience.`);
  }
  const maxTtl = Number(raw.MAX_ACCESS_TOKEN_TTL ?? DEFAULT_MAX_ACCESS_TOKEN_TTL);
  if (maxTtl > 3600)
    warn(
      `${vars} MAX_ACCESS_TOKEN_TTL`,
      `${maxTtl} s: a leaked token works that long unless revoked; 3600 or less is usual for client credentials.`,
    );

  // Secrets in plain-text vars are readable by anyone with dashboard access and in every deploy log.
  for (const name of SIGNING_SECRETS) {
    if (name in raw) error(`${vars} ${name}`, `is a secret: remove it from vars and run \`npx wrangler secret put ${name}${envFlag}\`.`);
  }

  // KV namespace for client records.
  const clients = config.kv_namespaces.find((kv) => kv.binding === "CLIENTS");
  if (clients === undefined)
    error(section("kv_namespaces", true), 'no binding = "CLIENTS": every /token request would fail. Add it with the id of your namespace.');
  else if (clients.id === undefined || PLACEHOLDER_KV_ID.test(clients.id)) {
    error(
      `${section("kv_namespaces", true)} id`,
      `${JSON.stringify(clients.id ?? "")} is the placeholder: run \`npx wrangler kv namespace create CLIENTS${envFlag}\` and put the printed id here.`,
    );
  }

  // Abuse limits on /token.
  const limiters = new Set(config.ratelimits.map((r) => r.name));
  for (const name of TOKEN_LIMITERS) {
    if (!limiters.has(name))
      warn(section("ratelimits", true), `no ${name}: /token, /revoke and /introspect run without that limit (README, "Abuse limits").`);
  }

  // Gateway routes: the Worker's parser, then what it cannot know from vars alone.
  let routes: GatewayRoute[] = [];
  try {
    routes = parseGatewayRoutes(raw.GATEWAY_ROUTES, externalIssuerNames(raw.EXTERNAL_ISSUERS));
  } catch (e) {
    if (!(e instanceof RouteConfigError)) throw e;
    // Already reported through parseConfig unless another var failed first.
    if (!findings.some((f) => f.message.startsWith(e.message))) error(`${vars} GATEWAY_ROUTES`, `${e.message}.`);
  }
  const routesWhere = section("vars.GATEWAY_ROUTES", true);
  const originAuthSecrets = new Set<string>();
  const required = new Set(config.secrets?.required ?? []);
  const services = new Set((config.services ?? []).map((s) => s.binding));
  for (const route of routes) {
    const at = `${routesWhere} prefix = "${route.prefix}"`;
    if (route.origin !== undefined) {
      if (route.prefix === "/orders" && route.origin.hostname === "orders.internal.example.com") {
        error(
          at,
          "is the shipped example route: replace it with your own routes or remove it (with ORDERS_LIMITER and ORDERS_ORIGIN_SECRET).",
        );
      } else if (isExampleHost(route.origin.hostname)) {
        error(`${at} origin`, `${route.origin.href} is an example host: set your API's origin.`);
      }
      if (LOOPBACK.has(route.origin.hostname))
        error(`${at} origin`, `${route.origin.href} is loopback: a deployed Worker cannot reach it. Set your API's https origin.`);
      else if (route.origin.protocol !== "https:")
        error(
          `${at} origin`,
          `${route.origin.href} is not https: the identity headers${route.originAuth ? " and the origin_auth secret" : ""} would cross the network in clear. Use https.`,
        );
    }
    if (route.service !== undefined && !services.has(route.service)) {
      error(
        `${at} service`,
        `${route.service} is not a [[${env === undefined ? "" : `env.${env}.`}services]] binding: every request to the route would fail. Declare it.`,
      );
    }
    if (route.rateLimit !== undefined && !limiters.has(route.rateLimit)) {
      error(
        `${at} rate_limit`,
        `${route.rateLimit} is not declared in [[${env === undefined ? "" : `env.${env}.`}ratelimits]]: every request to the route would answer 500. Declare it or remove rate_limit.`,
      );
    }
    if (route.originAuth !== undefined) {
      const name = route.originAuth.secret;
      originAuthSecrets.add(name);
      if (name in raw)
        error(
          `${vars} ${name}`,
          `is the origin_auth secret of ${route.prefix}: remove it from vars and run \`npx wrangler secret put ${name}${envFlag}\`.`,
        );
      if (!required.has(name))
        warn(
          `${section("secrets")} required`,
          `add "${name}" (origin_auth of ${route.prefix}): wrangler deploy then refuses to deploy without it, and wrangler dev loads it from .dev.vars.`,
        );
    }
  }
  if (limiters.has("ORDERS_LIMITER") && !routes.some((r) => r.rateLimit === "ORDERS_LIMITER")) {
    warn(section("ratelimits", true), "ORDERS_LIMITER is the shipped example's and no route uses it: remove it.");
  }
  for (const name of required) {
    if (!SIGNING_SECRETS.includes(name) && !originAuthSecrets.has(name)) {
      warn(
        `${section("secrets")} required`,
        `"${name}" is named by no route's origin_auth${name.startsWith("ORDERS_") ? " (the shipped example's)" : ""}: remove it, or wrangler deploy asks for a secret nothing uses.`,
      );
    }
  }
  if (!SIGNING_SECRETS.some((name) => required.has(name))) {
    warn(`${section("secrets")} required`, 'add "KEY_SEED": wrangler deploy then refuses to deploy a Worker without its signing secret.');
  }

  // The Worker's secrets, where they could be listed.
  if (secrets !== undefined) {
    const have = new Set(secrets);
    if (!have.has("KEY_SEED") && !have.has("SIGNING_KEY")) {
      error(
        "secret KEY_SEED",
        `not set: no token can be issued (503). Run \`npx tollgate keys seed | npx wrangler secret put KEY_SEED${envFlag}\`.`,
      );
    } else if (!have.has("KEY_SEED")) {
      warn("secret KEY_SEED", `only SIGNING_KEY is set: its keys never rotate by themselves. README, "From SIGNING_KEY to KEY_SEED".`);
    } else if (have.has("SIGNING_KEY")) {
      warn(
        "secret SIGNING_KEY",
        `set beside KEY_SEED: it signs as generation 0 until \`tollgate keys rotate\`; delete it once its kids left the JWKS (README, "From SIGNING_KEY to KEY_SEED").`,
      );
    }
    for (const name of originAuthSecrets) {
      if (!have.has(name))
        error(`secret ${name}`, `not set: every request to its route would answer 500. Run \`npx wrangler secret put ${name}${envFlag}\`.`);
    }
  }

  // compatibility_date: wrangler refuses a missing or future one.
  const date = config.compatibility_date;
  if (date === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(date))
    error(`${file} compatibility_date`, `${JSON.stringify(date ?? "")}: set a YYYY-MM-DD date.`);
  else if (date > input.today)
    error(
      `${file} compatibility_date`,
      `${date} is in the future (today is ${input.today}): wrangler deploy refuses it. Use a date no later than today.`,
    );

  // Other hostnames serving the same Worker, with the same secrets.
  if (config.workers_dev === true && !(issuerHost ?? "").endsWith(".workers.dev")) {
    warn(
      `${top} workers_dev`,
      "true: the Worker is also served on workers.dev, around your custom domain (and any WAF or Access rules on it). Set workers_dev = false.",
    );
  }
  if (config.preview_urls === true) {
    warn(
      `${top} preview_urls`,
      "true: every uploaded version is reachable on a preview URL with the production secrets and KV. Set preview_urls = false.",
    );
  }
  return findings;
}

/** The Worker's secret names via `wrangler secret list`, or why they could not be listed. */
export function listSecrets(configPath: string, env: string | undefined): Promise<{ names: string[] } | { skipped: string }> {
  const args = [WRANGLER, "secret", "list", "--format", "json", "--config", configPath];
  if (env !== undefined) args.push("--env", env);
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      args,
      { cwd: PROJECT_ROOT, timeout: 30_000, env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" } },
      (error, stdout, stderr) => {
        if (!error) {
          try {
            return resolvePromise({ names: (JSON.parse(stdout) as { name: string }[]).map((s) => s.name) });
          } catch {
            // not JSON: reported below
          }
        }
        if (error?.killed) return resolvePromise({ skipped: "wrangler secret list did not answer within 30 s" });
        // wrangler's first message line, without its colours and ✘ [ERROR] prefix, to its first sentence.
        const lines = `${stderr}\n${stdout}`.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
        const first =
          lines.map((l) => l.replace(/^\W*\[ERROR\]\s*/, "").trim()).find((l) => l !== "") ??
          (error as Error | null)?.message ??
          "no answer";
        resolvePromise({ skipped: first.replace(/(\.)\s.*$/, "$1").replace(/\.$/, "") });
      },
    );
  });
}

/** Runs the checks on `configPath` for `env` and prints them; the exit code (1 on any error). */
export async function doctor(
  options: { env?: string; config?: string },
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const { unstable_readConfig } = await import("wrangler");
  const configPath = resolve(options.config ?? `${PROJECT_ROOT}/wrangler.toml`);
  const file = relative(process.cwd(), configPath) || configPath;
  let config: Unstable_Config;
  try {
    config = unstable_readConfig({ config: configPath, env: options.env });
  } catch (error) {
    out(
      `tollgate doctor: ${file}\n\nerror   ${file}: wrangler cannot read it, so wrangler deploy would fail too:\n${(error as Error).message}`,
    );
    return 1;
  }
  const listed = await listSecrets(configPath, options.env);
  const secrets = "names" in listed ? listed.names : undefined;
  const findings = diagnose({ config, env: options.env, file, secrets, today: new Date().toISOString().slice(0, 10) });
  if ("skipped" in listed) {
    const envFlag = options.env === undefined ? "" : ` --env ${options.env}`;
    findings.push({
      level: "note",
      where: "secrets",
      message: `not checked (not logged in or offline: ${listed.skipped}). Check by hand: \`npx wrangler secret list${envFlag}\` must list KEY_SEED and every origin_auth secret.`,
    });
  }
  out(`tollgate doctor: ${file}${options.env === undefined ? " (top level)" : ` --env ${options.env}`}\n`);
  const order = { error: 0, warning: 1, note: 2 };
  findings.sort((a, b) => order[a.level] - order[b.level]);
  for (const f of findings) out(`${f.level.padEnd(8)}${f.where}: ${f.message}`);
  const errors = findings.filter((f) => f.level === "error").length;
  const warnings = findings.filter((f) => f.level === "warning").length;
  out(
    `\n${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}${errors > 0 ? ": fix the errors before deploying." : findings.length === 0 ? ": ready to deploy." : "."}`,
  );
  return errors > 0 ? 1 : 0;
}
