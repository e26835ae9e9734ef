import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  basic,
  expectJSONError,
  buildClientRecord,
  fetchWithEnv,
  putClientRecord,
  requestToken,
  seedClient,
  tokenRequest,
  tokenRequestObject,
} from "../support/worker.ts";
import { nowSeconds } from "../support/tokens.ts";
import { generateClientSecret, hashClientSecret } from "../../src/clients/secret.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

interface Snapshot {
  status: number;
  body: string;
  wwwAuthenticate: string | null;
  cacheControl: string | null;
  contentType: string | null;
}

async function snapshot(res: Response): Promise<Snapshot> {
  return {
    status: res.status,
    body: await res.text(),
    wwwAuthenticate: res.headers.get("WWW-Authenticate"),
    cacheControl: res.headers.get("Cache-Control"),
    contentType: res.headers.get("Content-Type"),
  };
}

/** The deployment's PBKDF2_ITERATIONS (wrangler.toml [vars]): what new secrets and the dummy hash cost. */
const CONFIGURED_ITERATIONS = Number(env.PBKDF2_ITERATIONS);

/** The iteration count of every PBKDF2 the Worker runs while `send` is awaited. */
async function pbkdf2Counts(send: () => Promise<Response>): Promise<{ status: number; iterations: number[] }> {
  // The Worker runs in the test's isolate, so its Web Crypto calls can be observed.
  const deriveBits = vi.spyOn(crypto.subtle, "deriveBits");
  deriveBits.mockClear();
  const res = await send();
  const iterations = deriveBits.mock.calls.map(([params]) => (params as SubtleCryptoDeriveKeyAlgorithm).iterations!);
  deriveBits.mockRestore();
  return { status: res.status, iterations };
}

describe("RFC 6749 §5.2 invalid_client, indistinguishable failures (docs/security.md item 16)", () => {
  it("answers invalid_client with WWW-Authenticate when Basic was used", async () => {
    const client = await seedClient();
    const res = await tokenRequest(
      { grant_type: "client_credentials" },
      { Authorization: basic(client.client_id, `${client.client_secret}x`) },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe('Basic realm="https://auth.tollgate.test", charset="UTF-8"');
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(await res.json()).toEqual({ error: "invalid_client", error_description: "client authentication failed" });
  });

  it("answers unknown client, wrong secret, disabled client, expired secret and unknown secret id identically", async () => {
    const active = await seedClient();
    const disabled = await seedClient({ disabled: true });
    const expired = await seedClient({ secrets: [{ expires_at: nowSeconds() - 10 }] });
    const wrongSecret = `${active.client_secret.split(".")[0]}.${generateClientSecret().secret.split(".")[1]}`;
    const unknownSecretId = `${generateClientSecret().id}.${active.client_secret.split(".")[1]}`;

    const failures: Record<string, Snapshot> = {
      "unknown client": await snapshot(
        await requestToken({ client_id: `unknown-${crypto.randomUUID()}`, client_secret: active.client_secret }),
      ),
      "wrong secret": await snapshot(await requestToken({ client_id: active.client_id, client_secret: wrongSecret })),
      "disabled client": await snapshot(await requestToken(disabled)),
      "expired secret": await snapshot(await requestToken(expired)),
      "unknown secret id": await snapshot(await requestToken({ client_id: active.client_id, client_secret: unknownSecretId })),
      "secret without an id": await snapshot(await requestToken({ client_id: active.client_id, client_secret: "no-dot-at-all" })),
      "another client's secret": await snapshot(await requestToken({ client_id: active.client_id, client_secret: disabled.client_secret })),
    };

    const reference = failures["unknown client"]!;
    expect(reference.status).toBe(401);
    expect(JSON.parse(reference.body)).toEqual({ error: "invalid_client", error_description: "client authentication failed" });
    expect(reference.wwwAuthenticate).toMatch(/^Basic realm="[^"]+"/);
    expect(reference.cacheControl).toBe("no-store");
    for (const [what, snap] of Object.entries(failures)) expect(snap, what).toEqual(reference);

    // The same credentials that failed above succeed when they are right, so each case failed for its own reason.
    expect((await requestToken(active)).status).toBe(200);
  });

  it("pays exactly one PBKDF2 of PBKDF2_ITERATIONS on every failing path, as on a first success (CWE-208)", async () => {
    const active = await seedClient();
    const disabled = await seedClient({ disabled: true });
    const expired = await seedClient({ secrets: [{ expires_at: nowSeconds() - 10 }] });
    const cases: Record<string, { client_id: string; client_secret: string }> = {
      success: active,
      "unknown client": { client_id: `unknown-${crypto.randomUUID()}`, client_secret: active.client_secret },
      "wrong secret": { client_id: active.client_id, client_secret: `${active.client_secret}x` },
      "unknown secret id": { client_id: active.client_id, client_secret: `zz${active.client_secret}` },
      "secret without an id": { client_id: active.client_id, client_secret: "no-dot-at-all" },
      "disabled client": disabled,
      "expired secret": expired,
    };
    for (const [what, credentials] of Object.entries(cases)) {
      const { status, iterations } = await pbkdf2Counts(() => requestToken(credentials));
      expect(status, what).toBe(what === "success" ? 200 : 401);
      expect(iterations, what).toEqual([CONFIGURED_ITERATIONS]);
    }
  });

  it("answers the same status and body whether the failing client used Basic or client_secret_post; the Basic challenge only to Basic", async () => {
    const client = await seedClient();
    const viaBasic = await snapshot(await requestToken({ client_id: client.client_id, client_secret: "s1.wrong" }));
    const viaPost = await snapshot(
      await tokenRequest({ grant_type: "client_credentials", client_id: client.client_id, client_secret: "s1.wrong" }),
    );
    expect(viaBasic.wwwAuthenticate).toBe('Basic realm="https://auth.tollgate.test", charset="UTF-8"');
    expect(viaPost.wwwAuthenticate).toBeNull();
    expect({ ...viaPost, wwwAuthenticate: undefined }).toEqual({ ...viaBasic, wwwAuthenticate: undefined });
  });

  it("accepts a secret whose expires_at is still in the future", async () => {
    const client = await seedClient({ secrets: [{ expires_at: nowSeconds() + 3600 }] });
    expect((await requestToken(client)).status).toBe(200);
  });

  it("refuses a disabled client even with the right secret, and accepts it once enabled", async () => {
    const client = await seedClient({ disabled: true });
    expect((await requestToken(client)).status).toBe(401);
    await putClientRecord({ ...client.record, client_id: client.client_id, disabled: false });
    expect((await requestToken(client)).status).toBe(200);
  });
});

describe("PBKDF2_ITERATIONS: the work factor moves, stored hashes keep theirs", () => {
  it("makes an unknown client or secret id pay a dummy PBKDF2 at the configured count, whatever it is", async () => {
    const client = await seedClient();
    const unknownSecretId = `${generateClientSecret().id}.${client.client_secret.split(".")[1]}`;
    for (const configured of [10_000, 40_000]) {
      const vars = { PBKDF2_ITERATIONS: String(configured) };
      const unknownClient = { client_id: `unknown-${crypto.randomUUID()}`, client_secret: client.client_secret };
      for (const credentials of [unknownClient, { client_id: client.client_id, client_secret: unknownSecretId }]) {
        const { status, iterations } = await pbkdf2Counts(() => fetchWithEnv(tokenRequestObject(credentials), undefined, vars));
        expect({ status, iterations }, `${configured} ${credentials.client_id}`).toEqual({ status: 401, iterations: [configured] });
      }
    }
  });

  it("keeps verifying a secret hashed at 100,000 iterations after PBKDF2_ITERATIONS is lowered to 10,000", async () => {
    const seeded = await buildClientRecord();
    const secrets = seeded.record.secrets as { hash: string }[];
    secrets[0]!.hash = await hashClientSecret(seeded.client_secret, 100_000);
    await putClientRecord(seeded.record as { client_id: string });
    const { status, iterations } = await pbkdf2Counts(() =>
      fetchWithEnv(tokenRequestObject(seeded), undefined, { PBKDF2_ITERATIONS: "10000" }),
    );
    expect({ status, iterations }).toEqual({ status: 200, iterations: [100_000] });
    // A wrong secret for that client pays its stored count too (the dummy hash is only for unknown ids).
    const wrong = { client_id: seeded.client_id, client_secret: `${seeded.client_secret}x` };
    expect(await pbkdf2Counts(() => fetchWithEnv(tokenRequestObject(wrong), undefined, { PBKDF2_ITERATIONS: "10000" }))).toEqual({
      status: 401,
      iterations: [100_000],
    });
  });
});

describe("PBKDF2 iteration cap on stored hashes (docs/security.md item 24)", () => {
  async function seedWithIterations(iterations: number) {
    const seeded = await buildClientRecord();
    const secrets = seeded.record.secrets as { hash: string }[];
    secrets[0]!.hash = secrets[0]!.hash.replace(/\$\d+\$/, `$${iterations}$`);
    await putClientRecord(seeded.record as { client_id: string });
    return seeded;
  }

  it("issues a token for a stored hash of 100,000 iterations", async () => {
    const client = await buildClientRecord();
    (client.record.secrets as { hash: string }[])[0]!.hash = await hashClientSecret(client.client_secret, 100_000);
    await putClientRecord(client.record as { client_id: string });
    expect((await requestToken(client)).status).toBe(200);
  });

  for (const iterations of [100_001, 200_000]) {
    it(`answers a JSON 500 server_error, never a token, for a stored hash of ${iterations} iterations`, async () => {
      const client = await seedWithIterations(iterations);
      const errorLog = vi.spyOn(console, "log").mockImplementation(() => {});
      const res = await requestToken(client);
      expect(res.status).toBe(500);
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      const body = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
      expect(body.error).toBe("server_error");
      // No stack trace and no internals on the wire; the reason goes to the log only.
      expect(String(body.error_description)).not.toMatch(/iterations|RangeError|\bat\b|\.ts/);
      expect(errorLog.mock.calls.flat().join("\n")).toMatch(/iterations/);
    });
  }
});

describe("Client store failure (docs/security.md item 22)", () => {
  it("answers 503 temporarily_unavailable and issues no token when KV is down", async () => {
    const client = await seedClient();
    vi.spyOn(console, "log").mockImplementation(() => {});
    const failingKV = { get: () => Promise.reject(new Error("down")) } as unknown as KVNamespace;
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, { CLIENTS: failingKV });
    const text = JSON.stringify(await expectJSONError(res, 503, "temporarily_unavailable"));
    expect(text).not.toContain("down");
  });

  it("answers 503 when KV throws synchronously", async () => {
    const client = await seedClient();
    vi.spyOn(console, "log").mockImplementation(() => {});
    const throwingKV = {
      get: () => {
        throw new Error("binding gone");
      },
    } as unknown as KVNamespace;
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, { CLIENTS: throwingKV });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).not.toContain("access_token");
    expect(JSON.parse(text).error).toBe("temporarily_unavailable");
  });

  it("issues a token through the same direct call when KV works (the failing case is the KV)", async () => {
    const client = await seedClient();
    const res = await fetchWithEnv(tokenRequestObject(client), undefined, {});
    expect(res.status).toBe(200);
  });
});

describe("Corrupt client records", () => {
  it("answers a JSON 500 server_error, never a token, for a record that breaks a rule", async () => {
    const seeded = await buildClientRecord();
    await putClientRecord({ ...seeded.record, client_id: seeded.client_id, default_scopes: ["not-allowed"] });
    vi.spyOn(console, "log").mockImplementation(() => {});
    const res = await requestToken(seeded);
    expect(res.status).toBe(500);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.error).toBe("server_error");
    expect(body).not.toHaveProperty("access_token");
  });
  it("answers a JSON 500 server_error, not a 503, for a stored value that is not JSON", async () => {
    const clientId = `corrupt-${crypto.randomUUID()}`;
    await env.CLIENTS.put(`client:${clientId}`, "{not json");
    vi.spyOn(console, "log").mockImplementation(() => {});
    const res = await requestToken({ client_id: clientId, client_secret: "s1.x" });
    expect(res.status).toBe(500);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.error).toBe("server_error");
    expect(body).not.toHaveProperty("access_token");
  });
});

describe("Secrets never appear in logs (docs/security.md item 23)", () => {
  it("logs neither the presented secret nor the stored hash, on success or failure", async () => {
    const client = await seedClient();
    const hash = (client.record.secrets as { hash: string }[])[0]!.hash;
    const lines: string[] = [];
    const capture = (...args: unknown[]) =>
      void lines.push(args.map((a) => (typeof a === "string" ? a : (JSON.stringify(a) ?? String(a)))).join(" "));
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    vi.spyOn(console, "warn").mockImplementation(capture);
    vi.spyOn(console, "info").mockImplementation(capture);

    const ok = await requestToken(client);
    const { access_token } = (await ok.json()) as { access_token: string };
    await requestToken({ client_id: client.client_id, client_secret: `${client.client_secret}-wrong` });
    await tokenRequest({ grant_type: "client_credentials", client_id: client.client_id, client_secret: `${client.client_secret}-post` });

    const log = lines.join("\n");
    expect(log).toContain("token_issued");
    expect(log).toContain("token_refused");
    const secretPart = client.client_secret.split(".")[1]!;
    expect(log).not.toContain(secretPart);
    expect(log).not.toContain(hash.split("$")[3]!);
    expect(log).not.toContain(access_token);
    expect(log).not.toContain(access_token.split(".")[2]!);
  });
});
