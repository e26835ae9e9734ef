/**
 * Reads a request body up to a limit, refusing early: a declared Content-Length over the limit is
 * refused before reading, and a chunked body is cut off as soon as it passes the limit. A body that
 * stops arriving is given up on after BODY_DEADLINE_MS (a slow-loris client never holds a request).
 */
import { OAuthError } from "./errors.ts";

export const BODY_DEADLINE_MS = 10_000;

/**
 * Returns the body's bytes, or undefined when it is over `limit` (the caller chooses the error).
 * A Response is read the same way (a remote key set, src/keys/remote-key-set.ts).
 */
export async function readBodyCapped(
  request: Request | Response,
  limit: number,
  deadlineMs = BODY_DEADLINE_MS,
): Promise<Uint8Array | undefined> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && !(Number(declared) <= limit)) return undefined;
  if (!request.body) return new Uint8Array(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new OAuthError("invalid_request", "the request body did not arrive in time", { status: 408 })),
      deadlineMs,
    );
  });
  if (declared !== null && /^\d+$/.test(declared)) {
    // The HTTP layer delivers exactly the declared length (RFC 9112 §6.3), which is within the
    // limit, so the body is taken whole: one native read instead of a loop over chunks. The size is
    // checked again for bodies that did not come through it (a Request built in the isolate).
    const whole = request.arrayBuffer();
    whole.catch(() => {}); // settles after a 408 when the client gives up; nobody waits then
    try {
      const body = new Uint8Array(await Promise.race([whole, deadline]));
      return body.byteLength <= limit ? body : undefined;
    } finally {
      clearTimeout(timer);
    }
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
