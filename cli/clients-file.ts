/**
 * Clients as code: a TOML file, reviewed in git, that lists every client and its settings (never a
 * secret); `tollgate apply` makes the registry match it, `tollgate export` writes it from the registry.
 * The file's fields are the record's (docs/storage.md) and are checked by the same rules as the CLI
 * and the admin API (src/clients/record.ts, src/clients/manage.ts).
 *
 * ```toml
 * [clients.orders-svc]
 * name = "Orders service"
 * allowed_scopes = ["orders:read", "orders:write"]
 * default_scopes = ["orders:read"]          # default: every allowed scope
 * allowed_audiences = ["https://api.example.com"]
 *
 * [clients.billing-svc]                     # private_key_jwt: no secret, its public keys instead
 * allowed_scopes = ["billing:read"]
 * token_endpoint_auth_method = "private_key_jwt"
 * jwks_uri = "https://billing.example.com/.well-known/jwks.json"   # or jwks = { keys = [{ kty = "EC", ... }] }
 *
 * [clients.deploy-bot]                       # workload identity federation (private_key_jwt, no secret)
 * allowed_scopes = ["deploy"]
 * federated_identity = { issuer = "https://token.actions.githubusercontent.com", subject = "repo:org/app:environment:prod" }
 *
 * [clients.orders-batch]                    # RFC 8705 mTLS: the client certificate Cloudflare reports
 * allowed_scopes = ["orders:read"]
 * token_endpoint_auth_method = "tls_client_auth"
 * tls_client_auth_subject_dn = "CN=orders-batch,O=Example Corp,C=DE"
 * ```
 */
import {
  ClientRecordError,
  isValidAudience,
  isValidClientId,
  isValidScopeToken,
  TOKEN_ENDPOINT_AUTH_METHODS,
  type ClientRecord,
  type TokenEndpointAuthMethod,
} from "../src/clients/record.ts";
import type { ClientJWKS } from "../src/clients/client-keys.ts";
import { blankClientRecord, updateClientRecord, type ClientChanges } from "../src/clients/manage.ts";
import { tomlKey, tomlValue, type TOMLValue } from "./toml.ts";

/** One client as the file describes it; absent fields take the value `clients create` gives. */
export interface ClientSpec {
  name?: string;
  allowed_scopes: string[];
  default_scopes?: string[];
  allowed_audiences?: string[];
  default_audience?: string;
  token_ttl?: number;
  disabled?: boolean;
  introspect_any?: boolean;
  // How the client authenticates (absent: a secret, client_secret_basic).
  token_endpoint_auth_method?: TokenEndpointAuthMethod;
  jwks?: ClientJWKS;
  jwks_uri?: string;
  allow_token_endpoint_audience?: boolean;
  dpop_bound_access_tokens?: boolean;
  /** Workload identity federation; implies token_endpoint_auth_method private_key_jwt. */
  federated_identity?: Record<string, unknown>;
  // Mutual TLS (RFC 8705).
  tls_client_auth_subject_dn?: string;
  tls_client_certificate_bound_access_tokens?: boolean;
}

/** The fields a plan compares and an update may change, in the order they are shown. */
const MANAGED_FIELDS = [
  "name",
  "allowed_scopes",
  "default_scopes",
  "allowed_audiences",
  "default_audience",
  "token_ttl",
  "disabled",
  "introspect_any",
  "token_endpoint_auth_method",
  "jwks",
  "jwks_uri",
  "allow_token_endpoint_audience",
  "dpop_bound_access_tokens",
  "federated_identity",
  "tls_client_auth_subject_dn",
  "tls_client_certificate_bound_access_tokens",
] as const;
type ManagedField = (typeof MANAGED_FIELDS)[number];

export class ClientsFileError extends Error {
  override name = "ClientsFileError";
}

const where = (file: string, clientId: string) => `${file}: client ${JSON.stringify(clientId)}`;

function stringList(value: unknown, check: (s: string) => boolean, what: string): string | undefined {
  if (!Array.isArray(value)) return "must be an array of strings";
  for (const item of value) if (typeof item !== "string" || !check(item)) return `${JSON.stringify(item)} is not ${what}`;
  return undefined;
}

const SCOPE = "a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)";
const AUDIENCE = "an absolute URI without fragment";

/** Type checks per field; the rules between fields are the record's (validateClientRecord). */
const FIELD_CHECKS: Record<ManagedField, (v: unknown) => string | undefined> = {
  name: (v) => (typeof v === "string" ? undefined : "must be a string"),
  allowed_scopes: (v) => stringList(v, isValidScopeToken, SCOPE),
  default_scopes: (v) => stringList(v, isValidScopeToken, SCOPE),
  allowed_audiences: (v) => stringList(v, isValidAudience, AUDIENCE),
  default_audience: (v) => (typeof v === "string" && isValidAudience(v) ? undefined : `must be ${AUDIENCE}`),
  token_ttl: (v) => (typeof v === "number" && Number.isSafeInteger(v) ? undefined : "must be whole seconds"),
  disabled: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
  introspect_any: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
  token_endpoint_auth_method: (v) =>
    (TOKEN_ENDPOINT_AUTH_METHODS as readonly unknown[]).includes(v)
      ? undefined
      : `must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(", ")}`,
  // The keys themselves are checked by the record's rules (public keys only).
  jwks: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be a table { keys = [...] }"),
  jwks_uri: (v) => (typeof v === "string" ? undefined : "must be a string"),
  allow_token_endpoint_audience: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
  dpop_bound_access_tokens: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
  // Its parts are checked by the record's rules (validateFederatedIdentity).
  federated_identity: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be a table"),
  tls_client_auth_subject_dn: (v) => (typeof v === "string" ? undefined : "must be a string"),
  tls_client_certificate_bound_access_tokens: (v) => (typeof v === "boolean" ? undefined : "must be true or false"),
};

/** The complete change set that turns any record of this id into what the file says. */
export function changesOf(clientId: string, spec: ClientSpec): ClientChanges {
  return {
    name: spec.name ?? clientId,
    scope: spec.allowed_scopes.join(" "),
    default_scope: (spec.default_scopes ?? spec.allowed_scopes).join(" "),
    audiences: spec.allowed_audiences ?? [],
    default_audience: spec.default_audience ?? null,
    token_ttl: spec.token_ttl ?? null,
    disabled: spec.disabled ?? false,
    introspect_any: spec.introspect_any ?? false,
    dpop_bound_access_tokens: spec.dpop_bound_access_tokens ?? false,
    tls_client_certificate_bound_access_tokens: spec.tls_client_certificate_bound_access_tokens ?? false,
    ...authenticationChanges(spec),
  };
}

/** The method only when the file names it (older records have none); a private_key_jwt client's keys and flag. */
function authenticationChanges(spec: ClientSpec): ClientChanges {
  const changes: ClientChanges = {};
  if (spec.token_endpoint_auth_method !== undefined) changes.token_endpoint_auth_method = spec.token_endpoint_auth_method;
  if (spec.jwks !== undefined) changes.jwks = spec.jwks;
  if (spec.jwks_uri !== undefined) changes.jwks_uri = spec.jwks_uri;
  if (spec.federated_identity !== undefined) changes.federated_identity = spec.federated_identity;
  if (spec.token_endpoint_auth_method === "private_key_jwt")
    changes.allow_token_endpoint_audience = spec.allow_token_endpoint_audience ?? false;
  else if (spec.allow_token_endpoint_audience !== undefined) changes.allow_token_endpoint_audience = spec.allow_token_endpoint_audience;
  if (spec.tls_client_auth_subject_dn !== undefined) changes.tls_client_auth_subject_dn = spec.tls_client_auth_subject_dn;
  return changes;
}

/** What `clients create` starts this client from: a blank record of the method the file names. */
export function blankRecordFor(clientId: string, spec: ClientSpec): ClientRecord {
  const blank = blankClientRecord(clientId, 0);
  if (spec.token_endpoint_auth_method === undefined) return blank;
  const keyed = spec.token_endpoint_auth_method === "private_key_jwt" ? { allow_token_endpoint_audience: false } : {};
  return { ...blank, token_endpoint_auth_method: spec.token_endpoint_auth_method, ...keyed };
}

/** manage.ts names the change (`scope`), the file names the record field (`allowed_scopes`). */
const FILE_FIELD: Record<string, string> = { scope: "allowed_scopes", default_scope: "default_scopes" };

function renameField(message: string): string {
  const colon = message.indexOf(":");
  const field = message.slice(0, colon);
  return colon > 0 && FILE_FIELD[field] ? `${FILE_FIELD[field]}${message.slice(colon)}` : message;
}

/**
 * Checks a parsed clients file; every error names the file, the client and the field.
 * @returns the clients by id, in the file's order
 */
export function parseClientsFile(document: Record<string, unknown>, file: string): Map<string, ClientSpec> {
  for (const key of Object.keys(document)) {
    if (key !== "clients")
      throw new ClientsFileError(`${file}: unknown top-level key ${JSON.stringify(key)} (the file has one table, [clients.<client_id>])`);
  }
  const clients = document.clients ?? {};
  if (typeof clients !== "object" || clients === null || Array.isArray(clients))
    throw new ClientsFileError(`${file}: clients must be a table of [clients.<client_id>] tables`);
  const specs = new Map<string, ClientSpec>();
  for (const [clientId, value] of Object.entries(clients)) {
    const at = where(file, clientId);
    if (!isValidClientId(clientId)) throw new ClientsFileError(`${at}: client_id must be 1-128 visible ASCII characters without spaces`);
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new ClientsFileError(`${at}: must be a table ([clients.${tomlKey(clientId)}])`);
    const fields = value as Record<string, unknown>;
    for (const [field, v] of Object.entries(fields)) {
      if (field === "client_secret" || field === "secrets" || field === "secret")
        throw new ClientsFileError(`${at}: ${field}: secrets never go in a clients file (apply prints new ones once)`);
      const check = FIELD_CHECKS[field as ManagedField];
      if (!check) throw new ClientsFileError(`${at}: unknown field ${JSON.stringify(field)} (fields: ${MANAGED_FIELDS.join(", ")})`);
      const problem = check(v);
      if (problem) throw new ClientsFileError(`${at}: ${field}: ${problem}`);
    }
    if (fields.allowed_scopes === undefined) throw new ClientsFileError(`${at}: allowed_scopes: required (use [] for none)`);
    const spec = fields as unknown as ClientSpec;
    // A federated client authenticates with an assertion (its platform's token).
    if (spec.federated_identity !== undefined) spec.token_endpoint_auth_method ??= "private_key_jwt";
    try {
      updateClientRecord(blankRecordFor(clientId, spec), changesOf(clientId, spec), 0);
    } catch (error) {
      if (error instanceof ClientRecordError) throw new ClientsFileError(`${at}: ${renameField(error.message)}`);
      throw error;
    }
    specs.set(clientId, spec);
  }
  return specs;
}

export type ManagedValues = Pick<ClientRecord, ManagedField>;

export function managedValues(record: ClientRecord): ManagedValues {
  return Object.fromEntries(MANAGED_FIELDS.map((f) => [f, record[f]])) as ManagedValues;
}

export interface FieldChange {
  field: ManagedField;
  from: unknown;
  to: unknown;
}

/** What a new client of this spec gets, beyond a bare record: the plan's `+ create` lines. */
export function creationFields(clientId: string, spec: ClientSpec): FieldChange[] {
  const blank = blankRecordFor(clientId, spec);
  return diffRecords(blank, updateClientRecord(blank, changesOf(clientId, spec), 0));
}

/** The fields that differ between two records, in MANAGED_FIELDS order. */
export function diffRecords(current: ClientRecord, next: ClientRecord): FieldChange[] {
  return MANAGED_FIELDS.filter((f) => JSON.stringify(current[f]) !== JSON.stringify(next[f])).map((f) => ({
    field: f,
    from: current[f],
    to: next[f],
  }));
}

/** The registry as a clients file: only what differs from `clients create`'s defaults, never a hash. */
export function formatClientsFile(records: ClientRecord[]): string {
  const lines = [
    "# Tollgate clients: `npx tollgate apply -f <this file>` makes the registry match it.",
    "# No secret is ever in this file.",
    "",
  ];
  for (const r of [...records].sort((a, b) => (a.client_id < b.client_id ? -1 : 1))) {
    const fields: [string, TOMLValue][] = [];
    if (r.name !== r.client_id) fields.push(["name", r.name]);
    fields.push(["allowed_scopes", r.allowed_scopes]);
    if (JSON.stringify(r.default_scopes) !== JSON.stringify(r.allowed_scopes)) fields.push(["default_scopes", r.default_scopes]);
    if (r.allowed_audiences.length > 0) fields.push(["allowed_audiences", r.allowed_audiences]);
    if (r.default_audience !== null) fields.push(["default_audience", r.default_audience]);
    if (r.token_ttl !== null) fields.push(["token_ttl", r.token_ttl]);
    if (r.disabled) fields.push(["disabled", true]);
    if (r.introspect_any) fields.push(["introspect_any", true]);
    if (r.dpop_bound_access_tokens) fields.push(["dpop_bound_access_tokens", true]);
    const method = r.token_endpoint_auth_method;
    if (method !== undefined && method !== "client_secret_basic") fields.push(["token_endpoint_auth_method", method]);
    if (r.jwks_uri !== undefined) fields.push(["jwks_uri", r.jwks_uri]);
    if (r.allow_token_endpoint_audience) fields.push(["allow_token_endpoint_audience", true]);
    if (r.federated_identity) {
      const { issuer, subject, claims, audience } = r.federated_identity;
      fields.push([
        "federated_identity",
        { issuer, subject, ...(Object.keys(claims).length > 0 ? { claims } : {}), ...(audience === null ? {} : { audience }) },
      ]);
    }
    if (r.tls_client_auth_subject_dn !== undefined) fields.push(["tls_client_auth_subject_dn", r.tls_client_auth_subject_dn]);
    if (r.tls_client_certificate_bound_access_tokens) fields.push(["tls_client_certificate_bound_access_tokens", true]);
    if (r.jwks !== undefined) fields.push(["jwks", r.jwks as unknown as TOMLValue]);
    lines.push(`[clients.${tomlKey(r.client_id)}]`, ...fields.map(([k, v]) => `${k} = ${tomlValue(v)}`), "");
  }
  return lines.join("\n");
}
