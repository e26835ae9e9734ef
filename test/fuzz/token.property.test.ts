/**
 * Hostile input on the token endpoint, property-based (fast-check): random methods, query strings,
 * headers (huge, Latin-1, Unicode, malformed Basic, other schemes), credentials (real, wrong,
 * unknown, both methods), form parameters (repeats, Unicode, known names with junk values) and
 * bodies (form, raw, JSON, binary, over 8 KiB, streamed in random chunks).
 *
 * Every answer must be a well-formed JSON answer: 200 with a token only when the real client id and
 * secret were sent, otherwise an RFC 6749 §5.2 error; status in {200, 400, 401, 405, 413, 429},
 * never 5xx; `Cache-Control: no-store`; 401 with a Basic challenge; no stack trace and no token
 * in an error body. docs/security.md items 17, 18, 20, 21.
 *
 * Replay a failure with the seed and path fast-check prints (see fcParams in arbitraries.ts).
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { generateClientSecret } from "../../src/clients/secret.ts";
import { base64, basic, FORM, formEncode, seedClient, TOKEN_URL, verifyAccessToken } from "../support/worker.ts";
import {
  anyText,
  describeRequest,
  fcParams,
  headerAccepted,
  headerValue,
  httpToken,
  huge,
  jwtShapes,
  latin1,
  STACK_TRACE,
  streamOf,
  utf8Length,
} from "../support/arbitraries.ts";

/** The one real client: its credentials are known before the arbitraries are built. */
const CLIENT_ID = `fuzz-${crypto.randomUUID()}`;
const SECRET = generateClientSecret().secret;
/** Same secret id, other random part: a wrong secret that still costs the real record's PBKDF2. */
const SECRET_ID = SECRET.slice(0, SECRET.indexOf("."));
const MAX_BODY = 8 * 1024;
const ALLOWED_STATUS = [200, 400, 401, 405, 413, 429];
const OAUTH_ERRORS = [
  "invalid_request",
  "invalid_client",
  "invalid_grant",
  "unauthorized_client",
  "unsupported_grant_type",
  "invalid_scope",
  "invalid_target",
  "temporarily_unavailable",
];

/**
 * FINDING F1 (see the it.fails test below): a client_id longer than KV's 512-byte key limit
 * (minus "client:") makes the KV read throw, answered 503 temporarily_unavailable. Tolerated here,
 * for exactly that input, so the property keeps guarding everything else. Set to false once
 * src/ refuses such ids before the KV read.
 */
const TOLERATE_F1 = false;
const KV_KEY_LIMIT = 512 - "client:".length;

// ---------------------------------------------------------------------------------------------
// Credentials

const basicScheme = fc.tuple(
  fc.constantFrom("Basic", "basic", "BASIC", "bAsIc"),
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 0, max: 2 }),
);
const realBasic = basicScheme.map(
  ([scheme, sp, trail]) => `${scheme}${" ".repeat(sp)}${base64(`${formEncode(CLIENT_ID)}:${formEncode(SECRET)}`)}${" ".repeat(trail)}`,
);

const wrongSecret = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 50 }).map((s) => `${SECRET_ID}.${s}`),
    anyText,
    fc.constantFrom(`${SECRET}x`, SECRET.slice(0, -1), SECRET.toUpperCase(), ` ${SECRET}`, `${SECRET}\u0000`, SECRET.replace(".", "%2E")),
    huge(4096),
  )
  .filter((s) => s !== SECRET);

const unknownId = fc
  .oneof(
    fc.stringMatching(/^[\x21-\x7e]{1,128}$/),
    anyText,
    fc.constantFrom(`${CLIENT_ID} `, CLIENT_ID.toUpperCase(), `${CLIENT_ID}\u0000`, "..", "client:x", "%00", "__proto__"),
    // Past KV's key length limit: FINDING F1.
    huge(2048, fc.constantFrom("a", "é", "%", "💥")),
  )
  .filter((id) => id !== CLIENT_ID);

const randomBytes = (max: number) => fc.uint8Array({ maxLength: max });
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) out.set(p, offset), (offset += p.byteLength);
  return out;
};

/** Basic headers that are not valid credentials: random bytes base64'd, junk, bad padding, two of them. */
const malformedBasic = fc.oneof(
  randomBytes(256).map((b) => `Basic ${base64(b)}`),
  fc.tuple(randomBytes(64), randomBytes(64)).map(([a, b]) => `Basic ${base64(concat(a, Uint8Array.of(0x3a), b))}`),
  fc.tuple(fc.constantFrom("Basic ", "Basic", "basic  "), anyText).map(([s, t]) => s + t),
  fc.constantFrom(
    "Basic",
    "Basic ",
    "Basic =",
    "Basic ===",
    "Basic abcde",
    "Basic Og==",
    `Basic ${base64("a:b")}, Basic ${base64("c:d")}`,
    `Basic ${base64(":")}`,
    `Basic ${base64("%zz:%zz")}`,
  ),
  huge(16 * 1024, fc.constantFrom("A", "QUFB", "=", "+/")).map((s) => `Basic ${s}`),
);

/** Other schemes, and huge or non-ASCII values. */
const otherScheme = fc.oneof(
  fc.tuple(httpToken, headerValue).map(([scheme, v]) => `${scheme} ${v}`),
  fc.constantFrom("Bearer abc.def.ghi", "Digest username=x", "Basicabc", "Negotiate YQ==", "Bearer", ""),
  headerValue,
);

interface Credentials {
  authorization?: string;
  form: [string, string][];
  /** A correct use of the real credentials by exactly one method. */
  clean: boolean;
}

/** A case from the drawn values, its headers and its body. */
function tokenCase(
  drawn: Pick<TokenCase, "method" | "query" | "encoding" | "delivery" | "chunks">,
  headers: [string, string][],
  bytes: Uint8Array | undefined,
  clean: boolean,
): TokenCase {
  const { method, query, encoding, delivery, chunks } = drawn;
  return { method, query, headers, encoding, delivery, chunks, bytes, clean };
}

const credentials: fc.Arbitrary<Credentials> = fc.oneof(
  { weight: 5, arbitrary: realBasic.map((authorization) => ({ authorization, form: [], clean: true })) },
  {
    weight: 3,
    arbitrary: fc.constant<Credentials>({
      form: [
        ["client_id", CLIENT_ID],
        ["client_secret", SECRET],
      ],
      clean: true,
    }),
  },
  {
    weight: 1,
    arbitrary: realBasic.map((authorization): Credentials => ({ authorization, form: [["client_id", CLIENT_ID]], clean: true })),
  },
  {
    weight: 1,
    arbitrary: realBasic.map((authorization): Credentials => ({ authorization, form: [["client_secret", SECRET]], clean: false })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(realBasic, unknownId)
      .map(([authorization, id]): Credentials => ({ authorization, form: [["client_id", id]], clean: false })),
  },
  { weight: 2, arbitrary: wrongSecret.map((s): Credentials => ({ authorization: basic(CLIENT_ID, s), form: [], clean: false })) },
  {
    weight: 2,
    arbitrary: wrongSecret.map(
      (s): Credentials => ({
        form: [
          ["client_id", CLIENT_ID],
          ["client_secret", s],
        ],
        clean: false,
      }),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(unknownId, fc.oneof(fc.constant(SECRET), wrongSecret))
      .map(([id, s]): Credentials => ({ authorization: basic(id, s), form: [], clean: false })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(unknownId, fc.oneof(fc.constant(SECRET), wrongSecret)).map(
      ([id, s]): Credentials => ({
        form: [
          ["client_id", id],
          ["client_secret", s],
        ],
        clean: false,
      }),
    ),
  },
  { weight: 3, arbitrary: malformedBasic.map((authorization): Credentials => ({ authorization, form: [], clean: false })) },
  { weight: 2, arbitrary: otherScheme.map((authorization): Credentials => ({ authorization, form: [], clean: false })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Credentials>(
      { form: [], clean: false },
      { form: [["client_secret", SECRET]], clean: false },
      { form: [["client_id", CLIENT_ID]], clean: false },
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// Form parameters

const allowedScope = fc.subarray(["orders:read", "orders:write"], { minLength: 1 }).map((s) => s.join(" "));

/** Known parameter names with good and bad values, and anything else (repeats happen). */
const hostileParam: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(
    fc.constant("grant_type"),
    fc.oneof(
      fc.constant("client_credentials"),
      fc.constantFrom("authorization_code", "password", "CLIENT_CREDENTIALS", "client_credentials ", ""),
      anyText,
    ),
  ),
  fc.tuple(
    fc.constant("scope"),
    fc.oneof(
      allowedScope,
      fc.constantFrom("admin", "orders:read admin", "orders:read  orders:write", " orders:read", "orders:readx", "orders:read\u00a0"),
      anyText,
    ),
  ),
  fc.tuple(
    fc.constantFrom("resource", "audience"),
    fc.oneof(
      fc.constant(env.DEFAULT_AUDIENCE),
      fc.constantFrom("https://evil.example", `${env.DEFAULT_AUDIENCE}#frag`, "urn:x", "/relative", "http://[::1", ""),
      anyText,
    ),
  ),
  fc.tuple(fc.constantFrom("client_id", "client_secret"), fc.oneof(fc.constant(CLIENT_ID), anyText)),
  fc.tuple(fc.constantFrom("access_token", "refresh_token", "code", "password", "stack", "__proto__", "constructor"), anyText),
  fc.tuple(anyText, anyText),
);

/** A permutation of `list`. */
const shuffled = <T>(list: T[]): fc.Arbitrary<T[]> =>
  list.length < 2 ? fc.constant(list) : fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length });

/** Parameters of a correct request: grant_type once, an allowed scope and audience at most once, unknown extras. */
const cleanParams = fc
  .tuple(
    fc.option(allowedScope, { nil: undefined }),
    fc.option(fc.constantFrom("resource", "audience"), { nil: undefined }),
    fc.uniqueArray(fc.tuple(fc.stringMatching(/^x_[a-z0-9]{1,8}$/), anyText), { maxLength: 4, selector: ([name]) => name }),
  )
  .map(([scope, resourceParam, extras]) => {
    const params: [string, string][] = [["grant_type", "client_credentials"], ...extras];
    if (scope) params.push(["scope", scope]);
    if (resourceParam) params.push([resourceParam, env.DEFAULT_AUDIENCE]);
    return params;
  });

// ---------------------------------------------------------------------------------------------
// Bodies, headers, the whole request

type Encoding = "form" | "raw" | "json" | "padded" | "binary" | "none";
type Delivery = "string" | "bytes" | "stream";

const goodContentType = fc.constantFrom(
  FORM,
  `${FORM}; charset=utf-8`,
  `${FORM};charset=UTF-8`,
  `${FORM}; charset="utf-8"`,
  FORM.toUpperCase(),
);
const anyContentType = fc.oneof(
  goodContentType,
  fc.constantFrom(
    `${FORM}; charset=iso-8859-1`,
    `${FORM}x`,
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=----x",
    "application/octet-stream",
    ";",
    "",
  ),
  fc.string({ maxLength: 40 }),
);

const benignHeaderName = fc.oneof(
  httpToken,
  fc.constantFrom("Accept", "User-Agent", "Cookie", "CF-Connecting-IP", "X-Forwarded-For", "Forwarded", "Expect", "Accept-Encoding"),
);
const anyHeaderName = fc.oneof(
  benignHeaderName,
  fc.constantFrom("Authorization", "Content-Type", "Content-Length", "Transfer-Encoding", "Connection", "Host"),
);
/** Names that change how /token reads the request: never in a request expected to succeed. */
const SEMANTIC_HEADERS = new Set(["authorization", "content-type", "content-length", "transfer-encoding", "content-encoding"]);

const extraHeaders = (names: fc.Arbitrary<string>) =>
  fc.array(fc.tuple(names, headerValue), { maxLength: 5 }).map((list) => list.filter(([n, v]) => headerAccepted(n, v)));

const chunkSizes = fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 8 });

interface TokenCase {
  method: string;
  query: string;
  headers: [string, string][];
  encoding: Encoding;
  delivery: Delivery;
  chunks: number[];
  bytes: Uint8Array | undefined;
  /** Built as a correct token request: must get 200 (or 413 if the body is over 8 KiB). */
  clean: boolean;
}

const encoder = new TextEncoder();

function encodeBody(encoding: Encoding, params: [string, string][], pad: number, binary: Uint8Array): Uint8Array | undefined {
  switch (encoding) {
    case "form":
      return encoder.encode(new URLSearchParams(params).toString());
    case "raw":
      return encoder.encode(params.map(([n, v]) => `${n}=${v}`).join("&"));
    case "json":
      return encoder.encode(JSON.stringify(Object.fromEntries(params)));
    case "padded": {
      const form = new URLSearchParams(params).toString();
      return encoder.encode(`${form}&zpad=${"p".repeat(Math.max(0, pad - form.length - 6))}`);
    }
    case "binary":
      return binary;
    case "none":
      return undefined;
  }
}

const binaryBody = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 0, max: 20 * 1024 })).map(([unit, n]) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = unit[i % unit.length]!;
  return out;
});

/** A correct token request with harmless variations: must be answered 200 (413 past 8 KiB). */
const cleanCase: fc.Arbitrary<TokenCase> = fc
  .record({
    method: fc.constantFrom("POST", "post", "Post"),
    query: fc.constantFrom("", "?"),
    creds: credentials.filter((c) => c.clean),
    params: cleanParams,
    contentType: goodContentType,
    encoding: fc.constantFrom<Encoding>("form", "form", "padded"),
    pad: fc.integer({ min: 0, max: 20 * 1024 }),
    delivery: fc.constantFrom<Delivery>("string", "bytes", "stream"),
    chunks: chunkSizes,
    headers: extraHeaders(benignHeaderName).map((list) => list.filter(([n]) => !SEMANTIC_HEADERS.has(n.toLowerCase()))),
  })
  .chain((c) => shuffled([...c.creds.form, ...c.params]).map((params) => ({ ...c, params })))
  .map((c) => {
    const headers: [string, string][] = [["Content-Type", c.contentType], ...c.headers];
    if (c.creds.authorization !== undefined) headers.push(["Authorization", c.creds.authorization]);
    return tokenCase(c, headers, encodeBody(c.encoding, c.params, c.pad, new Uint8Array()), true);
  });

/** Anything: hostile methods, queries, headers, parameters and bodies. */
const hostileCase: fc.Arbitrary<TokenCase> = fc
  .record({
    method: fc.oneof(
      { weight: 6, arbitrary: fc.constant("POST") },
      { weight: 2, arbitrary: fc.constantFrom("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "TRACE", "post") },
    ),
    query: fc.oneof(
      { weight: 8, arbitrary: fc.constant("") },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "?",
          "?grant_type=client_credentials",
          `?client_id=${CLIENT_ID}&client_secret=${SECRET}`,
          "?%",
          "??",
          "?&",
        ),
      },
      { weight: 1, arbitrary: anyText.map((t) => `?${t.replace(/#/g, "")}`) },
    ),
    creds: credentials,
    params: fc.oneof(fc.array(hostileParam, { maxLength: 2 }), fc.array(hostileParam, { maxLength: 8 })),
    withGrant: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    contentType: fc.oneof(
      { weight: 3, arbitrary: goodContentType },
      { weight: 2, arbitrary: anyContentType },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
    encoding: fc.oneof(
      { weight: 5, arbitrary: fc.constant<Encoding>("form") },
      { weight: 1, arbitrary: fc.constantFrom<Encoding>("raw", "json", "padded", "binary", "none") },
    ),
    pad: fc.integer({ min: 0, max: 20 * 1024 }),
    binary: binaryBody,
    delivery: fc.constantFrom<Delivery>("string", "bytes", "stream"),
    chunks: chunkSizes,
    headers: extraHeaders(anyHeaderName),
  })
  .chain((c) =>
    shuffled([...(c.withGrant ? ([["grant_type", "client_credentials"]] as [string, string][]) : []), ...c.creds.form, ...c.params]).map(
      (params) => ({ ...c, params }),
    ),
  )
  .map((c) => {
    const headers: [string, string][] = [...c.headers];
    if (c.contentType !== undefined && headerAccepted("Content-Type", c.contentType)) headers.unshift(["Content-Type", c.contentType]);
    if (c.creds.authorization !== undefined && headerAccepted("Authorization", c.creds.authorization))
      headers.push(["Authorization", c.creds.authorization]);
    return tokenCase(c, headers, encodeBody(c.encoding, c.params, c.pad, c.binary), false);
  });

function buildRequest(c: TokenCase): Request {
  const headers = new Headers();
  for (const [name, value] of c.headers) headers.append(name, value);
  const hasBody = c.bytes !== undefined && !/^(GET|HEAD)$/i.test(c.method);
  let body: BodyInit | null = null;
  if (hasBody) {
    const bytes = c.bytes!;
    body = c.delivery === "string" ? new TextDecoder().decode(bytes) : c.delivery === "bytes" ? bytes : streamOf(bytes, c.chunks);
  }
  return new Request(`${TOKEN_URL}${c.query}`, { method: c.method, headers, body });
}

/**
 * What the Worker can read of the credentials in a request: the Basic header decoded (and
 * form-decoded, RFC 6749 §2.3.1) and the body, raw and form-decoded (a `%2E` is a ".").
 */
function credentialMaterial(request: Request, c: TokenCase): string {
  const texts: string[] = [];
  const formDecode = (text: string) => {
    try {
      return decodeURIComponent(text.replace(/\+/g, " "));
    } catch {
      return "";
    }
  };
  // Each Authorization value sent, and their join: in transit workerd may drop an empty copy, so
  // the Worker can see one value where the client's Headers joined two (", Basic …").
  const authorizations = [
    request.headers.get("Authorization") ?? "",
    ...c.headers.filter(([n]) => n.toLowerCase() === "authorization").map(([, v]) => v.trim()),
  ];
  for (const authorization of authorizations) {
    const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(authorization);
    if (!match) continue;
    try {
      const decoded = atob(match[1]!);
      texts.push(decoded, ...decoded.split(":").map(formDecode));
    } catch {
      // not base64: carries nothing
    }
  }
  if (c.bytes && !/^(GET|HEAD)$/i.test(c.method)) {
    texts.push(latin1(c.bytes));
    for (const [name, value] of new URLSearchParams(new TextDecoder().decode(c.bytes))) texts.push(`${name}=${value}`, value);
  }
  return texts.join("\n");
}

/** Every client_id a request might be read as claiming (for FINDING F1's tolerance). */
function claimedClientIds(request: Request, c: TokenCase): string[] {
  const ids: string[] = [];
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(request.headers.get("Authorization") ?? "");
  if (match) {
    try {
      const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
        Uint8Array.from(atob(match[1]!), (ch) => ch.charCodeAt(0)),
      );
      ids.push(decodeURIComponent(text.slice(0, text.indexOf(":")).replace(/\+/g, " ")));
    } catch {
      // not decodable: the Worker refuses it before any lookup
    }
  }
  if (c.bytes) {
    try {
      ids.push(...new URLSearchParams(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(c.bytes)).getAll("client_id"));
    } catch {
      // not UTF-8: refused before any lookup
    }
  }
  return ids;
}

let client: { client_id: string; client_secret: string };
const statuses = new Map<number, number>();

beforeAll(async () => {
  client = await seedClient({ client_id: CLIENT_ID, secrets: [{ secret: SECRET }] });
});

const BASIC_CHALLENGE = /^Basic realm="[^"\\]*", charset="UTF-8"$/;

async function checkAnswer(c: TokenCase): Promise<void> {
  const request = buildRequest(c);
  const material = credentialMaterial(request, c);
  const requestText = `${request.url}\n${[...request.headers].map(([n, v]) => `${n}: ${v}`).join("\n")}\n${c.bytes ? latin1(c.bytes) : ""}`;
  const res = await exports.default.fetch(request);
  const text = await res.text();
  const where = `${describeRequest({ method: c.method, url: request.url, headers: c.headers, body: c.bytes ? new TextDecoder().decode(c.bytes) : undefined })}\n→ ${res.status} ${text.slice(0, 300)}`;
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);

  if (TOLERATE_F1 && res.status === 503 && claimedClientIds(request, c).some((id) => utf8Length(id) > KV_KEY_LIMIT)) {
    expect(JSON.parse(text), where).toEqual({
      error: "temporarily_unavailable",
      error_description: "the client store is unavailable, try again later",
    });
    return;
  }
  expect(ALLOWED_STATUS, where).toContain(res.status);
  expect(res.headers.get("Content-Type"), where).toMatch(/^application\/json/);
  expect(res.headers.get("Cache-Control"), where).toBe("no-store");
  if (!/^(POST)$/i.test(c.method)) {
    expect(res.status, where).toBe(405);
    expect(res.headers.get("Allow"), where).toBe("POST");
  }
  expect(text, where).not.toMatch(STACK_TRACE);
  if (c.method.toUpperCase() === "HEAD") {
    expect(text, where).toBe("");
    return;
  }
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(typeof body === "object" && body !== null && !Array.isArray(body), where).toBe(true);
  expect(body, where).not.toHaveProperty("stack");

  if (res.status === 200) {
    // Only the real id and secret, as the Worker can read them, ever get a token.
    expect(material.includes(CLIENT_ID) && material.includes(SECRET), `200 without the real credentials: ${where}`).toBe(true);
    expect(
      Object.keys(body).every((k) => ["access_token", "token_type", "expires_in", "scope"].includes(k)),
      where,
    ).toBe(true);
    expect(body.token_type, where).toBe("Bearer");
    expect(body.expires_in, where).toBe(300);
    const claims = await verifyAccessToken(body.access_token as string, { audience: env.DEFAULT_AUDIENCE });
    expect({ client_id: claims.client_id, sub: claims.sub }, where).toEqual({ client_id: client.client_id, sub: client.client_id });
    expect(res.headers.get("WWW-Authenticate"), where).toBeNull();
    return;
  }
  expect(Object.keys(body).sort(), where).toEqual(["error", "error_description"]);
  expect(OAUTH_ERRORS, where).toContain(body.error);
  expect(typeof body.error_description, where).toBe("string");
  expect(text, where).not.toContain('access_token":');
  // An error may echo what the caller sent, never a token it did not send.
  for (const jwt of jwtShapes(text)) expect(requestText, `token in an error body: ${where}`).toContain(jwt);
  if (res.status === 401) {
    expect(body.error, where).toBe("invalid_client");
    // RFC 6749 §5.2: the Basic challenge when the client used the Authorization header or sent no
    // credentials; none when it authenticated in the body (client_secret_post, or a client_id alone).
    const challenge = res.headers.get("WWW-Authenticate");
    const authorization = request.headers.get("Authorization");
    if (authorization !== null && authorization.trim() !== "") expect(challenge, where).toMatch(BASIC_CHALLENGE);
    else if (authorization === null)
      expect(challenge, where).toEqual(claimedClientIds(request, c).length > 0 ? null : expect.stringMatching(BASIC_CHALLENGE));
  } else {
    expect(res.headers.get("WWW-Authenticate"), where).toBeNull();
  }
  if (res.status === 413) expect(body.error, where).toBe("invalid_request");
  if (res.status === 429) expect(res.headers.get("Retry-After"), where).toMatch(/^\d+$/);
}

describe("POST /token under hostile input (fast-check)", () => {
  it("answers every request with well-formed JSON, no 5xx, and a token only for the real credentials", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 1, arbitrary: cleanCase }, { weight: 4, arbitrary: hostileCase }), checkAnswer),
      fcParams(),
    );
    // The generators reached the answers that matter (a generator bug would hide them).
    for (const status of [200, 400, 401, 405, 413])
      expect([...statuses.keys()], `no ${status} in ${JSON.stringify([...statuses])}`).toContain(status);
  }, 120_000);

  it("gives a token to every correct request with harmless variations (413 only past 8 KiB)", async () => {
    await fc.assert(
      fc.asyncProperty(cleanCase, async (c) => {
        const res = await exports.default.fetch(buildRequest(c));
        const text = await res.text();
        const where = `${describeRequest({ method: c.method, url: c.query, headers: c.headers, body: new TextDecoder().decode(c.bytes) })}\n→ ${res.status} ${text.slice(0, 300)}`;
        expect(res.status, where).toBe(c.bytes!.byteLength > MAX_BODY ? 413 : 200);
      }),
      fcParams({ numRuns: 60 }),
    );
  }, 120_000);
});

describe("counterexamples found by the properties", () => {
  // FINDING F1: the minimal input. KV refuses keys over 512 bytes; "client:" + 506 characters is 513.
  // Fixed in src/clients/store.ts loadClient: an id no record can have is unknown without a KV read
  // (401 after the dummy PBKDF2, same timing).
  it("F1: answers 401 invalid_client, not 503, to a client_id over KV's key length limit", async () => {
    for (const authorization of [basic("a".repeat(506), "x.y"), undefined]) {
      const res = await exports.default.fetch(TOKEN_URL, {
        method: "POST",
        headers: { "Content-Type": FORM, ...(authorization ? { Authorization: authorization } : {}) },
        body: authorization
          ? "grant_type=client_credentials"
          : `grant_type=client_credentials&client_id=${"a".repeat(506)}&client_secret=x.y`,
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe("invalid_client");
    }
  });

  it("answers 401 (not 503) to a client_id just under KV's key length limit", async () => {
    const res = await exports.default.fetch(TOKEN_URL, {
      method: "POST",
      headers: { "Content-Type": FORM, Authorization: basic("a".repeat(505), "x.y") },
      body: "grant_type=client_credentials",
    });
    expect(res.status).toBe(401);
  });
});
