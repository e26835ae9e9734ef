/**
 * Tokens of external issuers (src/tokens/external.ts) against real loopback stand-in issuers: the
 * key set chosen by `iss` before any key is used, the RFC 8725 rules, the typ rule per issuer, the
 * scope and identity claims, and an issuer that goes down: served from the cache within the bound,
 * then 503.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseExternalIssuers, SELF, type ExternalIssuer } from "../../src/gateway/external-issuers.ts";
import { BearerError, OAuthError } from "../../src/http/errors.ts";
import { issuerForToken, verifyExternalToken } from "../../src/tokens/external.ts";
import { REMOTE_KEYS_STALE_SECONDS } from "../../src/policy.ts";
import {
  externalToken,
  freshIssuer,
  issuerEntry,
  LOCAL_ISSUER,
  otherStandIn,
  requestsFor,
  standIn,
  takeDown,
  type ExternalToken,
} from "../support/external-issuers.ts";
import { nowSeconds } from "../support/tokens.ts";

const AUDIENCE = "https://api.tollgate.test";

afterEach(() => vi.restoreAllMocks());

/** One parsed issuer, as the config would hold it. */
function issuerOf(issuer: string, fields: Record<string, unknown> = {}): ExternalIssuer {
  return parseExternalIssuers([issuerEntry(issuer, fields)], LOCAL_ISSUER).get(issuer)!;
}

function verify(token: string, issuer: ExternalIssuer, currentDate?: Date) {
  return verifyExternalToken(token, issuer, { audience: AUDIENCE, ownIssuer: LOCAL_ISSUER, currentDate });
}

async function refusal(token: string, issuer: ExternalIssuer): Promise<BearerError> {
  const error = await verify(token, issuer).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BearerError);
  expect((error as BearerError).code).toBe("invalid_token");
  return error as BearerError;
}

/** The log reason of the invalid_token `pick` throws. */
function refusedFor(pick: () => unknown): string {
  try {
    pick();
  } catch (error) {
    expect(error).toBeInstanceOf(BearerError);
    expect((error as BearerError).code).toBe("invalid_token");
    return (error as BearerError).reason ?? "";
  }
  throw new Error("accepted");
}

const sign = (issuer: string, spec: Partial<ExternalToken> = {}) => externalToken(issuer, AUDIENCE, { key: standIn.keys.a, ...spec });

describe("issuerForToken: the key set is chosen by iss, among the route's issuers, before any key is used", () => {
  const a = issuerOf("https://a.example/");
  const b = issuerOf("https://b.example");
  const external = new Map([
    [a.issuer, a],
    [b.issuer, b],
  ]);
  const token = (iss: unknown) => externalToken(String(iss), AUDIENCE, { key: standIn.keys.a, claims: { iss } });

  it("picks the issuer the token names, or undefined for Tollgate's own", async () => {
    expect(issuerForToken(await token(a.issuer), [SELF, a.issuer, b.issuer], LOCAL_ISSUER, external)).toBe(a);
    expect(issuerForToken(await token(b.issuer), [b.issuer], LOCAL_ISSUER, external)).toBe(b);
    expect(issuerForToken(await token(LOCAL_ISSUER), [SELF, a.issuer], LOCAL_ISSUER, external)).toBeUndefined();
  });

  it("refuses an issuer the route does not list, one not configured, an inexact one, and self where the route does not take it", async () => {
    for (const [iss, accepted] of [
      [b.issuer, [SELF, a.issuer]],
      ["https://c.example/", [SELF, a.issuer, b.issuer]],
      ["https://a.example", [a.issuer]],
      [LOCAL_ISSUER, [a.issuer]],
    ] as const) {
      const t = await token(iss);
      expect(
        refusedFor(() => issuerForToken(t, accepted, LOCAL_ISSUER, external)),
        iss,
      ).toMatch(/not an issuer this route accepts/);
    }
  });

  it("refuses a token without a string iss, and what is not a JWT", async () => {
    const noIss = await externalToken("", AUDIENCE, { key: standIn.keys.a, claims: { iss: undefined } });
    expect(refusedFor(() => issuerForToken(noIss, [a.issuer], LOCAL_ISSUER, external))).toMatch(/iss undefined is not a string/);
    const listed = await token(["https://a.example/"]);
    expect(refusedFor(() => issuerForToken(listed, [a.issuer], LOCAL_ISSUER, external))).toMatch(/is not a string/);
    expect(refusedFor(() => issuerForToken("not.a.jwt", [a.issuer], LOCAL_ISSUER, external))).toMatch(/not a JWT/);
  });
});

describe("verifyExternalToken: RFC 8725 rules with the issuer's keys", () => {
  it("verifies a plain JWT of a discovered issuer, and takes identity and scopes from the issuer's claims", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss, { scope_claim: "permissions", client_id_claim: "azp" });
    const claims = await verify(
      await sign(iss, {
        header: { typ: "JWT" },
        claims: { azp: "m2m-app", sub: "m2m-app@clients", permissions: ["orders:read", "orders:write"] },
      }),
      issuer,
    );
    expect(claims).toMatchObject({ iss, client_id: "m2m-app", sub: "m2m-app@clients", scope: "orders:read orders:write", jti: "" });
  });

  it("uses the configured jwks_uri without discovery", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss, { jwks_uri: `${iss}/jwks` });
    await verify(await sign(iss, { claims: { jti: "j-1" } }), issuer);
    expect(await requestsFor(standIn, iss)).toBe(1);
  });

  it("refuses a token signed with another issuer's key, under a kid both publish", async () => {
    const iss = freshIssuer(standIn);
    await refusal(await sign(iss, { key: otherStandIn.keys.a }), issuerOf(iss));
  });

  it("refuses a kid only another issuer has, without asking that issuer", async () => {
    const iss = freshIssuer(standIn);
    const other = freshIssuer(otherStandIn, "both");
    await refusal(await sign(iss, { key: otherStandIn.keys.b }), issuerOf(iss));
    expect(await requestsFor(otherStandIn, other)).toBe(0);
  });

  it("refuses jku, x5u, jwk and x5c headers before fetching anything", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss);
    for (const header of [{ jku: `${iss}/jwks` }, { x5u: `${iss}/x5u` }, { jwk: { kty: "RSA", n: "n", e: "AQAB" } }, { x5c: ["MIIB"] }]) {
      expect((await refusal(await sign(iss, { header }), issuer)).reason).toMatch(/header carries/);
    }
    expect(await requestsFor(standIn, iss)).toBe(0);
  });

  it("refuses an algorithm the issuer is not configured for, before fetching anything", async () => {
    const iss = freshIssuer(standIn);
    await refusal(await sign(iss), issuerOf(iss, { algorithms: ["ES256"] }));
    expect(await requestsFor(standIn, iss)).toBe(0);
  });

  it("holds iss exactly, the route's audience, exp and iat required, the lifetime bound and iat not ahead", async () => {
    const iss = freshIssuer(standIn, "both");
    const issuer = issuerOf(iss, { max_lifetime: 600 });
    const now = nowSeconds();
    for (const claims of [
      { iss: `${iss}/` },
      { aud: "https://other.tollgate.test" },
      { exp: undefined },
      { iat: undefined },
      { exp: now - 120 },
      { iat: now - 10, exp: now + 600 },
      { iat: now + 120, exp: now + 300 },
      { client_id: undefined },
      { client_id: 7 },
    ]) {
      await refusal(await sign(iss, { claims }), issuer);
    }
    await verify(await sign(iss, { claims: { iat: now - 10, exp: now + 590, aud: ["https://x.example", AUDIENCE] } }), issuer);
  });

  it("refuses a JWKS that holds a private or a symmetric key: 503, the keys are unusable", async () => {
    for (const behaviour of ["private", "oct"]) {
      const iss = freshIssuer(standIn, behaviour);
      const error = await verify(await sign(iss), issuerOf(iss)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({ status: 503, code: "temporarily_unavailable" });
    }
  });
});

describe("verifyExternalToken: the typ rule per issuer (RFC 8725 §3.11)", () => {
  it("requires at+jwt of an at+jwt issuer (RFC 9068 §4)", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss, { token_type: "at+jwt" });
    await verify(await sign(iss, { header: { typ: "at+jwt" } }), issuer);
    await verify(await sign(iss, { header: { typ: "application/at+jwt" } }), issuer);
    for (const typ of [undefined, "JWT", "dpop+jwt"]) await refusal(await sign(iss, { header: { typ } }), issuer);
  });

  it("takes JWT, none or at+jwt of a jwt issuer, and refuses a type naming another kind of JWT", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss, { token_type: "jwt" });
    for (const typ of [undefined, "JWT", "jwt", "at+jwt"]) await verify(await sign(iss, { header: { typ } }), issuer);
    for (const typ of ["dpop+jwt", "secevent+jwt", "logout+jwt", "id_token+jwt"]) {
      expect((await refusal(await sign(iss, { header: { typ } }), issuer)).reason).toMatch(/is not a JWT access token's/);
    }
  });
});

describe("verifyExternalToken: scope claims in each shape", () => {
  const cases: [string, unknown, string | undefined][] = [
    ["scope", "orders:read orders:write", "orders:read orders:write"],
    ["scp", ["orders:read", "orders:write"], "orders:read orders:write"],
    ["scp", "orders:read orders:write", "orders:read orders:write"],
    ["permissions", ["orders:read"], "orders:read"],
    ["roles", ["Orders.Read", "Orders.Write"], "Orders.Read Orders.Write"],
    ["scope", ["orders:read"], "orders:read"],
    // An entry that is not one scope token grants nothing: "orders:read admin" must not become two scopes.
    ["permissions", ["orders:read admin"], undefined],
    ["scp", ["orders:read", 3], undefined],
    ["roles", { admin: true }, undefined],
    ["scope", undefined, undefined],
  ];
  it.each(cases)("%s = %j grants %j", async (claim, value, granted) => {
    const iss = freshIssuer(standIn);
    const claims = await verify(await sign(iss, { claims: { [claim]: value } }), issuerOf(iss, { scope_claim: claim }));
    expect(claims.scope).toBe(granted);
  });
});

describe("verifyExternalToken: an issuer that is down", () => {
  it("is served from the cache, past its freshness while within the stale bound, then answered 503", async () => {
    const iss = freshIssuer(standIn);
    const issuer = issuerOf(iss, { max_lifetime: 86_400 });
    const start = Date.now();
    const at = (seconds: number) => new Date(start + seconds * 1000);
    // Tokens valid at each moment the test moves to.
    const tokenAt = (seconds: number) => {
      const iat = Math.floor(start / 1000) + seconds;
      return sign(iss, { claims: { iat, exp: iat + 600 } });
    };
    // A token that lives through the whole test (max_lifetime 86400).
    const first = await sign(iss, { claims: { iat: Math.floor(start / 1000), exp: Math.floor(start / 1000) + 8 * 3600 } });
    await verify(first, issuer, at(0));
    await takeDown(standIn, iss);
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    // Fresh (the stand-in's max-age is 300 s): no request at all.
    await verify(await tokenAt(100), issuer, at(100));
    // Past its freshness, the refetch fails: the last good keys still verify, within the stale bound.
    await verify(await tokenAt(400), issuer, at(400));
    await verify(await tokenAt(REMOTE_KEYS_STALE_SECONDS), issuer, at(REMOTE_KEYS_STALE_SECONDS));
    // Past the bound: fail closed.
    const late = REMOTE_KEYS_STALE_SECONDS + 400;
    const error = await verify(await tokenAt(late), issuer, at(late)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ status: 503, code: "temporarily_unavailable" });
    expect((error as OAuthError).reason).toMatch(/HTTP 503/);
    // A token verified before is remembered for at most 60 s: it fails closed with the rest.
    await expect(verify(first, issuer, at(late))).rejects.toMatchObject({ status: 503 });
    const events = lines.map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events).toContain("remote_document_failed");
    expect(events).toContain("remote_document_stale");
  });
});
