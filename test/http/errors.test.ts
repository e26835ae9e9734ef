import { describe, expect, it } from "vitest";
import { BearerError, bearerErrorResponse, OAuthError, oauthErrorResponse, StoreUnavailableError } from "../../src/http/errors.ts";
import { basic, tokenRequest } from "../support/worker.ts";

describe("every error response is built in one place", () => {
  it("carries no-store, no-cache and nosniff on OAuth and Bearer errors", async () => {
    for (const res of [
      oauthErrorResponse(new OAuthError("invalid_request", "x")),
      bearerErrorResponse(new BearerError("invalid_token", "x"), "https://a.example"),
    ]) {
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      expect(res.headers.get("Pragma")).toBe("no-cache");
      expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
      expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    }
  });

  it("asks a client to retry after 10 s on 503, and keeps a limiter's own Retry-After on 429", () => {
    expect(oauthErrorResponse(new OAuthError("temporarily_unavailable", "down")).headers.get("Retry-After")).toBe("10");
    expect(
      oauthErrorResponse(
        new OAuthError("temporarily_unavailable", "slow down", { status: 429, headers: { "Retry-After": "60" } }),
      ).headers.get("Retry-After"),
    ).toBe("60");
    expect(oauthErrorResponse(new OAuthError("invalid_request", "x")).headers.get("Retry-After")).toBeNull();
  });

  it("quotes and escapes WWW-Authenticate parameters (RFC 9110 §11.2)", () => {
    const res = bearerErrorResponse(new BearerError("insufficient_scope", 'needs "a\\b"', { scope: "a b" }), 'realm "x"');
    expect(res.headers.get("WWW-Authenticate")).toBe(
      'Bearer realm="realm \\"x\\"", error="insufficient_scope", error_description="needs \\"a\\\\b\\"", scope="a b"',
    );
  });
});

describe("a bare Basic scheme", () => {
  it("is malformed Basic credentials, not another scheme", async () => {
    for (const header of ["Basic", "basic ", `${basic("a", "b")} extra`]) {
      const res = await tokenRequest("grant_type=client_credentials", { Authorization: header });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error_description: string }).error_description).toBe(
        "the Authorization header is not valid Basic credentials",
      );
    }
  });
});

describe("StoreUnavailableError", () => {
  it("is answered as 503 temporarily_unavailable naming the store, the cause in the log-only reason", async () => {
    const error = new StoreUnavailableError("token", "write", new Error("KV down"));
    const oauth = error.toOAuthError();
    expect(oauth).toMatchObject({ code: "temporarily_unavailable", status: 503, reason: "KV write failed: KV down" });
    const res = oauthErrorResponse(oauth);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      error: "temporarily_unavailable",
      error_description: "the token store is unavailable, try again later",
    });
  });
});
