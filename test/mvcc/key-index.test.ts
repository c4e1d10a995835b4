import { describe, expect, it } from 'vitest';
import { KeyIndex, TreeIndex, type RevHit } from '../../src/mvcc/key-index';
import { readRevision } from '../../src/mvcc/revision';

const hit = (): RevHit => ({ modMain: 0, modSub: 0, createdMain: 0, version: 0 });

// The history of etcd's key_index_test: put 2, 4, 6; tombstone 8; put 10, 12; tombstone 14;
// put 16 — three generations: [2 4 6 8(t)] [10 12 14(t)] [16].
function etcdHistory(): KeyIndex {
  const ki = new KeyIndex();
  ki.put(2, 0);
  ki.put(4, 0);
  ki.put(6, 0);
  ki.tombstone(8, 0);
  ki.put(10, 0);
  ki.put(12, 0);
  ki.tombstone(14, 0);
  ki.put(16, 0);
  return ki;
}

describe('KeyIndex', () => {
  it.each([
    // [atRev, found modMain or undefined, createdMain, version]
    [1, undefined],
    [2, 2, 2, 1],
    [5, 4, 2, 2],
    [7, 6, 2, 3],
    [8, undefined], // deleted at 8
    [9, undefined],
    [10, 10, 10, 1],
    [13, 12, 10, 2],
    [14, undefined],
    [15, undefined],
    [16, 16, 16, 1],
    [100, 16, 16, 1],
  ] as const)('get at %i', (atRev, mod, created?, version?) => {
    const h = hit();
    const ok = etcdHistory().get(atRev, h);
    expect(ok).toBe(mod !== undefined);
    if (mod !== undefined) expect(h).toMatchObject({ modMain: mod, createdMain: created, version });
  });

  it('refuses a put that does not move forward', () => {
    const ki = new KeyIndex();
    ki.put(5, 1);
    expect(() => ki.put(5, 1)).toThrow();
    expect(() => ki.put(4, 9)).toThrow();
    ki.put(5, 2);
  });

  it('cannot tombstone a key that is not live', () => {
    const ki = new KeyIndex();
    ki.put(2, 0);
    expect(ki.tombstone(3, 0)).toBe(true);
    expect(ki.tombstone(4, 0)).toBe(false);
  });

  // etcd's TestKeyIndexCompactAndKeep, on its newTestKeyIndex history: put 2, 4, tombstone 6; put 8, 10,
  // tombstone 12; put 14.0, 14.1, tombstone 16. Revisions are written main.sub; kept = what stays in
  // the backend at or below the compaction revision.
  function etcdTestKeyIndex(): KeyIndex {
    const ki = new KeyIndex();
    ki.put(2, 0);
    ki.put(4, 0);
    ki.tombstone(6, 0);
    ki.put(8, 0);
    ki.put(10, 0);
    ki.tombstone(12, 0);
    ki.put(14, 0);
    ki.put(14, 1);
    ki.tombstone(16, 0);
    return ki;
  }
  const G1 = ['2.0', '4.0', '6.0'];
  const G2 = ['8.0', '10.0', '12.0'];
  const G3 = ['14.0', '14.1', '16.0'];
  it.each([
    [1, [G1, G2, G3], []],
    [2, [G1, G2, G3], ['2.0']],
    [3, [G1, G2, G3], ['2.0']],
    [4, [['4.0', '6.0'], G2, G3], ['4.0']],
    [5, [['4.0', '6.0'], G2, G3], ['4.0']],
    [6, [G2, G3], []],
    [7, [G2, G3], []],
    [8, [G2, G3], ['8.0']],
    [9, [G2, G3], ['8.0']],
    [10, [['10.0', '12.0'], G3], ['10.0']],
    [11, [['10.0', '12.0'], G3], ['10.0']],
    [12, [G3], []],
    [13, [G3], []],
    [14, [['14.1', '16.0']], ['14.1']],
    [15, [['14.1', '16.0']], ['14.1']],
    [16, [], []],
    [17, [], []],
  ] as [number, string[][], string[]][])('compact at %i as etcd', (atRev, gens, kept) => {
    const ki = etcdTestKeyIndex();
    const keep = new Set<string>();
    ki.compact(atRev, keep);
    const got = ki.gens.filter((g) => !g.empty).map((g) => g.revs.reduce<string[]>((acc, v, i) => (i % 2 ? acc : [...acc, `${v}.${g.revs[i + 1]}`]), []));
    expect(got).toEqual(gens);
    expect(ki.empty || gens.length > 0).toBe(true);
    const keptRevs = [...keep].map((k) => readRevision(Buffer.from(k, 'latin1'))).map((r) => `${r.main}.${r.sub}`);
    expect(keptRevs).toEqual(kept);
  });
});

describe('TreeIndex', () => {
  it('visits single keys, ranges and from-key ranges in byte order', () => {
    const t = new TreeIndex();
    const keys = ['b', 'a', 'ab', '\xff', 'a\x00', 'c'];
    keys.forEach((k, i) => t.put(k, i + 2, 0));
    const seen = (key: string, end: string | undefined) => {
      const out: string[] = [];
      t.visit(key, end, (k) => void out.push(k));
      return out;
    };
    expect(seen('a', undefined)).toEqual(['a']);
    expect(seen('a', 'b')).toEqual(['a', 'a\x00', 'ab']);
    expect(seen('ab', '')).toEqual(['ab', 'b', 'c', '\xff']);
    expect(seen('c', 'a')).toEqual([]);
  });

  it('drops keys whose whole history is compacted away', () => {
    const t = new TreeIndex();
    t.put('gone', 2, 0);
    t.tombstone('gone', 3, 0);
    t.put('live', 4, 0);
    t.compact(4);
    expect(t.lookup('gone')).toBeUndefined();
    expect(t.lookup('live')).toBeDefined();
    expect(t.size).toBe(1);
  });
});

describe('KeyIndex.existsAt', () => {
  it('agrees with get() at every revision of random histories, before and after compaction', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const hit = { modMain: 0, modSub: 0, createdMain: 0, version: 0 };
    for (let round = 0; round < 200; round++) {
      const ki = new KeyIndex();
      let rev = 1 + rand(3);
      const ops = 1 + rand(12);
      for (let i = 0; i < ops; i++) {
        rev += 1 + rand(3);
        if (rand(4) === 0) ki.tombstone(rev, 0);
        else ki.put(rev, rand(2));
      }
      const check = (from: number) => {
        for (let r = from; r <= rev + 2; r++) expect(ki.existsAt(r, hit), `round ${round} rev ${r}`).toBe(ki.get(r, hit));
      };
      check(0);
      const at = 1 + rand(rev);
      ki.compact(at, new Set());
      if (!ki.empty) check(at);
    }
  });
});

describe('TreeIndex incremental compaction (compactSome)', () => {
  // A small deterministic PRNG, so a failure names its seed.
  const prng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

  type Op = { key: string; del: boolean };
  /** Applies one write at main revision rev to t (a put, or a delete of a live key). */
  const apply = (t: TreeIndex, op: Op, rev: number) => (op.del ? t.tombstone(op.key, rev, 0) : t.put(op.key, rev, 0));

  /** Everything a reader can see of the index at revisions >= from, and its keys. */
  function view(t: TreeIndex, from: number, to: number): string[] {
    const out: string[] = [];
    const h = hit();
    t.visit('', '', (k, ki) => {
      const seen: string[] = [];
      for (let r = from; r <= to; r++) seen.push(ki.get(r, h) ? `${h.modMain}/${h.createdMain}/${h.version}` : '-');
      out.push(`${k}:${seen.join(',')}`);
    });
    return out;
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('with writes between steps ends as one compaction after those writes (seed %i)', (seed) => {
    const rnd = prng(seed);
    const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    const live = new Set<string>();
    const pick = (): Op => {
      const key = keys[Math.floor(rnd() * keys.length)];
      const del = live.has(key) && rnd() < 0.35;
      if (del) live.delete(key);
      else live.add(key);
      return { key, del };
    };
    // A history of 300 writes, compacted at some revision in it; then 150 writes more, which land
    // between the steps of the incremental compaction (deletes, re-creations, new keys alike).
    const history = Array.from({ length: 300 }, pick);
    const later = Array.from({ length: 150 }, pick);
    const atRev = 2 + Math.floor(rnd() * 300);
    const a = new TreeIndex();
    const b = new TreeIndex();
    history.forEach((op, i) => {
      apply(a, op, i + 2);
      apply(b, op, i + 2);
    });
    const end = history.length + later.length + 1;

    // a: incremental, 1-3 keys a step, writes in between.
    const keepA = new Set<string>();
    let after: string | null = null;
    let next = 0;
    let steps = 0;
    do {
      after = a.compactSome(atRev, keepA, after, 1 + Math.floor(rnd() * 3));
      steps++;
      for (let n = Math.floor(rnd() * 4); n > 0 && next < later.length; n--, next++) apply(a, later[next], history.length + 2 + next);
    } while (after !== null);
    for (; next < later.length; next++) apply(a, later[next], history.length + 2 + next);
    expect(steps).toBeGreaterThan(5);

    // b: the same writes first, then one compaction in one go.
    later.forEach((op, i) => apply(b, op, history.length + 2 + i));
    const keepB = b.compact(atRev);

    expect([...keepA].sort()).toEqual([...keepB].sort());
    expect(view(a, atRev, end)).toEqual(view(b, atRev, end));
    expect(a.size).toBe(b.size);
  });

  it('drops a key emptied by the compaction, and a key created again after it stays', () => {
    const t = new TreeIndex();
    t.put('a', 2, 0);
    t.tombstone('a', 3, 0);
    t.put('b', 4, 0);
    const keep = new Set<string>();
    expect(t.compactSome(4, keep, null, 1)).toBe('a');
    expect(t.lookup('a')).toBeUndefined();
    t.put('a', 5, 0); // created again between two steps, before the step's cursor
    expect(t.compactSome(4, keep, 'a', 1)).toBe('b');
    expect(t.compactSome(4, keep, 'b', 1)).toBeNull();
    const h = hit();
    expect(t.get('a', 5, h) && h.modMain).toBe(5);
    expect(t.size).toBe(2);
  });
});
