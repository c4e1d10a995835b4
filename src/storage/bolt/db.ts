// The database file, after go.etcd.io/bbolt db.go. Node has no mmap in core, so the pages reachable from
// the committed meta are held in memory (a page cache filled by asynchronous reads at open, and by each
// commit's own pages once durable): reads never touch the disk or block the event loop, as a fully
// populated mmap (etcd maps its db with MAP_POPULATE). All writes and fsyncs are fs promises (libuv's
// thread pool). Pages never change in memory once written: a page id that is reused gets a new buffer,
// so views into an old page stay valid for a reader that holds them.
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { BoltError } from './bucket';
import { Freelist, type FreelistType } from './freelist';
import {
  BUCKET_LEAF_FLAG, DEFAULT_PAGE_SIZE, encodeMetaPage, FREELIST_PAGE, LEAF_PAGE, MAGIC, type Meta, NO_FREELIST, PageView,
  readMeta, readU64, validateMeta, VERSION, writePageHeader,
} from './page';
import { type DirtyPage, Tx } from './tx';

export interface BoltOptions {
  readOnly?: boolean;
  /** Skip fsync (etcd's --unsafe-no-fsync). */
  noSync?: boolean;
  /** Do not write the freelist; rebuild it at open by walking the tree (etcd 3.4 runs bbolt this way). */
  noFreelistSync?: boolean;
  freelistType?: FreelistType;
  /** For a new file; an existing file keeps its own. */
  pageSize?: number;
  /**
   * Fault injection for tests: called before each write of a commit; a number n makes only the first n
   * bytes of that write reach the file, then the write fails as if the machine stopped there.
   */
  faults?: (write: { kind: 'pages' | 'meta'; bytes: number }) => number | undefined;
}

export class SimulatedCrash extends Error {}

/** bbolt's DefaultAllocSize: how far the file grows past 16 MiB at a time. */
const ALLOC_SIZE = 16 * 1024 * 1024;
/**
 * Pages read per read() call at open (runs of adjacent pages are read together, and kept as views of
 * one buffer: at most this many pages' memory stays while any one of them is still in use).
 */
const READ_RUN_PAGES = 32;
const READ_CONCURRENCY = 8;
/** Buffers per writev call (IOV_MAX is 1024 on Linux). */
const WRITEV_MAX = 1024;

export class BoltDb {
  readonly path: string;
  pageSize = DEFAULT_PAGE_SIZE;
  readonly readOnly: boolean;
  noSync: boolean;
  readonly noFreelistSync: boolean;
  freelist: Freelist;
  private fh: FileHandle;
  private meta0: Meta | undefined;
  private meta1: Meta | undefined;
  /** The committed meta readers start from. */
  private current!: Meta;
  /**
   * Page id → bytes of the page and its overflow pages: a page written by a commit has its own buffer; a
   * page read at open is a place in its read buffer (a Buffer view per page costs more than the read).
   */
  private readonly cache = new Map<number, Buffer | LoadedPage>();
  /** Registered read transactions (they keep their pages from being reused). */
  private readonly txs = new Set<Tx>();
  private rwtx: Tx | undefined;
  private writeLock: Promise<void> = Promise.resolve();
  private fileSize = 0;
  private closed = false;
  private readonly faults: BoltOptions['faults'];
  /** Time spent releasing pending pages at the start of the last write transaction. */
  lastReleaseNs = 0;

  private constructor(path: string, fh: FileHandle, opts: BoltOptions) {
    this.path = path;
    this.fh = fh;
    this.readOnly = opts.readOnly ?? false;
    this.noSync = opts.noSync ?? false;
    this.noFreelistSync = opts.noFreelistSync ?? false;
    this.freelist = Freelist.create(opts.freelistType ?? 'array');
    this.freelist.onReleased = (ids) => this.evict(ids);
    this.faults = opts.faults;
    if (opts.pageSize) this.pageSize = opts.pageSize;
  }

  static async open(path: string, opts: BoltOptions = {}): Promise<BoltDb> {
    const fh = await openFile(path, opts.readOnly ? 'r' : (await exists(path)) ? 'r+' : 'w+');
    const db = new BoltDb(path, fh, opts);
    try {
      const st = await fh.stat();
      if (st.size === 0) {
        if (db.readOnly) throw new BoltError(`${path}: invalid database (empty file)`);
        await db.init();
      }
      await db.load();
      if (!db.readOnly && !db.noFreelistSync && db.current.freelist === NO_FREELIST) {
        // As bbolt: write the freelist once so tools that expect it can open the file.
        const tx = await db.beginWrite();
        await tx.commit();
      }
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    return db;
  }

  /** A new file: two metas, an empty freelist (page 2) and an empty root leaf (page 3). */
  private async init(): Promise<void> {
    const ps = this.pageSize;
    const buf = Buffer.alloc(ps * 4);
    for (let i = 0; i < 2; i++) {
      const meta: Meta = { magic: MAGIC, version: VERSION, pageSize: ps, flags: 0, root: 3, sequence: 0, freelist: 2, pgid: 4, txid: i, checksum: 0n };
      encodeMetaPage(meta, ps, i).copy(buf, i * ps);
    }
    writePageHeader(buf, 2 * ps, 2, FREELIST_PAGE, 0, 0);
    writePageHeader(buf, 3 * ps, 3, LEAF_PAGE, 0, 0);
    await this.fh.write(buf, 0, buf.length, 0);
    if (!this.noSync) await this.fh.datasync();
  }

  /** Reads the metas, then every page reachable from the chosen one, into memory. */
  private async load(): Promise<void> {
    const first = Buffer.alloc(0x1000);
    const { bytesRead } = await this.fh.read(first, 0, first.length, 0);
    if (bytesRead < first.length) throw new BoltError(`${this.path}: invalid database (file too small)`);
    if (validateMeta(first, 0) === undefined) this.pageSize = readMeta(first, 0).pageSize;
    const ps = this.pageSize;
    const metas = Buffer.alloc(ps * 2);
    const r = await this.fh.read(metas, 0, metas.length, 0);
    if (r.bytesRead < metas.length) throw new BoltError(`${this.path}: file size too small`);
    const err0 = validateMeta(metas, 0);
    const err1 = validateMeta(metas, ps);
    if (err0 && err1) throw new BoltError(`${this.path}: ${err0}`);
    this.meta0 = err0 ? undefined : readMeta(metas, 0);
    this.meta1 = err1 ? undefined : readMeta(metas, ps);
    this.current = this.meta();
    this.fileSize = (await this.fh.stat()).size;
    const reachable = await this.loadTree(this.current.root);
    if (this.current.freelist !== NO_FREELIST) {
      await this.readPages([this.current.freelist]);
      this.freelist.read(this.page(this.current.freelist));
    } else {
      // NoFreelistSync: every page under the high-water mark that the tree does not reach is free.
      const ids: number[] = [];
      for (let i = 2; i < this.current.pgid; i++) if (!reachable.has(i)) ids.push(i);
      this.freelist.readIds(ids);
    }
  }

  /**
   * Breadth-first read of a tree and its sub-buckets' trees (adjacent pages in one read). Returns every
   * page id the tree occupies, overflow pages included.
   */
  private async loadTree(root: number): Promise<Set<number>> {
    const reachable = new Set<number>();
    let level = [root];
    while (level.length) {
      await this.readPages(level);
      const next: number[] = [];
      for (const id of level) {
        const p = this.page(id);
        if (!p.isBranch() && !p.isLeaf()) throw new BoltError(`${this.path}: page ${id}: invalid type: ${p.typeName()}`);
        for (let i = 0; i <= p.overflow; i++) reachable.add(id + i);
        if (p.isBranch()) for (let i = 0; i < p.count; i++) next.push(p.branchPgid(i));
        else collectBucketRoots(p, next);
      }
      level = next;
    }
    return reachable;
  }

  /** Reads the given pages (and their overflow pages) into the cache. */
  private async readPages(ids: number[]): Promise<void> {
    const ps = this.pageSize;
    const sorted = [...new Set(ids)].filter((id) => !this.cache.has(id)).sort((a, b) => a - b);
    const runs: [number, number][] = [];
    for (const id of sorted) {
      if (id * ps >= this.fileSize) throw new BoltError(`${this.path}: page ${id} is past the end of the file (${this.fileSize} bytes)`);
      const last = runs[runs.length - 1];
      if (last && id === last[0] + last[1] && last[1] < READ_RUN_PAGES) last[1]++;
      else runs.push([id, 1]);
    }
    const overflowing: [number, number][] = [];
    await pool(runs, READ_CONCURRENCY, async ([start, n]) => {
      // Not zeroed: the read fills it (a short read is an error).
      const buf = Buffer.allocUnsafeSlow(n * ps);
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, start * ps);
      if (bytesRead < buf.length) throw new BoltError(`${this.path}: short read at page ${start}`);
      for (let i = 0; i < n; i++) {
        const off = i * ps;
        const overflow = buf.readUInt32LE(off + 12);
        // A view into the run's buffer: allocating and copying each page costs more than reading it.
        // The run's memory is freed once all its pages are replaced, so runs are kept short.
        if (overflow === 0) this.cache.set(start + i, { run: buf, off });
        else overflowing.push([start + i, overflow + 1]);
      }
    });
    await pool(overflowing, READ_CONCURRENCY, async ([id, n]) => {
      const buf = Buffer.alloc(n * ps);
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, id * ps);
      if (bytesRead < buf.length) throw new BoltError(`${this.path}: short read at page ${id} (${n} pages)`);
      this.cache.set(id, buf);
    });
  }

  /** The newer valid meta (bbolt's db.meta()). */
  meta(): Meta {
    const a = this.meta0;
    const b = this.meta1;
    if (a && b) return b.txid > a.txid ? b : a;
    if (a) return a;
    if (b) return b;
    throw new BoltError('invalid meta pages');
  }

  /** The committed page with this id. */
  page(id: number): PageView {
    const entry = this.cache.get(id);
    if (!entry) throw new BoltError(`${this.path}: page ${id} is not loaded (not reachable from the committed tree)`);
    return 'run' in entry ? new PageView(entry.run, entry.off) : new PageView(entry, 0);
  }

  viewOf(buf: Buffer): PageView {
    return new PageView(buf, 0);
  }

  /** A read transaction on the latest commit, not registered: for synchronous use only. */
  view(): Tx {
    this.assertOpen();
    return new Tx(this, false);
  }

  /** A registered read transaction: its pages stay intact until close(), across commits. */
  beginRead(): Tx {
    this.assertOpen();
    const tx = new Tx(this, false);
    this.txs.add(tx);
    return tx;
  }

  /** The write transaction, once the previous one is done (one writer at a time). */
  async beginWrite(): Promise<Tx> {
    this.assertOpen();
    if (this.readOnly) throw new BoltError('database is in read-only mode');
    const prev = this.writeLock;
    let release!: () => void;
    this.writeLock = new Promise<void>((r) => (release = r));
    await prev;
    this.releaseWriter = release;
    const tx = new Tx(this, true);
    this.rwtx = tx;
    const t0 = process.hrtime.bigint();
    this.freePages();
    this.lastReleaseNs = Number(process.hrtime.bigint() - t0);
    return tx;
  }

  private releaseWriter: (() => void) | undefined;

  /** Releases pending pages no open reader can see (bbolt's freePages). */
  private freePages(): void {
    const readers = [...this.txs].sort((a, b) => a.meta.txid - b.meta.txid);
    let minid = Number.MAX_SAFE_INTEGER;
    if (readers.length > 0) minid = readers[0].meta.txid;
    if (minid > 0) this.freelist.release(minid - 1);
    for (const t of readers) {
      this.freelist.releaseRange(minid, t.meta.txid - 1);
      minid = t.meta.txid + 1;
    }
    this.freelist.releaseRange(minid, Number.MAX_SAFE_INTEGER);
  }

  /** Pages that become free are no longer reachable by anyone: drop them from memory. */
  private evict(ids: readonly number[]): void {
    for (const id of ids) this.cache.delete(id);
  }

  /** A run of count pages for tx: from the freelist, else past the high-water mark. */
  allocate(tx: Tx, count: number): DirtyPage {
    let id = this.freelist.allocate(tx.meta.txid, count);
    if (id === 0) {
      id = tx.meta.pgid;
      tx.meta.pgid += count;
    }
    const buf = Buffer.alloc(count * this.pageSize);
    writePageHeader(buf, 0, id, 0, 0, count - 1);
    return { id, buf };
  }

  /** Grows the file ahead of the writes (bbolt's db.grow: to the mmap size, then 16 MiB at a time). */
  async grow(sz: number): Promise<void> {
    if (sz <= this.fileSize) return;
    const mapped = mmapSize(sz);
    const target = mapped < ALLOC_SIZE ? mapped : sz + ALLOC_SIZE;
    await this.fh.truncate(target);
    if (!this.noSync) await this.fh.sync();
    this.fileSize = target;
  }

  async writePages(pages: readonly DirtyPage[]): Promise<void> {
    const ps = this.pageSize;
    let i = 0;
    while (i < pages.length) {
      const bufs = [pages[i].buf];
      const start = pages[i].id;
      let next = start + pages[i].buf.length / ps;
      i++;
      while (i < pages.length && pages[i].id === next && bufs.length < WRITEV_MAX) {
        bufs.push(pages[i].buf);
        next += pages[i].buf.length / ps;
        i++;
      }
      let pos = start * ps;
      let rest = await this.injectFault('pages', bufs, pos);
      // writev may write less than asked: go on from where it stopped.
      while (rest.length) {
        const want = rest.reduce((n, b) => n + b.length, 0);
        const { bytesWritten } = await this.fh.writev(rest, pos);
        if (bytesWritten >= want) break;
        pos += bytesWritten;
        rest = skipBytes(rest, bytesWritten);
      }
    }
  }

  async writeMeta(meta: Meta): Promise<void> {
    const page = encodeMetaPage(meta, this.pageSize);
    const [buf] = await this.injectFault('meta', [page], (meta.txid % 2) * this.pageSize);
    await this.fh.write(buf, 0, buf.length, (meta.txid % 2) * this.pageSize);
  }

  /** With a fault hook that asks for it: writes a prefix of bufs at pos and throws SimulatedCrash. */
  private async injectFault(kind: 'pages' | 'meta', bufs: Buffer[], pos: number): Promise<Buffer[]> {
    if (!this.faults) return bufs;
    const bytes = bufs.reduce((n, b) => n + b.length, 0);
    const n = this.faults({ kind, bytes });
    if (n === undefined) return bufs;
    const prefix = Buffer.concat(bufs).subarray(0, Math.min(n, bytes));
    if (prefix.length) await this.fh.write(prefix, 0, prefix.length, pos);
    throw new SimulatedCrash(`simulated crash after ${prefix.length} of ${bytes} bytes of a ${kind} write`);
  }

  /** Closes the file without anything else (a test's stand-in for the process dying). */
  async abandon(): Promise<void> {
    this.closed = true;
    await this.fh.close().catch(() => {});
  }

  sync(): Promise<void> {
    return this.fh.datasync();
  }

  /** The commit is durable: readers see it from now on. */
  published(tx: Tx, dirty: readonly DirtyPage[]): void {
    for (const p of dirty) this.cache.set(p.id, p.buf);
    const meta = { ...tx.meta };
    if (meta.txid % 2 === 0) this.meta0 = meta;
    else this.meta1 = meta;
    this.current = meta;
  }

  /** A write transaction failed or was dropped: the freelist goes back to the committed state. */
  rolledBack(tx: Tx, physical = true): void {
    this.freelist.rollback(tx.meta.txid);
    if (!physical) return;
    if (this.current.freelist !== NO_FREELIST) {
      const fresh = Freelist.create(this.freelist.type);
      fresh.read(this.page(this.current.freelist));
      this.freelist.reload(fresh.getFreePageIds());
    } else {
      const reachable = new Set<number>();
      const walk = (id: number) => {
        const p = this.page(id);
        for (let i = 0; i <= p.overflow; i++) reachable.add(id + i);
        if (p.isBranch()) for (let i = 0; i < p.count; i++) walk(p.branchPgid(i));
        else {
          const roots: number[] = [];
          collectBucketRoots(p, roots);
          roots.forEach(walk);
        }
      };
      walk(this.current.root);
      const ids: number[] = [];
      for (let i = 2; i < this.current.pgid; i++) if (!reachable.has(i)) ids.push(i);
      this.freelist.reload(ids);
    }
    // Allocations of the failed transaction are free again (the reload put them back).
    for (const [id, t] of this.freelist.allocs) if (t === tx.meta.txid) this.freelist.allocs.delete(id);
  }

  txClosed(tx: Tx): void {
    if (tx.writable) {
      if (this.rwtx === tx) {
        this.rwtx = undefined;
        const r = this.releaseWriter;
        this.releaseWriter = undefined;
        r?.();
      }
    } else this.txs.delete(tx);
  }

  /** Bytes of the database: the high-water mark, as etcd's backend reports its size. */
  size(): number {
    return this.current.pgid * this.pageSize;
  }

  /** Pages on the freelist, free and pending. */
  freePageCount(): number {
    return this.freelist.count();
  }

  stats(): { freePages: number; pendingPages: number; cachedPages: number; txid: number; hwm: number; fileSize: number } {
    return {
      freePages: this.freelist.freeCount(),
      pendingPages: this.freelist.pendingCount(),
      cachedPages: this.cache.size,
      txid: this.current.txid,
      hwm: this.current.pgid,
      fileSize: this.fileSize,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeLock;
    // The page cache stays: a read transaction still open (a snapshot being sent) can finish.
    await this.fh.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new BoltError('database not open');
  }
}

/** A page read at open: where it is in its read buffer. */
interface LoadedPage {
  run: Buffer;
  off: number;
}

/** Sub-bucket roots named by a leaf page's bucket elements (inline buckets have none of their own pages). */
function collectBucketRoots(p: PageView, out: number[]): void {
  for (let i = 0; i < p.count; i++) {
    if ((p.leafFlags(i) & BUCKET_LEAF_FLAG) === 0) continue;
    const v = p.leafValue(i);
    const root = readU64(v, 0);
    if (root !== 0) out.push(root);
    else collectBucketRoots(new PageView(v, 16), out);
  }
}

/** bbolt's mmapSize: doubling from 32 KiB to 1 GiB, then 1 GiB steps. */
function mmapSize(size: number): number {
  for (let i = 15; i <= 30; i++) if (size <= 2 ** i) return 2 ** i;
  const step = 2 ** 30;
  return Math.ceil(size / step) * step;
}

function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (n >= b.length) n -= b.length;
    else {
      out.push(n > 0 ? b.subarray(n) : b);
      n = 0;
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    const fh = await openFile(path, 'r');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

