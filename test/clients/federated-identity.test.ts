/**
 * The `federated_identity` record field (src/clients/record.ts, src/clients/manage.ts): the rules
 * every writer (CLI, clients file, admin API) and the Worker apply.
 */
import { describe, expect, it } from "vitest";
import { ClientRecordError, validateClientRecord, validateFederatedIdentity } from "../../src/clients/record.ts";
import { blankClientRecord, createClientRecord, createKeyClientRecord, updateClientRecord } from "../../src/clients/manage.ts";

const GITHUB = "https://token.actions.githubusercontent.com";
const identity = { issuer: GITHUB, subject: "repo:org/app:environment:prod" };

describe("federated_identity", () => {
  it("stores issuer, subject, claims ({} by default) and audience (null = this ISSUER)", () => {
    expect(validateFederatedIdentity(identity)).toEqual({ ...identity, claims: {}, audience: null });
    const k8s = {
      issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
      subject: "system:serviceaccount:prod:deployer",
      claims: { "kubernetes.io.namespace": "prod", "kubernetes.io.serviceaccount.name": "deployer" },
      audience: "https://auth.example.com",
    };
    expect(validateFederatedIdentity(k8s)).toEqual(k8s);
  });

  for (const [what, value, message] of [
    ["no issuer", { subject: "s" }, /^federated_identity\.issuer: must be a non-empty string/],
    ["an issuer that is not a URL", { ...identity, issuer: "github" }, /^federated_identity\.issuer: must be the issuer's URL/],
    ["an issuer with a fragment", { ...identity, issuer: `${GITHUB}#x` }, /^federated_identity\.issuer: must be the issuer's URL/],
    ["no subject", { issuer: GITHUB }, /^federated_identity\.subject: must be a non-empty string/],
    ["claims not an object", { ...identity, claims: ["repository"] }, /^federated_identity\.claims: must be an object/],
    ["a claim value not a string", { ...identity, claims: { ref: 1 } }, /^federated_identity\.claims\.ref: must be a non-empty string/],
    ["an empty claim segment", { ...identity, claims: { "kubernetes..io": "x" } }, /is not a claim name/],
    ["a registered claim as a condition", { ...identity, claims: { aud: "x" } }, /aud has its own rule/],
    ["an unknown member", { ...identity, subjects: ["x"] }, /^federated_identity\.subjects: is not a field/],
  ] as const) {
    it(`refuses ${what}`, () => {
      expect(() => validateFederatedIdentity(value)).toThrow(message);
    });
  }

  it('never drops a claim condition silently: "__proto__" (as JSON.parse or the admin API delivers it) is refused, not lost', () => {
    // Assigned into a plain object, a "__proto__" condition set the prototype (a string: ignored) and
    // vanished, leaving a client its admin meant to restrict authenticated by issuer and subject alone.
    const value = JSON.parse(`{"issuer":"${GITHUB}","subject":"s","claims":{"__proto__":"prod","ref":"main"}}`);
    expect(() => validateFederatedIdentity(value)).toThrow(/^federated_identity\.claims: "__proto__" is not a claim name/);
  });

  it("makes a client without a secret, and refuses a record holding both", async () => {
    const record = createKeyClientRecord("deploy-bot", { scope: "deploy", federated_identity: identity }, 1000);
    expect(record.secrets).toEqual([]);
    expect(record.federated_identity).toEqual({ ...identity, claims: {}, audience: null });
    expect(validateClientRecord(JSON.parse(JSON.stringify(record)))).toEqual(record);
    expect(record.token_endpoint_auth_method).toBe("private_key_jwt");
    const { record: withSecret } = await createClientRecord("svc", { scope: "" }, 1000, { iterations: 10_000 });
    expect(() => updateClientRecord(withSecret, { federated_identity: identity }, 1001)).toThrow(
      /^federated_identity: only a private_key_jwt client has keys/,
    );
    expect(() => validateClientRecord({ ...record, secrets: withSecret.secrets })).toThrow(
      /^secrets: a private_key_jwt client has no secrets/,
    );
    expect(() => createKeyClientRecord("x", { scope: "" }, 1000)).toThrow(ClientRecordError);
  });

  it("is one key source: it replaces jwks, and jwks replaces it; absent from other records", () => {
    const record = createKeyClientRecord("deploy-bot", { scope: "", federated_identity: identity }, 1000);
    const withKeys = updateClientRecord(record, { jwks_uri: "https://keys.example.com/jwks.json" }, 1001);
    expect("federated_identity" in withKeys).toBe(false);
    expect("jwks_uri" in updateClientRecord(withKeys, { federated_identity: identity }, 1002)).toBe(false);
    expect("federated_identity" in validateClientRecord(blankClientRecord("plain", 1000))).toBe(false);
  });
});
