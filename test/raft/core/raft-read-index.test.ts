// Port of etcd-io/raft 3.4's read-only tests (ReadOnlySafe: leadership confirmed by a heartbeat
// round), the hold until the first commit in the leader's term, and this core's differences: a
// single voter holds too until then, the queues are bounded, and a follower does not forward a read
// another member forwarded to it.
import { describe, expect, it } from 'vitest';
import { Raft } from '../../../src/raft/core/raft';
import { MAX_PENDING_READ_INDEX } from '../../../src/raft/core/read-only';
import { MessageType, StateType } from '../../../src/raft/core/types';
import {
  Network, entry, ents, hup, msg, newTestConfig, newTestLearnerRaft, newTestRaft, persist, readMessages,
  setRandomizedElectionTimeout, storageWith,
} from './helpers';

const readIndex = (id: number, ctx: string) => msg({ type: MessageType.MsgReadIndex, from: id, to: id, context: Buffer.from(ctx) });
const noop = () => msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0)] });

describe('read index (ReadOnlySafe)', () => {
  it('answers on the leader and on followers with the commit index at the time of the request', () => {
    const a = newTestRaft(1, [1, 2, 3], 10, 1);
    const b = newTestRaft(2, [1, 2, 3], 10, 1);
    const c = newTestRaft(3, [1, 2, 3], 10, 1);
    const nt = new Network([a, b, c]);
    setRandomizedElectionTimeout(b, b.electionTimeout + 1);
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(1));
    expect(a.state).toBe(StateType.Leader);
    const cases: [Raft, number, number, string][] = [
      [a, 10, 11, 'ctx1'], [b, 10, 21, 'ctx2'], [c, 10, 31, 'ctx3'],
      [a, 10, 41, 'ctx4'], [b, 10, 51, 'ctx5'], [c, 10, 61, 'ctx6'],
    ];
    for (const [r, proposals, wri, wctx] of cases) {
      for (let j = 0; j < proposals; j++) nt.send(noop());
      nt.send(readIndex(Number(r.id), wctx));
      expect(r.readStates.length, wctx).toBeGreaterThan(0);
      expect(r.readStates[0].index).toBe(wri);
      expect(r.readStates[0].requestCtx.toString()).toBe(wctx);
      r.readStates = [];
    }
  });

  it('a learner reads through the leader', () => {
    const a = newTestLearnerRaft(1, [1], [2], 10, 1);
    const b = newTestLearnerRaft(2, [1], [2], 10, 1);
    const nt = new Network([a, b]);
    setRandomizedElectionTimeout(b, b.electionTimeout + 1);
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    nt.send(hup(1));
    expect(a.state).toBe(StateType.Leader);
    const cases: [Raft, number, number, string][] = [[a, 10, 11, 'ctx1'], [b, 10, 21, 'ctx2'], [a, 10, 31, 'ctx3'], [b, 10, 41, 'ctx4']];
    for (const [r, proposals, wri, wctx] of cases) {
      for (let j = 0; j < proposals; j++) nt.send(noop());
      nt.send(readIndex(Number(r.id), wctx));
      expect(r.readStates.length, wctx).toBeGreaterThan(0);
      expect(r.readStates[0].index).toBe(wri);
      expect(r.readStates[0].requestCtx.toString()).toBe(wctx);
      r.readStates = [];
    }
  });

  it('a new leader holds reads until it has committed an entry in its term', () => {
    // 1 has committed 1 only; 2 and 3 have committed (and compacted) 2.
    const nodes: [number, number, number, number][] = [[1, 1, 1, 0], [2, 2, 2, 2], [3, 2, 2, 2]];
    const peers = nodes.map(([id, committed, applied, compactIndex]) => {
      const storage = storageWith([1, 2, 3], ents([1, 1], [2, 1]));
      storage.setHardState({ term: 1, vote: 0n, commit: committed });
      if (compactIndex !== 0) storage.compact(compactIndex);
      return new Raft(newTestConfig(BigInt(id), 10, 1, storage, { applied }));
    });
    const nt = new Network(peers);
    // Appends are lost: the new leader cannot commit in its term yet.
    nt.ignore(MessageType.MsgApp);
    nt.send(hup(1));
    const sm = nt.raft(1);
    expect(sm.state).toBe(StateType.Leader);
    // Its commit index (1) is behind what the cluster committed (2): the read must wait.
    nt.send(readIndex(1, 'ctx'));
    expect(sm.readStates).toHaveLength(0);
    nt.recover();
    // Heartbeats then a proposal: the leader commits in its term and answers with 4.
    for (let i = 0; i < sm.heartbeatTimeout; i++) sm.tick();
    nt.send(noop());
    expect(sm.raftLog.committed).toBe(4);
    expect(sm.raftLog.zeroTermOnErrCompacted(sm.raftLog.committed)).toBe(sm.term);
    expect(sm.readStates.map((r) => [r.index, r.requestCtx.toString()])).toEqual([[4, 'ctx']]);
    // Later reads are answered after a heartbeat round, no hold.
    nt.send(readIndex(1, 'ctx'));
    expect(sm.readStates.map((r) => [r.index, r.requestCtx.toString()])).toEqual([[4, 'ctx'], [4, 'ctx']]);
  });

  it('a single voter answers once it has committed in its term (its commit index may lag a restart)', () => {
    const r = newTestRaft(1, [1], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(readIndex(1, 'early'));
    expect(r.readStates).toHaveLength(0);
    // Its no-op becomes durable and commits: the held read is answered, without messages.
    persist(r);
    expect(r.raftLog.committed).toBe(1);
    expect(r.readStates.map((s) => [s.index, s.requestCtx.toString()])).toEqual([[1, 'early']]);
    r.readStates = [];
    // From now on at once.
    r.step(readIndex(1, 'now'));
    expect(r.readStates.map((s) => [s.index, s.requestCtx.toString()])).toEqual([[1, 'now']]);
    expect(readMessages(r).filter((m) => m.type === MessageType.MsgHeartbeat)).toHaveLength(0);
  });

  it('frees the request once a quorum acknowledged its heartbeat', () => {
    const sm = newTestRaft(1, [1, 2], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.raftLog.commitTo(sm.raftLog.lastIndex());
    const ctx = Buffer.from('ctx');
    // A follower's read: a heartbeat round with the context.
    sm.step(msg({ type: MessageType.MsgReadIndex, from: 2, context: ctx }));
    const msgs = readMessages(sm);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].type).toBe(MessageType.MsgHeartbeat);
    expect(msgs[0].context).toEqual(ctx);
    expect(sm.readOnly.readIndexQueue).toHaveLength(1);
    expect(sm.readOnly.pendingReadIndex.size).toBe(1);
    expect(sm.readOnly.pendingReadIndex.has('ctx')).toBe(true);
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, context: ctx }));
    expect(sm.readOnly.readIndexQueue).toHaveLength(0);
    expect(sm.readOnly.pendingReadIndex.size).toBe(0);
    // The follower gets its answer.
    const resp = readMessages(sm).filter((m) => m.type === MessageType.MsgReadIndexResp);
    expect(resp.map((m) => [m.to, m.index, m.context?.toString()])).toEqual([[2n, 1, 'ctx']]);
  });

  it('an acknowledgement answers the request and those queued before it, not after', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.raftLog.commitTo(sm.raftLog.lastIndex());
    for (const c of ['a', 'b', 'c']) sm.step(readIndex(1, c));
    readMessages(sm);
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, context: Buffer.from('b') }));
    expect(sm.readStates.map((s) => s.requestCtx.toString())).toEqual(['a', 'b']);
    expect(sm.readOnly.readIndexQueue).toEqual(['c']);
  });

  it('no answer without a quorum of acknowledgements', () => {
    const sm = newTestRaft(1, [1, 2, 3, 4, 5], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.raftLog.commitTo(sm.raftLog.lastIndex());
    sm.step(readIndex(1, 'x'));
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, context: Buffer.from('x') }));
    expect(sm.readStates).toHaveLength(0);
    // Duplicates from the same member do not count twice.
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 2, context: Buffer.from('x') }));
    expect(sm.readStates).toHaveLength(0);
    sm.step(msg({ type: MessageType.MsgHeartbeatResp, from: 4, context: Buffer.from('x') }));
    expect(sm.readStates.map((s) => s.requestCtx.toString())).toEqual(['x']);
  });

  it('a follower forwards its own reads, drops reads forwarded to it, and drops reads without a leader', () => {
    const r = newTestRaft(2, [1, 2, 3], 10, 1);
    r.step(readIndex(2, 'no leader'));
    expect(readMessages(r)).toHaveLength(0);
    r.becomeFollower(1, 1n);
    r.step(msg({ type: MessageType.MsgReadIndex, context: Buffer.from('mine') }));
    const out = readMessages(r);
    expect(out.map((m) => [m.type, m.to, m.from, m.context?.toString()])).toEqual([[MessageType.MsgReadIndex, 1n, 2n, 'mine']]);
    // A read forwarded by 3 (which thought 2 leads) is not forwarded again.
    r.step(msg({ type: MessageType.MsgReadIndex, from: 3, to: 2, context: Buffer.from('from 3') }));
    expect(readMessages(r)).toHaveLength(0);
  });

  it('held and waiting requests are bounded; a leader change drops them', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    // Not committed in its term: held, up to the bound.
    for (let i = 0; i < MAX_PENDING_READ_INDEX + 10; i++) sm.step(msg({ type: MessageType.MsgReadIndex, from: 2, context: Buffer.from(`h${i}`) }));
    expect(sm.pendingReadIndexMessages).toHaveLength(MAX_PENDING_READ_INDEX);
    sm.becomeFollower(sm.term + 1, 2n);
    expect(sm.pendingReadIndexMessages).toHaveLength(0);
    // Waiting for heartbeat acknowledgements: bounded too.
    const l = newTestRaft(1, [1, 2, 3], 5, 1);
    l.becomeCandidate();
    l.becomeLeader();
    l.raftLog.commitTo(l.raftLog.lastIndex());
    for (let i = 0; i < MAX_PENDING_READ_INDEX + 10; i++) l.step(msg({ type: MessageType.MsgReadIndex, from: 2, context: Buffer.from(`w${i}`) }));
    expect(l.readOnly.readIndexQueue).toHaveLength(MAX_PENDING_READ_INDEX);
  });

  it('heartbeats carry the context of the newest waiting request', () => {
    const sm = newTestRaft(1, [1, 2, 3], 5, 1);
    sm.becomeCandidate();
    sm.becomeLeader();
    sm.raftLog.commitTo(sm.raftLog.lastIndex());
    sm.step(readIndex(1, 'r1'));
    sm.step(readIndex(1, 'r2'));
    readMessages(sm);
    sm.tick();
    const hb = readMessages(sm).filter((m) => m.type === MessageType.MsgHeartbeat);
    expect(hb.map((m) => [m.to, m.context?.toString()])).toEqual([[2n, 'r2'], [3n, 'r2']]);
  });
});
