/**
 * Reads a request body up to a limit, refusing early: a declared Content-Length over the limit is
 * refused before reading, and a chunked body is cut off as soon as it passes the limit.
 */

/** Returns the body's bytes, or undefined when it is over `limit` (the caller chooses the error). */
export async function readBodyCapped(request: Request, limit: number): Promise<Uint8Array | undefined> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && !(Number(declared) <= limit)) return undefined;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
