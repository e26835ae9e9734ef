#!/usr/bin/env node
/**
 * `tollgate`: manage clients and signing keys, locally (the state `npm start` uses) or on a
 * deployed namespace (--remote [--env NAME]). Same record rules and hashing as the Worker.
 */
import { parseArgs } from "node:util";
import { CLIENT_KEY_PREFIX, ClientRecordError, clientKey, describeClient, isValidAudience, isValidClientId, isWellFormedClientId, validateClientRecord, type ClientRecord } from "../src/clients/record.ts";
import { createClientRecord, DEFAULT_SECRET_GRACE_SECONDS, revokeClientSecret, rotateClientSecret, updateClientRecord, type ClientChanges } from "../src/clients/manage.ts";
import { generateKeySeed, generateSigningKey } from "../src/keys/generate.ts";
import { GENERATION_KEY, GenerationRecordError, parseGenerationRecord, planRotation, validateGenerationRecord } from "../src/keys/generation.ts";
import { DEFAULT_ROTATE_IN_SECONDS, GENERATION_PROPAGATION_SECONDS, generationRetention } from "../src/keys/schedule.ts";
import { rotationTime } from "./clock.ts";
import { kvDelete, kvGet, kvList, kvPut, PROJECT_ROOT, WranglerError, type KVTarget } from "./kv.ts";

const USAGE = `Usage: tollgate <command> [options]

Clients:
  clients create <client_id> --scope "a b" [--default-scope "a"] [--audience URI ...]
                 [--default-audience URI] [--ttl SECONDS] [--name TEXT] [--introspect-any] [--json]
  clients list [--json]
  clients show <client_id> [--json]
  clients update <client_id> [--scope ...] [--default-scope ...] [--audience URI ...]
                 [--default-audience URI] [--ttl SECONDS|default] [--name TEXT]
                 [--introspect-any | --no-introspect-any]
                 --introspect-any: the client may introspect every client's tokens (POST /introspect)
  clients disable <client_id>        clients enable <client_id>
  clients delete <client_id>
  clients rotate-secret <client_id> [--grace SECONDS]   (old secrets work for 86400 s by default)
  clients revoke-secret <client_id> --secret-id ID   (also ends every token issued so far)

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

Where (clients, keys rotate):
  (default)                          local state used by \`npm start\` (.wrangler/state)
  --persist-to DIR                   another local state directory
  --remote [--env NAME]              the deployed KV namespace, through wrangler
  --config PATH                      another wrangler.toml
`;

class UsageError extends Error {}

const { values: opts, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
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
        json: { type: "boolean", default: false },
        remote: { type: "boolean", default: false },
        local: { type: "boolean", default: false },
        env: { type: "string" },
        "persist-to": { type: "string" },
        config: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`tollgate: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
})();

const target: KVTarget = {
  remote: opts.remote,
  env: opts.env,
  persistTo: opts["persist-to"] ?? process.env.TOLLGATE_PERSIST_TO,
  config: opts.config,
};
const now = () => Math.floor(Date.now() / 1000);

function wholeSeconds(value: string, option: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${option} must be whole seconds, got ${JSON.stringify(value)}`);
  return Number(value);
}

function changesFromOptions(): ClientChanges {
  const changes: ClientChanges = {};
  if (opts.name !== undefined) changes.name = opts.name;
  if (opts.scope !== undefined) changes.scope = opts.scope;
  if (opts["default-scope"] !== undefined) changes.default_scope = opts["default-scope"];
  if (opts.audience !== undefined) {
    for (const a of opts.audience) if (!isValidAudience(a)) throw new UsageError(`--audience ${JSON.stringify(a)} is not an absolute URI without fragment`);
    changes.audiences = opts.audience;
  }
  if (opts["default-audience"] !== undefined) {
    // The shared rules add it to the allowed audiences if it is not there yet.
    changes.default_audience = opts["default-audience"];
  }
  if (opts.ttl !== undefined) changes.token_ttl = opts.ttl === "default" ? null : wholeSeconds(opts.ttl, "ttl");
  if (opts["introspect-any"] && opts["no-introspect-any"]) throw new UsageError("--introspect-any and --no-introspect-any exclude each other");
  if (opts["introspect-any"]) changes.introspect_any = true;
  if (opts["no-introspect-any"]) changes.introspect_any = false;
  return changes;
}

/** The client_id argument; `forNewClient`: also addressable at /register/{client_id} (not . or ..). */
function clientIdArg(forNewClient = false): string {
  const id = positionals[2];
  if (id === undefined) throw new UsageError("a client_id is required");
  // A client stored under . or .. before that rule can still be shown, changed and deleted here.
  if (!isWellFormedClientId(id)) throw new UsageError(`client_id ${JSON.stringify(id)} must be 1-128 visible ASCII characters without spaces`);
  if (forNewClient && !isValidClientId(id)) throw new UsageError(`client_id ${JSON.stringify(id)} is a URL dot segment (. or .., or either with %2e): /register/${id} could not reach it`);
  return id;
}

async function readClient(id: string): Promise<ClientRecord> {
  const raw = await kvGet(clientKey(id), target);
  if (raw === null) throw new ClientRecordError(`no client ${JSON.stringify(id)}${target.remote ? " in the remote namespace" : " in the local state"}`);
  return validateClientRecord(JSON.parse(raw));
}

async function writeClient(record: ClientRecord): Promise<void> {
  await kvPut(clientKey(record.client_id), JSON.stringify(record), target);
}

function print(value: Record<string, unknown>, human: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
}

function summary(record: ClientRecord): string {
  const d = describeClient(record);
  return Object.entries(d)
    .map(([k, v]) => `${k.padEnd(18)} ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("\n");
}

async function clients(sub: string | undefined): Promise<void> {
  switch (sub) {
    case "create": {
      const id = clientIdArg(true);
      if (opts.scope === undefined) throw new UsageError('--scope "a b" is required (use --scope "" for none)');
      if ((await kvGet(clientKey(id), target)) !== null) throw new ClientRecordError(`client ${JSON.stringify(id)} already exists (use update or rotate-secret)`);
      const { record, clientSecret } = await createClientRecord(id, changesFromOptions(), now());
      await writeClient(record);
      print(
        { client_id: id, client_secret: clientSecret, ...describeClient(record) },
        `${summary(record)}\n\nclient_secret      ${clientSecret}\n\nThe secret is shown this once; only its PBKDF2 hash is stored.`,
      );
      return;
    }
    case "list": {
      const keys = await kvList(CLIENT_KEY_PREFIX, target);
      const records: ClientRecord[] = [];
      for (const key of keys) {
        const raw = await kvGet(key, target);
        if (raw !== null) records.push(validateClientRecord(JSON.parse(raw)));
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(records.map(describeClient), null, 2)}\n`);
      else if (records.length === 0) process.stdout.write("no clients\n");
      else for (const r of records) process.stdout.write(`${r.client_id}\t${r.disabled ? "disabled" : "enabled"}\t${r.allowed_scopes.join(" ")}\n`);
      return;
    }
    case "show": {
      const record = await readClient(clientIdArg());
      print(describeClient(record), summary(record));
      return;
    }
    case "update": {
      const record = updateClientRecord(await readClient(clientIdArg()), changesFromOptions(), now());
      await writeClient(record);
      print(describeClient(record), summary(record));
      return;
    }
    case "disable":
    case "enable": {
      const record = updateClientRecord(await readClient(clientIdArg()), { disabled: sub === "disable" }, now());
      await writeClient(record);
      print(describeClient(record), `${record.client_id} ${sub}d`);
      return;
    }
    case "delete": {
      const id = clientIdArg();
      await readClient(id);
      await kvDelete(clientKey(id), target);
      print({ client_id: id, deleted: true }, `${id} deleted`);
      return;
    }
    case "rotate-secret": {
      const grace = opts.grace === undefined ? DEFAULT_SECRET_GRACE_SECONDS : wholeSeconds(opts.grace, "grace");
      const { record, clientSecret, secretId } = await rotateClientSecret(await readClient(clientIdArg()), grace, now());
      await writeClient(record);
      print(
        { client_id: record.client_id, client_secret: clientSecret, secret_id: secretId, ...describeClient(record) },
        `${summary(record)}\n\nclient_secret      ${clientSecret}\n\nShown this once. Older secrets stop working after ${grace} s.`,
      );
      return;
    }
    case "revoke-secret": {
      const secretId = opts["secret-id"];
      if (!secretId) throw new UsageError("--secret-id is required (see clients show)");
      const record = revokeClientSecret(await readClient(clientIdArg()), secretId, now());
      await writeClient(record);
      print(describeClient(record), `secret ${secretId} of ${record.client_id} revoked`);
      return;
    }
    default:
      throw new UsageError(sub ? `unknown clients command ${JSON.stringify(sub)}` : "clients needs a command");
  }
}

/** MAX_ACCESS_TOKEN_TTL of the target environment in wrangler.toml (3600 when unset). */
async function configuredMaxAccessTokenTtl(): Promise<number> {
  const { unstable_readConfig } = await import("wrangler");
  const config = unstable_readConfig({ config: target.config ?? `${PROJECT_ROOT}/wrangler.toml`, env: target.env });
  const raw = (config.vars as Record<string, unknown>).MAX_ACCESS_TOKEN_TTL;
  const value = raw === undefined ? 3600 : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new UsageError(`MAX_ACCESS_TOKEN_TTL in the wrangler config is not whole seconds: ${JSON.stringify(raw)}`);
  return value;
}

/** `keys rotate`: writes KV keys:generation (docs/storage.md) per planRotation. */
async function rotateKeys(): Promise<void> {
  const inSeconds = opts.in === undefined ? DEFAULT_ROTATE_IN_SECONDS : wholeSeconds(opts.in, "in");
  const raw = await kvGet(GENERATION_KEY, target);
  const current = raw === null ? null : parseGenerationRecord(raw);
  const maxAccessTokenTtl = await configuredMaxAccessTokenTtl();
  // `since` counts from the Worker's clock, not this machine's (cli/clock.ts).
  const clock = await rotationTime(target.remote);
  if (clock.warning) process.stderr.write(`tollgate: ${clock.warning}\n`);
  const { record, note } = planRotation(current, clock.now, { inSeconds, maxAccessTokenTtl, force: opts.force });
  validateGenerationRecord(record);
  await kvPut(GENERATION_KEY, JSON.stringify(record), target);
  const retained = record.since + generationRetention(maxAccessTokenTtl);
  print(
    { ...record, previous_published_until: retained },
    `${note}.\nGeneration ${record.generation - 1} stays published until ${new Date(retained * 1000).toISOString()} for the tokens it signed.\n` +
      `Every isolate reads ${GENERATION_KEY} within about ${GENERATION_PROPAGATION_SECONDS} s.`,
  );
}

async function main(): Promise<void> {
  const [group, sub] = positionals;
  if (opts.help || group === undefined || group === "help") {
    process.stdout.write(USAGE);
    return;
  }
  if (opts.remote && opts.local) throw new UsageError("--remote and --local exclude each other");
  if (group === "clients") return clients(sub);
  if (group === "doctor") {
    const { doctor } = await import("./doctor.ts");
    process.exitCode = await doctor({ env: opts.env, config: opts.config });
    return;
  }
  if (group === "keys" && sub === "seed") {
    process.stdout.write(`${generateKeySeed()}\n`);
    return;
  }
  if (group === "keys" && sub === "rotate") return rotateKeys();
  if (group === "keys" && sub === "generate") {
    process.stdout.write(`${JSON.stringify(await generateSigningKey())}\n`);
    return;
  }
  throw new UsageError(`unknown command ${JSON.stringify(positionals.join(" "))}`);
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`tollgate: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (error instanceof ClientRecordError || error instanceof GenerationRecordError || error instanceof WranglerError) {
    process.stderr.write(`tollgate: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
});
