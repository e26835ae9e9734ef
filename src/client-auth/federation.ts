/**
 * Workload identity federation: a client without a secret authenticates with the token its platform
 * gives it (GitHub Actions' OIDC token, a Kubernetes projected service-account token), sent as a
 * jwt-bearer `client_assertion`. The token must come from the record's issuer, which must still be
 * one of TRUSTED_ISSUERS, be signed by a key that issuer publishes (its discovery document or its
 * configured jwks_uri, src/keys/remote-key-set.ts), and match the record's exact `sub`, claim
 * conditions and audience, within the issuer's maximum lifetime.
 *
 * Not single-use: a platform token is a bearer credential its platform hands out for reuse until it
 * expires (the kubelet rewrites a projected token only after 80% of its life; every step of a job may
 * send the same one), so no jti guard applies, as in Entra ID's, Google Cloud's and AWS's token
 * exchanges; the audience (this server by default) and the lifetime bound limit a leaked one
 * (docs/security.md).
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2
 * @see https://www.rfc-editor.org/rfc/rfc7521#section-4.2
 */
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from "jose";
import type { ClientRecord } from "../clients/record.ts";
import { getConfig } from "../config.ts";
import { discoveredKeySet, remoteKeySet } from "../keys/remote-key-set.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../policy.ts";
import { findTrustedIssuer } from "../trusted-issuers.ts";
import { KEY_REFERENCES, verificationRefusal } from "./assertion.ts";

/**
 * The values a dotted claim name names in `value`: every way of grouping its segments into member
 * names (`kubernetes.io.namespace` is `["kubernetes.io"]["namespace"]`, or `["kubernetes"]["io"]…`).
 */
function claimValues(value: unknown, segments: string[]): unknown[] {
  if (segments.length === 0) return [value];
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [];
  const found: unknown[] = [];
  for (let i = 1; i <= segments.length; i++) {
    const name = segments.slice(0, i).join(".");
    if (Object.hasOwn(value, name)) found.push(...claimValues((value as Record<string, unknown>)[name], segments.slice(i)));
  }
  return found;
}

/** Why the claim condition `name` = `expected` does not hold in `payload`, or undefined when it does (exactly one reading, that string). */
export function unmetClaimCondition(payload: JWTPayload, name: string, expected: string): string | undefined {
  const found = claimValues(payload, name.split("."));
  if (found.length === 0) return `claim ${name} is absent`;
  if (found.length > 1) return `claim ${name} is ambiguous (${found.length} readings of the dotted name)`;
  if (found[0] !== expected) return `claim ${name} is ${JSON.stringify(found[0])}, not ${JSON.stringify(expected)}`;
  return undefined;
}

/**
 * Verifies a federated client's `client_assertion`: its platform's token. The reason of a refusal
 * is for the log; the caller answers 401 invalid_client whatever it is (an issuer that is down
 * included). `now` is epoch seconds.
 */
export async function verifyFederatedAssertion(
  assertion: string,
  record: ClientRecord,
  env: Env,
  now: number,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const identity = record.federated_identity;
  if (!identity) return { ok: false, reason: "the client has no federated identity" };
  const config = getConfig(env);
  const trusted = findTrustedIssuer(config.trustedIssuers, identity.issuer);
  // Checked before anything is fetched: an issuer dropped from the configuration is never asked again.
  if (!trusted) return { ok: false, reason: `the client's issuer ${identity.issuer} is not in TRUSTED_ISSUERS` };
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    // The unverified iss only spares a fetch for a token of another issuer; jwtVerify checks it again.
    if (decodeJwt(assertion).iss !== identity.issuer) return { ok: false, reason: `the assertion's iss is not ${identity.issuer}` };
    header = decodeProtectedHeader(assertion);
  } catch (error) {
    return { ok: false, reason: `the assertion is not a JWT: ${(error as Error).message}` };
  }
  const keyHeader = KEY_REFERENCES.find((name) => name in header);
  if (keyHeader !== undefined) return { ok: false, reason: `the assertion's header carries "${keyHeader}", which is never used` };
  let payload: JWTPayload;
  try {
    const keys = trusted.jwksUri ? remoteKeySet(trusted.jwksUri) : discoveredKeySet(trusted.issuer, config.issuer);
    ({ payload } = await jwtVerify(assertion, keys, {
      issuer: identity.issuer,
      subject: identity.subject,
      // A string equal to it, or an array containing it: GitHub sends one string, Kubernetes an array.
      audience: identity.audience ?? config.issuer,
      algorithms: trusted.algorithms,
      requiredClaims: ["exp"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now * 1000),
    }));
  } catch (error) {
    const reason = verificationRefusal(error, {
      keys: `the keys of ${identity.issuer} are unavailable: `,
      invalid: "the assertion is not valid: ",
    });
    return { ok: false, reason };
  }
  const exp = payload.exp!;
  const issuedAt = payload.iat ?? now;
  if (issuedAt > now + CLOCK_TOLERANCE_SECONDS) return { ok: false, reason: "the assertion's iat is in the future" };
  if (exp - Math.min(issuedAt, now) > trusted.maxTokenLifetime) {
    return { ok: false, reason: `the assertion lives ${exp - issuedAt} s, longer than ${trusted.maxTokenLifetime} s (max_token_lifetime)` };
  }
  for (const [name, expected] of Object.entries(identity.claims)) {
    const unmet = unmetClaimCondition(payload, name, expected);
    if (unmet !== undefined) return { ok: false, reason: unmet };
  }
  return { ok: true };
}
