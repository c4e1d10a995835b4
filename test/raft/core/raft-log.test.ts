// Port of etcd-io/raft 3.4's log_test.go, with the one deliberate difference: nextEnts hands out
// only entries already persisted (stable), so the tests of it persist first, and a test shows it.
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { NO_LIMIT, RaftLog } from '../../../src/raft/core/raft-log';
import { ErrCompacted, type Entry } from '../../../src/raft/core/types';
import { entrySize, varintSize } from '../../../src/raft/core/util';
import { ents } from './helpers';

function snapStorage(index: number, term: number): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ metadata: { index, term, confState: { voters: [], learners: [] } } });
  return s;
}

function logWith(entries: Entry[]): RaftLog {
  const l = new RaftLog(new MemoryStorage());
  l.append(entries);
  return l;
}

const previous = ents([1, 1], [2, 2], [3, 3]);

describe('RaftLog', () => {
  it.each([
    [[], 0],
    [ents([1, 1], [2, 2], [3, 3]), 0],
    [ents([2, 2], [3, 3]), 0],
    [ents([3, 3]), 0],
    // New entries.
    [ents([1, 1], [2, 2], [3, 3], [4, 4], [5, 4]), 4],
    [ents([2, 2], [3, 3], [4, 4], [5, 4]), 4],
    [ents([3, 3], [4, 4], [5, 4]), 4],
    [ents([4, 4], [5, 4]), 4],
    // Conflicts with existing entries.
    [ents([1, 4], [2, 4]), 1],
    [ents([2, 1], [3, 4], [4, 4]), 2],
    [ents([3, 1], [4, 2], [5, 4], [6, 4]), 3],
  ] as [Entry[], number][])('findConflict #%#', (e, want) => {
    expect(logWith(previous).findConflict(e)).toBe(want);
  });

  it('isUpToDate', () => {
    const l = logWith(previous);
    const li = l.lastIndex();
    const cases: [number, number, boolean][] = [
      // Greater term, ignore lastIndex.
      [li - 1, 4, true], [li, 4, true], [li + 1, 4, true],
      // Smaller term, ignore lastIndex.
      [li - 1, 2, false], [li, 2, false], [li + 1, 2, false],
      // Equal term, the longer log wins.
      [li - 1, 3, false], [li, 3, true], [li + 1, 3, true],
    ];
    for (const [index, term, want] of cases) expect(l.isUpToDate(index, term), `${index}/${term}`).toBe(want);
  });

  it.each([
    [[], 2, ents([1, 1], [2, 2]), 3],
    [ents([3, 2]), 3, ents([1, 1], [2, 2], [3, 2]), 3],
    // Conflicts with index 1.
    [ents([1, 2]), 1, ents([1, 2]), 1],
    // Conflicts with index 2.
    [ents([2, 3], [3, 3]), 3, ents([1, 1], [2, 3], [3, 3]), 2],
  ] as [Entry[], number, Entry[], number][])('append #%#', (e, windex, wents, wunstable) => {
    const storage = new MemoryStorage();
    storage.append(ents([1, 1], [2, 2]));
    const l = new RaftLog(storage);
    expect(l.append(e)).toBe(windex);
    expect(l.entries(1, NO_LIMIT)).toEqual(wents);
    expect(l.unstable.offset).toBe(wunstable);
  });

  describe('maybeAppend', () => {
    const lastIndex = 3;
    const lastTerm = 3;
    const commit = 1;
    const cases: [number, number, number, Entry[], number | undefined, number, boolean][] = [
      // logTerm, index, committed, ents -> wlasti (undefined = not appended), wcommit, wthrow
      // Not match: term is different.
      [lastTerm - 1, lastIndex, lastIndex, ents([lastIndex + 1, 4]), undefined, commit, false],
      // Not match: index out of bound.
      [lastTerm, lastIndex + 1, lastIndex, ents([lastIndex + 2, 4]), undefined, commit, false],
      // Match with the last existing entry.
      [lastTerm, lastIndex, lastIndex, [], lastIndex, lastIndex, false],
      [lastTerm, lastIndex, lastIndex + 1, [], lastIndex, lastIndex, false], // no commit past lastnewi
      [lastTerm, lastIndex, lastIndex - 1, [], lastIndex, lastIndex - 1, false], // commit up to the message's
      [lastTerm, lastIndex, 0, [], lastIndex, commit, false], // commit does not decrease
      [0, 0, lastIndex, [], 0, commit, false], // commit does not decrease
      [lastTerm, lastIndex, lastIndex, ents([lastIndex + 1, 4]), lastIndex + 1, lastIndex, false],
      [lastTerm, lastIndex, lastIndex + 1, ents([lastIndex + 1, 4]), lastIndex + 1, lastIndex + 1, false],
      [lastTerm, lastIndex, lastIndex + 2, ents([lastIndex + 1, 4]), lastIndex + 1, lastIndex + 1, false],
      [lastTerm, lastIndex, lastIndex + 2, ents([lastIndex + 1, 4], [lastIndex + 2, 4]), lastIndex + 2, lastIndex + 2, false],
      // Match with an entry in the middle.
      [lastTerm - 1, lastIndex - 1, lastIndex, ents([lastIndex, 4]), lastIndex, lastIndex, false],
      [lastTerm - 2, lastIndex - 2, lastIndex, ents([lastIndex - 1, 4]), lastIndex - 1, lastIndex - 1, false],
      // Conflicts with an existing committed entry.
      [lastTerm - 3, lastIndex - 3, lastIndex, ents([lastIndex - 2, 4]), lastIndex - 2, lastIndex - 2, true],
      [lastTerm - 2, lastIndex - 2, lastIndex, ents([lastIndex - 1, 4], [lastIndex, 4]), lastIndex, lastIndex, false],
    ];
    it.each(cases)('#%#', (logTerm, index, committed, e, wlasti, wcommit, wthrow) => {
      const l = logWith(previous);
      l.committed = commit;
      if (wthrow) {
        expect(() => l.maybeAppend(index, logTerm, committed, e)).toThrow(/conflict with committed entry/);
        return;
      }
      expect(l.maybeAppend(index, logTerm, committed, e)).toBe(wlasti);
      expect(l.committed).toBe(wcommit);
      if (wlasti !== undefined && e.length > 0) {
        expect(l.slice(l.lastIndex() - e.length + 1, l.lastIndex() + 1, NO_LIMIT)).toEqual(e);
      }
    });
  });

  it('compaction side effects: terms, matches and unstable entries survive a storage compaction', () => {
    const lastIndex = 1000;
    const unstableIndex = 750;
    const storage = new MemoryStorage();
    for (let i = 1; i <= unstableIndex; i++) storage.append(ents([i, i]));
    const l = new RaftLog(storage);
    for (let i = unstableIndex; i < lastIndex; i++) l.append(ents([i + 1, i + 1]));
    expect(l.maybeCommit(lastIndex, lastIndex)).toBe(true);
    // The test of etcd applies unstable entries; here only what is persisted may be applied.
    l.appliedTo(unstableIndex);
    const offset = 500;
    storage.compact(offset);
    expect(l.lastIndex()).toBe(lastIndex);
    for (let j = offset; j <= l.lastIndex(); j++) {
      expect(l.term(j)).toBe(j);
      expect(l.matchTerm(j, j)).toBe(true);
    }
    const unstable = l.unstableEntries();
    expect(unstable).toHaveLength(250);
    expect(unstable[0].index).toBe(751);
    const prev = l.lastIndex();
    l.append(ents([l.lastIndex() + 1, l.lastIndex() + 1]));
    expect(l.lastIndex()).toBe(prev + 1);
    expect(l.entries(l.lastIndex(), NO_LIMIT)).toHaveLength(1);
  });

  describe('nextEnts / hasNextEnts (committed and persisted entries only)', () => {
    const e = ents([4, 1], [5, 1], [6, 1]);
    function log(stable: boolean, applied: number): RaftLog {
      const storage = snapStorage(3, 1);
      const l = new RaftLog(storage);
      l.append(e);
      if (stable) {
        storage.append(e);
        l.stableTo(6, 1);
      }
      l.maybeCommit(5, 1);
      l.appliedTo(applied);
      return l;
    }
    it.each([
      [0, true, e.slice(0, 2)],
      [3, true, e.slice(0, 2)],
      [4, true, e.slice(1, 2)],
      [5, false, []],
    ] as [number, boolean, Entry[]][])('persisted, applied %i', (applied, hasNext, wents) => {
      expect(log(true, applied).hasNextEnts()).toBe(hasNext);
      expect(log(true, applied).nextEnts()).toEqual(wents);
    });
    it('committed entries not yet persisted are not handed out (etcd 3.4 would)', () => {
      const l = log(false, 3);
      expect(l.committed).toBe(5);
      expect(l.hasNextEnts()).toBe(false);
      expect(l.nextEnts()).toEqual([]);
      (l.storage as MemoryStorage).append(e.slice(0, 1));
      l.stableTo(4, 1);
      expect(l.nextEnts()).toEqual(e.slice(0, 1));
    });
    it('a size limit hands out at least one entry', () => {
      const storage = new MemoryStorage();
      const big = [1, 2, 3].map((i) => ({ index: i, term: 1, type: 0 as const, data: Buffer.alloc(100) }));
      storage.append(big);
      const l = new RaftLog(storage, 150);
      l.commitTo(3);
      expect(l.nextEnts().map((x) => x.index)).toEqual([1]);
      const l2 = new RaftLog(storage, 250);
      l2.commitTo(3);
      expect(l2.nextEnts().map((x) => x.index)).toEqual([1, 2]);
    });
  });

  it.each([
    [3, []],
    [1, ents([1, 1], [2, 2])],
  ] as [number, Entry[]][])('unstableEntries, unstable from %i', (unstable, wents) => {
    const prev = ents([1, 1], [2, 2]);
    const storage = new MemoryStorage();
    storage.append(prev.slice(0, unstable - 1));
    const l = new RaftLog(storage);
    l.append(prev.slice(unstable - 1));
    const got = l.unstableEntries();
    if (got.length > 0) l.stableTo(got[got.length - 1].index, got[got.length - 1].term);
    expect(got).toEqual(wents);
    expect(l.unstable.offset).toBe(3);
  });

  it.each([
    [3, 3, false],
    [1, 2, false], // never decrease
    [4, 0, true], // out of range
  ])('commitTo %i', (c, wcommit, wthrow) => {
    const l = logWith(previous);
    l.committed = 2;
    if (wthrow) {
      expect(() => l.commitTo(c)).toThrow(/out of range/);
      return;
    }
    l.commitTo(c);
    expect(l.committed).toBe(wcommit);
  });

  it.each([
    [1, 1, 2],
    [2, 2, 3],
    [2, 1, 1], // bad term
    [3, 1, 1], // bad index
  ])('stableTo(%i, %i)', (i, t, wunstable) => {
    const l = logWith(ents([1, 1], [2, 2]));
    l.stableTo(i, t);
    expect(l.unstable.offset).toBe(wunstable);
  });

  it('stableTo with a snapshot', () => {
    const snapi = 5;
    const snapt = 2;
    const cases: [number, number, Entry[], number][] = [
      [snapi + 1, snapt, [], snapi + 1],
      [snapi, snapt, [], snapi + 1],
      [snapi - 1, snapt, [], snapi + 1],
      [snapi + 1, snapt + 1, [], snapi + 1],
      [snapi, snapt + 1, [], snapi + 1],
      [snapi - 1, snapt + 1, [], snapi + 1],
      [snapi + 1, snapt, ents([snapi + 1, snapt]), snapi + 2],
      [snapi, snapt, ents([snapi + 1, snapt]), snapi + 1],
      [snapi - 1, snapt, ents([snapi + 1, snapt]), snapi + 1],
      [snapi + 1, snapt + 1, ents([snapi + 1, snapt]), snapi + 1],
      [snapi, snapt + 1, ents([snapi + 1, snapt]), snapi + 1],
      [snapi - 1, snapt + 1, ents([snapi + 1, snapt]), snapi + 1],
    ];
    for (const [i, t, newEnts, wunstable] of cases) {
      const l = new RaftLog(snapStorage(snapi, snapt));
      l.append(newEnts);
      l.stableTo(i, t);
      expect(l.unstable.offset, `${i}/${t}`).toBe(wunstable);
    }
  });

  it.each([
    [[1001], [-1], false],
    [[300, 500, 800, 900], [700, 500, 200, 100], true],
    [[300, 299], [700, -1], false],
  ])('compaction %j', (compact, wleft, wallow) => {
    const storage = new MemoryStorage();
    for (let i = 1; i <= 1000; i++) storage.append([{ index: i, term: 0, type: 0, data: Buffer.alloc(0) }]);
    const l = new RaftLog(storage);
    l.maybeCommit(1000, 0);
    l.appliedTo(l.committed);
    let failed = false;
    compact.forEach((c, j) => {
      try {
        storage.compact(c);
      } catch {
        failed = true;
        return;
      }
      expect(l.allEntries()).toHaveLength(wleft[j]);
    });
    expect(failed).toBe(!wallow);
  });

  it('restore from a storage snapshot', () => {
    const l = new RaftLog(snapStorage(1000, 1000));
    expect(l.allEntries()).toHaveLength(0);
    expect(l.firstIndex()).toBe(1001);
    expect(l.committed).toBe(1000);
    expect(l.unstable.offset).toBe(1001);
    expect(l.term(1000)).toBe(1000);
  });

  it('bounds: compacted, in range, out of range', () => {
    const offset = 100;
    const num = 100;
    const l = new RaftLog(snapStorage(offset, 0));
    for (let i = 1; i <= num; i++) l.append(ents([i + offset, 0]));
    const first = offset + 1;
    expect(() => l.slice(first - 2, first + 1, NO_LIMIT)).toThrow(ErrCompacted);
    expect(() => l.slice(first - 1, first + 1, NO_LIMIT)).toThrow(ErrCompacted);
    for (const [lo, hi] of [[first, first], [first + num / 2, first + num / 2], [first + num - 1, first + num - 1], [first + num, first + num]]) {
      expect(() => l.slice(lo, hi, NO_LIMIT)).not.toThrow();
    }
    expect(() => l.slice(first + num, first + num + 1, NO_LIMIT)).toThrow(/out of bound/);
    expect(() => l.slice(first + num + 1, first + num + 1, NO_LIMIT)).toThrow(/out of bound/);
  });

  it('term', () => {
    const offset = 100;
    const num = 100;
    const l = new RaftLog(snapStorage(offset, 1));
    for (let i = 1; i < num; i++) l.append(ents([offset + i, i]));
    expect(l.term(offset - 1)).toBe(0);
    expect(l.term(offset)).toBe(1);
    expect(l.term(offset + num / 2)).toBe(num / 2);
    expect(l.term(offset + num - 1)).toBe(num - 1);
    expect(l.term(offset + num)).toBe(0);
  });

  it('term with an unstable snapshot', () => {
    const storageSnap = 100;
    const unstableSnap = storageSnap + 5;
    const l = new RaftLog(snapStorage(storageSnap, 1));
    l.restore({ metadata: { index: unstableSnap, term: 1, confState: { voters: [], learners: [] } } });
    expect(l.term(storageSnap)).toBe(0);
    expect(l.term(storageSnap + 1)).toBe(0);
    expect(l.term(unstableSnap - 1)).toBe(0);
    expect(l.term(unstableSnap)).toBe(1);
  });

  it('slice across storage and unstable entries, with size limits', () => {
    const offset = 100;
    const num = 100;
    const last = offset + num;
    const half = offset + num / 2;
    const halfSize = entrySize(ents([half, half])[0]);
    const storage = snapStorage(offset, 0);
    for (let i = 1; i < num / 2; i++) storage.append(ents([offset + i, offset + i]));
    const l = new RaftLog(storage);
    for (let i = num / 2; i < num; i++) l.append(ents([offset + i, offset + i]));
    const e = (i: number): Entry => ents([i, i])[0];
    expect(() => l.slice(offset - 1, offset + 1, NO_LIMIT)).toThrow(ErrCompacted);
    expect(() => l.slice(offset, offset + 1, NO_LIMIT)).toThrow(ErrCompacted);
    expect(l.slice(half - 1, half + 1, NO_LIMIT)).toEqual([e(half - 1), e(half)]);
    expect(l.slice(half, half + 1, NO_LIMIT)).toEqual([e(half)]);
    expect(l.slice(last - 1, last, NO_LIMIT)).toEqual([e(last - 1)]);
    expect(() => l.slice(last, last + 1, NO_LIMIT)).toThrow(/out of bound/);
    // At least one entry, however small the limit.
    expect(l.slice(half - 1, half + 1, 0)).toEqual([e(half - 1)]);
    expect(l.slice(half - 1, half + 1, halfSize + 1)).toEqual([e(half - 1)]);
    expect(l.slice(half - 2, half + 1, halfSize + 1)).toEqual([e(half - 2)]);
    expect(l.slice(half - 1, half + 1, halfSize * 2)).toEqual([e(half - 1), e(half)]);
    expect(l.slice(half - 1, half + 2, halfSize * 3)).toEqual([e(half - 1), e(half), e(half + 1)]);
    expect(l.slice(half, half + 2, halfSize)).toEqual([e(half)]);
    expect(l.slice(half, half + 2, halfSize * 2)).toEqual([e(half), e(half + 1)]);
  });

  it('varintSize agrees with the encoding\'s length', () => {
    const naive = (v: number): number => {
      let n = 1;
      for (let x = BigInt(v); x >= 128n; x >>= 7n) n++;
      return n;
    };
    for (let bits = 0; bits <= 53; bits++) {
      for (const v of [2 ** bits - 1, 2 ** bits, 2 ** bits + 1]) {
        if (v >= 0 && v <= Number.MAX_SAFE_INTEGER) expect(varintSize(v), `${v}`).toBe(naive(v));
      }
    }
  });

  it('entrySize is raftpb.Entry.Size()', () => {
    // Term, Index, Type always (1 + varint each); Data when present (1 + varint(len) + len).
    expect(entrySize({ index: 1, term: 1, type: 0, data: Buffer.alloc(0) })).toBe(6);
    expect(entrySize({ index: 300, term: 128, type: 1, data: Buffer.alloc(200) })).toBe(3 + 2 + 2 + 1 + 1 + 2 + 200);
  });
});
