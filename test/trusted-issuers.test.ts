/**
 * TRUSTED_ISSUERS (src/trusted-issuers.ts through src/config.ts): parsed once with the other
 * vars, every error naming the field.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.ts";
import { DEFAULT_ISSUER_ALGORITHMS, DEFAULT_MAX_TOKEN_LIFETIME } from "../src/trusted-issuers.ts";
import { BASE_VARS as base, configRefusal } from "./support/config.ts";

const GITHUB = "https://token.actions.githubusercontent.com";

describe("TRUSTED_ISSUERS", () => {
  it("is empty when unset", () => {
    expect(parseConfig(base).trustedIssuers).toEqual([]);
  });

  it("reads a table array or the same JSON as a string, with defaults for algorithms and lifetime", () => {
    const tables = [
      { issuer: GITHUB },
      {
        issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
        jwks_uri: "https://keys.example.com/jwks",
        algorithms: ["ES256"],
        max_token_lifetime: 600,
      },
    ];
    const expected = [
      { issuer: GITHUB, algorithms: DEFAULT_ISSUER_ALGORITHMS, maxTokenLifetime: DEFAULT_MAX_TOKEN_LIFETIME },
      { issuer: tables[1]!.issuer, jwksUri: "https://keys.example.com/jwks", algorithms: ["ES256"], maxTokenLifetime: 600 },
    ];
    expect(parseConfig({ ...base, TRUSTED_ISSUERS: tables }).trustedIssuers).toEqual(expected);
    expect(parseConfig({ ...base, TRUSTED_ISSUERS: JSON.stringify(tables) }).trustedIssuers).toEqual(expected);
  });

  it("allows a loopback http issuer only while ISSUER is loopback http itself", () => {
    const local = { ISSUER: "http://localhost:8787", TRUSTED_ISSUERS: [{ issuer: "http://127.0.0.1:9000/ci" }] };
    expect(parseConfig({ ...base, ...local }).trustedIssuers[0]!.issuer).toBe("http://127.0.0.1:9000/ci");
    expect(configRefusal({ TRUSTED_ISSUERS: [{ issuer: "http://127.0.0.1:9000/ci" }] })).toMatch(
      /^TRUSTED_ISSUERS\[0\]\.issuer: must be an https URL/,
    );
  });

  describe("names the field at fault", () => {
    for (const [what, value, message] of [
      ["not JSON", "[{", /^TRUSTED_ISSUERS: is a string but not JSON/],
      ["not an array", { issuer: GITHUB }, /^TRUSTED_ISSUERS: must be an array/],
      ["an entry not a table", ["x"], /^TRUSTED_ISSUERS\[0\]: must be a table/],
      ["no issuer", [{}], /^TRUSTED_ISSUERS\[0\]\.issuer: must be/],
      ["plain http", [{ issuer: "http://issuer.example.com" }], /^TRUSTED_ISSUERS\[0\]\.issuer: must be an https URL/],
      ["a query", [{ issuer: `${GITHUB}?x=1` }], /^TRUSTED_ISSUERS\[0\]\.issuer: must not have a query/],
      ["its own ISSUER", [{ issuer: base.ISSUER }], /^TRUSTED_ISSUERS\[0\]\.issuer: is this server's own ISSUER/],
      ["a repeat", [{ issuer: GITHUB }, { issuer: GITHUB }], /^TRUSTED_ISSUERS\[1\]\.issuer: repeats/],
      [
        "an http jwks_uri",
        [{ issuer: GITHUB, jwks_uri: "http://keys.example.com" }],
        /^TRUSTED_ISSUERS\[0\]\.jwks_uri: must be an https URL/,
      ],
      ["HS256", [{ issuer: GITHUB, algorithms: ["RS256", "HS256"] }], /^TRUSTED_ISSUERS\[0\]\.algorithms: "HS256" is not an asymmetric/],
      ["none", [{ issuer: GITHUB, algorithms: ["none"] }], /^TRUSTED_ISSUERS\[0\]\.algorithms: "none" is not an asymmetric/],
      ["no algorithms", [{ issuer: GITHUB, algorithms: [] }], /^TRUSTED_ISSUERS\[0\]\.algorithms: must be a non-empty array/],
      [
        "a lifetime too long",
        [{ issuer: GITHUB, max_token_lifetime: 86_401 }],
        /^TRUSTED_ISSUERS\[0\]\.max_token_lifetime: must be whole seconds/,
      ],
      ["a misspelt field", [{ issuer: GITHUB, jwksuri: "https://x" }], /^TRUSTED_ISSUERS\[0\]\.jwksuri: is not a field/],
    ] as const) {
      it(what, () => {
        expect(configRefusal({ TRUSTED_ISSUERS: value })).toMatch(message);
      });
    }
  });
});
