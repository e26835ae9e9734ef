/**
 * Driving the gateway in the gateway tests: requests through the Worker's real entry point, what the
 * echo origin (scripts/echo-origin.ts, started by vitest.config.ts) saw, and the RFC 6750 §3 error
 * shapes every refusal must have.
 */
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";

// What scripts/echo-origin.ts answers and logs for each request (a type only: that file is Node's).
export type { EchoRecord } from "../../scripts/echo-origin.ts";
import type { EchoRecord } from "../../scripts/echo-origin.ts";

export const REALM = env.ISSUER;
export const GATEWAY = env.ISSUER;

/** A request to the gateway through the Worker's default export. `path` may carry a query. */
export function gatewayFetch(path: string, init: RequestInit = {}, base = GATEWAY): Promise<Response> {
  return exports.default.fetch(`${base}${path}`, init);
}

/** `init` with `Authorization: Bearer <token>` added to its headers. */
export function withBearer(token: string, init: RequestInit = {}): RequestInit {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}

/** A unique path segment, so a test can find (or not find) its own request in the origin's log. */
export function marker(label = "t"): string {
  return `${label}-${crypto.randomUUID()}`;
}

/** Every request the echo origin has seen so far (it keeps the last 1000). */
export async function originLog(): Promise<EchoRecord[]> {
  const res = await fetch(`${env.TEST_ORIGIN_URL}/__log`);
  expect(res.status).toBe(200);
  return (await res.json()) as EchoRecord[];
}

/** The echo origin's records whose request target contains `mark`. */
export async function originRequestsWith(mark: string): Promise<EchoRecord[]> {
  return (await originLog()).filter((r) => r.path.includes(mark));
}

/** Asserts the origin never received a request containing `mark` in its path or query. */
export async function expectOriginNotContacted(mark: string): Promise<void> {
  expect(await originRequestsWith(mark)).toEqual([]);
}

/** Every value the origin received for header `name` (any case), in order, from rawHeaders. */
export function rawHeaderValues(record: EchoRecord, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < record.rawHeaders.length; i += 2) {
    if (record.rawHeaders[i]!.toLowerCase() === name.toLowerCase()) values.push(record.rawHeaders[i + 1]!);
  }
  return values;
}

/** Every header name the origin received, lower-cased, with `_` kept (a spoof must not survive as `x_…`). */
export function rawHeaderNames(record: EchoRecord): string[] {
  return record.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

/** Parses `Bearer k="v", k2="v2"` (RFC 9110 §11.2 quoted-strings); fails the test on any other shape. */
export function parseBearerChallenge(header: string | null): Record<string, string> {
  return parseChallenge(header, "Bearer");
}

/** Parses `<scheme> k="v", k2="v2"`, one challenge of that scheme; fails the test on any other shape. */
export function parseChallenge(header: string | null, scheme: string): Record<string, string> {
  expect(header).not.toBeNull();
  const match = new RegExp(`^${scheme} (.*)$`).exec(header!);
  expect(match, `not a ${scheme} challenge: ${header}`).not.toBeNull();
  const params: Record<string, string> = {};
  const param = /([a-z_]+)="((?:[^"\\]|\\.)*)"(?:, |$)/gy;
  let consumed = 0;
  for (let m = param.exec(match![1]!); m; m = param.exec(match![1]!)) {
    expect(params, `parameter ${m[1]} twice`).not.toHaveProperty(m[1]!);
    params[m[1]!] = m[2]!.replace(/\\(.)/g, "$1");
    consumed = param.lastIndex;
  }
  expect(consumed, `unparsed challenge: ${header}`).toBe(match![1]!.length);
  return params;
}

export interface ExpectedBearerError {
  status: 400 | 401 | 403;
  error: "invalid_request" | "invalid_token" | "insufficient_scope";
  /** The exact error_description, when the test cares. */
  description?: string | RegExp;
  /** The scope the route needs (403). */
  scope?: string;
  /** The challenge's realm when the Worker runs with another ISSUER than env's (fetchWithEnv). */
  realm?: string;
}

/**
 * Asserts an RFC 6750 §3 refusal: status, `WWW-Authenticate: Bearer realm=…, error=…,
 * error_description=…[, scope=…]`, a JSON body with the same error (and scope), no-store.
 */
export async function expectBearerError(res: Response, expected: ExpectedBearerError): Promise<Record<string, string>> {
  const body = (await res.json()) as Record<string, string>;
  expect({ status: res.status, error: body.error }).toEqual({ status: expected.status, error: expected.error });
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  const challenge = parseBearerChallenge(res.headers.get("WWW-Authenticate"));
  const wanted: Record<string, string> = {
    realm: expected.realm ?? REALM,
    error: expected.error,
    error_description: body.error_description!,
  };
  if (expected.scope !== undefined) wanted.scope = expected.scope;
  expect(challenge).toEqual(wanted);
  expect(typeof body.error_description).toBe("string");
  if (expected.description !== undefined)
    expect(body.error_description).toMatch(
      expected.description instanceof RegExp ? expected.description : new RegExp(`^${escapeRegExp(expected.description)}$`),
    );
  if (expected.scope !== undefined) expect(body.scope).toBe(expected.scope);
  else expect(body).not.toHaveProperty("scope");
  return body;
}

/** 401 invalid_token, and the origin never saw `mark`. */
export async function expectInvalidToken(res: Response, mark: string, description?: string | RegExp): Promise<void> {
  await expectBearerError(res, { status: 401, error: "invalid_token", description });
  await expectOriginNotContacted(mark);
}

/** A 200 from the echo origin: the record it made of the request it got. */
export async function expectProxied(res: Response): Promise<EchoRecord> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("X-Origin")).toBe("echo");
  return JSON.parse(text) as EchoRecord;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
