/**
 * External issuers for the tests: the two loopback stand-ins (scripts/stand-in-issuer.ts, started by
 * vitest.config.ts, each with RS256 keys of its own under the same kids), fresh issuer names on them
 * so each test has its own cache entries, and tokens signed with their private keys.
 */
import { env } from "cloudflare:workers";
import { importJWK, type JWK, SignJWT } from "jose";
import { nowSeconds } from "./tokens.ts";

export interface StandIn {
  url: string;
  keys: { a: JWK; b: JWK };
}

export const standIn = JSON.parse(env.TEST_STAND_IN) as StandIn;
export const otherStandIn = JSON.parse(env.TEST_OTHER_STAND_IN) as StandIn;

/** A loopback ISSUER, so the loopback http stand-ins may be configured (README, "External issuers"). */
export const LOCAL_ISSUER = "http://localhost:8787";

/** A new issuer on `server`: `{url}/{behaviour}-{random}`, with discovery and JWKS below it. */
export function freshIssuer(server: StandIn, behaviour = "good"): string {
  return `${server.url}/${behaviour}-${crypto.randomUUID()}`;
}

/** An EXTERNAL_ISSUERS entry (the config's snake_case shape) for `issuer`, RS256, plain JWTs. */
export function issuerEntry(issuer: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { issuer, algorithms: ["RS256"], token_type: "jwt", ...fields };
}

export interface ExternalToken {
  /** The signing key (a private JWK of a stand-in). */
  key: JWK;
  /** Header members over { alg: RS256, kid: key.kid }; undefined deletes one. */
  header?: Record<string, unknown>;
  /** Claims over { iss, aud, client_id, sub, iat: now, exp: now + 300 }; undefined deletes one. */
  claims?: Record<string, unknown>;
}

/** A token of `issuer` for `audience`, signed with `key` (RS256 unless the header says otherwise). */
export async function externalToken(issuer: string, audience: string, { key, header = {}, claims = {} }: ExternalToken): Promise<string> {
  const now = nowSeconds();
  const payload: Record<string, unknown> = {
    iss: issuer,
    aud: audience,
    sub: "workload-1",
    client_id: "workload-1",
    iat: now,
    exp: now + 300,
    ...claims,
  };
  const protectedHeader: Record<string, unknown> = { alg: "RS256", kid: key.kid, ...header };
  for (const part of [payload, protectedHeader])
    for (const [name, value] of Object.entries(part)) if (value === undefined) delete part[name];
  return new SignJWT(payload)
    .setProtectedHeader(protectedHeader as { alg: string })
    .sign(await importJWK({ ...key, alg: "RS256" }, "RS256"));
}

/** The paths `server` was asked for so far (its /__log). */
export async function requestsTo(server: StandIn): Promise<string[]> {
  return (await (await fetch(`${server.url}/__log`)).json()) as string[];
}

/** How many of `server`'s requests so far were under `issuer`'s path (discovery and JWKS). */
export async function requestsFor(server: StandIn, issuer: string): Promise<number> {
  const path = new URL(issuer).pathname;
  return (await requestsTo(server)).filter((p) => p === path || p.startsWith(`${path}/`) || p.endsWith(path)).length;
}

/** The stand-in's name of an issuer (its first path segment), for /__rotate and /__down. */
export function nameOf(issuer: string): string {
  return new URL(issuer).pathname.slice(1);
}

/** Makes `server` serve `issuer`'s second key (b) instead of its first (a). */
export async function rotate(server: StandIn, issuer: string): Promise<void> {
  await fetch(`${server.url}/__rotate?name=${nameOf(issuer)}`);
}

/** Makes `server` answer 503 for everything under `issuer` from now on. */
export async function takeDown(server: StandIn, issuer: string): Promise<void> {
  await fetch(`${server.url}/__down?name=${nameOf(issuer)}`);
}
