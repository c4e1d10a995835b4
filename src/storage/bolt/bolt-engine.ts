import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bucket as BucketName, Engine, EngineOptions, WriteOp } from '../engine';
import { ETCD_BUCKETS } from '../etcd-layout';
import type { Bucket } from './bucket';
import { BoltDb, type BoltOptions } from './db';
import type { Tx } from './tx';

/** etcd's defrag: keys per copy transaction, and the fill of the copied pages (sequential inserts). */
const DEFRAG_BATCH = 10_000;
const DEFRAG_FILL = 0.9;

/**
 * Plinth's paged engine: one bbolt-format file, `<dir>/db` — etcd's own `member/snap/db` — with etcd
 * 3.4's buckets and, as the layers above write them, etcd's records (etcd-layout.ts): the file is an
 * etcd backend.
 */
export class BoltEngine implements Engine {
  readonly kind = 'bolt' as const;
  private db: BoltDb;
  private readonly file: string;
  private readonly options: BoltOptions;
  /** Read view of the latest commit, and its buckets, rebuilt after each commit. */
  private view: Tx | undefined;
  private readonly viewBuckets = new Map<BucketName, Bucket | undefined>();

  private constructor(file: string, db: BoltDb, options: BoltOptions) {
    this.file = file;
    this.db = db;
    this.options = options;
  }

  static async open(opts: EngineOptions): Promise<BoltEngine> {
    await mkdir(opts.dir, { recursive: true });
    const file = join(opts.dir, 'db');
    const options: BoltOptions = {
      noSync: opts.noSync,
      freelistType: opts.bolt?.freelistType ?? 'array',
      noFreelistSync: !(opts.bolt?.freelistSync ?? false),
    };
    const db = await BoltDb.open(file, options);
    const engine = new BoltEngine(file, db, options);
    await engine.createBuckets();
    return engine;
  }

  /** etcd creates its buckets at start; so does the engine, so a fresh file has etcd's layout. */
  private async createBuckets(): Promise<void> {
    const view = this.db.view();
    if (ETCD_BUCKETS.every((b) => view.bucket(Buffer.from(b)))) return;
    const tx = await this.db.beginWrite();
    try {
      for (const b of ETCD_BUCKETS) tx.createBucketIfNotExists(Buffer.from(b));
    } catch (err) {
      tx.rollback();
      throw err;
    }
    await tx.commit();
    this.view = undefined;
  }

  /** The bolt database (tests, snapshots, the benchmark). */
  get database(): BoltDb {
    return this.db;
  }

  private bucket(name: BucketName): Bucket | undefined {
    if (!this.view) {
      this.view = this.db.view();
      this.viewBuckets.clear();
    }
    if (!this.viewBuckets.has(name)) this.viewBuckets.set(name, this.view.bucket(Buffer.from(name)));
    return this.viewBuckets.get(name);
  }

  get(bucket: BucketName, key: Buffer): Buffer | undefined {
    const b = this.bucket(bucket);
    if (!b) return undefined;
    const v = b.get(key);
    // A copy: the page's memory is the engine's.
    return v === undefined ? undefined : Buffer.from(v);
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return;
    const tx = await this.db.beginWrite();
    try {
      const buckets = new Map<BucketName, Bucket>();
      for (const op of ops) {
        let b = buckets.get(op.bucket);
        if (!b) buckets.set(op.bucket, (b = tx.createBucketIfNotExists(Buffer.from(op.bucket))));
        if (op.value === undefined) b.delete(op.key);
        // The ops are applied and spilled into pages in this same turn (commit() spills before it awaits):
        // the buffers cannot change meanwhile, so they are not copied.
        else b.put(op.key, op.value, true);
      }
    } catch (err) {
      tx.rollback();
      throw err;
    }
    try {
      await tx.commit();
    } finally {
      this.view = undefined;
    }
  }

  async scan(bucket: BucketName, start: Buffer, end: Buffer | undefined, visit: (k: Buffer, v: Buffer) => boolean | void): Promise<void> {
    const b = this.bucket(bucket);
    if (!b) return;
    const c = b.cursor();
    // The page memory is immutable (a reused page id gets a new buffer), so views are safe to hand out.
    for (let e = c.seek(start); e; e = c.next()) {
      if (end !== undefined && Buffer.compare(e.key, end) >= 0) return;
      if (e.value === undefined) continue;
      if (visit(e.key, e.value) === false) return;
    }
  }

  scanKeys(bucket: BucketName, start: Buffer, end: Buffer | undefined, visit: (k: Buffer) => boolean | void): Promise<void> {
    return this.scan(bucket, start, end, (k) => visit(k));
  }

  sizeBytes(): number {
    return this.db.size();
  }

  sizeInUseBytes(): number {
    return this.db.size() - this.db.freePageCount() * this.db.pageSize;
  }

  /** etcd's defrag: every bucket copied in key order into a new file, which replaces the old one. */
  async defragment(): Promise<void> {
    const tmp = `${this.file}.defrag`;
    await rm(tmp, { force: true });
    const out = await BoltDb.open(tmp, { ...this.options, noSync: true });
    try {
      const src = this.db.beginRead();
      try {
        let tx = await out.beginWrite();
        let n = 0;
        for (const e of iterate(src.root)) {
          if (e.value !== undefined) continue;
          const from = src.bucket(e.key)!;
          let to = tx.createBucketIfNotExists(e.key);
          to.fillPercent = DEFRAG_FILL;
          for (const kv of iterate(from)) {
            if (kv.value === undefined) continue; // Plinth keeps no nested buckets
            to.put(kv.key, kv.value);
            if (++n % DEFRAG_BATCH === 0) {
              await tx.commit();
              tx = await out.beginWrite();
              to = tx.createBucketIfNotExists(e.key);
              to.fillPercent = DEFRAG_FILL;
            }
          }
        }
        await tx.commit();
      } finally {
        src.close();
      }
      if (!this.options.noSync) await out.sync();
    } finally {
      await out.close();
    }
    await this.db.close();
    await rename(tmp, this.file);
    this.db = await BoltDb.open(this.file, this.options);
    this.view = undefined;
  }

  async close(): Promise<void> {
    this.view = undefined;
    await this.db.close();
  }
}

function* iterate(b: Bucket): Generator<{ key: Buffer; value: Buffer | undefined }> {
  const c = b.cursor();
  for (let e = c.first(); e; e = c.next()) yield e;
}

