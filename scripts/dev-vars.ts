/**
 * The vars `wrangler dev` gives the Worker, with wrangler's own precedence: `--var NAME:VALUE` over
 * `.dev.vars` over the config's `[vars]`. `npm start` checks them with the Worker's own parser before
 * it starts anything, and moves the shipped local URLs to its --port.
 */
import { unstable_getVarsForDev, unstable_readConfig } from "wrangler";
import { ConfigError, parseConfig } from "../src/config.ts";

/** Where a var's value comes from, for error messages. */
export type VarSource = "--var" | ".dev.vars" | "wrangler.toml [vars]";

export interface DevVars {
  values: Record<string, unknown>;
  sources: Record<string, VarSource>;
}

/**
 * The config's vars, then `.dev.vars` beside it (wrangler loads from it only names that are a var or
 * in `[secrets] required`), then `cliVars`. `env` as `wrangler dev --env`.
 */
export function readDevVars(configPath: string, cliVars: Record<string, string>, env?: string): DevVars {
  const config = unstable_readConfig({ config: configPath, env });
  const loaded = unstable_getVarsForDev(configPath, undefined, config.vars, env, true, config.secrets);
  const values: Record<string, unknown> = {};
  const sources: Record<string, VarSource> = {};
  for (const [name, binding] of Object.entries(loaded)) {
    values[name] = binding.value;
    // Secret-typed values are those wrangler read from .dev.vars.
    sources[name] = binding.type === "secret_text" ? ".dev.vars" : "wrangler.toml [vars]";
  }
  for (const [name, value] of Object.entries(cliVars)) {
    values[name] = value;
    sources[name] = "--var";
  }
  return { values, sources };
}

/** `--var NAME:VALUE` as wrangler splits it: at the first colon. */
export function parseVarOption(option: string): [string, string] {
  const colon = option.indexOf(":");
  return colon < 0 ? [option, ""] : [option.slice(0, colon), option.slice(colon + 1)];
}

/** The URLs wrangler.toml's local [vars] name: the Worker on 8787, the demo origin on 8788. */
export const SHIPPED = { issuer: "http://localhost:8787", audience: "http://localhost:8787/demo", demoOrigin: "http://127.0.0.1:8788" };
export const DEMO_PREFIX = "/demo";

/**
 * `--port` moves what still names the shipped local URLs, whichever source set it: ISSUER,
 * DEFAULT_AUDIENCE, and the /demo route's origin (to `demoOrigin`) and audience. A value the
 * developer chose is kept. Returns the vars to pass as `--var`: ISSUER, DEFAULT_AUDIENCE and
 * GATEWAY_ROUTES (JSON) as they end up.
 */
export function moveToPort(values: Record<string, unknown>, port: number, demoOrigin: string): Record<string, string> {
  const issuer = `http://localhost:${port}`;
  const audience = `${issuer}${DEMO_PREFIX}`;
  const moved: Record<string, string> = {
    ISSUER: values.ISSUER === undefined || values.ISSUER === SHIPPED.issuer ? issuer : String(values.ISSUER),
    DEFAULT_AUDIENCE:
      values.DEFAULT_AUDIENCE === undefined || values.DEFAULT_AUDIENCE === SHIPPED.audience ? audience : String(values.DEFAULT_AUDIENCE),
  };
  let routes = values.GATEWAY_ROUTES;
  if (typeof routes === "string") {
    try {
      routes = JSON.parse(routes);
    } catch {
      // Left as it is: the Worker's parser names the error.
    }
  }
  if (Array.isArray(routes)) {
    routes = routes.map((r: unknown) => {
      if (typeof r !== "object" || r === null || (r as { prefix?: unknown }).prefix !== DEMO_PREFIX) return r;
      const route = { ...(r as Record<string, unknown>) };
      if (route.origin === SHIPPED.demoOrigin) route.origin = demoOrigin;
      if (route.audience === SHIPPED.audience) route.audience = audience;
      return route;
    });
  }
  if (routes !== undefined) moved.GATEWAY_ROUTES = typeof routes === "string" ? routes : JSON.stringify(routes);
  return moved;
}

/** The Worker's own config check (src/config.ts) on these vars: the error message, or undefined. */
export function checkDevVars(values: Record<string, unknown>): string | undefined {
  try {
    parseConfig(values);
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
}
