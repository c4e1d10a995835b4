import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { BUCKETS, type Bucket, type Engine, type EngineOptions, type WriteOp } from './engine';

/** LMDB through lmdb-js: synchronous mmap reads, writes committed (and fsynced) on lmdb-js's write thread. */
export class LmdbEngine implements Engine {
  readonly kind = 'lmdb' as const;
  private root!: RootDatabase<Buffer, Buffer>;
  private readonly dbs = new Map<Bucket, Database<Buffer, Buffer>>();
  private readonly file: string;
  private readonly noSync: boolean;

  constructor(opts: EngineOptions) {
    mkdirSync(opts.dir, { recursive: true });
    this.file = join(opts.dir, 'plinth.mdb');
    this.noSync = opts.noSync ?? false;
    this.openEnv();
  }

  private openEnv(): void {
    this.root = open<Buffer, Buffer>({
      path: this.file,
      maxDbs: BUCKETS.length + 2,
      encoding: 'binary',
      keyEncoding: 'binary',
      cache: false,
      noSync: this.noSync,
      // Resolve write promises only once the commit is flushed: acknowledged means durable.
      overlappingSync: false,
    });
    for (const b of BUCKETS) {
      this.dbs.set(b, this.root.openDB<Buffer, Buffer>({ name: b, encoding: 'binary', keyEncoding: 'binary', cache: false }));
    }
  }

  get(bucket: Bucket, key: Buffer): Buffer | undefined {
    // getBinary copies out of the map, so the result stays valid after later transactions.
    return this.db(bucket).getBinary(key) ?? undefined;
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    ignoreLmdbCommitEchoes();
    if (ops.length === 0) return;
    try {
      await this.root.transaction(() => {
        for (const op of ops) {
          const db = this.db(op.bucket);
          if (op.value === undefined) db.removeSync(op.key);
          else db.putSync(op.key, op.value);
        }
      });
    } catch (err) {
      // lmdb rejects a failed commit with "Commit failed" and the cause in a promise (commitError):
      // take the cause (ENOSPC, EIO, MDB_MAP_FULL…) so callers can tell a full disk, and so that promise
      // never goes unhandled.
      const pending = (err as { commitError?: unknown }).commitError;
      if (pending instanceof Promise) {
        const cause = await pending.then(() => undefined, (e: unknown) => e);
        if (cause instanceof Error) throw cause;
      }
      throw err;
    }
  }

  async scan(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer, v: Buffer) => boolean | void): Promise<void> {
    const db = this.db(bucket);
    for (const { key, value } of db.getRange({ start, end })) {
      if (visit(key as Buffer, value as Buffer) === false) break;
    }
  }

  async scanKeys(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer) => boolean | void): Promise<void> {
    for (const key of this.db(bucket).getKeys({ start, end })) {
      if (visit(key as Buffer) === false) break;
    }
  }

  sizeBytes(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }

  sizeInUseBytes(): number {
    const s = this.root.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    // Pages of the named databases are accounted in their own stats; sum them all.
    let pages = 0;
    let pageSize = s.pageSize;
    for (const db of [this.root, ...this.dbs.values()]) {
      const st = db.getStats() as typeof s;
      pages += st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages;
      pageSize = st.pageSize;
    }
    return Math.min(pages * pageSize, this.sizeBytes());
  }

  /** A compacting copy of the environment replaces it: LMDB files never shrink in place. */
  async defragment(): Promise<void> {
    const tmp = `${this.file}.defrag`;
    rmSync(tmp, { force: true });
    await this.root.backup(tmp, true);
    await this.root.close();
    renameSync(tmp, this.file);
    this.openEnv();
  }

  async close(): Promise<void> {
    await this.root.close();
  }

  private db(bucket: Bucket): Database<Buffer, Buffer> {
    return this.dbs.get(bucket)!;
  }
}

let echoesIgnored = false;

/**
 * When a commit fails (a full disk), lmdb rejects the awaited transaction — write() sees that and the
 * backend keeps the batch and retries — but it also rejects every other write resolution queued in the
 * same commit with the same "Commit failed" error, promises nobody holds. Those echoes are dropped here;
 * any other unhandled rejection still ends the process as Node's default does.
 */
function ignoreLmdbCommitEchoes(): void {
  if (echoesIgnored) return;
  echoesIgnored = true;
  process.on('unhandledRejection', (reason) => {
    const pending = (reason as { commitError?: unknown } | undefined)?.commitError;
    if (reason instanceof Error && reason.message === 'Commit failed (see commitError for details)' && pending instanceof Promise) {
      pending.catch(() => {});
      return;
    }
    throw reason;
  });
}
