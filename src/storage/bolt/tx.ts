// Transactions, ported from go.etcd.io/bbolt tx.go. A read transaction is a copy of a committed meta:
// every page it reaches stays unchanged while it is registered (the freelist keeps those pages
// pending). A write transaction builds the new tree in memory, then commit() rebalances, spills to
// newly allocated pages, writes the freelist, writes and syncs the data pages, and only then writes
// and syncs the meta page (id txid % 2): a crash at any point leaves the previous meta and its tree.
import { Bucket } from './bucket';
import type { BoltDb } from './db';
import { NO_FREELIST, type Meta, type PageView } from './page';

export interface DirtyPage {
  id: number;
  /** (overflow + 1) pages of bytes; the header is written by whoever fills it. */
  buf: Buffer;
}

export class Tx {
  readonly meta: Meta;
  readonly root: Bucket;
  /** Pages written by this transaction, by id. */
  pages: Map<number, DirtyPage> | undefined;
  closed = false;
  /** What the last commit cost (for stats and the freelist benchmark). */
  stats = { allocNs: 0, releaseNs: 0, spillNs: 0, writeNs: 0, pagesWritten: 0 };

  constructor(readonly db: BoltDb, readonly writable: boolean) {
    this.meta = { ...db.meta() };
    this.root = new Bucket(this);
    this.root.root = this.meta.root;
    this.root.sequence = this.meta.sequence;
    if (writable) {
      this.pages = new Map();
      this.meta.txid += 1;
    }
  }

  get pageSize(): number {
    return this.db.pageSize;
  }

  get id(): number {
    return this.meta.txid;
  }

  /** Bytes of the database as this transaction sees it (the high-water mark). */
  size(): number {
    return this.meta.pgid * this.db.pageSize;
  }

  bucket(name: Buffer): Bucket | undefined {
    return this.root.bucket(name);
  }

  createBucketIfNotExists(name: Buffer): Bucket {
    return this.root.createBucketIfNotExists(name);
  }

  page(id: number): PageView {
    const dirty = this.pages?.get(id);
    if (dirty) return this.db.viewOf(dirty.buf);
    return this.db.page(id);
  }

  /** A fresh run of count pages, from the freelist or past the high-water mark. */
  allocate(count: number): DirtyPage {
    const t0 = process.hrtime.bigint();
    const p = this.db.allocate(this, count);
    this.stats.allocNs += Number(process.hrtime.bigint() - t0);
    this.pages!.set(p.id, p);
    return p;
  }

  /** Frees a page (and its overflow) as of this transaction. */
  freePage(id: number): void {
    const p = this.page(id);
    this.db.freelist.free(this.meta.txid, id, p.overflow);
  }

  /**
   * Writes the transaction durably. On failure the database is left at its previous commit and the
   * error is thrown; the transaction is closed either way.
   */
  async commit(): Promise<void> {
    if (this.closed) throw new Error('tx closed');
    if (!this.writable) throw new Error('tx not writable');
    const db = this.db;
    const opgid = this.meta.pgid;
    try {
      const t0 = process.hrtime.bigint();
      this.root.rebalance();
      this.root.spill();
      this.meta.root = this.root.root;
      this.meta.sequence = this.root.sequence;
      // The previous freelist page is free as of this transaction.
      if (this.meta.freelist !== NO_FREELIST) {
        const fp = this.page(this.meta.freelist);
        db.freelist.free(this.meta.txid, this.meta.freelist, fp.overflow, true);
      }
      if (!db.noFreelistSync) {
        const count = Math.floor(db.freelist.size() / db.pageSize) + 1;
        const p = this.allocate(count);
        db.freelist.write(p.buf, p.id, count - 1);
        this.meta.freelist = p.id;
      } else {
        this.meta.freelist = NO_FREELIST;
      }
      this.stats.spillNs = Number(process.hrtime.bigint() - t0) - this.stats.allocNs;
      const t1 = process.hrtime.bigint();
      if (this.meta.pgid > opgid) await db.grow((this.meta.pgid + 1) * db.pageSize);
      const dirty = [...this.pages!.values()].sort((a, b) => a.id - b.id);
      await db.writePages(dirty);
      if (!db.noSync) await db.sync();
      await db.writeMeta(this.meta);
      if (!db.noSync) await db.sync();
      this.stats.writeNs = Number(process.hrtime.bigint() - t1);
      this.stats.pagesWritten = dirty.reduce((n, p) => n + p.buf.length / db.pageSize, 0);
      db.published(this, dirty);
    } catch (err) {
      db.rolledBack(this);
      throw err;
    } finally {
      this.close();
    }
  }

  /** Drops a write transaction's changes (nothing was written). */
  rollback(): void {
    if (this.closed) return;
    if (this.writable) this.db.rolledBack(this, false);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.txClosed(this);
    this.pages = undefined;
  }
}
