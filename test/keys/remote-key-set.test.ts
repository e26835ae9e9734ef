/**
 * Remote key sets (src/keys/remote-key-set.ts) against a real loopback server
 * (scripts/stand-in-issuer.ts): good, slow, huge, non-JSON, redirecting, private-key, oct and
 * rotating sets, discovery, and the caching rules.
 */
import { errors, importJWK, jwtVerify, SignJWT, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import {
  discoverJwksUri,
  discoveredKeySet,
  freshnessSeconds,
  isAllowedRemoteUrl,
  KeySetUnavailableError,
  MAX_REMOTE_DOCUMENT_BYTES,
  parsePublicKeySet,
  REMOTE_FETCH_TIMEOUT_MS,
  remoteKeySet,
} from "../../src/keys/remote-key-set.ts";
import {
  REMOTE_KEYS_DEFAULT_SECONDS,
  REMOTE_KEYS_FAILURE_SECONDS,
  REMOTE_KEYS_MAX_SECONDS,
  REMOTE_KEYS_MIN_SECONDS,
  REMOTE_KEYS_REFETCH_SECONDS,
  REMOTE_KEYS_STALE_SECONDS,
} from "../../src/policy.ts";
import { clearAllCaches } from "../../src/bounded-cache.ts";
import readme from "../../README.md?raw";
import { freshIssuer, LOCAL_ISSUER, requestsTo, standIn } from "../support/external-issuers.ts";

/** A path of the stand-in no other test uses: `/{behaviour}-{random}`. */
function fresh(behaviour: string): string {
  return freshIssuer(standIn, behaviour);
}

async function sign(key: JWK, kid = key.kid): Promise<string> {
  return new SignJWT({ sub: "workload" })
    .setProtectedHeader({ alg: "RS256", ...(kid === undefined ? {} : { kid }) })
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(await importJWK(key, "RS256"));
}

/** How many times the stand-in was asked for `path` (a full URL). */
async function requestsFor(url: string): Promise<number> {
  const log = await requestsTo(standIn);
  const path = new URL(url).pathname;
  return log.filter((p) => p === path).length;
}

async function refusal(uri: string): Promise<KeySetUnavailableError> {
  const error = await jwtVerify(await sign(standIn.keys.a), remoteKeySet(uri)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(KeySetUnavailableError);
  return error as KeySetUnavailableError;
}

describe("isAllowedRemoteUrl", () => {
  it("allows https anywhere, and loopback http only while this issuer is loopback http", () => {
    expect(isAllowedRemoteUrl("https://token.actions.githubusercontent.com/.well-known/jwks", "https://auth.example.com")).toBe(true);
    expect(isAllowedRemoteUrl("http://issuer.example.com/jwks", "http://localhost:8787")).toBe(false);
    for (const url of ["http://127.0.0.1:9/jwks", "http://localhost:9/jwks", "http://[::1]:9/jwks", "http://127.1.2.3/jwks"]) {
      expect(isAllowedRemoteUrl(url, "http://localhost:8787"), url).toBe(true);
      expect(isAllowedRemoteUrl(url, "https://auth.example.com"), url).toBe(false);
    }
  });

  it("refuses other schemes, credentials, fragments and non-URLs", () => {
    for (const url of [
      "ftp://example.com/jwks",
      "https://user:pw@example.com/jwks",
      "https://example.com/jwks#x",
      "/jwks",
      "file:///etc/passwd",
    ]) {
      expect(isAllowedRemoteUrl(url, "http://localhost:8787"), url).toBe(false);
    }
  });
});

describe("freshnessSeconds: Cache-Control within bounds", () => {
  const of = (headers: Record<string, string>) => freshnessSeconds(new Headers(headers));
  it("takes max-age less Age, held between the minimum and the maximum", () => {
    expect(of({ "Cache-Control": "public, max-age=900" })).toBe(900);
    expect(of({ "Cache-Control": "max-age=900", Age: "300" })).toBe(600);
    expect(of({ "Cache-Control": "max-age=5" })).toBe(REMOTE_KEYS_MIN_SECONDS);
    expect(of({ "Cache-Control": "max-age=86400000" })).toBe(REMOTE_KEYS_MAX_SECONDS);
  });
  it("uses the minimum for no-store and no-cache, the default without max-age", () => {
    expect(of({ "Cache-Control": "no-store" })).toBe(REMOTE_KEYS_MIN_SECONDS);
    expect(of({ "Cache-Control": "max-age=900, no-cache" })).toBe(REMOTE_KEYS_MIN_SECONDS);
    expect(of({})).toBe(REMOTE_KEYS_DEFAULT_SECONDS);
  });
});

describe("parsePublicKeySet: RFC 7517 §5, public keys only", () => {
  const pub = { kty: "EC", crv: "P-256", x: "x", y: "y" };
  it("refuses the whole set for one private member or one symmetric key", () => {
    expect(() => parsePublicKeySet({ keys: [pub, { ...pub, d: "secret" }] }, "t")).toThrow(/keys\[1\] has the private member "d"/);
    expect(() => parsePublicKeySet({ keys: [{ kty: "RSA", n: "n", e: "AQAB", p: "p" }] }, "t")).toThrow(/private member "p"/);
    expect(() => parsePublicKeySet({ keys: [pub, { kty: "oct", k: "c2VjcmV0" }] }, "t")).toThrow(/symmetric/);
  });
  it("refuses what is not a set", () => {
    expect(() => parsePublicKeySet(pub, "t")).toThrow(KeySetUnavailableError);
    expect(() => parsePublicKeySet({ keys: ["x"] }, "t")).toThrow(/keys\[0\] is not a JWK/);
    expect(() => parsePublicKeySet({ keys: Array.from({ length: 101 }, () => pub) }, "t")).toThrow(/more than 100/);
    expect(parsePublicKeySet({ keys: [pub] }, "t")).toEqual({ keys: [pub] });
  });
});

describe("remoteKeySet over a real server", () => {
  it("verifies with a fetched set, and serves it from the isolate's cache afterwards", async () => {
    const uri = `${fresh("good")}/jwks`;
    const keys = remoteKeySet(uri);
    await jwtVerify(await sign(standIn.keys.a), keys);
    await jwtVerify(await sign(standIn.keys.a), remoteKeySet(uri));
    expect(await requestsFor(uri)).toBe(1);
  });

  it("refuses a token whose key is not in the set", async () => {
    await expect(jwtVerify(await sign(standIn.keys.b), remoteKeySet(`${fresh("good")}/jwks`))).rejects.toBeInstanceOf(
      errors.JWKSNoMatchingKey,
    );
  });

  it("picks up a rotated key on an unknown kid, and refetches at most once a minute", async () => {
    const base = fresh("rotating");
    const uri = `${base}/jwks`;
    await jwtVerify(await sign(standIn.keys.a), remoteKeySet(uri));
    await fetch(`${standIn.url}/__rotate?name=${new URL(base).pathname.slice(1)}`);
    await jwtVerify(await sign(standIn.keys.b), remoteKeySet(uri));
    expect(await requestsFor(uri)).toBe(2);
    // Another unknown kid within the minute: refused without asking the server again.
    await expect(jwtVerify(await sign(standIn.keys.b, "forged-kid"), remoteKeySet(uri))).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(await requestsFor(uri)).toBe(2);
  });

  it("gives up on a server that does not answer within the timeout", async () => {
    const started = Date.now();
    expect((await refusal(`${fresh("slow")}/jwks`)).message).toMatch(/no answer within 3000 ms/);
    expect(Date.now() - started).toBeLessThan(4500);
  });

  it("gives up on a body that trickles past the timeout", async () => {
    expect((await refusal(`${fresh("slowbody")}/jwks`)).message).toMatch(/did not arrive within 3000 ms/);
  });

  it("refuses a body over the size cap, declared or streamed", async () => {
    expect((await refusal(`${fresh("huge")}/jwks`)).message).toMatch(/larger than 65536 bytes/);
    expect((await refusal(`${fresh("hugedeclared")}/jwks`)).message).toMatch(/larger than 65536 bytes/);
  });

  it("refuses what is not JSON, by type or by content, and JSON that is not a set", async () => {
    expect((await refusal(`${fresh("text")}/jwks`)).message).toMatch(/Content-Type "text\/html" is not JSON/);
    expect((await refusal(`${fresh("notjson")}/jwks`)).message).toMatch(/not valid JSON/);
    expect((await refusal(`${fresh("notset")}/jwks`)).message).toMatch(/not a JWK Set/);
  });

  it("does not follow a redirect", async () => {
    const before = await requestsFor(`${standIn.url}/good/jwks`);
    expect((await refusal(`${fresh("redirect")}/jwks`)).message).toMatch(/redirect \(302\)/);
    expect(await requestsFor(`${standIn.url}/good/jwks`)).toBe(before);
  });

  it("refuses a set carrying a private key or a symmetric key", async () => {
    expect((await refusal(`${fresh("private")}/jwks`)).message).toMatch(/private member "d"/);
    expect((await refusal(`${fresh("oct")}/jwks`)).message).toMatch(/symmetric \(oct\)/);
  });

  it("remembers a failure briefly instead of asking a failing server on every request", async () => {
    const uri = `${fresh("down")}/jwks`;
    expect((await refusal(uri)).message).toMatch(/HTTP 503/);
    expect((await refusal(uri)).message).toMatch(/not retried yet/);
    expect(await requestsFor(uri)).toBe(1);
  });
});

describe("remoteKeySet through an outage", () => {
  it("keeps verifying with the last keys while refetching an expired set fails", async () => {
    const base = fresh("flaky");
    const uri = `${base}/jwks`;
    const start = Date.now();
    // The module's clock, moved on instead of waited for (no race with the wall clock).
    const verifyAt = async (seconds: number) =>
      jwtVerify(
        await sign(standIn.keys.a),
        remoteKeySet(uri, () => start + seconds * 1000),
      );
    await verifyAt(0);
    await fetch(`${standIn.url}/__break?name=${new URL(base).pathname.slice(1)}`);
    // Past the set's 60 s freshness: the next use refetches, gets a 503, and serves the old keys.
    await verifyAt(90);
    expect(await requestsFor(uri)).toBe(2);
    await verifyAt(120);
  });
});

describe("discoverJwksUri: OpenID Connect Discovery, RFC 8414 fallback", () => {
  it("reads jwks_uri from the issuer's openid-configuration", async () => {
    const issuer = fresh("good");
    expect(await discoverJwksUri(issuer, LOCAL_ISSUER)).toBe(`${issuer}/jwks`);
    await jwtVerify(await sign(standIn.keys.a), discoveredKeySet(issuer, LOCAL_ISSUER));
  });

  it("falls back to /.well-known/oauth-authorization-server{path} on a 404", async () => {
    const issuer = fresh("oauth");
    expect(await discoverJwksUri(issuer, LOCAL_ISSUER)).toBe(`${issuer}/jwks`);
  });

  it("refuses a document naming another issuer", async () => {
    await expect(discoverJwksUri(fresh("mismatch"), LOCAL_ISSUER)).rejects.toThrow(/its issuer .* is not/);
  });

  it("refuses an http jwks_uri while this server's issuer is https", async () => {
    await expect(discoverJwksUri(fresh("good"), "https://auth.example.com")).rejects.toThrow(/is not an allowed URL/);
  });

  it("reports an issuer that is down as unavailable", async () => {
    await expect(discoverJwksUri(fresh("down"), LOCAL_ISSUER)).rejects.toBeInstanceOf(KeySetUnavailableError);
  });
});

describe("the edge copy (Cache API) between isolates", () => {
  const header = { alg: "RS256", kid: "stand-in-a" };
  const input = { payload: "", signature: "" };
  /** The key the set at `uri` gives for kid stand-in-a, as seen at `seconds` past `start`. */
  const keyAt = (uri: string, start: number, seconds: number) => remoteKeySet(uri, () => start + seconds * 1000)(header, input);

  it("gives a new isolate the fresh copy its location already fetched, without asking the issuer", async () => {
    const uri = `${fresh("good")}/jwks`;
    await jwtVerify(await sign(standIn.keys.a), remoteKeySet(uri));
    clearAllCaches();
    await jwtVerify(await sign(standIn.keys.a), remoteKeySet(uri));
    expect(await requestsFor(uri)).toBe(1);
  });

  it("lets a new isolate bridge an outage with the edge's copy within the stale bound, then refuses", async () => {
    const base = fresh("good");
    const uri = `${base}/jwks`;
    const start = Date.now();
    await keyAt(uri, start, 0);
    await fetch(`${standIn.url}/__down?name=${new URL(base).pathname.slice(1)}`);
    clearAllCaches();
    // Past the copy's freshness (max-age 300): the refetch fails, the edge's copy still verifies.
    await keyAt(uri, start, 400);
    clearAllCaches();
    await keyAt(uri, start, REMOTE_KEYS_STALE_SECONDS);
    clearAllCaches();
    await expect(keyAt(uri, start, REMOTE_KEYS_STALE_SECONDS + 400)).rejects.toThrow(/HTTP 503/);
  });

  it("keeps no copy of a set it refused", async () => {
    const uri = `${fresh("private")}/jwks`;
    await refusal(uri);
    clearAllCaches();
    await refusal(uri);
    expect(await requestsFor(uri)).toBe(2);
  });
});

describe("the README states the remote key set policy", () => {
  const section = readme.slice(readme.indexOf("## Workload identity federation"), readme.indexOf("## Deploy to a custom domain"));
  it("names the bounds src/policy.ts and this module hold", () => {
    expect(section).toContain(
      `with a ${REMOTE_FETCH_TIMEOUT_MS / 1000} s timeout, no redirects, at most ${MAX_REMOTE_DOCUMENT_BYTES / 1024} KiB`,
    );
    expect(section).toContain(
      `between ${REMOTE_KEYS_MIN_SECONDS} s and ${REMOTE_KEYS_MAX_SECONDS / 3600} hour (${REMOTE_KEYS_DEFAULT_SECONDS / 60} minutes without one)`,
    );
    expect(REMOTE_KEYS_REFETCH_SECONDS).toBe(60);
    expect(section).toContain("(at most once a minute)");
    expect(section).toContain(`remembers a failed fetch for ${REMOTE_KEYS_FAILURE_SECONDS} s`);
    expect(section).toContain(`for up to ${REMOTE_KEYS_STALE_SECONDS / 3600} hours past their expiry`);
  });
});
