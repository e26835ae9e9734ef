/**
 * Abuse limits (docs/security.md item 17): /token per address, failed authentications per client and
 * address, issuance per client, and the gateway's per-client route limit. Each test swaps in the
 * strict limiter (3 a minute) and uses keys of its own.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CHECK_TURN_TIMEOUT_MS, oneCheckAtATime } from "../../src/client-auth/failures.ts";
import { basic, FORM, fetchWithEnv, seedClient, TOKEN_URL } from "../support/worker.ts";
import { marker, expectOriginNotContacted, gatewayFetch, withBearer } from "../support/gateway.ts";

const strict = (name: string) => ({ [name]: env.TEST_STRICT_LIMITER });
/** TEST_STRICT_LIMITER's budget (vitest.config.ts). */
const STRICT_LIMIT = 3;

afterEach(() => {
  vi.restoreAllMocks();
});

function token(auth: string, address: string, overrides: Record<string, unknown>): Promise<Response> {
  return fetchWithEnv(
    TOKEN_URL,
    {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: auth, "CF-Connecting-IP": address },
      body: "grant_type=client_credentials",
    },
    overrides,
  );
}

async function expectTooMany(res: Response): Promise<void> {
  expect(res.status).toBe(429);
  expect(res.headers.get("Retry-After")).toBe("60");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  const body = (await res.json()) as Record<string, string>;
  expect(body.error).toBe("temporarily_unavailable");
  expect(body).not.toHaveProperty("access_token");
}

describe("abuse limits on /token", () => {
  it("limits every request per client address, with 429 and Retry-After", async () => {
    const client = await seedClient();
    const address = `198.51.100.${Math.floor(Math.random() * 250)}-${crypto.randomUUID()}`;
    for (let i = 0; i < 3; i++)
      expect((await token(basic(client.client_id, client.client_secret), address, strict("TOKEN_IP_LIMITER"))).status).toBe(200);
    await expectTooMany(await token(basic(client.client_id, client.client_secret), address, strict("TOKEN_IP_LIMITER")));
    // Another address is not affected.
    expect((await token(basic(client.client_id, client.client_secret), `other-${address}`, strict("TOKEN_IP_LIMITER"))).status).toBe(200);
  });

  it("blocks a client and address pair after repeated failures, even with the right secret, but not the client elsewhere", async () => {
    const client = await seedClient();
    const attacker = `attacker-${crypto.randomUUID()}`;
    const wrong = basic(client.client_id, `${client.client_secret.split(".")[0]}.wrong`);
    for (let i = 0; i < 3; i++) expect((await token(wrong, attacker, strict("TOKEN_FAILURE_LIMITER"))).status).toBe(401);
    await expectTooMany(await token(wrong, attacker, strict("TOKEN_FAILURE_LIMITER")));
    // A right guess from the blocked address is refused too: guessing gains nothing there.
    await expectTooMany(await token(basic(client.client_id, client.client_secret), attacker, strict("TOKEN_FAILURE_LIMITER")));
    // The legitimate client at its own address is not locked out.
    expect(
      (await token(basic(client.client_id, client.client_secret), `legit-${crypto.randomUUID()}`, strict("TOKEN_FAILURE_LIMITER"))).status,
    ).toBe(200);
  });

  it("checks at most limit + 1 secrets for 40 concurrent wrong guesses at one client from one address", async () => {
    const client = await seedClient();
    const attacker = `burst-${crypto.randomUUID()}`;
    const wrong = basic(client.client_id, `${client.client_secret.split(".")[0]}.wrong`);
    const pbkdf2 = vi.spyOn(crypto.subtle, "deriveBits");
    const answers = await Promise.all(Array.from({ length: 40 }, () => token(wrong, attacker, strict("TOKEN_FAILURE_LIMITER"))));
    const statuses = answers.map((res) => res.status);
    // One check at a time per client and address: the ones waiting meet the block the 4th check sets.
    expect(pbkdf2.mock.calls.length).toBe(STRICT_LIMIT + 1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(STRICT_LIMIT);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40 - STRICT_LIMIT);
    await expectTooMany(answers.find((res) => res.status === 429)!);
  });

  it("lets concurrent first requests of a legitimate client through with one PBKDF2 between them", async () => {
    const client = await seedClient();
    const address = `fleet-${crypto.randomUUID()}`;
    const pbkdf2 = vi.spyOn(crypto.subtle, "deriveBits");
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => token(basic(client.client_id, client.client_secret), address, strict("TOKEN_FAILURE_LIMITER"))),
    );
    expect(answers.map((res) => res.status)).toEqual(Array(20).fill(200));
    expect(pbkdf2.mock.calls.length).toBe(1);
  });

  it("answers every one of concurrent wrong guesses arriving as separate requests, each checked in turn", async () => {
    const client = await seedClient();
    const wrong = basic(client.client_id, `${client.client_secret.split(".")[0]}.wrong`);
    const address = `turns-${crypto.randomUUID()}`;
    const pbkdf2 = vi.spyOn(crypto.subtle, "deriveBits");
    // Through the Worker's entry point: each request has its own context, and the production-shaped
    // (here lenient) failure limiter never blocks, so every guess gets its check, one after another.
    const answers = await Promise.all(
      Array.from({ length: 12 }, () =>
        exports.default.fetch(TOKEN_URL, {
          method: "POST",
          headers: { "Content-Type": FORM, Authorization: wrong, "CF-Connecting-IP": address },
          body: "grant_type=client_credentials",
        }),
      ),
    );
    expect(answers.map((res) => res.status)).toEqual(Array(12).fill(401));
    expect(pbkdf2.mock.calls.length).toBe(12);
  });

  it("does not count successful authentications as failures", async () => {
    const client = await seedClient();
    const address = `ok-${crypto.randomUUID()}`;
    for (let i = 0; i < 5; i++)
      expect((await token(basic(client.client_id, client.client_secret), address, strict("TOKEN_FAILURE_LIMITER"))).status).toBe(200);
  });

  it("limits tokens issued per client", async () => {
    const client = await seedClient();
    for (let i = 0; i < 3; i++)
      expect(
        (await token(basic(client.client_id, client.client_secret), `a${i}-${crypto.randomUUID()}`, strict("TOKEN_CLIENT_LIMITER"))).status,
      ).toBe(200);
    await expectTooMany(
      await token(basic(client.client_id, client.client_secret), `a4-${crypto.randomUUID()}`, strict("TOKEN_CLIENT_LIMITER")),
    );
  });
});

describe("per-client limit on a gateway route (rate_limit)", () => {
  it("answers 429 past the limit for one client, never reaching the origin, while another client goes on", async () => {
    const first = await seedClient();
    const second = await seedClient();
    const tokens: string[] = [];
    for (const client of [first, second]) {
      const res = await token(basic(client.client_id, client.client_secret), `gw-${crypto.randomUUID()}`, {});
      tokens.push(((await res.json()) as { access_token: string }).access_token);
    }
    for (let i = 0; i < 3; i++) expect((await gatewayFetch(`/limited/${marker("ok")}`, withBearer(tokens[0]!))).status).toBe(200);
    const mark = marker("limited");
    await expectTooMany(await gatewayFetch(`/limited/${mark}`, withBearer(tokens[0]!)));
    await expectOriginNotContacted(mark);
    expect((await gatewayFetch(`/limited/${marker("other")}`, withBearer(tokens[1]!))).status).toBe(200);
  });
});

describe("rate_limit in GATEWAY_ROUTES", () => {
  it("is refused on a public route and when it is not a binding name, naming the field", async () => {
    const { parseGatewayRoutes } = await import("../../src/gateway/route-table.ts");
    const base = { prefix: "/x", origin: "https://o.example" };
    expect(() => parseGatewayRoutes([{ ...base, public: true, rate_limit: "L" }])).toThrow(
      /GATEWAY_ROUTES\[0\]\.rate_limit: needs a protected route/,
    );
    expect(() => parseGatewayRoutes([{ ...base, audience: "https://a", rate_limit: "not a name" }])).toThrow(
      /GATEWAY_ROUTES\[0\]\.rate_limit/,
    );
    expect(parseGatewayRoutes([{ ...base, audience: "https://a", rate_limit: "ORDERS_LIMITER" }])[0]!.rateLimit).toBe("ORDERS_LIMITER");
  });

  it("answers a JSON 500, never the origin, when the named binding is not bound", async () => {
    const client = await seedClient();
    const res = await token(basic(client.client_id, client.client_secret), `nb-${crypto.randomUUID()}`, {});
    const { access_token } = (await res.json()) as { access_token: string };
    const mark = marker("unbound");
    const answer = await fetchWithEnv(`${env.ISSUER}/limited/${mark}`, withBearer(access_token), { TEST_STRICT_LIMITER: undefined });
    expect(answer.status).toBe(500);
    expect(await answer.json()).toEqual({ error: "server_error", error_description: "the gateway is misconfigured" });
    await expectOriginNotContacted(mark);
  });
});

describe("oneCheckAtATime", () => {
  it("runs the checks of one key one at a time", async () => {
    const key = `order-${crypto.randomUUID()}`;
    const events: string[] = [];
    const check = (name: string) => async () => {
      events.push(`${name} start`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push(`${name} end`);
      return name;
    };
    expect(await Promise.all(["a", "b", "c"].map((name) => oneCheckAtATime(key, check(name))))).toEqual(["a", "b", "c"]);
    expect(events).toHaveLength(6);
    for (let i = 0; i < 6; i += 2) expect(events[i + 1]).toBe(events[i]!.replace("start", "end"));
  });

  it("takes over a turn not released within CHECK_TURN_TIMEOUT_MS (a cancelled request), still one check at a time", {
    timeout: 4 * CHECK_TURN_TIMEOUT_MS,
  }, async () => {
    const key = `stuck-${crypto.randomUUID()}`;
    void oneCheckAtATime(key, () => new Promise<never>(() => {}));
    const events: string[] = [];
    const second = oneCheckAtATime(key, async () => {
      events.push("second start");
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push("second end");
    });
    const third = oneCheckAtATime(key, async () => {
      events.push("third start");
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push("third end");
    });
    await Promise.all([second, third]);
    expect(events).toHaveLength(4);
    expect(events[1]).toBe(events[0]!.replace("start", "end"));
    expect(events[3]).toBe(events[2]!.replace("start", "end"));
  });

  it("keeps keys apart: a waiting check of one pair does not hold up another", async () => {
    const held = `held-${crypto.randomUUID()}`;
    let release!: () => void;
    const holder = oneCheckAtATime(held, () => new Promise<void>((resolve) => (release = resolve)));
    expect(await oneCheckAtATime(`free-${crypto.randomUUID()}`, async () => "ran")).toBe("ran");
    release();
    await holder;
  });
});
