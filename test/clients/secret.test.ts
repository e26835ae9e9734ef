import { describe, expect, it } from "vitest";
import {
  decodeBase64Url,
  DEFAULT_PBKDF2_ITERATIONS,
  dummySecretHash,
  encodeBase64Url,
  generateClientSecret,
  hashClientSecret,
  MAX_PBKDF2_ITERATIONS,
  MIN_PBKDF2_ITERATIONS,
  parsePBKDF2Iterations,
  parseSecretHash,
  secretIdOf,
  timingSafeEqual,
  verifyClientSecret,
} from "../../src/clients/secret.ts";

const HASH_FORMAT = /^pbkdf2-sha256\$(\d+)\$([A-Za-z0-9_-]{22})\$([A-Za-z0-9_-]{43})$/;

/** A stored hash whose iteration count was rewritten (the salt and hash stay well-formed). */
async function hashWithIterations(secret: string, iterations: number): Promise<string> {
  return (await hashClientSecret(secret)).replace(/\$\d+\$/, `$${iterations}$`);
}

const hex = (text: string) => Uint8Array.from(text.match(/../g)!, (byte) => parseInt(byte, 16));
/** A stored hash in our format from published PBKDF2 inputs and the first 32 bytes of their output. */
const storedFromVector = (salt: string, iterations: number, derivedHex: string) =>
  `pbkdf2-sha256$${iterations}$${encodeBase64Url(new TextEncoder().encode(salt))}$${encodeBase64Url(hex(derivedHex).subarray(0, 32))}`;

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
  it("produces pbkdf2-sha256$<iterations>$<16-byte salt>$<32-byte hash>, at DEFAULT_PBKDF2_ITERATIONS unless told", async () => {
    const stored = await hashClientSecret("s1.secret");
    const match = HASH_FORMAT.exec(stored);
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBe(DEFAULT_PBKDF2_ITERATIONS);
    expect(decodeBase64Url(match![2]!).length).toBe(16);
    expect(decodeBase64Url(match![3]!).length).toBe(32);
  });

  it("hashes at the count it is given, and that hash verifies", async () => {
    for (const iterations of [MIN_PBKDF2_ITERATIONS, 40_000, MAX_PBKDF2_ITERATIONS]) {
      const stored = await hashClientSecret("s1.configured", iterations);
      expect(parseSecretHash(stored).iterations, String(iterations)).toBe(iterations);
      expect(await verifyClientSecret("s1.configured", stored), String(iterations)).toBe(true);
      expect(await verifyClientSecret("s1.configureD", stored), String(iterations)).toBe(false);
    }
  });

  it("salts every hash, so one secret hashes differently twice", async () => {
    const a = await hashClientSecret("s1.secret");
    const b = await hashClientSecret("s1.secret");
    expect(a).not.toBe(b);
    expect(HASH_FORMAT.exec(a)![2]).not.toBe(HASH_FORMAT.exec(b)![2]);
  });

  it("matches the PBKDF2 of Web Crypto for the stored salt and iteration count", async () => {
    const stored = await hashClientSecret("s1.é日本");
    const { salt, hash, iterations } = parseSecretHash(stored);
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("s1.é日本"), "PBKDF2", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
    expect(encodeBase64Url(new Uint8Array(bits))).toBe(encodeBase64Url(hash));
  });
});

describe("PBKDF2-HMAC-SHA256 known answers (RFC 7914 §11)", () => {
  // The RFC derives 64 bytes; a 32-byte PBKDF2-HMAC-SHA256 output is the first block of the same derivation.
  const vectors = [
    {
      password: "passwd",
      salt: "salt",
      iterations: 1,
      dk: "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    },
    {
      password: "Password",
      salt: "NaCl",
      iterations: 80_000,
      dk: "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
    },
  ];

  for (const { password, salt, iterations, dk } of vectors) {
    it(`verifies P=${JSON.stringify(password)}, S=${JSON.stringify(salt)}, c=${iterations} against the published output, and nothing else`, async () => {
      const stored = storedFromVector(salt, iterations, dk);
      expect(await verifyClientSecret(password, stored)).toBe(true);
      expect(await verifyClientSecret(`${password}x`, stored)).toBe(false);
      // The count is part of the computation: the same inputs at c + 1 do not verify.
      expect(await verifyClientSecret(password, storedFromVector(salt, iterations + 1, dk))).toBe(false);
    });
  }
});

describe("PBKDF2_ITERATIONS (the work factor of new secrets)", () => {
  it("is 25,000 when unset, and reads whole numbers from 10,000 to 100,000", () => {
    expect(DEFAULT_PBKDF2_ITERATIONS).toBe(25_000);
    expect(MIN_PBKDF2_ITERATIONS).toBe(10_000);
    expect(parsePBKDF2Iterations(undefined)).toBe(DEFAULT_PBKDF2_ITERATIONS);
    expect(parsePBKDF2Iterations("")).toBe(DEFAULT_PBKDF2_ITERATIONS);
    expect(parsePBKDF2Iterations("10000")).toBe(10_000);
    expect(parsePBKDF2Iterations("100000")).toBe(100_000);
    expect(parsePBKDF2Iterations(50_000)).toBe(50_000);
  });

  it.each([["9999"], ["100001"], ["0"], ["-25000"], ["25000.5"], ["25e3"], ["25,000"], ["many"], [" 25000"]])(
    "refuses %j, naming PBKDF2_ITERATIONS",
    (raw) => {
      expect(() => parsePBKDF2Iterations(raw)).toThrow(/^PBKDF2_ITERATIONS must be/);
    },
  );

  it("keeps verifying a hash made at 100,000 iterations when the setting is lower (hashes carry their count)", async () => {
    const old = await hashClientSecret("s1.old", 100_000);
    expect(parsePBKDF2Iterations("10000")).toBeLessThan(parseSecretHash(old).iterations);
    expect(await verifyClientSecret("s1.old", old)).toBe(true);
  });
});

describe("PBKDF2 iteration cap (docs/security.md item 24)", () => {
  it("is 100,000", () => {
    expect(MAX_PBKDF2_ITERATIONS).toBe(100_000);
  });

  it("hashes at exactly 100,000 iterations", async () => {
    expect(HASH_FORMAT.exec(await hashClientSecret("s1.x", 100_000))![1]).toBe("100000");
  });

  for (const iterations of [100_001, 200_000, 9_999, 1, 0, -1, 1.5, Number.NaN]) {
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
    for (const stored of [
      "",
      "plain",
      "pbkdf2-sha512$1000$AAAA$AAAA",
      "pbkdf2-sha256$1000$AAAA",
      "pbkdf2-sha256$1000$AAAA$AAAA$AAAA",
      "bcrypt$10$x$y",
    ]) {
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

describe("dummySecretHash (docs/security.md item 16)", () => {
  it("is well-formed and costs the PBKDF2 it is asked for: the count new secrets are hashed with", () => {
    for (const iterations of [MIN_PBKDF2_ITERATIONS, DEFAULT_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS]) {
      expect(dummySecretHash(iterations)).toMatch(HASH_FORMAT);
      expect(parseSecretHash(dummySecretHash(iterations)).iterations).toBe(iterations);
    }
  });

  it("matches no secret", async () => {
    for (const secret of ["", "s1.x", "AAAA.AAAA"])
      expect(await verifyClientSecret(secret, dummySecretHash(MIN_PBKDF2_ITERATIONS))).toBe(false);
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
