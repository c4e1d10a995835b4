import { BUCKETS, type Bucket, type Engine, type EngineKind, type WriteOp } from './engine';
import { backendCommitSeconds, backendDefragSeconds, backendSnapshotSeconds, defragInflight, timed } from '../metrics';

/**
 * Backend = an Engine plus a write buffer, as etcd's backend is bbolt plus its batch tx buffer.
 *
 * Writes go into the pending batch at once and are visible to reads at once (read-your-writes for the
 * single writer, mvcc). commit() hands the pending batch to the engine; while one engine commit runs,
 * new writes gather in the next batch, so concurrent writers share commits (group commit).
 */
export class Backend {
  readonly engine: Engine;
  /** Writes not yet handed to the engine. */
  private pending: Batch = new Batch();
  /** The batch the engine is committing now, still consulted by reads until it is durable. */
  private inflight: Batch | undefined;
  private inflightDone: Promise<void> | undefined;
  /** The commit queued behind the in-flight one; every caller that arrives meanwhile shares it. */
  private queued: Promise<void> | undefined;
  /** Number of engine commits done, for stats and tests. */
  commits = 0;
  /**
   * Called synchronously just before a batch goes to the engine, so it can add writes that describe
   * the batch (etcd's consistent index); afterCommit is called, in the same order, once it is durable.
   */
  beforeCommit: (() => void) | undefined;
  afterCommit: ((ok: boolean) => void) | undefined;
  /** The last engine commit failed: the next one first lets the engine recover (e.g. reopen). */
  private recoverFirst = false;
  /** The engine's size is a stat/readdir away: cache it, refreshed after commits at most this often. */
  private static readonly SIZE_REFRESH_MS = 100;
  private cachedSize = -1;
  private sizeAt = 0;

  constructor(engine: Engine) {
    this.engine = engine;
  }

  get kind(): EngineKind {
    return this.engine.kind;
  }

  get(bucket: Bucket, key: Buffer): Buffer | undefined {
    const k = key.toString('latin1');
    let hit = this.pending.lookup(bucket, k);
    if (hit === MISS && this.inflight) hit = this.inflight.lookup(bucket, k);
    if (hit !== MISS) return hit;
    return this.engine.get(bucket, key);
  }

  put(bucket: Bucket, key: Buffer, value: Buffer): void {
    this.pending.add(bucket, key, value);
  }

  delete(bucket: Bucket, key: Buffer): void {
    this.pending.add(bucket, key, undefined);
  }

  /** Writes buffered and not yet durable. */
  get pendingWrites(): number {
    return this.pending.ops.length + (this.inflight?.ops.length ?? 0);
  }

  /** While set, commits wait: the engine must not change (defragment, consistent dump). */
  private hold: Promise<void> | undefined;

  /** Resolves once every write made before the call is durable. */
  commit(): Promise<void> {
    if (this.hold) return this.hold.then(() => this.commit());
    return this.commitNow();
  }

  /** commit() without waiting for a hold: for exclusive(), which holds commits itself. */
  private commitNow(): Promise<void> {
    if (this.inflightDone) {
      if (this.pending.ops.length === 0) return this.inflightDone;
      this.queued ??= this.inflightDone.then(
        () => {
          this.queued = undefined;
          return this.commitPending();
        },
        (err) => {
          this.queued = undefined;
          throw err;
        },
      );
      return this.queued;
    }
    if (this.pending.ops.length === 0) return Promise.resolve();
    return this.commitPending();
  }

  private commitPending(): Promise<void> {
    this.beforeCommit?.();
    const batch = this.pending;
    this.pending = new Batch();
    this.inflight = batch;
    const engine = this.engine;
    const write = timed(backendCommitSeconds, this.recoverFirst && engine.recover ? engine.recover().then(() => engine.write(batch.ops)) : engine.write(batch.ops));
    const done = write.then(
      () => {
        this.commits++;
        this.recoverFirst = false;
        if (Date.now() - this.sizeAt >= Backend.SIZE_REFRESH_MS) this.cachedSize = -1;
        if (this.inflight === batch) this.inflight = undefined;
        if (this.inflightDone === done) this.inflightDone = undefined;
        this.afterCommit?.(true);
      },
      (err: Error) => {
        // The engine refused the batch (a full disk, say). Nothing is lost: the batch goes back in
        // front of what came since, still readable, and the next commit tries again.
        const merged = new Batch();
        for (const op of batch.ops) merged.add(op.bucket, op.key, op.value);
        for (const op of this.pending.ops) merged.add(op.bucket, op.key, op.value);
        this.pending = merged;
        if (this.inflight === batch) this.inflight = undefined;
        if (this.inflightDone === done) this.inflightDone = undefined;
        this.recoverFirst = true;
        this.afterCommit?.(false);
        throw err;
      },
    );
    this.inflightDone = done;
    return done;
  }

  /**
   * Ordered scan over durable data: commits the buffer first so the engine holds everything.
   * For start-up, compaction and snapshots, not for the request path.
   */
  async scan(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer, v: Buffer) => boolean | void): Promise<void> {
    await this.commit();
    await this.engine.scan(bucket, start, end, visit);
  }

  /**
   * The keys of committed data only, without committing first: for a caller that knows what it needs
   * is committed already (compaction: every revision at or below its own, committed when it starts).
   */
  scanCommittedKeys(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer) => boolean | void): Promise<void> {
    return this.engine.scanKeys(bucket, start, end, visit);
  }

  /**
   * Runs fn with everything committed and commits held back, so the engine does not change under it.
   * Reads through the buffer go on meanwhile (unless fn closes the engine: see defragment).
   */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.hold) await this.hold;
    // Hold first, then commit what is buffered or under way: a commit asked for after this point
    // waits, so the engine cannot change while fn runs.
    let release!: () => void;
    this.hold = new Promise<void>((r) => (release = r));
    try {
      await this.commitNow();
      return await fn();
    } finally {
      this.hold = undefined;
      release();
    }
  }

  /** Defragments the engine. The caller must keep every read away until it resolves. */
  defragment(): Promise<void> {
    return this.exclusive(async () => {
      defragInflight.v = 1;
      try {
        await timed(backendDefragSeconds, this.engine.defragment());
      } finally {
        defragInflight.v = 0;
      }
      this.cachedSize = -1;
    });
  }

  /**
   * Runs fn with everything committed and commits held back: fn may read the engine in as many async
   * steps as it likes and sees one state (snapshots that are written out in bounded batches).
   */
  whileCommitsHeld<T>(fn: () => Promise<T>): Promise<T> {
    return timed(backendSnapshotSeconds, this.exclusive(fn));
  }

  /** Visits every bucket's committed entries, all from one consistent state (for snapshots). */
  dump(visit: (bucket: Bucket, key: Buffer, value: Buffer) => void): Promise<void> {
    return this.exclusive(async () => {
      for (const bucket of BUCKETS) await this.engine.scan(bucket, Buffer.alloc(0), undefined, (k, v) => visit(bucket, k, v));
    });
  }

  /**
   * Visits every bucket's committed entries from one consistent state, in slices of about sliceBytes,
   * awaiting each slice's handler before reading on (memory stays bounded whatever the store's size;
   * commits wait meanwhile).
   */
  dumpInSlices(onSlice: (bucket: Bucket, records: [Buffer, Buffer][]) => Promise<void>, sliceBytes = 1 << 20): Promise<void> {
    return timed(backendSnapshotSeconds, this.exclusive(async () => {
      for (const bucket of BUCKETS) {
        let start = Buffer.alloc(0);
        for (;;) {
          const records: [Buffer, Buffer][] = [];
          let bytes = 0;
          await this.engine.scan(bucket, start, undefined, (k, v) => {
            records.push([k, v]);
            bytes += k.length + v.length + 16;
            return bytes < sliceBytes;
          });
          if (!records.length) break;
          await onSlice(bucket, records);
          if (bytes < sliceBytes) break;
          // The next slice starts just after the last key.
          start = Buffer.concat([records[records.length - 1][0], Buffer.from([0])]);
        }
      }
    }));
  }

  /** The engine's size in bytes, as of a recent commit (cheap enough for every request's quota check). */
  sizeBytes(): number {
    if (this.cachedSize < 0) {
      this.cachedSize = this.engine.sizeBytes();
      this.sizeAt = Date.now();
    }
    return this.cachedSize;
  }

  sizeInUseBytes(): number {
    return this.engine.sizeInUseBytes();
  }

  async close(): Promise<void> {
    try {
      await this.commit();
    } finally {
      await this.engine.close();
    }
  }
}

const MISS = Symbol('miss');

/** One batch of writes: the ops in order, and the last value per key for reads. */
class Batch {
  readonly ops: WriteOp[] = [];
  private readonly latest = new Map<string, Map<string, Buffer | undefined>>();

  add(bucket: Bucket, key: Buffer, value: Buffer | undefined): void {
    this.ops.push({ bucket, key, value });
    let m = this.latest.get(bucket);
    if (!m) this.latest.set(bucket, (m = new Map()));
    m.set(key.toString('latin1'), value);
  }

  lookup(bucket: Bucket, key: string): Buffer | undefined | typeof MISS {
    const m = this.latest.get(bucket);
    if (!m || !m.has(key)) return MISS;
    return m.get(key);
  }
}
