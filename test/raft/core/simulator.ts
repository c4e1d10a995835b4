// A seeded simulator for the raft core: 3 or 5 RawNodes, each behind a model of the driver (persist
// a Ready's entries and hard state, send a leader's appends before that and everything else after,
// apply committed entries, snapshot and compact every K applied entries), over a network that drops,
// delays, duplicates and reorders messages, with partitions (symmetric, asymmetric, minority /
// majority), crashes that lose everything not persisted (also in the middle of a Ready), restarts,
// ticks at different rates, proposals, read-index requests and leader transfers; with confChanges,
// configuration changes too (members added as voters or learners, learners promoted, members
// removed, the leader included; the server's side of them is in simulator-membership.ts). After
// every step it checks raft's safety properties (see the checker); after the faults stop, that a
// leader is elected and a proposal commits within a bounded number of ticks, in whatever
// configuration the cluster ended in.
//
// Everything random comes from one seed, so a failure replays exactly.
import { decodeConfChange, encodeConfChange } from '../../../src/raft/core/conf-change-codec';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { RawNode } from '../../../src/raft/core/raw-node';
import {
  ConfChangeType, EntryType, ErrProposalDropped, ErrStepPeerNotFound, MessageType, NONE, SnapshotStatus, StateType,
  type ConfChange, type ConfState, type Entry, type Message, type NodeId, type RaftConfig, type Ready,
} from '../../../src/raft/core/types';
import { describeMessage, maySendBeforePersist, stateName } from '../../../src/raft/core/util';
import { mulberry32 } from './helpers';
import {
  applyToMembership, cloneMembership, ConfHistory, confStateKey, describeConfChange, membershipKey, newMembership,
  pickConfChange, refuseConfChange, termRaceStall, type Membership, type MembershipBounds,
} from './simulator-membership';

export interface SimOptions {
  seed: number;
  members: number;
  /** Steps with faults before the liveness phase. */
  steps: number;
  /** Snapshot and compact every this many applied entries. */
  compactEvery: number;
  /** Makes a member's RawNode; tests substitute broken variants here. */
  makeNode?: (cfg: RaftConfig) => RawNode;
  /** Lines of trace kept for a failure report. */
  traceLimit?: number;
  /**
   * Model a driver that sends every message of a Ready early when the member is leader (not just
   * maySendBeforePersist's), to check that policy too.
   */
  leaderSendsAllEarly?: boolean;
  /**
   * Operators change the membership during the fault phase: add a member as a voter or a learner,
   * promote a learner, remove a member (the leader too). Off, the run is what it was before these
   * existed: the same random draws, so the same runs for the same seeds.
   */
  confChanges?: boolean;
  /**
   * With confChanges, stream the storage's snapshot as it is (as Plinth's driver does), not etcd's
   * snapshot merged at the applied index: a member added after the storage's snapshot cannot
   * install it (raft refuses a snapshot whose configuration lacks it), and gets it again and again.
   */
  storageSnapshots?: boolean;
}

export interface SimStats {
  steps: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  crashes: number;
  midReadyCrashes: number;
  elections: number;
  maxTerm: number;
  proposals: number;
  committed: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
  readsIssued: number;
  readsAnswered: number;
  livenessTicks: number;
  /** Conf changes proposed (some are dropped, or emptied by the leader: one pending at a time). */
  confProposed: number;
  /** Committed conf changes, counted once, that the servers applied / refused (see simulator-membership.ts). */
  confApplied: number;
  confRefused: number;
  votersAdded: number;
  learnersAdded: number;
  promoted: number;
  removed: number;
  /** Removals of the member that was leader when the first member applied them. */
  leadersRemoved: number;
  /** Members that stopped: their removal applied, or a peer refused them as removed. */
  membersStopped: number;
  /** Snapshots delivered to a member their configuration lacks (raft refuses them). */
  snapshotsLackingReceiver: number;
  /** Members added later that caught up from the first entry / from a snapshot. */
  joinedByLog: number;
  joinedBySnapshot: number;
  /** Liveness phases that ended in the stall termRaceStall describes (pre-vote off only). */
  termRaceStalls: number;
  /** Most voters in a configuration (and members ever, new ones included). */
  maxVoters: number;
  maxMembers: number;
}

/** Stats that are maxima over seeds, not sums. */
export const MAX_STATS: (keyof SimStats)[] = ['maxTerm', 'livenessTicks', 'maxVoters', 'maxMembers'];

export function emptyStats(): SimStats {
  return {
    steps: 0, delivered: 0, dropped: 0, duplicated: 0, crashes: 0, midReadyCrashes: 0, elections: 0, maxTerm: 0,
    proposals: 0, committed: 0, snapshotsSent: 0, snapshotsInstalled: 0, readsIssued: 0, readsAnswered: 0, livenessTicks: 0,
    confProposed: 0, confApplied: 0, confRefused: 0, votersAdded: 0, learnersAdded: 0, promoted: 0, removed: 0,
    leadersRemoved: 0, membersStopped: 0, snapshotsLackingReceiver: 0, joinedByLog: 0, joinedBySnapshot: 0, termRaceStalls: 0, maxVoters: 0, maxMembers: 0,
  };
}

export class SafetyViolation extends Error {}

interface InFlight {
  m: Message;
  /** A MsgSnap's state machine (the sender's applied entries up to the snapshot's index). */
  snapData?: string[];
  /** ... and the membership the server kept beside it. */
  snapMembership?: Membership;
}

/** Ticks a member runs on after applying its own removal (etcd stops about a second later). */
const STOP_DELAY_TICKS = 10;

/** A member: its raft core, the driver's durable state, and the state machine. */
class SimNode {
  rn: RawNode | undefined;
  /** The driver's MemoryStorage; what it holds is what is on disk (it survives crashes). */
  storage: MemoryStorage;
  /** The state machine as of the storage's snapshot index (on disk beside it). */
  snapData: string[] = [];
  /** The server's membership as of the storage's snapshot index (on disk beside it). */
  snapMembership: Membership;
  /** The volatile state machine: entry keys by index (index 0 unused). */
  sm: string[] = [''];
  /** The server's membership as of the applied index. */
  membership: Membership;
  confState: ConfState;
  /** The Ready whose entries and hard state are being written (the driver awaits its fsync). */
  writing: Ready | undefined;
  /** Snapshot data received with a MsgSnap, until raft hands the snapshot out in a Ready. */
  incomingSnap = new Map<number, { data: string[]; membership: Membership }>();
  /** Fraction of tick rounds in which this member's clock ticks. */
  tickRate: number;
  lastCommit = 0;
  /** Removed and stopped for good: never restarted, messages to it dropped. */
  stopped = false;
  /** Set when it applied its own removal: the ticks left before it stops. */
  stopInTicks: number | undefined;

  constructor(readonly id: NodeId, storage: MemoryStorage, confState: ConfState, membership: Membership, tickRate: number) {
    this.storage = storage;
    this.confState = confState;
    this.snapMembership = membership;
    this.membership = cloneMembership(membership);
    this.tickRate = tickRate;
  }

  get up(): boolean {
    return this.rn !== undefined;
  }
}

export function entryKey(e: Entry): string {
  return `${e.term}|${e.type}|${e.data.toString('latin1')}`;
}

const MAX_SIZE_CHOICES = [1, 64, 256, 4096];

export class Simulator {
  readonly rand: () => number;
  /** Every member ever, in the order they joined (the initial ones, then those added). */
  readonly nodes: SimNode[] = [];
  private readonly byId = new Map<NodeId, SimNode>();
  /** The initial members, bootstrapped with the cluster. */
  readonly initialIds: NodeId[];
  private net: InFlight[] = [];
  /** Blocked directed links "from-to". */
  private blocked = new Set<string>();
  private readonly electionTick = 10;
  private readonly heartbeatTick = 2;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsg: number;
  private readonly maxInflight: number;
  private readonly maxUncommitted: number;
  private proposalSeq = 0;
  private readSeq = 0;
  private stepNo = 0;
  private confSeq = 0;
  /** The id the next member added gets (ids are never reused, as etcd's are random). */
  private nextId: number;
  private readonly bounds: MembershipBounds;
  private faultsOn = true;
  private readonly trace: [number, string | (() => string)][] = [];
  private readonly traceLimit: number;
  readonly stats: SimStats = emptyStats();

  // ---- checker state ----
  /** term -> the member that was leader in it. */
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** index -> term of the committed entry there (from any member's commit index). */
  private readonly committedTerm: number[] = [0];
  /**
   * index -> the lowest term in which a member knew the entry committed: every leader of a later
   * term must have it (a stale leader of an earlier term need not).
   */
  private readonly commitTermOf: number[] = [0];
  /** index -> key of the entry any member applied there. */
  private readonly appliedKey: string[] = [''];
  /** (index, term) -> entry key and the term of the entry before it, as seen in any log. */
  private readonly logEntries = new Map<string, { key: string; prevTerm: number }>();
  /** Read requests: context -> the highest commit index known anywhere when the read was issued. */
  private readonly reads = new Map<string, { node: NodeId; minIndex: number; answered: boolean }>();
  /** "term/candidate" -> the members whose MsgVoteResp granting the vote reached the candidate. */
  private readonly voteGrants = new Map<string, Set<NodeId>>();
  private readonly confHistory: ConfHistory;
  private readonly joined = new Set<NodeId>();

  constructor(readonly opts: SimOptions) {
    this.rand = mulberry32(opts.seed);
    this.traceLimit = opts.traceLimit ?? 80;
    this.preVote = this.rand() < 0.5;
    this.checkQuorum = this.rand() < 0.5;
    this.maxSizePerMsg = MAX_SIZE_CHOICES[Math.floor(this.rand() * MAX_SIZE_CHOICES.length)];
    this.maxInflight = 1 + Math.floor(this.rand() * 4);
    this.maxUncommitted = this.rand() < 0.3 ? 200 : 0;
    const ids = Array.from({ length: opts.members }, (_, i) => BigInt(i + 1));
    this.initialIds = ids;
    this.nextId = opts.members + 1;
    this.bounds = { minVoters: 2, maxVoters: opts.members + 2, maxLearners: 1 };
    // The driver's bootstrap: the members' ADD_NODE entries at term 1, committed, conf state set.
    for (const id of ids) {
      const storage = new MemoryStorage();
      const confState: ConfState = { voters: ids.slice(), learners: [] };
      storage.applySnapshot({ metadata: { index: 0, term: 0, confState } });
      storage.append(ids.map((nodeId, i) => ({
        index: i + 1, term: 1, type: EntryType.CONF_CHANGE,
        data: encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId, context: Buffer.from(`member ${nodeId}`) }),
      })));
      storage.setHardState({ term: 1, vote: 0n, commit: ids.length });
      this.addNode(new SimNode(id, storage, confState, newMembership(ids), 0.6 + 0.4 * this.rand()));
    }
    for (let i = 1; i <= ids.length; i++) {
      this.committedTerm[i] = 1;
      this.commitTermOf[i] = 1;
    }
    this.confHistory = new ConfHistory(ids.length, confStateKey({ voters: ids, learners: [] }));
    this.stats.maxVoters = ids.length;
    this.log(`seed ${opts.seed}: ${opts.members} members, preVote=${this.preVote} checkQuorum=${this.checkQuorum} maxSizePerMsg=${this.maxSizePerMsg} maxInflight=${this.maxInflight} maxUncommitted=${this.maxUncommitted}`);
  }

  /** Trace lines are formatted only when a failure is reported: most runs never read them. */
  private log(line: string | (() => string)): void {
    if (this.trace.length >= this.traceLimit) this.trace.shift();
    this.trace.push([this.stepNo, line]);
  }

  lastTrace(): string[] {
    return this.trace.map(([step, line]) => `[${step}] ${typeof line === 'string' ? line : line()}`);
  }

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }

  private node(id: NodeId): SimNode {
    const n = this.byId.get(id);
    if (!n) this.violation(`a message for or from ${id}, which never was a member`);
    return n;
  }

  private addNode(n: SimNode): void {
    this.nodes.push(n);
    this.byId.set(n.id, n);
    this.stats.maxMembers = Math.max(this.stats.maxMembers, this.nodes.length);
    this.start(n);
  }

  /** Members not stopped (up or down). */
  private liveIds(): NodeId[] {
    const ids: NodeId[] = [];
    for (const n of this.nodes) if (!n.stopped) ids.push(n.id);
    return ids;
  }

  /** A (re)start: a new RawNode over what is on disk, applied = the snapshot's index. */
  private start(n: SimNode): void {
    const snapIndex = n.storage.snapshot().metadata.index;
    n.sm = n.snapData.slice();
    n.sm[0] = '';
    n.membership = cloneMembership(n.snapMembership);
    n.confState = n.storage.snapshot().metadata.confState;
    n.incomingSnap.clear();
    n.stopInTicks = undefined;
    const seed = Math.floor(this.rand() * 2 ** 31);
    const cfg: RaftConfig = {
      id: n.id,
      electionTick: this.electionTick,
      heartbeatTick: this.heartbeatTick,
      storage: n.storage,
      applied: snapIndex,
      maxSizePerMsg: this.maxSizePerMsg,
      maxCommittedSizePerReady: this.maxSizePerMsg,
      maxInflightMsgs: this.maxInflight,
      maxUncommittedEntriesSize: this.maxUncommitted,
      checkQuorum: this.checkQuorum,
      preVote: this.preVote,
      random: mulberry32(seed),
    };
    n.rn = this.opts.makeNode ? this.opts.makeNode(cfg) : new RawNode(cfg);
    n.lastCommit = n.rn.commitIndex;
  }

  /** A removed member's server stops for good (its disk stays, unread). */
  private stop(n: SimNode, why: string): void {
    this.log(`stop ${n.id} (${why})`);
    n.rn = undefined;
    n.writing = undefined;
    n.incomingSnap.clear();
    n.stopped = true;
    n.stopInTicks = undefined;
    this.stats.membersStopped++;
  }

  /** A crash: the raft core and the state machine are gone; the storage (disk) stays. */
  private crash(n: SimNode, why: string): void {
    this.log(`crash ${n.id} (${why})`);
    n.rn = undefined;
    n.writing = undefined;
    n.incomingSnap.clear();
    this.stats.crashes++;
  }

  /** The disk as a restarted driver reads it back: a fresh MemoryStorage with the same contents. */
  private reloadStorage(n: SimNode): void {
    const old = n.storage;
    const s = new MemoryStorage();
    const snap = old.snapshot();
    if (snap.metadata.index > 0) s.applySnapshot(snap);
    else s.applySnapshot({ metadata: { index: 0, term: 0, confState: snap.metadata.confState } });
    if (old.lastIndex() >= old.firstIndex()) s.append(old.entries(old.firstIndex(), old.lastIndex() + 1, Number.MAX_SAFE_INTEGER));
    s.setHardState(old.initialState().hardState);
    n.storage = s;
  }

  private restart(n: SimNode): void {
    this.reloadStorage(n);
    this.start(n);
    this.log(`restart ${n.id} (term ${n.rn!.term}, commit ${n.rn!.commitIndex}, snapshot ${n.storage.snapshot().metadata.index}, last ${n.storage.lastIndex()})`);
    // Its removal is behind its snapshot, never applied again: the server sees it in its membership
    // at startup and stops as if it had just applied it (Plinth's server does).
    if (n.membership.removed.has(n.id)) {
      this.log(`${n.id} finds its removal in its membership: stops in ${STOP_DELAY_TICKS} ticks`);
      n.stopInTicks = STOP_DELAY_TICKS;
    }
  }

  // ---- the network ----

  private sendAll(from: SimNode, msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) {
        // The driver streams its latest snapshot, which may be newer than the one raft named when
        // it made the message: the metadata is rewritten to match what is sent (as etcd does).
        const snap = from.storage.snapshot();
        if (snap.metadata.index < m.snapshot!.metadata.index) this.violation(`member ${from.id} sent a snapshot at ${m.snapshot!.metadata.index} newer than its storage's (${snap.metadata.index})`);
        this.stats.snapshotsSent++;
        if (this.opts.confChanges && !this.opts.storageSnapshots) {
          // With member changes, etcd's createMergedSnapshotMessage: the state machine as applied
          // now, at the applied index with its term and configuration. A member added after the
          // storage's snapshot needs that: raft refuses a snapshot whose configuration lacks it, and
          // the leader would send the same refused snapshot until its next one.
          const applied = from.sm.length - 1;
          const metadata = { index: applied, term: from.rn!.raft.raftLog.term(applied)!, confState: from.confState };
          this.net.push({ m: { ...m, snapshot: { metadata } }, snapData: from.sm.slice(), snapMembership: cloneMembership(from.membership) });
          continue;
        }
        this.net.push({ m: { ...m, snapshot: snap }, snapData: from.snapData, snapMembership: from.snapMembership });
        continue;
      }
      this.net.push({ m });
    }
  }

  /** Delivers in-flight message i (or drops it: partition, down member, or a fault). */
  private deliver(i: number, opts: { drop?: boolean; duplicate?: boolean } = {}): void {
    const f = this.net[i];
    if (opts.duplicate) {
      this.stats.duplicated++;
    } else {
      this.net[i] = this.net[this.net.length - 1];
      this.net.pop();
    }
    const m = f.m;
    const to = this.node(m.to);
    const from = this.node(m.from);
    const blocked = this.blocked.has(`${m.from}-${m.to}`);
    if (opts.drop || blocked || !to.up) {
      this.stats.dropped++;
      this.log(() => `drop ${describeMessage(m)}${blocked ? ' (partitioned)' : !to.up ? (to.stopped ? ' (stopped)' : ' (down)') : ''}`);
      // The transport tells the sender: a failed snapshot stream, an unreachable peer.
      if (from.up && m.type === MessageType.MsgSnap) from.rn!.reportSnapshot(m.to, SnapshotStatus.Failure);
      else if (from.up && (blocked || !to.up) && this.rand() < 0.3) from.rn!.reportUnreachable(m.to);
      return;
    }
    if (to.membership.removed.has(m.from)) {
      // etcd's peers refuse a removed member's messages (403), and the removed member stops on
      // hearing it: the way a member that missed its own removal learns of it.
      this.stats.dropped++;
      this.log(() => `refuse ${describeMessage(m)} (${m.from} was removed)`);
      if (from.up) this.stop(from, `${m.to} refused it as removed`);
      return;
    }
    this.stats.delivered++;
    this.log(() => `deliver ${describeMessage(m)}`);
    if (m.type === MessageType.MsgSnap && f.snapData) {
      to.incomingSnap.set(m.snapshot!.metadata.index, { data: f.snapData, membership: f.snapMembership! });
      // One raft will refuse (see storageSnapshots).
      const cs = m.snapshot!.metadata.confState;
      if (!cs.voters.includes(m.to) && !cs.learners.includes(m.to)) this.stats.snapshotsLackingReceiver++;
    }
    // A vote granted and received: the election-quorum check counts these.
    if (m.type === MessageType.MsgVoteResp && !m.reject) {
      const k = `${m.term}/${m.to}`;
      let s = this.voteGrants.get(k);
      if (!s) this.voteGrants.set(k, (s = new Set()));
      s.add(m.from);
    }
    try {
      to.rn!.step(m);
    } catch (err) {
      // An answer from a member not in the receiver's configuration (added or removed since) is
      // refused; etcd's transport logs it and goes on.
      if (err !== ErrProposalDropped && err !== ErrStepPeerNotFound) throw err;
    }
    // A leader's commit index moves as answers arrive: checked at once, in the configuration it has now.
    this.observeRole(to);
    if (to.rn!.state === StateType.Leader) this.observeCommit(to);
    if (m.type === MessageType.MsgSnap && from.up) from.rn!.reportSnapshot(m.to, SnapshotStatus.Finish);
  }

  // ---- the driver ----

  /**
   * The driver's loop, one half at a time. Starting a Ready: take it, send a leader's appends and
   * heartbeats at once, install its snapshot, apply its committed entries, and start writing its
   * entries and hard state (the "fsync" is in flight until the next call, while messages keep being
   * stepped). Finishing it: the write is durable; send the other messages; advance. With midCrash
   * the member crashes instead of finishing: what was being written is lost.
   */
  private processReady(n: SimNode, midCrash = false): void {
    const rn = n.rn!;
    const rd = n.writing;
    if (rd) {
      if (midCrash) {
        this.stats.midReadyCrashes++;
        this.crash(n, `while writing a Ready of ${rd.entries.length} entries${rd.hardState ? ' and a hard state' : ''}`);
        return;
      }
      n.writing = undefined;
      if (rd.entries.length > 0) n.storage.append(rd.entries);
      if (rd.hardState) n.storage.setHardState(rd.hardState);
      this.sendAll(n, rd.messages.filter((m) => !maySendBeforePersist(m)));
      rn.advance(rd);
      // A leader's own entries, now durable, may complete a quorum.
      if (rn.state === StateType.Leader) this.observeCommit(n);
      if (rd.committedEntries.length > 0) this.maybeSnapshot(n);
      return;
    }
    if (!rn.hasReady()) return;
    // What this member now knows committed is recorded before it applies any of it.
    this.observeCommit(n);
    const next: Ready = rn.ready();
    if (next.softState) this.log(`${n.id} softState lead=${next.softState.lead} ${stateName(next.softState.raftState)} term=${rn.term}`);
    const allEarly = this.opts.leaderSendsAllEarly === true && rn.state === StateType.Leader;
    this.sendAll(n, allEarly ? next.messages : next.messages.filter(maySendBeforePersist));
    if (allEarly) next.messages = [];
    for (const rs of next.readStates) this.checkReadState(n, rs.index, rs.requestCtx);
    if (next.snapshot) this.installSnapshot(n, next.snapshot.metadata.index, next.snapshot.metadata.term, next.snapshot.metadata.confState);
    for (const e of next.committedEntries) this.apply(n, e);
    // The log matching check sees every entry as it is handed out for writing.
    if (next.entries.length > 0) this.checkNewEntries(n, next.entries);
    n.writing = next;
  }

  private installSnapshot(n: SimNode, index: number, term: number, confState: ConfState): void {
    const got = n.incomingSnap.get(index);
    if (!got) throw new SafetyViolation(`member ${n.id} was handed a snapshot at ${index} it never received`);
    const data = got.data;
    if (n.sm.length === 1) this.noteJoined(n, 'joinedBySnapshot');
    for (let i = 1; i <= index; i++) this.recordApplied(n, i, data[i], 'snapshot');
    n.storage.applySnapshot({ metadata: { index, term, confState } });
    n.snapData = data;
    n.sm = data.slice();
    n.confState = confState;
    n.snapMembership = cloneMembership(got.membership);
    n.membership = cloneMembership(got.membership);
    n.incomingSnap.clear();
    this.checkConf(n, index, 'installed a snapshot at');
    this.stats.snapshotsInstalled++;
    this.log(`${n.id} installed snapshot at ${index} (term ${term}, ${confStateKey(confState)})`);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.sm.length) throw new SafetyViolation(`member ${n.id} was handed entry ${e.index} to apply after ${n.sm.length - 1}`);
    const key = entryKey(e);
    this.recordApplied(n, e.index, key, 'apply');
    if (e.index === 1) this.noteJoined(n, 'joinedByLog');
    n.sm.push(key);
    if (e.type === EntryType.CONF_CHANGE) this.applyConfChange(n, e);
  }

  /**
   * The server applies a committed conf change as etcd does: checked against its membership first,
   * a refused one handed to raft as a change of no member (see simulator-membership.ts). The first
   * member to apply an addition starts the new member: the operator starts it once `member add`
   * returns, with empty storage and no peers (--initial-cluster-state existing), and it catches up
   * from the leader. A member that applies its own removal stops a little later.
   */
  private applyConfChange(n: SimNode, e: Entry): void {
    const cc = decodeConfChange(e.data);
    const refused = refuseConfChange(n.membership, cc, this.bounds);
    n.confState = n.rn!.applyConfChange(refused === undefined ? cc : { ...cc, nodeId: NONE });
    if (refused === undefined) applyToMembership(n.membership, cc);
    const first = this.checkConf(n, e.index, 'applied');
    if (first) this.firstApplied(cc, refused, e.index);
    if (refused === undefined && cc.type === ConfChangeType.REMOVE_NODE && cc.nodeId === n.id && n.stopInTicks === undefined) {
      this.log(`${n.id} applied its own removal: stops in ${STOP_DELAY_TICKS} ticks`);
      n.stopInTicks = STOP_DELAY_TICKS;
      if (n.rn!.state === StateType.Leader) this.handOver(n);
    }
  }

  /** A removed leader hands leadership to the voter with the most of its log first, as Plinth's server does. */
  private handOver(n: SimNode): void {
    let best: NodeId | undefined;
    let bestMatch = -1;
    for (const [id, pr] of n.rn!.status().progress ?? []) {
      if (id !== n.id && !pr.isLearner && pr.match > bestMatch) [best, bestMatch] = [id, pr.match];
    }
    if (best === undefined) return;
    this.log(`transferLeader ${n.id} -> ${best} (removed)`);
    n.rn!.transferLeader(best);
  }

  /** How a member added later caught up: its first entry applied, or its first snapshot installed. */
  private noteJoined(n: SimNode, how: 'joinedByLog' | 'joinedBySnapshot'): void {
    if (n.id <= BigInt(this.initialIds.length) || this.joined.has(n.id)) return;
    this.joined.add(n.id);
    this.stats[how]++;
  }

  /** A conf change applied for the first time anywhere: counted, and a new member started. */
  private firstApplied(cc: ConfChange, refused: string | undefined, index: number): void {
    this.log(`conf change at ${index}: ${describeConfChange(cc)}${refused === undefined ? '' : ` refused: ${refused}`}`);
    if (refused !== undefined) {
      this.stats.confRefused++;
      return;
    }
    this.stats.confApplied++;
    const target = this.byId.get(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.ADD_NODE:
        if (target) this.stats.promoted++;
        else this.stats.votersAdded++;
        break;
      case ConfChangeType.ADD_LEARNER_NODE:
        this.stats.learnersAdded++;
        break;
      case ConfChangeType.REMOVE_NODE:
        this.stats.removed++;
        if (target?.rn?.state === StateType.Leader) this.stats.leadersRemoved++;
        break;
    }
    if (!target && (cc.type === ConfChangeType.ADD_NODE || cc.type === ConfChangeType.ADD_LEARNER_NODE)) {
      const nn = new SimNode(cc.nodeId, new MemoryStorage(), { voters: [], learners: [] }, newMembership(), 0.6 + 0.4 * this.rand());
      this.addNode(nn);
      this.log(`start new member ${nn.id} (empty storage, no peers)`);
    }
  }

  /** Every K applied entries: a snapshot at the applied index and the log compacted behind it. */
  private maybeSnapshot(n: SimNode): void {
    const applied = n.sm.length - 1;
    const snapIndex = n.storage.snapshot().metadata.index;
    if (applied - snapIndex < this.opts.compactEvery) return;
    n.storage.createSnapshot(applied, n.confState);
    n.snapData = n.sm.slice(0, applied + 1);
    n.snapMembership = cloneMembership(n.membership);
    // Keep a short tail sometimes, as etcd keeps entries for slow followers.
    const compactTo = applied - Math.floor(this.rand() * 3);
    if (compactTo > n.storage.firstIndex()) n.storage.compact(compactTo);
    this.log(`${n.id} snapshot at ${applied}, compacted to ${Math.max(compactTo, n.storage.firstIndex() - 1)}`);
  }

  // ---- the checker ----

  private violation(what: string): never {
    throw new SafetyViolation(what);
  }

  /** State machine safety: one entry per index, whoever applies it; applied ≤ committed. */
  private recordApplied(n: SimNode, index: number, key: string, how: string): void {
    const prev = this.appliedKey[index];
    if (prev === undefined) {
      if (index !== this.appliedKey.length) this.violation(`${how} at ${index} by ${n.id} skips index ${this.appliedKey.length}`);
      this.appliedKey.push(key);
    } else if (prev !== key) {
      this.violation(`state machine safety: member ${n.id} ${how} ${JSON.stringify(key)} at index ${index}, another member applied ${JSON.stringify(prev)}`);
    }
    const ct = this.committedTerm[index];
    if (ct === undefined) this.violation(`member ${n.id} ${how} index ${index}, which no member has committed`);
    if (Number(key.split('|', 1)[0]) !== ct) this.violation(`member ${n.id} ${how} an entry of term ${key.split('|', 1)[0]} at ${index}, where one of term ${ct} was committed`);
  }

  /** Log matching: an (index, term) has one entry and one predecessor term in every log. */
  private checkNewEntries(n: SimNode, entries: Entry[]): void {
    const log = n.rn!.raft.raftLog;
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j];
      const prevTerm = j === 0 ? log.term(e.index - 1) : entries[j - 1].term;
      const k = `${e.index}/${e.term}`;
      const seen = this.logEntries.get(k);
      const key = entryKey(e);
      if (!seen) {
        if (prevTerm !== undefined) this.logEntries.set(k, { key, prevTerm });
      } else {
        if (seen.key !== key) this.violation(`log matching: member ${n.id} has ${JSON.stringify(key)} at ${k}, another log has ${JSON.stringify(seen.key)}`);
        if (prevTerm !== undefined && seen.prevTerm !== prevTerm) this.violation(`log matching: at ${k} member ${n.id}'s log has term ${prevTerm} before it, another log ${seen.prevTerm}`);
      }
    }
  }

  private checkReadState(n: SimNode, index: number, ctx: Buffer): void {
    // Kept after the answer: a duplicated message may answer it again, and that answer must hold too.
    const r = this.reads.get(ctx.toString());
    if (!r) this.violation(`member ${n.id} got a read state for unknown context ${ctx.toString()}`);
    if (r.node !== n.id) this.violation(`read ${ctx.toString()} issued on ${r.node} answered on ${n.id}`);
    if (index < r.minIndex) this.violation(`linearizable read: ${ctx.toString()} answered with read index ${index}, but ${r.minIndex} was committed when it was issued`);
    if (!r.answered) this.stats.readsAnswered++;
    r.answered = true;
  }

  private maxCommitKnown(): number {
    return this.committedTerm.length - 1;
  }

  /**
   * Configuration agreement, after a member applied the conf change at `index` or installed a
   * snapshot there: raft's configuration is the server's membership, and the same as every other
   * member's after the same entry. Returns whether this member is the first to get there.
   */
  private checkConf(n: SimNode, index: number, how: 'applied' | 'installed a snapshot at'): boolean {
    const key = confStateKey(n.confState);
    if (membershipKey(n.membership) !== key) this.violation(`configuration: member ${n.id} ${how} ${index}: raft has ${key}, its server's membership ${membershipKey(n.membership)}`);
    const r = this.confHistory.check(index, key, how === 'applied');
    if (r.mismatch) this.violation(`configuration: member ${n.id} ${how} ${index}: ${r.mismatch}`);
    if (r.first) this.stats.maxVoters = Math.max(this.stats.maxVoters, n.confState.voters.length);
    return r.first;
  }

  /**
   * A member's role, after anything that may change it. Election safety: at most one leader per
   * term, over all time and all members (added and removed ones too). A learner never campaigns or
   * leads. A new leader won a majority of the voters of its configuration: its own vote and the
   * grants it received, a non-voter's (a learner's) not counted.
   */
  private observeRole(n: SimNode): void {
    const rn = n.rn;
    if (!rn || rn.state === StateType.Follower) return;
    if (rn.raft.isLearner) this.violation(`learner ${n.id} became ${stateName(rn.state)} in term ${rn.term}`);
    if (rn.state !== StateType.Leader) return;
    const prev = this.leaderOfTerm.get(rn.term);
    if (prev === n.id) return;
    if (prev !== undefined) this.violation(`election safety: members ${prev} and ${n.id} were both leader of term ${rn.term}`);
    this.leaderOfTerm.set(rn.term, n.id);
    this.stats.elections++;
    this.stats.maxTerm = Math.max(this.stats.maxTerm, rn.term);
    this.log(`${n.id} is leader of term ${rn.term}`);
    this.checkElectionQuorum(n);
    this.checkLeaderCompleteness(n, 1, rn.term);
  }

  private checkElectionQuorum(n: SimNode): void {
    const rn = n.rn!;
    const voters = rn.raft.prs.voters;
    const grants = this.voteGrants.get(`${rn.term}/${n.id}`);
    const yes: NodeId[] = [];
    for (const v of voters) if (v === n.id || grants?.has(v)) yes.push(v);
    if (yes.length < Math.floor(voters.size / 2) + 1) {
      this.violation(`election quorum: member ${n.id} became leader of term ${rn.term} with the votes of {${yes.join(',')}} of its voters {${[...voters].join(',')}} (votes granted to it: {${[...(grants ?? [])].join(',')}})`);
    }
  }

  /** After every step. */
  checkInvariants(): void {
    for (const n of this.nodes) {
      const rn = n.rn;
      if (!rn) continue;
      // Applied ≤ committed, for raft's cursor and for the state machine.
      if (rn.appliedIndex > rn.commitIndex) this.violation(`member ${n.id}: applied ${rn.appliedIndex} > committed ${rn.commitIndex}`);
      if (n.sm.length - 1 > rn.commitIndex) this.violation(`member ${n.id}: state machine at ${n.sm.length - 1} > committed ${rn.commitIndex}`);
      this.observeRole(n);
      this.observeCommit(n);
    }
  }

  /** Newly committed entries: recorded, durable on a quorum, present in later leaders' logs. */
  private observeCommit(n: SimNode): void {
    const rn = n.rn!;
    const raft = rn.raft;
    const c = rn.commitIndex;
    if (c > n.lastCommit) {
      const commitTerm = rn.term;
      // Below the log's first index (a snapshot installed) entries are checked as applied.
      for (let i = Math.max(n.lastCommit + 1, raft.raftLog.firstIndex() - 1); i <= c; i++) {
        const t = raft.raftLog.term(i);
        if (t === undefined) continue;
        const known = this.committedTerm[i];
        if (known === undefined) {
          if (i !== this.committedTerm.length) this.violation(`member ${n.id} committed ${i} with ${this.committedTerm.length} not committed anywhere`);
          this.committedTerm.push(t);
          this.commitTermOf.push(commitTerm);
          this.stats.committed++;
        } else if (known !== t) {
          this.violation(`member ${n.id} committed an entry of term ${t} at ${i}, where one of term ${known} was committed`);
        } else if (commitTerm < this.commitTermOf[i]) {
          this.commitTermOf[i] = commitTerm;
        }
      }
      this.checkDurableOnQuorum(n, c);
      for (const other of this.nodes) {
        if (other.rn && other.rn.state === StateType.Leader && other.rn.term > commitTerm) this.checkLeaderCompleteness(other, n.lastCommit + 1, commitTerm + 1);
      }
      n.lastCommit = c;
  }
  }

  /**
   * Committed ≤ persisted on a quorum: the entry at a leader's commit index is on the disks of a
   * majority of the voters of its configuration. A follower's commit index comes from a leader's; with
   * a fixed membership it is checked against the members too (with changes, a follower's own
   * configuration may be one the leader has left behind).
   */
  private checkDurableOnQuorum(n: SimNode, c: number): void {
    const t = this.committedTerm[c];
    if (t === undefined) return;
    const rn = n.rn!;
    let voters: Iterable<NodeId>;
    if (rn.state === StateType.Leader) voters = rn.raft.prs.voters;
    else if (!this.opts.confChanges) voters = this.initialIds;
    else return;
    let have = 0;
    let size = 0;
    for (const id of voters) {
      size++;
      const s = this.node(id).storage;
      const snapIdx = s.snapshot().metadata.index;
      if (snapIdx >= c) have++;
      else if (c <= s.lastIndex() && c >= s.firstIndex() && s.term(c) === t) have++;
    }
    if (have < Math.floor(size / 2) + 1) this.violation(`durability: member ${n.id} committed ${c} (term ${t}) but only ${have} members have it on disk (of voters {${[...voters].join(',')}})`);
  }

  /**
   * Leader completeness: from index `from` on, every entry committed in a term below `termBound`
   * is in the leader's log (entries compacted into its snapshot are checked as applied).
   */
  private checkLeaderCompleteness(leader: SimNode, from: number, termBound: number): void {
    const log = leader.rn!.raft.raftLog;
    for (let i = Math.max(from, log.firstIndex()); i < this.committedTerm.length; i++) {
      if (this.commitTermOf[i] >= termBound) continue;
      const t = log.term(i);
      if (t !== this.committedTerm[i]) {
        this.violation(`leader completeness: leader ${leader.id} of term ${leader.rn!.term} has term ${t} at ${i}, where an entry of term ${this.committedTerm[i]} was committed in term ${this.commitTermOf[i]}`);
      }
    }
  }

  // ---- the run ----

  private upNodes(): SimNode[] {
    return this.nodes.filter((n) => n.up);
  }

  private tickRound(): void {
    for (const n of this.nodes) {
      if (n.up && (!this.faultsOn || this.rand() < n.tickRate)) {
        n.rn!.tick();
        this.observeRole(n);
        if (n.stopInTicks !== undefined && --n.stopInTicks <= 0) this.stop(n, 'its removal applied');
      }
    }
  }

  private propose(n: SimNode, value?: string): void {
    const v = value ?? `v${this.opts.seed}.${++this.proposalSeq}`;
    try {
      n.rn!.propose(Buffer.from(v));
      this.stats.proposals++;
      this.log(`propose ${v} on ${n.id}`);
    } catch (err) {
      if (err !== ErrProposalDropped) throw err;
      this.log(`propose ${v} on ${n.id}: dropped`);
    }
  }

  /**
   * Now and then an operator's member change, asked of a member (a follower forwards it to the
   * leader). Only while some member leads: the operator's client retries until one does (there is
   * no leader most of the fault phase).
   */
  private maybeProposeConfChange(up: SimNode[]): void {
    const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
    if (leaders.length === 0 || this.rand() >= 0.15) return;
    const n = this.rand() < 0.7 ? this.pick(leaders) : this.pick(up);
    const seq = ++this.confSeq;
    const p = pickConfChange(n.membership, n.rn!.lead, this.initialIds.length, this.bounds, this.rand, () => BigInt(this.nextId++), seq);
    if (!p) return;
    try {
      n.rn!.proposeConfChange(p.cc);
      this.stats.confProposed++;
      this.log(`propose conf change ${p.kind}: ${describeConfChange(p.cc)} on ${n.id}`);
    } catch (err) {
      if (err !== ErrProposalDropped) throw err;
      this.log(`propose conf change ${describeConfChange(p.cc)} on ${n.id}: dropped`);
    }
  }

  private readIndex(n: SimNode): void {
    const ctx = `r${++this.readSeq}`;
    this.reads.set(ctx, { node: n.id, minIndex: this.maxCommitKnown(), answered: false });
    n.rn!.readIndex(Buffer.from(ctx));
    this.stats.readsIssued++;
    this.log(`readIndex ${ctx} on ${n.id} (commit known ${this.maxCommitKnown()})`);
  }

  private partition(): void {
    this.blocked.clear();
    const ids = this.liveIds();
    const kind = this.rand();
    if (kind < 0.5) {
      // A minority / majority split.
      const shuffled = ids.slice().sort(() => this.rand() - 0.5);
      const k = 1 + Math.floor(this.rand() * Math.floor(ids.length / 2));
      const side = new Set(shuffled.slice(0, k));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}-${b}`);
      this.log(`partition {${[...side].join(',')}} | rest`);
    } else if (kind < 0.8) {
      // Asymmetric: some links one way only.
      const nLinks = 1 + Math.floor(this.rand() * ids.length);
      for (let i = 0; i < nLinks; i++) {
        const a = this.pick(ids);
        const b = this.pick(ids);
        if (a !== b) this.blocked.add(`${a}-${b}`);
      }
      this.log(`asymmetric partition ${[...this.blocked].join(' ')}`);
    } else {
      // One member isolated, often the leader.
      const leader = this.nodes.find((n) => n.rn?.state === StateType.Leader);
      const a = leader && this.rand() < 0.6 ? leader.id : this.pick(ids);
      for (const b of ids) if (a !== b) {
        this.blocked.add(`${a}-${b}`);
        this.blocked.add(`${b}-${a}`);
      }
      this.log(`isolate ${a}`);
    }
  }

  /**
   * One step of the fault phase, about one tick of time: the clocks may tick, some messages (picked
   * at random from all in flight: delays, reordering) are delivered, dropped or duplicated, members
   * handle their Readies, clients propose and read, and now and then a fault starts or ends.
   */
  step(): void {
    this.stepNo++;
    this.stats.steps++;
    if (this.rand() < 0.5) this.tickRound();
    for (let k = Math.floor(this.rand() * 5); k > 0 && this.net.length > 0; k--) {
      const i = Math.floor(this.rand() * this.net.length);
      const y = this.rand();
      this.deliver(i, { drop: y < 0.05, duplicate: y > 0.97 });
    }
    for (const n of this.nodes) {
      if (n.rn && this.rand() < 0.7) this.processReady(n, n.writing !== undefined && this.rand() < 0.01);
    }
    const up = this.upNodes();
    const c = this.rand();
    if (c < 0.3 && up.length > 0) {
      // Mostly on the leader, as clients find it; sometimes on a follower (forwarded).
      const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
      this.propose(leaders.length > 0 && this.rand() < 0.7 ? this.pick(leaders) : this.pick(up));
    } else if (c < 0.4 && up.length > 0) {
      this.readIndex(this.pick(up));
    }
    if (this.opts.confChanges) this.maybeProposeConfChange(up);
    if (this.rand() < 0.08) this.fault(up);
    this.checkInvariants();
  }

  private fault(up: SimNode[]): void {
    const x = this.rand();
    if (x < 0.35) {
      this.blocked.clear();
      this.log('heal');
    } else if (x < 0.6) {
      this.partition();
    } else if (x < 0.85) {
      const down = this.nodes.filter((n) => !n.up && !n.stopped);
      if (down.length > 0 && (this.rand() < 0.6 || up.length === 0)) this.restart(this.pick(down));
      else if (up.length > 0) {
        const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
        this.crash(leaders.length > 0 && this.rand() < 0.5 ? leaders[0] : this.pick(up), 'random');
      }
    } else if (x < 0.95) {
      const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
      if (leaders.length > 0) {
        const l = leaders[0];
        const to = this.pick(this.liveIds());
        this.log(`transferLeader ${l.id} -> ${to}`);
        l.rn!.transferLeader(to);
      }
    } else if (up.length > 0) {
      // A member campaigns on its own (as the driver does at start, or an operator asks).
      const n = this.pick(up);
      this.log(`campaign ${n.id}`);
      n.rn!.campaign();
      this.observeRole(n);
    }
  }

  /**
   * Faults stop: heal, restart everyone (but the stopped), deliver everything. A leader must emerge
   * and a proposal be applied on every member of the configuration reached within maxTicks (proposed
   * again on whoever leads, every two election timeouts, as a client retries), then a read on each
   * be answered. One stall is tolerated, and counted: see termRaceStall.
   */
  liveness(maxTicks: number): void {
    this.faultsOn = false;
    this.blocked.clear();
    this.log('--- liveness: healed, all members up, no more faults ---');
    for (const n of this.nodes) if (!n.up && !n.stopped) this.restart(n);
    const marker = `|${EntryType.NORMAL}|live${this.opts.seed}.`;
    let lastProposal = -Infinity;
    let attempt = 0;
    let applied = false;
    let readsFrom = 0;
    const readOnAll = (): void => {
      const members = this.members();
      for (const n of members) this.readIndex(n);
      readsFrom = this.readSeq - members.length + 1;
    };
    for (let t = 0; t < maxTicks; t++) {
      this.stats.livenessTicks = t;
      this.tickRound();
      this.drain();
      const members = this.members();
      if (!applied && members.length > 0 && members.every((n) => n.sm.some((k) => k.includes(marker)))) {
        applied = true;
        // Then a linearizable read on every member must be answered.
        readOnAll();
        this.drain();
      }
      if (applied) {
        let pending = 0;
        for (let r = readsFrom; r <= this.readSeq; r++) if (!this.reads.get(`r${r}`)!.answered) pending++;
        if (pending === 0) return;
        // A read is lost when leadership moves: ask again, as a client would after its timeout.
        if (t % (2 * this.electionTick) === 0) readOnAll();
        continue;
      }
      // A removed leader, still up for a few ticks, takes no proposals.
      const leader = this.nodes.find((n) => n.rn?.state === StateType.Leader && n.rn.raft.promotable());
      if (leader && t - lastProposal >= 2 * this.electionTick) {
        lastProposal = t;
        this.propose(leader, `live${this.opts.seed}.${++attempt}`);
        this.drain();
      }
    }
    const stall = applied || this.preVote || !this.opts.confChanges ? undefined : termRaceStall(this.members(), this.nodes);
    if (stall) {
      this.stats.termRaceStalls++;
      this.log(`liveness: no leader within ${maxTicks} ticks, tolerated: ${stall}`);
      return;
    }
    const members = new Set(this.members());
    const state = (n: SimNode): string => (!n.rn ? 'stopped' : `${stateName(n.rn.state)}${members.has(n) ? '' : ' (not a member)'} term ${n.rn.term} lead ${n.rn.lead} commit ${n.rn.commitIndex} applied ${n.sm.length - 1}${this.opts.confChanges ? ` ${confStateKey(n.confState)}` : ''}`);
    throw new SafetyViolation(`liveness: ${applied ? 'reads not answered on every member' : 'no proposal applied on every member'} within ${maxTicks} ticks after the faults stopped (${this.nodes.map((n) => `${n.id}: ${state(n)}`).join('; ')})`);
  }

  /**
   * The members of the configuration the cluster is in: those of the member that applied the most
   * (its membership is the latest), that are up. Members removed without knowing it yet are left out.
   */
  private members(): SimNode[] {
    if (!this.opts.confChanges) return this.nodes;
    let latest: SimNode | undefined;
    for (const n of this.nodes) if (n.up && (!latest || n.sm.length > latest.sm.length)) latest = n;
    if (!latest) return [];
    const m = latest.membership;
    return this.nodes.filter((n) => n.up && (m.voters.has(n.id) || m.learners.has(n.id)));
  }

  /**
   * Delivers every message and processes every Ready until nothing is left (bounded: a backlog of
   * hundreds of entries, sent one per message and reordered, takes a few thousand rounds).
   */
  private drain(): void {
    for (let round = 0; round < 5000; round++) {
      let busy = false;
      for (const n of this.nodes) {
        if (n.rn && (n.writing || n.rn.hasReady())) {
          this.processReady(n);
          busy = true;
        }
      }
      while (this.net.length > 0) {
        this.stepNo++;
        this.deliver(0);
        busy = true;
      }
      this.checkInvariants();
      if (!busy) return;
    }
    throw new SafetyViolation('liveness: the cluster did not quiesce within 5000 rounds of message delivery');
  }

  run(): void {
    for (let i = 0; i < this.opts.steps; i++) this.step();
    this.liveness(60 * this.electionTick);
  }
}

