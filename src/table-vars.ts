/**
 * Vars that are lists of tables (GATEWAY_ROUTES, EXTERNAL_ISSUERS): a TOML `[[vars.NAME]]` array
 * arrives as an array; `.dev.vars` and `--var` can only pass the same JSON as a string.
 */

/**
 * The entries of a list-of-tables var; absent or empty is none. `fail` gets what is wrong with the
 * whole value (not JSON, not an array) and throws the caller's error naming the var.
 */
export function parseTableArrayVar(raw: unknown, what: string, fail: (message: string) => never): unknown[] {
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
