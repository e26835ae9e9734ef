/**
 * WebSockets on a protected route (websocket = true) live no longer than the token they were
 * opened with: closed with 1008 at its `exp`, and once a status check finds it revoked. Through the
 * Worker's entry point, to the real echo origin on loopback (its WebSocket echoes "<client>: <msg>").
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { recordRevocation } from "../../src/tokens/revocation.ts";
import { REVOCATION_CHECK_SECONDS } from "../../src/policy.ts";
import { gatewayFetch, withBearer } from "../support/gateway.ts";
import { accessTokenClaims, mintToken, nowSeconds } from "../support/tokens.ts";

interface OpenSocket {
  socket: WebSocket;
  messages: string[];
  closed: Promise<{ code: number; reason: string; at: number }>;
}

async function openSocket(token: string): Promise<OpenSocket> {
  const res = await gatewayFetch("/ws/chat", withBearer(token, { headers: { Upgrade: "websocket" } }));
  expect(res.status).toBe(101);
  const socket = res.webSocket!;
  const messages: string[] = [];
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => {
    socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason, at: Date.now() }));
  });
  socket.addEventListener("message", (event) => messages.push(event.data as string));
  socket.accept();
  return { socket, messages, closed };
}

/** Polls until `check` holds, for at most `deadlineMs` (generous: never a race with a clock). */
async function until(check: () => boolean, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(check()).toBe(true);
}

/** The close, or "open" if none came within `deadlineMs`. */
function closeWithin(open: OpenSocket, deadlineMs: number): Promise<{ code: number; reason: string; at: number } | "open"> {
  return Promise.race([open.closed, new Promise<"open">((resolve) => setTimeout(() => resolve("open"), deadlineMs))]);
}

describe("WebSockets end with their access token", () => {
  it("relays messages, then closes with 1008 at the token's exp", { timeout: 60_000 }, async () => {
    const claims = accessTokenClaims({ exp: nowSeconds() + 3 });
    const open = await openSocket(await mintToken({ claims }));
    open.socket.send("ping");
    await until(() => open.messages.length === 1, 10_000);
    expect(open.messages).toEqual(["gateway-test-client: ping"]);
    const closed = await closeWithin(open, 30_000);
    expect(closed).toMatchObject({ code: 1008, reason: "access token expired" });
    expect((closed as { at: number }).at).toBeGreaterThanOrEqual((claims.exp as number) * 1000);
  });

  it("closes with 1008 once a status check finds the token revoked, within three check periods", { timeout: 90_000 }, async () => {
    const claims = accessTokenClaims({ exp: nowSeconds() + 300 });
    const open = await openSocket(await mintToken({ claims }));
    open.socket.send("before");
    await until(() => open.messages.length === 1, 10_000);
    await recordRevocation(env.CLIENTS, claims as { jti: string; client_id: string; exp: number }, nowSeconds());
    // The status the upgrade read is remembered for REVOCATION_CHECK_SECONDS; checks run as often.
    const closed = await closeWithin(open, (3 * REVOCATION_CHECK_SECONDS + 10) * 1000);
    expect(closed).toMatchObject({ code: 1008, reason: "access token revoked" });
  });

  it("leaves a socket of a valid token open, relaying both ways", { timeout: 30_000 }, async () => {
    const open = await openSocket(await mintToken({ claims: accessTokenClaims({ exp: nowSeconds() + 300 }) }));
    for (const text of ["one", "two"]) open.socket.send(text);
    await until(() => open.messages.length === 2, 10_000);
    expect(open.messages).toEqual(["gateway-test-client: one", "gateway-test-client: two"]);
    open.socket.close(1000, "done");
    await open.closed;
  });
});
