/** Vars every parseConfig test starts from, and the one way to catch the ConfigError it throws. */
import { expect } from "vitest";
import { ConfigError, parseConfig } from "../../src/config.ts";

/** The two vars parseConfig requires. */
export const BASE_VARS = { ISSUER: "https://auth.example.com", DEFAULT_AUDIENCE: "https://api.example.com" };

/** The ConfigError parseConfig throws for `vars` (taken as they are); fails the test if it accepts them. */
export function configError(vars: Record<string, unknown>): Error {
  try {
    parseConfig(vars);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as Error;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(vars)}`);
}

/** The message of the ConfigError for BASE_VARS with `vars` added. */
export function configRefusal(vars: Record<string, unknown>): string {
  return configError({ ...BASE_VARS, ...vars }).message;
}
