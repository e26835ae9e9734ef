/**
 * fast-check building blocks shared by the hostile-input properties (test/fuzz/*.property.test.ts):
 * strings and header values in the shapes attackers send, and the checks every answer must pass.
 * Runtime-neutral (no cloudflare:* import), so the same pieces could serve a Node property too.
 */
import fc from "fast-check";

/**
 * Runs per property: modest, so the workerd files stay well under a minute. (workerd tests cannot
 * read the host's environment, so there is no FUZZ_RUNS switch: edit this, or pass numRuns.)
 */
export const NUM_RUNS = 200;

/**
 * A fixed seed, so `npm test` is deterministic (the properties also check that every kind of answer
 * was produced, which a random draw of 200 runs can miss). Change it, or pass `seed`, to explore
 * other inputs locally.
 */
export const FUZZ_SEED = 20261125;

/**
 * fast-check parameters for every property. To replay a failure, pass the `seed` and `path` that
 * fast-check printed: `fcParams({ seed, path, endOnFailure: true })`.
 */
export function fcParams<T>(overrides: fc.Parameters<T> = {}): fc.Parameters<T> {
  return { numRuns: NUM_RUNS, seed: FUZZ_SEED, ...overrides };
}

/** A string repeated up to `max` characters: large inputs without fast-check generating each char. */
export function huge(max: number, unit: fc.Arbitrary<string> = fc.string({ minLength: 1, maxLength: 8 })): fc.Arbitrary<string> {
  return fc
    .tuple(
      unit.filter((s) => s.length > 0),
      fc.integer({ min: 1, max }),
    )
    .map(([s, n]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
}

/** Latin-1 characters (U+0080-U+00FF), which a ByteString header value may carry as single bytes. */
export const latin1Char = fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c));
export const latin1String = fc
  .array(fc.oneof(latin1Char, fc.constantFrom("a", " ", ";", "=")), { minLength: 1, maxLength: 40 })
  .map((a) => a.join(""));

/** Text in every shape: ASCII, full Unicode (graphemes, astral), Latin-1, URL-ish punctuation. */
export const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  latin1String,
  fc.constantFrom("", " ", "%", "%zz", "%00", "%2f", "+", "&", "=", "&&==", "\u0000", "\r\n", "\ufeff", "\ud800", "..", "a b", "é", "💥"),
);

/** An HTTP token (RFC 9110 §5.6.2): what a header name or auth scheme may be. */
export const httpToken = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}$/);

/**
 * A header value the Headers API might accept: ASCII (also huge, to ~16 KiB), and now and then short
 * Latin-1 or Unicode. workerd takes non-ASCII values (as UTF-8) but prints a warning for each one,
 * so those stay short and rare.
 */
export const headerValue = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 2, arbitrary: huge(16 * 1024, fc.constantFrom("A", "=", "a, b", "Basic ", "%C3%A9", "\t")) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      latin1String.map((s) => s.slice(0, 12)),
      fc.string({ unit: "grapheme", maxLength: 4 }),
    ),
  },
);

/** Whether the Headers API takes this header as given (fetch rejects NUL, CR, LF, bad names). */
export function headerAccepted(name: string, value: string): boolean {
  try {
    new Headers().append(name, value);
    return true;
  } catch {
    return false;
  }
}

export const utf8Length = (text: string): number => new TextEncoder().encode(text).byteLength;

/** JWT-shaped substrings (three base64url runs joined by dots). */
export function jwtShapes(text: string): string[] {
  return text.match(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g) ?? [];
}

/** A stack trace line (`at fn (file:1:2)`) or a serialized Error's stack. */
export const STACK_TRACE = /(^|\n)\s*at \S.*:\d+:\d+|\bat (async )?[\w$.<>]+ \(|"stack"\s*:/;

/** The request body as a stream of random-sized chunks. */
export function streamOf(bytes: Uint8Array, chunkSizes: number[]): ReadableStream<Uint8Array> {
  let offset = 0;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      const size = Math.max(1, chunkSizes.length > 0 ? chunkSizes[i++ % chunkSizes.length]! : bytes.byteLength);
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

/** Latin-1 view of bytes (each byte one char): for searching a body for what it carries. */
export function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.byteLength; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

/** A short description of a request for assertion messages (long values cut). */
export function describeRequest(parts: { method: string; url: string; headers: [string, string][]; body?: string }): string {
  const cut = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}…(${s.length} chars)` : s);
  return JSON.stringify({
    method: parts.method,
    url: cut(parts.url),
    headers: parts.headers.map(([n, v]) => [n, cut(v)]),
    body: parts.body === undefined ? undefined : cut(parts.body),
  });
}
