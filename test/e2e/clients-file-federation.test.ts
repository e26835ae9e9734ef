/**
 * Clients files (cli/clients-file.ts) carry a client's federated_identity as an inline table:
 * `export` writes it, `apply` reads it back under the record's rules. Pure functions, run in Node.
 */
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { changesOf, formatClientsFile, parseClientsFile } from "../../cli/clients-file.ts";
import { createKeyClientRecord } from "../../src/clients/manage.ts";

const identity = {
  issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
  subject: "system:serviceaccount:prod:deployer",
  claims: { "kubernetes.io.namespace": "prod" },
  audience: "https://auth.example.com",
};

describe("clients file: federated_identity", () => {
  it("exports a federated client as an inline table that applies back to the same identity", () => {
    const record = createKeyClientRecord("k8s-deployer", { scope: "deploy", federated_identity: identity }, 1000);
    const text = formatClientsFile([record]);
    expect(text).toContain('federated_identity = { issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"');
    expect(text).toContain('claims = { "kubernetes.io.namespace" = "prod" }');
    const specs = parseClientsFile(parse(text) as Record<string, unknown>, "clients.toml");
    expect(changesOf("k8s-deployer", specs.get("k8s-deployer")!).federated_identity).toEqual(identity);
  });

  it("names the file, the client and the field of a broken identity", () => {
    const text = '[clients.bot]\nallowed_scopes = []\nfederated_identity = { issuer = "https://token.actions.githubusercontent.com" }\n';
    expect(() => parseClientsFile(parse(text) as Record<string, unknown>, "clients.toml")).toThrow(
      /^clients\.toml: client "bot": federated_identity\.subject: must be a non-empty string/,
    );
  });
});
