/**
 * Abuse limits on Cloudflare's Rate Limiting binding (Miniflare emulates it locally). A limiter
 * that is not bound is no limit: the binding's configuration in wrangler.toml is the policy.
 * @see https://developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit/
 */
import { OAuthError } from "./errors.ts";

/** The period every limiter in wrangler.toml uses; Retry-After says this much at most. */
export const LIMIT_PERIOD_SECONDS = 60;

/** Throws 429 with Retry-After when `key` is over the limiter's budget. */
export async function enforceLimit(limiter: RateLimit | undefined, key: string, what: string): Promise<void> {
  if (!limiter) return;
  const { success } = await limiter.limit({ key });
  if (!success) throw tooManyRequests(what, key);
}

export function tooManyRequests(what: string, key: string): OAuthError {
  return new OAuthError("temporarily_unavailable", `too many requests, retry after ${LIMIT_PERIOD_SECONDS} seconds`, {
    status: 429,
    headers: { "Retry-After": String(LIMIT_PERIOD_SECONDS) },
    reason: `${what} over its limit (${key})`,
  });
}

/** The client's address as Cloudflare saw it; "unknown" where no edge set it (local tests). */
export function clientAddress(headers: Headers): string {
  return headers.get("CF-Connecting-IP") ?? "unknown";
}
