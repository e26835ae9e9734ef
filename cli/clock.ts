/**
 * The clock `tollgate keys rotate` counts `since` from. Every isolate compares `since` with its own
 * clock, which is Cloudflare's: a machine clock behind it shortens the notice the operator asked for
 * (and with `--in 0` lets isolates that have not read the record sign with the previous generation
 * after the schedule stopped publishing its next key), one ahead of it delays the switch, even an
 * emergency one. So for the deployed namespace the CLI reads Cloudflare's clock from the `Date`
 * header of a Cloudflare API response, and counts from it when the two differ by more than
 * MAX_CLOCK_SKEW_SECONDS, saying so. Locally (`npm start`) the Worker runs on this machine's clock.
 */
/** A public Cloudflare API endpoint (no credentials): only its `Date` header is read. */
export const CLOUDFLARE_CLOCK_URL = "https://api.cloudflare.com/client/v4/ips";

/**
 * Differences up to this are left to this machine's clock: a few seconds of the 30 s the schedule
 * allows between `since` and the record reaching KV (ROTATE_WRITE_SECONDS in src/keys/schedule.ts),
 * the rest of which is the write's own time.
 */
export const MAX_CLOCK_SKEW_SECONDS = 5;
/** Also bounds the reading's error: half the round trip, plus the Date header's second. */
const READ_TIMEOUT_MS = 5000;

export class ClockError extends Error {
  override name = "ClockError";
}

export interface ClockSkew {
  /** This machine's clock minus the server's, in milliseconds: positive when this one is ahead. */
  skewMs: number;
  /** How far off `skewMs` may be: the `Date` header's whole seconds and the round trip. */
  uncertaintyMs: number;
}

/**
 * This machine's clock against the `Date` header of `url`'s answer.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1
 */
export async function measureClockSkew(url: string): Promise<ClockSkew> {
  const sent = Date.now();
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
  } catch (error) {
    throw new ClockError(`${url} did not answer: ${(error as Error).message}`);
  }
  const received = Date.now();
  await response.body?.cancel();
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (Number.isNaN(date)) throw new ClockError(`${url} answered without a Date header`);
  // RFC 9110 §5.6.7: an HTTP-date has whole seconds, so the server's clock read [date, date + 1 s)
  // at some moment between `sent` and `received`: compare the middles.
  return { skewMs: (sent + received) / 2 - (date + 500), uncertaintyMs: 500 + (received - sent) / 2 };
}

export interface RotationTime {
  /** Epoch seconds for `since` to count from. */
  now: number;
  /** What the operator should know about it, if anything. */
  warning?: string;
}

/** The time to count `since` from, given this machine's clock (`localMs`) and its measured skew. */
export function chooseRotationTime(localMs: number, skew: ClockSkew | ClockError): RotationTime {
  const local = Math.floor(localMs / 1000);
  if (skew instanceof ClockError) {
    return {
      now: local,
      warning: `could not read Cloudflare's clock (${skew.message}); since counts from this machine's clock, unchecked`,
    };
  }
  if (Math.abs(skew.skewMs) <= MAX_CLOCK_SKEW_SECONDS * 1000) return { now: local };
  const seconds = Math.round(Math.abs(skew.skewMs) / 1000);
  return {
    now: Math.round((localMs - skew.skewMs) / 1000),
    warning: `this machine's clock is ${seconds} s ${skew.skewMs > 0 ? "ahead of" : "behind"} Cloudflare's; since counts from Cloudflare's clock (fix this machine's time sync)`,
  };
}

/** The time `keys rotate` counts `since` from: Cloudflare's clock for the deployed namespace, else this machine's. */
export async function rotationTime(remote: boolean): Promise<RotationTime> {
  if (!remote) return { now: Math.floor(Date.now() / 1000) };
  const skew = await measureClockSkew(CLOUDFLARE_CLOCK_URL).catch((error: unknown) => {
    if (error instanceof ClockError) return error;
    throw error;
  });
  return chooseRotationTime(Date.now(), skew);
}
