// The raft core's public API (etcd-io/raft 3.4's RawNode): a pure state machine the driver feeds
// with ticks, proposals and peer messages, and drains through ready() / advance(rd).
import { Raft } from './raft';
import {
  EntryType, ErrStepLocalMsg, ErrStepPeerNotFound, MessageType, NONE, SnapshotStatus, StateType,
  type ConfChange, type ConfState, type HardState, type Message, type NodeId, type RaftConfig, type Ready,
  type SoftState, type Status,
} from './types';
import { encodeConfChange } from './conf-change-codec';
import { isEmptyHardState, isEmptySnap, isHardStateEqual, isLocalMsg, isResponseMsg, mustSync, newMessage } from './util';

export { encodeConfChange, decodeConfChange } from './conf-change-codec';
export { MemoryStorage } from './memory-storage';
export { maySendBeforePersist } from './util';

export class RawNode {
  /** The state machine itself; for tests and status, not for driving (use the methods). */
  readonly raft: Raft;
  private prevSoftSt: SoftState;
  private prevHardSt: HardState;

  constructor(cfg: RaftConfig) {
    this.raft = this.createRaft(cfg);
    this.prevSoftSt = this.raft.softState();
    this.prevHardSt = this.raft.hardState();
  }

  /** Where a test-only subclass substitutes a broken Raft; production code never overrides it. */
  protected createRaft(cfg: RaftConfig): Raft {
    return new Raft(cfg);
  }

  /** One tick of logical time: election and heartbeat timeouts are counted in ticks. */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election (MsgHup): ignored by leaders and by members that may not campaign. */
  campaign(): void {
    this.raft.step(newMessage({ type: MessageType.MsgHup }));
  }

  /** Proposes data for the log; throws ErrProposalDropped when no leader can take it now. */
  propose(data: Buffer): void {
    this.raft.step({
      type: MessageType.MsgProp, to: NONE, from: this.raft.id, term: 0, logTerm: 0, index: 0,
      entries: [{ index: 0, term: 0, type: EntryType.NORMAL, data }],
      commit: 0, reject: false, rejectHint: 0, snapshot: undefined, context: undefined,
    });
  }

  /** Proposes a conf change; while another is pending the leader turns it into an empty entry. */
  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(newMessage({
      type: MessageType.MsgProp, from: this.raft.id,
      entries: [{ index: 0, term: 0, type: EntryType.CONF_CHANGE, data }],
    }));
  }

  /** Applies a committed conf change (idempotent for additions); returns the ConfState to record. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Steps a message from a peer. Local message types and answers from unknown members are refused. */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw ErrStepLocalMsg;
    if (this.raft.prs.progress.has(m.from) || !isResponseMsg(m.type)) {
      this.raft.step(m);
      return;
    }
    throw ErrStepPeerNotFound;
  }

  /** Asks for a linearizable read point; the answer comes as a ReadState with this context. */
  readIndex(ctx: Buffer): void {
    this.raft.step(newMessage({ type: MessageType.MsgReadIndex, context: ctx }));
  }

  /**
   * Asks the leader to hand leadership to transferee. Called on a follower, the request is
   * forwarded as the follower's own (as in etcd): it asks for leadership for itself.
   */
  transferLeader(transferee: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.MsgTransferLeader, from: transferee }));
  }

  /** The transport could not reach id: a follower in replicate state is probed again. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.MsgUnreachable, from: id }));
  }

  /** How sending a MsgSnap to id ended; must be called for every MsgSnap the driver sends. */
  reportSnapshot(id: NodeId, status: SnapshotStatus): void {
    this.raft.step(newMessage({ type: MessageType.MsgSnapStatus, from: id, reject: status === SnapshotStatus.Failure }));
  }

  hasReady(): boolean {
    const r = this.raft;
    if (r.lead !== this.prevSoftSt.lead || r.state !== this.prevSoftSt.raftState) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !isHardStateEqual(hs, this.prevHardSt)) return true;
    const log = r.raftLog;
    if (log.unstable.snapshot && !isEmptySnap(log.unstable.snapshot)) return true;
    if (r.msgs.length > 0 || log.unstable.entries.length > 0 || log.hasNextEnts()) return true;
    return r.readStates.length !== 0;
  }

  /**
   * What the driver must do now (see Ready in types.ts). The messages and read states are handed
   * over at once; the entries, snapshot and committed entries stay until advance(rd).
   */
  ready(): Ready {
    const r = this.raft;
    const hs = r.hardState();
    const entries = r.raftLog.unstableEntries();
    const rd: Ready = {
      readStates: r.readStates,
      entries,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      mustSync: mustSync(hs, this.prevHardSt, entries.length),
    };
    if (r.lead !== this.prevSoftSt.lead || r.state !== this.prevSoftSt.raftState) {
      rd.softState = r.softState();
      this.prevSoftSt = rd.softState;
    }
    if (!isHardStateEqual(hs, this.prevHardSt)) rd.hardState = hs;
    const snap = r.raftLog.unstable.snapshot;
    if (snap) rd.snapshot = snap;
    // Both arrays now belong to the Ready: raft starts new ones (or later additions would show up
    // in this Ready too).
    r.msgs = [];
    r.readStates = [];
    return rd;
  }

  /** The driver has done what rd asked: persisted its entries and state, applied its committed entries. */
  advance(rd: Ready): void {
    if (rd.hardState && !isEmptyHardState(rd.hardState)) this.prevHardSt = rd.hardState;
    const r = this.raft;
    const n = rd.committedEntries.length;
    if (n > 0) r.raftLog.appliedTo(rd.committedEntries[n - 1].index);
    else if (rd.snapshot && rd.snapshot.metadata.index > 0) r.raftLog.appliedTo(rd.snapshot.metadata.index);
    r.reduceUncommittedSize(rd.committedEntries);
    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1];
      r.raftLog.stableTo(e.index, e.term);
    }
    if (rd.snapshot && !isEmptySnap(rd.snapshot)) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
    // A leader's own copy counts toward commit only now that it is durable.
    if (rd.entries.length > 0) r.onOwnLogDurable();
  }

  status(): Status {
    const r = this.raft;
    const s: Status = {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
    };
    if (r.state === StateType.Leader) {
      s.progress = new Map();
      r.prs.visit((id, pr) => {
        s.progress!.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, isLearner: pr.isLearner });
      });
    }
    return s;
  }

  get lead(): NodeId {
    return this.raft.lead;
  }

  get term(): number {
    return this.raft.term;
  }

  get state(): StateType {
    return this.raft.state;
  }

  get commitIndex(): number {
    return this.raft.raftLog.committed;
  }

  get appliedIndex(): number {
    return this.raft.raftLog.applied;
  }
}

