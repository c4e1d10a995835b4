// Port of etcd-io/raft 3.4's snapshot tests (raft_snap_test.go and raft_test.go's TestRestore*,
// TestProvideSnap, TestSlowNodeRestore, ...): restoring, sending (metadata only) when the log no
// longer has what a follower needs, success, failure and abort.
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { Raft } from '../../../src/raft/core/raft';
import {
  ErrSnapshotTemporarilyUnavailable, MessageType, ProgressState, type ConfState, type Snapshot,
} from '../../../src/raft/core/types';
import {
  Network, beat, ents, hup, msg, newTestConfig, newTestLearnerRaft, newTestRaft, nextEnts, propMsg, readMessages,
  setRandomizedElectionTimeout, storageOf,
} from './helpers';

function snap(index: number, term: number, voters: number[], learners: number[] = []): Snapshot {
  return { metadata: { index, term, confState: { voters: voters.map(BigInt), learners: learners.map(BigInt) } } };
}

const testingSnap = snap(11, 11, [1, 2]);

/** A leader restored from testingSnap (so its log starts after 11). */
function snapLeader(peers: number[]): Raft {
  const sm = newTestRaft(1, peers, 10, 1);
  sm.restore(testingSnap);
  sm.becomeCandidate();
  sm.becomeLeader();
  return sm;
}

describe('restore', () => {
  it('restores log and configuration; the same snapshot again is refused', () => {
    const s = snap(11, 11, [1, 2, 3]);
    const sm = newTestRaft(1, [1, 2], 10, 1);
    expect(sm.restore(s)).toBe(true);
    expect(sm.raftLog.lastIndex()).toBe(11);
    expect(sm.raftLog.term(11)).toBe(11);
    expect(sm.prs.voterNodes()).toEqual([1n, 2n, 3n]);
    expect(sm.restore(s)).toBe(false);
  });

  it('with learners', () => {
    const s = snap(11, 11, [1, 2], [3]);
    const sm = newTestLearnerRaft(3, [1, 2], [3], 8, 2);
    expect(sm.restore(s)).toBe(true);
    expect(sm.raftLog.lastIndex()).toBe(11);
    expect(sm.raftLog.term(11)).toBe(11);
    expect(sm.prs.voterNodes()).toEqual([1n, 2n]);
    expect(sm.prs.learnerNodes()).toEqual([3n]);
    for (const n of [1n, 2n]) expect(sm.prs.progress.get(n)!.isLearner).toBe(false);
    expect(sm.prs.progress.get(3n)!.isLearner).toBe(true);
    expect(sm.restore(s)).toBe(false);
  });

  it('a voter restores a snapshot that makes it a learner', () => {
    const sm = newTestRaft(3, [1, 2, 3], 10, 1);
    expect(sm.isLearner).toBe(false);
    expect(sm.restore(snap(11, 11, [1, 2], [3]))).toBe(true);
    expect(sm.isLearner).toBe(true);
  });

  it('a learner restores a snapshot that promotes it', () => {
    const sm = newTestLearnerRaft(3, [1, 2], [3], 10, 1);
    expect(sm.isLearner).toBe(true);
    expect(sm.restore(snap(11, 11, [1, 2, 3]))).toBe(true);
    expect(sm.isLearner).toBe(false);
  });

  it('a learner catches up from a leader restored from a snapshot', () => {
    const s = snap(11, 11, [1], [2]);
    const n1 = newTestLearnerRaft(1, [1], [2], 10, 1);
    const n2 = newTestLearnerRaft(2, [1], [2], 10, 1);
    n1.restore(s);
    // n1 persists and applies the snapshot.
    storageOf(n1).applySnapshot(s);
    n1.raftLog.stableSnapTo(11);
    n1.raftLog.appliedTo(n1.raftLog.committed);
    const nt = new Network([n1, n2]);
    setRandomizedElectionTimeout(n1, n1.electionTimeout);
    for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
    nt.send(beat(1));
    expect(n2.raftLog.committed).toBe(n1.raftLog.committed);
  });

  it('a snapshot not newer than the commit index is ignored; one the log has fast-forwards commit', () => {
    const sm = newTestRaft(1, [1, 2], 10, 1);
    sm.raftLog.append(ents([1, 1], [2, 1], [3, 1]));
    sm.raftLog.commitTo(1);
    const s = snap(1, 1, [1, 2]);
    expect(sm.restore(s)).toBe(false);
    expect(sm.raftLog.committed).toBe(1);
    // The log has (2, 1): commit moves, nothing is restored.
    expect(sm.restore(snap(2, 1, [1, 2]))).toBe(false);
    expect(sm.raftLog.committed).toBe(2);
  });

  it('a snapshot that does not contain this member is refused', () => {
    const sm = newTestRaft(1, [1, 2], 10, 1);
    expect(sm.restore(snap(11, 11, [2, 3]))).toBe(false);
    expect(sm.raftLog.lastIndex()).toBe(0);
  });

  it('a MsgSnap makes its sender the leader', () => {
    const sm = newTestRaft(2, [1, 2], 10, 1);
    sm.step(msg({ type: MessageType.MsgSnap, from: 1, term: 2, snapshot: testingSnap }));
    expect(sm.lead).toBe(1n);
    // Answered with the new last index; handed to the driver as unstable.
    const out = readMessages(sm);
    expect(out.map((m) => [m.type, m.to, m.index])).toEqual([[MessageType.MsgAppResp, 1n, 11]]);
    expect(sm.raftLog.unstable.snapshot).toEqual(testingSnap);
  });

  it('a MsgSnap without a snapshot is answered with the commit index and changes nothing', () => {
    const sm = newTestRaft(2, [1, 2], 10, 1);
    sm.step(msg({ type: MessageType.MsgSnap, from: 1, term: 2 }));
    expect(readMessages(sm).map((m) => [m.type, m.index])).toEqual([[MessageType.MsgAppResp, 0]]);
    expect(sm.raftLog.unstable.snapshot).toBeUndefined();
  });
});

describe('sending snapshots', () => {
  it('a rejected probe below the first index sends a MsgSnap (metadata only)', () => {
    const sm = snapLeader([1]);
    sm.prs.progress.get(2n)!.next = sm.raftLog.firstIndex();
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: sm.prs.progress.get(2n)!.next - 1, reject: true }));
    const msgs = readMessages(sm);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].type).toBe(MessageType.MsgSnap);
    expect(msgs[0].snapshot).toEqual(testingSnap);
    expect(msgs[0].entries).toHaveLength(0);
    // It records the pending snapshot.
    expect(sm.prs.progress.get(2n)!.pendingSnapshot).toBe(11);
    expect(sm.prs.progress.get(2n)!.state).toBe(ProgressState.Snapshot);
  });

  it('not to a follower that is not recently active', () => {
    const sm = snapLeader([1]);
    sm.prs.progress.get(2n)!.next = sm.raftLog.firstIndex() - 1;
    sm.prs.progress.get(2n)!.recentActive = false;
    sm.step(propMsg(1));
    expect(readMessages(sm)).toHaveLength(0);
  });

  it('a pending snapshot pauses replication', () => {
    const sm = snapLeader([1, 2]);
    sm.prs.progress.get(2n)!.becomeSnapshot(11);
    sm.step(propMsg(1));
    expect(readMessages(sm)).toHaveLength(0);
  });

  it('failure: probe again from the start after a heartbeat interval', () => {
    const sm = snapLeader([1, 2]);
    const pr = sm.prs.progress.get(2n)!;
    pr.next = 1;
    pr.becomeSnapshot(11);
    sm.step(msg({ type: MessageType.MsgSnapStatus, from: 2, to: 1, reject: true }));
    expect([pr.pendingSnapshot, pr.next, pr.probeSent, pr.state]).toEqual([0, 1, true, ProgressState.Probe]);
  });

  it('success: probe from after the snapshot, once the follower answers', () => {
    const sm = snapLeader([1, 2]);
    const pr = sm.prs.progress.get(2n)!;
    pr.next = 1;
    pr.becomeSnapshot(11);
    sm.step(msg({ type: MessageType.MsgSnapStatus, from: 2, to: 1, reject: false }));
    expect([pr.pendingSnapshot, pr.next, pr.probeSent, pr.state]).toEqual([0, 12, true, ProgressState.Probe]);
  });

  it('an append answer at or past the snapshot ends it: back to replicate', () => {
    const sm = snapLeader([1, 2]);
    const pr = sm.prs.progress.get(2n)!;
    pr.next = 1;
    pr.becomeSnapshot(11);
    // Answered as if it came through appends.
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: 11 }));
    expect(pr.pendingSnapshot).toBe(0);
    expect(pr.state).toBe(ProgressState.Replicate);
    // Next is 13: the no-op at 12 went out at once.
    expect(pr.next).toBe(13);
    expect(pr.inflights.count).toBe(1);
  });

  it('a snapshot status from a follower not in snapshot state is ignored', () => {
    const sm = snapLeader([1, 2]);
    const pr = sm.prs.progress.get(2n)!;
    const before = [pr.state, pr.next, pr.probeSent];
    sm.step(msg({ type: MessageType.MsgSnapStatus, from: 2, to: 1, reject: true }));
    expect([pr.state, pr.next, pr.probeSent]).toEqual(before);
  });

  it('a snapshot temporarily unavailable is retried later, nothing sent now', () => {
    class BusyStorage extends MemoryStorage {
      busy = true;
      override snapshot(): Snapshot {
        if (this.busy) throw ErrSnapshotTemporarilyUnavailable;
        return super.snapshot();
      }
    }
    const s = new BusyStorage();
    s.applySnapshot(snap(11, 11, [1, 2]));
    const sm = new Raft(newTestConfig(1n, 10, 1, s));
    sm.becomeCandidate();
    sm.becomeLeader();
    readMessages(sm);
    const pr = sm.prs.progress.get(2n)!;
    pr.next = sm.raftLog.firstIndex();
    pr.recentActive = true;
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: pr.next - 1, reject: true }));
    expect(readMessages(sm).filter((m) => m.type === MessageType.MsgSnap)).toHaveLength(0);
    expect(pr.state).toBe(ProgressState.Probe);
    s.busy = false;
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, to: 1 }));
    expect(readMessages(sm).filter((m) => m.type === MessageType.MsgSnap)).toHaveLength(1);
    expect(pr.state).toBe(ProgressState.Snapshot);
  });

  it('a slow member catches up by snapshot after the log was compacted', () => {
    const nt = new Network([null, null, null]);
    nt.send(hup(1));
    nt.isolate(3);
    for (let j = 0; j <= 100; j++) nt.send(propMsg(1, ''));
    const lead = nt.raft(1);
    nextEnts(lead);
    const cs: ConfState = { voters: lead.prs.voterNodes(), learners: [] };
    storageOf(lead).createSnapshot(lead.raftLog.applied, cs);
    storageOf(lead).compact(lead.raftLog.applied);
    nt.recover();
    // Heartbeats until the leader knows 3 is active again, so it sends the snapshot.
    for (let i = 0; i < 100 && !lead.prs.progress.get(3n)!.recentActive; i++) nt.send(beat(1));
    expect(lead.prs.progress.get(3n)!.recentActive).toBe(true);
    // The network persisted the snapshot on 3; the snapshot's success is the driver's report.
    nt.send(msg({ type: MessageType.MsgSnapStatus, from: 3, to: 1 }));
    nt.send(propMsg(1, ''));
    const follower = nt.raft(3);
    nt.send(propMsg(1, ''));
    expect(follower.raftLog.committed).toBe(lead.raftLog.committed);
  });
});
