// An in-memory, writable B+tree node: ported from go.etcd.io/bbolt node.go. A write transaction
// materialises the nodes on the paths it changes; at commit they are rebalanced (merged when under a
// quarter page), split to fit pages, and spilled (written to newly allocated pages, children first).
import type { Bucket } from './bucket';
import { BRANCH_ELEMENT_SIZE, BRANCH_PAGE, LEAF_ELEMENT_SIZE, LEAF_PAGE, MIN_KEYS_PER_PAGE, PAGE_HEADER_SIZE, type PageView, writePageHeader, writeU64 } from './page';

export interface Inode {
  flags: number;
  pgid: number;
  key: Buffer;
  value: Buffer | undefined;
}

const MIN_FILL = 0.1;
const MAX_FILL = 1.0;

/**
 * bytes.Compare. Keys are short (etcd's revision keys are 17 bytes): a loop in JS beats the call into
 * C++ that Buffer.compare makes; long keys go to Buffer.compare.
 */
export function compareBytes(a: Buffer, b: Buffer): number {
  const n = a.length < b.length ? a.length : b.length;
  if (n > 64) return Buffer.compare(a, b);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** First index whose key is >= key (sort.Search with bytes.Compare != -1). */
export function searchInodes(inodes: readonly Inode[], key: Buffer): number {
  let lo = 0;
  let hi = inodes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareBytes(inodes[mid].key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Node {
  isLeaf = false;
  unbalanced = false;
  spilled = false;
  key: Buffer | undefined;
  pgid = 0;
  parent: Node | undefined;
  children: Node[] = [];
  inodes: Inode[] = [];

  constructor(readonly bucket: Bucket, parent?: Node) {
    this.parent = parent;
  }

  root(): Node {
    return this.parent ? this.parent.root() : this;
  }

  minKeys(): number {
    return this.isLeaf ? 1 : 2;
  }

  elementSize(): number {
    return this.isLeaf ? LEAF_ELEMENT_SIZE : BRANCH_ELEMENT_SIZE;
  }

  size(): number {
    let sz = PAGE_HEADER_SIZE;
    const el = this.elementSize();
    for (const it of this.inodes) sz += el + it.key.length + (it.value ? it.value.length : 0);
    return sz;
  }

  sizeLessThan(v: number): boolean {
    let sz = PAGE_HEADER_SIZE;
    const el = this.elementSize();
    for (const it of this.inodes) {
      sz += el + it.key.length + (it.value ? it.value.length : 0);
      if (sz >= v) return false;
    }
    return true;
  }

  childAt(index: number): Node {
    if (this.isLeaf) throw new Error(`invalid childAt(${index}) on a leaf node`);
    return this.bucket.node(this.inodes[index].pgid, this);
  }

  childIndex(child: Node): number {
    return searchInodes(this.inodes, child.key!);
  }

  numChildren(): number {
    return this.inodes.length;
  }

  nextSibling(): Node | undefined {
    if (!this.parent) return undefined;
    const index = this.parent.childIndex(this);
    if (index >= this.parent.numChildren() - 1) return undefined;
    return this.parent.childAt(index + 1);
  }

  prevSibling(): Node | undefined {
    if (!this.parent) return undefined;
    const index = this.parent.childIndex(this);
    if (index === 0) return undefined;
    return this.parent.childAt(index - 1);
  }

  /** Inserts or replaces the inode at oldKey. */
  put(oldKey: Buffer, newKey: Buffer, value: Buffer | undefined, pgid: number, flags: number): void {
    if (pgid >= this.bucket.tx.meta.pgid) throw new Error(`pgid (${pgid}) above high water mark (${this.bucket.tx.meta.pgid})`);
    if (oldKey.length === 0) throw new Error('put: zero-length old key');
    if (newKey.length === 0) throw new Error('put: zero-length new key');
    const index = searchInodes(this.inodes, oldKey);
    const exact = index < this.inodes.length && this.inodes[index].key.equals(oldKey);
    if (!exact) this.inodes.splice(index, 0, { flags, pgid, key: newKey, value });
    else {
      const it = this.inodes[index];
      it.flags = flags;
      it.key = newKey;
      it.value = value;
      it.pgid = pgid;
    }
  }

  del(key: Buffer): void {
    const index = searchInodes(this.inodes, key);
    if (index >= this.inodes.length || !this.inodes[index].key.equals(key)) return;
    this.inodes.splice(index, 1);
    this.unbalanced = true;
  }

  /** Fills the node from a page (keys and values stay views of the page's immutable buffer). */
  read(p: PageView): void {
    this.pgid = p.id;
    this.isLeaf = p.isLeaf();
    const n = p.count;
    this.inodes = new Array(n);
    for (let i = 0; i < n; i++) {
      if (this.isLeaf) this.inodes[i] = { flags: p.leafFlags(i), pgid: 0, key: p.leafKey(i), value: p.leafValue(i) };
      else this.inodes[i] = { flags: 0, pgid: p.branchPgid(i), key: p.branchKey(i), value: undefined };
      if (this.inodes[i].key.length === 0) throw new Error('read: zero-length inode key');
    }
    this.key = n > 0 ? this.inodes[0].key : undefined;
  }

  /** Writes the node as a page into buf at off (the header's id and overflow are the caller's). */
  write(buf: Buffer, off: number, id: number, overflow: number): void {
    if (this.inodes.length >= 0xffff) throw new Error(`inode overflow: ${this.inodes.length} (pgid=${id})`);
    writePageHeader(buf, off, id, this.isLeaf ? LEAF_PAGE : BRANCH_PAGE, this.inodes.length, overflow);
    if (this.inodes.length === 0) return;
    let dataOff = off + PAGE_HEADER_SIZE + this.elementSize() * this.inodes.length;
    for (let i = 0; i < this.inodes.length; i++) {
      const it = this.inodes[i];
      if (it.key.length === 0) throw new Error('write: zero-length inode key');
      const e = off + PAGE_HEADER_SIZE + i * 16;
      const vlen = it.value ? it.value.length : 0;
      if (this.isLeaf) {
        buf.writeUInt32LE(it.flags, e);
        buf.writeUInt32LE(dataOff - e, e + 4);
        buf.writeUInt32LE(it.key.length, e + 8);
        buf.writeUInt32LE(vlen, e + 12);
      } else {
        if (it.pgid === id) throw new Error('write: circular dependency occurred');
        buf.writeUInt32LE(dataOff - e, e);
        buf.writeUInt32LE(it.key.length, e + 4);
        writeU64(buf, e + 8, it.pgid);
      }
      it.key.copy(buf, dataOff);
      dataOff += it.key.length;
      if (vlen) {
        it.value!.copy(buf, dataOff);
        dataOff += vlen;
      }
    }
  }

  /**
   * Breaks the node into nodes that each fit a page (bbolt's split/splitTwo). Go re-slices the rest at
   * each split for free; here the split points are found first and each part copied once, so a node
   * that gathered thousands of keys in one transaction splits in linear time.
   */
  split(pageSize: number): Node[] {
    const all = this.inodes;
    const fill = Math.min(MAX_FILL, Math.max(MIN_FILL, this.bucket.fillPercent));
    const threshold = Math.floor(pageSize * fill);
    const el = this.elementSize();
    const bounds: number[] = [];
    for (let start = 0; ; ) {
      // splitTwo: no split for a small or fitting rest.
      const n = all.length - start;
      if (n <= MIN_KEYS_PER_PAGE * 2) break;
      let sz = PAGE_HEADER_SIZE;
      let fits = true;
      for (let i = start; i < all.length; i++) {
        sz += el + all[i].key.length + (all[i].value ? all[i].value!.length : 0);
        if (sz >= pageSize) {
          fits = false;
          break;
        }
      }
      if (fits) break;
      // splitIndex over the rest.
      sz = PAGE_HEADER_SIZE;
      let index = 0;
      for (let i = 0; i < n - MIN_KEYS_PER_PAGE; i++) {
        index = i;
        const it = all[start + i];
        const elsize = el + it.key.length + (it.value ? it.value.length : 0);
        if (index >= MIN_KEYS_PER_PAGE && sz + elsize > threshold) break;
        sz += elsize;
      }
      start += index;
      bounds.push(start);
    }
    if (bounds.length === 0) return [this];
    if (!this.parent) {
      this.parent = new Node(this.bucket);
      this.parent.children = [this];
    }
    const nodes: Node[] = [this];
    this.inodes = all.slice(0, bounds[0]);
    for (let b = 0; b < bounds.length; b++) {
      const next = new Node(this.bucket, this.parent);
      next.isLeaf = this.isLeaf;
      next.inodes = all.slice(bounds[b], b + 1 < bounds.length ? bounds[b + 1] : all.length);
      this.parent.children.push(next);
      nodes.push(next);
    }
    return nodes;
  }

  /** Writes the node (and its children first) to newly allocated pages. */
  spill(): void {
    const tx = this.bucket.tx;
    if (this.spilled) return;
    this.children.sort((a, b) => compareBytes(a.inodes[0].key, b.inodes[0].key));
    // Spilling a child may split it and append to this.children: index, not iterator.
    for (let i = 0; i < this.children.length; i++) this.children[i].spill();
    this.children = [];
    const nodes = this.split(tx.pageSize);
    for (const node of nodes) {
      if (node.pgid > 0) {
        tx.freePage(node.pgid);
        node.pgid = 0;
      }
      const count = Math.ceil(node.size() / tx.pageSize);
      const p = tx.allocate(count);
      if (p.id >= tx.meta.pgid) throw new Error(`pgid (${p.id}) above high water mark (${tx.meta.pgid})`);
      node.pgid = p.id;
      node.write(p.buf, 0, p.id, count - 1);
      node.spilled = true;
      if (node.parent) {
        const key = node.key ?? node.inodes[0].key;
        node.parent.put(key, node.inodes[0].key, undefined, node.pgid, 0);
        node.key = node.inodes[0].key;
      }
    }
    // A split root made a new parent: spill it too.
    if (this.parent && this.parent.pgid === 0) {
      this.children = [];
      this.parent.spill();
    }
  }

  /** Merges the node with a sibling when it is under a quarter page or too few keys. */
  rebalance(): void {
    if (!this.unbalanced) return;
    this.unbalanced = false;
    const threshold = this.bucket.tx.pageSize / 4;
    if (this.size() > threshold && this.inodes.length > this.minKeys()) return;

    if (!this.parent) {
      // A root branch with one child: collapse it.
      if (!this.isLeaf && this.inodes.length === 1) {
        const child = this.bucket.node(this.inodes[0].pgid, this);
        this.isLeaf = child.isLeaf;
        this.inodes = child.inodes.slice();
        this.children = child.children;
        for (const it of this.inodes) {
          const c = this.bucket.nodes!.get(it.pgid);
          if (c) c.parent = this;
        }
        child.parent = undefined;
        this.bucket.nodes!.delete(child.pgid);
        child.free();
      }
      return;
    }

    if (this.numChildren() === 0) {
      this.parent.del(this.key!);
      this.parent.removeChild(this);
      this.bucket.nodes!.delete(this.pgid);
      this.free();
      this.parent.rebalance();
      return;
    }

    if (this.parent.numChildren() <= 1) throw new Error('parent must have at least 2 children');
    const useNextSibling = this.parent.childIndex(this) === 0;
    const target = useNextSibling ? this.nextSibling()! : this.prevSibling()!;
    if (useNextSibling) {
      for (const it of target.inodes) {
        const child = this.bucket.nodes!.get(it.pgid);
        if (child) {
          child.parent!.removeChild(child);
          child.parent = this;
          this.children.push(child);
        }
      }
      this.inodes = this.inodes.concat(target.inodes);
      this.parent.del(target.key!);
      this.parent.removeChild(target);
      this.bucket.nodes!.delete(target.pgid);
      target.free();
    } else {
      for (const it of this.inodes) {
        const child = this.bucket.nodes!.get(it.pgid);
        if (child) {
          child.parent!.removeChild(child);
          child.parent = target;
          target.children.push(child);
        }
      }
      target.inodes = target.inodes.concat(this.inodes);
      this.parent.del(this.key!);
      this.parent.removeChild(this);
      this.bucket.nodes!.delete(this.pgid);
      this.free();
    }
    this.parent.rebalance();
  }

  removeChild(target: Node): void {
    const i = this.children.indexOf(target);
    if (i >= 0) this.children.splice(i, 1);
  }

  /** Returns the node's page to the freelist (pending). */
  free(): void {
    if (this.pgid !== 0) {
      this.bucket.tx.freePage(this.pgid);
      this.pgid = 0;
    }
  }
}
