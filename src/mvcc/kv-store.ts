import { Errors } from '../errors';
import { exponentialBuckets, registry } from '../metrics';
import type { Backend } from '../storage';
import { TreeIndex, type RevHit } from './key-index';
import { decodeKeyValue, encodeKeyValue, type KeyValue } from './key-value';
import { isTombstone, readRevision, REV_BYTES, revisionBytes, writeRevision } from './revision';

// The multi-version store: the key index in memory, every revision's KeyValue in the backend's key
// bucket, as etcd's mvcc store. Single-threaded: a write txn runs start to end without yielding.

const META_SCHEDULED_COMPACT = Buffer.from('scheduledCompactRev');
const META_FINISHED_COMPACT = Buffer.from('finishedCompactRev');

// etcd's compaction metrics (mvcc/metrics.go): names, types and buckets as etcd 3.4 has them.
const indexCompactionPauseMs = registry.histogram('etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds',
  'Bucketed histogram of index compaction pause duration.', exponentialBuckets(0.5, 2, 14));
const dbCompactionPauseMs = registry.histogram('etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds',
  'Bucketed histogram of db compaction pause duration.', exponentialBuckets(1, 2, 13));
const dbCompactionTotalMs = registry.histogram('etcd_debugging_mvcc_db_compaction_total_duration_milliseconds',
  'Bucketed histogram of db compaction total duration.', exponentialBuckets(100, 2, 14));
const dbCompactionKeys = registry.counter('etcd_debugging_mvcc_db_compaction_keys_total', 'Total number of db keys compacted.');

// etcd's operation counters (mvcc/metrics.go, metrics_txn.go): every Range, Put and DeleteRange call on a
// txn of the store counts, and a txn that made more than one of them counts as a txn. etcd 3.4 exports
// each twice, as etcd_mvcc_* and the deprecated etcd_debugging_mvcc_*; the second reads the first.
function twin(name: string, help: string): { v: number } {
  const c = registry.counter(`etcd_mvcc_${name}`, help);
  registry.counter(`etcd_debugging_mvcc_${name}`, help).collect = () => c.get();
  return c.series();
}
const rangeCount = twin('range_total', 'Total number of ranges seen by this member.');
const putCount = twin('put_total', 'Total number of puts seen by this member.');
const deleteCount = twin('delete_total', 'Total number of deletes seen by this member.');
const txnCount = twin('txn_total', 'Total number of txns seen by this member.');
const putSize = registry.gauge('etcd_debugging_mvcc_total_put_size_in_bytes', 'The total size of put kv pairs seen by this member.').series();

/** Counts one txn's calls as etcd's metricsTxnWrite.End does. */
export function countTxn(ranges: number, puts: number, deletes: number, putBytes: number): void {
  if (ranges + puts + deletes > 1) txnCount.v++;
  rangeCount.v += ranges;
  putCount.v += puts;
  deleteCount.v += deletes;
  putSize.v += putBytes;
}

/** A read txn of one Range call (etcd's readView.Range): counted without a txn object. */
export function countRange(): void {
  rangeCount.v++;
}

/** A duration as Go's time.Duration prints it (etcd's "took" fields), from milliseconds. */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1e-3) return `${Math.round(ms * 1e6)}ns`;
  if (ms < 1) return `${+(ms * 1e3).toFixed(3)}µs`;
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  return `${+(ms / 1000).toFixed(9)}s`;
}

/** Leases as mvcc needs them; the lease layer provides the real one. */
export interface LeaseBinding {
  exists(id: bigint): boolean;
  /** The lease the key is attached to, 0n if none (the lessor keeps this map, as etcd's). */
  leaseOf(key: Buffer): bigint;
  attach(id: bigint, key: Buffer): void;
  detach(id: bigint, key: Buffer): void;
}

export const NO_LEASES: LeaseBinding = { exists: () => false, leaseOf: () => 0n, attach: () => {}, detach: () => {} };

/** One change of a write txn, in order: a put, or a delete (kv holds just the key and mod revision). */
export interface Change {
  deleted: boolean;
  kv: KeyValue;
}

export interface CompactionOptions {
  /** Revisions deleted per backend commit (etcd's --experimental-compaction-batch-limit). */
  batchLimit: number;
  /** Pause between batches, so requests go on (etcd's --experimental-compaction-sleep-interval). */
  sleepMs: number;
  /**
   * Longest run of key-index compaction before it lets other work in (ms). The index is compacted a
   * slice of keys at a time; between slices the event loop serves requests.
   */
  indexStepMs: number;
}

export interface StoreOptions {
  compaction?: Partial<CompactionOptions>;
  leases?: LeaseBinding;
  /** Log lines ("finished scheduled compaction", ...): a message and etcd's fields. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /**
   * A compaction that a stop interrupted is resumed at open, as etcd does. With deferResume it waits
   * until resumeCompaction() is called (the server calls it once its backend hooks are in place).
   */
  deferResume?: boolean;
}

export interface RangeKeysOptions {
  limit: number;
  rev: number;
  countOnly: boolean;
}

export interface RangeKeysResult {
  kvs: KeyValue[];
  count: number;
  rev: number;
}

export class KVStore {
  /** The revision of the last write (1 in an empty store, as etcd). */
  currentRev = 1;
  /** Reads below this revision fail as compacted; -1 = never compacted. */
  compactMainRev = -1;
  index = new TreeIndex();
  readonly leases: LeaseBinding;
  private readonly compaction: CompactionOptions;
  private readonly scratchRev = Buffer.alloc(REV_BYTES);
  private readonly hit: RevHit = { modMain: 0, modSub: 0, createdMain: 0, version: 0 };
  /** Called after each write txn that changed something, with its changes (the watch feed). */
  private readonly listeners: ((changes: readonly Change[], rev: number) => void)[] = [];
  /** The compaction under way; compactions queue behind each other as in etcd's FIFO scheduler. */
  private compacting: Promise<void> = Promise.resolve();
  /** The compaction revision a finished compaction recorded (-1 = none): what etcd calls finished. */
  finishedCompactRev = -1;
  private readonly log: (msg: string, fields: Record<string, unknown>) => void;
  private stopping = false;
  /** Ends the sleep between compaction batches early (on close). */
  private wake: (() => void) | undefined;
  private releaseResume: (() => void) | undefined;

  private constructor(readonly backend: Backend, private readonly opts: StoreOptions) {
    this.leases = opts.leases ?? NO_LEASES;
    this.compaction = { batchLimit: 1000, sleepMs: 10, indexStepMs: 2, ...opts.compaction };
    this.log = opts.log ?? (() => {});
  }

  /** Opens the store on a backend, rebuilding the key index from the key bucket. */
  static async open(backend: Backend, opts: StoreOptions = {}): Promise<KVStore> {
    const s = new KVStore(backend, opts);
    await s.restore();
    return s;
  }

  onChanges(fn: (changes: readonly Change[], rev: number) => void): void {
    this.listeners.push(fn);
  }

  private async restore(): Promise<void> {
    const finished = this.backend.get('meta', META_FINISHED_COMPACT);
    const scheduled = this.backend.get('meta', META_SCHEDULED_COMPACT);
    if (finished) this.compactMainRev = this.finishedCompactRev = readRevision(finished).main;
    let maxMain = 0;
    await this.backend.scan('key', Buffer.alloc(0), undefined, (rk, v) => {
      const { main, sub } = readRevision(rk);
      const kv = decodeKeyValue(v);
      const key = kv.key.toString('latin1');
      if (main > maxMain) maxMain = main;
      // The lessor learns which keys each lease holds from the keys themselves, as etcd's restore.
      const held = this.leases.leaseOf(kv.key);
      if (isTombstone(rk)) {
        this.index.tombstone(key, main, sub);
        if (held !== 0n) this.leases.detach(held, kv.key);
      } else {
        this.index.restore(key, kv.createRevision, main, sub, kv.version);
        if (held !== 0n && held !== kv.lease) this.leases.detach(held, kv.key);
        if (kv.lease !== 0n) this.leases.attach(kv.lease, Buffer.from(kv.key));
      }
    });
    // A compaction may have removed every revision up to its own (a delete at the compacted revision).
    this.currentRev = Math.max(1, maxMain, this.compactMainRev);
    // A compaction that was scheduled but did not finish before a stop: reads below it fail from now
    // on, and it runs again in the background (etcd's "resume scheduled compaction").
    if (scheduled) {
      const rev = readRevision(scheduled).main;
      if (rev > this.compactMainRev) {
        this.compactMainRev = rev;
        this.currentRev = Math.max(this.currentRev, rev);
        const gate = this.opts.deferResume ? new Promise<void>((r) => (this.releaseResume = r)) : Promise.resolve();
        this.log('resume scheduled compaction', { 'scheduled-compact-revision': rev });
        this.enqueue(gate, rev);
      }
    }
  }

  /**
   * Rebuilds the store from the backend, which a raft snapshot has replaced: the key index, the
   * revisions, the compaction state. Compactions under way are stopped first (the caller waits for
   * compactionsDone). Watchers see the new revision through the caller (the hub catches them up).
   */
  async reload(): Promise<void> {
    // Stop the compaction under way at its next batch: it belongs to the state being replaced.
    this.stopping = true;
    this.wake?.();
    this.resumeCompaction();
    await this.compacting;
    this.stopping = false;
    this.index = new TreeIndex();
    this.currentRev = 1;
    this.compactMainRev = -1;
    this.finishedCompactRev = -1;
    await this.restore();
    this.resumeCompaction();
  }

  /** Starts the compaction that open() found unfinished (with deferResume). */
  resumeCompaction(): void {
    this.releaseResume?.();
    this.releaseResume = undefined;
  }

  /** Resolves once every compaction scheduled so far is done (or was stopped). */
  compactionsDone(): Promise<void> {
    return this.compacting;
  }

  /** Reads the keys of [key, end) as of opts.rev (0 = curRev). Throws etcd's compacted / future errors. */
  rangeKeys(key: Buffer, end: Buffer | undefined, curRev: number, opts: RangeKeysOptions): RangeKeysResult {
    const { revs, count } = this.collect(key, end, curRev, opts);
    const kvs: KeyValue[] = new Array(revs.length >> 1);
    for (let i = 0; i < revs.length; i += 2) kvs[i >> 1] = this.readRevision(revs[i], revs[i + 1]);
    return { kvs, count, rev: curRev };
  }

  /**
   * As rangeKeys, but the KeyValues as stored: their bytes are mvccpb.KeyValue's wire encoding, so an
   * answer that needs nothing else from them is written without decoding and re-encoding each one.
   */
  rangeStoredKeys(key: Buffer, end: Buffer | undefined, curRev: number, opts: RangeKeysOptions): { stored: Buffer[]; count: number; rev: number } {
    const { revs, count } = this.collect(key, end, curRev, opts);
    const stored: Buffer[] = new Array(revs.length >> 1);
    for (let i = 0; i < revs.length; i += 2) stored[i >> 1] = this.readStored(revs[i], revs[i + 1]);
    return { stored, count, rev: curRev };
  }

  /** The revisions (flat main, sub pairs) of the keys of [key, end) as of opts.rev, and how many keys. */
  private collect(key: Buffer, end: Buffer | undefined, curRev: number, opts: RangeKeysOptions): { revs: number[]; count: number } {
    let rev = opts.rev;
    if (rev > curRev) throw Errors.futureRev;
    if (rev <= 0) rev = curRev;
    if (rev < this.compactMainRev) throw Errors.compacted;

    const limit = opts.limit > 0 ? opts.limit : Infinity;
    const revs: number[] = [];
    let count = 0;
    const hit = this.hit;
    const collect = opts.countOnly ? 0 : limit;
    this.index.visit(key.toString('latin1'), end === undefined ? undefined : end.toString('latin1'), (_k, ki) => {
      if (count < collect) {
        if (!ki.get(rev, hit)) return;
        revs.push(hit.modMain, hit.modSub);
        count++;
      } else if (ki.existsAt(rev, hit)) {
        count++; // past the limit only the count is wanted
      }
    });
    return { revs, count };
  }

  private readStored(main: number, sub: number): Buffer {
    const raw = this.backend.get('key', writeRevision(this.scratchRev, main, sub));
    if (!raw) throw new Error(`mvcc: revision ${main}/${sub} is in the index but not in the backend`);
    return raw;
  }

  private readRevision(main: number, sub: number): KeyValue {
    return decodeKeyValue(this.readStored(main, sub));
  }

  /** The key's current KeyValue, if live. */
  currentValue(key: Buffer): KeyValue | undefined {
    const ki = this.index.lookup(key.toString('latin1'));
    if (!ki || !ki.live) return undefined;
    return this.readRevision(ki.modMain, ki.modSub);
  }

  write(): WriteTxn {
    return new WriteTxn(this);
  }

  /** Called by WriteTxn.end. */
  commitTxn(changes: Change[]): void {
    if (changes.length === 0) return;
    this.currentRev++;
    for (const fn of this.listeners) fn(changes, this.currentRev);
  }

  /**
   * Compacts history before rev. Reads below rev fail from now on; the key index is then compacted a
   * slice of keys at a time, and the old revisions deleted from the backend in batches, with requests
   * served in between. The returned promise resolves when the backend has dropped the old revisions.
   */
  compact(rev: number): Promise<void> {
    if (rev <= this.compactMainRev) throw Errors.compacted;
    if (rev > this.currentRev) throw Errors.futureRev;
    if (this.stopping) throw Errors.stopped;
    this.compactMainRev = rev;
    // Committed with the applied index that covers this request: a restart either replays the
    // request or finds it scheduled and resumes it.
    this.backend.put('meta', META_SCHEDULED_COMPACT, revisionBytes(rev, 0));
    return this.enqueue(this.compacting, rev);
  }

  /** Runs the compaction at rev after `after`; compactions run one at a time, in order. */
  private enqueue(after: Promise<void>, rev: number): Promise<void> {
    const run = Promise.all([after, this.compacting]).then(() => this.runCompaction(rev));
    // Waiters get the outcome; the queue goes on whatever it is.
    this.compacting = run.catch(() => {});
    return run;
  }

  private async runCompaction(rev: number): Promise<void> {
    if (this.stopping) throw Errors.stopped;
    const indexStart = performance.now();
    const keep = await this.compactIndex(rev);
    const indexTook = performance.now() - indexStart;
    if (!(await this.physicalCompact(rev, keep, indexTook))) throw Errors.stopped;
  }

  /**
   * etcd's treeIndex.Compact, in slices: each slice of keys is compacted synchronously, for at most
   * indexStepMs, then the event loop gets a turn. Returns the revisions <= rev that stay.
   */
  private async compactIndex(rev: number): Promise<Set<string>> {
    const keep = new Set<string>();
    const stepMs = this.compaction.indexStepMs;
    let after: string | null = null;
    for (;;) {
      const t0 = performance.now();
      do after = this.index.compactSome(rev, keep, after, 256);
      while (after !== null && performance.now() - t0 < stepMs);
      indexCompactionPauseMs.observe(Math.floor(performance.now() - t0));
      if (after === null) return keep;
      await new Promise<void>((r) => setImmediate(r));
      if (this.stopping) throw Errors.stopped;
    }
  }

  /**
   * etcd's scheduleCompaction: deletes the revisions <= rev that keep does not hold, at most
   * batchLimit per backend commit, sleeping sleepMs between batches. The last batch and the finished
   * compaction revision go in one commit. False if the store was closed first.
   */
  private async physicalCompact(rev: number, keep: Set<string>, indexTook: number): Promise<boolean> {
    const { batchLimit, sleepMs } = this.compaction;
    const totalStart = performance.now();
    let removed = 0;
    const end = Buffer.alloc(8);
    end.writeBigUInt64BE(BigInt(rev + 1));
    let from = Buffer.alloc(0);
    try {
      // Every revision at or below rev into the engine; from then on each batch reads the engine's
      // keys directly (new writes only add revisions above rev) and commits its own deletes.
      await this.backend.commit();
      for (;;) {
        const start = performance.now();
        const batch: Buffer[] = [];
        await this.backend.scanCommittedKeys('key', from, end, (k) => {
          batch.push(Buffer.from(k));
          return batch.length < batchLimit;
        });
        if (this.stopping) return false;
        for (const k of batch) {
          if (!keep.has(k.toString('latin1', 0, REV_BYTES))) {
            this.backend.delete('key', k);
            removed++;
          }
        }
        if (batch.length < batchLimit) {
          this.backend.put('meta', META_FINISHED_COMPACT, revisionBytes(rev, 0));
          await this.backend.commit();
          this.finishedCompactRev = Math.max(this.finishedCompactRev, rev);
          const took = performance.now() - totalStart;
          this.log('finished scheduled compaction', {
            'compact-revision': rev, took: goDuration(took), 'index-compaction-took': goDuration(indexTook), 'keys-removed': removed,
          });
          return true;
        }
        // The next batch starts just after the last key seen.
        from = Buffer.concat([batch[batch.length - 1], Buffer.from([0])]);
        await this.backend.commit();
        dbCompactionPauseMs.observe(Math.floor(performance.now() - start));
        if (this.stopping) return false;
        await this.sleep(sleepMs);
      }
    } finally {
      dbCompactionTotalMs.observe(Math.floor(performance.now() - totalStart));
      dbCompactionKeys.inc(undefined, removed);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return new Promise((r) => setImmediate(r));
    return new Promise<void>((r) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        r();
      }
      this.wake = done;
    }).finally(() => (this.wake = undefined));
  }

  /** Stops compaction at the next batch boundary (etcd's stopc); what is done stays done. */
  async close(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.resumeCompaction();
    await this.compacting;
  }

  // --- used by WriteTxn ---
  putRevision(main: number, sub: number, kv: KeyValue): void {
    this.backend.put('key', revisionBytes(main, sub), encodeKeyValue(kv));
  }

  tombstoneRevision(main: number, sub: number, key: Buffer): void {
    this.backend.put('key', revisionBytes(main, sub, true), encodeKeyValue({
      key, createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n,
    }));
  }
}

/**
 * A write transaction: every change gets main revision beginRev+1 and increasing sub revisions.
 * Reads inside it see its own changes, as etcd's storeTxnWrite.
 */
export class WriteTxn {
  readonly beginRev: number;
  readonly changes: Change[] = [];
  private readonly hit: RevHit = { modMain: 0, modSub: 0, createdMain: 0, version: 0 };
  // Calls made, for etcd's mvcc counters (counted at end()).
  private ranges = 0;
  private puts = 0;
  private deletes = 0;
  private putBytes = 0;

  constructor(private readonly s: KVStore) {
    this.beginRev = s.currentRev;
  }

  /** The revision reads in this txn see. */
  get readRev(): number {
    return this.changes.length > 0 ? this.beginRev + 1 : this.beginRev;
  }

  range(key: Buffer, end: Buffer | undefined, opts: RangeKeysOptions): RangeKeysResult {
    this.ranges++;
    return this.s.rangeKeys(key, end, this.readRev, opts);
  }

  put(key: Buffer, value: Buffer, lease: bigint): number {
    this.puts++;
    this.putBytes += key.length + value.length;
    const rev = this.beginRev + 1;
    const sub = this.changes.length;
    const skey = key.toString('latin1');
    const ki = this.s.index.lookup(skey);
    let created = rev;
    let version = 1;
    let oldLease = 0n;
    if (ki && ki.get(rev, this.hit)) {
      created = this.hit.createdMain;
      version = this.hit.version + 1;
      oldLease = this.s.leases.leaseOf(key);
    }
    const kv: KeyValue = { key, createRevision: created, modRevision: rev, version, value, lease };
    this.s.putRevision(rev, sub, kv);
    this.s.index.put(skey, rev, sub, ki);
    this.changes.push({ deleted: false, kv });
    if (oldLease !== 0n) this.s.leases.detach(oldLease, key);
    if (lease !== 0n) this.s.leases.attach(lease, key);
    return rev;
  }

  /** Deletes the live keys of [key, end); returns how many. */
  deleteRange(key: Buffer, end: Buffer | undefined): number {
    this.deletes++;
    const rrev = this.readRev;
    const keys: string[] = [];
    this.s.index.visit(key.toString('latin1'), end === undefined ? undefined : end.toString('latin1'), (k, ki) => {
      if (ki.get(rrev, this.hit)) keys.push(k);
    });
    for (const k of keys) this.deleteKey(k);
    return keys.length;
  }

  private deleteKey(skey: string): void {
    const rev = this.beginRev + 1;
    const sub = this.changes.length;
    const key = Buffer.from(skey, 'latin1');
    const lease = this.s.leases.leaseOf(key);
    this.s.tombstoneRevision(rev, sub, key);
    this.s.index.tombstone(skey, rev, sub);
    this.changes.push({
      deleted: true,
      kv: { key, createRevision: 0, modRevision: rev, version: 0, value: Buffer.alloc(0), lease: 0n },
    });
    if (lease !== 0n) this.s.leases.detach(lease, key);
  }

  /** Ends the txn: the store's revision moves on if anything changed. */
  end(): number {
    countTxn(this.ranges, this.puts, this.deletes, this.putBytes);
    this.ranges = this.puts = this.deletes = this.putBytes = 0;
    this.s.commitTxn(this.changes);
    return this.s.currentRev;
  }
}
