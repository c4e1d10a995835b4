// Port of etcd-io/raft 3.4's storage_test.go. etcd builds MemoryStorage{ents: [{3,3},{4,4},{5,5}]}
// directly; here the same state is a snapshot at (3, 3) followed by entries 4 and 5.
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, type ConfState, type Entry } from '../../../src/raft/core/types';
import { entrySize } from '../../../src/raft/core/util';
import { ents } from './helpers';

const NO_CS: ConfState = { voters: [], learners: [] };

function storage(...tail: [number, number][]): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ metadata: { index: 3, term: 3, confState: NO_CS } });
  s.append(ents(...tail));
  return s;
}

/** The dummy entry and the entries, as etcd's s.ents. */
function allEnts(s: MemoryStorage): [number, number][] {
  const out: [number, number][] = [[s.firstIndex() - 1, s.term(s.firstIndex() - 1)]];
  for (let i = s.firstIndex(); i <= s.lastIndex(); i++) out.push([i, s.term(i)]);
  return out;
}

describe('MemoryStorage', () => {
  it('term', () => {
    const s = storage([4, 4], [5, 5]);
    expect(() => s.term(2)).toThrow(ErrCompacted);
    expect(s.term(3)).toBe(3);
    expect(s.term(4)).toBe(4);
    expect(s.term(5)).toBe(5);
    expect(() => s.term(6)).toThrow(ErrUnavailable);
  });

  it('entries', () => {
    const s = storage([4, 4], [5, 5], [6, 6]);
    const e = ents([3, 3], [4, 4], [5, 5], [6, 6]);
    const size = (x: Entry): number => entrySize(x);
    const max = Number.MAX_SAFE_INTEGER;
    expect(() => s.entries(2, 6, max)).toThrow(ErrCompacted);
    expect(() => s.entries(3, 4, max)).toThrow(ErrCompacted);
    expect(s.entries(4, 5, max)).toEqual(ents([4, 4]));
    expect(s.entries(4, 6, max)).toEqual(ents([4, 4], [5, 5]));
    expect(s.entries(4, 7, max)).toEqual(ents([4, 4], [5, 5], [6, 6]));
    // Even if the limit is 0, the first entry is returned.
    expect(s.entries(4, 7, 0)).toEqual(ents([4, 4]));
    expect(s.entries(4, 7, size(e[1]) + size(e[2]))).toEqual(ents([4, 4], [5, 5]));
    expect(s.entries(4, 7, size(e[1]) + size(e[2]) + size(e[3]) / 2)).toEqual(ents([4, 4], [5, 5]));
    expect(s.entries(4, 7, size(e[1]) + size(e[2]) + size(e[3]) - 1)).toEqual(ents([4, 4], [5, 5]));
    expect(s.entries(4, 7, size(e[1]) + size(e[2]) + size(e[3]))).toEqual(ents([4, 4], [5, 5], [6, 6]));
    expect(() => s.entries(4, 8, max)).toThrow(/out of bound/);
    // Only the dummy entry.
    expect(() => new MemoryStorage().entries(1, 1, max)).toThrow(ErrUnavailable);
  });

  it('lastIndex', () => {
    const s = storage([4, 4], [5, 5]);
    expect(s.lastIndex()).toBe(5);
    s.append(ents([6, 5]));
    expect(s.lastIndex()).toBe(6);
  });

  it('firstIndex', () => {
    const s = storage([4, 4], [5, 5]);
    expect(s.firstIndex()).toBe(4);
    s.compact(4);
    expect(s.firstIndex()).toBe(5);
  });

  it.each([
    [2, true, 3, 3, 3],
    [3, true, 3, 3, 3],
    [4, false, 4, 4, 2],
    [5, false, 5, 5, 1],
  ])('compact(%i)', (i, werr, windex, wterm, wlen) => {
    const s = storage([4, 4], [5, 5]);
    if (werr) expect(() => s.compact(i)).toThrow(ErrCompacted);
    else s.compact(i);
    const all = allEnts(s);
    expect(all[0]).toEqual([windex, wterm]);
    expect(all).toHaveLength(wlen);
  });

  it('compact past the last index throws', () => {
    expect(() => storage([4, 4]).compact(5)).toThrow(/out of bound/);
  });

  it.each([4, 5])('createSnapshot(%i)', (i) => {
    const s = storage([4, 4], [5, 5]);
    const cs: ConfState = { voters: [1n, 2n, 3n], learners: [] };
    const snap = s.createSnapshot(i, cs);
    expect(snap).toEqual({ metadata: { index: i, term: i, confState: cs } });
    expect(s.snapshot()).toEqual(snap);
    expect(s.initialState().confState).toEqual(cs);
    // The log is kept; an older snapshot is refused.
    expect(s.lastIndex()).toBe(5);
    expect(() => s.createSnapshot(i, cs)).toThrow(ErrSnapOutOfDate);
    expect(() => s.createSnapshot(6, cs)).toThrow(/out of bound/);
  });

  it.each([
    // Appending entries already compacted changes nothing.
    [ents([1, 1], [2, 2]), [[3, 3], [4, 4], [5, 5]]],
    [ents([3, 3], [4, 4], [5, 5]), [[3, 3], [4, 4], [5, 5]]],
    // Truncates the conflicting suffix.
    [ents([3, 3], [4, 6], [5, 6]), [[3, 3], [4, 6], [5, 6]]],
    [ents([3, 3], [4, 4], [5, 5], [6, 5]), [[3, 3], [4, 4], [5, 5], [6, 5]]],
    // Truncates incoming entries already compacted.
    [ents([2, 3], [3, 3], [4, 5]), [[3, 3], [4, 5]]],
    // Truncates the existing entries and appends.
    [ents([4, 5]), [[3, 3], [4, 5]]],
    // Direct append.
    [ents([6, 5]), [[3, 3], [4, 4], [5, 5], [6, 5]]],
  ] as [Entry[], [number, number][]][])('append #%#', (e, want) => {
    const s = storage([4, 4], [5, 5]);
    s.append(e);
    expect(allEnts(s)).toEqual(want);
  });

  it('append with a gap throws', () => {
    expect(() => storage([4, 4]).append(ents([6, 4]))).toThrow(/missing log entry/);
  });

  it('applySnapshot: newer replaces the log; older is refused', () => {
    const cs: ConfState = { voters: [1n, 2n, 3n], learners: [] };
    const s = new MemoryStorage();
    s.applySnapshot({ metadata: { index: 4, term: 4, confState: cs } });
    expect(s.firstIndex()).toBe(5);
    expect(s.lastIndex()).toBe(4);
    expect(s.term(4)).toBe(4);
    expect(s.initialState().confState).toEqual(cs);
    expect(() => s.applySnapshot({ metadata: { index: 3, term: 3, confState: cs } })).toThrow(ErrSnapOutOfDate);
    expect(() => s.applySnapshot({ metadata: { index: 4, term: 4, confState: cs } })).toThrow(ErrSnapOutOfDate);
  });

  it('a snapshot point at index 0 sets the initial conf state of an empty storage only', () => {
    const cs: ConfState = { voters: [1n, 2n], learners: [3n] };
    const s = new MemoryStorage();
    s.applySnapshot({ metadata: { index: 0, term: 0, confState: cs } });
    expect(s.initialState().confState).toEqual(cs);
    expect(s.firstIndex()).toBe(1);
    s.append(ents([1, 1]));
    expect(() => s.applySnapshot({ metadata: { index: 0, term: 0, confState: cs } })).toThrow(ErrSnapOutOfDate);
  });

  it('setHardState is returned by initialState', () => {
    const s = new MemoryStorage();
    expect(s.initialState().hardState).toEqual({ term: 0, vote: 0n, commit: 0 });
    s.setHardState({ term: 3, vote: 2n, commit: 1 });
    expect(s.initialState().hardState).toEqual({ term: 3, vote: 2n, commit: 1 });
  });
});
