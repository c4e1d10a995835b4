// Port of etcd-io/raft 3.4's tracker/progress_test.go and tracker/inflights_test.go, and the
// substance of quorum/testdata/majority_{commit,vote}.txt, plus a brute-force check of the
// majority functions against their definitions.
import { describe, expect, it } from 'vitest';
import { Inflights, Progress, ProgressTracker, VoteResult, majorityCommittedIndex, majorityVoteResult } from '../../../src/raft/core/progress';
import { ProgressState, type NodeId } from '../../../src/raft/core/types';
import { mulberry32 } from './helpers';

function progress(f: Partial<Pick<Progress, 'state' | 'match' | 'next' | 'probeSent' | 'pendingSnapshot'>>): Progress {
  const p = new Progress({ next: f.next ?? 0, match: f.match ?? 0, maxInflight: 256 });
  Object.assign(p, f);
  return p;
}

/** An Inflights with a preset ring (etcd's tests build the struct directly). */
function inflights(size: number, start: number): Inflights {
  const in_ = new Inflights(size);
  in_.start = start;
  in_.buffer = new Array(size).fill(0);
  return in_;
}

describe('Progress', () => {
  it('toString', () => {
    const p = progress({ match: 1, next: 2, state: ProgressState.Snapshot, pendingSnapshot: 123, probeSent: true });
    p.isLearner = true;
    p.recentActive = false;
    p.inflights = new Inflights(1);
    p.inflights.add(123);
    expect(p.toString()).toBe('StateSnapshot match=1 next=2 learner paused pendingSnap=123 inactive inflight=1[full]');
  });

  it.each([
    [ProgressState.Probe, false, false],
    [ProgressState.Probe, true, true],
    [ProgressState.Replicate, false, false],
    [ProgressState.Replicate, true, false],
    [ProgressState.Snapshot, false, true],
    [ProgressState.Snapshot, true, true],
  ] as [ProgressState, boolean, boolean][])('isPaused: state %i probeSent %s', (state, probeSent, want) => {
    expect(progress({ state, probeSent }).isPaused()).toBe(want);
  });

  it('maybeDecrTo and maybeUpdate resume a paused probe', () => {
    const p = progress({ next: 2, probeSent: true });
    p.maybeDecrTo(1, 1);
    expect(p.probeSent).toBe(false);
    p.probeSent = true;
    p.maybeUpdate(2);
    expect(p.probeSent).toBe(false);
  });

  it.each([
    [progress({ state: ProgressState.Replicate, match: 1, next: 5 }), 2],
    [progress({ state: ProgressState.Snapshot, match: 1, next: 5, pendingSnapshot: 10 }), 11],
    [progress({ state: ProgressState.Snapshot, match: 1, next: 5, pendingSnapshot: 0 }), 2],
  ])('becomeProbe #%#', (p, wnext) => {
    p.becomeProbe();
    expect(p.state).toBe(ProgressState.Probe);
    expect(p.match).toBe(1);
    expect(p.next).toBe(wnext);
  });

  it('becomeReplicate', () => {
    const p = progress({ state: ProgressState.Probe, match: 1, next: 5 });
    p.becomeReplicate();
    expect([p.state, p.match, p.next]).toEqual([ProgressState.Replicate, 1, 2]);
  });

  it('becomeSnapshot', () => {
    const p = progress({ state: ProgressState.Probe, match: 1, next: 5 });
    p.becomeSnapshot(10);
    expect([p.state, p.match, p.pendingSnapshot]).toEqual([ProgressState.Snapshot, 1, 10]);
  });

  it.each([
    [2, 3, 5, false], // do not decrease match, next
    [3, 3, 5, false], // do not decrease next
    [4, 4, 5, true], // increase match, do not decrease next
    [5, 5, 6, true], // increase match, next
  ])('maybeUpdate(%i)', (update, wm, wn, wok) => {
    const p = progress({ match: 3, next: 5 });
    expect(p.maybeUpdate(update)).toBe(wok);
    expect([p.match, p.next]).toEqual([wm, wn]);
  });

  it.each([
    // replicate, rejected not greater than match: stale
    [ProgressState.Replicate, 5, 10, 5, 5, false, 10],
    [ProgressState.Replicate, 5, 10, 4, 4, false, 10],
    // replicate, rejected greater than match: next = match + 1
    [ProgressState.Replicate, 5, 10, 9, 9, true, 6],
    // probe: next - 1 != rejected is stale
    [ProgressState.Probe, 0, 0, 0, 0, false, 0],
    [ProgressState.Probe, 0, 10, 5, 5, false, 10],
    // next > 1: decremented by 1
    [ProgressState.Probe, 0, 10, 9, 9, true, 9],
    [ProgressState.Probe, 0, 2, 1, 1, true, 1],
    // next <= 1: reset to 1
    [ProgressState.Probe, 0, 1, 0, 0, true, 1],
    // decrease to min(rejected, last + 1)
    [ProgressState.Probe, 0, 10, 9, 2, true, 3],
    // rejected < 1: reset to 1
    [ProgressState.Probe, 0, 10, 9, 0, true, 1],
  ] as [ProgressState, number, number, number, number, boolean, number][])('maybeDecrTo #%#', (state, m, n, rejected, last, w, wn) => {
    const p = progress({ state, match: m, next: n });
    expect(p.maybeDecrTo(rejected, last)).toBe(w);
    expect(p.match).toBe(m);
    expect(p.next).toBe(wn);
  });
});

describe('Inflights', () => {
  it('add, from start 0 and with wrap-around', () => {
    const in1 = inflights(10, 0);
    for (let i = 0; i < 5; i++) in1.add(i);
    expect([in1.start, in1.count, in1.buffer]).toEqual([0, 5, [0, 1, 2, 3, 4, 0, 0, 0, 0, 0]]);
    for (let i = 5; i < 10; i++) in1.add(i);
    expect([in1.start, in1.count, in1.buffer]).toEqual([0, 10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    expect(() => in1.add(10)).toThrow(/Full/);

    const in2 = inflights(10, 5);
    for (let i = 0; i < 5; i++) in2.add(i);
    expect([in2.start, in2.count, in2.buffer]).toEqual([5, 5, [0, 0, 0, 0, 0, 0, 1, 2, 3, 4]]);
    for (let i = 5; i < 10; i++) in2.add(i);
    expect([in2.start, in2.count, in2.buffer]).toEqual([5, 10, [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]]);
  });

  it('freeLE', () => {
    const in_ = new Inflights(10);
    for (let i = 0; i < 10; i++) in_.add(i);
    in_.freeLE(4);
    expect([in_.start, in_.count, in_.buffer]).toEqual([5, 5, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    in_.freeLE(8);
    expect([in_.start, in_.count]).toEqual([9, 1]);
    for (let i = 10; i < 15; i++) in_.add(i);
    in_.freeLE(12);
    expect([in_.start, in_.count, in_.buffer]).toEqual([3, 2, [10, 11, 12, 13, 14, 5, 6, 7, 8, 9]]);
    in_.freeLE(14);
    expect([in_.start, in_.count]).toEqual([0, 0]);
  });

  it('freeFirstOne', () => {
    const in_ = new Inflights(10);
    for (let i = 0; i < 10; i++) in_.add(i);
    in_.freeFirstOne();
    expect([in_.start, in_.count]).toEqual([1, 9]);
  });

  it('the buffer grows on demand up to its size', () => {
    const in_ = new Inflights(10);
    expect(in_.buffer).toHaveLength(0);
    in_.add(1);
    expect(in_.buffer).toHaveLength(1);
    in_.add(2);
    in_.add(3);
    expect(in_.buffer).toHaveLength(4);
    for (let i = 4; i <= 10; i++) in_.add(i);
    expect(in_.buffer).toHaveLength(10);
    expect(in_.full()).toBe(true);
  });
});

const ids = (...n: number[]): Set<NodeId> => new Set(n.map(BigInt));

describe('majority quorum', () => {
  it('committed index (quorum/testdata/majority_commit.txt)', () => {
    const acked = (m: Record<number, number>) => (id: NodeId): number | undefined => m[Number(id)];
    expect(majorityCommittedIndex(ids(), acked({}))).toBe(Number.MAX_SAFE_INTEGER);
    expect(majorityCommittedIndex(ids(1), acked({}))).toBe(0);
    expect(majorityCommittedIndex(ids(1), acked({ 1: 12 }))).toBe(12);
    expect(majorityCommittedIndex(ids(1, 2), acked({ 1: 12 }))).toBe(0);
    expect(majorityCommittedIndex(ids(1, 2), acked({ 1: 12, 2: 5 }))).toBe(5);
    expect(majorityCommittedIndex(ids(1, 2, 3), acked({ 1: 12 }))).toBe(0);
    expect(majorityCommittedIndex(ids(1, 2, 3), acked({ 1: 12, 2: 5 }))).toBe(5);
    expect(majorityCommittedIndex(ids(1, 2, 3), acked({ 1: 12, 2: 5, 3: 4 }))).toBe(5);
    expect(majorityCommittedIndex(ids(1, 2, 3, 4), acked({ 1: 101, 2: 104, 3: 103, 4: 103 }))).toBe(103);
    expect(majorityCommittedIndex(ids(1, 2, 3, 4, 5), acked({ 1: 101, 2: 102, 3: 103, 4: 103 }))).toBe(102);
  });

  it('vote result (quorum/testdata/majority_vote.txt)', () => {
    const votes = (m: Record<number, boolean>): Map<NodeId, boolean> => new Map(Object.entries(m).map(([k, v]) => [BigInt(k), v]));
    expect(majorityVoteResult(ids(), votes({}))).toBe(VoteResult.Won);
    expect(majorityVoteResult(ids(1, 2), votes({}))).toBe(VoteResult.Pending);
    expect(majorityVoteResult(ids(1, 2), votes({ 1: true }))).toBe(VoteResult.Pending);
    expect(majorityVoteResult(ids(1, 2), votes({ 1: false }))).toBe(VoteResult.Lost);
    expect(majorityVoteResult(ids(1, 2), votes({ 1: true, 2: true }))).toBe(VoteResult.Won);
    expect(majorityVoteResult(ids(1, 2, 3), votes({ 1: true, 2: false }))).toBe(VoteResult.Pending);
    expect(majorityVoteResult(ids(1, 2, 3), votes({ 1: true, 2: true }))).toBe(VoteResult.Won);
    expect(majorityVoteResult(ids(1, 2, 3), votes({ 1: false, 2: false }))).toBe(VoteResult.Lost);
    // Votes from members outside the config do not count.
    expect(majorityVoteResult(ids(1, 2, 3), votes({ 4: true, 5: true, 1: true }))).toBe(VoteResult.Pending);
  });

  it('agrees with the definitions on random configurations', () => {
    const rand = mulberry32(42);
    for (let t = 0; t < 2000; t++) {
      const n = 1 + Math.floor(rand() * 7);
      const voters = ids(...Array.from({ length: n }, (_, i) => i + 1));
      const idx: Record<number, number> = {};
      const votes = new Map<NodeId, boolean>();
      for (let i = 1; i <= n; i++) {
        if (rand() < 0.8) idx[i] = Math.floor(rand() * 10);
        if (rand() < 0.7) votes.set(BigInt(i), rand() < 0.5);
      }
      // Committed: the highest index at least a majority has acknowledged.
      let want = 0;
      for (let c = 0; c <= 10; c++) {
        let have = 0;
        for (let i = 1; i <= n; i++) if ((idx[i] ?? 0) >= c) have++;
        if (have > n / 2) want = c;
      }
      expect(majorityCommittedIndex(voters, (id) => idx[Number(id)])).toBe(want);
      let yes = 0;
      let no = 0;
      for (const v of votes.values()) v ? yes++ : no++;
      const q = Math.floor(n / 2) + 1;
      const wantVote = yes >= q ? VoteResult.Won : n - no >= q ? VoteResult.Pending : VoteResult.Lost;
      expect(majorityVoteResult(voters, votes)).toBe(wantVote);
    }
  });
});

describe('ProgressTracker', () => {
  it('visits in id order, tallies only voters, first vote counts', () => {
    const t = new ProgressTracker(4);
    const prs = new Map<NodeId, Progress>();
    for (const id of [3n, 1n, 2n, 4n]) prs.set(id, new Progress({ next: 1, maxInflight: 4, isLearner: id === 4n }));
    t.setConfig(ids(1, 2, 3), ids(4), prs);
    const seen: NodeId[] = [];
    t.visit((id) => seen.push(id));
    expect(seen).toEqual([1n, 2n, 3n, 4n]);
    t.recordVote(1n, true);
    t.recordVote(1n, false);
    t.recordVote(4n, true);
    expect(t.tallyVotes()).toEqual({ granted: 1, rejected: 0, result: VoteResult.Pending });
    t.recordVote(2n, false);
    t.recordVote(3n, true);
    expect(t.tallyVotes()).toEqual({ granted: 2, rejected: 1, result: VoteResult.Won });
    expect(t.confState()).toEqual({ voters: [1n, 2n, 3n], learners: [4n] });
    expect(t.isSingleton()).toBe(false);
    // Quorum activity counts voters only.
    prs.get(4n)!.recentActive = true;
    prs.get(1n)!.recentActive = true;
    expect(t.quorumActive()).toBe(false);
    prs.get(2n)!.recentActive = true;
    expect(t.quorumActive()).toBe(true);
  });
});
