/**
 * A stand-in for an external token issuer (GitHub Actions, a Kubernetes cluster) and for a client's
 * jwks_uri, on loopback: OIDC discovery and a JWKS, well-behaved or hostile. The tests sign tokens
 * with `keys` (private JWKs) and point Tollgate at it.
 *
 * The first path segment names the behaviour, optionally followed by `-tag` (any text) so each test
 * gets URLs of its own, with their own cache entries:
 * - `good`: `{name}/jwks` serves key a (max-age=300); `{name}/.well-known/openid-configuration` names
 *   `issuer` `{url}/{name}` and that jwks_uri. `rotating`: the same with key a, then key b after
 *   `/__rotate?name={name}`. `both`: both keys. `oauth`: discovery only by RFC 8414
 *   (`/.well-known/oauth-authorization-server/{name}`; the OIDC path is 404). `mismatch`: its
 *   discovery names another issuer.
 * - Hostile JWKS: `slow` (headers after 5 s), `slowbody` (the body trickles for 5 s), `huge` (100 KiB,
 *   chunked), `hugedeclared` (100 KiB with Content-Length), `text` (JSON as text/html), `notjson`,
 *   `notset` (one JWK, not a set), `redirect` (302 to a good set), `private` (a key with `d`), `oct`
 *   (a symmetric key), `down` (503 everywhere), `flaky` (a good set until `/__break?name={name}`, then 503).
 * `/__log` lists the paths requested so far (the `/__` paths excepted), oldest first;
 * `/__down?name={name}` (or `/__break`) makes that name answer as `down` does from then on (an issuer gone down).
 */
import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, type JWK } from "jose";

export interface StandInIssuer {
  url: string;
  server: Server;
  /** Private signing keys (RS256), kid "stand-in-a" and "stand-in-b". */
  keys: { a: JWK; b: JWK };
  /** Paths requested so far. */
  log: string[];
  close(): Promise<void>;
}

async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
}

function publicPart({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...key }: JWK): JWK {
  return key;
}

export async function startStandInIssuer(port = 0, host = "127.0.0.1"): Promise<StandInIssuer> {
  const keys = { a: await signingKey("stand-in-a"), b: await signingKey("stand-in-b") };
  const rotated = new Set<string>();
  const wentDown = new Set<string>();
  const log: string[] = [];
  let base = "";
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const json = (body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "max-age=300", ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/__log") return json(log);
    if (url.pathname === "/__rotate") {
      rotated.add(url.searchParams.get("name") ?? "");
      return json({ rotated: true });
    }
    if (url.pathname === "/__down" || url.pathname === "/__break") {
      wentDown.add(url.searchParams.get("name") ?? "");
      return json({ down: true });
    }
    log.push(url.pathname);
    const segments = url.pathname.split("/");
    const rfc8414 = segments[1] === ".well-known" && segments[2] === "oauth-authorization-server";
    const name = (rfc8414 ? segments[3] : segments[1]) ?? "";
    const rest = rfc8414 ? ".well-known/oauth-authorization-server" : segments.slice(2).join("/");
    const behaviour = name.split("-")[0];
    const issuer = `${base}/${name}`;
    const publicKeys = { keys: [publicPart(rotated.has(name) ? keys.b : keys.a)] };
    if (behaviour === "down" || wentDown.has(name)) {
      res.writeHead(503, { "Content-Type": "text/plain" });
      return res.end("unavailable");
    }
    if (rest === ".well-known/openid-configuration" || rfc8414) {
      if (behaviour === "oauth" && !rfc8414) {
        res.writeHead(404, { "Content-Type": "text/plain" });
        return res.end("not found");
      }
      return json({ issuer: behaviour === "mismatch" ? `${base}/other` : issuer, jwks_uri: `${issuer}/jwks` });
    }
    if (rest !== "jwks") {
      res.writeHead(404, { "Content-Type": "text/plain" });
      return res.end("not found");
    }
    switch (behaviour) {
      case "both":
        return json({ keys: [publicPart(keys.a), publicPart(keys.b)] });
      case "flaky":
        // The shortest freshness Tollgate allows, so the test waits as little as it can.
        return json(publicKeys, { "Cache-Control": "max-age=60" });
      case "slow":
        await new Promise((r) => setTimeout(r, 5000));
        return json(publicKeys);
      case "slowbody": {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.write('{"keys":[');
        for (let i = 0; i < 10 && !res.destroyed; i++) {
          await new Promise((r) => setTimeout(r, 500));
          res.write(" ");
        }
        return res.end("]}");
      }
      case "huge":
      case "hugedeclared": {
        const body = JSON.stringify({ ...publicKeys, padding: "a".repeat(100 * 1024) });
        res.writeHead(200, {
          "Content-Type": "application/json",
          ...(behaviour === "hugedeclared" ? { "Content-Length": String(Buffer.byteLength(body)) } : {}),
        });
        // Written in pieces, so a chunked body arrives over several reads.
        for (let i = 0; i < body.length; i += 8192) {
          if (!res.write(body.slice(i, i + 8192))) await new Promise((r) => res.once("drain", r));
        }
        return res.end();
      }
      case "text":
        res.writeHead(200, { "Content-Type": "text/html" });
        return res.end(JSON.stringify(publicKeys));
      case "notjson":
        res.writeHead(200, { "Content-Type": "application/json" });
        return res.end("<html>not json</html>");
      case "notset":
        return json(publicKeys.keys[0]);
      case "redirect":
        res.writeHead(302, { Location: `${base}/good/jwks` });
        return res.end();
      case "private":
        return json({ keys: [keys.a] });
      case "oct":
        return json({ keys: [publicKeys.keys[0], { kty: "oct", kid: "shared", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" }] });
      default:
        return json(publicKeys);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      const actual = typeof address === "object" && address ? address.port : port;
      base = `http://${host}:${actual}`;
      resolve({
        url: base,
        server,
        keys,
        log,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
