// RawNode, the public API: the substance of etcd-io/raft 3.4's rawnode_test.go, and this core's
// contract with its driver (durability-safe self-accounting, only persisted entries applied,
// MustSync, bootstrap from storage, restart with applied = snapshot index).
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { RawNode, decodeConfChange, encodeConfChange, maySendBeforePersist } from '../../../src/raft/core/raw-node';
import {
  ConfChangeType, EntryType, ErrProposalDropped, ErrStepLocalMsg, ErrStepPeerNotFound, MessageType, NONE, ProgressState,
  RaftError, SnapshotStatus, StateType, type ConfChange, type Entry, type HardState, type Message, type Ready,
} from '../../../src/raft/core/types';
import { entrySize, isLocalMsg, isResponseMsg } from '../../../src/raft/core/util';
import { datas, entry, ents, msg, newTestConfig, newTestMemoryStorage, readMessages, storageWith } from './helpers';

/** What a driver does with a Ready: persist (storage), then advance. Returns the Ready. */
function handle(rn: RawNode, s: MemoryStorage): Ready {
  const rd = rn.ready();
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
  rn.advance(rd);
  return rd;
}

/** Handles Readies until there are none; returns them. */
function drain(rn: RawNode, s: MemoryStorage): Ready[] {
  const out: Ready[] = [];
  for (let i = 0; rn.hasReady(); i++) {
    if (i > 100) throw new Error('Ready loop does not end');
    out.push(handle(rn, s));
  }
  return out;
}

const addNode = (id: number, context = ''): ConfChange => ({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: BigInt(id), context: Buffer.from(context) });

/** The driver's bootstrap of a new cluster: ADD_NODE entries at term 1, committed, conf state set. */
function bootstrapStorage(ids: number[]): MemoryStorage {
  const s = newTestMemoryStorage(ids.map(BigInt));
  s.append(ids.map((id, i) => ({ index: i + 1, term: 1, type: EntryType.CONF_CHANGE, data: encodeConfChange(addNode(id, `m${id}`)) })));
  s.setHardState({ term: 1, vote: NONE, commit: ids.length });
  return s;
}

describe('RawNode', () => {
  it('step refuses local message types and answers from unknown members', () => {
    const s = storageWith([1], ents([1, 1]));
    s.setHardState({ term: 1, vote: NONE, commit: 1 });
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    for (const t of Object.values(MessageType)) {
      const m = msg({ type: t, from: 5, to: 1, term: 1 });
      if (isLocalMsg(t)) expect(() => rn.step(m), `type ${t}`).toThrow(ErrStepLocalMsg);
      else if (isResponseMsg(t)) expect(() => rn.step(m), `type ${t}`).toThrow(ErrStepPeerNotFound);
    }
  });

  it('a single voter: proposal -> Ready{entries} -> advance -> commit -> Ready{committedEntries}', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    // Leader at once: its no-op to persist, not yet committed.
    let rd = rn.ready();
    expect(rd.softState).toEqual({ lead: 1n, raftState: StateType.Leader });
    expect(rd.hardState).toEqual({ term: 1, vote: 1n, commit: 0 });
    expect(rd.entries).toEqual([entry(1, 1)]);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.mustSync).toBe(true);
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    rn.advance(rd);
    // Durable: committed, handed out for applying.
    expect(rn.commitIndex).toBe(1);
    rd = handle(rn, s);
    expect(rd.committedEntries).toEqual([entry(1, 1)]);
    expect(rd.hardState).toEqual({ term: 1, vote: 1n, commit: 1 });
    expect(rd.mustSync).toBe(false);
    expect(rn.hasReady()).toBe(false);

    rn.propose(Buffer.from('foo'));
    expect(rn.commitIndex).toBe(1);
    rd = rn.ready();
    expect(rd.entries).toEqual([entry(2, 1, 'foo')]);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.mustSync).toBe(true);
    s.append(rd.entries);
    rn.advance(rd);
    expect(rn.commitIndex).toBe(2);
    rd = handle(rn, s);
    expect(rd.committedEntries).toEqual([entry(2, 1, 'foo')]);
    expect(rn.appliedIndex).toBe(2);
    expect(rn.hasReady()).toBe(false);
  });

  it('committed entries not yet persisted on this member are not handed out', () => {
    // A leader of three whose followers acknowledged before its own fsync: committed, not appliable.
    const s = newTestMemoryStorage([1n, 2n, 3n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    drain(rn, s);
    rn.step(msg({ type: MessageType.MsgVoteResp, from: 2, to: 1, term: 1 }));
    expect(rn.state).toBe(StateType.Leader);
    const r = rn.raft;
    // The followers acknowledge the no-op, which this member has not persisted.
    for (const id of [2, 3]) rn.step(msg({ type: MessageType.MsgAppResp, from: id, to: 1, term: 1, index: 1 }));
    expect(rn.commitIndex).toBe(1);
    const rd = rn.ready();
    expect(rd.entries).toEqual([entry(1, 1)]);
    expect(rd.committedEntries).toEqual([]);
    // Persisted: now it is handed out.
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    rn.advance(rd);
    expect(rn.ready().committedEntries).toEqual([entry(1, 1)]);
    expect(r.raftLog.applied).toBe(0);
  });

  it('the leader counts itself only once durable: one follower\'s ack is not a quorum of three before the fsync', () => {
    const s = newTestMemoryStorage([1n, 2n, 3n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    drain(rn, s);
    rn.step(msg({ type: MessageType.MsgVoteResp, from: 2, to: 1, term: 1 }));
    const rd = rn.ready();
    // The leader's appends may go out before its fsync.
    expect(rd.messages.filter(maySendBeforePersist).map((m) => m.type)).toEqual([MessageType.MsgApp, MessageType.MsgApp]);
    rn.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, term: 1, index: 1 }));
    expect(rn.commitIndex).toBe(0);
    s.append(rd.entries);
    if (rd.hardState) s.setHardState(rd.hardState);
    rn.advance(rd);
    expect(rn.commitIndex).toBe(1);
    // The commit goes to the follower that is not waiting on a probe (3 is).
    const next = rn.ready();
    const apps = next.messages.filter((m) => m.type === MessageType.MsgApp);
    expect(apps[apps.length - 1]).toMatchObject({ to: 2n, commit: 1 });
    expect(apps.every((m) => m.to === 2n)).toBe(true);
  });

  it('maySendBeforePersist: appends, heartbeats and snapshots only', () => {
    const ok = [MessageType.MsgApp, MessageType.MsgHeartbeat, MessageType.MsgSnap];
    for (const t of Object.values(MessageType)) expect(maySendBeforePersist(msg({ type: t })), `type ${t}`).toBe((ok as MessageType[]).includes(t));
  });

  it('mustSync: when term, vote or entries change, not for commit alone', () => {
    const s = newTestMemoryStorage([1n, 2n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.step(msg({ type: MessageType.MsgHeartbeat, from: 2, to: 1, term: 3 }));
    let rd = handle(rn, s);
    expect(rd.hardState).toEqual({ term: 3, vote: NONE, commit: 0 });
    expect(rd.mustSync).toBe(true);
    rn.step(msg({ type: MessageType.MsgApp, from: 2, to: 1, term: 3, index: 0, logTerm: 0, entries: [entry(1, 3, 'x')] }));
    rd = handle(rn, s);
    expect(rd.mustSync).toBe(true);
    rn.step(msg({ type: MessageType.MsgHeartbeat, from: 2, to: 1, term: 3, commit: 1 }));
    rd = handle(rn, s);
    expect(rd.hardState).toEqual({ term: 3, vote: NONE, commit: 1 });
    expect(rd.mustSync).toBe(false);
  });

  it('a Ready\'s entries are its own: later proposals do not change them', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    const rd = rn.ready();
    rn.propose(Buffer.from('later'));
    expect(rd.entries).toEqual([entry(1, 1)]);
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    rn.advance(rd);
    expect(rn.ready().entries).toEqual([entry(2, 1, 'later')]);
  });

  it('proposals and conf changes through a single-voter cluster; conf changes are refused while one is pending', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    const applied: Entry[] = [];
    const cycle = (): void => {
      for (const rd of drain(rn, s)) {
        for (const e of rd.committedEntries) {
          applied.push(e);
          if (e.type === EntryType.CONF_CHANGE) rn.applyConfChange(decodeConfChange(e.data));
        }
      }
    };
    cycle();
    rn.propose(Buffer.from('somedata'));
    const cc = addNode(2, 'new member');
    rn.proposeConfChange(cc);
    // A second one while the first is pending: an empty entry.
    rn.proposeConfChange(addNode(3));
    cycle();
    expect(applied.map((e) => [e.index, e.type, e.data.length > 0 ? e.data.toString('latin1') : ''])).toEqual([
      [1, EntryType.NORMAL, ''],
      [2, EntryType.NORMAL, 'somedata'],
      [3, EntryType.CONF_CHANGE, encodeConfChange(cc).toString('latin1')],
      [4, EntryType.NORMAL, ''],
    ]);
    expect(decodeConfChange(applied[2].data)).toEqual(cc);
    expect(rn.raft.prs.confState()).toEqual({ voters: [1n, 2n], learners: [] });
    // Applied: a new conf change may be proposed; with two voters it needs 2's ack to commit.
    rn.proposeConfChange(addNode(3));
    expect(rn.raft.pendingConfIndex).toBe(5);
  });

  it('adding a duplicate node is applied idempotently', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    const apply = (): void => {
      for (const rd of drain(rn, s)) {
        for (const e of rd.committedEntries) if (e.type === EntryType.CONF_CHANGE) rn.applyConfChange(decodeConfChange(e.data));
      }
    };
    apply();
    rn.proposeConfChange(addNode(2));
    apply();
    rn.proposeConfChange(addNode(2));
    // Two voters now: 2 must acknowledge. Pretend it did.
    const last = rn.raft.raftLog.lastIndex();
    drain(rn, s);
    rn.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, term: rn.term, index: last }));
    apply();
    expect(rn.raft.prs.confState()).toEqual({ voters: [1n, 2n], learners: [] });
    expect(rn.appliedIndex).toBe(last);
  });

  it('readIndex: answered as a ReadState once the leader has committed in its term', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    rn.readIndex(Buffer.from('early'));
    let rds = drain(rn, s);
    expect(rds.flatMap((r) => r.readStates).map((x) => [x.index, x.requestCtx.toString()])).toEqual([[1, 'early']]);
    rn.readIndex(Buffer.from('later'));
    expect(rn.hasReady()).toBe(true);
    rds = drain(rn, s);
    expect(rds.flatMap((r) => r.readStates).map((x) => [x.index, x.requestCtx.toString()])).toEqual([[1, 'later']]);
    // Read states are handed out once.
    expect(rn.hasReady()).toBe(false);
  });

  it('starts from the driver\'s bootstrap: members known, their conf changes handed out once', () => {
    const s = bootstrapStorage([1]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    expect(rn.raft.prs.voterNodes()).toEqual([1n]);
    const rd = handle(rn, s);
    expect(rd.committedEntries.map((e) => [e.index, e.type])).toEqual([[1, EntryType.CONF_CHANGE]]);
    // Applying it again (the driver applies every conf change entry) changes nothing.
    expect(rn.applyConfChange(decodeConfChange(rd.committedEntries[0].data))).toEqual({ voters: [1n], learners: [] });
    rn.campaign();
    const noop = drain(rn, s).flatMap((r) => r.committedEntries);
    expect(rn.state).toBe(StateType.Leader);
    expect(rn.term).toBe(2);
    expect(noop.map((e) => [e.index, e.term, e.data.toString()])).toEqual([[2, 2, '']]);
    rn.propose(Buffer.from('foo'));
    const applied = drain(rn, s).flatMap((r) => r.committedEntries);
    expect(applied.map((e) => [e.index, e.term, e.data.toString()])).toEqual([[3, 2, 'foo']]);
    expect(s.initialState().hardState).toEqual({ term: 2, vote: 1n, commit: 3 });
  });

  it('restarts from storage: committed entries after applied are handed out; nothing to persist', () => {
    const s = storageWith([1], [entry(1, 1), entry(2, 1, 'foo')]);
    s.setHardState({ term: 1, vote: NONE, commit: 1 });
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    const rd = rn.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.entries).toEqual([]);
    expect(rd.committedEntries).toEqual([entry(1, 1)]);
    expect(rd.mustSync).toBe(false);
    rn.advance(rd);
    expect(rn.hasReady()).toBe(false);
  });

  it('restarts from a snapshot with applied = the snapshot index', () => {
    const s = new MemoryStorage();
    s.applySnapshot({ metadata: { index: 2, term: 1, confState: { voters: [1n, 2n], learners: [] } } });
    s.append([entry(3, 1, 'foo')]);
    s.setHardState({ term: 1, vote: NONE, commit: 3 });
    const rn = new RawNode(newTestConfig(1n, 10, 1, s, { applied: 2 }));
    const rd = rn.ready();
    expect(rd.hardState).toBeUndefined();
    expect(rd.committedEntries).toEqual([entry(3, 1, 'foo')]);
    expect(rd.mustSync).toBe(false);
    rn.advance(rd);
    expect(rn.hasReady()).toBe(false);
  });

  it('restarts when the snapshot is newer than the hard state\'s commit (the snapshot index is committed)', () => {
    const s = new MemoryStorage();
    s.applySnapshot({ metadata: { index: 5, term: 2, confState: { voters: [1n, 2n], learners: [] } } });
    s.setHardState({ term: 2, vote: NONE, commit: 3 });
    const rn = new RawNode(newTestConfig(1n, 10, 1, s, { applied: 5 }));
    expect(rn.commitIndex).toBe(5);
    expect(rn.appliedIndex).toBe(5);
  });

  it('refuses to start on a hard state committing past the log', () => {
    const s = storageWith([1], [entry(1, 1)]);
    s.setHardState({ term: 1, vote: NONE, commit: 2 });
    expect(() => new RawNode(newTestConfig(1n, 10, 1, s))).toThrow(RaftError);
  });

  it('refuses a bad configuration', () => {
    const s = newTestMemoryStorage([1n]);
    expect(() => new RawNode(newTestConfig(0n, 10, 1, s))).toThrow(/none as id/);
    expect(() => new RawNode(newTestConfig(1n, 10, 0, s))).toThrow(/heartbeat tick/);
    expect(() => new RawNode(newTestConfig(1n, 1, 1, s))).toThrow(/election tick/);
    expect(() => new RawNode(newTestConfig(1n, 10, 1, s, { maxInflightMsgs: 0 }))).toThrow(/inflight/);
  });

  it('committed entries are paginated after a restart, without gaps', () => {
    const s = new MemoryStorage();
    const es: Entry[] = [];
    let size = 0;
    for (let i = 1; i <= 10; i++) {
      es.push(entry(i, 1, 'a'));
      size += entrySize(es[es.length - 1]);
    }
    s.applySnapshot({ metadata: { index: 0, term: 0, confState: { voters: [1n], learners: [] } } });
    s.append([...es, entry(11, 1, 'boom')]);
    s.setHardState({ term: 1, vote: 1n, commit: 10 });
    const rn = new RawNode(newTestConfig(1n, 10, 1, s, { maxSizePerMsg: size - entrySize(es[9]) - 1 }));
    let highestApplied = 0;
    for (let round = 0; highestApplied !== 11; round++) {
      expect(round).toBeLessThan(20);
      const rd = rn.ready();
      const n = rd.committedEntries.length;
      expect(n, `stopped applying at ${highestApplied}`).toBeGreaterThan(0);
      if (highestApplied !== 0) expect(rd.committedEntries[0].index).toBe(highestApplied + 1);
      // Bounded by the size limit (at least one entry).
      expect(n === 1 || rd.committedEntries.reduce((x, e) => x + entrySize(e), 0) <= size).toBe(true);
      highestApplied = rd.committedEntries[n - 1].index;
      rn.advance(rd);
      rn.step(msg({ type: MessageType.MsgHeartbeat, to: 1, from: 1, term: 1, commit: 11 }));
    }
  });

  it('the uncommitted-size limit bounds a partitioned leader\'s log', () => {
    const maxEntries = 16;
    const data = Buffer.from('testdata');
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s, { maxUncommittedEntriesSize: maxEntries * data.length }));
    rn.campaign();
    drain(rn, s);
    expect(rn.lead).toBe(1n);
    let dropped = 0;
    for (let i = 0; i < 1024; i++) {
      try {
        rn.propose(data);
      } catch (err) {
        expect(err).toBe(ErrProposalDropped);
        dropped++;
      }
    }
    expect(dropped).toBe(1024 - maxEntries);
    expect(rn.raft.uncommittedSize).toBe(maxEntries * data.length);
    // Persisted, committed, applied: the tail is empty again.
    const rds = drain(rn, s);
    expect(rds.flatMap((r) => r.committedEntries)).toHaveLength(maxEntries);
    expect(rn.raft.uncommittedSize).toBe(0);
  });

  it('status and the cheap getters', () => {
    const s = newTestMemoryStorage([1n, 2n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    let st = rn.status();
    expect(st.progress).toBeUndefined();
    expect([st.id, st.softState.raftState, st.hardState.term]).toEqual([1n, StateType.Follower, 0]);
    rn.campaign();
    drain(rn, s);
    rn.step(msg({ type: MessageType.MsgVoteResp, from: 2, to: 1, term: 1 }));
    drain(rn, s);
    st = rn.status();
    expect(st.softState).toEqual({ lead: 1n, raftState: StateType.Leader });
    expect(st.hardState).toEqual({ term: 1, vote: 1n, commit: 0 });
    expect(st.leadTransferee).toBe(NONE);
    expect(st.progress!.get(1n)).toEqual({ match: 1, next: 2, state: ProgressState.Replicate, recentActive: false, isLearner: false });
    expect(st.progress!.get(2n)!.state).toBe(ProgressState.Probe);
    expect([rn.lead, rn.term, rn.state, rn.commitIndex, rn.appliedIndex]).toEqual([1n, 1, StateType.Leader, 0, 0]);
  });

  it('a follower forwards proposals to the leader and drops them without one', () => {
    const s = newTestMemoryStorage([1n, 2n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    expect(() => rn.propose(Buffer.from('x'))).toThrow(ErrProposalDropped);
    rn.step(msg({ type: MessageType.MsgHeartbeat, from: 2, to: 1, term: 1 }));
    rn.propose(Buffer.from('x'));
    const rd = rn.ready();
    expect(rd.messages.map((m: Message) => [m.type, m.to, datas(m.entries)])).toContainEqual([MessageType.MsgProp, 2n, ['x']]);
  });

  it('transferLeader, reportUnreachable and reportSnapshot reach the leader', () => {
    const s = newTestMemoryStorage([1n, 2n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    rn.campaign();
    rn.step(msg({ type: MessageType.MsgVoteResp, from: 2, to: 1, term: 1 }));
    drain(rn, s);
    const pr = rn.raft.prs.progress.get(2n)!;
    rn.step(msg({ type: MessageType.MsgAppResp, from: 2, to: 1, term: 1, index: 1 }));
    expect(pr.state).toBe(ProgressState.Replicate);
    rn.reportUnreachable(2n);
    expect(pr.state).toBe(ProgressState.Probe);
    pr.becomeSnapshot(5);
    rn.reportSnapshot(2n, SnapshotStatus.Failure);
    expect([pr.state, pr.pendingSnapshot]).toEqual([ProgressState.Probe, 0]);
    rn.transferLeader(2n);
    expect(rn.raft.leadTransferee).toBe(2n);
    // 2 is up to date: MsgTimeoutNow goes out.
    expect(readMessages(rn.raft).map((m) => m.type)).toContain(MessageType.MsgTimeoutNow);
  });

  it('hasReady is false once everything was handed out and advanced', () => {
    const s = newTestMemoryStorage([1n]);
    const rn = new RawNode(newTestConfig(1n, 10, 1, s));
    expect(rn.hasReady()).toBe(false);
    rn.campaign();
    expect(rn.hasReady()).toBe(true);
    drain(rn, s);
    expect(rn.hasReady()).toBe(false);
    const hs: HardState = s.initialState().hardState;
    expect(hs).toEqual({ term: 1, vote: 1n, commit: 1 });
  });
});
