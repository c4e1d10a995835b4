import { rm } from 'node:fs/promises';
import { RawNode } from './core/raw-node';
import type { MemoryStorage } from './core/memory-storage';
import {
  EntryType, MessageType, SnapshotStatus, StateType,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type ReadState, type SnapshotMetadata, type SoftState,
} from './core/types';
import type { PeerTransport } from './transport/peer-transport';
import type { Wal } from './wal/wal';

// The raft driver: runs the pure raft core (core/) against the world. It owns the WAL, the peer
// transport and raft snapshots; the server above it sees "propose → entry applied", "read index →
// index reached", and leader changes. The loop follows etcd's raftNode.start and the core's Ready
// contract (DESIGN.md): a leader's messages go out at once (it may replicate in parallel with its own
// fsync; its own log counts for commit only once durable), everything else only after the state it
// reports is on disk; committed entries (all durable here already) are applied before the next WAL write
// so answers do not wait for it.

export interface RaftDriverHooks {
  /** Committed entries, in index order, to apply now (synchronously). */
  apply(entries: Entry[]): void;
  /** The known leader or this member's role changed. */
  onSoftState(ss: SoftState, term: number): void;
  onReadStates(rs: ReadState[]): void;
  /** Replace the state machine with the snapshot in file (received from the leader), durably. */
  installSnapshot(file: string, meta: SnapshotMetadata): Promise<void>;
  /** Dump the state machine (the backend as applied now) into a new file, for a follower; with the applied index it holds. */
  dumpSnapshot(): Promise<{ file: string; index: number }>;
  /** Resolves once the backend durably holds every entry applied before the call. */
  backendDurable(): Promise<void>;
  /** While the state machine is held (a defragment swaps the engine), applying waits for this. */
  gate(): Promise<void> | undefined;
  /** Something the member cannot go on after (the WAL could not be written). */
  onFatal(err: Error): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
}

export interface RaftDriverOptions {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  wal: Wal;
  /** Undefined for a member that has no peers and no peer listener (a single member started plainly). */
  transport: PeerTransport | undefined;
  heartbeatMs: number;
  /** Take a raft snapshot (and release the WAL behind it) every this many applied entries (etcd's --snapshot-count). */
  snapshotCount: number;
  /** Entries kept in memory behind a snapshot for slow followers (etcd's SnapshotCatchUpEntries). */
  catchUpEntries: number;
  /**
   * Whether the backend survives a restart. The memory engine's does not: its WAL is never released
   * and its snapshot points are not recorded (a restart replays the whole log).
   */
  durableBackend: boolean;
  /** The conf state as of the last snapshot / bootstrap (kept current as conf changes apply). */
  confState: ConfState;
  /** Ticks to advance at start so a new cluster elects sooner (etcd's initial election tick advance). */
  advanceTicks: number;
  hooks: RaftDriverHooks;
}

export class RaftDriver {
  readonly id: NodeId;
  readonly node: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: Wal;
  readonly transport: PeerTransport | undefined;
  private readonly hooks: RaftDriverHooks;
  private readonly opts: RaftDriverOptions;
  private running: Promise<void> | undefined;
  private scheduled = false;
  private ticker: NodeJS.Timeout | undefined;
  private stopped = false;
  private failed = false;
  confState: ConfState;
  /** Index of the last snapshot point (raft's storage compacts behind it). */
  private snapshotIndex: number;
  /** Received snapshot files, by snapshot index, until the core takes or refuses them. */
  private readonly receivedSnapshots = new Map<number, string>();
  /** Followers a snapshot is being dumped or sent to, with the dump file once there is one. */
  private readonly sendingSnapshot = new Map<NodeId, string | undefined>();
  lead: NodeId = 0n;
  /** A hard state that changed only the commit index, written with the next WAL append. */
  private unsyncedHardState: HardState | undefined;
  state: StateType = StateType.Follower;

  constructor(opts: RaftDriverOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.node = opts.node;
    this.storage = opts.storage;
    this.wal = opts.wal;
    this.transport = opts.transport;
    this.hooks = opts.hooks;
    this.confState = opts.confState;
    this.snapshotIndex = opts.storage.snapshot().metadata.index;
  }

  /** Starts ticking and processing. Resolves once the entries committed before the start are applied. */
  async start(): Promise<void> {
    // Apply what is committed first: raft does not campaign with conf changes left to apply.
    await this.drain();
    for (let i = 0; i < this.opts.advanceTicks; i++) this.node.tick();
    // A member that is the only voter need not wait for an election timeout.
    if (this.confState.voters.length === 1 && this.confState.voters[0] === this.id) this.node.campaign();
    await this.drain();
    this.ticker = setInterval(() => {
      this.node.tick();
      this.schedule();
    }, this.opts.heartbeatMs);
  }

  // --- inputs ---

  /** Proposes an entry (throws the core's ErrProposalDropped when it cannot be taken). */
  propose(data: Buffer): void {
    this.node.propose(data);
    this.schedule();
  }

  proposeConfChange(cc: ConfChange): void {
    this.node.proposeConfChange(cc);
    this.schedule();
  }

  readIndex(ctx: Buffer): void {
    this.node.readIndex(ctx);
    this.schedule();
  }

  transferLeader(to: NodeId): void {
    this.node.transferLeader(to);
    this.schedule();
  }

  /** The server applied the conf change entry at index: tell the core (which returns the new conf state). */
  applyConfChange(cc: ConfChange, index: number): ConfState {
    this.confState = this.node.applyConfChange(cc);
    this.confHistory.push({ index, confState: this.confState });
    return this.confState;
  }

  /** The conf state after each conf change applied since the last snapshot point (few: one per change). */
  private confHistory: { index: number; confState: ConfState }[] = [];

  /** The configuration as of an applied index at or after the last snapshot point. */
  private confStateAt(index: number): ConfState {
    for (let i = this.confHistory.length - 1; i >= 0; i--) if (this.confHistory[i].index <= index) return this.confHistory[i].confState;
    return this.storage.snapshot().metadata.confState;
  }

  /** Messages from a peer (the transport's onMessages). */
  step(msgs: Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      try {
        this.node.step(m);
      } catch (err) {
        // A message from a member the core does not know (yet), or a local type: ignored, as etcd does.
        this.hooks.log('debug', 'raft: ignored message', { type: m.type, from: m.from.toString(16), error: (err as Error).message });
      }
    }
    this.schedule();
  }

  /** A snapshot arrived from the leader (the transport's onSnapshot); the file is ours now. */
  receiveSnapshot(msg: Message, file: string): void {
    const index = msg.snapshot?.metadata.index ?? 0;
    if (this.stopped || index === 0) {
      void rm(file, { force: true });
      return;
    }
    const old = this.receivedSnapshots.get(index);
    if (old && old !== file) void rm(old, { force: true });
    this.receivedSnapshots.set(index, file);
    this.step([msg]);
  }

  reportUnreachable(id: NodeId): void {
    this.node.reportUnreachable(id);
  }

  /** The index of the last snapshot point (entries up to it are never replayed). */
  get snapshotPoint(): number {
    return this.snapshotIndex;
  }

  get term(): number {
    return this.node.term;
  }

  get isLeader(): boolean {
    return this.state === StateType.Leader;
  }

  // --- the loop ---

  /** Runs the loop once the current callback is done: the proposals it made share one Ready. */
  private schedule(): void {
    if (this.scheduled || this.running || this.stopped) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private drain(): Promise<void> {
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      if (!this.failed && !this.stopped && (this.node.hasReady() || this.snapshotDue)) this.schedule();
    });
    return this.running;
  }

  /** etcd's raft node's lines for a leader change, in its words. */
  private logLeader(prev: NodeId, lead: NodeId): void {
    const [id, term] = [this.id.toString(16), this.node.term];
    if (lead === 0n) this.hooks.log('info', `raft.node: ${id} lost leader ${prev.toString(16)} at term ${term}`);
    else if (prev === 0n) this.hooks.log('info', `raft.node: ${id} elected leader ${lead.toString(16)} at term ${term}`);
    else this.hooks.log('info', `raft.node: ${id} changed leader from ${prev.toString(16)} to ${lead.toString(16)} at term ${term}`);
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped && (this.node.hasReady() || this.snapshotDue)) {
        for (let g = this.hooks.gate(); g; g = this.hooks.gate()) await g;
        if (this.snapshotDue) await this.takeSnapshot(this.snapshotDue);
        if (!this.node.hasReady()) continue;
        const rd = this.node.ready();
        if (rd.softState) {
          if (rd.softState.lead !== this.lead) this.logLeader(this.lead, rd.softState.lead);
          this.lead = rd.softState.lead;
          this.state = rd.softState.raftState;
          this.hooks.onSoftState(rd.softState, this.node.term);
        }
        if (rd.readStates.length) this.hooks.onReadStates(rd.readStates);
        const isLeader = this.state === StateType.Leader;
        if (isLeader) this.send(rd.messages);
        if (rd.snapshot) await this.installSnapshot(rd.snapshot.metadata);
        if (rd.committedEntries.length) this.hooks.apply(rd.committedEntries);
        // A hard state that only moved the commit index need not be synced (etcd's MustSync): it goes
        // to disk with the next write (a lower commit index after a crash is learnt again from the leader,
        // or re-committed by a sole member). This saves a second disk write per put on a single member.
        if (rd.hardState) this.unsyncedHardState = rd.hardState;
        if (rd.entries.length || rd.mustSync || rd.snapshot) await this.writeWal(rd.entries);
        if (rd.hardState) this.storage.setHardState(rd.hardState);
        if (rd.entries.length) this.storage.append(rd.entries);
        if (!isLeader) this.send(rd.messages);
        this.node.advance(rd);
        if (rd.committedEntries.length) this.maybeSnapshot();
      }
    } catch (err) {
      this.failed = true;
      this.hooks.onFatal(err as Error);
    }
  }

  /** Appends entries with the hard state not yet written (if any). */
  private async writeWal(entries: Entry[]): Promise<void> {
    const hs = this.unsyncedHardState;
    this.unsyncedHardState = undefined;
    await this.wal.append(entries, hs);
  }

  private send(msgs: Message[]): void {
    if (!msgs.length || !this.transport) return;
    const out: Message[] = [];
    for (const m of coalesce(msgs)) {
      if (m.type === MessageType.MsgSnap) this.sendSnapshot(m);
      else out.push(m);
    }
    if (out.length) this.transport.send(out);
  }

  /** Dumps the backend and streams it to a follower beside the MsgSnap (one at a time per follower). */
  private sendSnapshot(m: Message): void {
    if (this.sendingSnapshot.has(m.to) || !this.transport) {
      if (!this.sendingSnapshot.has(m.to)) this.node.reportSnapshot(m.to, SnapshotStatus.Failure);
      return;
    }
    this.sendingSnapshot.set(m.to, undefined);
    const transport = this.transport;
    this.hooks.log('info', 'sending database snapshot', { to: m.to.toString(16), index: m.snapshot?.metadata.index });
    void this.hooks.dumpSnapshot().then(
      ({ file, index }) => {
        if (this.stopped || !this.sendingSnapshot.has(m.to)) return void rm(file, { force: true });
        const msg = this.snapshotMessageFor(m, index);
        if (!msg) {
          // The dump's index left the in-memory log meanwhile: raft asks again with a fresh message.
          void rm(file, { force: true });
          return this.snapshotSent(m.to, false);
        }
        this.sendingSnapshot.set(m.to, file);
        transport.sendSnapshot(msg, file);
      },
      (err: Error) => {
        this.hooks.log('warn', 'cannot dump a snapshot for a follower', { to: m.to.toString(16), error: err.message });
        this.snapshotSent(m.to, false);
      },
    );
  }

  /**
   * The MsgSnap that goes with a dump: raft made it from the last snapshot point, but the dump holds the
   * backend at a later applied index. As etcd's createMergedSnapshotMessage, the message says that index,
   * its term and the configuration then: a member added after the snapshot point is in it (raft refuses a
   * snapshot whose configuration lacks the receiver), and the follower does not replay what it holds.
   */
  private snapshotMessageFor(m: Message, index: number): Message | undefined {
    if (!m.snapshot || index <= m.snapshot.metadata.index) return m;
    let term: number;
    try {
      term = this.storage.term(index);
    } catch {
      return undefined;
    }
    return { ...m, snapshot: { ...m.snapshot, metadata: { index, term, confState: this.confStateAt(index) } } };
  }

  /** The transport's onSnapshotStatus. */
  snapshotSent(to: NodeId, ok: boolean): void {
    const file = this.sendingSnapshot.get(to);
    this.sendingSnapshot.delete(to);
    if (file) void rm(file, { force: true });
    if (this.stopped) return;
    this.node.reportSnapshot(to, ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
    this.schedule();
  }

  /** A snapshot the core accepted from the leader: record it, then replace the state machine. */
  private async installSnapshot(meta: SnapshotMetadata): Promise<void> {
    const file = this.receivedSnapshots.get(meta.index);
    if (!file) throw new Error(`raft: snapshot at index ${meta.index} accepted but its data is not here`);
    this.receivedSnapshots.delete(meta.index);
    for (const [i, f] of this.receivedSnapshots) if (i < meta.index) (this.receivedSnapshots.delete(i), void rm(f, { force: true }));
    // The log record first: after a crash, a backend behind it is restored from the file again.
    await this.wal.saveSnapshot(meta, true);
    await this.hooks.installSnapshot(file, meta);
    this.storage.applySnapshot({ metadata: meta });
    this.confState = meta.confState;
    this.confHistory = [];
    this.snapshotIndex = meta.index;
    if (this.opts.durableBackend) await this.wal.releaseTo(meta.index);
    this.hooks.log('info', 'applied incoming Raft snapshot', { 'snapshot-index': meta.index });
  }

  /**
   * Every --snapshot-count applied entries: a snapshot point. Once the backend durably holds what was
   * applied (the snapshot is the backend), the loop records the point in the WAL, releases the WAL behind
   * it and compacts the in-memory log, keeping catchUpEntries for slow followers.
   */
  private maybeSnapshot(): void {
    const index = this.node.appliedIndex;
    if (this.snapshotPreparing || index - this.snapshotIndex <= this.opts.snapshotCount) return;
    this.snapshotPreparing = true;
    const confState = this.confState;
    const durable = this.opts.durableBackend ? this.hooks.backendDurable() : Promise.resolve();
    durable.then(
      () => {
        this.snapshotDue = { index, confState };
        this.schedule();
      },
      (err: Error) => {
        // The backend cannot commit (a full disk): try again after the next applied entries.
        this.snapshotPreparing = false;
        this.hooks.log('warn', 'cannot take a snapshot: the backend did not commit', { error: err.message });
      },
    );
  }

  private snapshotPreparing = false;
  private snapshotDue: { index: number; confState: ConfState } | undefined;

  /** In the loop (serialized with WAL appends). */
  private async takeSnapshot(due: { index: number; confState: ConfState }): Promise<void> {
    this.snapshotDue = undefined;
    this.snapshotPreparing = false;
    if (due.index <= this.snapshotIndex) return;
    const snap = this.storage.createSnapshot(due.index, due.confState);
    // Conf states at or before the snapshot point are the snapshot's (or older): no longer needed.
    this.confHistory = this.confHistory.filter((h) => h.index > due.index);
    if (this.opts.durableBackend) {
      // The commit index written before the snapshot record covers it (nothing replays a log below it).
      if (this.unsyncedHardState) await this.writeWal([]);
      await this.wal.saveSnapshot(snap.metadata, false);
      await this.wal.releaseTo(due.index);
    }
    const compactTo = due.index - this.opts.catchUpEntries;
    if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
    this.snapshotIndex = due.index;
    this.hooks.log('info', 'saved snapshot', { 'snapshot-index': due.index, 'compacted-index': Math.max(0, compactTo) });
  }

  /** Stops ticking and processing; the WAL is closed by its owner. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    while (this.running) await this.running;
    // A clean stop leaves the latest commit index in the WAL, so a restart need not learn it again.
    if (this.unsyncedHardState && !this.failed) {
      await this.writeWal([]).catch((err: Error) => this.hooks.log('warn', 'cannot write the last commit index to the WAL', { error: err.message }));
    }
    for (const f of this.receivedSnapshots.values()) await rm(f, { force: true });
    this.receivedSnapshots.clear();
    for (const f of this.sendingSnapshot.values()) if (f) await rm(f, { force: true });
    this.sendingSnapshot.clear();
  }

  /** True while committed entries wait to be applied (a linearizable read must wait for them too). */
  get applied(): number {
    return this.node.appliedIndex;
  }
}

/**
 * Fewer messages for the same effect. A leader makes one MsgApp per proposal per follower; consecutive
 * appends to one follower in the same term, each starting where the previous ended, become one (the
 * follower checks the first one's previous entry; raft's in-flight window counts by last index, so one
 * answer frees them all). A follower forwards one MsgProp per proposal: those to the leader in one batch
 * become one (a leader appends all of a proposal's entries). Of a batch's append responses to one member
 * only the last is sent, as etcd's processMessages does (each one acknowledges everything before it).
 */
export function coalesce(msgs: Message[]): Message[] {
  if (msgs.length < 2) return msgs;
  const out: Message[] = [];
  // Index in out of the last append / proposal to each member that may still take more entries.
  const lastApp = new Map<NodeId, number>();
  const lastProp = new Map<NodeId, number>();
  const lastResp = new Map<NodeId, number>();
  const lastBeat = new Map<NodeId, number>();
  let dropped = false;
  for (const m of msgs) {
    if (m.type === MessageType.MsgApp) {
      const i = lastApp.get(m.to);
      const prev = i === undefined ? undefined : out[i];
      if (prev && prev.term === m.term && prev.entries.length && m.index === prev.index + prev.entries.length && m.logTerm === prev.entries[prev.entries.length - 1].term) {
        // The merged message's entries array is our own copy: appending to it is safe.
        for (const e of m.entries) prev.entries.push(e);
        if (m.commit > prev.commit) prev.commit = m.commit;
        continue;
      }
      lastApp.set(m.to, out.length);
      out.push(m.entries.length ? { ...m, entries: m.entries.slice() } : m);
      continue;
    }
    if (m.type === MessageType.MsgProp) {
      const i = lastProp.get(m.to);
      if (i !== undefined && out[i].term === m.term) {
        for (const e of m.entries) out[i].entries.push(e);
        continue;
      }
      lastProp.set(m.to, out.length);
      out.push({ ...m, entries: m.entries.slice() });
      continue;
    }
    if (m.type === MessageType.MsgAppResp || m.type === MessageType.MsgHeartbeat) {
      // A leader's heartbeats to one member in one batch: the last carries the newest read context,
      // and a quorum's answers to it release every read request queued before it (raft's readOnly.advance).
      const last = m.type === MessageType.MsgAppResp ? lastResp : lastBeat;
      const i = last.get(m.to);
      if (i !== undefined) {
        out[i] = DROPPED;
        dropped = true;
      }
      last.set(m.to, out.length);
      if (m.type === MessageType.MsgHeartbeat) {
        lastApp.delete(m.to);
        lastProp.delete(m.to);
      }
    } else {
      // Anything else to that member keeps its place between appends and proposals.
      lastApp.delete(m.to);
      lastProp.delete(m.to);
    }
    out.push(m);
  }
  return dropped ? out.filter((m) => m !== DROPPED) : out;
}

const DROPPED = { type: -1 } as unknown as Message;

export { EntryType };
