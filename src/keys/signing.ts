/**
 * Signing keys, from one of two Worker secrets:
 * - `KEY_SEED`: keys derived per generation and epoch (derive.ts) on the schedule of schedule.ts,
 *   which rotates them with no operator step. If `SIGNING_KEY` is set too, it stands for
 *   generation 0 until `tollgate keys rotate` moves to generation 1 (the migration path).
 * - `SIGNING_KEY` alone: one private P-256 JWK with a `kid`, or a JWK Set `{"keys": [...]}` whose
 *   first key signs and whose others are published only (rotated by hand).
 * Keys are imported once per isolate.
 */
import { BoundedCache } from "../bounded-cache.ts";
import { base64url, importJWK, type JWK } from "jose";
import { getConfig } from "../config.ts";
import { deriveSigningKey, type DerivedKey } from "./derive.ts";
import { GENERATION_KEY, GenerationRecordError } from "./generation-record.ts";
import { GenerationUnavailableError, readGenerationRecord } from "./generation-kv.ts";
import { generationRetention, keyRefId, planKeys, type GenerationRecord, type KeyPlan, type KeyRef } from "./schedule.ts";

export interface SigningKeys {
  /** The key that signs new tokens. */
  signer: { kid: string; key: CryptoKey };
  /** Public keys by kid, for verification (the gateway). */
  verifiers: Map<string, CryptoKey>;
  /** RFC 7517 JWK Set with public parts only. */
  jwks: { keys: JWK[] };
}

/** The secret is missing or malformed: no token may be signed (docs/security.md item 22). */
export class SigningKeyError extends Error {
  override name = "SigningKeyError";
}

const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "kid"] as const;

function checkPrivateJWK(value: unknown, index: number): JWK & { kid: string; d: string } {
  const where = `SIGNING_KEY key ${index}`;
  if (typeof value !== "object" || value === null) throw new SigningKeyError(`${where} is not a JSON object`);
  const jwk = value as JWK;
  if (jwk.kty !== "EC" || jwk.crv !== "P-256") throw new SigningKeyError(`${where} must be an EC P-256 key (ES256)`);
  if (typeof jwk.d !== "string" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new SigningKeyError(`${where} must be a private JWK (x, y and d)`);
  }
  if (typeof jwk.kid !== "string" || !/^[A-Za-z0-9._~-]{1,128}$/.test(jwk.kid)) {
    throw new SigningKeyError(`${where} needs a kid of 1-128 URL-safe characters`);
  }
  if (jwk.alg !== undefined && jwk.alg !== "ES256") throw new SigningKeyError(`${where} has alg ${jwk.alg}, not ES256`);
  return jwk as JWK & { kid: string; d: string };
}

/** Parses and imports the key material; throws SigningKeyError naming what is wrong. */
export async function importSigningKeys(raw: string | undefined): Promise<SigningKeys> {
  if (!raw) throw new SigningKeyError("neither KEY_SEED nor SIGNING_KEY is set (tollgate keys seed | wrangler secret put KEY_SEED)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new SigningKeyError("SIGNING_KEY is not JSON");
  }
  const list: unknown[] =
    typeof parsed === "object" && parsed !== null && Array.isArray((parsed as { keys?: unknown }).keys)
      ? (parsed as { keys: unknown[] }).keys
      : [parsed];
  if (list.length === 0) throw new SigningKeyError("SIGNING_KEY has no keys");
  const jwks: JWK[] = [];
  const verifiers = new Map<string, CryptoKey>();
  let signer: SigningKeys["signer"] | undefined;
  for (const [index, entry] of list.entries()) {
    const jwk = checkPrivateJWK(entry, index);
    if (verifiers.has(jwk.kid)) throw new SigningKeyError(`SIGNING_KEY has kid ${jwk.kid} twice`);
    const publicJWK: JWK = { alg: "ES256", use: "sig" };
    for (const member of PUBLIC_MEMBERS) publicJWK[member] = jwk[member] as string;
    let privateKey: CryptoKey;
    let publicKey: CryptoKey;
    try {
      privateKey = (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey;
      publicKey = (await importJWK(publicJWK, "ES256")) as CryptoKey;
    } catch (error) {
      throw new SigningKeyError(`SIGNING_KEY key ${index} does not import: ${(error as Error).message}`);
    }
    if (index === 0) signer = { kid: jwk.kid, key: privateKey };
    verifiers.set(jwk.kid, publicKey);
    jwks.push(publicJWK);
  }
  return { signer: signer!, verifiers, jwks: { keys: jwks } };
}

let cached: { raw: string | undefined; keys: Promise<SigningKeys> } | undefined;

/** SIGNING_KEY imported, once per isolate (and again only if it changes). */
function getStaticSigningKeys(raw: string | undefined): Promise<SigningKeys> {
  if (!cached || cached.raw !== raw) {
    const keys = importSigningKeys(raw);
    cached = { raw, keys };
    // A failed import is not cached: the next request tries again and logs again.
    keys.catch(() => {
      if (cached?.keys === keys) cached = undefined;
    });
  }
  return cached.keys;
}

/** KEY_SEED must carry at least this many bytes (256 bits) from a CSPRNG. */
export const KEY_SEED_MIN_BYTES = 32;

/** KEY_SEED decoded; throws SigningKeyError naming it (never echoing it). */
export function parseKeySeed(raw: string): Uint8Array {
  const value = raw.trim();
  let seed: Uint8Array | undefined;
  if (/^[A-Za-z0-9_-]+$/.test(value) && value.length <= 1024) {
    try {
      seed = base64url.decode(value);
    } catch {
      seed = undefined;
    }
  }
  if (!seed) throw new SigningKeyError("KEY_SEED is not base64url (make one with `tollgate keys seed`)");
  if (seed.length < KEY_SEED_MIN_BYTES)
    throw new SigningKeyError(`KEY_SEED has ${seed.length} bytes, fewer than ${KEY_SEED_MIN_BYTES} (make one with \`tollgate keys seed\`)`);
  return seed;
}

/**
 * Per isolate, for the current KEY_SEED: derived keys by (generation, epoch), so an epoch change
 * derives the one new key, and assembled key sets by plan, so every request under the same plan
 * gets the same object. A new seed starts both afresh.
 */
const DERIVED_KEYS_KEPT = 16;
const PLANS_KEPT = 4;
const derivedKeys = new BoundedCache<string, Promise<DerivedKey>>(DERIVED_KEYS_KEPT);
const keyPlans = new BoundedCache<string, Promise<SigningKeys>>(PLANS_KEPT);
let seeded:
  | { raw: string; seed: Uint8Array; keys: BoundedCache<string, Promise<DerivedKey>>; plans: BoundedCache<string, Promise<SigningKeys>> }
  | undefined;

function seedState(raw: string): NonNullable<typeof seeded> {
  if (seeded?.raw !== raw) {
    derivedKeys.clear();
    keyPlans.clear();
    seeded = { raw, seed: parseKeySeed(raw), keys: derivedKeys, plans: keyPlans };
  }
  return seeded;
}

/** Adds `value` under `id` (the oldest entry beyond the bound goes), forgetting it if it fails. */
function remember<T>(cache: BoundedCache<string, Promise<T>>, id: string, value: Promise<T>): Promise<T> {
  cache.set(id, value);
  value.catch(() => {
    if (cache.get(id) === value) cache.delete(id);
  });
  return value;
}

function getDerivedKey(state: NonNullable<typeof seeded>, ref: Extract<KeyRef, { kind: "derived" }>): Promise<DerivedKey> {
  const id = keyRefId(ref);
  return state.keys.get(id) ?? remember(state.keys, id, deriveSigningKey(state.seed, ref.generation, ref.epoch));
}

async function assembleKeys(plan: KeyPlan, state: NonNullable<typeof seeded>, rawStatic: string | undefined): Promise<SigningKeys> {
  const verifiers = new Map<string, CryptoKey>();
  const jwks: JWK[] = [];
  let signer: SigningKeys["signer"] | undefined;
  for (const ref of plan.published) {
    const isSigner = keyRefId(ref) === keyRefId(plan.signer);
    if (ref.kind === "static") {
      const imported = await getStaticSigningKeys(rawStatic);
      if (isSigner) signer = imported.signer;
      for (const jwk of imported.jwks.keys) {
        if (verifiers.has(jwk.kid!)) throw new SigningKeyError(`SIGNING_KEY kid ${jwk.kid} is also a KEY_SEED kid`);
        verifiers.set(jwk.kid!, imported.verifiers.get(jwk.kid!)!);
        jwks.push(jwk);
      }
    } else {
      const key = await getDerivedKey(state, ref);
      if (isSigner) signer = { kid: key.kid, key: key.privateKey };
      if (verifiers.has(key.kid)) throw new SigningKeyError(`KEY_SEED kid ${key.kid} is also a SIGNING_KEY kid`);
      verifiers.set(key.kid, key.publicKey);
      jwks.push(key.publicJWK);
    }
  }
  return { signer: signer!, verifiers, jwks: { keys: jwks } };
}

/** The KEY_SEED schedule's keys at `now` (schedule.ts), with SIGNING_KEY as generation 0 if set. */
async function getScheduledKeys(env: Env, rawSeed: string, now: number): Promise<SigningKeys> {
  const config = getConfig(env);
  const state = seedState(rawSeed);
  const rawStatic = env.SIGNING_KEY || undefined;
  let record: GenerationRecord;
  try {
    record = await readGenerationRecord(env.CLIENTS);
  } catch (error) {
    if (error instanceof GenerationRecordError)
      throw new SigningKeyError(`${error.message}: rewrite it with \`tollgate keys rotate\` (docs/storage.md, ${GENERATION_KEY})`);
    if (error instanceof GenerationUnavailableError) throw new SigningKeyError(error.message);
    throw error;
  }
  const plan = planKeys(now, record, {
    period: config.rotationPeriod,
    retention: generationRetention(config.maxAccessTokenTtl),
    staticGenerationZero: rawStatic !== undefined,
  });
  // The signer is the first published key, so the list names the plan.
  const id = `${plan.published.map(keyRefId).join(",")}|${rawStatic ?? ""}`;
  return state.plans.get(id) ?? remember(state.plans, id, assembleKeys(plan, state, rawStatic));
}

/**
 * The keys to sign and verify with at `now` (epoch seconds): KEY_SEED's schedule if it is set,
 * else SIGNING_KEY as it is. Throws SigningKeyError (503) when neither is usable, ConfigError when
 * ROTATION_PERIOD is wrong.
 */
export function getSigningKeys(env: Env, now = Math.floor(Date.now() / 1000)): Promise<SigningKeys> {
  const rawSeed = env.KEY_SEED as string | undefined;
  if (!rawSeed) return getStaticSigningKeys(env.SIGNING_KEY);
  return getScheduledKeys(env, rawSeed, now);
}
