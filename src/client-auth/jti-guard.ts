/**
 * Single use of client assertions across the whole network: each `jti` is accepted once until the
 * assertion expires, at every location. Workers KV cannot say so (it is eventually consistent: two
 * locations could both read "unused"), so one Durable Object per client id holds the `jti`s it has
 * seen, answering "first" or "replay" in one round trip. SQLite-backed, so it runs on Workers Free.
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-3 (item 7: jti, single use)
 */
import { DurableObject } from "cloudflare:workers";
import { OAuthError } from "../http/errors.ts";

/** How long the Worker waits for the guard before it answers 503 (fail closed). */
export const JTI_GUARD_TIMEOUT_MS = 3000;

/** Longest `jti` accepted (it is stored only as a SHA-256). */
export const MAX_JTI_LENGTH = 256;

/**
 * One client's used `jti`s (as SHA-256, base64url) with the second until which each must stay
 * refused. An entry is dropped once that second has passed: on every write, and by an alarm, so an
 * idle object empties itself.
 */
export class JtiGuard extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS used (jti TEXT PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID");
  }

  /** "first" the first time `jtiHash` is presented before `until` (epoch seconds), "replay" after. */
  async use(jtiHash: string, until: number): Promise<"first" | "replay"> {
    const now = Math.floor(Date.now() / 1000);
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM used WHERE until <= ?", now);
    const inserted = sql.exec("INSERT INTO used (jti, until) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING", jtiHash, until).rowsWritten;
    if (inserted === 0) return "replay";
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm((until + 1) * 1000);
    return "first";
  }

  override async alarm(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM used WHERE until <= ?", now);
    const next = sql.exec<{ until: number | null }>("SELECT MIN(until) AS until FROM used").one().until;
    if (next !== null) await this.ctx.storage.setAlarm((next + 1) * 1000);
  }
}

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...digest))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * Asks the client's guard whether `jti` is used for the first time, keeping it until `until` (epoch
 * seconds). The guard unreachable, failing or slower than JTI_GUARD_TIMEOUT_MS: 503
 * temporarily_unavailable, never an acceptance (fail closed), and not counted as a failed
 * authentication, since the assertion itself was valid.
 */
export async function useJtiOnce(
  guards: DurableObjectNamespace<JtiGuard>,
  clientId: string,
  jti: string,
  until: number,
): Promise<"first" | "replay"> {
  const hash = await sha256(jti);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const stub = guards.get(guards.idFromName(clientId));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${JTI_GUARD_TIMEOUT_MS} ms`)), JTI_GUARD_TIMEOUT_MS);
    });
    return await Promise.race([stub.use(hash, until), timeout]);
  } catch (error) {
    throw new OAuthError("temporarily_unavailable", "client assertions cannot be checked right now, try again later", {
      reason: `jti guard for ${JSON.stringify(clientId)} failed: ${(error as Error).message}`,
    });
  } finally {
    clearTimeout(timer);
  }
}
