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
 * unclosed `[` into `_` and drops leading spaces, so `.method` and ` _method` are `_method` there;
 * Rack 2 drops leading `[`/`]` and trailing `]` (`[_method]`, `]_method`, `_method]`); qs
 * (Express) reads `[_method]` as `_method` and `_method[]`, `_method[0]` as an array whose first
 * item method-override takes. So any bracket suffix counts.
 */
const OVERRIDE_NAME = /^[\s[\]]*[_.[ ]method(?:[[\]].*)?$/is;

/** Whether a decoded parameter or part name is `_method` to some origin; PHP cuts a name at NUL. */
function isOverrideName(name: string): boolean {
  const nul = name.indexOf("\0");
  return OVERRIDE_NAME.test(nul < 0 ? name : name.slice(0, nul));
}
/** The most bytes of part headers kept while looking for their end (Content-Disposition is among them). */
const MAX_PART_HEADERS = 16 * 1024;

/**
 * Which bodies of a request on a protected route can carry an override: form-encoded ones, multipart
 * ones, a POST's without Content-Type (Rack reads it as a form), and a POST's JSON (a Content-Type
 * with "/json" or "+json", as Laravel's isJson reads it).
 */
export function overrideBodyKind(contentType: string, method: string): "urlencoded" | "multipart" | "untyped" | "json" | undefined {
  if (/^application\/x-www-form-urlencoded\b/i.test(contentType)) return "urlencoded";
  if (/^multipart\//i.test(contentType)) return "multipart";
  if (method !== "POST") return undefined;
  if (contentType === "") return "untyped";
  return /[/+]json/i.test(contentType) ? "json" : undefined;
}

/** The 400 for a method override: RFC 6750 §3.1 `invalid_request`, as for a token in the query. */
export function methodOverrideRefused(): BearerError {
  return new BearerError("invalid_request", "method overrides (_method) are not accepted on protected routes: send the method itself", {
    reason: "_method parameter",
  });
}

/** Whether query or form parameters name a method override. */
export function hasMethodOverride(params: URLSearchParams): boolean {
  for (const name of params.keys()) if (isOverrideName(name)) return true;
  return false;
}

/**
 * The `name` parameters of a part's Content-Disposition (RFC 7578 §4.2): double-quoted, single-quoted
 * (PHP), RFC 8187-encoded or bare, on header lines unfolded first (PHP joins a line that starts
 * with white space to the one before).
 */
function partNames(headers: string): string[] {
  const names: string[] = [];
  for (const line of headers.split(/\r?\n(?![ \t])/)) {
    if (!/^\s*content-disposition\s*:/i.test(line)) continue;
    for (const m of line.matchAll(/(?:^|[;:\s])name\s*\*?\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^;\s]*)/gi)) {
      let value = m[1]!
        .replace(/^(["'])(.*)\1$/s, "$2")
        .replace(/\\/g, "")
        .replace(/^[\w-]*'[\w-]*'/, "");
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

/**
 * The boundary as PHP reads it: after the first `=` that follows the first "boundary" substring
 * (case-sensitive, else in any case), up to `"`, or else to `,` or `;` (rfc1867.c).
 */
function phpBoundary(contentType: string): string | undefined {
  let at = contentType.indexOf("boundary");
  if (at < 0) at = contentType.toLowerCase().indexOf("boundary");
  const eq = at < 0 ? -1 : contentType.indexOf("=", at);
  if (eq < 0) return undefined;
  const value = contentType.slice(eq + 1);
  if (value.startsWith('"')) {
    const close = value.indexOf('"', 1);
    return close < 0 ? undefined : value.slice(1, close);
  }
  return value.split(/[,;]/, 1)[0];
}

/** The one plain boundary of a multipart Content-Type; two, or one origins could read differently, are refused. */
function multipartBoundary(contentType: string): string {
  const boundaries = [...contentType.matchAll(/;\s*boundary\s*=\s*(?:"([^"]*)"|([^;]*))/gi)].map((m) => m[1] ?? m[2]!.trimEnd());
  // Parsers disagree on repeated boundaries, on "," and spaces in one (Rack stops at ","), on
  // "boundary=" inside another parameter's quoted value (Rack takes the last "boundary=" anywhere),
  // and on "boundary" in another parameter (PHP takes the first "boundary", then the next "=").
  if (
    boundaries.length !== 1 ||
    contentType.match(/boundary\s*=/gi)!.length !== 1 ||
    !/^[A-Za-z0-9'()+_\-./:=?]{1,70}$/.test(boundaries[0]!) ||
    phpBoundary(contentType) !== boundaries[0]
  ) {
    throw new BearerError("invalid_request", "the multipart boundary is missing or not a plain token", {
      reason: `multipart boundary ${contentType.slice(0, 200)}`,
    });
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
        if (buffer.length > MAX_PART_HEADERS)
          throw new BearerError("invalid_request", "multipart part headers are too long", { reason: "multipart part headers over 16 KiB" });
        return;
      }
      if (partNames(buffer.slice(0, end.index)).some(isOverrideName)) throw methodOverrideRefused();
      buffer = buffer.slice(end.index + end[0].length);
      inHeaders = false;
    }
  };
}

/**
 * What origins skip before a name (PHP spaces, Rack 2 brackets), as sent: `+`, white space, `[`,
 * `]`, or one of them %-escaped. A name keeps only the last of its leading run, so no length of
 * padding hides a `_method` after it from the scanner's bounded name.
 */
const NAME_PADDING = /^(?:[+\s[\]]|%(?:20|5[BD]|0[9A-D]))$/i;

/**
 * Reads a form-encoded body chunk by chunk (RFC 1866 §8.2.1; Rack also splits on `;`) and throws a
 * 400 at the chunk that completes a parameter name like `_method`.
 */
function createFormScanner(): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder("latin1");
  let pad = ""; // the last of the name's leading padding: any length of it reads as one
  let pendingEscape = ""; // a leading %-escape still being read, padding or not
  let name = ""; // the rest of the current parameter's name so far, while it could still be _method
  let inName = true;
  return (chunk) => {
    for (const ch of decoder.decode(chunk, { stream: true })) {
      if (ch === "&" || ch === ";") {
        if (inName) checkName(pad + pendingEscape + name);
        pad = pendingEscape = name = "";
        inName = true;
      } else if (inName) {
        if (ch === "=") {
          checkName(pad + pendingEscape + name);
          inName = false;
        } else if (name !== "") {
          if (name.length < 64)
            name += ch; // "_method[]" with every character escaped is shorter
          else inName = false;
        } else if (pendingEscape !== "" || ch === "%") {
          pendingEscape += ch;
          if (pendingEscape.length === 3) {
            if (NAME_PADDING.test(pendingEscape)) pad = pendingEscape;
            else name = pendingEscape;
            pendingEscape = "";
          }
        } else if (NAME_PADDING.test(ch)) pad = ch;
        else name = ch;
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
  if (isOverrideName(name)) throw methodOverrideRefused();
}

/** The longest JSON key kept while reading it: `_method` with every character \u-escaped is 42. */
const MAX_JSON_KEY = 128;

/**
 * Reads a JSON body chunk by chunk and throws a 400 at the chunk that completes a top-level member
 * name that decodes to an override name (`{"_method": …}`, `{"\u005fmethod": …}`): Laravel makes a
 * JSON body the request bag Symfony's getMethod reads, and method-override reads `req.body._method`.
 * Only the top-level object's names count; text that is not JSON is scanned all the same.
 * @see RFC 8259 §4
 */
function createJSONScanner(): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder("latin1");
  let depth = 0;
  let topIsObject = false;
  let inString = false;
  let escaped = false;
  let key: string | undefined; // the top-level string being read, while it could still be a name
  let name: string | undefined; // a top-level string just closed: a name if ":" follows
  const stringEnd = /["\\]/g;
  return (chunk) => {
    const text = decoder.decode(chunk, { stream: true });
    for (let i = 0; i < text.length; i++) {
      if (inString && key === undefined && !escaped) {
        // A string that cannot be a name: skip to its next quote or escape in one search.
        stringEnd.lastIndex = i;
        if (!stringEnd.test(text)) return;
        i = stringEnd.lastIndex - 1;
      }
      const ch = text[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === "\\") escaped = true;
        else if (ch === '"') {
          inString = false;
          name = key;
          continue;
        }
        if (key !== undefined) key = key.length < MAX_JSON_KEY ? key + ch : undefined;
      } else if (ch === '"') {
        inString = true;
        key = depth === 1 && topIsObject ? "" : undefined;
        name = undefined;
      } else if (ch === ":") {
        if (name !== undefined) checkJSONName(name);
        name = undefined;
      } else if (ch !== " " && ch !== "\n" && ch !== "\r" && ch !== "\t") {
        if (ch === "{" || ch === "[") {
          if (depth === 0) topIsObject = ch === "{";
          depth++;
        } else if ((ch === "}" || ch === "]") && depth > 0) depth--;
        name = undefined;
      }
    }
  };
}

function checkJSONName(raw: string): void {
  let name = raw;
  try {
    name = JSON.parse(`"${raw}"`) as string;
  } catch {
    // not a valid JSON string: compared as it is
  }
  if (isOverrideName(name)) throw methodOverrideRefused();
}

/** The scanner for a body of this type: multipart parts, JSON member names, or form parameters. */
function scannerFor(contentType: string): (chunk: Uint8Array) => void {
  const kind = overrideBodyKind(contentType, "POST");
  if (kind === "multipart") return createPartScanner(contentType);
  return kind === "json" ? createJSONScanner() : createFormScanner();
}

/**
 * Throws a 400 if a whole body (multipart, JSON, or form-encoded: a POST body without Content-Type
 * is one to Rack) has a part, member or parameter named like `_method`.
 */
/** "&": fed after a body, it ends the last form parameter. */
const FORM_END = Uint8Array.of(0x26);

export function checkBodyForOverride(bytes: Uint8Array, contentType: string): void {
  const scan = scannerFor(contentType);
  scan(bytes);
  scan(FORM_END); // ends the last form parameter; a no-op after multipart or JSON
}

/**
 * A body too large to read first (an upload), checked as it streams to the origin. At a `_method`
 * part or parameter it withholds that chunk and every later byte and never ends the stream: the
 * origin gets no whole body to act on (workerd would end an errored request body as if complete),
 * and the request ends when the route's timeout aborts it. `onRefused` learns the error for the
 * client.
 */
export function withoutOverrides(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  onRefused: (error: BearerError) => void,
): ReadableStream<Uint8Array> {
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
