import { join } from 'node:path';
import { statfs } from 'node:fs/promises';
import { Errors } from '../errors';
import { isReadOnly, KV } from '../mvcc/kv';
import { KVStore } from '../mvcc/kv-store';
import type {
  DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, StoredRangeResponse,
  RequestOp, TxnRequest, TxnResponse,
} from '../mvcc/types';
import { EntryType, type Entry } from '../raft/entry';
import { RaftNode } from '../raft/node';
import { Wal } from '../raft/wal/wal';
import { openBackend, type Backend } from '../storage';
import { AlarmStore, AlarmType, type Alarm } from './alarms';
import { AlarmAction, Applier, type ApplyResult } from './applier';
import { effectiveQuota, type ServerConfig } from './config';
import { clusterId, memberId } from './identity';
import { takeSnapshot, type SnapshotData } from './snapshot';
import { describeRequest, isSlow, jsonLog, warnSlow, type LogLine } from './slow-log';
import { decodeInternalRequest, encodeInternalRequest, type AlarmRequest, type InternalRequest } from './internal-request';
import { checkDelete, checkPut, checkRange, checkTxn } from './validate';
import { WatchHub } from '../watch/hub';
import { Lessor } from '../lease/lessor';
import { newAutoCompactor, parseCompactionRetention, type Clock } from './auto-compactor';

const META_CONSISTENT_INDEX = Buffer.from('consistent_index');
/** etcd's estimate of a put's cost beyond its key and value (quota.go). */
const KV_OVERHEAD = 256;

export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface ServerHooks {
  log?: (msg: string) => void;
  /** Structured log for slow requests (JSON lines on stderr by default). */
  slowLog?: LogLine;
  /** The server cannot go on (the WAL or the backend failed to write): it has stopped serving. */
  onFatal?: (err: Error) => void;
  /** The auto-compactor's clock (tests). */
  autoCompactionClock?: Clock;
}

interface Waiter {
  req: InternalRequest;
  resolve: (r: ApplyResult) => void;
  reject: (err: unknown) => void;
}

/**
 * The request pipeline of a member: checks and quota, then the write path of DESIGN.md: propose to
 * raft → the WAL makes the entry durable (one fdatasync for every entry that arrived meanwhile) →
 * apply to mvcc → answer. The backend is committed in batches (--backend-batch-limit / -interval)
 * with the applied index in the same commit; a restart replays the WAL after that index.
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly kv: KV;
  readonly watchHub: WatchHub;
  private readonly applier: Applier;
  private readonly waiters = new Map<number, Waiter>();
  private running: Promise<void> | undefined;
  private scheduled = false;
  private commitTimer: NodeJS.Timeout | undefined;
  /** Consistent index of each backend commit under way, oldest first. */
  private readonly committing: number[] = [];
  private closed = false;
  private failed: Error | undefined;
  /** Set while the backend engine is being swapped (defragment): nothing may read it meanwhile. */
  private gate: Promise<void> | undefined;
  private readonly quota: number;
  private autoCompactor: { run(): void; stop(): Promise<void> } | undefined;
  private readonly log: (msg: string) => void;
  private readonly slowLog: LogLine;

  private constructor(
    readonly cfg: ServerConfig,
    readonly backend: Backend,
    readonly store: KVStore,
    readonly alarms: AlarmStore,
    readonly lessor: Lessor,
    private readonly wal: Wal,
    private readonly node: RaftNode,
    private readonly hooks: ServerHooks,
  ) {
    this.memberId = node.id;
    this.clusterId = clusterId([node.id]);
    this.kv = new KV(store);
    this.watchHub = new WatchHub(store);
    this.applier = new Applier(this.kv, alarms, lessor);
    this.nextLeaseId = ((this.memberId & 0xffffn) << 48n) | ((BigInt(Date.now()) << 8n) & ((1n << 48n) - 1n));
    // Expired leases are revoked through the log, like a client's revoke (ordered, durable, watched).
    this.leaseTimer = setInterval(() => this.revokeExpiredLeases(), 500);
    this.leaseTimer.unref();
    if (cfg.leaseCheckpointEnabled && cfg.leaseCheckpointIntervalMs > 0) {
      this.checkpointTimer = setInterval(() => this.checkpointLeases(), cfg.leaseCheckpointIntervalMs);
      this.checkpointTimer.unref();
    }
    this.quota = effectiveQuota(cfg);
    this.log = hooks.log ?? (() => {});
    this.slowLog = hooks.slowLog ?? jsonLog;
    backend.beforeCommit = () => {
      const ci = this.node.appliedIndex;
      backend.put('meta', META_CONSISTENT_INDEX, u64(ci));
      this.committing.push(ci);
    };
    backend.afterCommit = (ok) => {
      const ci = this.committing.shift()!;
      // The backend has everything up to ci durably: older WAL segments are no longer needed. The
      // memory engine keeps nothing across a restart, so its WAL is kept whole and replayed.
      if (ok && backend.kind !== 'memory') void this.wal.releaseTo(ci).catch((err) => this.fail(err));
    };
  }

  static async open(cfg: ServerConfig, hooks: ServerHooks = {}): Promise<EtcdServer> {
    const log = hooks.log ?? (() => {});
    const backend = await openBackend(cfg.backend, {
      dir: join(cfg.dataDir, 'member', 'snap'),
      noSync: cfg.unsafeNoFsync,
      bolt: { freelistType: cfg.backendBboltFreelistType, freelistSync: cfg.backendBboltFreelistSync },
    });
    const lessor = await Lessor.open(backend);
    const fieldLog = (msg: string, fields: Record<string, unknown>) => log(`${msg} ${JSON.stringify(fields)}`);
    const store = await KVStore.open(backend, {
      compaction: { batchLimit: cfg.compactionBatchLimit, sleepMs: cfg.compactionSleepIntervalMs },
      leases: lessor,
      log: fieldLog,
      // An interrupted compaction resumes once the server's commit hooks are in place.
      deferResume: true,
    });
    const alarms = await AlarmStore.open(backend);
    const ciBuf = backend.get('meta', META_CONSISTENT_INDEX);
    const ci = ciBuf ? Number(ciBuf.readBigUInt64BE(0)) : 0;
    const walDir = cfg.walDir || join(cfg.dataDir, 'member', 'wal');
    let server: EtcdServer | undefined;
    const { wal, entries, hardState, lastIndex } = await Wal.open(
      {
        dir: walDir,
        noSync: cfg.unsafeNoFsync,
        segmentBytes: cfg.walSegmentBytes,
        log,
        // The disk cannot hold the next WAL segment: stop writes (NOSPACE) before the log needs it.
        onSpaceProblem: (err) => err && server?.raiseNoSpace(),
      },
      ci,
    );
    if (lastIndex < ci) {
      await wal.close();
      throw new Error(`the WAL in ${walDir} ends at entry ${lastIndex} but the backend has applied up to ${ci}: the WAL is missing entries; refusing to start`);
    }
    const node = new RaftNode({ id: memberId(cfg.initialAdvertisePeerUrls, cfg.initialClusterToken), hardState, lastIndex, applied: ci });
    node.restoreCommitted(entries);
    const s = (server = new EtcdServer(cfg, backend, store, alarms, lessor, wal, node, hooks));
    store.resumeCompaction();
    if (entries.length) log(`replaying ${entries.length} WAL entries after index ${ci}`);
    // Replay, and make the new term and its empty entry durable, before serving.
    await s.drain();
    // Auto-compaction proposes Compact requests through the log, as a client would (etcd's v3compactor).
    s.autoCompactor = newAutoCompactor(
      { rev: () => s.store.currentRev, compact: (rev) => s.compact(rev, false) },
      {
        mode: cfg.autoCompactionMode,
        retention: parseCompactionRetention(cfg.autoCompactionMode, cfg.autoCompactionRetention),
        revisionIntervalMs: cfg.autoCompactionRevisionIntervalMs,
        clock: hooks.autoCompactionClock,
        log: fieldLog,
      },
    );
    s.autoCompactor?.run();
    return s;
  }

  get raftTerm(): number {
    return this.node.term;
  }
  get appliedIndex(): number {
    return this.node.appliedIndex;
  }
  get commitIndex(): number {
    return this.node.commitIndex;
  }

  header(revision = this.store.currentRev): ResponseHeader {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.node.term };
  }

  members(): Member[] {
    return [{
      id: this.memberId,
      name: this.cfg.name,
      peerUrls: this.cfg.initialAdvertisePeerUrls,
      clientUrls: this.cfg.advertiseClientUrls,
      isLearner: false,
    }];
  }

  // --- KV ---

  range(req: RangeRequest): RangeResponse | Promise<RangeResponse> {
    if (this.gate) return this.gate.then(() => this.range(req));
    this.assertServing();
    checkRange(req);
    const start = performance.now();
    // One member: what is applied is committed, so serializable and linearizable reads agree.
    const r = this.kv.range(req);
    if (isSlow(start, this.cfg.warningApplyDurationMs)) {
      warnSlow(this.slowLog, this.cfg.warningApplyDurationMs, start, 'read-only range ', describeRequest({ range: req }), `range_response_count:${r.kvs.length} count:${r.count}`);
    }
    return r;
  }

  /**
   * A range answered with the KeyValues' stored bytes (see KV.rangeStored); undefined when the request
   * needs the general path, or while a defragment holds reads (range() waits for it).
   */
  rangeStored(req: RangeRequest): StoredRangeResponse | undefined {
    if (this.gate) return undefined;
    this.assertServing();
    checkRange(req);
    const start = performance.now();
    const r = this.kv.rangeStored(req);
    if (r && isSlow(start, this.cfg.warningApplyDurationMs)) {
      warnSlow(this.slowLog, this.cfg.warningApplyDurationMs, start, 'read-only range ', describeRequest({ range: req }), `range_response_count:${r.kvs.length} count:${r.count}`);
    }
    return r;
  }

  put(req: PutRequest): Promise<PutResponse> {
    this.assertServing();
    checkPut(req);
    this.checkQuota(KV_OVERHEAD + req.key.length + req.value.length);
    return this.propose({ put: req }) as Promise<PutResponse>;
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    this.assertServing();
    checkDelete(req);
    return this.propose({ deleteRange: req }) as Promise<DeleteRangeResponse>;
  }

  txn(req: TxnRequest): Promise<TxnResponse> | TxnResponse {
    if (this.gate) return this.gate.then(() => this.txn(req));
    this.assertServing();
    checkTxn(req, this.cfg.maxTxnOps);
    if (isReadOnly(req)) return this.kv.txn(req); // etcd serves read-only txns without a proposal
    this.checkQuota(txnCost(req));
    return this.propose({ txn: req }) as Promise<TxnResponse>;
  }

  /** Compaction; with physical, answers only once the old revisions are gone from the backend. */
  async compact(revision: number, physical: boolean): Promise<number> {
    this.assertServing();
    const r = (await this.propose({ compaction: { revision, physical } })) as { revision: number; compacted: Promise<void> };
    if (physical) await r.compacted;
    return r.revision;
  }

  async alarm(req: AlarmRequest): Promise<Alarm[]> {
    this.assertServing();
    if (req.action === AlarmAction.GET) {
      return this.alarms.list().filter((a) => req.alarm === AlarmType.NONE || a.alarm === req.alarm);
    }
    return ((await this.propose({ alarm: req })) as { alarms: Alarm[] }).alarms;
  }

  // --- leases ---

  private nextLeaseId: bigint;
  private readonly leaseTimer: NodeJS.Timeout;
  private checkpointTimer: NodeJS.Timeout | undefined;

  async leaseGrant(ttl: number, id: bigint): Promise<{ leaseId: bigint; ttl: number }> {
    this.assertServing();
    if (id === 0n) {
      // As etcd's id generator: member bits on top, time below, never negative, never in use.
      do this.nextLeaseId = (this.nextLeaseId + 1n) & ((1n << 63n) - 1n);
      while (this.nextLeaseId === 0n || this.lessor.exists(this.nextLeaseId));
      id = this.nextLeaseId;
    }
    return (await this.propose({ leaseGrant: { id, ttl } })) as { leaseId: bigint; ttl: number };
  }

  async leaseRevoke(id: bigint): Promise<number> {
    this.assertServing();
    return ((await this.propose({ leaseRevoke: { id } })) as { revision: number }).revision;
  }

  /** Keep-alive: leader-local, as etcd's (no log entry). Returns the TTL, or throws lease-not-found. */
  leaseRenew(id: bigint): number {
    this.assertServing();
    return this.lessor.renew(id);
  }

  private revokeExpiredLeases(): void {
    if (this.closed || this.failed) return;
    // etcd revokes at most 1000 expired leases per second; the log's group commit takes more, so
    // Plinth allows 5000 per second (2500 per half-second tick), keeping expiry on time under load.
    for (const lease of this.lessor.expired(2500)) {
      // If the revoke does not get through, look at the lease again in a while.
      this.lessor.retryLater(lease, 3000);
      this.propose({ leaseRevoke: { id: lease.id } }).catch(() => {});
    }
  }

  private checkpointLeases(): void {
    if (this.closed || this.failed || this.lessor.leases.size === 0) return;
    const checkpoints = [...this.lessor.leases.values()].map((l) => ({ id: l.id, remainingTtl: Math.max(1, this.lessor.remainingSeconds(l)) }));
    for (let i = 0; i < checkpoints.length; i += 1000) {
      this.propose({ leaseCheckpoint: { checkpoints: checkpoints.slice(i, i + 1000) } }).catch(() => {});
    }
  }

  // --- maintenance ---

  /** Gives the backend's free space back; reads and applies wait meanwhile, as etcd's defrag blocks. */
  defragment(): Promise<void> {
    this.assertServing();
    this.gate ??= this.backend.defragment().finally(() => (this.gate = undefined));
    return this.gate;
  }

  /** A consistent dump of the backend (see snapshot.ts). */
  async snapshot(): Promise<SnapshotData> {
    this.assertServing();
    if (this.gate) await this.gate;
    return takeSnapshot(this.backend, join(this.cfg.dataDir, 'member', 'snap'));
  }

  /** Waits out a defragment, for callers that read the engine directly (status). */
  async ready(): Promise<void> {
    while (this.gate) await this.gate;
  }

  // --- write path ---

  private propose(req: InternalRequest): Promise<ApplyResult> {
    const index = this.node.propose(encodeInternalRequest(req));
    const done = new Promise<ApplyResult>((resolve, reject) => this.waiters.set(index, { req, resolve, reject }));
    this.schedule();
    return done;
  }

  /**
   * Runs the raft loop once the current callback is done: the requests it proposed (a socket read holds
   * many) share a batch, and those arriving while the log is being written share the next one.
   */
  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  /** Runs the raft loop until nothing is left to persist or apply. */
  private drain(): Promise<void> {
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      if (this.node.hasReady() && !this.failed) this.schedule();
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    try {
      while (this.node.hasReady()) {
        while (this.gate) await this.gate;
        const rd = this.node.ready();
        // Committed entries are durable already: apply and answer them before the next fdatasync.
        for (const e of rd.committed) this.applyEntry(e);
        if (rd.committed.length) this.backendCommitDue();
        if (rd.entries.length || rd.hardState) await this.wal.append(rd.entries, rd.hardState);
        this.node.advance(rd);
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private applyEntry(e: Entry): void {
    const w = this.waiters.get(e.index);
    if (w) this.waiters.delete(e.index);
    if (e.type === EntryType.EMPTY) return;
    let req: InternalRequest;
    try {
      req = w?.req ?? decodeInternalRequest(e.data);
    } catch (err) {
      this.fail(new Error(`cannot decode WAL entry ${e.index}: ${(err as Error).message}`));
      return;
    }
    const start = performance.now();
    try {
      const res = this.applier.apply(req);
      if (isSlow(start, this.cfg.warningApplyDurationMs)) {
        warnSlow(this.slowLog, this.cfg.warningApplyDurationMs, start, '', describeRequest(req), `revision:${(res as { revision?: number }).revision ?? ''}`);
      }
      w?.resolve(res);
    } catch (err) {
      if (isSlow(start, this.cfg.warningApplyDurationMs)) warnSlow(this.slowLog, this.cfg.warningApplyDurationMs, start, '', describeRequest(req), '', err);
      w?.reject(err);
    }
  }

  /** Commits the backend when the batch is full, or arms the interval timer. */
  private backendCommitDue(): void {
    if (this.backend.pendingWrites >= this.cfg.backendBatchLimit) this.commitBackend();
    else this.commitTimer ??= setTimeout(() => this.commitBackend(), this.cfg.backendBatchIntervalMs);
  }

  private commitBackend(): Promise<void> {
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    const p = this.backend.commit();
    p.then(
      () => (this.commitRetryMs = 0),
      (err: Error) => {
        if (isNoSpace(err)) return this.onBackendNoSpace(err);
        void this.outOfSpace(err).then((full) => (full ? this.onBackendNoSpace(err) : this.fail(err)));
      },
    );
    return p;
  }

  /**
   * Whether a failed commit is a full disk after all: on a full file system an engine can report EIO
   * (lmdb on tmpfs); then the file system itself says whether it is full.
   */
  private async outOfSpace(err: Error): Promise<boolean> {
    return isIoError(err) && diskNearlyFull(join(this.cfg.dataDir, 'member', 'snap'));
  }

  /** The backend could not commit for lack of space: keep the writes, alarm, retry more slowly. */
  private onBackendNoSpace(err: Error): void {
    // A full disk: the applied writes stay in the backend's buffer (and in the WAL); refuse new
    // writes and try again, more slowly each time, until space is freed.
    this.raiseNoSpace();
    this.commitRetryMs = Math.min(Math.max(2 * this.commitRetryMs, 100), 2000);
    if (this.commitRetryMs === 100 || this.commitRetryMs === 2000) this.log(`backend commit failed (${err.message}); retrying every ${this.commitRetryMs} ms`);
    if (!this.closed) this.commitTimer ??= setTimeout(() => this.commitBackend(), this.commitRetryMs);
  }

  private commitRetryMs = 0;

  /** Raises the NOSPACE alarm through the log, once. */
  raiseNoSpace(): void {
    if (this.closed || this.failed || this.alarms.has(AlarmType.NOSPACE) || this.raisingNoSpace) return;
    this.raisingNoSpace = true;
    this.propose({ alarm: { action: AlarmAction.ACTIVATE, memberId: this.memberId, alarm: AlarmType.NOSPACE } })
      .catch(() => {})
      .finally(() => (this.raisingNoSpace = false));
  }

  private raisingNoSpace = false;

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.log(`fatal: ${err.message}`);
    for (const w of this.waiters.values()) w.reject(Errors.stopped);
    this.waiters.clear();
    this.hooks.onFatal?.(err);
  }

  private checkQuota(cost: number): void {
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
    if (this.backend.sizeBytes() + cost >= this.quota) {
      // Raise the alarm through the log, as etcd does; this request fails at once.
      this.raiseNoSpace();
      throw Errors.noSpace;
    }
  }

  private assertServing(): void {
    if (this.closed || this.failed) throw Errors.stopped;
  }

  /** Stops: finishes the entries under way, commits the backend with its consistent index, closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchHub.close();
    clearInterval(this.leaseTimer);
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    await this.autoCompactor?.stop();
    while (this.running) await this.running;
    // A compaction under way stops at its next batch; the next start resumes it.
    await this.store.close();
    if (this.commitTimer) clearTimeout(this.commitTimer);
    if (!this.failed) await this.backend.commit().catch((err) => this.log(`final backend commit failed (${err.message}); the WAL keeps those writes`));
    await this.backend.close().catch(() => {});
    await this.wal.close().catch(() => {});
  }
}

/** EIO, as an engine reports it (lmdb: code 5, "Input/output error"). */
function isIoError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'EIO' || code === 5 || /Input\/output error|\bEIO\b/.test(err.message);
}

/** Whether the file system holding dir has less than 8 MiB or 1% free (where a write can fail for space). */
async function diskNearlyFull(dir: string): Promise<boolean> {
  try {
    const st = await statfs(dir);
    const free = st.bavail * st.bsize;
    return free < 8 * 1024 * 1024 || free < (st.blocks * st.bsize) / 100;
  } catch {
    return false;
  }
}

function isNoSpace(err: Error): boolean {
  return (err as { code?: string }).code === 'ENOSPC' || /no space left|ENOSPC|MDB_MAP_FULL/i.test(err.message);
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}


function txnCost(t: TxnRequest): number {
  const cost = (ops: RequestOp[]): number =>
    ops.reduce((sum, op) => sum + ('put' in op ? KV_OVERHEAD + op.put.key.length + op.put.value.length : 'txn' in op ? txnCost(op.txn) : 0), 0);
  return Math.max(cost(t.success), cost(t.failure));
}
