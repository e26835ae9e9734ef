/**
 * Method overrides sent as parameters: Rails (Rack::MethodOverride), Laravel and Symfony, Slim
 * (`_METHOD`) and Express's method-override act on a POST's `_method` in the query, a form body, a
 * multipart body or (Rack) a body without Content-Type as if the request had that method. On a
 * protected route the gateway authorized the method that came, so it refuses them all (the header
 * forms are dropped in headers.ts).
 */
import { BearerError } from "../http/errors.ts";

/**
 * `_method` in any letter case, as origins read the name: PHP turns a leading `.`, ` ` or an
 * unclosed `[` into `_` and drops leading spaces, so `.method` and ` _method` are `_method` there.
 */
const OVERRIDE_NAME = /^\s*[_.[ ]method$/i;
/** The most bytes of part headers kept while looking for their end (Content-Disposition is among them). */
const MAX_PART_HEADERS = 16 * 1024;

/** The 400 for a method override: RFC 6750 §3.1 `invalid_request`, as for a token in the query. */
export function methodOverrideRefused(): BearerError {
  return new BearerError("invalid_request", "method overrides (_method) are not accepted on protected routes: send the method itself", { reason: "_method parameter" });
}

/** Whether query or form parameters name a method override. */
export function hasMethodOverride(params: URLSearchParams): boolean {
  for (const name of params.keys()) if (OVERRIDE_NAME.test(name)) return true;
  return false;
}

/** The `name` parameters of a part's Content-Disposition (RFC 7578 §4.2), quoted, RFC 8187-encoded or bare. */
function partNames(headers: string): string[] {
  const names: string[] = [];
  for (const line of headers.split(/\r?\n/)) {
    if (!/^\s*content-disposition\s*:/i.test(line)) continue;
    for (const m of line.matchAll(/(?:^|[;:\s])name\s*\*?\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/gi)) {
      let value = m[1]!.replace(/^"|"$/g, "").replace(/\\/g, "").replace(/^[\w-]*'[\w-]*'/, "");
      try {
        value = decodeURIComponent(value);
      } catch {
        // not percent-encoded: compared as it is
      }
      names.push(value);
    }
  }
  return names;
}

/** The one plain boundary of a multipart Content-Type; two, or one origins could read differently, are refused. */
function multipartBoundary(contentType: string): string {
  const boundaries = [...contentType.matchAll(/;\s*boundary\s*=\s*(?:"([^"]*)"|([^;]*))/gi)].map((m) => m[1] ?? m[2]!.trimEnd());
  // Parsers disagree on repeated boundaries, on "," and spaces in one (Rack stops at ","), and on
  // "boundary=" inside another parameter's quoted value (Rack takes the last "boundary=" anywhere).
  if (boundaries.length !== 1 || contentType.match(/boundary\s*=/gi)!.length !== 1 || !/^[A-Za-z0-9'()+_\-./:=?]{1,70}$/.test(boundaries[0]!)) {
    throw new BearerError("invalid_request", "the multipart boundary is missing or not a plain token", { reason: `multipart boundary ${contentType.slice(0, 200)}` });
  }
  return boundaries[0]!;
}

/**
 * Reads a multipart body chunk by chunk and throws a 400 at the chunk that completes the headers
 * of a part named like `_method`.
 * @see RFC 2046 §5.1.1, RFC 7578 §4.2
 */
function createPartScanner(contentType: string): (chunk: Uint8Array) => void {
  // "\n--boundary": CRLF per RFC 2046, bare LF as lenient parsers (PHP) also accept.
  const delimiter = `\n--${multipartBoundary(contentType)}`;
  const decoder = new TextDecoder("latin1");
  let buffer = "\n"; // the first delimiter may open the body
  let inHeaders = false;
  let done = false;
  return (chunk) => {
    if (done) return;
    buffer += decoder.decode(chunk, { stream: true });
    for (;;) {
      if (!inHeaders) {
        const at = buffer.indexOf(delimiter);
        if (at < 0) {
          buffer = buffer.slice(-(delimiter.length - 1)); // a delimiter may straddle chunks
          return;
        }
        buffer = buffer.slice(at + delimiter.length);
        inHeaders = true;
      }
      if (buffer.length < 2) return;
      if (buffer.startsWith("--")) {
        done = true; // the closing delimiter: the rest is epilogue
        return;
      }
      const end = /\r?\n\r?\n/.exec(buffer);
      if (!end) {
        if (buffer.length > MAX_PART_HEADERS) throw new BearerError("invalid_request", "multipart part headers are too long", { reason: "multipart part headers over 16 KiB" });
        return;
      }
      if (partNames(buffer.slice(0, end.index)).some((name) => OVERRIDE_NAME.test(name))) throw methodOverrideRefused();
      buffer = buffer.slice(end.index + end[0].length);
      inHeaders = false;
    }
  };
}

/**
 * Reads a form-encoded body chunk by chunk (RFC 1866 §8.2.1; Rack also splits on `;`) and throws a
 * 400 at the chunk that completes a parameter name like `_method`.
 */
function createFormScanner(): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder("latin1");
  let name = ""; // the current parameter's name so far, while it could still be _method
  let inName = true;
  return (chunk) => {
    for (const ch of decoder.decode(chunk, { stream: true })) {
      if (ch === "&" || ch === ";") {
        if (inName) checkName(name);
        name = "";
        inName = true;
      } else if (inName) {
        if (ch === "=") {
          checkName(name);
          inName = false;
        } else if (name.length < 64) name += ch; // "_method" encoded thrice over is still shorter
        else inName = false;
      }
    }
  };
}

function checkName(encoded: string): void {
  let name = encoded.replace(/\+/g, " ");
  try {
    name = decodeURIComponent(name);
  } catch {
    // a malformed escape: compared as it is
  }
  if (OVERRIDE_NAME.test(name)) throw methodOverrideRefused();
}

/** The scanner for a body of this type: multipart parts, or form parameters. */
function scannerFor(contentType: string): (chunk: Uint8Array) => void {
  return /^multipart\//i.test(contentType) ? createPartScanner(contentType) : createFormScanner();
}

/**
 * Throws a 400 if a whole body (multipart, or form-encoded: a POST body without Content-Type is
 * one to Rack) has a part or parameter named like `_method`.
 */
export function checkBodyForOverride(bytes: Uint8Array, contentType: string): void {
  const scan = scannerFor(contentType);
  scan(bytes);
  if (!/^multipart\//i.test(contentType)) scan(new TextEncoder().encode("&")); // the last parameter
}

/**
 * A body too large to read first (an upload), checked as it streams to the origin. At a `_method`
 * part or parameter it withholds that chunk and every later byte and never ends the stream: the
 * origin gets no whole body to act on (workerd would end an errored request body as if complete),
 * and the request ends when the route's timeout aborts it. `onRefused` learns the error for the
 * client.
 */
export function withoutOverrides(body: ReadableStream<Uint8Array>, contentType: string, onRefused: (error: BearerError) => void): ReadableStream<Uint8Array> {
  const scan = scannerFor(contentType);
  let refused = false;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (refused) return;
        try {
          scan(chunk);
        } catch (error) {
          refused = true;
          onRefused(error as BearerError);
          return;
        }
        controller.enqueue(chunk);
      },
      // A last parameter without "=" has no value to override with, so the end needs no check.
      flush: () => (refused ? new Promise<void>(() => {}) : undefined),
    }),
  );
}
