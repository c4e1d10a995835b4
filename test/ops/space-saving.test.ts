import { describe, expect, it } from 'vitest';
import { SpaceSaving } from '../../src/ops/space-saving';
import { mulberry32, zipfSampler } from './helpers';

interface Truth {
  reads: number;
  writes: number;
}

function run(seed: number, capacity: number, distinct: number, n: number, s: number) {
  const rnd = mulberry32(seed);
  const zipf = zipfSampler(distinct, s, rnd);
  // Permute ranks so that the hot keys are not the first keys inserted.
  const perm = Array.from({ length: distinct }, (_, i) => i);
  for (let i = distinct - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const ss = new SpaceSaving(capacity);
  const truth = new Map<string, Truth>();
  for (let i = 0; i < n; i++) {
    const k = perm[zipf()];
    const key = `/registry/pods/ns${k % 50}/pod-${k}`;
    const write = rnd() < 0.3;
    ss.offer(key, write);
    let t = truth.get(key);
    if (!t) truth.set(key, (t = { reads: 0, writes: 0 }));
    if (write) t.writes++;
    else t.reads++;
  }
  return { ss, truth };
}

describe('Space-Saving', () => {
  for (const [seed, capacity, distinct, n, s] of [
    [1, 64, 5000, 50_000, 1.1],
    [2, 256, 20_000, 60_000, 0.9],
    [3, 1024, 100_000, 100_000, 1.2],
    [4, 100, 1_000_000, 50_000, 0.6], // nearly uniform: the bound is all it promises
  ] as const) {
    it(`holds its error bounds (seed ${seed}, m=${capacity}, zipf s=${s})`, () => {
      const { ss, truth } = run(seed, capacity, distinct, n, s);
      const bound = Math.floor(n / capacity);
      expect(ss.total).toBe(n);
      expect(ss.errorBound).toBe(bound);
      // Every counter: reads and writes are lower bounds, + error upper bounds; error <= N/m.
      // (Violations are collected and compared once: an expect per key costs seconds at 100k keys.)
      const bad: string[] = [];
      let sum = 0;
      for (const e of ss.top(capacity)) {
        const t = truth.get(e.key)!;
        sum += e.count;
        const ok =
          e.error <= bound &&
          e.count === e.reads + e.writes + e.error &&
          t.reads >= e.reads &&
          t.reads <= e.reads + e.error &&
          t.writes >= e.writes &&
          t.writes <= e.writes + e.error &&
          t.reads + t.writes >= e.count - e.error &&
          t.reads + t.writes <= e.count;
        if (!ok) bad.push(`${e.key}: ${JSON.stringify(e)} truth ${JSON.stringify(t)}`);
      }
      expect(sum).toBe(n); // the counts sum to N once every counter is in use
      // Every key accessed more than N/m times is counted; an uncounted key has at most minCount accesses.
      const min = ss.minCount();
      expect(min).toBeLessThanOrEqual(bound);
      for (const [key, t] of truth) {
        const total = t.reads + t.writes;
        const e = ss.get(key);
        if (total > bound && !e) bad.push(`${key}: ${total} > N/m but not counted`);
        if (!e && total > min) bad.push(`${key}: not counted, ${total} > min count ${min}`);
      }
      // The reported top 10: largest count first; no key left out is truly hotter than the 10th's count.
      const top = ss.top(10);
      for (let i = 1; i < top.length; i++) expect(top[i - 1].count).toBeGreaterThanOrEqual(top[i].count);
      const inTop = new Set(top.map((e) => e.key));
      const tenth = top[top.length - 1].count;
      for (const [key, t] of truth) if (!inTop.has(key) && t.reads + t.writes > tenth) bad.push(`${key}: left out of the top 10`);
      expect(bad).toEqual([]);
      // With a skewed stream the true top 5 are the reported top 5 (as a set), their counts within bound.
      if (s >= 1.1) {
        const trueTop = [...truth].sort((a, b) => b[1].reads + b[1].writes - (a[1].reads + a[1].writes)).slice(0, 5);
        const gap = trueTop[3][1].reads + trueTop[3][1].writes - (trueTop[4][1].reads + trueTop[4][1].writes);
        if (gap > bound) expect(new Set(top.slice(0, 4).map((e) => e.key))).toEqual(new Set(trueTop.slice(0, 4).map((e) => e[0])));
      }
    });
  }

  it('is exact while the distinct keys fit in its counters', () => {
    const { ss, truth } = run(9, 4096, 1000, 30_000, 1);
    for (const [key, t] of truth) {
      const e = ss.get(key)!;
      expect(e.error).toBe(0);
      expect([e.reads, e.writes]).toEqual([t.reads, t.writes]);
    }
  });

  it('counts long keys under their first maxKeyLength characters, and resets', () => {
    const ss = new SpaceSaving(4, 8);
    ss.offer('/abcdefgh-1', false);
    ss.offer('/abcdefgh-2', true);
    expect(ss.top(5)).toEqual([{ key: '/abcdefg', reads: 1, writes: 1, error: 0, count: 2 }]);
    ss.reset();
    expect(ss.top(5)).toEqual([]);
    expect(ss.total).toBe(0);
    ss.offer('a', false);
    expect(ss.get('a')?.count).toBe(1);
  });
});
