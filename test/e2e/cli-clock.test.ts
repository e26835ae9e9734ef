/**
 * The clock `tollgate keys rotate` counts `since` from (cli/clock.ts), against a real HTTP server on
 * loopback standing in for Cloudflare's API, whose `Date` header each test sets.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseRotationTime, ClockError, MAX_CLOCK_SKEW_SECONDS, measureClockSkew } from "../../cli/clock.ts";

/** How far the server's clock is from this one, in ms; null: no Date header. */
let serverOffsetMs: number | null = 0;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((_, res) => {
    if (serverOffsetMs === null) res.sendDate = false;
    else res.setHeader("Date", new Date(Date.now() + serverOffsetMs).toUTCString());
    res.end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/client/v4/ips`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("keys rotate counts since from Cloudflare's clock when this machine's is off", () => {
  it("measures a clock 90 s behind the server's to within the Date header's second and the round trip", async () => {
    serverOffsetMs = 90_000;
    const skew = await measureClockSkew(url);
    expect(skew.uncertaintyMs).toBeLessThan(2000);
    expect(Math.abs(skew.skewMs - -90_000)).toBeLessThanOrEqual(skew.uncertaintyMs);
  });

  it("counts from the server's clock when this one is behind, and says so", async () => {
    serverOffsetMs = 90_000;
    const local = Date.now();
    const time = chooseRotationTime(local, await measureClockSkew(url));
    expect(Math.abs(time.now - (local + 90_000) / 1000)).toBeLessThanOrEqual(2);
    expect(time.warning).toMatch(/this machine's clock is 9\d s behind Cloudflare's; since counts from Cloudflare's clock/);
  });

  it("counts from the server's clock when this one is ahead (an emergency rotation is not delayed)", async () => {
    serverOffsetMs = -600_000;
    const local = Date.now();
    const time = chooseRotationTime(local, await measureClockSkew(url));
    expect(Math.abs(time.now - (local - 600_000) / 1000)).toBeLessThanOrEqual(2);
    expect(time.warning).toMatch(/is 60\d s ahead of Cloudflare's/);
  });

  it(`keeps this machine's clock, silently, within ${MAX_CLOCK_SKEW_SECONDS} s`, async () => {
    serverOffsetMs = 0;
    const local = Date.now();
    const time = chooseRotationTime(local, await measureClockSkew(url));
    expect(time).toEqual({ now: Math.floor(local / 1000) });
  });

  it("keeps this machine's clock with a warning when the server sends no Date, or does not answer", async () => {
    serverOffsetMs = null;
    const missing = await measureClockSkew(url).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(ClockError);
    const local = Date.now();
    expect(chooseRotationTime(local, missing as ClockError)).toEqual({
      now: Math.floor(local / 1000),
      warning: expect.stringMatching(/could not read Cloudflare's clock .*without a Date header.*unchecked/),
    });
    const refused = await measureClockSkew("http://127.0.0.1:1/").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ClockError);
    expect((refused as Error).message).toMatch(/did not answer/);
  });
});
