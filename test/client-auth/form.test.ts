import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { basic, fetchWithEnv, FORM, requestToken, seedClient, tokenRequest, TOKEN_URL } from "../support/worker.ts";
import { MAX_TOKEN_BODY_BYTES } from "../../src/client-auth/form.ts";

async function expectInvalidRequest(res: Response): Promise<void> {
  expect(res.status).toBe(400);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.error).toBe("invalid_request");
  expect(body).not.toHaveProperty("access_token");
}

async function expectTooLarge(res: Response): Promise<void> {
  expect(res.status).toBe(413);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  const body = (await res.json()) as Record<string, unknown>;
  expect(typeof body.error).toBe("string");
  expect(body).not.toHaveProperty("access_token");
}

describe("Query string parameters (RFC 6749 §3.2, docs/security.md item 18)", () => {
  for (const query of ["?client_secret=x", "?foo=1", "?grant_type=client_credentials", "?scope=orders:read"]) {
    it(`answers invalid_request to POST /token${query}, even with valid credentials`, async () => {
      const client = await seedClient();
      const res = await tokenRequest(
        { grant_type: "client_credentials" },
        { Authorization: basic(client.client_id, client.client_secret) },
        `/token${query}`,
      );
      await expectInvalidRequest(res);
    });
  }

  it("answers invalid_request to a client_secret_post secret sent in the query string", async () => {
    const client = await seedClient();
    const res = await tokenRequest(
      { grant_type: "client_credentials", client_id: client.client_id },
      {},
      `/token?client_secret=${encodeURIComponent(client.client_secret)}`,
    );
    await expectInvalidRequest(res);
  });
});

describe("RFC 6749 §3.2 parameters sent at most once", () => {
  for (const [name, value] of [
    ["grant_type", "client_credentials"],
    ["scope", "orders:read"],
    ["audience", "https://api.tollgate.test/orders"],
  ] as const) {
    it(`answers invalid_request when ${name} is repeated, even with the same value`, async () => {
      const client = await seedClient({ allowed_audiences: ["https://api.tollgate.test/orders"] });
      const params: [string, string][] = [
        ["grant_type", "client_credentials"],
        [name, value],
        [name, value],
      ];
      if (name === "grant_type") params.shift();
      await expectInvalidRequest(await tokenRequest(params, { Authorization: basic(client.client_id, client.client_secret) }));
    });
  }

  it("answers invalid_request when client_id is repeated", async () => {
    const client = await seedClient();
    await expectInvalidRequest(
      await tokenRequest([
        ["grant_type", "client_credentials"],
        ["client_id", client.client_id],
        ["client_id", client.client_id],
        ["client_secret", client.client_secret],
      ]),
    );
  });

  it("answers invalid_request when client_secret is repeated", async () => {
    const client = await seedClient();
    await expectInvalidRequest(
      await tokenRequest([
        ["grant_type", "client_credentials"],
        ["client_id", client.client_id],
        ["client_secret", client.client_secret],
        ["client_secret", client.client_secret],
      ]),
    );
  });
});

describe("RFC 6749 §3.1 parameters sent without a value are treated as omitted", () => {
  it("does not count an empty grant_type as a repeat", async () => {
    const client = await seedClient();
    const res = await tokenRequest(
      [
        ["grant_type", ""],
        ["grant_type", "client_credentials"],
      ],
      { Authorization: basic(client.client_id, client.client_secret) },
    );
    expect(res.status).toBe(200);
  });

  it("treats an empty grant_type alone as missing", async () => {
    const client = await seedClient();
    await expectInvalidRequest(await tokenRequest({ grant_type: "" }, { Authorization: basic(client.client_id, client.client_secret) }));
  });

  it("grants the default scopes for an empty scope", async () => {
    const client = await seedClient({ default_scopes: ["orders:write"] });
    const res = await requestToken(client, { scope: "" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scope: string }).scope).toBe("orders:write");
  });

  it("uses the default audience for an empty resource", async () => {
    const client = await seedClient();
    const res = await requestToken(client, { resource: "" });
    expect(res.status).toBe(200);
  });

  it("does not count an empty client_secret in the body as a second authentication method", async () => {
    const client = await seedClient();
    const res = await requestToken(client, { client_secret: "" });
    expect(res.status).toBe(200);
  });
});

describe("RFC 6749 §3.2 Content-Type", () => {
  for (const contentType of [
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded-foo",
  ]) {
    it(`answers invalid_request to ${contentType}`, async () => {
      const client = await seedClient();
      await expectInvalidRequest(
        await tokenRequest("grant_type=client_credentials", {
          Authorization: basic(client.client_id, client.client_secret),
          "Content-Type": contentType,
        }),
      );
    });
  }

  it("answers invalid_request to a JSON body with valid credentials", async () => {
    const client = await seedClient();
    await expectInvalidRequest(
      await tokenRequest(JSON.stringify({ grant_type: "client_credentials" }), {
        Authorization: basic(client.client_id, client.client_secret),
        "Content-Type": "application/json",
      }),
    );
  });

  it("answers invalid_request when Content-Type is missing", async () => {
    const client = await seedClient();
    // A byte body, so fetch adds no Content-Type of its own.
    const res = await exports.default.fetch(TOKEN_URL, {
      method: "POST",
      headers: { Authorization: basic(client.client_id, client.client_secret) },
      body: new TextEncoder().encode("grant_type=client_credentials"),
    });
    await expectInvalidRequest(res);
  });

  it("answers invalid_request to a charset other than UTF-8", async () => {
    const client = await seedClient();
    await expectInvalidRequest(
      await tokenRequest("grant_type=client_credentials", {
        Authorization: basic(client.client_id, client.client_secret),
        "Content-Type": `${FORM}; charset=iso-8859-1`,
      }),
    );
  });

  it("answers invalid_request to a body that is not UTF-8", async () => {
    const client = await seedClient();
    const res = await exports.default.fetch(TOKEN_URL, {
      method: "POST",
      headers: { Authorization: basic(client.client_id, client.client_secret), "Content-Type": FORM },
      body: new Uint8Array([...new TextEncoder().encode("grant_type=client_credentials&x="), 0xff, 0xfe]),
    });
    await expectInvalidRequest(res);
  });

  for (const contentType of [
    `${FORM}; charset=utf-8`,
    `${FORM};charset=UTF-8`,
    `${FORM}; charset="utf-8"`,
    "Application/X-WWW-Form-URLEncoded",
  ]) {
    it(`accepts ${contentType}`, async () => {
      const client = await seedClient();
      const res = await tokenRequest("grant_type=client_credentials", {
        Authorization: basic(client.client_id, client.client_secret),
        "Content-Type": contentType,
      });
      expect(res.status).toBe(200);
    });
  }
});

describe("Request body size (docs/security.md item 21)", () => {
  function paddedBody(size: number): string {
    const base = "grant_type=client_credentials&pad=";
    return base + "a".repeat(size - base.length);
  }

  it(`accepts a body of exactly ${MAX_TOKEN_BODY_BYTES} bytes`, async () => {
    const client = await seedClient();
    const body = paddedBody(MAX_TOKEN_BODY_BYTES);
    expect(body.length).toBe(8 * 1024);
    const res = await tokenRequest(body, { Authorization: basic(client.client_id, client.client_secret) });
    expect(res.status).toBe(200);
  });

  it("answers 413 to a body one byte over 8 KiB with Content-Length", async () => {
    const client = await seedClient();
    const res = await tokenRequest(paddedBody(MAX_TOKEN_BODY_BYTES + 1), { Authorization: basic(client.client_id, client.client_secret) });
    await expectTooLarge(res);
  });

  it("answers 413 to a declared Content-Length over 8 KiB whatever the credentials", async () => {
    const res = await tokenRequest(paddedBody(64 * 1024));
    await expectTooLarge(res);
  });

  it("answers 413 from a declared Content-Length over 8 KiB before reading the body", async () => {
    // A body that never ends: only the declared length can answer in time.
    const body = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
    const request = new Request(TOKEN_URL, {
      method: "POST",
      headers: { "Content-Type": FORM, "Content-Length": String(MAX_TOKEN_BODY_BYTES + 1) },
      body,
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the Worker waited for the body")), 2000));
    await expectTooLarge(await Promise.race([fetchWithEnv(request, undefined, {}), timeout]));
  });

  it("answers 413 to a streamed body over 8 KiB sent without Content-Length", async () => {
    const client = await seedClient();
    const chunk = new TextEncoder().encode(`&pad=${"a".repeat(1019)}`);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("grant_type=client_credentials"));
        for (let i = 0; i < 9; i++) controller.enqueue(chunk);
        sent = 9 * chunk.byteLength;
        controller.close();
      },
    });
    expect(sent).toBeGreaterThan(MAX_TOKEN_BODY_BYTES);
    const request = new Request(TOKEN_URL, {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
      body,
    });
    expect(request.headers.get("Content-Length")).toBeNull();
    await expectTooLarge(await exports.default.fetch(request));
  });

  it("answers 413 to an endless streamed body, without reading it to the end", async () => {
    const chunk = new TextEncoder().encode("a".repeat(1024));
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulled++;
        // Endless as far as an 8 KiB reader can tell; a reader that never stops fails here (4 MiB)
        // instead of hanging the run, and each chunk waits a turn of the event loop.
        if (pulled > 4096) return controller.error(new Error("the Worker kept reading"));
        await scheduler.wait(0);
        controller.enqueue(chunk);
      },
    });
    const res = await exports.default.fetch(new Request(TOKEN_URL, { method: "POST", headers: { "Content-Type": FORM }, body }));
    await expectTooLarge(res);
    // A few chunks past the limit are in flight at most; the stream was not drained forever.
    expect(pulled).toBeLessThan(1024);
  });
});
