// Port of etcd-io/raft 3.4's log_unstable_test.go.
import { describe, expect, it } from 'vitest';
import { Unstable } from '../../../src/raft/core/log-unstable';
import type { Entry, Snapshot } from '../../../src/raft/core/types';
import { ents } from './helpers';

function snap(index: number, term: number): Snapshot {
  return { metadata: { index, term, confState: { voters: [], learners: [] } } };
}

function unstable(entries: Entry[], offset: number, s?: Snapshot): Unstable {
  const u = new Unstable(offset);
  u.entries = entries;
  u.snapshot = s;
  return u;
}

const it5 = ents([5, 1]);

describe('Unstable', () => {
  it.each([
    [it5, 5, undefined, undefined],
    [[], 0, undefined, undefined],
    [it5, 5, snap(4, 1), 5],
    [[], 5, snap(4, 1), 5],
  ] as [Entry[], number, Snapshot | undefined, number | undefined][])('maybeFirstIndex #%#', (e, offset, s, want) => {
    expect(unstable(e, offset, s).maybeFirstIndex()).toBe(want);
  });

  it.each([
    [it5, 5, undefined, 5],
    [it5, 5, snap(4, 1), 5],
    [[], 5, snap(4, 1), 4],
    [[], 0, undefined, undefined],
  ] as [Entry[], number, Snapshot | undefined, number | undefined][])('maybeLastIndex #%#', (e, offset, s, want) => {
    expect(unstable(e, offset, s).maybeLastIndex()).toBe(want);
  });

  it.each([
    [it5, 5, undefined, 5, 1],
    [it5, 5, undefined, 6, undefined],
    [it5, 5, undefined, 4, undefined],
    [it5, 5, snap(4, 1), 5, 1],
    [it5, 5, snap(4, 1), 6, undefined],
    [it5, 5, snap(4, 1), 4, 1],
    [it5, 5, snap(4, 1), 3, undefined],
    [[], 5, snap(4, 1), 5, undefined],
    [[], 5, snap(4, 1), 4, 1],
    [[], 0, undefined, 5, undefined],
  ] as [Entry[], number, Snapshot | undefined, number, number | undefined][])('maybeTerm #%#', (e, offset, s, index, want) => {
    expect(unstable(e, offset, s).maybeTerm(index)).toBe(want);
  });

  it('restore', () => {
    const u = unstable(ents([5, 1]), 5, snap(4, 1));
    const s = snap(6, 2);
    u.restore(s);
    expect(u.offset).toBe(7);
    expect(u.entries).toHaveLength(0);
    expect(u.snapshot).toEqual(s);
  });

  it.each([
    [[], 0, undefined, 5, 1, 0, 0],
    [ents([5, 1]), 5, undefined, 5, 1, 6, 0], // stable to the first entry
    [ents([5, 1], [6, 1]), 5, undefined, 5, 1, 6, 1], // stable to the first entry
    [ents([6, 2]), 6, undefined, 6, 1, 6, 1], // stable to the first entry and term mismatch
    [ents([5, 1]), 5, undefined, 4, 1, 5, 1], // stable to old entry
    [ents([5, 1]), 5, undefined, 4, 2, 5, 1], // stable to old entry
    [ents([5, 1]), 5, snap(4, 1), 5, 1, 6, 0], // with snapshot: stable to the first entry
    [ents([5, 1], [6, 1]), 5, snap(4, 1), 5, 1, 6, 1],
    [ents([6, 2]), 6, snap(5, 1), 6, 1, 6, 1], // term mismatch
    [ents([5, 1]), 5, snap(4, 1), 4, 1, 5, 1], // stable to snapshot
    [ents([5, 2]), 5, snap(4, 2), 4, 1, 5, 1], // stable to old entry
  ] as [Entry[], number, Snapshot | undefined, number, number, number, number][])('stableTo #%#', (e, offset, s, index, term, woffset, wlen) => {
    const u = unstable(e, offset, s);
    u.stableTo(index, term);
    expect(u.offset).toBe(woffset);
    expect(u.entries).toHaveLength(wlen);
  });

  it.each([
    // Append at the end.
    [ents([5, 1]), 5, ents([6, 1], [7, 1]), 5, ents([5, 1], [6, 1], [7, 1])],
    // Replace the unstable entries.
    [ents([5, 1]), 5, ents([5, 2], [6, 2]), 5, ents([5, 2], [6, 2])],
    [ents([5, 1]), 5, ents([4, 2], [5, 2], [6, 2]), 4, ents([4, 2], [5, 2], [6, 2])],
    // Truncate the existing entries and append.
    [ents([5, 1], [6, 1], [7, 1]), 5, ents([6, 2]), 5, ents([5, 1], [6, 2])],
    [ents([5, 1], [6, 1], [7, 1]), 5, ents([7, 2], [8, 2]), 5, ents([5, 1], [6, 1], [7, 2], [8, 2])],
  ] as [Entry[], number, Entry[], number, Entry[]][])('truncateAndAppend #%#', (e, offset, toAppend, woffset, wentries) => {
    const u = unstable(e, offset);
    u.truncateAndAppend(toAppend);
    expect(u.offset).toBe(woffset);
    expect(u.entries).toEqual(wentries);
  });

  it('slice copies: entries handed out do not change with later appends', () => {
    const u = unstable(ents([5, 1], [6, 1]), 5);
    const got = u.slice(5, 7);
    u.truncateAndAppend(ents([7, 1]));
    u.truncateAndAppend(ents([6, 2]));
    expect(got).toEqual(ents([5, 1], [6, 1]));
    expect(() => u.slice(4, 6)).toThrow(/out of bound/);
    expect(() => u.slice(6, 5)).toThrow(/invalid unstable.slice/);
  });
});
