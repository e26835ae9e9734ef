/**
 * Single use of client assertions across the whole network: each `jti` is accepted once until the
 * assertion expires, at every location. Workers KV cannot say so (it is eventually consistent: two
 * locations could both read "unused"), so one Durable Object per client id holds the `jti`s it has
 * seen, answering "first" or "replay" in one round trip. SQLite-backed, so it runs on Workers Free.
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-3 (item 7: jti, single use)
 */
import { DurableObject } from "cloudflare:workers";
import { OAuthError } from "../http/errors.ts";
import { encodeBase64Url } from "../clients/secret.ts";

/** What the guard answers: only "first" accepts the assertion. */
export type JtiUse = "first" | "replay" | "expired";

/** How long the Worker waits for the guard before it answers 503 (fail closed). */
export const JTI_GUARD_TIMEOUT_MS = 3000;

/** How often, at most, an object with entries wakes to drop the expired ones. */
const SWEEP_SECONDS = 60;

/**
 * One client's used `jti`s (as SHA-256, base64url) with the second until which each must stay
 * refused. One SQL statement per assertion; an entry past its second blocks nothing (a later insert
 * of that digest takes it over) and is deleted by the alarm, which runs at most once a minute while
 * entries remain, so an idle object empties itself.
 */
export class JtiGuard extends DurableObject<Env> {
  /** Whether an alarm is known to be set; undefined until asked (a new instance after eviction). */
  #alarmSet: boolean | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS used (jti TEXT PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID");
  }

  /**
   * "first" the first time `jtiHash` is presented before `until` (epoch seconds), "replay" after;
   * "expired" once `until` has passed by this object's clock, whatever the Worker's: the Worker read
   * its clock before its KV read, a jwks_uri fetch and this call, so a replay sent in an assertion's
   * last second could otherwise arrive here after the entry expired and take it over.
   */
  async use(jtiHash: string, until: number): Promise<JtiUse> {
    const now = Math.floor(Date.now() / 1000);
    if (until <= now) return "expired";
    const written = this.ctx.storage.sql.exec(
      "INSERT INTO used (jti, until) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE SET until = excluded.until WHERE used.until <= ?",
      jtiHash,
      until,
      now,
    ).rowsWritten;
    if (written === 0) return "replay";
    this.#alarmSet ??= (await this.ctx.storage.getAlarm()) !== null;
    if (!this.#alarmSet) {
      await this.ctx.storage.setAlarm(Math.max(until + 1, now + SWEEP_SECONDS) * 1000);
      this.#alarmSet = true;
    }
    return "first";
  }

  override async alarm(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM used WHERE until <= ?", now);
    const next = sql.exec<{ until: number | null }>("SELECT MIN(until) AS until FROM used").one().until;
    this.#alarmSet = next !== null;
    if (next !== null) await this.ctx.storage.setAlarm(Math.max(next + 1, now + SWEEP_SECONDS) * 1000);
  }
}

async function sha256(text: string): Promise<string> {
  return encodeBase64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

/**
 * Asks the client's guard whether `jti` is used for the first time, keeping it until `until` (epoch
 * seconds). The guard unreachable, failing or slower than JTI_GUARD_TIMEOUT_MS: 503
 * temporarily_unavailable, never an acceptance (fail closed), and not counted as a failed
 * authentication, since the assertion itself was valid.
 */
export async function useJtiOnce(guards: DurableObjectNamespace<JtiGuard>, clientId: string, jti: string, until: number): Promise<JtiUse> {
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
