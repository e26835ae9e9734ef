/**
 * requireAccessToken (src/endpoints/access-token.ts), the one access-token check of the gateway and
 * the admin API, and the refusal events each endpoint declares for src/index.ts's onError (no
 * event is chosen by matching the path).
 */
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { afterEach, describe, expect, it, vi } from "vitest";
import { accessTokenOf, requireAccessToken } from "../../src/endpoints/access-token.ts";
import type { AppEnv } from "../../src/endpoints/app-env.ts";
import { BearerError } from "../../src/http/errors.ts";
import { fetchWithEnv, issueToken, seedClient } from "../support/worker.ts";

function captureLog(): () => Record<string, unknown>[] {
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
  return () => lines.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : []));
}

afterEach(() => vi.restoreAllMocks());

/** A protected sub-app of its own: what a new endpoint gets by using the middleware. */
function protectedApp(scopes: string[]): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get(
    "/thing",
    requireAccessToken({
      audience: (_c, config) => config.defaultAudience,
      scopes: () => scopes,
      missing: "a token is required",
      audit: true,
    }),
    (c) => c.json({ client: accessTokenOf(c).client_id, audit: c.get("audit") }),
  );
  app.onError((error) => {
    if (error instanceof BearerError) return Response.json({ status: error.status, code: error.code ?? null }, { status: error.status });
    throw error;
  });
  return app;
}

describe("requireAccessToken", () => {
  it("passes a valid token with the scopes, leaving its claims and the audit fields in the context", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client, { scope: "orders:read" });
    const res = await protectedApp(["orders:read"]).request("/thing", { headers: { Authorization: `Bearer ${access_token}` } }, env);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { client: string; audit: Record<string, string> };
    expect(body.client).toBe(client.client_id);
    expect(body.audit).toMatchObject({ client_id: client.client_id, scope: "orders:read" });
  });

  it("refuses no token (401), a missing scope (403), and a token of a disabled client (401)", async () => {
    const client = await seedClient();
    const { access_token } = await issueToken(client, { scope: "orders:read" });
    expect((await protectedApp(["orders:read"]).request("/thing", {}, env)).status).toBe(401);
    const scoped = await protectedApp(["orders:write"]).request("/thing", { headers: { Authorization: `Bearer ${access_token}` } }, env);
    expect(scoped.status).toBe(403);
    expect(await scoped.json()).toMatchObject({ code: "insufficient_scope" });
    const disabled = await seedClient();
    const { access_token: stale } = await issueToken(disabled, { scope: "orders:read" });
    await env.CLIENTS.put(
      `client:${disabled.client_id}`,
      JSON.stringify({ ...JSON.parse((await env.CLIENTS.get(`client:${disabled.client_id}`))!), disabled: true }),
    );
    const res = await protectedApp(["orders:read"]).request("/thing", { headers: { Authorization: `Bearer ${stale}` } }, env);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: "invalid_token" });
  });
});

describe("refusal events come from the endpoint that refused", () => {
  it("/register without a token is admin_denied; a method /register does not serve is 405 before any token check", async () => {
    const lines = captureLog();
    expect((await fetchWithEnv(`${env.ISSUER}/register`, { method: "POST" }, {})).status).toBe(401);
    expect(lines().map((l) => l.event)).toContain("admin_denied");
    expect((await fetchWithEnv(`${env.ISSUER}/register/someone`, { method: "PATCH" }, {})).status).toBe(405);
  });

  it("/token refusals are token_refused; a path under /token that the gateway serves is not", async () => {
    const lines = captureLog();
    expect((await fetchWithEnv(`${env.ISSUER}/token`, { method: "GET" }, {})).status).toBe(405);
    expect(lines().at(-1)).toMatchObject({ event: "token_refused", path: "/token" });
    expect((await fetchWithEnv(`${env.ISSUER}/token/more`, { method: "GET" }, {})).status).toBe(404);
    expect(lines().at(-1)).toMatchObject({ event: "request_refused", path: "/token/more" });
  });
});
