// Port of etcd-io/raft 3.4's conf change tests (v1: AddNode, RemoveNode, UpdateNode,
// AddLearnerNode): one pending change at a time, adding and removing voters and learners, the
// quorum after a removal, and applyConfChange's idempotence (the driver applies every CONF_CHANGE
// entry again after a restart).
import { describe, expect, it } from 'vitest';
import { encodeConfChange } from '../../../src/raft/core/conf-change-codec';
import { ConfChangeType, EntryType, MessageType, NONE, StateType, type ConfChange } from '../../../src/raft/core/types';
import { entry, msg, mustAppendEntry, newTestLearnerRaft, newTestRaft, nextEnts, persist, readMessages } from './helpers';

const cc = (type: ConfChangeType, nodeId: number): ConfChange => ({ id: 0n, type, nodeId: BigInt(nodeId), context: Buffer.alloc(0) });
const ccEntry = (c: ConfChange) => ({ index: 0, term: 0, type: EntryType.CONF_CHANGE, data: encodeConfChange(c) });

describe('conf changes', () => {
  it('a proposed conf change is appended and becomes the pending one', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    const index = r.raftLog.lastIndex();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [ccEntry(cc(ConfChangeType.ADD_NODE, 3))] }));
    expect(r.raftLog.lastIndex()).toBe(index + 1);
    expect(r.pendingConfIndex).toBe(index + 1);
  });

  it('a second conf change while one is pending becomes an empty normal entry', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [ccEntry(cc(ConfChangeType.ADD_NODE, 3))] }));
    const index = r.raftLog.lastIndex();
    const pending = r.pendingConfIndex;
    r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [ccEntry(cc(ConfChangeType.ADD_NODE, 4))] }));
    expect(r.raftLog.entries(index + 1, Number.MAX_SAFE_INTEGER)).toEqual([entry(3, 1)]);
    expect(r.pendingConfIndex).toBe(pending);
  });

  it('an undecodable conf change proposal becomes an empty normal entry too', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg({ type: MessageType.MsgProp, from: 2, to: 1, entries: [{ index: 0, term: 0, type: EntryType.CONF_CHANGE, data: Buffer.from([0xff]) }] }));
    expect(r.raftLog.entries(r.raftLog.lastIndex(), Number.MAX_SAFE_INTEGER)).toEqual([entry(2, 1)]);
    // Not counted as a pending change.
    expect(r.pendingConfIndex).toBe(0);
  });

  it.each([
    [false, 0],
    [true, 1],
  ])('a new leader treats its whole log as possibly pending (entry before: %s)', (addEntry, wpending) => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    if (addEntry) mustAppendEntry(r, entry(0, 0));
    r.becomeCandidate();
    r.becomeLeader();
    expect(r.pendingConfIndex).toBe(wpending);
  });

  it('add a voter', () => {
    const r = newTestRaft(1, [1], 10, 1);
    r.applyConfChange(cc(ConfChangeType.ADD_NODE, 2));
    expect(r.prs.voterNodes()).toEqual([1n, 2n]);
  });

  it('add a learner, promote it, demote and promote this member', () => {
    const r = newTestRaft(1, [1], 10, 1);
    r.applyConfChange(cc(ConfChangeType.ADD_LEARNER_NODE, 2));
    expect(r.isLearner).toBe(false);
    expect(r.prs.learnerNodes()).toEqual([2n]);
    expect(r.prs.progress.get(2n)!.isLearner).toBe(true);
    r.applyConfChange(cc(ConfChangeType.ADD_NODE, 2));
    expect(r.prs.progress.get(2n)!.isLearner).toBe(false);
    // Demote this member.
    r.applyConfChange(cc(ConfChangeType.ADD_LEARNER_NODE, 1));
    expect(r.prs.progress.get(1n)!.isLearner).toBe(true);
    expect(r.isLearner).toBe(true);
    // Promote it back.
    r.applyConfChange(cc(ConfChangeType.ADD_NODE, 1));
    expect(r.prs.progress.get(1n)!.isLearner).toBe(false);
    expect(r.isLearner).toBe(false);
  });

  it('a new member counts as active: check quorum does not step the leader down at once', () => {
    const r = newTestRaft(1, [1], 10, 1, undefined, { checkQuorum: true });
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < r.electionTimeout - 1; i++) r.tick();
    r.applyConfChange(cc(ConfChangeType.ADD_NODE, 2));
    // This tick reaches the election timeout: the quorum check passes (2 counts as active).
    r.tick();
    expect(r.state).toBe(StateType.Leader);
    // Another election timeout without hearing from 2: it steps down.
    for (let i = 0; i < r.electionTimeout; i++) r.tick();
    expect(r.state).toBe(StateType.Follower);
  });

  it('remove a voter; removing the last one throws and changes nothing', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 2));
    expect(r.prs.voterNodes()).toEqual([1n]);
    expect(() => r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 1))).toThrow(/removed all voters/);
    expect(r.prs.voterNodes()).toEqual([1n]);
  });

  it('remove a learner', () => {
    const r = newTestLearnerRaft(1, [1], [2], 10, 1);
    r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 2));
    expect(r.prs.voterNodes()).toEqual([1n]);
    expect(r.prs.learnerNodes()).toEqual([]);
    expect(() => r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 1))).toThrow(/removed all voters/);
  });

  it('is idempotent: adding an existing voter, removing an absent member, updating, node id 0', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    const before = r.prs.confState();
    expect(r.applyConfChange(cc(ConfChangeType.ADD_NODE, 2))).toEqual(before);
    expect(r.applyConfChange(cc(ConfChangeType.ADD_NODE, 1))).toEqual(before);
    expect(r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 9))).toEqual(before);
    expect(r.applyConfChange(cc(ConfChangeType.UPDATE_NODE, 2))).toEqual(before);
    expect(r.applyConfChange(cc(ConfChangeType.ADD_NODE, 0))).toEqual(before);
    expect(r.prs.confState()).toEqual({ voters: [1n, 2n, 3n], learners: [] });
  });

  it('a leader\'s existing progress survives re-adding an existing voter', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    r.prs.progress.get(2n)!.match = 1;
    r.applyConfChange(cc(ConfChangeType.ADD_NODE, 2));
    expect(r.prs.progress.get(2n)!.match).toBe(1);
  });

  it.each([
    [[1], true],
    [[1, 2, 3], true],
    [[], false],
    [[2, 3], false],
  ])('promotable with voters %j: %s', (peers, wp) => {
    expect(newTestRaft(1, peers, 5, 1).promotable()).toBe(wp);
  });

  it.each([
    [[1, 2, 3], [1n, 2n, 3n]],
    [[3, 2, 1], [1n, 2n, 3n]],
  ])('voter nodes are sorted: %j', (peers, w) => {
    expect(newTestRaft(1, peers, 10, 1).prs.voterNodes()).toEqual(w);
  });

  it('removing a member shrinks the quorum: pending entries commit', () => {
    const r = newTestRaft(1, [1, 2], 5, 1);
    r.becomeCandidate();
    r.becomeLeader();
    const c = cc(ConfChangeType.REMOVE_NODE, 2);
    r.step(msg({ type: MessageType.MsgProp, entries: [ccEntry(c)] }));
    // Not committed: 2 has not acknowledged.
    expect(nextEnts(r)).toHaveLength(0);
    const ccIndex = r.raftLog.lastIndex();
    // While the change is pending, another proposal.
    r.step(msg({ type: MessageType.MsgProp, entries: [entry(0, 0, 'hello')] }));
    // 2 acknowledges the conf change only.
    r.step(msg({ type: MessageType.MsgAppResp, from: 2, index: ccIndex }));
    const es = nextEnts(r);
    expect(es.map((e) => [e.type, e.data.toString()])).toEqual([[EntryType.NORMAL, ''], [EntryType.CONF_CHANGE, encodeConfChange(c).toString()]]);
    // Applying the removal: the quorum is 1 now, so "hello" commits.
    r.applyConfChange(c);
    const more = nextEnts(r);
    expect(more.map((e) => [e.type, e.data.toString()])).toEqual([[EntryType.NORMAL, 'hello']]);
  });

  it('a pending conf change that is not applied keeps a member from campaigning', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeFollower(1, 2n);
    r.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 1, entries: [{ index: 1, term: 1, type: EntryType.CONF_CHANGE, data: encodeConfChange(cc(ConfChangeType.ADD_NODE, 3)) }], commit: 1 }));
    readMessages(r);
    expect(r.raftLog.committed).toBe(1);
    r.step(msg({ type: MessageType.MsgHup, from: 1, to: 1 }));
    expect(r.state).toBe(StateType.Follower);
    // Once applied, it can.
    nextEnts(r);
    r.step(msg({ type: MessageType.MsgHup, from: 1, to: 1 }));
    expect(r.state).toBe(StateType.Candidate);
  });

  it('a leader that removed itself stays leader but takes no proposals', () => {
    const r = newTestRaft(1, [1, 2], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.applyConfChange(cc(ConfChangeType.REMOVE_NODE, 1));
    expect(r.state).toBe(StateType.Leader);
    expect(r.promotable()).toBe(false);
    expect(() => r.step(msg({ type: MessageType.MsgProp, from: 1, to: 1, entries: [entry(0, 0, 'x')] }))).toThrow('raft proposal dropped');
    expect(r.lead).not.toBe(NONE);
  });
});
