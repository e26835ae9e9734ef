/**
 * Audit and metrics: one JSON log line per token issued or refused, revocation and gateway denial
 * (client_id, scope, jti, reason, route; never a secret or a whole token), and per-client counters
 * in Workers Analytics Engine when a METRICS dataset is bound (none bound: no metrics, no error).
 * @see https://developers.cloudflare.com/analytics/analytics-engine/
 */
import { logEvent } from "./log.ts";
import type { AuditContext } from "./request-context.ts";

/**
 * One data point per event: index = client_id (Analytics Engine samples per index), blobs =
 * [event, client_id, route, error], doubles = [1]. Query with SUM(_sample_interval * double1).
 */
export function countEvent(env: Env, event: string, fields: AuditContext & { error?: string }): void {
  const metrics = env.METRICS;
  if (!metrics) return;
  const clientId = fields.client_id ?? "";
  metrics.writeDataPoint({
    // Indexes hold at most 96 bytes; client ids are at most 128 ASCII characters.
    indexes: [clientId.slice(0, 96)],
    blobs: [event, clientId, fields.route ?? "", fields.error ?? ""],
    doubles: [1],
  });
}

/** The log line and the counter for one auditable event. */
export function auditEvent(env: Env, event: string, fields: AuditContext & Record<string, unknown>): void {
  logEvent(event, fields);
  if (env.METRICS) countEvent(env, event, { ...fields, error: typeof fields.error === "string" ? fields.error : undefined });
}
