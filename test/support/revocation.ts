/**
 * Driving /revoke and /introspect in the tests: requests through the Worker's real entry
 * point, the log lines the Worker wrote, and a KV namespace that fails on purpose.
 */
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { basic, expectJSONError, fetchWithEnv, FORM, tokenRequest, type FormBody } from "./worker.ts";
import { revokedKey } from "../../src/tokens/revocation.ts";
import { decodeJwt } from "jose";
import { accessTokenClaims, attackerKey, es256, forgeJWS, hs256, mintToken, publicKeyForms, testKey } from "./tokens.ts";

export const REVOKE_URL = `${env.ISSUER}/revoke`;
export const INTROSPECT_URL = `${env.ISSUER}/introspect`;

type Client = { client_id: string; client_secret: string };

/** POST /revoke with Basic credentials and `token`, plus any extra parameters. */
export function revoke(client: Client, token: string, extra: Record<string, string> = {}): Promise<Response> {
  return tokenRequest({ token, ...extra }, { Authorization: basic(client.client_id, client.client_secret) }, "/revoke");
}

/** POST /revoke with Basic credentials and `token`, under an Env with `overrides` (a failing KV, a bad key). */
export function revokeWithEnv(client: Client, token: string, overrides: Record<string, unknown>): Promise<Response> {
  const headers = { "Content-Type": FORM, Authorization: basic(client.client_id, client.client_secret) };
  return fetchWithEnv(REVOKE_URL, { method: "POST", headers, body: `token=${token}` }, overrides);
}

/** POST /introspect with Basic credentials and `token`, plus any extra parameters. */
export function introspect(client: Client, token: string, extra: Record<string, string> = {}): Promise<Response> {
  return tokenRequest({ token, ...extra }, { Authorization: basic(client.client_id, client.client_secret) }, "/introspect");
}

/** A form POST to `path` as given (no credentials added). */
export function formPost(path: "/revoke" | "/introspect", body: FormBody, headers: Record<string, string> = {}): Promise<Response> {
  return tokenRequest(body, headers, path);
}

/** The introspection answer, asserting a 200 JSON response with no-store. */
export async function introspection(res: Response): Promise<Record<string, unknown>> {
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  return (await res.json()) as Record<string, unknown>;
}

/** Asserts exactly `{"active": false}` (RFC 7662 §2.2: nothing else about an inactive token). */
export async function expectInactive(res: Response): Promise<void> {
  expect(await introspection(res)).toEqual({ active: false });
}

/** Asserts an RFC 7009 §2.2 success: 200, empty body, no-store. */
export async function expectRevocationOK(res: Response): Promise<void> {
  expect(res.status, await res.clone().text()).toBe(200);
  expect(await res.text()).toBe("");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
}

/** 401 invalid_client with the Basic challenge naming the issuer (RFC 6749 §5.2). */
export async function expectInvalidClient(res: Response): Promise<void> {
  expect(res.headers.get("WWW-Authenticate")).toBe(`Basic realm="${env.ISSUER}", charset="UTF-8"`);
  await expectJSONError(res, 401, "invalid_client");
}

/** The stored `revoked:{jti}` value, parsed, or null. */
export async function storedRevocation(jti: string): Promise<Record<string, unknown> | null> {
  const value = await env.CLIENTS.get(revokedKey(jti));
  return value === null ? null : (JSON.parse(value) as Record<string, unknown>);
}

/** Epoch seconds at which KV will drop `revoked:{jti}`, or undefined when there is no such key. */
export async function revocationExpiration(jti: string): Promise<number | undefined> {
  const { keys } = await env.CLIENTS.list({ prefix: revokedKey(jti) });
  return keys.find((k) => k.name === revokedKey(jti))?.expiration;
}

/** Collects the Worker's JSON log lines (console.log) from now on; call the result to read them. */
export function captureLogEvents(): () => Record<string, unknown>[] {
  const spy = vi.spyOn(console, "log").mockImplementation(() => {});
  return () =>
    spy.mock.calls.flatMap(([line]) => {
      try {
        return [JSON.parse(String(line)) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

/**
 * env.CLIENTS with some operations failing: `get` for keys matching `failGet`, `put` when
 * `failPut`. Everything else goes to the real namespace.
 */
export function partlyFailingKV(options: { failGet?: RegExp; failPut?: boolean }): KVNamespace {
  const real = env.CLIENTS;
  return {
    get: (key: string, ...rest: unknown[]) =>
      options.failGet?.test(key)
        ? Promise.reject(new Error("KV get failed on purpose"))
        : (real.get as (...a: unknown[]) => Promise<unknown>).call(real, key, ...rest),
    put: (...args: unknown[]) =>
      options.failPut
        ? Promise.reject(new Error("KV put failed on purpose"))
        : (real.put as (...a: unknown[]) => Promise<void>).call(real, ...args),
    list: real.list.bind(real),
    delete: real.delete.bind(real),
  } as unknown as KVNamespace;
}

/** A KV namespace whose every operation fails. */
export const failingKV = {
  get: () => Promise.reject(new Error("KV down")),
  put: () => Promise.reject(new Error("KV down")),
  list: () => Promise.reject(new Error("KV down")),
  delete: () => Promise.reject(new Error("KV down")),
} as unknown as KVNamespace;

/** A token of `clientId` signed with the issuer's key, with claim overrides (exp, iat, …). */
export function tokenOf(clientId: string, claims: Record<string, unknown> = {}): Promise<string> {
  return mintToken({ claims: { client_id: clientId, sub: clientId, ...claims } });
}

export const jtiOf = (token: string): string => decodeJwt(token).jti!;

/** A token signed with the issuer's key, but over MAX_TOKEN_LENGTH (4096) characters: refused before any decoding. */
export async function oversizedToken(clientId: string): Promise<string> {
  const token = await tokenOf(clientId, { padding: "x".repeat(3200) });
  expect(token.length).toBeGreaterThan(4096);
  return token;
}

/** Makes a token for the client with this id. */
export type TokenMaker = (clientId: string) => Promise<string>;

/**
 * Tokens that are not this issuer's, whoever presents them: forged, unsigned, algorithm-confused, or
 * too long even if rightly signed. /revoke answers them 200 and writes nothing, /introspect
 * `{"active": false}`; each test file adds the cases of its own rules.
 */
export const foreignTokens: [string, TokenMaker][] = [
  ["three segments of garbage", async () => "a.b.c"],
  [
    "signed by another key under this issuer's kid",
    async (id) =>
      forgeJWS({ alg: "ES256", typ: "at+jwt", kid: (await testKey()).kid }, accessTokenClaims({ client_id: id, sub: id }), async (input) =>
        es256((await attackerKey()).privateKey, input),
      ),
  ],
  ["of another issuer (right key, wrong iss)", (id) => tokenOf(id, { iss: "https://elsewhere.example" })],
  ["typed JWT instead of at+jwt", (id) => mintToken({ claims: { client_id: id, sub: id }, header: { typ: "JWT" } })],
  ["with alg none", async (id) => forgeJWS({ alg: "none", typ: "at+jwt" }, accessTokenClaims({ client_id: id, sub: id }), "")],
  ["over 4096 characters, even if rightly signed", (id) => oversizedToken(id)],
  [
    "HS256 keyed with the issuer's public key (algorithm confusion)",
    async (id) => {
      const key = await testKey();
      const { pem } = await publicKeyForms(key.jwk);
      return forgeJWS({ alg: "HS256", typ: "at+jwt", kid: key.kid }, accessTokenClaims({ client_id: id, sub: id }), (input) =>
        hs256(pem, input),
      );
    },
  ],
];
