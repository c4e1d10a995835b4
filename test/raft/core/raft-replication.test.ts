// Port of etcd-io/raft 3.4's raft_test.go (replication, commit, progress) and
// raft_flow_control_test.go. Where the leader's own copy counts toward commit, the tests make it
// durable first (persist): this core counts it only then.
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { ErrProposalDropped, MessageType, NONE, ProgressState, StateType, type Entry } from '../../../src/raft/core/types';
import { handleAppendEntries, handleHeartbeat, stepCandidate, stepFollower, stepLeader } from '../../../src/raft/core/raft-step';
import {
  Network, beat, datas, entry, ents, flat, hup, msg, mustAppendEntry, newTestLearnerRaft, newTestRaft, nextEnts, nopStepper,
  persist, propMsg, readMessages, setRandomizedElectionTimeout, storageWith,
} from './helpers';

const prop = (to = 1, data = 'somedata') => propMsg(to, data);

describe('progress', () => {
  it('the leader\'s own progress follows its durable log', () => {
    const r = newTestRaft(1, [1, 2], 5, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.prs.progress.get(2n)!.becomeReplicate();
    // The no-op is not durable yet.
    const pr = r.prs.progress.get(1n)!;
    expect([pr.state, pr.match]).toEqual([ProgressState.Replicate, 0]);
    persist(r);
    for (let i = 0; i < 5; i++) {
      expect([pr.state, pr.match, pr.next]).toEqual([ProgressState.Replicate, i + 1, i + 2]);
      r.step(prop());
      // Appended, not durable: match unchanged until the driver's advance.
      expect(pr.match).toBe(i + 1);
      persist(r);
    }
  });

  it('a heartbeat answer resumes a paused probe', () => {
    const r = newTestRaft(1, [1, 2], 5, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.prs.progress.get(2n)!.probeSent = true;
    r.step(beat(1));
    expect(r.prs.progress.get(2n)!.probeSent).toBe(true);
    r.prs.progress.get(2n)!.becomeReplicate();
    r.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, to: 1 }));
    expect(r.prs.progress.get(2n)!.probeSent).toBe(false);
  });

  it('a probing follower gets one append until it answers', () => {
    const r = newTestRaft(1, [1, 2], 5, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(prop());
    r.step(prop());
    r.step(prop());
    expect(readMessages(r)).toHaveLength(1);
  });

  it('flow control: probe sends one message, replicate fills the window, size limits split messages', () => {
    const r = newTestRaft(1, [1, 2], 5, 1, undefined, { maxInflightMsgs: 3, maxSizePerMsg: 2048 });
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.prs.progress.get(2n)!.becomeProbe();
    const blob = 'a'.repeat(1000);
    for (let i = 0; i < 10; i++) r.step(prop(1, blob));
    let ms = readMessages(r);
    // The no-op and the first proposal, in one probe.
    expect(ms.map((m) => m.type)).toEqual([MessageType.MsgApp]);
    expect(ms[0].entries.map((e) => e.data.length)).toEqual([0, 1000]);
    // Acked: replicate, three messages of two entries each.
    r.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: ms[0].entries[1].index }));
    ms = readMessages(r);
    expect(ms.map((m) => [m.type, m.entries.length])).toEqual([[MessageType.MsgApp, 2], [MessageType.MsgApp, 2], [MessageType.MsgApp, 2]]);
    // All three acked together: the last two messages, with three entries.
    r.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: ms[2].entries[1].index }));
    ms = readMessages(r);
    expect(ms.map((m) => [m.type, m.entries.length])).toEqual([[MessageType.MsgApp, 2], [MessageType.MsgApp, 1]]);
  });

  it('the uncommitted-size limit drops proposals; an empty tail takes any one proposal', () => {
    const maxEntries = 1024;
    const testEntry = entry(0, 0, 'testdata');
    const r = newTestRaft(1, [1, 2, 3], 5, 1, undefined, { maxUncommittedEntriesSize: maxEntries * 8, maxInflightMsgs: 2 * 1024 });
    r.becomeCandidate();
    r.becomeLeader();
    expect(r.uncommittedSize).toBe(0);
    r.prs.progress.get(2n)!.becomeReplicate();
    r.prs.progress.get(3n)!.becomeReplicate();
    r.uncommittedSize = 0;
    const propEnts: Entry[] = [];
    for (let i = 0; i < maxEntries; i++) {
      r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [testEntry] }));
      propEnts.push(testEntry);
    }
    expect(() => r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [testEntry] }))).toThrow(ErrProposalDropped);
    expect(readMessages(r)).toHaveLength(maxEntries * 2);
    r.reduceUncommittedSize(propEnts);
    expect(r.uncommittedSize).toBe(0);
    // A large proposal onto an empty tail is taken, then the next is dropped.
    const large = Array.from({ length: 2 * maxEntries }, () => testEntry);
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: large }));
    expect(() => r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [testEntry] }))).toThrow(ErrProposalDropped);
    expect(readMessages(r)).toHaveLength(2);
    r.reduceUncommittedSize(large);
    expect(r.uncommittedSize).toBe(0);
  });

  it.each([
    [ProgressState.Replicate, 2, 3 + 1 + 1 + 1],
    [ProgressState.Probe, 2, 2],
  ] as [ProgressState, number, number][])('a proposal advances next optimistically only in replicate (state %i)', (state, next, wnext) => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.raftLog.append(ents([1, 1], [2, 1], [3, 1]));
    r.becomeCandidate();
    r.becomeLeader();
    const pr = r.prs.progress.get(2n)!;
    pr.state = state;
    pr.next = next;
    r.step(prop());
    expect(pr.next).toBe(wnext);
  });

  it('probe: one append per heartbeat interval until the follower answers', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    const pr = r.prs.progress.get(2n)!;
    pr.becomeProbe();
    for (let i = 0; i < 3; i++) {
      if (i === 0) {
        // The first append is sent, and pauses the probe.
        mustAppendEntry(r, entry(0, 0, 'somedata'));
        r.sendAppend(2n);
        const m = readMessages(r);
        expect(m).toHaveLength(1);
        expect(m[0].index).toBe(0);
      }
      expect(pr.probeSent).toBe(true);
      for (let j = 0; j < 10; j++) {
        mustAppendEntry(r, entry(0, 0, 'somedata'));
        r.sendAppend(2n);
        expect(readMessages(r)).toHaveLength(0);
      }
      // A heartbeat does not unpause it.
      for (let j = 0; j < r.heartbeatTimeout; j++) r.step(beat(1));
      expect(pr.probeSent).toBe(true);
      const m = readMessages(r);
      expect(m.map((x) => x.type)).toEqual([MessageType.MsgHeartbeat]);
    }
    // The heartbeat answer does: one append goes out.
    r.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, to: 1 }));
    const m = readMessages(r);
    expect(m).toHaveLength(1);
    expect(m[0].index).toBe(0);
    expect(pr.probeSent).toBe(true);
  });

  it('replicate: every append goes out at once', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.prs.progress.get(2n)!.becomeReplicate();
    for (let i = 0; i < 10; i++) {
      mustAppendEntry(r, entry(0, 0, 'somedata'));
      r.sendAppend(2n);
      expect(readMessages(r)).toHaveLength(1);
    }
  });

  it('snapshot: nothing is sent while a snapshot is pending', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.prs.progress.get(2n)!.becomeSnapshot(10);
    for (let i = 0; i < 10; i++) {
      mustAppendEntry(r, entry(0, 0, 'somedata'));
      r.sendAppend(2n);
      expect(readMessages(r)).toHaveLength(0);
    }
  });

  it('an unreachable follower in replicate goes back to probe', () => {
    const r = newTestRaft(1, [1, 2], 10, 1, storageWith([1, 2], ents([1, 1], [2, 1], [3, 1])));
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    const pr = r.prs.progress.get(2n)!;
    pr.match = 3;
    pr.becomeReplicate();
    pr.optimisticUpdate(5);
    r.step(msg({ type: MessageType.MsgUnreachable, from: 2, to: 1 }));
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.next).toBe(pr.match + 1);
  });
});

describe('replication and commit', () => {
  it.each([
    [[prop()], 2],
    [[prop(), msg({ type: MessageType.MsgHup, from: 1, to: 2 }), msg({ type: MessageType.MsgProp, from: 1, to: 2, entries: [entry(0, 0, 'somedata')] })], 4],
  ])('log replication #%#', (msgs, wcommitted) => {
    const tt = new Network([null, null, null]);
    tt.send(hup(1));
    for (const m of msgs) tt.send(m);
    for (let id = 1; id <= 3; id++) {
      const sm = tt.raft(id);
      expect(sm.raftLog.committed).toBe(wcommitted);
      const applied = nextEnts(sm).filter((e) => e.data.length > 0);
      const props = msgs.filter((m) => m.type === MessageType.MsgProp);
      expect(datas(applied)).toEqual(props.map((m) => m.entries[0].data.toString()));
    }
  });

  it('a learner gets the log and the commit index, without counting for commit', () => {
    const n1 = newTestLearnerRaft(1, [1], [2], 10, 1);
    const n2 = newTestLearnerRaft(2, [1], [2], 10, 1);
    const nt = new Network([n1, n2]);
    n1.becomeFollower(1, NONE);
    n2.becomeFollower(1, NONE);
    setRandomizedElectionTimeout(n1, n1.electionTimeout);
    for (let i = 0; i < n1.electionTimeout; i++) n1.tick();
    nt.send(beat(1));
    expect(n1.state).toBe(StateType.Leader);
    expect(n2.isLearner).toBe(true);
    const nextCommitted = n1.raftLog.committed + 1;
    nt.send(prop());
    expect(n1.raftLog.committed).toBe(nextCommitted);
    expect(n2.raftLog.committed).toBe(n1.raftLog.committed);
    expect(n1.prs.progress.get(2n)!.match).toBe(n2.raftLog.committed);
  });

  it('a single member commits its proposals once it has persisted them', () => {
    const tt = new Network([null]);
    tt.send(hup(1));
    tt.send(prop(1, 'some data'));
    tt.send(prop(1, 'some data'));
    expect(tt.raft(1).raftLog.committed).toBe(3);
  });

  it('a single member does not commit what it has not persisted', () => {
    const r = newTestRaft(1, [1], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(prop());
    expect(r.raftLog.committed).toBe(0);
    // The no-op is durable now; the proposal too.
    persist(r);
    expect(r.raftLog.committed).toBe(2);
  });

  it('entries of an earlier term are committed only with an entry of the new term', () => {
    const tt = new Network([null, null, null, null, null]);
    tt.send(hup(1));
    // 1 can only reach 2: entries 2 and 3 do not commit.
    tt.cut(1, 3);
    tt.cut(1, 4);
    tt.cut(1, 5);
    tt.send(prop(1, 'some data'));
    tt.send(prop(1, 'some data'));
    expect(tt.raft(1).raftLog.committed).toBe(1);
    // Heal; 2 becomes leader at term 2 with appends ignored: its log has them but cannot commit them.
    tt.recover();
    tt.ignore(MessageType.MsgApp);
    tt.send(hup(2));
    expect(tt.raft(2).raftLog.committed).toBe(1);
    // Heal: the new leader's entries commit the earlier ones too.
    tt.recover();
    tt.send(beat(2));
    tt.send(prop(2, 'some data'));
    expect(tt.raft(2).raftLog.committed).toBe(5);
  });

  it('a new leader commits the earlier entries with its no-op', () => {
    const tt = new Network([null, null, null, null, null]);
    tt.send(hup(1));
    tt.cut(1, 3);
    tt.cut(1, 4);
    tt.cut(1, 5);
    tt.send(prop(1, 'some data'));
    tt.send(prop(1, 'some data'));
    expect(tt.raft(1).raftLog.committed).toBe(1);
    tt.recover();
    // 2 is elected and its no-op commits everything.
    tt.send(hup(2));
    expect(tt.raft(1).raftLog.committed).toBe(4);
  });

  it.each([
    [[null, null, null], true],
    [[null, null, nopStepper], true],
    [[null, nopStepper, nopStepper], false],
    [[null, nopStepper, nopStepper, null], false],
    [[null, nopStepper, nopStepper, null, null], true],
  ] as [(null | typeof nopStepper)[], boolean][])('a proposal is replicated when a leader is elected #%#', (peers, success) => {
    const tt = new Network(peers);
    tt.send(hup(1));
    tt.send(prop(1, 'somedata'));
    const want = success ? { committed: 2, entries: [[1, 1, ''], [2, 1, 'somedata']] } : { committed: 0, entries: [] };
    for (const [, p] of tt.peers) {
      if (p === nopStepper) continue;
      const r = p as ReturnType<Network['raft']>;
      expect({ committed: r.raftLog.committed, entries: flat(r.raftLog.allEntries()) }).toEqual(want);
    }
    expect(tt.raft(1).term).toBe(1);
  });

  it.each([[[null, null, null]], [[null, null, nopStepper]]] as [(null | typeof nopStepper)[]][])('a follower forwards a proposal to the leader #%#', (peers) => {
    const tt = new Network(peers);
    tt.send(hup(1));
    tt.send(prop(2, 'somedata'));
    for (const [, p] of tt.peers) {
      if (p === nopStepper) continue;
      const r = p as ReturnType<Network['raft']>;
      expect({ committed: r.raftLog.committed, entries: flat(r.raftLog.allEntries()) }).toEqual({ committed: 2, entries: [[1, 1, ''], [2, 1, 'somedata']] });
    }
    expect(tt.raft(1).term).toBe(1);
  });

  it.each([
    // Single member.
    [[1], ents([1, 1]), 1, 1],
    [[1], ents([1, 1]), 2, 0],
    [[2], ents([1, 1], [2, 2]), 2, 2],
    [[1], ents([1, 2]), 2, 1],
    // Odd.
    [[2, 1, 1], ents([1, 1], [2, 2]), 1, 1],
    [[2, 1, 1], ents([1, 1], [2, 1]), 2, 0],
    [[2, 1, 2], ents([1, 1], [2, 2]), 2, 2],
    [[2, 1, 2], ents([1, 1], [2, 1]), 2, 0],
    // Even.
    [[2, 1, 1, 1], ents([1, 1], [2, 2]), 1, 1],
    [[2, 1, 1, 1], ents([1, 1], [2, 1]), 2, 0],
    [[2, 1, 1, 2], ents([1, 1], [2, 2]), 1, 1],
    [[2, 1, 1, 2], ents([1, 1], [2, 1]), 2, 0],
    [[2, 1, 2, 2], ents([1, 1], [2, 2]), 2, 2],
    [[2, 1, 2, 2], ents([1, 1], [2, 1]), 2, 0],
  ] as [number[], Entry[], number, number][])('commit index from matches %j, log %j, term %i: %i', (matches, logs, smTerm, w) => {
    const storage = storageWith([1], logs);
    storage.setHardState({ term: smTerm, vote: NONE, commit: 0 });
    const sm = newTestRaft(1, [1], 10, 2, storage);
    matches.forEach((m, j) => {
      const id = BigInt(j + 1);
      if (id > 1n) sm.applyConfChange({ type: 0, nodeId: id });
      const pr = sm.prs.progress.get(id)!;
      pr.match = m;
      pr.next = m + 1;
    });
    sm.maybeCommit();
    expect(sm.raftLog.committed).toBe(w);
  });

  it('a message of an older term is not stepped into the role', () => {
    let called = false;
    const sm = newTestRaft(1, [1], 10, 1);
    sm.stepFn = () => {
      called = true;
    };
    sm.term = 2;
    sm.step(msg({ type: MessageType.MsgApp, term: sm.term - 1 }));
    expect(called).toBe(false);
  });

  it.each([
    // Ensure 1: the previous entry must match.
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 3, index: 2, commit: 3 }), 2, 0, true], // mismatch
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 3, index: 3, commit: 3 }), 2, 0, true], // does not exist
    // Ensure 2.
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 1, index: 1, commit: 1 }), 2, 1, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 0, index: 0, commit: 1, entries: ents([1, 2]) }), 1, 1, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 3, entries: ents([3, 2], [4, 2]) }), 4, 3, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 4, entries: ents([3, 2]) }), 3, 3, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 1, index: 1, commit: 4, entries: ents([2, 2]) }), 2, 2, false],
    // Ensure 3: commit up to the last new entry.
    [msg({ type: MessageType.MsgApp, term: 1, logTerm: 1, index: 1, commit: 3 }), 2, 1, false],
    [msg({ type: MessageType.MsgApp, term: 1, logTerm: 1, index: 1, commit: 3, entries: ents([2, 2]) }), 2, 2, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 3 }), 2, 2, false],
    [msg({ type: MessageType.MsgApp, term: 2, logTerm: 2, index: 2, commit: 4 }), 2, 2, false],
  ])('handleAppendEntries #%#', (m, wIndex, wCommit, wReject) => {
    const sm = newTestRaft(1, [1], 10, 1, storageWith([1], ents([1, 1], [2, 2])));
    sm.becomeFollower(2, NONE);
    handleAppendEntries(sm, m);
    expect(sm.raftLog.lastIndex()).toBe(wIndex);
    expect(sm.raftLog.committed).toBe(wCommit);
    const out = readMessages(sm);
    expect(out).toHaveLength(1);
    expect(out[0].reject).toBe(wReject);
  });

  it.each([
    [3, 3],
    [1, 2], // never decrease commit
  ])('handleHeartbeat with commit %i: %i', (commit, wCommit) => {
    const sm = newTestRaft(1, [1, 2], 5, 1, storageWith([1, 2], ents([1, 1], [2, 2], [3, 3])));
    sm.becomeFollower(2, 2n);
    sm.raftLog.commitTo(2);
    handleHeartbeat(sm, msg({ type: MessageType.MsgHeartbeat, from: 2, to: 1, term: 2, commit }));
    expect(sm.raftLog.committed).toBe(wCommit);
    const out = readMessages(sm);
    expect(out.map((m) => m.type)).toEqual([MessageType.MsgHeartbeatResp]);
  });

  it('a heartbeat answer from a follower behind makes the leader send it entries', () => {
    const sm = newTestRaft(1, [1, 2], 5, 1, storageWith([1, 2], ents([1, 1], [2, 2], [3, 3])));
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.raftLog.commitTo(sm.raftLog.lastIndex());
    // A heartbeat answer from a member not matched: an append.
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2 }));
    let msgs = readMessages(sm);
    expect(msgs.map((m) => m.type)).toEqual([MessageType.MsgApp]);
    // Again, until it answers the append.
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2 }));
    msgs = readMessages(sm);
    expect(msgs.map((m) => m.type)).toEqual([MessageType.MsgApp]);
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, index: msgs[0].index + msgs[0].entries.length }));
    readMessages(sm);
    // Matched: a heartbeat answer needs no append.
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2 }));
    expect(readMessages(sm)).toHaveLength(0);
  });

  it('after an answer, the next proposal goes only to followers not waiting on a probe', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    persist(sm);
    // Everyone gets the no-op.
    sm.bcastAppend();
    readMessages(sm);
    // 2 acks: committed (the leader's copy is durable).
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, index: 1 }));
    expect(sm.raftLog.committed).toBe(1);
    readMessages(sm);
    // A proposal goes to 2 only: 3 still has a probe outstanding.
    sm.step(msg({ type: MessageType.MsgProp, from: 1, entries: [entry(0, 0)] }));
    let msgs = readMessages(sm);
    expect(msgs.map((m) => [m.type, m.to, m.entries.map((e) => e.index)])).toEqual([[MessageType.MsgApp, 2n, [2]]]);
    // 3 acks: it gets the entry too.
    sm.step(msg({ type: MessageType.MsgAppResp, from: 3, index: 1 }));
    msgs = readMessages(sm);
    expect(msgs.map((m) => [m.type, m.to, m.entries.map((e) => e.index)])).toEqual([[MessageType.MsgApp, 3n, [2]]]);
  });

  it.each([
    [3, true, 0, 3, 0, 0, 0], // stale answer: nothing
    [2, true, 0, 2, 1, 1, 0], // denied: next decreases, a probe goes out
    [2, false, 2, 4, 2, 2, 2], // accepted: commit, broadcast with the commit index
    [0, false, 0, 3, 0, 0, 0], // a heartbeat answer is ignored here
  ])('leader handles MsgAppResp index %i reject %s', (index, reject, wmatch, wnext, wmsgNum, windex, wcommitted) => {
    // The leader's log: (1, 0), (2, 1), durable.
    const sm = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], ents([1, 0], [2, 1])));
    sm.becomeCandidate();
    sm.becomeLeader();
    readMessages(sm);
    sm.step(msg({ type: MessageType.MsgAppResp, from: 2, index, term: sm.term, reject, rejectHint: index }));
    const p = sm.prs.progress.get(2n)!;
    expect(p.match).toBe(wmatch);
    expect(p.next).toBe(wnext);
    const msgs = readMessages(sm);
    expect(msgs).toHaveLength(wmsgNum);
    for (const m of msgs) {
      expect(m.index).toBe(windex);
      expect(m.commit).toBe(wcommitted);
    }
  });

  it('heartbeats carry min(commit, follower match)', () => {
    const snapStorage = new MemoryStorage();
    snapStorage.applySnapshot({ metadata: { index: 1000, term: 1, confState: { voters: [1n, 2n, 3n], learners: [] } } });
    const sm = newTestRaft(1, [], 10, 1, snapStorage);
    sm.term = 1;
    sm.becomeCandidate();
    sm.becomeLeader();
    for (let i = 0; i < 10; i++) mustAppendEntry(sm, entry(i + 1, 0));
    sm.prs.progress.get(2n)!.match = 5;
    sm.prs.progress.get(2n)!.next = 6;
    sm.prs.progress.get(3n)!.match = sm.raftLog.lastIndex();
    sm.prs.progress.get(3n)!.next = sm.raftLog.lastIndex() + 1;
    sm.step(msg({ type: MessageType.MsgBeat }));
    const msgs = readMessages(sm);
    expect(msgs).toHaveLength(2);
    const want = new Map([[2n, Math.min(sm.raftLog.committed, 5)], [3n, Math.min(sm.raftLog.committed, sm.raftLog.lastIndex())]]);
    for (const m of msgs) {
      expect(m.type).toBe(MessageType.MsgHeartbeat);
      expect(m.index).toBe(0);
      expect(m.logTerm).toBe(0);
      expect(m.commit).toBe(want.get(m.to));
      expect(m.entries).toHaveLength(0);
    }
  });

  it.each([
    [StateType.Leader, 2],
    [StateType.Candidate, 0],
    [StateType.Follower, 0],
  ])('MsgBeat in state %i sends %i heartbeats', (state, wMsg) => {
    const sm = newTestRaft(1, [1, 2, 3], 10, 1, storageWith([1, 2, 3], ents([1, 0], [2, 1])));
    sm.term = 1;
    sm.state = state;
    sm.stepFn = state === StateType.Leader ? stepLeader : state === StateType.Candidate ? stepCandidate : stepFollower;
    sm.step(beat(1));
    const msgs = readMessages(sm);
    expect(msgs).toHaveLength(wMsg);
    for (const m of msgs) expect(m.type).toBe(MessageType.MsgHeartbeat);
  });
});

describe('flow control (raft_flow_control_test.go)', () => {
  function leaderWithReplicatingFollower(): ReturnType<typeof newTestRaft> {
    const r = newTestRaft(1, [1, 2], 5, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.prs.progress.get(2n)!.becomeReplicate();
    return r;
  }

  it('a full window stops appends', () => {
    const r = leaderWithReplicatingFollower();
    const pr2 = r.prs.progress.get(2n)!;
    for (let i = 0; i < r.prs.maxInflight; i++) {
      r.step(prop());
      expect(readMessages(r), `#${i}`).toHaveLength(1);
    }
    expect(pr2.inflights.full()).toBe(true);
    for (let i = 0; i < 10; i++) {
      r.step(prop());
      expect(readMessages(r)).toHaveLength(0);
    }
  });

  it('answers move the window forward; stale answers do not', () => {
    const r = leaderWithReplicatingFollower();
    const pr2 = r.prs.progress.get(2n)!;
    for (let i = 0; i < r.prs.maxInflight; i++) {
      r.step(prop());
      readMessages(r);
    }
    // 1 is the no-op, 2..maxInflight+1 the proposals.
    for (let tt = 2; tt < r.prs.maxInflight; tt++) {
      r.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: tt }));
      readMessages(r);
      r.step(prop());
      expect(readMessages(r)).toHaveLength(1);
      expect(pr2.inflights.full()).toBe(true);
      for (let i = 0; i < tt; i++) {
        r.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, index: i }));
        expect(pr2.inflights.full()).toBe(true);
      }
    }
  });

  it('a heartbeat answer frees one slot of a full window', () => {
    const r = leaderWithReplicatingFollower();
    const pr2 = r.prs.progress.get(2n)!;
    for (let i = 0; i < r.prs.maxInflight; i++) {
      r.step(prop());
      readMessages(r);
    }
    for (let tt = 1; tt < 5; tt++) {
      expect(pr2.inflights.full()).toBe(true);
      // Only the first heartbeat answer frees a slot.
      for (let i = 0; i < tt; i++) {
        r.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, to: 1 }));
        readMessages(r);
        expect(pr2.inflights.full()).toBe(false);
      }
      r.step(prop());
      expect(readMessages(r)).toHaveLength(1);
      for (let i = 0; i < 10; i++) {
        r.step(prop());
        expect(readMessages(r)).toHaveLength(0);
      }
      r.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, to: 1 }));
      readMessages(r);
    }
  });

  it('a proposal of one entry sends one MsgApp of that entry per replicating follower', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    for (const id of [2n, 3n]) r.prs.progress.get(id)!.becomeReplicate();
    readMessages(r);
    for (let i = 0; i < 50; i++) {
      r.step(prop());
      persist(r);
    }
    const ms = readMessages(r);
    // 50 proposals, 2 followers: one MsgApp each (the first also carries the no-op).
    const apps = ms.filter((m) => m.type === MessageType.MsgApp);
    expect(apps).toHaveLength(100);
    expect(apps.reduce((n, m) => n + m.entries.length, 0)).toBe(102);
  });
});
