/**
 * DPoP proofs for the bench (RFC 9449 §4.2), signed ahead of use in this process (the load
 * generator's CPU, never the server's): every request needs a proof of its own (the Worker refuses a
 * replayed jti) no older than DPOP_PROOF_MAX_AGE_SECONDS, so a pool per request target is topped up
 * in the background and proofs close to that age are dropped unused.
 */
import { base64url, CompactSign, exportJWK, generateKeyPair } from "jose";
import { DPOP_PROOF_MAX_AGE_SECONDS } from "../src/policy.ts";

const encoder = new TextEncoder();

/** Proofs older than this are dropped: well inside the Worker's window, whatever the clocks. */
const MAX_AGE_SECONDS = DPOP_PROOF_MAX_AGE_SECONDS / 2;

export interface ProofPool {
  /** A fresh proof never handed out before; throws when the pool ran dry (a case outran the refill). */
  take(): string;
  /** Stops the background signing. */
  stop(): void;
}

/** An ES256 key pair and its public JWK, as a DPoP client holds them. */
export async function dpopKey(): Promise<{ privateKey: CryptoKey; jwk: Record<string, unknown> }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)) } };
}

/** One proof for `htm` `htu` (and `ath` of `accessToken`), signed now. */
export async function signProof(
  key: { privateKey: CryptoKey; jwk: Record<string, unknown> },
  htm: string,
  htu: string,
  ath?: string,
): Promise<string> {
  const claims = { jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000), ...(ath && { ath }) };
  return new CompactSign(encoder.encode(JSON.stringify(claims)))
    .setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk: key.jwk })
    .sign(key.privateKey);
}

/** base64url(SHA-256(token)): the `ath` of a proof sent with `token`. */
export async function athOf(token: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token))));
}

/**
 * A pool of proofs for one request target, kept at `size` by signing in batches every 100 ms; filled
 * once before it is returned.
 */
export async function proofPool(
  key: { privateKey: CryptoKey; jwk: Record<string, unknown> },
  htm: string,
  htu: string,
  accessToken: string | undefined,
  size: number,
): Promise<ProofPool> {
  const ath = accessToken === undefined ? undefined : await athOf(accessToken);
  let proofs: { proof: string; at: number }[] = [];
  let busy = false;
  const refill = async (limit: number) => {
    if (busy) return;
    busy = true;
    const now = Date.now();
    proofs = proofs.filter((p) => now - p.at < MAX_AGE_SECONDS * 1000);
    const batch: Promise<string>[] = [];
    for (let i = proofs.length; i < size && batch.length < limit; i++) batch.push(signProof(key, htm, htu, ath));
    for (const proof of await Promise.all(batch)) proofs.push({ proof, at: now });
    busy = false;
  };
  await refill(size);
  const timer = setInterval(() => void refill(2000), 100);
  return {
    take() {
      const next = proofs.shift();
      if (!next) throw new Error(`the proof pool for ${htm} ${htu} ran dry: raise its size`);
      return next.proof;
    },
    stop: () => clearInterval(timer),
  };
}
