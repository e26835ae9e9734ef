/**
 * The deployed CLIENTS namespace through Cloudflare's REST API (KV key read, write, list, delete),
 * with plain fetch: one HTTP request per operation, no wrangler process per operation.
 * Credentials: CLOUDFLARE_API_TOKEN (Workers KV Storage: Edit), else wrangler's own login
 * (`npx wrangler login`), fetched once per command with `wrangler auth token`, which refreshes it.
 * @see https://developers.cloudflare.com/api/resources/kv/subresources/namespaces/
 */
import { execFile } from "node:child_process";
import { configPath, PROJECT_ROOT, readWranglerSettings, WRANGLER } from "./config.ts";
import type { KVStore, KVTarget } from "./kv.ts";

const DEFAULT_API_BASE = "https://api.cloudflare.com/client/v4";

/** A failed API call or missing credentials; the message carries the API's own error messages. */
export class CloudflareAPIError extends Error {
  override name = "CloudflareAPIError";
}

/** The API's base URL. TOLLGATE_CLOUDFLARE_API_BASE exists for tests (a fake API on loopback). */
export function apiBase(): string {
  const base = process.env.TOLLGATE_CLOUDFLARE_API_BASE ?? DEFAULT_API_BASE;
  const url = new URL(base);
  // Never send the API token in clear text off this machine.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname))) {
    throw new CloudflareAPIError(`TOLLGATE_CLOUDFLARE_API_BASE must be https (or http on loopback), got ${base}`);
  }
  return base.replace(/\/+$/, "");
}

interface Envelope<T> {
  success: boolean;
  errors?: { code: number; message: string }[];
  result: T;
  result_info?: { cursor?: string; count?: number };
}

function errorsOf(body: string): { code: number; message: string }[] {
  try {
    const errors = (JSON.parse(body) as Envelope<unknown>).errors;
    return Array.isArray(errors) ? errors : [];
  } catch {
    return []; // not the API's JSON envelope
  }
}

function describeFailure(response: Response, body: string): string {
  const errors = errorsOf(body);
  return errors.length > 0 ? errors.map((e) => `${e.message} (code ${e.code})`).join("; ") : `HTTP ${response.status}`;
}

/** The API's error code for an absent key; any other 404 (namespace, account) is an error. */
const KEY_NOT_FOUND = 10009;

function wranglerLoginToken(): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      [WRANGLER, "auth", "token", "--json"],
      { cwd: PROJECT_ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" } },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new CloudflareAPIError(
              `no Cloudflare credentials: set CLOUDFLARE_API_TOKEN, or log in with \`npx wrangler login\` (${(stderr || stdout).trim().split("\n").at(-1)})`,
            ),
          );
          return;
        }
        try {
          const { token } = JSON.parse(stdout) as { token?: string };
          if (!token) throw new Error("no token");
          resolvePromise(token);
        } catch {
          reject(new CloudflareAPIError("`wrangler auth token` printed no token: set CLOUDFLARE_API_TOKEN instead"));
        }
      },
    );
  });
}

/** A client of the API for one account and credential. */
export class CloudflareAPI {
  private readonly token: string;
  private readonly base: string;

  constructor(token: string, base: string = apiBase()) {
    this.token = token;
    this.base = base;
  }

  async request(method: string, path: string, init: { body?: string; query?: URLSearchParams } = {}): Promise<Response> {
    const url = `${this.base}${path}${init.query ? `?${init.query}` : ""}`;
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    if (init.body !== undefined) headers["Content-Type"] = "text/plain;charset=UTF-8";
    try {
      return await fetch(url, { method, headers, body: init.body, redirect: "error" });
    } catch (error) {
      throw new CloudflareAPIError(`${method} ${path}: ${(error as Error).cause ?? (error as Error).message}`);
    }
  }

  /** A JSON call; throws CloudflareAPIError with the API's own error messages unless it succeeded. */
  async call<T>(method: string, path: string, init: { body?: string; query?: URLSearchParams } = {}): Promise<Envelope<T>> {
    const response = await this.request(method, path, init);
    const body = await response.text();
    let envelope: Envelope<T> | undefined;
    try {
      envelope = JSON.parse(body) as Envelope<T>;
    } catch {
      // handled below
    }
    if (!response.ok || !envelope?.success) throw new CloudflareAPIError(`${method} ${path} failed: ${describeFailure(response, body)}`);
    return envelope;
  }

  /** The account to use when neither CLOUDFLARE_ACCOUNT_ID nor the config names one: the only one the token sees. */
  async soleAccountId(): Promise<string> {
    const { result } = await this.call<{ id: string; name: string }[]>("GET", "/accounts");
    if (result.length === 1) return result[0]!.id;
    const names = result.map((a) => `${a.name} (${a.id})`).join(", ");
    throw new CloudflareAPIError(
      `set CLOUDFLARE_ACCOUNT_ID or account_id in the wrangler config: the credentials see ${result.length} accounts${names ? `: ${names}` : ""}`,
    );
  }
}

/** Key names in paths are percent-encoded; `client:x` is `client%3Ax`. */
const keyPath = (key: string): string => encodeURIComponent(key);

export async function openRemoteStore(target: KVTarget): Promise<KVStore> {
  const settings = readWranglerSettings(configPath(target.config), target.env);
  const token = process.env.CLOUDFLARE_API_TOKEN || (await wranglerLoginToken());
  const api = new CloudflareAPI(token);
  const accountId = process.env.CLOUDFLARE_ACCOUNT_ID || settings.accountId || (await api.soleAccountId());
  const ns = `/accounts/${encodeURIComponent(accountId)}/storage/kv/namespaces/${encodeURIComponent(settings.namespaceId)}`;
  return {
    async get(key) {
      const path = `${ns}/values/${keyPath(key)}`;
      const response = await api.request("GET", path);
      if (response.status === 404) {
        const body = await response.text();
        if (errorsOf(body).some((e) => e.code === KEY_NOT_FOUND)) return null;
        throw new CloudflareAPIError(`GET ${path} failed: ${describeFailure(response, body)}`);
      }
      if (!response.ok) throw new CloudflareAPIError(`GET ${path} failed: ${describeFailure(response, await response.text())}`);
      return response.text();
    },
    async put(key, value) {
      await api.call("PUT", `${ns}/values/${keyPath(key)}`, { body: value });
    },
    async delete(key) {
      await api.call("DELETE", `${ns}/values/${keyPath(key)}`);
    },
    async list(prefix) {
      const names: string[] = [];
      let cursor = "";
      do {
        const query = new URLSearchParams({ prefix, limit: "1000" });
        if (cursor) query.set("cursor", cursor);
        const page = await api.call<{ name: string }[]>("GET", `${ns}/keys`, { query });
        names.push(...page.result.map((k) => k.name));
        cursor = page.result_info?.cursor ?? "";
      } while (cursor);
      return names;
    },
    close: async () => {},
  };
}
