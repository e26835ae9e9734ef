// src/policy.ts: the revocation bound is computed from its parts, and the README states that value.
import { describe, expect, it } from "vitest";
import readme from "../README.md?raw";
import {
  CLIENT_CACHE_SECONDS,
  CLOCK_TOLERANCE_SECONDS,
  KV_CACHE_TTL_SECONDS,
  REVOCATION_BOUND_SECONDS,
  REVOCATION_CHECK_SECONDS,
  REVOKED_ENTRY_MARGIN_SECONDS,
} from "../src/policy.ts";

/** The README's section on revocation at the gateway and at /token. */
const sectionStart = readme.indexOf("### Revocation and disabled clients at the gateway");
const section = readme.slice(sectionStart, readme.indexOf("\n## ", sectionStart));

describe("src/policy.ts", () => {
  it("the revocation bound is KV's edge cache plus the isolate's, and /token's warm path shares it", () => {
    expect(REVOCATION_BOUND_SECONDS).toBe(KV_CACHE_TTL_SECONDS + REVOCATION_CHECK_SECONDS);
    expect(CLIENT_CACHE_SECONDS).toBe(REVOCATION_CHECK_SECONDS);
  });

  it("a revoked:{jti} entry outlives the clock tolerance past exp", () => {
    expect(REVOKED_ENTRY_MARGIN_SECONDS).toBeGreaterThan(CLOCK_TOLERANCE_SECONDS);
  });

  it("the README states the computed bound, from the same parts", () => {
    expect(section.length).toBeGreaterThan(0);
    const table = section.match(
      /\| any location \| (\d+) s \(KV's edge cache[^|]*\) \+ (\d+) s \(the isolate's own cache\) = \*\*(\d+) s\*\* \|/,
    );
    expect(table, "README: the 'any location' row of the revocation table").not.toBeNull();
    expect(Number(table![1])).toBe(KV_CACHE_TTL_SECONDS);
    expect(Number(table![2])).toBe(REVOCATION_CHECK_SECONDS);
    expect(Number(table![3])).toBe(REVOCATION_BOUND_SECONDS);
    const atToken = section.match(/within \*\*(\d+) s\*\* \((\d+) \+ (\d+)\)/);
    expect(atToken, "README: the bound at /token").not.toBeNull();
    expect(atToken!.slice(1).map(Number)).toEqual([REVOCATION_BOUND_SECONDS, KV_CACHE_TTL_SECONDS, CLIENT_CACHE_SECONDS]);
    // Every other "N s" bound the section and the CLI summary repeat is the same number.
    for (const [, seconds] of section.matchAll(/(?:the|those|within) (\d+) s\b/g)) expect(Number(seconds)).toBe(REVOCATION_BOUND_SECONDS);
    const cli = readme.match(/refuse it within (\d+) s/);
    expect(Number(cli![1])).toBe(REVOCATION_BOUND_SECONDS);
  });
});
