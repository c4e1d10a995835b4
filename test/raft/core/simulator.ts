// A seeded simulator for the raft core: 3 or 5 RawNodes, each behind a model of the driver (persist
// a Ready's entries and hard state, send a leader's appends before that and everything else after,
// apply committed entries, snapshot and compact every K applied entries), over a network that drops,
// delays, duplicates and reorders messages, with partitions (symmetric, asymmetric, minority /
// majority), crashes that lose everything not persisted (also in the middle of a Ready), restarts,
// ticks at different rates, proposals, read-index requests and leader transfers. After every step
// it checks raft's safety properties (see Checker); after the faults stop, that a leader is elected
// and a proposal commits within a bounded number of ticks.
//
// Everything random comes from one seed, so a failure replays exactly.
import { decodeConfChange, encodeConfChange } from '../../../src/raft/core/conf-change-codec';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { RawNode } from '../../../src/raft/core/raw-node';
import {
  ConfChangeType, EntryType, ErrProposalDropped, MessageType, SnapshotStatus, StateType,
  type ConfState, type Entry, type Message, type NodeId, type RaftConfig, type Ready,
} from '../../../src/raft/core/types';
import { describeMessage, maySendBeforePersist, stateName } from '../../../src/raft/core/util';
import { mulberry32 } from './helpers';

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
}

export class SafetyViolation extends Error {}

interface InFlight {
  m: Message;
  /** A MsgSnap's state machine (the sender's applied entries up to the snapshot's index). */
  snapData?: string[];
}

/** A member: its raft core, the driver's durable state, and the state machine. */
class SimNode {
  rn: RawNode | undefined;
  /** The driver's MemoryStorage; what it holds is what is on disk (it survives crashes). */
  storage: MemoryStorage;
  /** The state machine as of the storage's snapshot index (on disk beside it). */
  snapData: string[] = [];
  /** The volatile state machine: entry keys by index (index 0 unused). */
  sm: string[] = [''];
  confState: ConfState;
  /** The Ready whose entries and hard state are being written (the driver awaits its fsync). */
  writing: Ready | undefined;
  /** Snapshot data received with a MsgSnap, until raft hands the snapshot out in a Ready. */
  incomingSnap = new Map<number, string[]>();
  /** Fraction of tick rounds in which this member's clock ticks. */
  tickRate: number;
  lastCommit = 0;

  constructor(readonly id: NodeId, storage: MemoryStorage, confState: ConfState, tickRate: number) {
    this.storage = storage;
    this.confState = confState;
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
  readonly nodes: SimNode[] = [];
  readonly ids: NodeId[];
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
  private faultsOn = true;
  private readonly trace: [number, string | (() => string)][] = [];
  private readonly traceLimit: number;
  readonly stats: SimStats = {
    steps: 0, delivered: 0, dropped: 0, duplicated: 0, crashes: 0, midReadyCrashes: 0, elections: 0, maxTerm: 0,
    proposals: 0, committed: 0, snapshotsSent: 0, snapshotsInstalled: 0, readsIssued: 0, readsAnswered: 0, livenessTicks: 0,
  };

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

  constructor(readonly opts: SimOptions) {
    this.rand = mulberry32(opts.seed);
    this.traceLimit = opts.traceLimit ?? 80;
    this.preVote = this.rand() < 0.5;
    this.checkQuorum = this.rand() < 0.5;
    this.maxSizePerMsg = MAX_SIZE_CHOICES[Math.floor(this.rand() * MAX_SIZE_CHOICES.length)];
    this.maxInflight = 1 + Math.floor(this.rand() * 4);
    this.maxUncommitted = this.rand() < 0.3 ? 200 : 0;
    this.ids = Array.from({ length: opts.members }, (_, i) => BigInt(i + 1));
    // The driver's bootstrap: the members' ADD_NODE entries at term 1, committed, conf state set.
    for (const id of this.ids) {
      const storage = new MemoryStorage();
      const confState: ConfState = { voters: this.ids.slice(), learners: [] };
      storage.applySnapshot({ metadata: { index: 0, term: 0, confState } });
      storage.append(this.ids.map((nodeId, i) => ({
        index: i + 1, term: 1, type: EntryType.CONF_CHANGE,
        data: encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId, context: Buffer.from(`member ${nodeId}`) }),
      })));
      storage.setHardState({ term: 1, vote: 0n, commit: this.ids.length });
      const node = new SimNode(id, storage, confState, 0.6 + 0.4 * this.rand());
      this.nodes.push(node);
      this.start(node);
    }
    for (let i = 1; i <= this.ids.length; i++) {
      this.committedTerm[i] = 1;
      this.commitTermOf[i] = 1;
    }
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
    return this.nodes[Number(id) - 1];
  }

  /** A (re)start: a new RawNode over what is on disk, applied = the snapshot's index. */
  private start(n: SimNode): void {
    const snapIndex = n.storage.snapshot().metadata.index;
    n.sm = n.snapData.slice();
    n.sm[0] = '';
    n.confState = n.storage.snapshot().metadata.confState;
    n.incomingSnap.clear();
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
  }

  // ---- the network ----

  private sendAll(from: SimNode, msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) {
        // The driver streams its latest snapshot, which may be newer than the one raft named when
        // it made the message: the metadata is rewritten to match what is sent (as etcd does).
        const snap = from.storage.snapshot();
        if (snap.metadata.index < m.snapshot!.metadata.index) this.violation(`member ${from.id} sent a snapshot at ${m.snapshot!.metadata.index} newer than its storage's (${snap.metadata.index})`);
        this.net.push({ m: { ...m, snapshot: snap }, snapData: from.snapData });
        this.stats.snapshotsSent++;
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
      this.log(() => `drop ${describeMessage(m)}${blocked ? ' (partitioned)' : !to.up ? ' (down)' : ''}`);
      // The transport tells the sender: a failed snapshot stream, an unreachable peer.
      if (from.up && m.type === MessageType.MsgSnap) from.rn!.reportSnapshot(m.to, SnapshotStatus.Failure);
      else if (from.up && (blocked || !to.up) && this.rand() < 0.3) from.rn!.reportUnreachable(m.to);
      return;
    }
    this.stats.delivered++;
    this.log(() => `deliver ${describeMessage(m)}`);
    if (m.type === MessageType.MsgSnap && f.snapData) to.incomingSnap.set(m.snapshot!.metadata.index, f.snapData);
    try {
      to.rn!.step(m);
    } catch (err) {
      if (err !== ErrProposalDropped) throw err;
    }
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
    const data = n.incomingSnap.get(index);
    if (!data) throw new SafetyViolation(`member ${n.id} was handed a snapshot at ${index} it never received`);
    for (let i = 1; i <= index; i++) this.recordApplied(n, i, data[i], 'snapshot');
    n.storage.applySnapshot({ metadata: { index, term, confState } });
    n.snapData = data;
    n.sm = data.slice();
    n.confState = confState;
    n.incomingSnap.clear();
    this.stats.snapshotsInstalled++;
    this.log(`${n.id} installed snapshot at ${index} (term ${term})`);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.sm.length) throw new SafetyViolation(`member ${n.id} was handed entry ${e.index} to apply after ${n.sm.length - 1}`);
    const key = entryKey(e);
    this.recordApplied(n, e.index, key, 'apply');
    n.sm.push(key);
    if (e.type === EntryType.CONF_CHANGE) n.confState = n.rn!.applyConfChange(decodeConfChange(e.data));
  }

  /** Every K applied entries: a snapshot at the applied index and the log compacted behind it. */
  private maybeSnapshot(n: SimNode): void {
    const applied = n.sm.length - 1;
    const snapIndex = n.storage.snapshot().metadata.index;
    if (applied - snapIndex < this.opts.compactEvery) return;
    n.storage.createSnapshot(applied, n.confState);
    n.snapData = n.sm.slice(0, applied + 1);
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

  private quorum(): number {
    return Math.floor(this.ids.length / 2) + 1;
  }

  /** After every step. */
  checkInvariants(): void {
    for (const n of this.nodes) {
      const rn = n.rn;
      if (!rn) continue;
      // Applied ≤ committed, for raft's cursor and for the state machine.
      if (rn.appliedIndex > rn.commitIndex) this.violation(`member ${n.id}: applied ${rn.appliedIndex} > committed ${rn.commitIndex}`);
      if (n.sm.length - 1 > rn.commitIndex) this.violation(`member ${n.id}: state machine at ${n.sm.length - 1} > committed ${rn.commitIndex}`);
      // At most one leader per term, over all time.
      if (rn.state === StateType.Leader) {
        const prev = this.leaderOfTerm.get(rn.term);
        if (prev === undefined) {
          this.leaderOfTerm.set(rn.term, n.id);
          this.stats.elections++;
          this.stats.maxTerm = Math.max(this.stats.maxTerm, rn.term);
          this.log(`${n.id} is leader of term ${rn.term}`);
          this.checkLeaderCompleteness(n, 1, rn.term);
        } else if (prev !== n.id) {
          this.violation(`election safety: members ${prev} and ${n.id} were both leader of term ${rn.term}`);
        }
      }
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

  /** Committed ≤ persisted on a quorum: the entry at the commit index is on a quorum's disks. */
  private checkDurableOnQuorum(n: SimNode, c: number): void {
    const t = this.committedTerm[c];
    if (t === undefined) return;
    let have = 0;
    for (const o of this.nodes) {
      const s = o.storage;
      const snapIdx = s.snapshot().metadata.index;
      if (snapIdx >= c) have++;
      else if (c <= s.lastIndex() && c >= s.firstIndex() && s.term(c) === t) have++;
    }
    if (have < this.quorum()) this.violation(`durability: member ${n.id} committed ${c} (term ${t}) but only ${have} members have it on disk`);
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
      if (n.up && (!this.faultsOn || this.rand() < n.tickRate)) n.rn!.tick();
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

  private readIndex(n: SimNode): void {
    const ctx = `r${++this.readSeq}`;
    this.reads.set(ctx, { node: n.id, minIndex: this.maxCommitKnown(), answered: false });
    n.rn!.readIndex(Buffer.from(ctx));
    this.stats.readsIssued++;
    this.log(`readIndex ${ctx} on ${n.id} (commit known ${this.maxCommitKnown()})`);
  }

  private partition(): void {
    this.blocked.clear();
    const kind = this.rand();
    if (kind < 0.5) {
      // A minority / majority split.
      const shuffled = this.ids.slice().sort(() => this.rand() - 0.5);
      const k = 1 + Math.floor(this.rand() * Math.floor(this.ids.length / 2));
      const side = new Set(shuffled.slice(0, k));
      for (const a of this.ids) for (const b of this.ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}-${b}`);
      this.log(`partition {${[...side].join(',')}} | rest`);
    } else if (kind < 0.8) {
      // Asymmetric: some links one way only.
      const nLinks = 1 + Math.floor(this.rand() * this.ids.length);
      for (let i = 0; i < nLinks; i++) {
        const a = this.pick(this.ids);
        const b = this.pick(this.ids);
        if (a !== b) this.blocked.add(`${a}-${b}`);
      }
      this.log(`asymmetric partition ${[...this.blocked].join(' ')}`);
    } else {
      // One member isolated, often the leader.
      const leader = this.nodes.find((n) => n.rn?.state === StateType.Leader);
      const a = leader && this.rand() < 0.6 ? leader.id : this.pick(this.ids);
      for (const b of this.ids) if (a !== b) {
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
      const down = this.nodes.filter((n) => !n.up);
      if (down.length > 0 && (this.rand() < 0.6 || up.length === 0)) this.restart(this.pick(down));
      else if (up.length > 0) {
        const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
        this.crash(leaders.length > 0 && this.rand() < 0.5 ? leaders[0] : this.pick(up), 'random');
      }
    } else if (x < 0.95) {
      const leaders = up.filter((n) => n.rn!.state === StateType.Leader);
      if (leaders.length > 0) {
        const l = leaders[0];
        const to = this.pick(this.ids);
        this.log(`transferLeader ${l.id} -> ${to}`);
        l.rn!.transferLeader(to);
      }
    } else if (up.length > 0) {
      // A member campaigns on its own (as the driver does at start, or an operator asks).
      const n = this.pick(up);
      this.log(`campaign ${n.id}`);
      n.rn!.campaign();
    }
  }

  /**
   * Faults stop: heal, restart everyone, deliver everything. A leader must emerge and a proposal be
   * applied on every member within maxTicks (proposed again on whoever leads, every two election
   * timeouts, as a client retries).
   */
  liveness(maxTicks: number): void {
    this.faultsOn = false;
    this.blocked.clear();
    this.log('--- liveness: healed, all members up, no more faults ---');
    for (const n of this.nodes) if (!n.up) this.restart(n);
    const marker = `|${EntryType.NORMAL}|live${this.opts.seed}.`;
    let lastProposal = -Infinity;
    let attempt = 0;
    let applied = false;
    let readsFrom = 0;
    for (let t = 0; t < maxTicks; t++) {
      this.stats.livenessTicks = t;
      this.tickRound();
      this.drain();
      if (!applied && this.nodes.every((n) => n.sm.some((k) => k.includes(marker)))) {
        applied = true;
        // Then a linearizable read on every member must be answered.
        for (const n of this.nodes) this.readIndex(n);
        readsFrom = this.readSeq - this.nodes.length + 1;
        this.drain();
      }
      if (applied) {
        let pending = 0;
        for (let r = readsFrom; r <= this.readSeq; r++) if (!this.reads.get(`r${r}`)!.answered) pending++;
        if (pending === 0) return;
        // A read is lost when leadership moves: ask again, as a client would after its timeout.
        if (t % (2 * this.electionTick) === 0) {
          for (const n of this.nodes) this.readIndex(n);
          readsFrom = this.readSeq - this.nodes.length + 1;
        }
        continue;
      }
      const leader = this.nodes.find((n) => n.rn!.state === StateType.Leader);
      if (leader && t - lastProposal >= 2 * this.electionTick) {
        lastProposal = t;
        this.propose(leader, `live${this.opts.seed}.${++attempt}`);
        this.drain();
      }
    }
    throw new SafetyViolation(`liveness: ${applied ? 'reads not answered on every member' : 'no proposal applied on every member'} within ${maxTicks} ticks after the faults stopped (${this.nodes.map((n) => `${n.id}: ${stateName(n.rn!.state)} term ${n.rn!.term} lead ${n.rn!.lead} commit ${n.rn!.commitIndex} applied ${n.sm.length - 1}`).join('; ')})`);
  }

  /** Delivers every message and processes every Ready until nothing is left (bounded). */
  private drain(): void {
    for (let round = 0; round < 1000; round++) {
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
    throw new SafetyViolation('liveness: the cluster did not quiesce within 1000 rounds of message delivery');
  }

  run(): void {
    for (let i = 0; i < this.opts.steps; i++) this.step();
    this.liveness(60 * this.electionTick);
  }
}

