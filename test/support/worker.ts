/**
 * Shared test helpers: seed real client records into the local KV, build RFC 6749 §2.3.1 Basic
 * credentials, and send token requests through the Worker's real entry point.
 */
import { createExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import { env, exports } from "cloudflare:workers";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions } from "jose";
import app from "../../src/index.ts";
import { nowSeconds } from "./tokens.ts";
import { clientKey, validateClientRecord, type ClientRecord } from "../../src/clients/record.ts";
import { generateClientSecret, hashClientSecret, secretIdOf } from "../../src/clients/secret.ts";

export const TOKEN_URL = `${env.ISSUER}/token`;
export const JWKS_URL = `${env.ISSUER}/.well-known/jwks.json`;
export const METADATA_URL = `${env.ISSUER}/.well-known/oauth-authorization-server`;
export const FORM = "application/x-www-form-urlencoded";

export interface SeedSecret {
  /** Plaintext `<secretId>.<anything>`; a freshly generated one when omitted. */
  secret?: string;
  /** Epoch seconds; null (never) when omitted. */
  expires_at?: number | null;
}

export type SeedOverrides = Partial<Omit<ClientRecord, "secrets">> & { secrets?: SeedSecret[] };

export interface SeededClient {
  client_id: string;
  /** The first secret. */
  client_secret: string;
  /** Every secret, in record order. */
  client_secrets: string[];
  /** The record as stored (plain JSON, before validation). */
  record: Record<string, unknown>;
}

/**
 * A client record as the CLI would write it, with secrets hashed by hashClientSecret; not validated
 * and not stored (see seedClient). Defaults: scopes orders:read / orders:write with orders:read by
 * default, no audiences (so env.DEFAULT_AUDIENCE), client_credentials, no TTL override, enabled.
 */
export async function buildClientRecord(overrides: SeedOverrides = {}): Promise<SeededClient> {
  const { secrets: secretSpecs = [{}], ...fields } = overrides;
  const now = nowSeconds();
  const client_id = fields.client_id ?? `test-${crypto.randomUUID()}`;
  const client_secrets: string[] = [];
  const secrets = [];
  for (const spec of secretSpecs) {
    const secret = spec.secret ?? generateClientSecret().secret;
    const id = secretIdOf(secret);
    if (id === undefined) throw new Error(`test secret ${JSON.stringify(secret)} has no "<id>." prefix`);
    client_secrets.push(secret);
    secrets.push({ id, hash: await hashClientSecret(secret), created_at: now, expires_at: spec.expires_at ?? null });
  }
  const record = {
    client_id,
    name: "test client",
    allowed_scopes: ["orders:read", "orders:write"],
    default_scopes: ["orders:read"],
    allowed_audiences: [],
    default_audience: null,
    grant_types: ["client_credentials"],
    token_ttl: null,
    disabled: false,
    created_at: now,
    updated_at: now,
    ...fields,
    secrets,
  };
  return { client_id, client_secret: client_secrets[0]!, client_secrets, record };
}

/** Stores a record in env.CLIENTS under `client:<id>` exactly as given (corrupt ones included). */
export async function putClientRecord(record: { client_id: string } & Record<string, unknown>): Promise<void> {
  await env.CLIENTS.put(clientKey(record.client_id), JSON.stringify(record));
}

/** Builds a record (see buildClientRecord), checks it with validateClientRecord, stores it. */
export async function seedClient(overrides: SeedOverrides = {}): Promise<SeededClient> {
  const seeded = await buildClientRecord(overrides);
  validateClientRecord(seeded.record);
  await putClientRecord(seeded.record as { client_id: string });
  return seeded;
}

/** RFC 6749 §2.3.1 / Appendix B: application/x-www-form-urlencoded, as URLSearchParams serializes. */
export function formEncode(value: string): string {
  return new URLSearchParams([["", value]]).toString().slice(1);
}

/** UTF-8 bytes → base64 (for Basic credentials built by hand, including non-UTF-8 ones). */
export function base64(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return btoa(String.fromCharCode(...data));
}

/** `Basic base64(formEncode(id) ":" formEncode(secret))` (RFC 6749 §2.3.1, RFC 7617). */
export function basic(clientId: string, clientSecret: string): string {
  return `Basic ${base64(`${formEncode(clientId)}:${formEncode(clientSecret)}`)}`;
}

export type FormBody = string | URLSearchParams | Record<string, string> | [string, string][];

/**
 * POST /token through the Worker's default export, form-encoded unless `headers` sets another
 * Content-Type. `path` lets a test add a query string.
 */
export function tokenRequest(body: FormBody, headers: Record<string, string> = {}, path = "/token"): Promise<Response> {
  return exports.default.fetch(`${env.ISSUER}${path}`, {
    method: "POST",
    headers: { "Content-Type": FORM, ...headers },
    body: typeof body === "string" ? body : new URLSearchParams(body).toString(),
  });
}

/** The happy path: Basic credentials, client_credentials, plus any extra parameters. */
export function requestToken(
  client: { client_id: string; client_secret: string },
  params: Record<string, string> | [string, string][] = {},
): Promise<Response> {
  const extra = Array.isArray(params) ? params : Object.entries(params);
  return tokenRequest([["grant_type", "client_credentials"], ...extra], { Authorization: basic(client.client_id, client.client_secret) });
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope?: string;
}

/** requestToken, asserting a 200 and returning the parsed body. */
export async function issueToken(
  client: { client_id: string; client_secret: string },
  params: Record<string, string> | [string, string][] = {},
): Promise<TokenResponse> {
  const res = await requestToken(client, params);
  if (res.status !== 200) throw new Error(`expected 200 from /token, got ${res.status}: ${await res.text()}`);
  return (await res.json()) as TokenResponse;
}

/** The JWK Set the Worker serves. */
export async function fetchJWKS(): Promise<JSONWebKeySet> {
  const res = await exports.default.fetch(JWKS_URL);
  if (res.status !== 200) throw new Error(`expected 200 from the JWKS, got ${res.status}`);
  return (await res.json()) as JSONWebKeySet;
}

/** Verifies an access token as a resource server would (RFC 9068 §4), against the served JWKS. */
export async function verifyAccessToken(token: string, options: JWTVerifyOptions = {}): Promise<JWTPayload> {
  const { payload } = await jwtVerify(token, createLocalJWKSet(await fetchJWKS()), {
    issuer: env.ISSUER,
    typ: "at+jwt",
    algorithms: ["ES256"],
    ...options,
  });
  return payload;
}

/** The Worker's `fetch` called directly with a modified env (a failing KV, a broken key, bad vars). */
export function fetchWithEnv(
  input: string | Request,
  init: RequestInit | undefined,
  overrides: Record<string, unknown>,
): Promise<Response> {
  const request = input instanceof Request ? input : new Request(input, init);
  return Promise.resolve(app.fetch(request, { ...env, ...overrides } as Env, createExecutionContext()));
}

/** A token request for fetchWithEnv: Basic credentials, client_credentials. */
export function tokenRequestObject(client: { client_id: string; client_secret: string }): Request {
  return new Request(TOKEN_URL, {
    method: "POST",
    headers: { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) },
    body: "grant_type=client_credentials",
  });
}

/**
 * Every JSON error Tollgate answers (RFC 6749 §5.2 and the gateway's HTTP-level ones: 400, 401
 * invalid_client, 404, 413, 429, 500, 502, 503, 504): the status and code, JSON, no-store, a
 * description, never a token, and no challenge but the Basic one of a 401.
 */
export async function expectJSONError(res: Response, status: number, error: string): Promise<Record<string, string>> {
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = (await res.json()) as Record<string, string>;
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  expect(typeof body.error_description).toBe("string");
  expect(body).not.toHaveProperty("access_token");
  if (status !== 401) expect(res.headers.get("WWW-Authenticate")).toBeNull();
  return body;
}
