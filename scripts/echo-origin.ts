/**
 * A real HTTP origin that answers with what it received: method, path, headers and a digest of the
 * body. `npm start` puts it behind the demo route; the tests use it to see what the gateway sent.
 * Test-only paths: /__slow?ms=N (headers after N ms), /__big?bytes=N (a streamed body),
 * /__reset (dies mid-body), /__trickle?chunks=N&ms=M (a slow body), /__log
 * (the requests seen so far, newest last). A WebSocket upgrade on any path echoes each message
 * back, prefixed with the client id the gateway set.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { WebSocketServer } from "ws";

export interface EchoRecord {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body_bytes: number;
  body_sha256: string;
}

export interface EchoOrigin {
  url: string;
  port: number;
  server: Server;
  log: EchoRecord[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { bytes, sha256: hash.digest("hex") };
}

export function startEchoOrigin(port = 0, host = "127.0.0.1"): Promise<EchoOrigin> {
  const log: EchoRecord[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://origin");
    if (url.pathname === "/__log") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(log));
      return;
    }
    let body: { bytes: number; sha256: string };
    try {
      body = await readBody(req);
    } catch {
      return; // the request was aborted mid-body: there is no whole request to log or answer
    }
    const record: EchoRecord = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body_bytes: body.bytes,
      body_sha256: body.sha256,
    };
    log.push(record);
    if (log.length > 1000) log.shift();
    if (url.pathname.endsWith("/__slow")) {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms") ?? 5000)));
    }
    if (url.pathname.endsWith("/__reset")) {
      // Headers and part of the body, then the connection dies.
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "1048576" });
      res.write(Buffer.alloc(64 * 1024, 0x62));
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    if (url.pathname.endsWith("/__trickle")) {
      // A slow body: `chunks` pieces, `ms` apart.
      const chunks = Number(url.searchParams.get("chunks") ?? 5);
      const ms = Number(url.searchParams.get("ms") ?? 200);
      res.writeHead(200, { "Content-Type": "text/plain" });
      for (let i = 0; i < chunks; i++) {
        res.write(`chunk ${i} at ${Date.now()}\n`);
        await new Promise((r) => setTimeout(r, ms));
      }
      res.end();
      return;
    }
    if (url.pathname.endsWith("/__big")) {
      let left = Number(url.searchParams.get("bytes") ?? 1 << 20);
      res.writeHead(200, { "Content-Type": "application/octet-stream", "X-Echo-Sha256": "see body" });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      while (left > 0) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        left -= part.length;
        if (!res.write(part)) await new Promise((r) => res.once("drain", r));
      }
      res.end();
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json", Connection: "keep-alive, X-Hop", "X-Hop": "dropped", "X-Origin": "echo" });
    res.end(JSON.stringify(record));
  });
  const sockets = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    sockets.handleUpgrade(req, socket, head, (ws) => {
      const client = req.headers["x-tollgate-client-id"] ?? "none";
      ws.on("message", (data) => ws.send(`${client}: ${data.toString()}`));
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      const actual = typeof address === "object" && address ? address.port : port;
      resolve({
        url: `http://${host}:${actual}`,
        port: actual,
        server,
        log,
        close: () =>
          new Promise((r) => {
            for (const ws of sockets.clients) ws.terminate();
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
