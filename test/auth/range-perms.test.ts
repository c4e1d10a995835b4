import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cmpBound, IntervalSet, permInterval, PermType, UnifiedRangePermissions, type Permission } from '../../src/auth/range-perms';

// Permission intervals as etcd 3.4's range_perm_cache.go checks them. The cases are etcd's own
// (range_perm_cache_test.go) plus the prefix / from-key / single-key shapes etcdctl sends; the property
// tests compare the merged-interval checker with a naive one that scans the raw permissions.

const b = (s: string) => Buffer.from(s, 'latin1');
const perm = (permType: number, key: string, rangeEnd = ''): Permission => ({ permType, key: b(key), rangeEnd: b(rangeEnd) });
const set = (ivls: [string, string][]) => new IntervalSet(ivls.map(([k, e]) => [k === '' ? null : b(k), e === '' ? null : b(e)]));

describe('etcd range_perm_cache_test.go', () => {
  it('TestRangePermission', () => {
    expect(set([['a', 'c'], ['x', 'z']]).coversRange(b('a'), b('z'))).toBe(false);
    expect(set([['a', 'f'], ['c', 'd'], ['f', 'z']]).coversRange(b('a'), b('z'))).toBe(true);
    expect(set([['a', 'd'], ['a', 'b'], ['c', 'f']]).coversRange(b('a'), b('f'))).toBe(true);
  });

  it('TestKeyPermission', () => {
    expect(set([['a', 'c'], ['x', 'z']]).hasKey(b('f'))).toBe(false);
    expect(set([['a', 'f'], ['c', 'd'], ['f', 'z']]).hasKey(b('b'))).toBe(true);
    expect(set([['a', 'd'], ['a', 'b'], ['c', 'f']]).hasKey(b('d'))).toBe(true);
    expect(set([['a', 'd'], ['a', 'b'], ['c', 'f']]).hasKey(b('f'))).toBe(false);
  });
});

describe('permission shapes', () => {
  it('a single key grants that key only', () => {
    const p = new UnifiedRangePermissions([perm(PermType.READ, 'foo')]);
    expect(p.permits(b('foo'), undefined, PermType.READ)).toBe(true);
    expect(p.permits(b('foo'), b(''), PermType.READ)).toBe(true);
    expect(p.permits(b('foo0'), undefined, PermType.READ)).toBe(false);
    expect(p.permits(b('fo'), undefined, PermType.READ)).toBe(false);
    // [foo, foo\0) is the key alone, as a range too
    expect(p.permits(b('foo'), b('foo\0'), PermType.READ)).toBe(true);
    expect(p.permits(b('foo'), b('foo\0\0'), PermType.READ)).toBe(false);
    expect(p.permits(b('foo'), undefined, PermType.WRITE)).toBe(false);
  });

  it('a prefix grants its keys and ranges inside it', () => {
    const p = new UnifiedRangePermissions([perm(PermType.READWRITE, 'dir/', 'dir0')]);
    for (const t of [PermType.READ, PermType.WRITE] as const) {
      expect(p.permits(b('dir/'), undefined, t)).toBe(true);
      expect(p.permits(b('dir/x/y'), undefined, t)).toBe(true);
      expect(p.permits(b('dir/'), b('dir0'), t)).toBe(true);
      expect(p.permits(b('dir/a'), b('dir/b'), t)).toBe(true);
      expect(p.permits(b('dir'), b('dir0'), t)).toBe(false);
      expect(p.permits(b('dir/'), b('dir1'), t)).toBe(false);
      expect(p.permits(b('dir/'), b('\0'), t)).toBe(false); // from key: to the end of the key space
      expect(p.permits(b('dir0'), undefined, t)).toBe(false);
    }
  });

  it('"\\x00" as range_end is open-ended, for permissions and requests', () => {
    const p = new UnifiedRangePermissions([perm(PermType.WRITE, 'm', '\0')]);
    expect(p.permits(b('m'), b('\0'), PermType.WRITE)).toBe(true);
    expect(p.permits(b('zzzz'), undefined, PermType.WRITE)).toBe(true);
    expect(p.permits(b('\xff\xff'), b('\0'), PermType.WRITE)).toBe(true);
    expect(p.permits(b('l'), b('\0'), PermType.WRITE)).toBe(false);
    expect(p.permits(b('m'), b('\0'), PermType.READ)).toBe(false);
  });

  it('the whole key space as etcdctl grants it (key "\\x00", range_end "\\x00")', () => {
    const p = new UnifiedRangePermissions([perm(PermType.READ, '\0', '\0')]);
    expect(p.permits(b('\0'), b('\0'), PermType.READ)).toBe(true);
    expect(p.permits(b('a'), undefined, PermType.READ)).toBe(true);
  });

  it('an empty key is +infinity: such a permission grants nothing, such a request matches nothing', () => {
    const p = new UnifiedRangePermissions([perm(PermType.READ, '', '\0'), perm(PermType.READ, '')]);
    expect(p.read.size).toBe(0);
    const all = new UnifiedRangePermissions([perm(PermType.READ, '\0', '\0')]);
    expect(all.permits(b(''), undefined, PermType.READ)).toBe(false);
    expect(all.permits(b(''), b('\0'), PermType.READ)).toBe(false);
  });

  it('merges overlapping and touching intervals; empty ones are dropped', () => {
    const s = set([['c', 'e'], ['a', 'c'], ['x', 'y'], ['e', 'f'], ['q', 'q'], ['t', 's']]);
    expect(s.intervals().map(([x, y]) => [x.toString(), y?.toString() ?? null])).toEqual([['a', 'f'], ['x', 'y']]);
    expect(s.coversRange(b('a'), b('f'))).toBe(true);
    expect(s.coversRange(b('b'), b('x'))).toBe(false);
  });

  it('a request whose end is not after its key is permitted iff its key is', () => {
    const p = new UnifiedRangePermissions([perm(PermType.READ, 'b', 'c')]);
    expect(p.permits(b('b'), b('a'), PermType.READ)).toBe(true);
    expect(p.permits(b('b'), b('b'), PermType.READ)).toBe(true);
    expect(p.permits(b('d'), b('a'), PermType.READ)).toBe(false);
  });
});

// --- property tests ----------------------------------------------------------------------------

type Bnd = Buffer | null;
const lt = (a: Bnd, c: Bnd) => cmpBound(a, c) < 0;
const le = (a: Bnd, c: Bnd) => cmpBound(a, c) <= 0;

/** Naive: a key is covered when some raw permission interval holds it. */
function naiveHasKey(ivls: [Bnd, Bnd][], key: Buffer): boolean {
  const k: Bnd = key.length ? key : null;
  return ivls.some(([s, e]) => le(s, k) && lt(k, e));
}

/**
 * Naive range coverage: a union of half-open intervals covers [k, e) iff k is covered and so is every
 * interval end that falls strictly inside (k, e) — the only places a gap can start.
 */
function naiveCovers(ivls: [Bnd, Bnd][], key: Buffer, end: Bnd): boolean {
  if (key.length === 0) return false;
  if (!lt(key, end)) return naiveHasKey(ivls, key);
  if (!naiveHasKey(ivls, key)) return false;
  for (const [, e] of ivls) if (e !== null && lt(key, e) && lt(e, end) && !naiveHasKey(ivls, e)) return false;
  return true;
}

const key = fc.array(fc.constantFrom(0, 0x61, 0x62, 0x63, 0xff), { minLength: 0, maxLength: 3 }).map((a) => Buffer.from(a));
const permArb = fc.record({ permType: fc.constantFrom(0, 1, 2), key, rangeEnd: fc.oneof(key, fc.constant(Buffer.from([0])), fc.constant(Buffer.alloc(0))) });

describe('merged intervals agree with a naive checker', () => {
  it('single keys', () => {
    fc.assert(
      fc.property(fc.array(permArb, { maxLength: 8 }), key, (perms, k) => {
        const u = new UnifiedRangePermissions(perms);
        const reads = perms.filter((p) => p.permType !== 1).map((p) => permInterval(p.key, p.rangeEnd));
        expect(u.permits(k, undefined, PermType.READ)).toBe(naiveHasKey(reads, k));
      }),
      { numRuns: 2000 },
    );
  });

  it('ranges, prefixes and from-key ranges', () => {
    fc.assert(
      fc.property(fc.array(permArb, { maxLength: 8 }), key, fc.oneof(key.filter((x) => x.length > 0), fc.constant(Buffer.from([0]))), (perms, k, end) => {
        const u = new UnifiedRangePermissions(perms);
        const writes = perms.filter((p) => p.permType !== 0).map((p) => permInterval(p.key, p.rangeEnd));
        const e: Bnd = end.length === 1 && end[0] === 0 ? null : end;
        expect(u.permits(k, end, PermType.WRITE)).toBe(naiveCovers(writes, k, e));
      }),
      { numRuns: 2000 },
    );
  });

  it('coverage agrees with brute force over every short key', () => {
    // All keys over the alphabet up to length 3: a range is covered iff each of these keys in it is,
    // checked where the alphabet makes that exact (ends drawn from the same alphabet, no open end).
    const alphabet = [0x61, 0x62, 0x63];
    const all: Buffer[] = [];
    const gen = (prefix: number[]) => {
      if (prefix.length) all.push(Buffer.from(prefix));
      if (prefix.length < 3) for (const c of alphabet) gen([...prefix, c]);
    };
    gen([]);
    const shortKey = fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 2 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.array(fc.record({ permType: fc.constant(0), key: shortKey, rangeEnd: shortKey }), { maxLength: 5 }), shortKey, shortKey, (perms, k, end) => {
        const u = new UnifiedRangePermissions(perms);
        if (Buffer.compare(k, end) >= 0) return;
        const inRange = all.filter((x) => Buffer.compare(x, k) >= 0 && Buffer.compare(x, end) < 0);
        const brute = inRange.every((x) => u.permits(x, undefined, PermType.READ));
        // Keys longer than 3 could fall in a gap only after a key of length ≤ 2 ends an interval, which
        // then is itself uncovered and in the list: brute force over these keys is exact here.
        expect(u.permits(k, end, PermType.READ)).toBe(brute);
      }),
      { numRuns: 1000 },
    );
  });
});
