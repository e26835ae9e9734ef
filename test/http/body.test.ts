/**
 * readBodyCapped (src/http/body.ts): the cap holds whatever the request claims, on both of its paths.
 */
import { describe, expect, it } from "vitest";
import { readBodyCapped } from "../../src/http/body.ts";

/** A POST whose body is `size` bytes streamed in 1 KiB chunks, declaring `contentLength` if given. */
function streamed(size: number, contentLength?: string): Request {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) return controller.close();
      const chunk = new Uint8Array(Math.min(1024, size - sent)).fill(97);
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const headers = contentLength === undefined ? {} : { "Content-Length": contentLength };
  return new Request("https://auth.tollgate.test/token", { method: "POST", body, headers, duplex: "half" } as RequestInit);
}

describe("readBodyCapped", () => {
  it("returns a body within the limit, declared or not", async () => {
    expect((await readBodyCapped(new Request("https://x.test/", { method: "POST", body: "a=1" }), 1000))?.byteLength).toBe(3);
    expect((await readBodyCapped(streamed(1000), 1000))?.byteLength).toBe(1000);
  });

  it("refuses a declared length over the limit before reading", async () => {
    expect(await readBodyCapped(streamed(10, "1001"), 1000)).toBeUndefined();
  });

  it("refuses a body longer than its declared length when it is over the limit (a Request not parsed by the HTTP layer)", async () => {
    expect(await readBodyCapped(streamed(100_000, "10"), 1000)).toBeUndefined();
  });

  it("treats a Content-Length that is not digits as undeclared: the stream is cut at the limit", async () => {
    expect(await readBodyCapped(streamed(5000, ""), 1000)).toBeUndefined();
    expect(await readBodyCapped(streamed(5000, "+10"), 1000)).toBeUndefined();
  });
});
