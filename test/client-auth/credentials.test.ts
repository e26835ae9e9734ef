import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { base64, basic, formEncode, issueToken, seedClient, tokenRequest, verifyAccessToken } from "../support/worker.ts";
import { expectJSONError } from "../support/worker.ts";
import { parseClientAuthentication } from "../../src/client-auth/credentials.ts";
import type { TokenForm } from "../../src/client-auth/form.ts";

const GRANT = { grant_type: "client_credentials" };

function form(params: Record<string, string>): TokenForm {
  return { get: (name) => params[name], getAll: (name) => (params[name] === undefined ? [] : [params[name]!]) };
}

describe("RFC 6749 §2.3.1 client_secret_basic encoding", () => {
  for (const [what, tail] of [
    ["a ':'", "pa:ss:word"],
    ["a '%'", "100%25%zz"],
    ["a '+'", "a+b+c"],
    ["a space", "two words here"],
    ["non-ASCII characters", "café-日本"],
    ["every special character at once", ':%+ é日本&=?#/\\"'],
  ] as const) {
    it(`authenticates a secret containing ${what} when form-urlencoded before base64`, async () => {
      const secret = `s1.${tail}`;
      const client = await seedClient({ secrets: [{ secret }] });
      expect(client.client_secret).toBe(secret);
      const res = await tokenRequest(GRANT, { Authorization: basic(client.client_id, secret) });
      expect(res.status).toBe(200);
    });
  }

  it("authenticates a client_id containing ':' and '%' when form-urlencoded", async () => {
    const client = await seedClient({ client_id: `svc:billing%eu-${crypto.randomUUID()}` });
    const body = await issueToken(client);
    const claims = await verifyAccessToken(body.access_token);
    expect(claims.client_id).toBe(client.client_id);
    expect(claims.sub).toBe(client.client_id);
  });

  it("decodes '+' as a space, as form-urlencoding requires", async () => {
    const client = await seedClient({ secrets: [{ secret: "s1.a b" }] });
    const raw = `Basic ${base64(`${formEncode(client.client_id)}:s1.a+b`)}`;
    expect((await tokenRequest(GRANT, { Authorization: raw })).status).toBe(200);
  });

  it("fails a secret with '+' sent without form-urlencoding (it decodes to a space)", async () => {
    const client = await seedClient({ secrets: [{ secret: "s1.a+b" }] });
    const raw = `Basic ${base64(`${formEncode(client.client_id)}:s1.a+b`)}`;
    await expectJSONError(await tokenRequest(GRANT, { Authorization: raw }), 401, "invalid_client");
  });

  it("splits Basic credentials at the first ':' (RFC 7617), so a raw ':' in client_id fails", async () => {
    const client = await seedClient({ client_id: `svc:${crypto.randomUUID()}` });
    const raw = `Basic ${base64(`${client.client_id}:${formEncode(client.client_secret)}`)}`;
    await expectJSONError(await tokenRequest(GRANT, { Authorization: raw }), 401, "invalid_client");
  });

  it("accepts the scheme name in any case (RFC 9110 §11.1)", async () => {
    const client = await seedClient();
    const header = basic(client.client_id, client.client_secret).replace(/^Basic/, "bAsIc");
    expect((await tokenRequest(GRANT, { Authorization: header })).status).toBe(200);
  });
});

describe("Malformed Basic credentials (docs/security.md item 20): 400 invalid_request, never 500", () => {
  const cases: [string, string][] = [
    ['"Basic" with nothing', "Basic"],
    ['"Basic " with only a space', "Basic "],
    ["no colon after decoding", `Basic ${base64("client-without-colon")}`],
    ["characters outside base64", "Basic !!!not-base64!!!"],
    ["base64 of impossible length", "Basic abcde"],
    ["base64 with a space inside", `Basic ${base64("id:s1.x").slice(0, 4)} ${base64("id:s1.x").slice(4)}`],
    ["a bad %-escape in the secret (%zz)", `Basic ${base64("some-client:s1.%zz")}`],
    ["a bad %-escape in the client_id", `Basic ${base64("some%-client:s1.x")}`],
    ["a truncated %-escape", `Basic ${base64("some-client:s1.%4")}`],
    ["a %-escape of bytes that are not UTF-8", `Basic ${base64("some-client:s1.%ff%fe")}`],
    ["bytes that are not UTF-8 after base64 decoding", `Basic ${base64(new Uint8Array([0x69, 0x64, 0x3a, 0xff, 0xfe, 0xc3]))}`],
    ["an overlong UTF-8 sequence", `Basic ${base64(new Uint8Array([0x69, 0x64, 0x3a, 0xc0, 0xaf]))}`],
    ["two Basic credentials", `Basic ${base64("a:b")}, Basic ${base64("c:d")}`],
  ];
  for (const [what, header] of cases) {
    it(`answers invalid_request to ${what}`, async () => {
      await expectJSONError(await tokenRequest(GRANT, { Authorization: header }), 400, "invalid_request");
    });
  }

  for (const header of ["Bearer abc.def.ghi", "Digest username=x", "Basicabc", "Negotiate YQ=="]) {
    it(`answers invalid_request to the ${header.split(" ")[0]} scheme`, async () => {
      await expectJSONError(await tokenRequest(GRANT, { Authorization: header }), 400, "invalid_request");
    });
  }
});

describe("Exactly one client authentication method (docs/security.md item 18)", () => {
  it("answers invalid_request to Basic plus client_secret in the body", async () => {
    const client = await seedClient();
    const res = await tokenRequest(
      { ...GRANT, client_id: client.client_id, client_secret: client.client_secret },
      { Authorization: basic(client.client_id, client.client_secret) },
    );
    await expectJSONError(res, 400, "invalid_request");
  });

  it("answers invalid_request to Basic plus a client_id in the body that does not match", async () => {
    const client = await seedClient();
    const other = await seedClient();
    const res = await tokenRequest(
      { ...GRANT, client_id: other.client_id },
      { Authorization: basic(client.client_id, client.client_secret) },
    );
    await expectJSONError(res, 400, "invalid_request");
  });

  it("accepts Basic plus a matching client_id in the body", async () => {
    const client = await seedClient({ client_id: `svc:match%${crypto.randomUUID()}` });
    const res = await tokenRequest(
      { ...GRANT, client_id: client.client_id },
      { Authorization: basic(client.client_id, client.client_secret) },
    );
    expect(res.status).toBe(200);
  });
});

describe("RFC 6749 §5.2 missing client credentials", () => {
  it("answers 401 invalid_client with WWW-Authenticate when no credentials are sent at all", async () => {
    const res = await tokenRequest(GRANT);
    await expectJSONError(res, 401, "invalid_client");
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Basic realm="/);
  });

  it("answers 401 invalid_client without a challenge to a client_id without a secret (the client chose the body)", async () => {
    const client = await seedClient();
    const res = await tokenRequest({ ...GRANT, client_id: client.client_id });
    await expectJSONError(res, 401, "invalid_client");
    expect(res.headers.get("WWW-Authenticate")).toBeNull();
  });

  it("answers 400 invalid_request to a client_secret without client_id", async () => {
    const client = await seedClient();
    await expectJSONError(await tokenRequest({ ...GRANT, client_secret: client.client_secret }), 400, "invalid_request");
  });

  it("answers 401 invalid_client to Basic credentials with an empty client_id", async () => {
    const client = await seedClient();
    const res = await tokenRequest(GRANT, { Authorization: basic("", client.client_secret) });
    await expectJSONError(res, 401, "invalid_client");
  });

  it("answers 401 invalid_client to Basic credentials with an empty secret", async () => {
    const client = await seedClient();
    const res = await tokenRequest(GRANT, { Authorization: basic(client.client_id, "") });
    await expectJSONError(res, 401, "invalid_client");
  });
});

describe("RFC 6749 §5.2: WWW-Authenticate on invalid_client goes with Basic and with no credentials, never with client_secret_post", () => {
  const CHALLENGE = `Basic realm="${env.ISSUER}", charset="UTF-8"`;
  const endpoints = [
    ["/token", GRANT],
    ["/revoke", { token: "not-a-token" }],
    ["/introspect", { token: "not-a-token" }],
  ] as const;

  for (const [path, params] of endpoints) {
    it(`${path}: a wrong secret in Basic gets 401 with the Basic challenge`, async () => {
      const client = await seedClient();
      const res = await tokenRequest(params, { Authorization: basic(client.client_id, `${client.client_secret}x`) }, path);
      expect(res.headers.get("WWW-Authenticate")).toBe(CHALLENGE);
      await expectJSONError(res, 401, "invalid_client");
    });

    it(`${path}: a wrong client_secret_post secret gets 401 invalid_client with no challenge`, async () => {
      const client = await seedClient();
      const res = await tokenRequest({ ...params, client_id: client.client_id, client_secret: `${client.client_secret}x` }, {}, path);
      expect(res.headers.get("WWW-Authenticate")).toBeNull();
      await expectJSONError(res, 401, "invalid_client");
    });

    it(`${path}: no credentials at all get 401 with the Basic challenge, naming the scheme to use`, async () => {
      const res = await tokenRequest(params, {}, path);
      expect(res.headers.get("WWW-Authenticate")).toBe(CHALLENGE);
      await expectJSONError(res, 401, "invalid_client");
    });
  }
});

describe("parseClientAuthentication", () => {
  const realm = env.ISSUER;

  it("reads client_secret_basic, form-decoding id and secret", () => {
    const headers = new Headers({ Authorization: basic("a:b%c", "s1.é +") });
    expect(parseClientAuthentication(headers, form({}), realm)).toEqual({
      method: "client_secret_basic",
      clientId: "a:b%c",
      clientSecret: "s1.é +",
    });
  });

  it("reads client_secret_post", () => {
    expect(parseClientAuthentication(new Headers(), form({ client_id: "a", client_secret: "s1.x" }), realm)).toEqual({
      method: "client_secret_post",
      clientId: "a",
      clientSecret: "s1.x",
    });
  });

  it("throws invalid_client carrying a Basic challenge with the issuer as realm when nothing is sent", () => {
    expect(() => parseClientAuthentication(new Headers(), form({}), realm)).toThrow(
      expect.objectContaining({
        code: "invalid_client",
        status: 401,
        headers: { "WWW-Authenticate": `Basic realm="${realm}", charset="UTF-8"` },
      }),
    );
  });

  it("leaves a client_id sent alone in the body to the TLS client certificate (RFC 8705 §2; test/endpoints/mtls.test.ts)", () => {
    expect(parseClientAuthentication(new Headers(), form({ client_id: "a" }), realm)).toEqual({ method: "certificate", clientId: "a" });
  });

  it("throws invalid_request, not invalid_client, for malformed Basic", () => {
    expect(() => parseClientAuthentication(new Headers({ Authorization: "Basic %%%" }), form({}), realm)).toThrow(
      expect.objectContaining({ code: "invalid_request", status: 400 }),
    );
  });
});
