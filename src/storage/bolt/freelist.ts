// The freelist, ported from go.etcd.io/bbolt freelist.go (the array of sorted free page ids, bbolt's
// default) and freelist_hmap.go (etcd's --experimental-backend-bbolt-freelist-type=map: free spans keyed
// by size, with forward/backward maps from a span's first/last page so neighbours merge in O(1)).
// Pages freed by a transaction stay pending until no reader can still see them (release/releaseRange).
import { FREELIST_PAGE, PAGE_HEADER_SIZE, PageView, readU64, writePageHeader, writeU64 } from './page';

export type FreelistType = 'array' | 'map';

interface TxPending {
  ids: number[];
  /** The txid that allocated each id (0 when unknown). */
  alloctx: number[];
  /** Beginning txid of the last matching releaseRange. */
  lastReleaseBegin: number;
}

const numeric = (a: number, b: number) => a - b;

/** The sorted union of two sorted arrays (bbolt's mergepgids). */
export function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a.slice();
  const out = new Array<number>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i] <= b[j] ? a[i++] : b[j++];
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}

export abstract class Freelist {
  abstract readonly type: FreelistType;
  /** Page id → txid that allocated it (for rollback and releaseRange). */
  allocs = new Map<number, number>();
  pending = new Map<number, TxPending>();
  /** Every free and pending page id. */
  cache = new Set<number>();
  /** Told of the pages release/releaseRange made free: no reader can reach them any more. */
  onReleased: ((ids: readonly number[]) => void) | undefined;

  static create(type: FreelistType): Freelist {
    return type === 'map' ? new MapFreelist() : new ArrayFreelist();
  }

  /** The first page of n contiguous free pages, taken off the list; 0 when there is no such run. */
  abstract allocate(txid: number, n: number): number;
  abstract freeCount(): number;
  /** Makes ids (not sorted) available for allocation. */
  abstract mergeSpans(ids: number[]): void;
  /** All free (not pending) ids, sorted. */
  abstract getFreePageIds(): number[];
  /** Replaces the free ids with the given sorted ids. */
  abstract readIds(ids: number[]): void;

  pendingCount(): number {
    let n = 0;
    for (const p of this.pending.values()) n += p.ids.length;
    return n;
  }

  count(): number {
    return this.freeCount() + this.pendingCount();
  }

  /** Bytes of the freelist page once written (a count past 0xFFFF moves into the first element). */
  size(): number {
    let n = this.count();
    if (n >= 0xffff) n++;
    return PAGE_HEADER_SIZE + 8 * n;
  }

  /** Every free and pending id, sorted (what the freelist page holds). */
  copyAll(): number[] {
    const m: number[] = [];
    for (const p of this.pending.values()) for (const id of p.ids) m.push(id);
    m.sort(numeric);
    return mergeSorted(this.getFreePageIds(), m);
  }

  /** Frees a page and its overflow pages on behalf of txid: pending until released. */
  free(txid: number, id: number, overflow: number, isFreelistPage = false): void {
    if (id <= 1) throw new Error(`cannot free page 0 or 1: ${id}`);
    let txp = this.pending.get(txid);
    if (!txp) this.pending.set(txid, (txp = { ids: [], alloctx: [], lastReleaseBegin: 0 }));
    let allocTxid = this.allocs.get(id);
    if (allocTxid !== undefined) this.allocs.delete(id);
    else allocTxid = isFreelistPage ? txid - 1 : 0; // the freelist is always allocated by the prior tx
    for (let p = id; p <= id + overflow; p++) {
      if (this.cache.has(p)) throw new Error(`page ${p} already freed`);
      txp.ids.push(p);
      txp.alloctx.push(allocTxid);
      this.cache.add(p);
    }
  }

  /** Moves the pending pages of txid and older to the free list. */
  release(txid: number): void {
    const m: number[] = [];
    for (const [tid, txp] of this.pending) {
      if (tid <= txid) {
        for (const id of txp.ids) m.push(id);
        this.pending.delete(tid);
      }
    }
    this.onReleased?.(m);
    this.mergeSpans(m);
  }

  /** Moves pending pages allocated and freed within [begin, end] to the free list. */
  releaseRange(begin: number, end: number): void {
    if (begin > end) return;
    const m: number[] = [];
    for (const [tid, txp] of this.pending) {
      if (tid < begin || tid > end) continue;
      if (txp.lastReleaseBegin === begin) continue;
      for (let i = 0; i < txp.ids.length; i++) {
        const atx = txp.alloctx[i];
        if (atx < begin || atx > end) continue;
        m.push(txp.ids[i]);
        txp.ids[i] = txp.ids[txp.ids.length - 1];
        txp.ids.pop();
        txp.alloctx[i] = txp.alloctx[txp.alloctx.length - 1];
        txp.alloctx.pop();
        i--;
      }
      txp.lastReleaseBegin = begin;
      if (txp.ids.length === 0) this.pending.delete(tid);
    }
    this.onReleased?.(m);
    this.mergeSpans(m);
  }

  /** Undoes the frees of txid (a failed commit). */
  rollback(txid: number): void {
    const txp = this.pending.get(txid);
    if (!txp) return;
    const m: number[] = [];
    txp.ids.forEach((id, i) => {
      this.cache.delete(id);
      const tx = txp.alloctx[i];
      if (tx === 0) return;
      if (tx !== txid) this.allocs.set(id, tx); // a pending free aborted: back to the alloc list
      else m.push(id); // allocated and freed by this tx: free again
    });
    this.pending.delete(txid);
    this.mergeSpans(m);
  }

  freed(id: number): boolean {
    return this.cache.has(id);
  }

  /** Loads the free ids from a freelist page. */
  read(p: PageView): void {
    if ((p.flags & FREELIST_PAGE) === 0) throw new Error(`invalid freelist page: ${p.id}, page type is ${p.typeName()}`);
    let idx = 0;
    let count = p.count;
    if (count === 0xffff) {
      idx = 1;
      count = readU64(p.buf, p.off + PAGE_HEADER_SIZE);
    }
    const ids = new Array<number>(count);
    const base = p.off + PAGE_HEADER_SIZE + idx * 8;
    for (let i = 0; i < count; i++) ids[i] = readU64(p.buf, base + i * 8);
    ids.sort(numeric);
    this.readIds(ids);
  }

  /** Writes every free and pending id into a freelist page buffer (at least size() bytes). */
  write(buf: Buffer, id: number, overflow: number): void {
    const l = this.count();
    const ids = l === 0 ? [] : this.copyAll();
    let off = PAGE_HEADER_SIZE;
    if (l < 0xffff) writePageHeader(buf, 0, id, FREELIST_PAGE, l, overflow);
    else {
      writePageHeader(buf, 0, id, FREELIST_PAGE, 0xffff, overflow);
      writeU64(buf, off, l);
      off += 8;
    }
    for (const pid of ids) {
      writeU64(buf, off, pid);
      off += 8;
    }
  }

  /** After a failed commit: the free ids from the committed freelist, less the pending ones. */
  reload(ids: number[]): void {
    const pcache = new Set<number>();
    for (const txp of this.pending.values()) for (const id of txp.ids) pcache.add(id);
    this.readIds(ids.filter((id) => !pcache.has(id)));
  }

  /** Rebuilds the cache of free and pending ids. */
  reindex(): void {
    this.cache = new Set(this.getFreePageIds());
    for (const txp of this.pending.values()) for (const id of txp.ids) this.cache.add(id);
  }
}

/**
 * bbolt's array freelist: sorted ids; allocation scans for a contiguous run (O(free pages)). The ids live
 * in a Float64Array window (off, len), as Go's slice does, so taking ids off the front is O(1) as in
 * bbolt (`f.ids = f.ids[i+1:]`), removing from the middle is one memmove (`copy`), and a release merges
 * in one pass of block copies (mergepgids), so each costs what it costs bbolt.
 */
export class ArrayFreelist extends Freelist {
  readonly type = 'array' as const;
  private buf = new Float64Array(0);
  private off = 0;
  private len = 0;

  /** The free ids as a view (no copy). */
  get ids(): Float64Array {
    return this.buf.subarray(this.off, this.off + this.len);
  }

  allocate(txid: number, n: number): number {
    if (this.len === 0) return 0;
    const buf = this.buf;
    const end = this.off + this.len;
    let initial = 0;
    let previd = 0;
    for (let i = this.off; i < end; i++) {
      const id = buf[i];
      if (id <= 1) throw new Error(`invalid page allocation: ${id}`);
      if (previd === 0 || id - previd !== 1) initial = id;
      if (id - initial + 1 === n) {
        const rel = i - this.off;
        if (rel + 1 === n) this.off += n; // off the front: re-slice
        else buf.copyWithin(i - n + 1, i + 1, end); // from the middle: one memmove
        this.len -= n;
        for (let j = 0; j < n; j++) this.cache.delete(initial + j);
        this.allocs.set(initial, txid);
        return initial;
      }
      previd = id;
    }
    return 0;
  }

  freeCount(): number {
    return this.len;
  }

  mergeSpans(ids: number[]): void {
    if (ids.length === 0) return;
    ids.sort(numeric);
    const a = this.ids;
    const out = new Float64Array(a.length + ids.length);
    // bbolt's mergepgids: copy the run of the long list before each id in one block.
    let pos = 0;
    let from = 0;
    for (const id of ids) {
      let lo = from;
      let hi = a.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (a[mid] <= id) lo = mid + 1;
        else hi = mid;
      }
      out.set(a.subarray(from, lo), pos);
      pos += lo - from;
      from = lo;
      out[pos++] = id;
    }
    out.set(a.subarray(from), pos);
    this.buf = out;
    this.off = 0;
    this.len = out.length;
  }

  getFreePageIds(): number[] {
    return Array.from(this.ids);
  }

  readIds(ids: number[]): void {
    this.buf = Float64Array.from(ids);
    this.off = 0;
    this.len = ids.length;
    this.reindex();
  }
}

/** bbolt's hashmap freelist: spans by size; exact-size hits and merges are O(1). */
export class MapFreelist extends Freelist {
  readonly type = 'map' as const;
  /** span size → set of first page ids of spans of that size. */
  freemaps = new Map<number, Set<number>>();
  /** first page id → span size. */
  forwardMap = new Map<number, number>();
  /** last page id → span size. */
  backwardMap = new Map<number, number>();
  private freeTotal = 0;

  allocate(txid: number, n: number): number {
    if (n === 0) return 0;
    const exact = this.freemaps.get(n);
    if (exact) {
      for (const pid of exact) {
        this.delSpan(pid, n);
        this.allocs.set(pid, txid);
        for (let i = 0; i < n; i++) this.cache.delete(pid + i);
        return pid;
      }
    }
    // Go ranges over a map in random order; insertion order is as good a choice (any span that fits).
    for (const [size, bm] of this.freemaps) {
      if (size < n) continue;
      for (const pid of bm) {
        this.delSpan(pid, size);
        this.allocs.set(pid, txid);
        this.addSpan(pid + n, size - n);
        for (let i = 0; i < n; i++) this.cache.delete(pid + i);
        return pid;
      }
    }
    return 0;
  }

  freeCount(): number {
    return this.freeTotal;
  }

  mergeSpans(ids: number[]): void {
    for (const id of ids) this.mergeWithExistingSpan(id);
  }

  private mergeWithExistingSpan(pid: number): void {
    const prev = pid - 1;
    const next = pid + 1;
    const preSize = this.backwardMap.get(prev);
    const nextSize = this.forwardMap.get(next);
    let newStart = pid;
    let newSize = 1;
    if (preSize !== undefined) {
      const start = prev + 1 - preSize;
      this.delSpan(start, preSize);
      newStart -= preSize;
      newSize += preSize;
    }
    if (nextSize !== undefined) {
      this.delSpan(next, nextSize);
      newSize += nextSize;
    }
    this.addSpan(newStart, newSize);
  }

  private addSpan(start: number, size: number): void {
    if (size === 0) return; // bbolt adds a zero-size span when an allocation takes a span whole; it holds no page
    this.backwardMap.set(start - 1 + size, size);
    this.forwardMap.set(start, size);
    let set = this.freemaps.get(size);
    if (!set) this.freemaps.set(size, (set = new Set()));
    set.add(start);
    this.freeTotal += size;
  }

  private delSpan(start: number, size: number): void {
    this.forwardMap.delete(start);
    this.backwardMap.delete(start + size - 1);
    const set = this.freemaps.get(size);
    if (set) {
      set.delete(start);
      if (set.size === 0) this.freemaps.delete(size);
    }
    this.freeTotal -= size;
  }

  getFreePageIds(): number[] {
    if (this.freeTotal === 0) return [];
    const m = new Array<number>(this.freeTotal);
    let k = 0;
    for (const [start, size] of this.forwardMap) for (let i = 0; i < size; i++) m[k++] = start + i;
    return m.sort(numeric);
  }

  readIds(ids: number[]): void {
    this.init(ids);
    this.reindex();
  }

  /** Builds the spans from sorted ids. */
  private init(ids: number[]): void {
    this.freemaps = new Map();
    this.forwardMap = new Map();
    this.backwardMap = new Map();
    this.freeTotal = 0;
    if (ids.length === 0) return;
    let size = 1;
    let start = ids[0];
    for (let i = 1; i < ids.length; i++) {
      if (ids[i] < ids[i - 1]) throw new Error('pgids not sorted');
      if (ids[i] === ids[i - 1] + 1) size++;
      else {
        this.addSpan(start, size);
        size = 1;
        start = ids[i];
      }
    }
    if (size !== 0 && start !== 0) this.addSpan(start, size);
  }
}
