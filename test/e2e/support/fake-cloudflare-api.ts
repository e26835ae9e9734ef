/**
 * A fake of the few Cloudflare REST API endpoints the CLI's --remote path uses (accounts, KV values
 * and key lists), on loopback, in the API's own envelope and error codes. It records every request,
 * so tests see the auth header, paths and bodies the CLI sends. Keys are listed `pageSize` at a time
 * so that cursors are followed.
 */
import { createServer, type Server } from "node:http";

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  contentType: string | undefined;
  body: string;
}

export interface FakeCloudflareAPI {
  /** Base URL for TOLLGATE_CLOUDFLARE_API_BASE. */
  base: string;
  /** KV contents per namespace id. */
  namespaces: Map<string, Map<string, string>>;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export interface FakeOptions {
  token: string;
  accounts: { id: string; name: string }[];
  namespaceIds: string[];
  pageSize?: number;
}

const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body) });
const failure = (status: number, code: number, message: string) =>
  json(status, { success: false, errors: [{ code, message }], messages: [], result: null });

export async function startFakeCloudflareAPI(options: FakeOptions): Promise<FakeCloudflareAPI> {
  const namespaces = new Map(options.namespaceIds.map((id) => [id, new Map<string, string>()]));
  const requests: RecordedRequest[] = [];
  const pageSize = options.pageSize ?? 1000;

  function answer(
    method: string,
    path: string,
    query: URLSearchParams,
    authorization: string | undefined,
    body: string,
  ): { status: number; body: string; raw?: boolean } {
    if (authorization !== `Bearer ${options.token}`) return failure(403, 10000, "Authentication error");
    if (method === "GET" && path === "/client/v4/accounts")
      return json(200, { success: true, errors: [], messages: [], result: options.accounts });
    const match = /^\/client\/v4\/accounts\/([^/]+)\/storage\/kv\/namespaces\/([^/]+)\/(values\/([^/]+)|keys)$/.exec(path);
    if (!match) return failure(404, 7003, `Could not route to /client/v4${path}`);
    const [, account, namespace, , encodedKey] = match;
    if (!options.accounts.some((a) => a.id === account)) return failure(403, 10000, "Authentication error");
    const kv = namespaces.get(namespace!);
    if (!kv) return failure(404, 10013, "namespace not found");
    if (encodedKey === undefined) {
      if (method !== "GET") return failure(405, 10000, "method not allowed");
      const prefix = query.get("prefix") ?? "";
      const names = [...kv.keys()].filter((k) => k.startsWith(prefix)).sort();
      const start = query.get("cursor") ? Number(Buffer.from(query.get("cursor")!, "base64url").toString()) : 0;
      const page = names.slice(start, start + Math.min(pageSize, Number(query.get("limit") ?? 1000)));
      const end = start + page.length;
      const cursor = end < names.length ? Buffer.from(String(end)).toString("base64url") : "";
      return json(200, {
        success: true,
        errors: [],
        messages: [],
        result: page.map((name) => ({ name })),
        result_info: { count: page.length, cursor },
      });
    }
    const key = decodeURIComponent(encodedKey);
    if (method === "GET") {
      const value = kv.get(key);
      return value === undefined ? failure(404, 10009, "get: 'key not found'") : { status: 200, body: value, raw: true };
    }
    if (method === "PUT") {
      kv.set(key, body);
      return json(200, { success: true, errors: [], messages: [], result: {} });
    }
    if (method === "DELETE") {
      kv.delete(key);
      return json(200, { success: true, errors: [], messages: [], result: null });
    }
    return failure(405, 10000, "method not allowed");
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://fake");
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({
        method: req.method ?? "",
        path: url.pathname,
        query: url.searchParams,
        authorization: req.headers.authorization,
        contentType: req.headers["content-type"],
        body,
      });
      const out = answer(req.method ?? "", url.pathname, url.searchParams, req.headers.authorization, body);
      res.writeHead(out.status, { "content-type": out.raw ? "application/octet-stream" : "application/json" });
      res.end(out.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  return {
    base: `http://127.0.0.1:${address.port}/client/v4`,
    namespaces,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
