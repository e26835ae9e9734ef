/**
 * EXTERNAL_ISSUERS (src/gateway/external-issuers.ts) and a route's `issuers`: parsed once, every
 * error naming the field, https only but for loopback issuers while ISSUER is loopback.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.ts";
import { BASE_VARS as base, configRefusal } from "../support/config.ts";
import { externalIssuerNames, parseExternalIssuers, SELF_ONLY } from "../../src/gateway/external-issuers.ts";

const AUTH0 = "https://tenant.auth0.com/";
const auth0 = { issuer: AUTH0, algorithms: ["RS256"], token_type: "jwt", scope_claim: "permissions", client_id_claim: "azp" };
const route = (fields: Record<string, unknown> = {}) => ({
  prefix: "/api",
  origin: "https://origin.example",
  audience: "https://api",
  ...fields,
});

describe("EXTERNAL_ISSUERS: valid configurations", () => {
  it("parses an entry, from an array (TOML) or the same JSON string, with the defaults filled in", () => {
    const expected = {
      issuer: AUTH0,
      jwksUri: undefined,
      algorithms: ["RS256"],
      tokenType: "jwt",
      scopeClaim: "permissions",
      clientIdClaim: "azp",
      clockTolerance: 30,
      maxLifetime: 3600,
    };
    expect(parseExternalIssuers([auth0], base.ISSUER).get(AUTH0)).toEqual(expected);
    expect(parseExternalIssuers(JSON.stringify([auth0]), base.ISSUER).get(AUTH0)).toEqual(expected);
    const minimal = parseExternalIssuers([{ issuer: "https://idp.example", algorithms: ["ES256"], token_type: "at+jwt" }], base.ISSUER);
    expect(minimal.get("https://idp.example")).toMatchObject({ scopeClaim: "scope", clientIdClaim: "client_id" });
    expect(parseExternalIssuers(undefined, base.ISSUER).size).toBe(0);
    expect(parseExternalIssuers("", base.ISSUER).size).toBe(0);
  });

  it("keeps the issuer exactly as written: a trailing slash is part of Auth0's iss", () => {
    const both = parseExternalIssuers(
      [auth0, { ...auth0, issuer: "https://tenant.auth0.com" }].map((e) => ({ ...e })),
      base.ISSUER,
    );
    expect([...both.keys()]).toEqual([AUTH0, "https://tenant.auth0.com"]);
  });

  it("takes loopback http issuers and JWKS only while ISSUER is loopback http", () => {
    const local = {
      issuer: "http://127.0.0.1:9999/idp",
      jwks_uri: "http://127.0.0.1:9999/idp/jwks",
      algorithms: ["RS256"],
      token_type: "jwt",
    };
    expect(parseExternalIssuers([local], "http://localhost:8787").get(local.issuer)?.jwksUri).toBe(local.jwks_uri);
    expect(configRefusal({ EXTERNAL_ISSUERS: [local] })).toMatch(/^EXTERNAL_ISSUERS\[0\]\.issuer: must use https/);
    expect(configRefusal({ EXTERNAL_ISSUERS: [{ ...auth0, jwks_uri: "http://127.0.0.1:9999/jwks" }] })).toMatch(
      /^EXTERNAL_ISSUERS\[0\]\.jwks_uri: must be an https URL/,
    );
  });

  it("gives parseConfig the issuers and the routes that name them", () => {
    const config = parseConfig({ ...base, EXTERNAL_ISSUERS: [auth0], GATEWAY_ROUTES: [route({ issuers: ["self", AUTH0] })] });
    expect(config.externalIssuers.get(AUTH0)?.issuer).toBe(AUTH0);
    expect(config.routes[0]!.issuers).toEqual(["self", AUTH0]);
  });

  it("gives every route that names no issuer, or only self, the one shared SELF_ONLY list", () => {
    const config = parseConfig({ ...base, GATEWAY_ROUTES: [route(), route({ prefix: "/b", issuers: ["self"] })] });
    expect(config.routes.map((r) => r.issuers === SELF_ONLY)).toEqual([true, true]);
  });
});

describe("EXTERNAL_ISSUERS: every error names the field", () => {
  it.each([
    [{ EXTERNAL_ISSUERS: "[" }, "EXTERNAL_ISSUERS", /not JSON/],
    [{ EXTERNAL_ISSUERS: { issuer: AUTH0 } }, "EXTERNAL_ISSUERS", /array of issuer tables/],
    [{ EXTERNAL_ISSUERS: ["x"] }, "EXTERNAL_ISSUERS[0]", /must be a table/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, audience: "x" }] }, "EXTERNAL_ISSUERS[0].audience", /is not a field/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: undefined }] }, "EXTERNAL_ISSUERS[0].issuer", /is required/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: "tenant.auth0.com" }] }, "EXTERNAL_ISSUERS[0].issuer", /absolute URL/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: "http://tenant.auth0.com/" }] }, "EXTERNAL_ISSUERS[0].issuer", /https/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: "https://idp.example/?x=1" }] }, "EXTERNAL_ISSUERS[0].issuer", /query or fragment/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: "https://u:p@idp.example/" }] }, "EXTERNAL_ISSUERS[0].issuer", /without user/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, issuer: "https://auth.example.com/" }] }, "EXTERNAL_ISSUERS[0].issuer", /"self"/],
    [{ EXTERNAL_ISSUERS: [auth0, auth0] }, "EXTERNAL_ISSUERS[1].issuer", /repeats/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, jwks_uri: "https://idp.example/jwks#x" }] }, "EXTERNAL_ISSUERS[0].jwks_uri", /fragment/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, algorithms: undefined }] }, "EXTERNAL_ISSUERS[0].algorithms", /asymmetric/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, algorithms: [] }] }, "EXTERNAL_ISSUERS[0].algorithms", /non-empty/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, algorithms: ["HS256"] }] }, "EXTERNAL_ISSUERS[0].algorithms", /asymmetric/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, algorithms: ["none"] }] }, "EXTERNAL_ISSUERS[0].algorithms", /asymmetric/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, algorithms: ["RS256", "RS256"] }] }, "EXTERNAL_ISSUERS[0].algorithms", /distinct/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, token_type: undefined }] }, "EXTERNAL_ISSUERS[0].token_type", /"at\+jwt", "jwt"/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, token_type: "JWT" }] }, "EXTERNAL_ISSUERS[0].token_type", /one of/],
    [
      { EXTERNAL_ISSUERS: [{ ...auth0, scope_claim: "scopes" }] },
      "EXTERNAL_ISSUERS[0].scope_claim",
      /"scope", "scp", "permissions", "roles"/,
    ],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, client_id_claim: "cid" }] }, "EXTERNAL_ISSUERS[0].client_id_claim", /"client_id", "azp", "sub"/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, clock_tolerance: -1 }] }, "EXTERNAL_ISSUERS[0].clock_tolerance", /0 to 300/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, clock_tolerance: "30" }] }, "EXTERNAL_ISSUERS[0].clock_tolerance", /whole seconds/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, max_lifetime: 0 }] }, "EXTERNAL_ISSUERS[0].max_lifetime", /1 to 86400/],
    [{ EXTERNAL_ISSUERS: [{ ...auth0, max_lifetime: 86_401 }] }, "EXTERNAL_ISSUERS[0].max_lifetime", /1 to 86400/],
  ])("%j: %s", (vars, field, detail) => {
    const message = configRefusal(vars);
    expect(message.startsWith(`${field}:`), message).toBe(true);
    expect(message).toMatch(detail);
  });
});

describe("a route's issuers", () => {
  it.each([
    [[route({ issuers: [] })], "GATEWAY_ROUTES[0].issuers", /non-empty/],
    [[route({ issuers: "self" })], "GATEWAY_ROUTES[0].issuers", /non-empty list/],
    [
      [route(), route({ prefix: "/b", issuers: ["self", "https://other.example/"] })],
      "GATEWAY_ROUTES[1].issuers[1]",
      /not a configured issuer/,
    ],
    // Exact: the issuer without Auth0's trailing slash is another issuer.
    [[route({ issuers: ["https://tenant.auth0.com"] })], "GATEWAY_ROUTES[0].issuers[0]", /not a configured issuer/],
    [[route({ issuers: [AUTH0, AUTH0] })], "GATEWAY_ROUTES[0].issuers[1]", /repeats/],
    [[route({ issuers: [1] })], "GATEWAY_ROUTES[0].issuers[0]", /not a configured issuer/],
    [
      [{ prefix: "/p", origin: "https://origin.example", public: true, issuers: ["self"] }],
      "GATEWAY_ROUTES[0]",
      /no audience, scopes or issuers/,
    ],
  ])("%j: %s", (routes, field, detail) => {
    const message = configRefusal({ EXTERNAL_ISSUERS: [auth0], GATEWAY_ROUTES: routes });
    expect(message.startsWith(`${field}:`), message).toBe(true);
    expect(message).toMatch(detail);
  });

  it("lets a tool that checks GATEWAY_ROUTES alone (tollgate doctor) learn the configured issuers", () => {
    expect(externalIssuerNames([auth0, { issuer: 3 }])).toEqual(new Set([AUTH0]));
    expect(externalIssuerNames(JSON.stringify([auth0]))).toEqual(new Set([AUTH0]));
    expect(externalIssuerNames("[")).toEqual(new Set());
  });
});
