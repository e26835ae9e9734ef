/**
 * A var that wrangler.toml gives as a table array (`[[vars.NAME]]`, an array) or that `--var`,
 * .dev.vars or the dashboard give as the same JSON in a string: GATEWAY_ROUTES, TRUSTED_ISSUERS.
 */

/** The var's entries, [] when unset; `fail` (which names the var) for a string that is not JSON or a value that is not an array. */
export function parseTableArrayVar(raw: unknown, fail: (message: string) => never, what: string): unknown[] {
  if (raw === undefined || raw === null || raw === "") return [];
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      fail("is a string but not JSON");
    }
  }
  if (!Array.isArray(value)) fail(`must be an array of ${what}`);
  return value;
}
