import { isValidAudience } from "./clients/record.ts";
import { logEvent } from "./http/log.ts";
import { parsePBKDF2Iterations } from "./clients/secret.ts";
import { parseGatewayRoutes, RouteConfigError, type GatewayRoute } from "./gateway/route-table.ts";
import { ExternalIssuerConfigError, parseExternalIssuers, type ExternalIssuer } from "./gateway/external-issuers.ts";
import { parseTrustedIssuers, TrustedIssuerError, type TrustedIssuer } from "./trusted-issuers.ts";
import { CLOCK_TOLERANCE_SECONDS, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_MAX_ACCESS_TOKEN_TTL, JWKS_MAX_AGE } from "./policy.ts";

/**
 * The Worker's settings, parsed and validated once per isolate from `env` into a typed object.
 * A bad value fails loudly with a message naming the variable; it is never guessed around.
 */
export interface Config {
  /** RFC 8414 §2 issuer: the `iss` of every token and the metadata's `issuer`. */
  issuer: string;
  defaultAudience: string;
  /** Seconds. */
  accessTokenTtl: number;
  /** Seconds; no token lives longer, whatever a client record says. */
  maxAccessTokenTtl: number;
  /** GATEWAY_ROUTES, most specific first. */
  routes: GatewayRoute[];
  /** EXTERNAL_ISSUERS by exact issuer: whose tokens routes may accept besides this server's. */
  externalIssuers: Map<string, ExternalIssuer>;
  /** Seconds; the epoch length of the KEY_SEED key schedule (src/keys/schedule.ts). */
  rotationPeriod: number;
  /** PBKDF2_ITERATIONS: the work factor of secrets hashed now, and of the dummy hash for unknown ids. */
  pbkdf2Iterations: number;
  /** TRUSTED_ISSUERS: external issuers whose tokens workload-identity clients present (src/trusted-issuers.ts). */
  trustedIssuers: TrustedIssuer[];
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

function requireString(env: Record<string, unknown>, name: string): string {
  const value = env[name];
  if (typeof value !== "string" || value.trim() === "") throw new ConfigError(`${name} is not set`);
  return value.trim();
}

/** A var of whole seconds from 1 to `max`, `fallback` when unset. */
function seconds(env: Record<string, unknown>, name: string, fallback: number, max = 86_400): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = typeof raw === "number" ? raw : /^\d+$/.test(String(raw)) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new ConfigError(`${name} must be whole seconds from 1 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** RFC 8414 §2: an https URL with no query or fragment (http only on loopback, for development). */
function parseIssuer(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`ISSUER must be an absolute URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.has(url.hostname))) {
    throw new ConfigError("ISSUER must use https (http is allowed only on localhost)");
  }
  if (url.search || url.hash || raw.includes("?") || raw.includes("#")) {
    throw new ConfigError("ISSUER must not have a query or fragment");
  }
  if (url.username || url.password) throw new ConfigError("ISSUER must not carry user or password");
  // Every endpoint is served at the root; an issuer with a path would advertise URLs that 404.
  if (url.pathname !== "/") throw new ConfigError("ISSUER must be an origin without a path, e.g. https://auth.example.com");
  return raw.replace(/\/+$/, "");
}

export function parseConfig(env: Record<string, unknown>): Config {
  const issuer = parseIssuer(requireString(env, "ISSUER"));
  const defaultAudience = requireString(env, "DEFAULT_AUDIENCE");
  // RFC 8707 §2: the same rule as a client's audiences (absolute URI, no fragment).
  if (!isValidAudience(defaultAudience)) {
    throw new ConfigError(`DEFAULT_AUDIENCE must be an absolute URI without a fragment, got ${JSON.stringify(defaultAudience)}`);
  }
  const maxAccessTokenTtl = seconds(env, "MAX_ACCESS_TOKEN_TTL", DEFAULT_MAX_ACCESS_TOKEN_TTL);
  const accessTokenTtl = seconds(env, "ACCESS_TOKEN_TTL", DEFAULT_ACCESS_TOKEN_TTL);
  if (accessTokenTtl > maxAccessTokenTtl) throw new ConfigError("ACCESS_TOKEN_TTL must not exceed MAX_ACCESS_TOKEN_TTL");
  let routes: GatewayRoute[];
  let externalIssuers: Map<string, ExternalIssuer>;
  try {
    externalIssuers = parseExternalIssuers(env.EXTERNAL_ISSUERS, issuer);
    routes = parseGatewayRoutes(env.GATEWAY_ROUTES, new Set(externalIssuers.keys()));
  } catch (error) {
    if (error instanceof RouteConfigError || error instanceof ExternalIssuerConfigError) throw new ConfigError(error.message);
    throw error;
  }
  // ROTATION_PERIOD: a day by default, at most a year.
  const period = seconds(env, "ROTATION_PERIOD", 86_400, 31_536_000);
  // With KEY_SEED, a token signed in epoch e must expire (clock tolerance included) before its key
  // leaves the JWKS when e + 2 begins, and the next key must be published longer than JWKS caches
  // keep the set. Without KEY_SEED the period is unused and not held to this.
  const minimumPeriod = maxAccessTokenTtl + JWKS_MAX_AGE + CLOCK_TOLERANCE_SECONDS;
  if (typeof env.KEY_SEED === "string" && env.KEY_SEED !== "" && period < minimumPeriod) {
    throw new ConfigError(
      `ROTATION_PERIOD (${period} s) must be at least MAX_ACCESS_TOKEN_TTL (${maxAccessTokenTtl} s) + the JWKS max-age (${JWKS_MAX_AGE} s) + the clock tolerance (${CLOCK_TOLERANCE_SECONDS} s) = ${minimumPeriod} s`,
    );
  }
  let pbkdf2Iterations: number;
  try {
    pbkdf2Iterations = parsePBKDF2Iterations(env.PBKDF2_ITERATIONS);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  let trustedIssuers: TrustedIssuer[];
  try {
    trustedIssuers = parseTrustedIssuers(env.TRUSTED_ISSUERS, issuer);
  } catch (error) {
    if (error instanceof TrustedIssuerError) throw new ConfigError(error.message);
    throw error;
  }
  return {
    issuer,
    defaultAudience,
    accessTokenTtl,
    maxAccessTokenTtl,
    routes,
    externalIssuers,
    rotationPeriod: period,
    pbkdf2Iterations,
    trustedIssuers,
  };
}

const cache = new WeakMap<object, Config | ConfigError>();

/**
 * The parsed config for this `env`, computed once per isolate. A configuration error is remembered
 * and logged once, here, as a `config_error` line naming the variable: every request of the isolate
 * then fails the same way (a JSON 500) without another log line or stack trace. `env` is the Worker's
 * Env, typed `object` so that Node-side tools (npm start, tollgate doctor) import this file too.
 */
export function getConfig(env: object): Config {
  let config = cache.get(env);
  if (config === undefined) {
    try {
      config = parseConfig(env as unknown as Record<string, unknown>);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      config = error;
      logEvent("config_error", { level: "error", message: error.message });
    }
    cache.set(env, config);
  }
  if (config instanceof ConfigError) throw config;
  return config;
}
