import { describe, expect, it } from "vitest";
import { buildClientRecord } from "../support/worker.ts";
import {
  clientKey,
  ClientRecordError,
  describeClient,
  isValidAudience,
  isValidClientId,
  generateInstanceId,
  isWellFormedClientId,
  LEGACY_INSTANCE_ID,
  parseScope,
  staleTokenReason,
  validateClientRecord,
} from "../../src/clients/record.ts";
import { createClientRecord, revokeClientSecret, rotateClientSecret, updateClientRecord } from "../../src/clients/manage.ts";
import { DEFAULT_PBKDF2_ITERATIONS, parseSecretHash, verifyClientSecret } from "../../src/clients/secret.ts";

const ORDERS = "https://api.tollgate.test/orders";

/** A valid record as stored, to break one field at a time. */
async function validRecord(): Promise<Record<string, unknown>> {
  return (await buildClientRecord({ client_id: "svc-orders", allowed_audiences: [ORDERS], default_audience: ORDERS, token_ttl: 600 }))
    .record;
}

async function expectFieldError(mutate: (record: Record<string, unknown>) => void, field: string): Promise<void> {
  const record = await validRecord();
  expect(() => validateClientRecord(record)).not.toThrow();
  mutate(record);
  let caught: unknown;
  try {
    validateClientRecord(record);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ClientRecordError);
  expect((caught as Error).message.startsWith(`${field}: `), (caught as Error).message).toBe(true);
}

describe("validateClientRecord", () => {
  it("accepts a record as the CLI writes it and returns it normalised", async () => {
    const record = await validRecord();
    const parsed = validateClientRecord({ ...record, allowed_scopes: ["orders:read", "orders:write", "orders:read"] });
    expect(parsed.client_id).toBe("svc-orders");
    expect(parsed.allowed_scopes).toEqual(["orders:read", "orders:write"]);
    expect(parsed.default_audience).toBe(ORDERS);
    expect(parsed.token_ttl).toBe(600);
    expect(parsed.secrets).toHaveLength(1);
  });

  it("defaults a missing default_audience, token_ttl and expires_at to null", async () => {
    const record = await validRecord();
    delete record.default_audience;
    delete record.token_ttl;
    delete (record.secrets as Record<string, unknown>[])[0]!.expires_at;
    const parsed = validateClientRecord(record);
    expect(parsed.default_audience).toBeNull();
    expect(parsed.token_ttl).toBeNull();
    expect(parsed.secrets[0]!.expires_at).toBeNull();
  });

  it("refuses what is not a JSON object", () => {
    for (const value of [null, "x", 1, [], true]) expect(() => validateClientRecord(value)).toThrow(/^record: /);
  });

  describe("names the offending field", () => {
    for (const [what, value] of [
      ["empty", ""],
      ["with a space", "svc orders"],
      ["with a control character", "svc\norders"],
      ["non-ASCII", "svc-é"],
      ["129 characters long", "a".repeat(129)],
      ["not a string", 42],
      ["missing", undefined],
    ] as const) {
      it(`client_id ${what}`, () => expectFieldError((r) => (r.client_id = value), "client_id"));
    }

    it("name not a string", () => expectFieldError((r) => (r.name = 1), "name"));
    it("allowed_scopes with a malformed scope token", () =>
      expectFieldError((r) => (r.allowed_scopes = ['orders"read']), "allowed_scopes"));
    it("allowed_scopes not an array", () => expectFieldError((r) => (r.allowed_scopes = "orders:read"), "allowed_scopes"));
    it("default_scopes not in allowed_scopes", () =>
      expectFieldError((r) => {
        r.allowed_scopes = ["orders:read"];
        r.default_scopes = ["orders:read", "orders:write"];
      }, "default_scopes"));
    it("allowed_audiences with a relative URI", () => expectFieldError((r) => (r.allowed_audiences = ["/orders"]), "allowed_audiences"));
    it("allowed_audiences with a fragment", () => expectFieldError((r) => (r.allowed_audiences = [`${ORDERS}#x`]), "allowed_audiences"));
    it("default_audience not in allowed_audiences", () =>
      expectFieldError((r) => (r.default_audience = "https://api.tollgate.test/billing"), "default_audience"));
    it("default_audience set while allowed_audiences is empty", () =>
      expectFieldError((r) => {
        r.allowed_audiences = [];
        r.default_audience = ORDERS;
      }, "default_audience"));
    it("grant_types with an unsupported grant", () => expectFieldError((r) => (r.grant_types = ["password"]), "grant_types"));

    for (const ttl of [0, -1, 1.5, 86_401, "300", Number.NaN]) {
      it(`token_ttl ${JSON.stringify(ttl)}`, () => expectFieldError((r) => (r.token_ttl = ttl), "token_ttl"));
    }

    it("disabled not a boolean", () => expectFieldError((r) => (r.disabled = "false"), "disabled"));
    it("introspect_any a string", () => expectFieldError((r) => (r.introspect_any = "true"), "introspect_any"));
    it("introspect_any null", () => expectFieldError((r) => (r.introspect_any = null), "introspect_any"));
    it("dpop_bound_access_tokens a string", () =>
      expectFieldError((r) => (r.dpop_bound_access_tokens = "true"), "dpop_bound_access_tokens"));
    for (const [what, value] of [
      ["too short", "abc"],
      ["not base64url", "a.b+c/d=e.f.g.h.i.j"],
      ["too long", "a".repeat(65)],
      ["a number", 42],
      ["null", null],
    ] as const) {
      it(`instance_id ${what}`, () => expectFieldError((r) => (r.instance_id = value), "instance_id"));
    }
    it("secrets not an array", () => expectFieldError((r) => (r.secrets = {}), "secrets"));
    it("secrets[0].id not base64url", () =>
      expectFieldError((r) => ((r.secrets as Record<string, unknown>[])[0]!.id = "a.b"), "secrets[0].id"));
    it("secrets[1].id a duplicate", () =>
      expectFieldError((r) => {
        const secrets = r.secrets as Record<string, unknown>[];
        secrets.push({ ...secrets[0]! });
      }, "secrets[1].id"));

    for (const [what, mutate] of [
      ["not a string", () => 1],
      ["of another algorithm", (h: string) => h.replace("pbkdf2-sha256", "pbkdf2-sha1")],
      ["with a part missing", (h: string) => h.split("$").slice(0, 3).join("$")],
      ["of 100,001 iterations", (h: string) => h.replace(/\$\d+\$/, "$100001$")],
      ["of 200,000 iterations", (h: string) => h.replace(/\$\d+\$/, "$200000$")],
      ["with a salt that is not base64url", (h: string) => h.replace(/\$[^$]+\$([^$]+)$/, "$!!!!$$$1")],
    ] as const) {
      it(`secrets[0].hash ${what}`, () =>
        expectFieldError((r) => {
          const secret = (r.secrets as Record<string, unknown>[])[0]!;
          secret.hash = (mutate as (h: string) => unknown)(secret.hash as string);
        }, "secrets[0].hash"));
    }

    it("secrets[0].expires_at not epoch seconds", () =>
      expectFieldError((r) => ((r.secrets as Record<string, unknown>[])[0]!.expires_at = "2030-01-01"), "secrets[0].expires_at"));
    it("created_at not epoch seconds", () => expectFieldError((r) => (r.created_at = -5), "created_at"));
  });
});

describe("RFC 6749 §2.2 client identifiers", () => {
  it("allows visible ASCII including ':' and '%'", () => {
    expect(isValidClientId("svc:billing%eu")).toBe(true);
    expect(isValidClientId("a".repeat(128))).toBe(true);
  });

  it("refuses space, controls, non-ASCII and over-long ids", () => {
    for (const id of ["", " ", "a b", "a\tb", "é", "a".repeat(129)]) expect(isValidClientId(id), JSON.stringify(id)).toBe(false);
  });

  // RFC 3986 §5.2.4 / WHATWG URL: a path segment ".", "..", or either with a dot written %2e or
  // %2E, is removed, so /register/{id} could never reach such a client.
  const DOT_SEGMENTS = [".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2E.", "%2e%2E"];

  it.each(DOT_SEGMENTS)("refuses %s for a new client: URL normalization removes it as a path segment", (id) => {
    expect(isValidClientId(id)).toBe(false);
    expect(["/register/", "/"]).toContain(new URL(`https://auth.tollgate.test/register/${id}`).pathname);
  });

  it("keeps ids that only contain dots or %2e among other characters", () => {
    for (const id of ["...", "a.", ".a", "..a", "%2e%2e%2e", "%2ea", ".well-known", "%252e"]) expect(isValidClientId(id), id).toBe(true);
  });

  it.each(DOT_SEGMENTS)("still reads a stored record named %s (written before the rule)", async (id) => {
    expect(isWellFormedClientId(id)).toBe(true);
    const { record } = await buildClientRecord({ client_id: id });
    expect(validateClientRecord(record).client_id).toBe(id);
  });

  it("refuses a dot-segment id in createClientRecord, as the CLI and the admin API do", async () => {
    await expect(createClientRecord("..", { scope: "" }, 1_700_000_000)).rejects.toThrow(/^client_id: /);
  });

  it("stores a client under client:<id>", () => {
    expect(clientKey("svc:billing")).toBe("client:svc:billing");
  });
});

describe("RFC 6749 §3.3 parseScope", () => {
  it("splits on single spaces, keeping request order and collapsing repeats", () => {
    expect(parseScope("b a b c")).toEqual(["b", "a", "c"]);
  });

  it("refuses empty tokens and the characters scope-token excludes", () => {
    for (const scope of ["a  b", " a", "a ", 'a"b', "a\\b", "a\tb", "é"]) expect(parseScope(scope), JSON.stringify(scope)).toBeUndefined();
  });

  it("accepts every character scope-token allows", () => {
    expect(parseScope("!#[]~:/")).toEqual(["!#[]~:/"]);
  });
});

describe("RFC 8707 §2 isValidAudience", () => {
  it("accepts absolute URIs, URNs included", () => {
    for (const uri of [ORDERS, "urn:example:orders", "https://api.tollgate.test/orders?v=1"]) expect(isValidAudience(uri), uri).toBe(true);
  });

  it("refuses relative references, fragments and absurd lengths", () => {
    for (const uri of ["/orders", "orders", "", `${ORDERS}#frag`, `${ORDERS}#`, `https://a.test/${"a".repeat(2048)}`]) {
      expect(isValidAudience(uri), uri.slice(0, 40)).toBe(false);
    }
  });
});

describe("describeClient", () => {
  it("shows secrets by id and dates, never their hashes", async () => {
    const parsed = validateClientRecord(await validRecord());
    const shown = describeClient(parsed);
    expect(JSON.stringify(shown)).not.toContain(parsed.secrets[0]!.hash);
    expect(shown.secrets).toEqual([{ id: parsed.secrets[0]!.id, created_at: parsed.secrets[0]!.created_at, expires_at: null }]);
  });
});

describe("dpop_bound_access_tokens (RFC 9449 §5.2: a client that must send DPoP proofs)", () => {
  it("defaults to false for a record written before the field existed, and keeps what is stored", async () => {
    const record = await validRecord();
    expect(record).not.toHaveProperty("dpop_bound_access_tokens");
    expect(validateClientRecord(record).dpop_bound_access_tokens).toBe(false);
    expect(validateClientRecord({ ...record, dpop_bound_access_tokens: true }).dpop_bound_access_tokens).toBe(true);
  });

  it("is false for a new client unless asked, and changed by an update only when given", async () => {
    const { record } = await createClientRecord("dpop-default", { scope: "a" }, 1000);
    expect(record.dpop_bound_access_tokens).toBe(false);
    const { record: bound } = await createClientRecord("dpop", { scope: "a", dpop_bound_access_tokens: true }, 1000);
    expect(bound.dpop_bound_access_tokens).toBe(true);
    expect(updateClientRecord(bound, { name: "renamed" }, 1001).dpop_bound_access_tokens).toBe(true);
    expect(updateClientRecord(bound, { dpop_bound_access_tokens: false }, 1002).dpop_bound_access_tokens).toBe(false);
  });
});

describe("RFC 8705 record fields: the two certificate methods and tls_client_certificate_bound_access_tokens", () => {
  const mtls = async (fields: Record<string, unknown>) => ({ ...(await validRecord()), secrets: [], ...fields });

  it("keeps a tls_client_auth record with its subject DN, and a self-signed one with x5c keys", async () => {
    const tls = validateClientRecord(await mtls({ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a,O=b" }));
    expect(tls.tls_client_auth_subject_dn).toBe("CN=a,O=b");
    const jwks = { keys: [{ kty: "EC", crv: "P-256", x: "AA", y: "AA", x5c: ["MIIB"] }] };
    const self = validateClientRecord(await mtls({ token_endpoint_auth_method: "self_signed_tls_client_auth", jwks }));
    expect(self.jwks?.keys[0]?.x5c).toEqual(["MIIB"]);
  });

  it("refuses a secret, keys or no subject on tls_client_auth, no x5c on self-signed, a subject elsewhere, a non-boolean flag", async () => {
    const jwks = { keys: [{ kty: "EC", crv: "P-256", x: "AA", y: "AA" }] };
    const cases: [Record<string, unknown>, string][] = [
      [{ token_endpoint_auth_method: "tls_client_auth" }, "tls_client_auth_subject_dn"],
      [{ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: " " }, "tls_client_auth_subject_dn"],
      [{ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a\u0000" }, "tls_client_auth_subject_dn"],
      [{ token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a", jwks }, "jwks"],
      [{ token_endpoint_auth_method: "self_signed_tls_client_auth" }, "jwks"],
      [{ token_endpoint_auth_method: "self_signed_tls_client_auth", jwks }, "jwks.keys[0]"],
      [{ token_endpoint_auth_method: "self_signed_tls_client_auth", jwks_uri: "https://k.example/jwks" }, "jwks_uri"],
      [{ tls_client_auth_subject_dn: "CN=a" }, "tls_client_auth_subject_dn"],
      [{ tls_client_certificate_bound_access_tokens: "true" }, "tls_client_certificate_bound_access_tokens"],
    ];
    for (const [fields, field] of cases) {
      let message = "";
      try {
        validateClientRecord(await mtls(fields));
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message.startsWith(`${field}: `), `${JSON.stringify(fields)}: ${message}`).toBe(true);
    }
    // A secret on an mTLS client.
    const withSecret = { ...(await validRecord()), token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a" };
    expect(() => validateClientRecord(withSecret)).toThrow(/^secrets: /);
  });

  it("gives an mTLS client no secret to rotate, and lets no method change to or from the certificate methods", async () => {
    const { record } = await createClientRecord("svc-secret", { scope: "a" }, 1000);
    expect(() =>
      updateClientRecord(record, { token_endpoint_auth_method: "tls_client_auth", tls_client_auth_subject_dn: "CN=a" }, 1001),
    ).toThrow(/token_endpoint_auth_method/);
    await expect(createClientRecord("svc-tls", { token_endpoint_auth_method: "tls_client_auth" }, 1000)).rejects.toThrow(/has no secret/);
    const tls = validateClientRecord({
      ...record,
      secrets: [],
      token_endpoint_auth_method: "tls_client_auth",
      tls_client_auth_subject_dn: "CN=a",
    });
    await expect(rotateClientSecret(tls, 0, 1002)).rejects.toThrow(/has no secret/);
  });
});

describe("introspect_any (RFC 7662: who may introspect other clients' tokens)", () => {
  it("defaults to false for a record written before the field existed", async () => {
    const record = await validRecord();
    expect(record).not.toHaveProperty("introspect_any");
    expect(validateClientRecord(record).introspect_any).toBe(false);
  });

  it("keeps true and false as stored", async () => {
    expect(validateClientRecord({ ...(await validRecord()), introspect_any: true }).introspect_any).toBe(true);
    expect(validateClientRecord({ ...(await validRecord()), introspect_any: false }).introspect_any).toBe(false);
  });

  it("is false for a new client unless asked, and changed by an update only when given", async () => {
    const { record } = await createClientRecord("rs-default", { scope: "a" }, 1000);
    expect(record.introspect_any).toBe(false);
    const { record: rs } = await createClientRecord("rs", { scope: "a", introspect_any: true }, 1000);
    expect(rs.introspect_any).toBe(true);
    expect(updateClientRecord(rs, { name: "renamed" }, 1001).introspect_any).toBe(true);
    const off = updateClientRecord(rs, { introspect_any: false }, 1002);
    expect(off.introspect_any).toBe(false);
    expect(off.updated_at).toBe(1002);
    expect(updateClientRecord(off, { introspect_any: true }, 1003).introspect_any).toBe(true);
  });
});

describe("updateClientRecord: --default-audience keeps the other allowed audiences", () => {
  it("adds the default to the allowed audiences instead of replacing them", async () => {
    const { updateClientRecord, createClientRecord } = await import("../../src/clients/manage.ts");
    const now = Math.floor(Date.now() / 1000);
    const { record } = await createClientRecord("aud-keep", { scope: "a", audiences: ["https://a.example", "https://b.example"] }, now);
    const updated = updateClientRecord(record, { default_audience: "https://c.example" }, now);
    expect(updated.allowed_audiences).toEqual(["https://a.example", "https://b.example", "https://c.example"]);
    expect(updated.default_audience).toBe("https://c.example");
    expect(updateClientRecord(record, { default_audience: "https://b.example" }, now).allowed_audiences).toEqual([
      "https://a.example",
      "https://b.example",
    ]);
  });
});

describe("instance_id: which record a token was issued under", () => {
  const NOW = 1_800_000_000;

  it('is the legacy instance ("") for a record written before the field existed, and kept as stored otherwise', async () => {
    const record = await validRecord();
    expect(validateClientRecord(record).instance_id).toBe(LEGACY_INSTANCE_ID);
    const id = generateInstanceId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(validateClientRecord({ ...record, instance_id: id }).instance_id).toBe(id);
    expect(validateClientRecord({ ...record, instance_id: "" }).instance_id).toBe(LEGACY_INSTANCE_ID);
  });

  it("is new and random for every created record, even two of the same id in the same second", async () => {
    const a = (await createClientRecord("svc", { scope: "a" }, NOW)).record;
    const b = (await createClientRecord("svc", { scope: "a" }, NOW)).record;
    expect(a.instance_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(b.instance_id).not.toBe(a.instance_id);
  });

  it("changes when the client is disabled or a secret revoked, and only then", async () => {
    const { record } = await createClientRecord("svc", { scope: "a b" }, NOW);
    const disabled = updateClientRecord(record, { disabled: true }, NOW);
    expect(disabled.instance_id).not.toBe(record.instance_id);
    // Enabling again keeps the disabled record's instance: nothing was issued under it.
    expect(updateClientRecord(disabled, { disabled: false }, NOW).instance_id).toBe(disabled.instance_id);
    expect(updateClientRecord(disabled, { disabled: true }, NOW).instance_id).toBe(disabled.instance_id);
    expect(updateClientRecord(record, { scope: "a", introspect_any: true, token_ttl: 60 }, NOW).instance_id).toBe(record.instance_id);
    const rotated = await rotateClientSecret(record, 3600, NOW);
    expect(rotated.record.instance_id).toBe(record.instance_id);
    const revoked = revokeClientSecret(rotated.record, record.secrets[0]!.id, NOW);
    expect(revoked.instance_id).not.toBe(record.instance_id);
  });

  it("turns a legacy record into a current one when tokens must die, and keeps it legacy otherwise", async () => {
    const legacy = validateClientRecord(await validRecord());
    expect(updateClientRecord(legacy, { name: "x" }, NOW).instance_id).toBe(LEGACY_INSTANCE_ID);
    expect(updateClientRecord(legacy, { disabled: true }, NOW).instance_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it("binds a token to the record by its tg_inst claim, not by the clock", async () => {
    const { record } = await createClientRecord("svc", { scope: "a" }, NOW);
    expect(staleTokenReason(record, { iat: NOW - 100, tg_inst: record.instance_id })).toBeUndefined();
    expect(staleTokenReason(record, { iat: NOW + 100, tg_inst: generateInstanceId() })).toMatch(/earlier instance/);
    // A token without the claim was issued under a legacy record, never under this one.
    expect(staleTokenReason(record, { iat: NOW + 100 })).toMatch(/earlier instance/);
  });

  it("applies tokens_not_before to a legacy record and a token without the claim", async () => {
    const legacy = { ...validateClientRecord(await validRecord()), tokens_not_before: NOW };
    expect(staleTokenReason(legacy, { iat: NOW })).toBeUndefined();
    expect(staleTokenReason(legacy, { iat: NOW - 1 })).toMatch(/tokens_not_before/);
    expect(staleTokenReason(legacy, { iat: NOW, tg_inst: generateInstanceId() })).toMatch(/earlier instance/);
  });
});

describe("secrets made by the shared rules (CLI and admin API)", () => {
  it("are hashed at the iterations given, DEFAULT_PBKDF2_ITERATIONS otherwise, and verify", async () => {
    const created = await createClientRecord("hash-count", { scope: "a" }, 1000, { iterations: 40_000 });
    expect(parseSecretHash(created.record.secrets[0]!.hash).iterations).toBe(40_000);
    expect(await verifyClientSecret(created.clientSecret, created.record.secrets[0]!.hash)).toBe(true);
    const rotated = await rotateClientSecret(created.record, 0, 1001, { iterations: 10_000 });
    expect(parseSecretHash(rotated.record.secrets.at(-1)!.hash).iterations).toBe(10_000);
    expect(await verifyClientSecret(rotated.clientSecret, rotated.record.secrets.at(-1)!.hash)).toBe(true);
    const byDefault = await createClientRecord("hash-default", { scope: "a" }, 1000);
    expect(parseSecretHash(byDefault.record.secrets[0]!.hash).iterations).toBe(DEFAULT_PBKDF2_ITERATIONS);
  });

  it("refuse an iteration count outside 10,000..100,000", async () => {
    await expect(createClientRecord("hash-low", { scope: "a" }, 1000, { iterations: 1_000 })).rejects.toThrow(RangeError);
    await expect(createClientRecord("hash-high", { scope: "a" }, 1000, { iterations: 100_001 })).rejects.toThrow(RangeError);
  });
});
