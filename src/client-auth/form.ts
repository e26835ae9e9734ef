/**
 * Reads a token-endpoint request's parameters: form body only, size-capped before parsing,
 * each parameter at most once.
 */
import { readBodyCapped } from "../http/body.ts";
import { OAuthError } from "../http/errors.ts";

/** Largest body /token reads; a client-credentials request is a few hundred bytes. */
export const MAX_TOKEN_BODY_BYTES = 8 * 1024;

/** RFC 8707 §2: `resource` may be repeated; every other parameter may not (RFC 6749 §3.2). */
const REPEATABLE = new Set(["resource"]);

export interface TokenForm {
  get(name: string): string | undefined;
  getAll(name: string): string[];
}

/** Strict UTF-8 for bodies and Basic credentials; decode() without `stream` starts afresh each call, so one decoder serves all. */
export const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

async function readBody(request: Request): Promise<string> {
  const body = await readBodyCapped(request, MAX_TOKEN_BODY_BYTES);
  if (!body) throw new OAuthError("invalid_request", `the request body exceeds ${MAX_TOKEN_BODY_BYTES} bytes`, { status: 413 });
  try {
    return utf8.decode(body);
  } catch {
    throw new OAuthError("invalid_request", "the request body is not UTF-8");
  }
}

/**
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.2 (POST, form-encoded, no repeats)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.1 (a parameter without a value is omitted)
 */
export async function readTokenForm(request: Request): Promise<TokenForm> {
  // Credentials or parameters in the URL end up in logs and caches: refuse them all.
  // request.url is serialized by the runtime and never has a fragment: a query is text after "?".
  const query = request.url.indexOf("?");
  if (query >= 0 && query < request.url.length - 1) {
    throw new OAuthError("invalid_request", "parameters must be sent in the request body, not the query string");
  }
  const contentType = request.headers.get("Content-Type") ?? "";
  const [mediaType, ...mediaParams] = contentType.split(";").map((part) => part.trim().toLowerCase());
  if (mediaType !== "application/x-www-form-urlencoded") {
    throw new OAuthError("invalid_request", "the request body must be application/x-www-form-urlencoded");
  }
  const charset = mediaParams
    .find((p) => p.startsWith("charset="))
    ?.slice(8)
    .replace(/"/g, "");
  if (charset !== undefined && charset !== "utf-8") {
    throw new OAuthError("invalid_request", "the request body must be UTF-8");
  }
  const body = await readBody(request);
  const values = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (value === "") continue;
    const list = values.get(name);
    if (!list) values.set(name, [value]);
    else if (REPEATABLE.has(name)) list.push(value);
    else throw new OAuthError("invalid_request", `the ${name} parameter must not be repeated`);
  }
  return {
    get: (name) => values.get(name)?.[0],
    getAll: (name) => values.get(name) ?? [],
  };
}
