/**
 * Reads a token-endpoint request's parameters: form body only, size-capped before parsing,
 * each parameter at most once.
 */
import { OAuthError } from "../errors.ts";

/** Largest body /token reads; a client-credentials request is a few hundred bytes. */
export const MAX_TOKEN_BODY_BYTES = 8 * 1024;

/** RFC 8707 §2: `resource` may be repeated; every other parameter may not (RFC 6749 §3.2). */
const REPEATABLE = new Set(["resource"]);

export interface TokenForm {
  get(name: string): string | undefined;
  getAll(name: string): string[];
}

async function readCapped(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && !(Number(declared) <= limit)) throw tooLarge();
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw new OAuthError("invalid_request", "the request body is not UTF-8");
  }
}

function tooLarge(): OAuthError {
  return new OAuthError("invalid_request", `the request body exceeds ${MAX_TOKEN_BODY_BYTES} bytes`, { status: 413 });
}

/**
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.2 (POST, form-encoded, no repeats)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.1 (a parameter without a value is omitted)
 */
export async function readTokenForm(request: Request): Promise<TokenForm> {
  // Credentials or parameters in the URL end up in logs and caches: refuse them all.
  if (new URL(request.url).search.length > 1) {
    throw new OAuthError("invalid_request", "parameters must be sent in the request body, not the query string");
  }
  const contentType = request.headers.get("Content-Type") ?? "";
  const [mediaType, ...mediaParams] = contentType.split(";").map((part) => part.trim().toLowerCase());
  if (mediaType !== "application/x-www-form-urlencoded") {
    throw new OAuthError("invalid_request", "the request body must be application/x-www-form-urlencoded");
  }
  const charset = mediaParams.find((p) => p.startsWith("charset="))?.slice(8).replace(/"/g, "");
  if (charset !== undefined && charset !== "utf-8") {
    throw new OAuthError("invalid_request", "the request body must be UTF-8");
  }
  const body = await readCapped(request, MAX_TOKEN_BODY_BYTES);
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
