// How the leader tracks each member (etcd-io/raft's tracker/ and quorum/majority.go, v1 configs
// only: one majority of voters, plus learners that never vote and never count for quorum).
import { ProgressState, RaftError, type ConfState, type NodeId } from './types';
import { compareNodeIds } from './util';

/**
 * A sliding window of the MsgApps in flight to one follower, each recorded by the index of its last
 * entry; full means the leader stops sending until answers free slots.
 */
export class Inflights {
  /** Where the window starts in the ring. */
  start = 0;
  count = 0;
  /** Grown on demand up to size, so idle followers cost little. */
  buffer: number[] = [];

  constructor(readonly size: number) {}

  clone(): Inflights {
    const c = new Inflights(this.size);
    c.start = this.start;
    c.count = this.count;
    c.buffer = this.buffer.slice();
    return c;
  }

  add(inflight: number): void {
    if (this.full()) throw new RaftError('cannot add into a Full inflights');
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    if (next >= this.buffer.length) this.grow();
    this.buffer[next] = inflight;
    this.count++;
  }

  private grow(): void {
    let newSize = this.buffer.length * 2;
    if (newSize === 0) newSize = 1;
    else if (newSize > this.size) newSize = this.size;
    const b = new Array<number>(newSize).fill(0);
    for (let i = 0; i < this.buffer.length; i++) b[i] = this.buffer[i];
    this.buffer = b;
  }

  /** Frees the inflights up to and including `to`. */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buffer[this.start]) return;
    let idx = this.start;
    let i: number;
    for (i = 0; i < this.count; i++) {
      if (to < this.buffer[idx]) break;
      if (++idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = idx;
    // Empty: restart at 0 so the buffer does not grow needlessly.
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    this.freeLE(this.buffer[this.start]);
  }

  full(): boolean {
    return this.count === this.size;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

const STATE_NAMES = ['StateProbe', 'StateReplicate', 'StateSnapshot'];

/** A follower's progress as the leader sees it (etcd-io/raft's tracker.Progress). */
export class Progress {
  match = 0;
  next = 0;
  /**
   * Probe: at most one MsgApp per heartbeat interval until the follower's log position is known.
   * Replicate: optimistic, next advances as MsgApps go out, bounded by inflights.
   * Snapshot: a snapshot is on its way; nothing else is sent.
   */
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** In Probe: a MsgApp is out; wait for its answer (or a heartbeat answer) before the next. */
  probeSent = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(fields: { match?: number; next: number; maxInflight: number; isLearner?: boolean; recentActive?: boolean }) {
    this.match = fields.match ?? 0;
    this.next = fields.next;
    this.inflights = new Inflights(fields.maxInflight);
    this.isLearner = fields.isLearner ?? false;
    this.recentActive = fields.recentActive ?? false;
  }

  clone(): Progress {
    const p = new Progress({ match: this.match, next: this.next, maxInflight: this.inflights.size, isLearner: this.isLearner, recentActive: this.recentActive });
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.probeSent = this.probeSent;
    p.inflights = this.inflights.clone();
    return p;
  }

  resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  probeAcked(): void {
    this.probeSent = false;
  }

  becomeProbe(): void {
    // Coming out of Snapshot: the snapshot got there, so probe from after it.
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement of index n: false if it is old news. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeAcked();
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A rejection of the MsgApp at `rejected`, the follower's last index being `last`: false if the
   * rejection is stale, otherwise next is lowered for another probe.
   */
  maybeDecrTo(rejected: number, last: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale if the follower matched at or past it already.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In Probe, only the answer to the probe outstanding (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.min(rejected, last + 1);
    if (this.next < 1) this.next = 1;
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe: return this.probeSent;
      case ProgressState.Replicate: return this.inflights.full();
      case ProgressState.Snapshot: return true;
      default: throw new RaftError('unexpected progress state');
    }
  }

  toString(): string {
    let s = `${STATE_NAMES[this.state]} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += ' learner';
    if (this.isPaused()) s += ' paused';
    if (this.pendingSnapshot > 0) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += ' inactive';
    if (this.inflights.count > 0) s += ` inflight=${this.inflights.count}${this.inflights.full() ? '[full]' : ''}`;
    return s;
  }
}

export const VoteResult = { Pending: 1, Lost: 2, Won: 3 } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** A majority's verdict on yes/no votes (quorum.MajorityConfig.VoteResult); an empty config wins. */
export function majorityVoteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return VoteResult.Won;
  let yes = 0;
  let no = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
    else no++;
  }
  const q = (voters.size >> 1) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

/** The highest index a majority of voters has acknowledged; an empty config puts no bound. */
export function majorityCommittedIndex(voters: ReadonlySet<NodeId>, acked: (id: NodeId) => number | undefined, scratch: number[] = []): number {
  const n = voters.size;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  scratch.length = n;
  let i = 0;
  for (const id of voters) scratch[i++] = acked(id) ?? 0;
  // Insertion sort: configs are small, and this runs on every acknowledgement.
  for (let a = 1; a < n; a++) {
    const v = scratch[a];
    let b = a - 1;
    while (b >= 0 && scratch[b] > v) {
      scratch[b + 1] = scratch[b];
      b--;
    }
    scratch[b + 1] = v;
  }
  return scratch[n - (Math.floor(n / 2) + 1)];
}

/** The configuration and every member's progress (tracker.ProgressTracker, without joint configs). */
export class ProgressTracker {
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();
  /**
   * Member ids in ascending order (etcd's visiting order) and their progress, aligned: the leader
   * walks these on every proposal, so no map lookup (bigint keys hash slowly) on that path.
   */
  ids: NodeId[] = [];
  prList: Progress[] = [];
  private readonly scratch: number[] = [];

  constructor(readonly maxInflight: number) {}

  /** Installs a configuration and its progress map (from a conf change or a restore). */
  setConfig(voters: Set<NodeId>, learners: Set<NodeId>, progress: Map<NodeId, Progress>): void {
    this.voters = voters;
    this.learners = learners;
    this.progress = progress;
    this.ids = [...progress.keys()].sort(compareNodeIds);
    this.prList = this.ids.map((id) => progress.get(id)!);
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(compareNodeIds), learners: [...this.learners].sort(compareNodeIds) };
  }

  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** The highest index a quorum of voters has durably (their match). */
  committed(): number {
    const prs = this.progress;
    return majorityCommittedIndex(this.voters, (id) => prs.get(id)?.match, this.scratch);
  }

  /** Calls f for each member in ascending id order. */
  visit(f: (id: NodeId, pr: Progress) => void): void {
    const ids = this.ids;
    const prs = this.prList;
    for (let i = 0; i < ids.length; i++) f(ids[i], prs[i]);
  }

  /** Whether a quorum of voters was active since the last check. */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    this.visit((id, pr) => {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    });
    return majorityVoteResult(this.voters, votes) === VoteResult.Won;
  }

  voterNodes(): NodeId[] {
    return [...this.voters].sort(compareNodeIds);
  }

  learnerNodes(): NodeId[] {
    return [...this.learners].sort(compareNodeIds);
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records a vote; only the first answer from a member counts. */
  recordVote(id: NodeId, v: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, v);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: majorityVoteResult(this.voters, this.votes) };
  }
}
