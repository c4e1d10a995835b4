// An intern table for substrings of keys, looked up without making the substring: the hot path finds the
// slot of `key[start, end)` by hashing its characters and comparing in place (String.prototype.startsWith
// at an offset), so a lookup allocates nothing. Only a miss that is added copies the substring once.
//
// Slots are dense (0, 1, 2, ... in order of first sight) so that callers keep their counters in parallel
// typed arrays indexed by slot. The table is open addressing with linear probing over Int32Array buckets.

const EMPTY = -1;

/** FNV-1a over the UTF-16 code units of s[start, end) (keys are latin1 strings: one unit per byte). */
export function hashRange(s: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A flat copy of s (V8 may keep a substring as a slice of its parent; a table that keeps a piece of a long
 * key must not keep the whole key alive).
 */
export function flatCopy(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'latin1').toString('latin1');
}

export class RangeInterner {
  private buckets: Int32Array;
  private mask: number;
  /** The interned strings by slot. */
  readonly names: string[] = [];
  private hashes: number[] = [];
  private readonly quick: Int32Array;
  private readonly quickMask: number;

  /**
   * limit: the most slots this table will hold (intern() returns -1 beyond it); quickBits: log2 of the
   * entries of the direct-mapped cache in front of the table.
   */
  constructor(readonly limit = Number.MAX_SAFE_INTEGER, initialBuckets = 64, quickBits = 8) {
    this.quick = new Int32Array(1 << quickBits).fill(EMPTY);
    this.quickMask = (1 << quickBits) - 1;
    let n = 16;
    while (n < initialBuckets) n <<= 1;
    this.buckets = new Int32Array(n).fill(EMPTY);
    this.mask = n - 1;
  }

  get size(): number {
    return this.names.length;
  }

  /** The slot of key[start, end), or -1 if it was never added. Allocates nothing. */
  find(key: string, start: number, end: number): number {
    const h = hashRange(key, start, end);
    const len = end - start;
    const buckets = this.buckets;
    for (let b = h & this.mask; ; b = (b + 1) & this.mask) {
      const slot = buckets[b];
      if (slot === EMPTY) return -1;
      if (this.hashes[slot] === h) {
        const name = this.names[slot];
        if (name.length === len && key.startsWith(name, start)) return slot;
      }
    }
  }

  /**
   * The slot of key[start, end), added if new; -1 if new and the table is at its limit. A direct-mapped cache
   * indexed by the length and three characters answers most lookups without hashing the whole range.
   */
  intern(key: string, start: number, end: number): number {
    const len = end - start;
    const q = len > 0 ? (Math.imul(len, 31) ^ Math.imul(key.charCodeAt(start), 7) ^ Math.imul(key.charCodeAt(end - 1), 131) ^ key.charCodeAt(start + (len >> 1))) & this.quickMask : 0;
    const cached = this.quick[q];
    if (cached !== EMPTY) {
      const name = this.names[cached];
      if (name.length === len && key.startsWith(name, start)) return cached;
    }
    const slot = this.internSlow(key, start, end);
    if (slot >= 0) this.quick[q] = slot;
    return slot;
  }

  private internSlow(key: string, start: number, end: number): number {
    const h = hashRange(key, start, end);
    const len = end - start;
    const buckets = this.buckets;
    let b = h & this.mask;
    for (; ; b = (b + 1) & this.mask) {
      const slot = buckets[b];
      if (slot === EMPTY) break;
      if (this.hashes[slot] === h) {
        const name = this.names[slot];
        if (name.length === len && key.startsWith(name, start)) return slot;
      }
    }
    if (this.names.length >= this.limit) return -1;
    const slot = this.names.length;
    this.names.push(flatCopy(key.substring(start, end)));
    this.hashes.push(h);
    buckets[b] = slot;
    if (this.names.length * 2 > this.buckets.length) this.grow();
    return slot;
  }

  /** The slot of a whole string, added if new (-1 at the limit). */
  internString(s: string): number {
    return this.intern(s, 0, s.length);
  }

  clear(): void {
    this.names.length = 0;
    this.hashes.length = 0;
    this.buckets.fill(EMPTY);
    this.quick.fill(EMPTY);
  }

  private grow(): void {
    const n = this.buckets.length * 2;
    const buckets = new Int32Array(n).fill(EMPTY);
    const mask = n - 1;
    for (let slot = 0; slot < this.hashes.length; slot++) {
      let b = this.hashes[slot] & mask;
      while (buckets[b] !== EMPTY) b = (b + 1) & mask;
      buckets[b] = slot;
    }
    this.buckets = buckets;
    this.mask = mask;
  }
}
