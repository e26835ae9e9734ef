/**
 * The client authentication every form endpoint shares (/token, /revoke, /introspect), in one order:
 * the per-address limit, the form, the credentials, the failure block, the endpoint's own checks,
 * and only then the secret (one PBKDF2, one check at a time per client and address), counting a
 * failure against the client and address.
 *
 * Read top to bottom: authenticateFormRequest parses the credentials (form.ts, credentials.ts); a
 * client assertion goes to authenticateByRecord (assertion.ts, jti-guard.ts; federation.ts for a
 * workload-identity client), as does a client_id alone (certificate.ts, RFC 8705); a secret tries
 * the warm path (rememberedClient: warm-records.ts, warm-secrets.ts), then the cold path
 * (authenticateClient: clients/store.ts, clients/secret.ts); both count a failure (failures.ts).
 * Every helper is called from here, none through another.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
 * @see https://www.rfc-editor.org/rfc/rfc7009#section-2.1
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.1
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2
 */
import type { AuditContext } from "../http/request-context.ts";
import { getConfig } from "../config.ts";
import { clientAddress, enforceLimit } from "../http/limits.ts";
import { checkFailureBlock, countFailure, failureKey, oneCheckAtATime } from "./failures.ts";
import {
  clientIdNotSubject,
  invalidClient,
  parseClientAuthentication,
  type ClientAuthMethod,
  type ClientCredentials,
} from "./credentials.ts";
import { authenticateAssertion, type AssertionResult } from "./assertion.ts";
import { verifyFederatedAssertion } from "./federation.ts";
import { readTokenForm, type TokenForm } from "./form.ts";
import { authenticateCertificate } from "./certificate.ts";
import { presentedCertificate } from "../http/client-certificate.ts";
import { activeSecret, type ClientRecord } from "../clients/record.ts";
import { dummySecretHash, verifyClientSecret } from "../clients/secret.ts";
import { KV_CACHE_TTL_SECONDS } from "../policy.ts";
import { loadClient } from "../clients/store.ts";
import { isKnownGoodSecret, rememberGoodSecret, secretCacheKey } from "./warm-secrets.ts";
import { rememberClient, rememberedRecord } from "./warm-records.ts";

export interface AuthenticatedRequest<T> {
  /** The authenticated, enabled client. */
  client: ClientRecord;
  method: ClientAuthMethod;
  form: TokenForm;
  /** What the endpoint's `prepare` returned. */
  prepared: T;
  /** Epoch seconds at which the secret was checked. */
  now: number;
}

/**
 * Authenticates the client of a form request, or throws the endpoint's error (400, 401
 * invalid_client, with a Basic challenge unless the client authenticated in the body (a secret or an
 * assertion), 413, 429, 503). `prepare` runs the endpoint's cheap checks (required parameters, signing
 * keys) before the PBKDF2 or signature work, so a request that would fail anyway costs none; what it
 * returns comes back as `prepared`.
 */
export async function authenticateFormRequest<T>(
  request: Request,
  env: Env,
  realm: string,
  prepare: (form: TokenForm) => T | Promise<T>,
  audit: AuditContext = {},
): Promise<AuthenticatedRequest<T>> {
  const address = clientAddress(request.headers);
  await enforceLimit(env.TOKEN_IP_LIMITER, address, "token service requests per address");
  const form = await readTokenForm(request);
  const credentials = parseClientAuthentication(request.headers, form, realm);
  // The claimed id, for the audit line of whatever follows (a refusal included).
  audit.client_id = credentials.clientId.slice(0, 128);
  const failures = failureKey(credentials.clientId, address);
  checkFailureBlock(failures);
  const prepared = await prepare(form);
  if (credentials.method === "private_key_jwt" || credentials.method === "certificate") {
    return authenticateByRecord(credentials, request, env, realm, failures, { form, prepared });
  }

  // The warm path: this secret authenticated this client here within CLIENT_CACHE_SECONDS.
  const fromMemory = async (): Promise<AuthenticatedRequest<T> | undefined> => {
    const readAt = Date.now();
    const now = Math.floor(readAt / 1000);
    const client = await rememberedClient(credentials.clientId, credentials.clientSecret, now, readAt);
    return client && { client, method: credentials.method, form, prepared, now };
  };
  const remembered = await fromMemory();
  if (remembered) return remembered;
  return oneCheckAtATime(failures, async () => {
    // The check before this one may have blocked the pair, or authenticated this very secret.
    checkFailureBlock(failures);
    const justRemembered = await fromMemory();
    if (justRemembered) return justRemembered;
    const readAt = Date.now();
    const now = Math.floor(readAt / 1000);
    // KV's shortest edge cache: with the isolate's CLIENT_CACHE_SECONDS, a disabled client or a revoked
    // secret stops working at every location within REVOCATION_BOUND_SECONDS of the write (src/policy.ts).
    const record = await loadClient(env.CLIENTS, credentials.clientId, { cacheTtl: KV_CACHE_TTL_SECONDS });
    const auth = await authenticateClient(record, credentials.clientSecret, now, getConfig(env).pbkdf2Iterations);
    if (!auth.ok) {
      await countFailure(env.TOKEN_FAILURE_LIMITER, failures);
      throw invalidClient(realm, `${auth.reason} (client_id ${JSON.stringify(credentials.clientId)})`, credentials.method);
    }
    rememberClient(auth.record, readAt);
    return { client: auth.record, method: credentials.method, form, prepared, now };
  });
}

/**
 * A client assertion (RFC 7523 §2.2) or a TLS client certificate (RFC 8705 §2), one check at a time
 * per client and address like a secret, each failure counted the same way and answered with the same
 * 401 invalid_client. The record comes from this isolate's memory (warm-records.ts,
 * CLIENT_CACHE_SECONDS) or KV; the warm secret cache has no part here: every assertion is verified
 * and spends its jti, every certificate is checked.
 */
async function authenticateByRecord<T>(
  credentials: Extract<ClientCredentials, { method: "private_key_jwt" | "certificate" }>,
  request: Request,
  env: Env,
  realm: string,
  failures: string,
  rest: { form: TokenForm; prepared: T },
): Promise<AuthenticatedRequest<T>> {
  return oneCheckAtATime(failures, async () => {
    checkFailureBlock(failures);
    const readAt = Date.now();
    const now = Math.floor(readAt / 1000);
    const remembered = rememberedRecord(credentials.clientId, readAt);
    const record = remembered ?? (await loadClient(env.CLIENTS, credentials.clientId, { cacheTtl: KV_CACHE_TTL_SECONDS }));
    // A workload-identity client's assertion is its platform's token, whose sub is the workload;
    // any other client's assertion names the client itself as its sub.
    if (credentials.method === "private_key_jwt" && !record?.federated_identity && credentials.clientId !== credentials.subject)
      throw clientIdNotSubject();
    const auth: AssertionResult =
      credentials.method === "certificate"
        ? await authenticateCertificate(record, presentedCertificate(request))
        : record?.federated_identity
          ? await authenticateFederatedClient(record, credentials.assertion, env, now)
          : await authenticateAssertion(record, credentials.assertion, env, now);
    if (!auth.ok) {
      await countFailure(env.TOKEN_FAILURE_LIMITER, failures);
      throw invalidClient(realm, `${auth.reason} (client_id ${JSON.stringify(credentials.clientId)})`, credentials.method);
    }
    // A remembered record keeps the time it was read: using it must not extend its life.
    if (!remembered) rememberClient(record!, readAt);
    // A certificate authenticated the method the record names (certificate.ts checked it is one of the two).
    const method = credentials.method === "certificate" ? (record!.token_endpoint_auth_method as ClientAuthMethod) : credentials.method;
    return { client: record!, method, ...rest, now };
  });
}

/**
 * The warm path: the remembered record when `clientId` authenticated here within CLIENT_CACHE_SECONDS
 * (warm-records.ts) and `secret` is the very secret verified then (warm-secrets.ts), still unexpired
 * at `now` (epoch seconds); otherwise undefined, and the caller takes the cold path (KV and PBKDF2).
 */
export async function rememberedClient(
  clientId: string,
  secret: string,
  now: number,
  nowMs = Date.now(),
): Promise<ClientRecord | undefined> {
  const record = rememberedRecord(clientId, nowMs);
  if (!record) return undefined;
  const stored = activeSecret(record, secret, now);
  if (!stored || record.disabled) return undefined;
  return (await isKnownGoodSecret(secretCacheKey(record.client_id, stored.hash, record.updated_at), secret)) ? record : undefined;
}

/** The cold path's verdict on a presented secret against the record read from KV. */
type AuthenticationResult = { ok: true; record: ClientRecord } | { ok: false; reason: string };

/**
 * The cold path: checks a presented secret against the record read from KV. Every failing path pays exactly one PBKDF2: the stored hash's, or for
 * an unknown client or secret id a dummy hash at `iterations` (PBKDF2_ITERATIONS, the count new
 * secrets are hashed with), so an unknown client, an unknown or expired secret, a wrong secret and a
 * disabled client take the same time and get the same answer (docs/security.md item 16, CWE-208).
 * Only a secret this isolate has already verified for the unchanged record skips the PBKDF2
 * (warm-secrets.ts).
 */
async function authenticateClient(
  record: ClientRecord | null,
  clientSecret: string,
  now: number,
  iterations: number,
): Promise<AuthenticationResult> {
  const stored = record ? activeSecret(record, clientSecret, now) : undefined;
  // Only an enabled client's secret is remembered: a disabled one must keep costing a PBKDF2, so
  // even a caller holding its secret cannot tell "disabled" from "wrong" by timing. Disabling
  // changes updated_at, which drops any entry made before.
  const cacheKey = record && stored && !record.disabled ? secretCacheKey(record.client_id, stored.hash, record.updated_at) : undefined;
  let matches = cacheKey !== undefined && (await isKnownGoodSecret(cacheKey, clientSecret));
  if (!matches) {
    matches = await verifyClientSecret(clientSecret, stored?.hash ?? dummySecretHash(iterations));
    if (matches && cacheKey !== undefined) await rememberGoodSecret(cacheKey, clientSecret);
  }
  if (!record) return { ok: false, reason: "unknown client" };
  if (!stored) return { ok: false, reason: "unknown or expired secret id" };
  if (!matches) return { ok: false, reason: "wrong secret" };
  if (record.disabled) return { ok: false, reason: "client disabled" };
  return { ok: true, record };
}

/**
 * A workload-identity client (RFC 7521 §4.2 with its platform's token, federation.ts): no jti guard,
 * since a platform token is reused until it expires (docs/security.md, "Trade-offs"); disabled is
 * checked after the verification, as for every other method.
 */
async function authenticateFederatedClient(record: ClientRecord, assertion: string, env: Env, now: number): Promise<AssertionResult> {
  const verdict = await verifyFederatedAssertion(assertion, record, env, now);
  if (!verdict.ok) return verdict;
  return record.disabled ? { ok: false, reason: "client disabled" } : verdict;
}
