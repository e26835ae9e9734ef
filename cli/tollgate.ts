#!/usr/bin/env node
/**
 * `tollgate`: manage clients and signing keys, locally (the state `npm start` uses) or on a
 * deployed namespace (--remote [--env NAME]). Same record rules and hashing as the Worker.
 * Storage is opened once per command, and only by commands that need it (cli/kv.ts).
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { enableCompileCache } from "node:module";
import { parseArgs } from "node:util";
import {
  CLIENT_KEY_PREFIX,
  ClientRecordError,
  clientKey,
  describeClient,
  hasNoSecret,
  isValidAudience,
  isValidClientId,
  isWellFormedClientId,
  usesAssertion,
  validateClientRecord,
  TOKEN_ENDPOINT_AUTH_METHODS,
  type ClientRecord,
  type TokenEndpointAuthMethod,
} from "../src/clients/record.ts";
import {
  createClientRecord,
  createKeyClientRecord,
  DEFAULT_SECRET_GRACE_SECONDS,
  revokeClientSecret,
  rotateClientSecret,
  updateClientRecord,
  type ClientChanges,
} from "../src/clients/manage.ts";
import { parsePBKDF2Iterations } from "../src/clients/secret.ts";
import { GENERATION_KEY, parseGenerationRecord, planRotation, validateGenerationRecord } from "../src/keys/generation-record.ts";
import { DEFAULT_ROTATE_IN_SECONDS, GENERATION_PROPAGATION_SECONDS, generationRetention } from "../src/keys/schedule.ts";
import { DEFAULT_MAX_ACCESS_TOKEN_TTL } from "../src/policy.ts";
import { findTrustedIssuer, parseTrustedIssuers } from "../src/trusted-issuers.ts";
import { rotationTime } from "./clock.ts";
import { certificateJWK } from "./certificate.ts";
import { changesOf, creationFields, diffRecords, formatClientsFile, parseClientsFile, type FieldChange } from "./clients-file.ts";
import { configPath, readWranglerSettings } from "./config.ts";
import { localStateDir, openStore, type KVStore, type KVTarget } from "./kv.ts";

// Miniflare and wrangler are large bundles: Node's code cache makes loading them cheaper after the first run.
enableCompileCache?.();

const USAGE = `Usage: tollgate <command> [options]

Clients:
  clients create <client_id> --scope "a b" [--default-scope "a"] [--audience URI ...]
                 [--default-audience URI] [--ttl SECONDS] [--name TEXT] [--introspect-any]
                 [--require-dpop] [--json]
                 [--auth-method client_secret_basic|client_secret_post|private_key_jwt|
                                tls_client_auth|self_signed_tls_client_auth]
                 private_key_jwt: no secret; its public keys from --jwks-file keys.json or
                 --jwks-uri URL (https), [--allow-token-endpoint-audience] (weaker: README)
  clients create <client_id> --scope "a b" ... --federated-issuer URL --federated-subject SUB
                 [--federated-claim NAME=VALUE ...] [--federated-audience AUD]
                                     a workload-identity client (private_key_jwt, no secret): it presents
                                     its platform's token (GitHub Actions, Kubernetes) issued by a
                                     TRUSTED_ISSUERS issuer
                 [--auth-method tls_client_auth --tls-subject "CN=...,O=..."]
                 [--auth-method self_signed_tls_client_auth --cert-file client.pem ...]
                 mTLS (RFC 8705): no secret; the certificate Cloudflare's edge reports (README)
                 [--certificate-bound]: tokens bound to the client certificate presented at /token
  clients list [--json]
  clients show <client_id> [--json]
  clients update <client_id> [--scope ...] [--default-scope ...] [--audience URI ...]
                 [--default-audience URI] [--ttl SECONDS|default] [--name TEXT]
                 [--introspect-any | --no-introspect-any] [--require-dpop | --no-require-dpop]
                 [--jwks-file FILE | --jwks-uri URL] [--[no-]allow-token-endpoint-audience]
                 [--federated-issuer URL] [--federated-subject SUB] [--federated-claim NAME=VALUE ...]
                 [--federated-audience AUD|default]  (replace the given parts of its federated identity)
                 [--tls-subject DN] [--cert-file FILE ...] [--certificate-bound | --no-certificate-bound]
                 --introspect-any: the client may introspect every client's tokens (POST /introspect)
                 --require-dpop: /token refuses the client without a DPoP proof (RFC 9449 §5.2)
  clients disable <client_id>        clients enable <client_id>
  clients delete <client_id>
  clients rotate-secret <client_id> [--grace SECONDS]   (old secrets work for 86400 s by default)
  clients revoke-secret <client_id> --secret-id ID   (also ends every token issued so far)

Clients as code (a TOML file reviewed in git; never a secret in it):
  apply -f FILE [--dry-run] [--prune] [--secrets-out FILE]
                                     make the registry match FILE: prints the plan (stderr), then
                                     creates, updates, disables; --prune also deletes clients not in
                                     FILE. New secrets: stdout as JSON, or --secrets-out (mode 0600)
  export                             the registry in that format, on stdout

Keys:
  keys seed                          a new KEY_SEED for \`wrangler secret put KEY_SEED\` (keys rotate by themselves)
  keys rotate [--in SECONDS] [--force] [--json]
                                     the next generation of KEY_SEED keys signs in SECONDS (default
                                     ${DEFAULT_ROTATE_IN_SECONDS}: published everywhere first); --in 0 signs with it at once
                                     (emergency: JWKS caches may not have it yet)
  keys generate                      a new private ES256 JWK for \`wrangler secret put SIGNING_KEY\`

Deploy:
  doctor [--env NAME] [--config PATH]
                                     preflight check of wrangler.toml before \`wrangler deploy\`

Where (clients, apply, export, keys rotate):
  (default)                          local state used by \`npm start\` (.wrangler/state)
  --persist-to DIR                   another local state directory
  --remote [--env NAME]              the deployed KV namespace, through Cloudflare's API
                                     (CLOUDFLARE_API_TOKEN, else \`npx wrangler login\`)
  --config PATH                      another wrangler.toml
`;

class UsageError extends Error {}

const OPTIONS = {
  scope: { type: "string" },
  "default-scope": { type: "string" },
  audience: { type: "string", multiple: true },
  "default-audience": { type: "string" },
  ttl: { type: "string" },
  name: { type: "string" },
  grace: { type: "string" },
  "secret-id": { type: "string" },
  in: { type: "string" },
  force: { type: "boolean", default: false },
  "introspect-any": { type: "boolean" },
  "no-introspect-any": { type: "boolean" },
  "auth-method": { type: "string" },
  "jwks-file": { type: "string" },
  "jwks-uri": { type: "string" },
  "federated-issuer": { type: "string" },
  "federated-subject": { type: "string" },
  "federated-claim": { type: "string", multiple: true },
  "federated-audience": { type: "string" },
  "allow-token-endpoint-audience": { type: "boolean" },
  "no-allow-token-endpoint-audience": { type: "boolean" },
  "require-dpop": { type: "boolean" },
  "no-require-dpop": { type: "boolean" },
  "tls-subject": { type: "string" },
  "cert-file": { type: "string", multiple: true },
  "certificate-bound": { type: "boolean" },
  "no-certificate-bound": { type: "boolean" },
  file: { type: "string", short: "f" },
  "dry-run": { type: "boolean", default: false },
  prune: { type: "boolean", default: false },
  "secrets-out": { type: "string" },
  json: { type: "boolean", default: false },
  remote: { type: "boolean", default: false },
  local: { type: "boolean", default: false },
  env: { type: "string" },
  "persist-to": { type: "string" },
  config: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The option an unknown `--name` most likely meant, if one is close (a typo, a plural). */
function suggestOption(unknown: string): string | undefined {
  const name = unknown.replace(/^-+/, "").split("=")[0]!;
  let best: { option: string; distance: number } | undefined;
  for (const option of Object.keys(OPTIONS)) {
    const distance = editDistance(name, option);
    if (distance <= Math.max(1, Math.floor(option.length / 4)) && (!best || distance < best.distance)) best = { option, distance };
  }
  return best && `--${best.option}`;
}

function parseCommandLine() {
  try {
    return parseArgs({ allowPositionals: true, options: OPTIONS });
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    const unknown = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? /'(-[^']*)'/.exec(message)?.[1] : undefined;
    const suggestion = unknown && suggestOption(unknown);
    const text = unknown ? `unknown option ${unknown}${suggestion ? `: did you mean ${suggestion}?` : ""}` : message;
    process.stderr.write(`tollgate: ${text}\n\n${USAGE}`);
    process.exit(2);
  }
}

const { values: opts, positionals } = parseCommandLine();

const target: KVTarget = {
  remote: opts.remote,
  env: opts.env,
  persistTo: opts["persist-to"] ?? process.env.TOLLGATE_PERSIST_TO,
  config: opts.config,
};
const now = () => Math.floor(Date.now() / 1000);
const where = target.remote ? "the remote namespace" : "the local state";

let openedStore: Promise<KVStore> | undefined;
/** The target's namespace, opened on first use and closed when the command ends. */
const store = (): Promise<KVStore> => (openedStore ??= openStore(target));

function warn(message: string): void {
  process.stderr.write(`tollgate: warning: ${message}\n`);
}

function wholeSeconds(value: string, option: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${option} must be whole seconds, got ${JSON.stringify(value)}`);
  return Number(value);
}

function scopeOption(option: "scope" | "default-scope"): string | undefined {
  const value = opts[option];
  // RFC 6749 §3.3: scopes are space-delimited, so "a,b" is one scope named "a,b".
  if (value?.includes(","))
    warn(
      `--${option} ${JSON.stringify(value)} is one scope token containing a comma; scopes are separated by spaces (--${option} ${JSON.stringify(
        value
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
          .join(" "),
      )})`,
    );
  return value;
}

function changesFromOptions(): ClientChanges {
  const changes: ClientChanges = {};
  if (opts.name !== undefined) changes.name = opts.name;
  const scope = scopeOption("scope");
  if (scope !== undefined) changes.scope = scope;
  const defaultScope = scopeOption("default-scope");
  if (defaultScope !== undefined) changes.default_scope = defaultScope;
  if (opts.audience !== undefined) {
    for (const a of opts.audience)
      if (!isValidAudience(a)) throw new UsageError(`--audience ${JSON.stringify(a)} is not an absolute URI without fragment`);
    changes.audiences = opts.audience;
  }
  if (opts["default-audience"] !== undefined) {
    // The shared rules add it to the allowed audiences if it is not there yet.
    changes.default_audience = opts["default-audience"];
  }
  if (opts.ttl !== undefined) changes.token_ttl = opts.ttl === "default" ? null : wholeSeconds(opts.ttl, "ttl");
  if (opts["introspect-any"] && opts["no-introspect-any"])
    throw new UsageError("--introspect-any and --no-introspect-any exclude each other");
  if (opts["introspect-any"]) changes.introspect_any = true;
  if (opts["no-introspect-any"]) changes.introspect_any = false;
  if (opts["require-dpop"] && opts["no-require-dpop"]) throw new UsageError("--require-dpop and --no-require-dpop exclude each other");
  if (opts["require-dpop"]) changes.dpop_bound_access_tokens = true;
  if (opts["no-require-dpop"]) changes.dpop_bound_access_tokens = false;
  return { ...changes, ...authenticationOptions() };
}

/** --auth-method, and a private_key_jwt client's keys and audience flag (the record's rules check them). */
function authenticationOptions(): ClientChanges {
  const changes: ClientChanges = {};
  const method = opts["auth-method"];
  if (method !== undefined) {
    if (!(TOKEN_ENDPOINT_AUTH_METHODS as readonly string[]).includes(method))
      throw new UsageError(`--auth-method must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(", ")}`);
    changes.token_endpoint_auth_method = method as TokenEndpointAuthMethod;
  }
  if (opts["jwks-file"] !== undefined && opts["jwks-uri"] !== undefined)
    throw new UsageError("--jwks-file and --jwks-uri exclude each other");
  if (opts["jwks-file"] !== undefined) {
    try {
      changes.jwks = JSON.parse(readFileSync(opts["jwks-file"], "utf8"));
    } catch (error) {
      throw new UsageError(`--jwks-file ${opts["jwks-file"]}: ${(error as Error).message}`);
    }
  }
  if (opts["jwks-uri"] !== undefined) changes.jwks_uri = opts["jwks-uri"];
  if (opts["allow-token-endpoint-audience"] && opts["no-allow-token-endpoint-audience"])
    throw new UsageError("--allow-token-endpoint-audience and --no-allow-token-endpoint-audience exclude each other");
  if (opts["allow-token-endpoint-audience"]) changes.allow_token_endpoint_audience = true;
  if (opts["no-allow-token-endpoint-audience"]) changes.allow_token_endpoint_audience = false;
  return { ...changes, ...mutualTLSOptions(changes) };
}

/** RFC 8705: --tls-subject, --cert-file (self-signed certificates, as jwks with x5c), --[no-]certificate-bound. */
function mutualTLSOptions(changes: ClientChanges): ClientChanges {
  const mtls: ClientChanges = {};
  if (opts["tls-subject"] !== undefined) mtls.tls_client_auth_subject_dn = opts["tls-subject"];
  if (opts["cert-file"] !== undefined) {
    if (changes.jwks !== undefined || changes.jwks_uri !== undefined)
      throw new UsageError("--cert-file excludes --jwks-file and --jwks-uri");
    try {
      mtls.jwks = { keys: opts["cert-file"].map(certificateJWK) };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  if (opts["certificate-bound"] && opts["no-certificate-bound"])
    throw new UsageError("--certificate-bound and --no-certificate-bound exclude each other");
  if (opts["certificate-bound"]) mtls.tls_client_certificate_bound_access_tokens = true;
  if (opts["no-certificate-bound"]) mtls.tls_client_certificate_bound_access_tokens = false;
  return mtls;
}

/**
 * The federated identity the --federated-* options describe, over `current` (update): undefined when
 * none is given. Issuer and subject are required for a new one; each --federated-claim NAME=VALUE
 * is an exact-match condition (all of them replace the current ones).
 */
function federatedIdentityFromOptions(current: ClientRecord["federated_identity"]): ClientRecord["federated_identity"] {
  const claimsOption = opts["federated-claim"];
  const given = ["federated-issuer", "federated-subject", "federated-claim", "federated-audience"].filter(
    (name) => opts[name as keyof typeof opts] !== undefined,
  );
  if (given.length === 0) return undefined;
  const issuer = opts["federated-issuer"] ?? current?.issuer;
  const subject = opts["federated-subject"] ?? current?.subject;
  if (issuer === undefined || subject === undefined) {
    throw new UsageError("a federated client needs --federated-issuer URL and --federated-subject SUB");
  }
  let claims = current?.claims ?? {};
  if (claimsOption !== undefined) {
    // Object.fromEntries keeps every name as an own member ("__proto__" assigned would vanish), so the record rules see it.
    claims = Object.fromEntries(
      claimsOption.map((condition) => {
        const equals = condition.indexOf("=");
        if (equals < 1) throw new UsageError(`--federated-claim ${JSON.stringify(condition)} must be NAME=VALUE`);
        return [condition.slice(0, equals), condition.slice(equals + 1)];
      }),
    );
  }
  const audienceOption = opts["federated-audience"];
  const audience = audienceOption === undefined ? (current?.audience ?? null) : audienceOption === "default" ? null : audienceOption;
  return { issuer, subject, claims, audience };
}

/** A warning when `issuer` is not in TRUSTED_ISSUERS of the target environment's wrangler config. */
function warnUntrustedIssuer(issuer: string): void {
  const settings = readWranglerSettings(configPath(target.config), target.env);
  let trusted = false;
  try {
    trusted = findTrustedIssuer(parseTrustedIssuers(settings.trustedIssuers, String(settings.issuer ?? "")), issuer) !== undefined;
  } catch {
    // an invalid TRUSTED_ISSUERS: `tollgate doctor` says why
  }
  if (!trusted)
    process.stderr.write(
      `tollgate: warning: ${issuer} is not in TRUSTED_ISSUERS of the wrangler config${target.env ? ` [env.${target.env}]` : ""}; ` +
        "the client cannot authenticate until the Worker trusts it.\n",
    );
}

/** The client_id argument; `forNewClient`: also addressable at /register/{client_id} (not . or ..). */
function clientIdArg(forNewClient = false): string {
  const id = positionals[2];
  if (id === undefined) throw new UsageError("a client_id is required");
  // A client stored under . or .. before that rule can still be shown, changed and deleted here.
  if (!isWellFormedClientId(id))
    throw new UsageError(`client_id ${JSON.stringify(id)} must be 1-128 visible ASCII characters without spaces`);
  if (forNewClient && !isValidClientId(id))
    throw new UsageError(
      `client_id ${JSON.stringify(id)} is a URL dot segment (. or .., or either with %2e): /register/${id} could not reach it`,
    );
  return id;
}

function parseRecord(key: string, raw: string): ClientRecord {
  try {
    return validateClientRecord(JSON.parse(raw));
  } catch (error) {
    throw new ClientRecordError(`${key} in ${where}: ${(error as Error).message}`);
  }
}

async function readClient(id: string): Promise<ClientRecord> {
  const raw = await (await store()).get(clientKey(id));
  if (raw === null) throw new ClientRecordError(`no client ${JSON.stringify(id)} in ${where}`);
  return parseRecord(clientKey(id), raw);
}

/** Stores a new client; an existing one under that id is an error. */
async function writeNewClient(record: ClientRecord): Promise<void> {
  if ((await (await store()).get(clientKey(record.client_id))) !== null)
    throw new ClientRecordError(`client ${JSON.stringify(record.client_id)} already exists (use update or rotate-secret)`);
  await writeClient(record);
}

async function writeClient(record: ClientRecord): Promise<void> {
  await (await store()).put(clientKey(record.client_id), JSON.stringify(record));
}

/** Every client record, in id order; values are read a few at a time. */
async function readAllClients(): Promise<ClientRecord[]> {
  const kv = await store();
  const keys = await kv.list(CLIENT_KEY_PREFIX);
  const records: (ClientRecord | null)[] = new Array(keys.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const raw = await kv.get(keys[i]!);
      if (raw !== null) records[i] = parseRecord(keys[i]!, raw);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, keys.length) }, worker));
  return records.filter((r): r is ClientRecord => r !== null);
}

function print(value: Record<string, unknown>, human: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
}

function summary(record: ClientRecord): string {
  const entries = Object.entries(describeClient(record));
  // One column for the values, however long the record's longest field name.
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)} ${typeof v === "string" ? v : JSON.stringify(v)}`).join("\n");
}

type Command = () => Promise<void>;

const clientCommands: Record<string, Command> = {
  async create() {
    const id = clientIdArg(true);
    if (opts.scope === undefined) throw new UsageError('--scope "a b" is required (use --scope "" for none)');
    // The record is made (and checked) before storage is opened: bad input fails fast.
    const changes = changesFromOptions();
    const federated = federatedIdentityFromOptions(undefined);
    if (federated !== undefined) {
      // Workload identity federation: the assertion is the workload's platform token.
      changes.federated_identity = federated;
      changes.token_endpoint_auth_method ??= "private_key_jwt";
    }
    if (hasNoSecret({ token_endpoint_auth_method: changes.token_endpoint_auth_method })) {
      // RFC 7523 §2.2, RFC 8705 §2: the client's keys, platform token or certificate are its credentials; no secret is made or shown.
      const record = createKeyClientRecord(id, changes, now());
      if (federated !== undefined) warnUntrustedIssuer(federated.issuer);
      await writeNewClient(record);
      const how =
        federated !== undefined
          ? `the client presents its platform's token from ${federated.issuer} (README, "Workload identity federation").`
          : usesAssertion(record)
            ? "the client signs assertions with its private key."
            : "the client presents its TLS client certificate.";
      print(describeClient(record), `${summary(record)}\n\nNo secret: ${how}`);
      return;
    }
    const { record, clientSecret } = await createClientRecord(id, changes, now(), configuredIterations());
    await writeNewClient(record);
    print(
      { client_id: id, client_secret: clientSecret, ...describeClient(record) },
      `${summary(record)}\n\nclient_secret      ${clientSecret}\n\nThe secret is shown this once; only its PBKDF2 hash is stored.`,
    );
  },
  async list() {
    const records = await readAllClients();
    if (opts.json) process.stdout.write(`${JSON.stringify(records.map(describeClient), null, 2)}\n`);
    else if (records.length === 0) process.stdout.write("no clients\n");
    else
      for (const r of records)
        process.stdout.write(`${r.client_id}\t${r.disabled ? "disabled" : "enabled"}\t${r.allowed_scopes.join(" ")}\n`);
  },
  async show() {
    const record = await readClient(clientIdArg());
    print(describeClient(record), summary(record));
  },
  async update() {
    const id = clientIdArg();
    const changes = changesFromOptions();
    const current = await readClient(id);
    const federated = federatedIdentityFromOptions(current.federated_identity);
    if (federated !== undefined) {
      changes.federated_identity = federated;
      if (federated.issuer !== current.federated_identity?.issuer) warnUntrustedIssuer(federated.issuer);
    }
    const record = updateClientRecord(current, changes, now());
    await writeClient(record);
    print(describeClient(record), summary(record));
  },
  disable: () => setDisabled(true),
  enable: () => setDisabled(false),
  async delete() {
    const id = clientIdArg();
    await readClient(id);
    await (await store()).delete(clientKey(id));
    print({ client_id: id, deleted: true }, `${id} deleted`);
  },
  async "rotate-secret"() {
    const id = clientIdArg();
    const grace = opts.grace === undefined ? DEFAULT_SECRET_GRACE_SECONDS : wholeSeconds(opts.grace, "grace");
    const { record, clientSecret, secretId } = await rotateClientSecret(await readClient(id), grace, now(), configuredIterations());
    await writeClient(record);
    print(
      { client_id: record.client_id, client_secret: clientSecret, secret_id: secretId, ...describeClient(record) },
      `${summary(record)}\n\nclient_secret      ${clientSecret}\n\nShown this once. Older secrets stop working after ${grace} s.`,
    );
  },
  async "revoke-secret"() {
    const id = clientIdArg();
    const secretId = opts["secret-id"];
    if (!secretId) throw new UsageError("--secret-id is required (see clients show)");
    const record = revokeClientSecret(await readClient(id), secretId, now());
    await writeClient(record);
    print(describeClient(record), `secret ${secretId} of ${record.client_id} revoked`);
  },
};

async function setDisabled(disabled: boolean): Promise<void> {
  const record = updateClientRecord(await readClient(clientIdArg()), { disabled }, now());
  await writeClient(record);
  print(describeClient(record), `${record.client_id} ${disabled ? "disabled" : "enabled"}`);
}

/** MAX_ACCESS_TOKEN_TTL of the target environment in wrangler.toml (DEFAULT_MAX_ACCESS_TOKEN_TTL when unset). */
function configuredMaxAccessTokenTtl(): number {
  const raw = readWranglerSettings(configPath(target.config), target.env).maxAccessTokenTtl;
  const value = raw === undefined ? DEFAULT_MAX_ACCESS_TOKEN_TTL : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new UsageError(`MAX_ACCESS_TOKEN_TTL in the wrangler config is not whole seconds: ${JSON.stringify(raw)}`);
  return value;
}

/** PBKDF2_ITERATIONS of the target environment in wrangler.toml: new secrets are hashed as the Worker's admin API hashes them. */
function configuredIterations(): { iterations: number } {
  const raw = readWranglerSettings(configPath(target.config), target.env).pbkdf2Iterations;
  try {
    return { iterations: parsePBKDF2Iterations(raw) };
  } catch (error) {
    throw new UsageError(`in the wrangler config: ${(error as Error).message}`);
  }
}

/** `keys rotate`: writes KV keys:generation (docs/storage.md) per planRotation. */
async function rotateKeys(): Promise<void> {
  const inSeconds = opts.in === undefined ? DEFAULT_ROTATE_IN_SECONDS : wholeSeconds(opts.in, "in");
  const maxAccessTokenTtl = configuredMaxAccessTokenTtl();
  const kv = await store();
  const raw = await kv.get(GENERATION_KEY);
  const current = raw === null ? null : parseGenerationRecord(raw);
  // `since` counts from the Worker's clock, not this machine's (cli/clock.ts).
  const clock = await rotationTime(target.remote);
  if (clock.warning) process.stderr.write(`tollgate: ${clock.warning}\n`);
  const { record, note } = planRotation(current, clock.now, { inSeconds, maxAccessTokenTtl, force: opts.force });
  validateGenerationRecord(record);
  await kv.put(GENERATION_KEY, JSON.stringify(record));
  const retained = record.since + generationRetention(maxAccessTokenTtl);
  print(
    { ...record, previous_published_until: retained },
    `${note}.\nGeneration ${record.generation - 1} stays published until ${new Date(retained * 1000).toISOString()} for the tokens it signed.\n` +
      `Every isolate reads ${GENERATION_KEY} within about ${GENERATION_PROPAGATION_SECONDS} s.`,
  );
}

function showValue(value: unknown): string {
  return value === null ? "(default)" : JSON.stringify(value);
}

function planLines(changes: FieldChange[], sign: "+" | "~"): string[] {
  return changes.map(
    ({ field, from, to }) => `      ${field.padEnd(18)} ${sign === "+" ? showValue(to) : `${showValue(from)} → ${showValue(to)}`}`,
  );
}

/** Opens --secrets-out before anything is written, so a bad path fails before any change. */
function openSecretsOut(path: string): number {
  try {
    return openSync(path, "wx", 0o600);
  } catch (error) {
    const { code } = error as { code?: string };
    throw new UsageError(
      code === "EEXIST"
        ? `--secrets-out ${path} exists: choose a new file (it would hold the only copy of the new secrets)`
        : `--secrets-out ${path}: ${(error as Error).message}`,
    );
  }
}

/** `apply -f FILE`: plan, then make the registry match the file (cli/clients-file.ts). */
async function applyFile(): Promise<void> {
  const file = opts.file ?? positionals[1];
  if (!file) throw new UsageError("apply needs -f FILE");
  const { readTOMLFile } = await import("./toml.ts");
  const specs = parseClientsFile(readTOMLFile(file), file);
  const secretsFd = opts["secrets-out"] !== undefined && !opts["dry-run"] ? openSecretsOut(opts["secrets-out"]) : undefined;
  const created: { client_id: string; client_secret: string }[] = [];
  try {
    const at = now();
    const current = new Map((await readAllClients()).map((r) => [r.client_id, r]));
    const creates = [...specs].filter(([id]) => !current.has(id));
    const updates = [...specs]
      .filter(([id]) => current.has(id))
      .map(([id, spec]) => {
        const next = updateClientRecord(current.get(id)!, changesOf(id, spec), at);
        return { next, changes: diffRecords(current.get(id)!, next) };
      })
      .filter((u) => u.changes.length > 0);
    const unlisted = [...current.keys()].filter((id) => !specs.has(id));
    const deletes = opts.prune ? unlisted : [];

    const lines = [
      `Plan: ${file} → ${target.remote ? `remote namespace${target.env ? ` (env ${target.env})` : ""}` : `local state ${localStateDir(target)}`}`,
    ];
    for (const [id, spec] of creates) lines.push(`  + create ${id}`, ...planLines(creationFields(id, spec), "+"));
    for (const { next, changes } of updates) lines.push(`  ~ update ${next.client_id}`, ...planLines(changes, "~"));
    for (const id of deletes) lines.push(`  - delete ${id}`);
    if (creates.length + updates.length + deletes.length === 0) lines.push("  No changes: the registry matches the file.");
    else lines.push(`  ${creates.length} to create, ${updates.length} to update, ${deletes.length} to delete.`);
    if (!opts.prune && unlisted.length > 0)
      lines.push(
        `  (${unlisted.length} client${unlisted.length === 1 ? "" : "s"} not in the file, left as they are: ${unlisted.join(", ")}; --prune deletes them)`,
      );
    if (opts["dry-run"]) lines.push("  Dry run: nothing written.");
    process.stderr.write(`${lines.join("\n")}\n`);
    if (opts["dry-run"] || creates.length + updates.length + deletes.length === 0) return;

    const kv = await store();
    for (const [id, spec] of creates) {
      if (hasNoSecret(spec)) {
        // No secret to hand over: the client's keys (or its certificate's subject) are in the file.
        await kv.put(clientKey(id), JSON.stringify(createKeyClientRecord(id, changesOf(id, spec), at)));
        continue;
      }
      const { record, clientSecret } = await createClientRecord(id, changesOf(id, spec), at, configuredIterations());
      await kv.put(clientKey(id), JSON.stringify(record));
      created.push({ client_id: id, client_secret: clientSecret });
    }
    for (const { next } of updates) await kv.put(clientKey(next.client_id), JSON.stringify(next));
    for (const id of deletes) await kv.delete(clientKey(id));
    process.stderr.write("Applied.\n");
  } finally {
    // Even after a failure part-way, the secrets of clients already written are handed over.
    const json = `${JSON.stringify(created, null, 2)}\n`;
    if (secretsFd !== undefined) {
      if (created.length > 0) writeSync(secretsFd, json);
      closeSync(secretsFd);
      // No new secret: no file, so the same --secrets-out works on the next apply.
      if (created.length === 0) unlinkSync(opts["secrets-out"]!);
      else
        process.stderr.write(
          `${created.length} new secret${created.length === 1 ? "" : "s"} written to ${opts["secrets-out"]} (mode 0600).\n`,
        );
    } else if (created.length > 0) process.stdout.write(json);
  }
}

/** `export`: the registry as a clients file on stdout. */
async function exportFile(): Promise<void> {
  process.stdout.write(formatClientsFile(await readAllClients()));
}

/** Commands by "group sub" (or "group"); each reads its own options. */
const COMMANDS: Record<string, Command> = {
  ...Object.fromEntries(Object.entries(clientCommands).map(([sub, run]) => [`clients ${sub}`, run])),
  apply: applyFile,
  export: exportFile,
  "keys seed": async () => {
    const { generateKeySeed } = await import("../src/keys/new-key-pair.ts");
    process.stdout.write(`${generateKeySeed()}\n`);
  },
  "keys rotate": rotateKeys,
  async doctor() {
    const { doctor } = await import("./doctor.ts");
    process.exitCode = await doctor({ env: opts.env, config: opts.config });
  },
  "keys generate": async () => {
    const { generateSigningKey } = await import("../src/keys/new-key-pair.ts");
    process.stdout.write(`${JSON.stringify(await generateSigningKey())}\n`);
  },
};

async function main(): Promise<void> {
  const [group, sub] = positionals;
  if (opts.help || group === undefined || group === "help") {
    process.stdout.write(USAGE);
    return;
  }
  if (opts.remote && opts.local) throw new UsageError("--remote and --local exclude each other");
  const command = COMMANDS[`${group} ${sub}`] ?? COMMANDS[group];
  if (!command) {
    if (group === "clients") throw new UsageError(sub ? `unknown clients command ${JSON.stringify(sub)}` : "clients needs a command");
    throw new UsageError(`unknown command ${JSON.stringify(positionals.join(" "))}`);
  }
  try {
    await command();
  } finally {
    if (openedStore) await (await openedStore).close();
  }
}

const OPERATOR_ERRORS = new Set([
  "ClientRecordError",
  "GenerationRecordError",
  "ClientsFileError",
  "ConfigError",
  "TOMLError",
  "CloudflareAPIError",
]);

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`tollgate: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  // Errors that explain themselves (bad records, files, config, API answers): the message, no stack.
  if (error instanceof Error && OPERATOR_ERRORS.has(error.name)) {
    process.stderr.write(`tollgate: ${(error as Error).message}\n`);
    process.exit(1);
  }
  throw error;
});
