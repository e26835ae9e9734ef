/**
 * Gateway routes that accept other issuers' tokens (issue 15), through the Worker's real entry point
 * with two loopback stand-in issuers (discovery and JWKS; keys of their own under the same kids):
 * one issuing plain JWTs, one RFC 9068 `at+jwt` tokens that rotates its key, and Tollgate's own
 * tokens on the same route. The Worker runs with a loopback ISSUER, so loopback http issuers may be
 * configured (README, "External issuers").
 */
import { env } from "cloudflare:workers";
import { calculateJwkThumbprint } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { proofKey, signProof } from "../support/dpop.ts";
import {
  expectBearerError,
  expectOriginNotContacted,
  expectProxied,
  marker,
  rawHeaderValues,
  type EchoRecord,
} from "../support/gateway.ts";
import {
  externalToken,
  freshIssuer,
  issuerEntry,
  LOCAL_ISSUER,
  otherStandIn,
  requestsFor,
  rotate,
  standIn,
  takeDown,
  type ExternalToken,
} from "../support/external-issuers.ts";
import { AUDIENCE, nowSeconds } from "../support/tokens.ts";
import { REVOCATION_CHECK_SECONDS } from "../../src/policy.ts";
import { expectJSONError, fetchWithEnv, FORM, basic, seedClient } from "../support/worker.ts";

afterEach(() => vi.restoreAllMocks());

/**
 * A configuration of its own per test (fresh issuer names, so fresh cache entries): `plain` (plain
 * JWTs, permissions, azp) on the first stand-in, `typed` (at+jwt, scp, client_id) rotating on the
 * other, `unlisted` configured but on no route. /ext takes self, plain and typed; /typed-only typed.
 */
function setup() {
  const plain = freshIssuer(standIn);
  const typed = freshIssuer(otherStandIn, "rotating");
  const unlisted = freshIssuer(standIn);
  const origin = env.TEST_ORIGIN_URL;
  const overrides = {
    ISSUER: LOCAL_ISSUER,
    EXTERNAL_ISSUERS: JSON.stringify([
      issuerEntry(plain, { scope_claim: "permissions", client_id_claim: "azp" }),
      issuerEntry(typed, { token_type: "at+jwt", scope_claim: "scp" }),
      issuerEntry(unlisted),
    ]),
    GATEWAY_ROUTES: JSON.stringify([
      { prefix: "/ext", origin, audience: AUDIENCE, scopes: ["orders:read"], issuers: ["self", plain, typed] },
      { prefix: "/typed-only", origin, audience: AUDIENCE, issuers: [typed] },
    ]),
  };
  const send = (path: string, token: string, headers: Record<string, string> = {}) =>
    fetchWithEnv(`${LOCAL_ISSUER}${path}`, { headers: { ...headers, Authorization: `Bearer ${token}` } }, overrides);
  const plainToken = (spec: Partial<ExternalToken> = {}) =>
    externalToken(plain, AUDIENCE, {
      key: standIn.keys.a,
      ...spec,
      header: { typ: "JWT", ...spec.header },
      claims: { azp: "auth0-app", sub: "auth0-app@clients", permissions: ["orders:read"], ...spec.claims },
    });
  const typedToken = (spec: Partial<ExternalToken> = {}) =>
    externalToken(typed, AUDIENCE, {
      key: otherStandIn.keys.a,
      ...spec,
      header: { typ: "at+jwt", ...spec.header },
      claims: { client_id: "typed-app", scp: ["orders:read"], jti: "typed-jti", ...spec.claims },
    });
  /** A token of Tollgate itself (ISSUER = LOCAL_ISSUER), from its /token, for a new client. */
  const ownToken = async () => {
    const client = await seedClient();
    return { client, token: await ownTokenOf(client, overrides) };
  };
  return { plain, typed, unlisted, overrides, send, plainToken, typedToken, ownToken };
}

/** An access token from Tollgate's /token for `client`, the Worker running with `overrides`. */
async function ownTokenOf(client: { client_id: string; client_secret: string }, overrides: Record<string, unknown>): Promise<string> {
  const res = await fetchWithEnv(
    `${LOCAL_ISSUER}/token`,
    {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body: "grant_type=client_credentials",
    },
    overrides,
  );
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** A request to /ext/{mark} with a Worker whose only route, /ext, takes only `issuer` (EXTERNAL_ISSUERS entry `fields`). */
function sendToOnly(issuer: string, fields: Record<string, unknown>, mark: string, token: string): Promise<Response> {
  const overrides = {
    ISSUER: LOCAL_ISSUER,
    EXTERNAL_ISSUERS: JSON.stringify([issuerEntry(issuer, fields)]),
    GATEWAY_ROUTES: JSON.stringify([{ prefix: "/ext", origin: env.TEST_ORIGIN_URL, audience: AUDIENCE, issuers: [issuer] }]),
  };
  return fetchWithEnv(`${LOCAL_ISSUER}/ext/${mark}`, { headers: { Authorization: `Bearer ${token}` } }, overrides);
}

function identity(echo: EchoRecord): Record<string, string[]> {
  const names = ["X-Tollgate-Issuer", "X-Tollgate-Client-Id", "X-Tollgate-Scope", "X-Tollgate-Token-Id"];
  return Object.fromEntries(names.map((n) => [n, rawHeaderValues(echo, n)]));
}

describe("a route that takes self and two external issuers", () => {
  it("passes each issuer's tokens, telling the origin which issuer vouched (a client's X-Tollgate-Issuer is dropped)", async () => {
    const { plain, typed, send, plainToken, typedToken, ownToken } = setup();
    const spoof = { "X-Tollgate-Issuer": "https://evil.example/", x_tollgate_issuer: "evil" };
    const fromPlain = await expectProxied(await send(`/ext/${marker("plain")}`, await plainToken(), spoof));
    expect(identity(fromPlain)).toEqual({
      "X-Tollgate-Issuer": [plain],
      "X-Tollgate-Client-Id": ["auth0-app"],
      "X-Tollgate-Scope": ["orders:read"],
      "X-Tollgate-Token-Id": [""],
    });
    const fromTyped = await expectProxied(await send(`/ext/${marker("typed")}`, await typedToken(), spoof));
    expect(identity(fromTyped)).toEqual({
      "X-Tollgate-Issuer": [typed],
      "X-Tollgate-Client-Id": ["typed-app"],
      "X-Tollgate-Scope": ["orders:read"],
      "X-Tollgate-Token-Id": ["typed-jti"],
    });
    const { client, token } = await ownToken();
    const fromSelf = await expectProxied(await send(`/ext/${marker("self")}`, token, spoof));
    expect(identity(fromSelf)).toMatchObject({ "X-Tollgate-Issuer": [LOCAL_ISSUER], "X-Tollgate-Client-Id": [client.client_id] });
    for (const echo of [fromPlain, fromTyped, fromSelf]) expect(JSON.stringify(echo.rawHeaders)).not.toMatch(/evil/);
  });

  it("still checks revocation for Tollgate's own tokens there: a disabled client's token is refused", async () => {
    const { send, ownToken } = setup();
    const { client, token } = await ownToken();
    const record = JSON.parse((await env.CLIENTS.get(`client:${client.client_id}`))!) as Record<string, unknown>;
    await env.CLIENTS.put(`client:${client.client_id}`, JSON.stringify({ ...record, disabled: true }));
    const mark = marker("disabled");
    await expectBearerError(await send(`/ext/${mark}`, token), { status: 401, error: "invalid_token", realm: LOCAL_ISSUER });
    await expectOriginNotContacted(mark);
  });

  it("applies the route's scopes to an external token (403 insufficient_scope)", async () => {
    const { send, plainToken } = setup();
    const mark = marker("scope");
    const res = await send(`/ext/${mark}`, await plainToken({ claims: { permissions: ["orders:write"] } }));
    await expectBearerError(res, { status: 403, error: "insufficient_scope", scope: "orders:read", realm: LOCAL_ISSUER });
    await expectOriginNotContacted(mark);
  });
});

describe("cross-issuer key confusion", () => {
  it("refuses a token claiming one issuer signed with the other's key, under a kid both publish", async () => {
    const { send, plainToken } = setup();
    const mark = marker("confused");
    await expectBearerError(await send(`/ext/${mark}`, await plainToken({ key: otherStandIn.keys.a })), {
      status: 401,
      error: "invalid_token",
      realm: LOCAL_ISSUER,
    });
    await expectOriginNotContacted(mark);
  });

  it("refuses a token claiming one issuer with a kid only the other has, and never asks the other for it", async () => {
    const { typed, send, plainToken } = setup();
    await rotate(otherStandIn, typed);
    const mark = marker("kid");
    await expectBearerError(await send(`/ext/${mark}`, await plainToken({ key: otherStandIn.keys.b })), {
      status: 401,
      error: "invalid_token",
      realm: LOCAL_ISSUER,
    });
    expect(await requestsFor(otherStandIn, typed)).toBe(0);
    await expectOriginNotContacted(mark);
  });
});

describe("an issuer the route does not list", () => {
  it("is refused without any fetch: one configured for no route, one not configured, and self on a route without it", async () => {
    const { plain, unlisted, send, plainToken, ownToken } = setup();
    const stranger = freshIssuer(standIn);
    const tokens = [
      await externalToken(unlisted, AUDIENCE, { key: standIn.keys.a }),
      await externalToken(stranger, AUDIENCE, { key: standIn.keys.a }),
      await plainToken(),
      (await ownToken()).token,
    ];
    for (const token of tokens) {
      const mark = marker("unlisted");
      await expectBearerError(await send(`/typed-only/${mark}`, token), { status: 401, error: "invalid_token", realm: LOCAL_ISSUER });
      await expectOriginNotContacted(mark);
    }
    for (const issuer of [unlisted, stranger, plain]) expect(await requestsFor(standIn, issuer)).toBe(0);
  });
});

describe("keys: rotation, an issuer that goes down, a JWKS with secrets", () => {
  it("picks up a rotated key on its unknown kid", async () => {
    const { typed, send, typedToken } = setup();
    await expectProxied(await send(`/ext/${marker("before")}`, await typedToken()));
    await rotate(otherStandIn, typed);
    await expectProxied(await send(`/ext/${marker("after")}`, await typedToken({ key: otherStandIn.keys.b })));
  });

  it("serves from the cache while the issuer is down (README's bound), and answers 503 when nothing usable is cached", async () => {
    const { plain, send, plainToken } = setup();
    await expectProxied(await send(`/ext/${marker("up")}`, await plainToken()));
    await takeDown(standIn, plain);
    await expectProxied(await send(`/ext/${marker("down-cached")}`, await plainToken()));
    // An issuer down before its keys were ever fetched: 503, as when the cached keys are past the
    // stale bound (test/tokens/external.test.ts moves the clock there).
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    const down = freshIssuer(standIn, "down");
    const mark = marker("down");
    const res = await sendToOnly(down, {}, mark, await externalToken(down, AUDIENCE, { key: standIn.keys.a }));
    expect(res.headers.get("Retry-After")).toBe("10");
    await expectJSONError(res, 503, "temporarily_unavailable");
    await expectOriginNotContacted(mark);
    const logged = lines.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : []));
    expect(logged).toContainEqual(expect.objectContaining({ event: "remote_document_failed" }));
    expect(logged).toContainEqual(expect.objectContaining({ event: "gateway_denied", error: "temporarily_unavailable" }));
  });

  it("refuses a JWKS holding a private or a symmetric key: 503, and the origin is not contacted", async () => {
    for (const behaviour of ["private", "oct"]) {
      const issuer = freshIssuer(standIn, behaviour);
      const mark = marker(behaviour);
      const token = await externalToken(issuer, AUDIENCE, { key: standIn.keys.a });
      const res = await sendToOnly(issuer, { jwks_uri: `${issuer}/jwks` }, mark, token);
      await expectJSONError(res, 503, "temporarily_unavailable");
      await expectOriginNotContacted(mark);
    }
  });
});

describe("the typ rule per issuer at the gateway", () => {
  it("refuses a plain JWT from the at+jwt issuer, and a dpop+jwt from the plain one", async () => {
    const { send, plainToken, typedToken } = setup();
    for (const token of [await typedToken({ header: { typ: "JWT" } }), await plainToken({ header: { typ: "dpop+jwt" } })]) {
      const mark = marker("typ");
      await expectBearerError(await send(`/ext/${mark}`, token), { status: 401, error: "invalid_token", realm: LOCAL_ISSUER });
      await expectOriginNotContacted(mark);
    }
  });
});

describe("per-client rate limits on a route with external issuers", () => {
  it("counts an external client apart from a Tollgate client of the same id", async () => {
    const { plain, overrides, plainToken } = setup();
    const client = await seedClient();
    const routes = [
      { prefix: "/ext", origin: env.TEST_ORIGIN_URL, audience: AUDIENCE, issuers: ["self", plain], rate_limit: "TEST_STRICT_LIMITER" },
    ];
    const limited = { ...overrides, GATEWAY_ROUTES: JSON.stringify(routes) };
    const send = (token: string) =>
      fetchWithEnv(`${LOCAL_ISSUER}/ext/${marker("limit")}`, { headers: { Authorization: `Bearer ${token}` } }, limited);
    // TEST_STRICT_LIMITER allows 3 a minute per key.
    const external = await plainToken({ claims: { azp: client.client_id } });
    for (let i = 0; i < 3; i++) await expectProxied(await send(external));
    await expectJSONError(await send(external), 429, "temporarily_unavailable");
    await expectProxied(await send(await ownTokenOf(client, limited)));
  });
});

describe("a WebSocket opened with an external token", () => {
  it("is not closed by the status checks (no status applies), and closes with 1008 at its exp", { timeout: 120_000 }, async () => {
    const { plain, overrides, plainToken } = setup();
    const routes = [{ prefix: "/ws", origin: env.TEST_ORIGIN_URL, audience: AUDIENCE, websocket: true, issuers: [plain] }];
    // Room for one status check period and a slow machine before exp.
    const exp = nowSeconds() + 3 * REVOCATION_CHECK_SECONDS + 15;
    const token = await plainToken({ claims: { exp } });
    const res = await fetchWithEnv(
      `${LOCAL_ISSUER}/ws/chat`,
      { headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` } },
      { ...overrides, GATEWAY_ROUTES: JSON.stringify(routes) },
    );
    expect(res.status).toBe(101);
    const socket = res.webSocket!;
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason, at: Date.now() })),
    );
    socket.accept();
    // Past the first status checks (every REVOCATION_CHECK_SECONDS): still open. The wait ends well
    // before exp, however long the setup took, and must still span a check period.
    const wait = Math.min((REVOCATION_CHECK_SECONDS + 5) * 1000, exp * 1000 - Date.now() - 5000);
    expect(wait, "setup left no check period before exp").toBeGreaterThan(REVOCATION_CHECK_SECONDS * 1000);
    const early = await Promise.race([closed, new Promise<"open">((resolve) => setTimeout(() => resolve("open"), wait))]);
    expect(early).toBe("open");
    const end = await closed;
    expect(end).toMatchObject({ code: 1008, reason: "access token expired" });
    expect(end.at).toBeGreaterThanOrEqual(exp * 1000);
  });
});

describe("claims that become identity headers", () => {
  it("refuses an identity or jti that is no plain header value (control characters, non-ASCII, spaces at the ends, too long): 401, never a 500", async () => {
    const { send, plainToken } = setup();
    for (const claims of [
      { azp: "app\r\nX-Injected: 1" },
      { azp: "app\u0000" },
      { azp: "äpp" },
      { azp: " admin" },
      { azp: "a".repeat(257) },
      { azp: "" },
      { jti: "j\n1" },
      { jti: 7 },
    ]) {
      const mark = marker("identity");
      await expectBearerError(await send(`/ext/${mark}`, await plainToken({ claims })), {
        status: 401,
        error: "invalid_token",
        realm: LOCAL_ISSUER,
      });
      await expectOriginNotContacted(mark);
    }
    // The longest and oddest accepted: 256 printable characters, inner spaces, then passed as they are.
    const longest = `a b${"~".repeat(252)}z`;
    const echo = await expectProxied(await send(`/ext/${marker("identity")}`, await plainToken({ claims: { azp: longest, jti: "x y" } })));
    expect(identity(echo)).toMatchObject({ "X-Tollgate-Client-Id": [longest], "X-Tollgate-Token-Id": ["x y"] });
  });
});

describe("an external issuer's sender-constrained tokens (RFC 7800 cnf)", () => {
  it("enforces a DPoP binding (cnf.jkt) as for Tollgate's own tokens, and refuses any other confirmation", async () => {
    const { overrides, send, plainToken } = setup();
    const key = await proofKey();
    const bound = await plainToken({ claims: { cnf: { jkt: await calculateJwkThumbprint(key.jwk) } } });
    const dpop = async (path: string, token: string) =>
      fetchWithEnv(
        `${LOCAL_ISSUER}${path}`,
        {
          headers: {
            Authorization: `DPoP ${token}`,
            DPoP: await signProof(key, { url: `${LOCAL_ISSUER}${path}`, accessToken: token }),
          },
        },
        overrides,
      );
    const refused = async (res: Response, mark: string, scheme: "Bearer" | "DPoP") => {
      const body = (await res.json()) as Record<string, string>;
      expect({ status: res.status, error: body.error }).toEqual({ status: 401, error: "invalid_token" });
      expect(res.headers.get("WWW-Authenticate")).toMatch(new RegExp(`^${scheme} `));
      await expectOriginNotContacted(mark);
    };
    // The bound token: as Bearer refused (a stolen copy is useless), as DPoP with its key's proof proxied.
    let mark = marker("bound-bearer");
    await refused(await send(`/ext/${mark}`, bound), mark, "DPoP");
    await expectProxied(await dpop(`/ext/${marker("bound-dpop")}`, bound));
    // An unbound external token sent with the DPoP scheme and a valid proof: refused.
    mark = marker("unbound-dpop");
    await refused(await dpop(`/ext/${mark}`, await plainToken()), mark, "DPoP");
    // A binding this gateway cannot check (a certificate's thumbprint, an unknown method): refused.
    for (const cnf of [{ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }, { jkt: "x", kid: "y" }, "jkt"]) {
      mark = marker("other-cnf");
      await refused(await send(`/ext/${mark}`, await plainToken({ claims: { cnf } })), mark, "Bearer");
    }
  });
});
