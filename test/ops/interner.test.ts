import { describe, expect, it } from 'vitest';
import { RangeInterner, flatCopy, hashRange } from '../../src/ops/interner';
import { mulberry32 } from './helpers';

describe('RangeInterner', () => {
  it('gives each distinct substring one dense slot, found in place, as a Map would', () => {
    const rnd = mulberry32(3);
    const t = new RangeInterner(Number.MAX_SAFE_INTEGER, 16, 4); // small cache and table: collisions and growth
    const truth = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const name = `ns-${Math.floor(rnd() * 3000)}`;
      const key = `/registry/pods/${name}/obj-${i}`;
      const start = 15;
      const end = start + name.length;
      if (!truth.has(name)) truth.set(name, truth.size);
      expect(t.intern(key, start, end)).toBe(truth.get(name));
      expect(t.find(key, start, end)).toBe(truth.get(name));
    }
    expect(t.size).toBe(truth.size);
    expect(t.names).toEqual([...truth.keys()]);
    expect(t.find('/registry/pods/nope/x', 15, 19)).toBe(-1);
  });

  it('stops at its limit and starts over on clear', () => {
    const t = new RangeInterner(2);
    expect([t.internString('a'), t.internString('b'), t.internString('c'), t.internString('a')]).toEqual([0, 1, -1, 0]);
    t.clear();
    expect([t.find('a', 0, 1), t.internString('c')]).toEqual([-1, 0]);
    expect(t.intern('xyz', 1, 1)).toBe(1); // the empty string is a name too
  });

  it('hashes ranges as the whole substring, and copies long strings flat', () => {
    expect(hashRange('xxabcxx', 2, 5)).toBe(hashRange('abc', 0, 3));
    const long = 'k'.repeat(100);
    expect(flatCopy(long.substring(0, 50))).toBe('k'.repeat(50));
  });
});
