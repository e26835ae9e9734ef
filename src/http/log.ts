/** A structured log line, one JSON object per event; callers pass no secrets and no whole tokens. */
export function logEvent(event: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ event, ...fields }));
}
