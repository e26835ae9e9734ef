/**
 * Audit lines and per-client metrics: every token issued or refused and every gateway denial is one
 * JSON log line with client_id, scope, jti, reason and route, never a secret or a whole token; with
 * a METRICS dataset bound, each is also a data point indexed by client_id.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { basic, FORM, fetchWithEnv, seedClient, TOKEN_URL } from "../support/worker.ts";
import { marker, withBearer } from "../support/gateway.ts";

/** Records what the Worker writes: Analytics Engine has no local query side to read back from. */
function recordingDataset(): { dataset: AnalyticsEngineDataset; points: AnalyticsEngineDataPoint[] } {
  const points: AnalyticsEngineDataPoint[] = [];
  return { dataset: { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void points.push(p!) }, points };
}

function captureLog(): () => Record<string, unknown>[] {
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
  return () => lines.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : []));
}

afterEach(() => vi.restoreAllMocks());

async function tokenFor(
  client: { client_id: string; client_secret: string },
  overrides: Record<string, unknown>,
  scope?: string,
): Promise<Response> {
  return fetchWithEnv(
    TOKEN_URL,
    {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body: `grant_type=client_credentials${scope ? `&scope=${encodeURIComponent(scope)}` : ""}`,
    },
    overrides,
  );
}

describe("audit lines and metrics", () => {
  it("logs and counts an issued token by client, with scope and jti, never the token or secret", async () => {
    const client = await seedClient();
    const { dataset, points } = recordingDataset();
    const lines = captureLog();
    const res = await tokenFor(client, { METRICS: dataset });
    const { access_token } = (await res.json()) as { access_token: string };
    const issued = lines().find((l) => l.event === "token_issued")!;
    expect(issued).toMatchObject({ client_id: client.client_id, scope: "orders:read" });
    expect(issued.jti).toMatch(/^[0-9a-f-]{36}$/);
    const all = JSON.stringify(lines());
    expect(all).not.toContain(access_token);
    expect(all).not.toContain(client.client_secret);
    expect(points).toContainEqual({ indexes: [client.client_id], blobs: ["token_issued", client.client_id, "", ""], doubles: [1] });
  });

  it("logs and counts a refused token request with the claimed client_id and the reason", async () => {
    const client = await seedClient();
    const { dataset, points } = recordingDataset();
    const lines = captureLog();
    const wrong = `${client.client_secret.split(".")[0]}.not-the-secret`;
    const res = await tokenFor({ client_id: client.client_id, client_secret: wrong }, { METRICS: dataset });
    expect(res.status).toBe(401);
    const refused = lines().find((l) => l.event === "token_refused")!;
    expect(refused).toMatchObject({ client_id: client.client_id, error: "invalid_client" });
    expect(String(refused.reason)).toContain("wrong secret");
    expect(JSON.stringify(lines())).not.toContain(wrong);
    expect(points).toContainEqual({
      indexes: [client.client_id],
      blobs: ["token_refused", client.client_id, "", "invalid_client"],
      doubles: [1],
    });
  });

  it("logs a gateway denial with client_id, jti, scope and route, and counts allowed requests", async () => {
    const client = await seedClient();
    const { access_token } = (await (await tokenFor(client, {}, "orders:read")).json()) as { access_token: string };
    const { dataset, points } = recordingDataset();
    const lines = captureLog();
    const denied = await fetchWithEnv(`${env.ISSUER}/api/${marker("audit")}`, withBearer(access_token, { method: "POST", body: "{}" }), {
      METRICS: dataset,
    });
    expect(denied.status).toBe(403);
    const line = lines().find((l) => l.event === "gateway_denied")!;
    expect(line).toMatchObject({ client_id: client.client_id, scope: "orders:read", route: "/api", error: "insufficient_scope" });
    expect(line.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(lines())).not.toContain(access_token);
    const allowed = await fetchWithEnv(`${env.ISSUER}/api/${marker("audit-ok")}`, withBearer(access_token), { METRICS: dataset });
    expect(allowed.status).toBe(200);
    expect(points).toContainEqual({
      indexes: [client.client_id],
      blobs: ["gateway_denied", client.client_id, "/api", "insufficient_scope"],
      doubles: [1],
    });
    expect(points).toContainEqual({ indexes: [client.client_id], blobs: ["gateway_allowed", client.client_id, "/api", ""], doubles: [1] });
  });

  it("logs a request without a token as a denial on its route", async () => {
    const lines = captureLog();
    const res = await fetchWithEnv(`${env.ISSUER}/api/${marker("anon")}`, {}, {});
    expect(res.status).toBe(401);
    expect(lines().find((l) => l.event === "gateway_denied")).toMatchObject({ route: "/api", error: "no_token" });
  });
});
