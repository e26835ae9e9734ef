/**
 * Waiting for something the running Worker will do within a bound (a cache expiring, a server
 * starting): a deadline, never a count of tries or a fixed sleep, so a busy machine is waited for.
 */

/**
 * Calls `check` until it answers true, pausing `intervalMs` between calls; fails with "timed out
 * waiting for WHAT" once `deadlineMs` have passed. Resolves to the milliseconds it took. An error
 * `check` throws (a failed expectation, a process that exited) ends the wait at once.
 */
export async function waitFor(
  what: string,
  deadlineMs: number,
  check: () => Promise<boolean> | boolean,
  intervalMs = 250,
): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return Date.now() - start;
}
