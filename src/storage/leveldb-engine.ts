import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { BUCKETS, type Bucket, type Engine, type EngineOptions, type WriteOp } from './engine';

/** Free space needed before reopening after a failed write (a new log file and a compaction's output). */
const RECOVER_FREE_BYTES = 8 * 1024 * 1024;

// One keyspace; each bucket is a one-byte prefix (cheaper than sublevels' string prefixes).
const PREFIX = new Map<Bucket, number>(BUCKETS.map((b, i) => [b, i + 1]));

function prefixed(bucket: Bucket, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(key.length + 1);
  out[0] = PREFIX.get(bucket)!;
  key.copy(out, 1);
  return out;
}

/** LevelDB through classic-level: sync point reads (getSync), batched writes with sync:true. */
export class LevelDbEngine implements Engine {
  readonly kind = 'leveldb' as const;
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly dir: string;
  private readonly sync: boolean;

  private constructor(dir: string, db: ClassicLevel<Buffer, Buffer>, sync: boolean) {
    this.dir = dir;
    this.db = db;
    this.sync = sync;
  }

  static async open(opts: EngineOptions): Promise<LevelDbEngine> {
    const dir = join(opts.dir, 'leveldb');
    mkdirSync(dir, { recursive: true });
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new LevelDbEngine(dir, db, !opts.noSync);
  }

  get(bucket: Bucket, key: Buffer): Buffer | undefined {
    return this.db.getSync(prefixed(bucket, key)) ?? undefined;
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return;
    const batch = this.db.batch();
    for (const op of ops) {
      const k = prefixed(op.bucket, op.key);
      if (op.value === undefined) batch.del(k);
      else batch.put(k, op.value);
    }
    await batch.write({ sync: this.sync });
  }

  async scan(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer, v: Buffer) => boolean | void): Promise<void> {
    const p = PREFIX.get(bucket)!;
    const lt = end === undefined ? Buffer.from([p + 1]) : prefixed(bucket, end);
    const it = this.db.iterator({ gte: prefixed(bucket, start), lt });
    try {
      for (;;) {
        const entries = await it.nextv(1000);
        if (entries.length === 0) return;
        for (const [k, v] of entries) {
          if (visit(k.subarray(1), v) === false) return;
        }
      }
    } finally {
      await it.close();
    }
  }

  async scanKeys(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer) => boolean | void): Promise<void> {
    const p = PREFIX.get(bucket)!;
    const lt = end === undefined ? Buffer.from([p + 1]) : prefixed(bucket, end);
    const it = this.db.keys({ gte: prefixed(bucket, start), lt });
    try {
      for (;;) {
        const keys = await it.nextv(1000);
        if (keys.length === 0) return;
        for (const k of keys) {
          if (visit(k.subarray(1)) === false) return;
        }
      }
    } finally {
      await it.close();
    }
  }

  sizeBytes(): number {
    let total = 0;
    for (const f of readdirSync(this.dir)) {
      try {
        total += statSync(join(this.dir, f)).size;
      } catch {
        // A compaction may remove a file between readdir and stat.
      }
    }
    return total;
  }

  sizeInUseBytes(): number {
    // LevelDB reclaims space itself by compaction; what is on disk is what is in use.
    return this.sizeBytes();
  }

  /**
   * LevelDB keeps a failed write's error and refuses every later write: reopen to clear it. Opening
   * writes new files, so wait until the disk has room; meanwhile the open database still serves reads.
   */
  async recover(): Promise<void> {
    const st = await statfs(this.dir);
    if (st.bavail * st.bsize < RECOVER_FREE_BYTES) {
      throw Object.assign(new Error(`ENOSPC: no space left on device (${this.dir}); LevelDB reopens once ${RECOVER_FREE_BYTES >> 20} MiB are free`), { code: 'ENOSPC' });
    }
    await this.db.close();
    await this.db.open();
  }

  async defragment(): Promise<void> {
    // A full compaction rewrites the tables without deleted entries.
    await this.db.compactRange(Buffer.from([0]), Buffer.from([0xff]));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
