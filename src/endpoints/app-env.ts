/**
 * The Hono environment of every endpoint: the Worker's bindings, and what a request learns on its
 * way (its audit context, the events a refusal is logged as, the access token requireAccessToken verified).
 */
import type { Context, MiddlewareHandler } from "hono";
import type { AuditContext, RefusalEvents } from "../http/request-context.ts";
import type { AccessTokenClaims } from "../tokens/mint.ts";
import type { GatewayRoute } from "../gateway/route-table.ts";

export type AppEnv = {
  Bindings: Env;
  Variables: {
    audit?: AuditContext;
    refusal?: RefusalEvents;
    accessToken?: AccessTokenClaims;
    /** The gateway's route for this request and its normalized path (src/endpoints/gateway.ts). */
    gatewayRoute?: { route: GatewayRoute; path: string; url: URL };
  };
};

/** The request's audit context, created on first use. */
export function auditOf(c: Context<AppEnv>): AuditContext {
  let audit = c.get("audit");
  if (!audit) {
    audit = {};
    c.set("audit", audit);
  }
  return audit;
}

/** Middleware: what this endpoint's refusals are logged as (src/index.ts's onError). */
export function refusalEvents(events: RefusalEvents): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("refusal", { ...c.get("refusal"), ...events });
    await next();
  };
}
