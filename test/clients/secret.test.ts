import { describe, expect, it } from "vitest";
import {
  decodeBase64Url,
  DUMMY_SECRET_HASH,
  encodeBase64Url,
  generateClientSecret,
  hashClientSecret,
  MAX_PBKDF2_ITERATIONS,
  parseSecretHash,
  PBKDF2_ITERATIONS,
  secretIdOf,
  timingSafeEqual,
  verifyClientSecret,
} from "../../src/clients/secret.ts";

const HASH_FORMAT = /^pbkdf2-sha256\$100000\$([A-Za-z0-9_-]{22})\$([A-Za-z0-9_-]{43})$/;

/** A stored hash whose iteration count was rewritten (the salt and hash stay well-formed). */
async function hashWithIterations(secret: string, iterations: number): Promise<string> {
  return (await hashClientSecret(secret)).replace("$100000$", `$${iterations}$`);
}

describe("generateClientSecret", () => {
  it("returns `<id>.<random>`, both base64url, the id being the part before the first dot", () => {
    const { id, secret } = generateClientSecret();
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(secret.startsWith(`${id}.`)).toBe(true);
    expect(secret.slice(id.length + 1)).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(secretIdOf(secret)).toBe(id);
  });

  it("carries at least 256 bits of randomness after the id", () => {
    const { id, secret } = generateClientSecret();
    expect(decodeBase64Url(secret.slice(id.length + 1)).length).toBeGreaterThanOrEqual(32);
  });

  it("returns a different id and secret on every call", () => {
    const seen = new Set<string>();
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { id, secret } = generateClientSecret();
      seen.add(secret.slice(id.length + 1));
      ids.add(id);
    }
    expect(seen.size).toBe(50);
    expect(ids.size).toBe(50);
  });
});

describe("secretIdOf", () => {
  it("is the part before the first dot", () => {
    expect(secretIdOf("abc.def.ghi")).toBe("abc");
  });

  it("is undefined without a dot or with an empty id", () => {
    expect(secretIdOf("abcdef")).toBeUndefined();
    expect(secretIdOf(".abcdef")).toBeUndefined();
    expect(secretIdOf("")).toBeUndefined();
  });
});

describe("hashClientSecret (self-describing PBKDF2-HMAC-SHA256)", () => {
  it("produces pbkdf2-sha256$100000$<16-byte salt>$<32-byte hash>", async () => {
    const stored = await hashClientSecret("s1.secret");
    const match = HASH_FORMAT.exec(stored);
    expect(match).not.toBeNull();
    expect(decodeBase64Url(match![1]!).length).toBe(16);
    expect(decodeBase64Url(match![2]!).length).toBe(32);
    expect(PBKDF2_ITERATIONS).toBe(100_000);
  });

  it("salts every hash, so one secret hashes differently twice", async () => {
    const a = await hashClientSecret("s1.secret");
    const b = await hashClientSecret("s1.secret");
    expect(a).not.toBe(b);
    expect(HASH_FORMAT.exec(a)![1]).not.toBe(HASH_FORMAT.exec(b)![1]);
  });

  it("matches the PBKDF2 of Web Crypto for the stored salt and iteration count", async () => {
    const stored = await hashClientSecret("s1.é日本");
    const { salt, hash, iterations } = parseSecretHash(stored);
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("s1.é日本"), "PBKDF2", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
    expect(encodeBase64Url(new Uint8Array(bits))).toBe(encodeBase64Url(hash));
  });
});

describe("PBKDF2 iteration cap (SECURITY.md item 24)", () => {
  it("is 100,000", () => {
    expect(MAX_PBKDF2_ITERATIONS).toBe(100_000);
  });

  it("hashes at exactly 100,000 iterations", async () => {
    await expect(hashClientSecret("s1.x", 100_000)).resolves.toMatch(HASH_FORMAT);
  });

  for (const iterations of [100_001, 200_000, 0, -1, 1.5, Number.NaN]) {
    it(`refuses to hash with ${iterations} iterations`, async () => {
      await expect(hashClientSecret("s1.x", iterations)).rejects.toThrow(RangeError);
    });
  }

  it("refuses to verify against a stored hash of 100,001 iterations", async () => {
    const stored = await hashWithIterations("s1.x", 100_001);
    await expect(verifyClientSecret("s1.x", stored)).rejects.toThrow(RangeError);
  });

  it("refuses to parse a stored hash of 200,000 iterations", async () => {
    const stored = await hashWithIterations("s1.x", 200_000);
    expect(() => parseSecretHash(stored)).toThrow(/iterations/);
  });

  it("refuses stored hashes of another format", () => {
    for (const stored of ["", "plain", "pbkdf2-sha512$1000$AAAA$AAAA", "pbkdf2-sha256$1000$AAAA", "pbkdf2-sha256$1000$AAAA$AAAA$AAAA", "bcrypt$10$x$y"]) {
      expect(() => parseSecretHash(stored), stored).toThrow();
    }
  });
});

describe("verifyClientSecret", () => {
  it("accepts the secret that was hashed", async () => {
    const stored = await hashClientSecret("s1.correct horse");
    expect(await verifyClientSecret("s1.correct horse", stored)).toBe(true);
  });

  it("refuses any other secret, including one differing in a single character or by a suffix", async () => {
    const stored = await hashClientSecret("s1.correct horse");
    for (const wrong of ["s1.correct hors", "s1.correct horsf", "s1.correct horse ", "S1.correct horse", ""]) {
      expect(await verifyClientSecret(wrong, stored), wrong).toBe(false);
    }
  });

  it("refuses a NFC/NFD variant of a non-ASCII secret (bytes are compared, not characters)", async () => {
    const stored = await hashClientSecret("s1.caf\u00e9");
    expect(await verifyClientSecret("s1.cafe\u0301", stored)).toBe(false);
  });
});

describe("DUMMY_SECRET_HASH (SECURITY.md item 16)", () => {
  it("is well-formed and costs the same PBKDF2 as a real hash", () => {
    expect(DUMMY_SECRET_HASH).toMatch(HASH_FORMAT);
    expect(parseSecretHash(DUMMY_SECRET_HASH).iterations).toBe(PBKDF2_ITERATIONS);
  });

  it("matches no secret", async () => {
    for (const secret of ["", "s1.x", "AAAA.AAAA"]) expect(await verifyClientSecret(secret, DUMMY_SECRET_HASH)).toBe(false);
  });
});

describe("timingSafeEqual", () => {
  const bytes = (...values: number[]) => new Uint8Array(values);

  it("is true for equal arrays", () => {
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(1, 2, 3))).toBe(true);
    expect(timingSafeEqual(bytes(), bytes())).toBe(true);
  });

  it("is false when any byte differs, first or last", () => {
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(0, 2, 3))).toBe(false);
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(1, 2, 4))).toBe(false);
  });

  it("is false when the lengths differ, even if one is a prefix of the other", () => {
    expect(timingSafeEqual(bytes(1, 2, 3), bytes(1, 2))).toBe(false);
    expect(timingSafeEqual(bytes(1, 2), bytes(1, 2, 3))).toBe(false);
    expect(timingSafeEqual(bytes(1), bytes())).toBe(false);
    expect(timingSafeEqual(bytes(), bytes(1))).toBe(false);
  });

  it("is false for arrays that differ only by a length that is a multiple of the other (no wrap-around match)", () => {
    expect(timingSafeEqual(bytes(7, 7, 7, 7), bytes(7, 7))).toBe(false);
  });
});

describe("base64url", () => {
  it("round-trips every byte value without padding", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = encodeBase64Url(all);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect([...decodeBase64Url(text)]).toEqual([...all]);
  });

  it("refuses standard base64 characters and padding", () => {
    expect(() => decodeBase64Url("ab+/")).toThrow();
    expect(() => decodeBase64Url("YQ==")).toThrow();
  });
});
