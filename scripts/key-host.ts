/**
 * A real HTTP server on loopback that publishes key sets for the tests of `jwks_uri` (vitest.config.ts
 * starts it): PUT /sets/{name} stores a body, GET /sets/{name} serves it as JSON and counts the
 * fetch (GET /count/{name} says how many). Misbehaving publishers: /slow (answers after 10 s),
 * /huge (1 MiB of JSON), /not-json (an HTML page), /redirect/{name} (302 to /sets/{name}).
 */
import { createServer, type Server } from "node:http";

export interface KeyHost {
  url: string;
  server: Server;
}

export function startKeyHost(host = "127.0.0.1"): Promise<KeyHost> {
  const sets = new Map<string, string>();
  const counts = new Map<string, number>();
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://key-host").pathname;
    const [, kind, name = ""] = path.split("/");
    if (req.method === "PUT" && kind === "sets") {
      let body = "";
      for await (const chunk of req) body += chunk;
      sets.set(name, body);
      res.writeHead(204).end();
      return;
    }
    if (kind === "sets" && sets.has(name)) {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      res.writeHead(200, { "Content-Type": "application/json" }).end(sets.get(name));
    } else if (kind === "count") {
      res.writeHead(200, { "Content-Type": "application/json" }).end(String(counts.get(name) ?? 0));
    } else if (kind === "slow") {
      setTimeout(() => res.writeHead(200, { "Content-Type": "application/json" }).end('{"keys":[]}'), 10_000).unref();
    } else if (kind === "huge") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(`{"keys":[],"padding":"${"a".repeat(1 << 20)}"}`);
    } else if (kind === "not-json") {
      res.writeHead(200, { "Content-Type": "text/html" }).end("<html><body>keys</body></html>");
    } else if (kind === "redirect") {
      res.writeHead(302, { Location: `/sets/${name}` }).end();
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve({ url: `http://${host}:${typeof address === "object" && address ? address.port : 0}`, server });
    });
  });
}
