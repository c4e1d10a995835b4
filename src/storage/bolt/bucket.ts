// Buckets and cursors, ported from go.etcd.io/bbolt bucket.go and cursor.go. A bucket is a B+tree whose
// header (root pgid, sequence) sits in its parent's leaf under the BUCKET_LEAF_FLAG; a small bucket with
// no sub-buckets is stored inline: its one leaf page follows the header in the parent's value.
import { Node, searchInodes } from './node';
import { BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, LEAF_ELEMENT_SIZE, MAX_KEY_SIZE, MAX_VALUE_SIZE, PAGE_HEADER_SIZE, PageView, readU64, writeU64 } from './page';
import type { Tx } from './tx';

export const DEFAULT_FILL_PERCENT = 0.5;

export class BoltError extends Error {}

export class Bucket {
  root = 0;
  sequence = 0;
  /** Sub-bucket cache (writable transactions). */
  buckets: Map<string, Bucket> | undefined;
  /** The inline page, for an inline bucket. */
  page: PageView | undefined;
  rootNode: Node | undefined;
  /** Materialised nodes by page id (writable transactions). */
  nodes: Map<number, Node> | undefined;
  fillPercent = DEFAULT_FILL_PERCENT;

  constructor(readonly tx: Tx) {
    if (tx.writable) {
      this.buckets = new Map();
      this.nodes = new Map();
    }
  }

  cursor(): Cursor {
    return new Cursor(this);
  }

  /** The sub-bucket called name, or undefined. */
  bucket(name: Buffer): Bucket | undefined {
    const cached = this.buckets?.get(name.toString('latin1'));
    if (cached) return cached;
    const c = this.cursor();
    const { key, value, flags } = c.seekRaw(name);
    if (!key || !name.equals(key) || (flags & BUCKET_LEAF_FLAG) === 0) return undefined;
    const child = this.openBucket(value!);
    this.buckets?.set(name.toString('latin1'), child);
    return child;
  }

  openBucket(value: Buffer): Bucket {
    const child = new Bucket(this.tx);
    child.root = readU64(value, 0);
    child.sequence = readU64(value, 8);
    if (child.root === 0) child.page = new PageView(value, BUCKET_HEADER_SIZE);
    return child;
  }

  createBucket(key: Buffer): Bucket {
    this.assertWritable();
    if (key.length === 0) throw new BoltError('bucket name required');
    const c = this.cursor();
    const { key: k, flags } = c.seekRaw(key);
    if (k && key.equals(k)) throw new BoltError((flags & BUCKET_LEAF_FLAG) !== 0 ? 'bucket already exists' : 'incompatible value');
    const bucket = new Bucket(this.tx);
    bucket.rootNode = new Node(bucket);
    bucket.rootNode.isLeaf = true;
    const value = bucket.write();
    const name = Buffer.from(key);
    c.node().put(name, name, value, 0, BUCKET_LEAF_FLAG);
    // The parent is no longer inline once it holds a sub-bucket.
    this.page = undefined;
    return this.bucket(name)!;
  }

  createBucketIfNotExists(key: Buffer): Bucket {
    return this.bucket(key) ?? this.createBucket(key);
  }

  deleteBucket(key: Buffer): void {
    this.assertWritable();
    const c = this.cursor();
    const { key: k, flags } = c.seekRaw(key);
    if (!k || !key.equals(k)) throw new BoltError('bucket not found');
    if ((flags & BUCKET_LEAF_FLAG) === 0) throw new BoltError('incompatible value');
    const child = this.bucket(key)!;
    const subs: Buffer[] = [];
    child.forEach((ck, v) => {
      if (v === undefined) subs.push(Buffer.from(ck));
    });
    for (const s of subs) child.deleteBucket(s);
    this.buckets?.delete(key.toString('latin1'));
    child.nodes = undefined;
    child.rootNode = undefined;
    child.free();
    c.node().del(key);
  }

  get(key: Buffer): Buffer | undefined {
    const { key: k, value, flags } = this.cursor().seekRaw(key);
    if ((flags & BUCKET_LEAF_FLAG) !== 0) return undefined;
    if (!k || !key.equals(k)) return undefined;
    return value;
  }

  /** owned: the caller hands the buffers over (they are not changed until the commit), so no copies. */
  put(key: Buffer, value: Buffer, owned = false): void {
    this.assertWritable();
    if (key.length === 0) throw new BoltError('key required');
    if (key.length > MAX_KEY_SIZE) throw new BoltError('key too large');
    if (value.length > MAX_VALUE_SIZE) throw new BoltError('value too large');
    const c = this.cursor();
    const { key: k, flags } = c.seekRaw(key);
    if (k && key.equals(k) && (flags & BUCKET_LEAF_FLAG) !== 0) throw new BoltError('incompatible value');
    // Copies unless owned: the caller may reuse its buffers before the commit.
    const kc = owned ? key : Buffer.from(key);
    c.node().put(kc, kc, owned ? value : Buffer.from(value), 0, 0);
  }

  delete(key: Buffer): void {
    this.assertWritable();
    const c = this.cursor();
    const { key: k, flags } = c.seekRaw(key);
    if (!k || !key.equals(k)) return;
    if ((flags & BUCKET_LEAF_FLAG) !== 0) throw new BoltError('incompatible value');
    c.node().del(key);
  }

  setSequence(v: number): void {
    this.assertWritable();
    if (!this.rootNode) this.node(this.root, undefined);
    this.sequence = v;
  }

  /** Visits every key; value is undefined for a sub-bucket. Stop by returning false. */
  forEach(fn: (k: Buffer, v: Buffer | undefined) => boolean | void): void {
    const c = this.cursor();
    for (let e = c.first(); e; e = c.next()) if (fn(e.key, e.value) === false) return;
  }

  private assertWritable(): void {
    if (this.tx.closed) throw new BoltError('tx closed');
    if (!this.tx.writable) throw new BoltError('tx not writable');
  }

  /** Writes the dirty sub-buckets and this bucket's nodes; updates their headers in this bucket. */
  spill(): void {
    for (const [name, child] of this.buckets!) {
      let value: Buffer;
      if (child.inlineable()) {
        child.free();
        value = child.write();
      } else {
        child.spill();
        value = Buffer.alloc(BUCKET_HEADER_SIZE);
        writeU64(value, 0, child.root);
        writeU64(value, 8, child.sequence);
      }
      // An unmaterialised bucket has not changed.
      if (!child.rootNode) continue;
      const nameBuf = Buffer.from(name, 'latin1');
      const c = this.cursor();
      const { key, flags } = c.seekRaw(nameBuf);
      if (!key || !nameBuf.equals(key)) throw new Error(`misplaced bucket header: ${nameBuf.toString('hex')} -> ${key?.toString('hex')}`);
      if ((flags & BUCKET_LEAF_FLAG) === 0) throw new Error(`unexpected bucket header flag: ${flags}`);
      c.node().put(nameBuf, nameBuf, value, 0, BUCKET_LEAF_FLAG);
    }
    if (!this.rootNode) return;
    this.rootNode.spill();
    this.rootNode = this.rootNode.root();
    if (this.rootNode.pgid >= this.tx.meta.pgid) throw new Error(`pgid (${this.rootNode.pgid}) above high water mark (${this.tx.meta.pgid})`);
    this.root = this.rootNode.pgid;
  }

  /** Small enough (a quarter page), a single leaf and no sub-buckets: stored in the parent. */
  inlineable(): boolean {
    const n = this.rootNode;
    if (!n || !n.isLeaf) return false;
    let size = PAGE_HEADER_SIZE;
    const max = this.tx.pageSize / 4;
    for (const it of n.inodes) {
      size += LEAF_ELEMENT_SIZE + it.key.length + (it.value ? it.value.length : 0);
      if ((it.flags & BUCKET_LEAF_FLAG) !== 0) return false;
      if (size > max) return false;
    }
    return true;
  }

  /** The bucket as an inline value: header then its root leaf as a page. */
  write(): Buffer {
    const n = this.rootNode!;
    const value = Buffer.alloc(BUCKET_HEADER_SIZE + n.size());
    writeU64(value, 0, this.root);
    writeU64(value, 8, this.sequence);
    n.write(value, BUCKET_HEADER_SIZE, 0, 0);
    return value;
  }

  rebalance(): void {
    // Live iteration, as Go's range over a map: a node merged away (deleted) meanwhile is not visited.
    for (const n of this.nodes!.values()) n.rebalance();
    for (const child of this.buckets!.values()) child.rebalance();
  }

  /** The node for a page, materialised once per transaction. */
  node(pgid: number, parent: Node | undefined): Node {
    const nodes = this.nodes;
    if (!nodes) throw new Error('nodes map expected');
    const cached = nodes.get(pgid);
    if (cached) return cached;
    const n = new Node(this, parent);
    if (!parent) this.rootNode = n;
    else parent.children.push(n);
    n.read(this.page ?? this.tx.page(pgid));
    nodes.set(pgid, n);
    return n;
  }

  /** Frees every page of the bucket. */
  free(): void {
    if (this.root === 0) return;
    this.forEachPageNode((p, n) => {
      if (p) this.tx.freePage(p.id);
      else n!.free();
    });
    this.root = 0;
  }

  forEachPageNode(fn: (p: PageView | undefined, n: Node | undefined, depth: number) => void): void {
    if (this.page) {
      fn(this.page, undefined, 0);
      return;
    }
    this.forEachPageNodeAt(this.root, 0, fn);
  }

  private forEachPageNodeAt(pgid: number, depth: number, fn: (p: PageView | undefined, n: Node | undefined, depth: number) => void): void {
    const { page, node } = this.pageNode(pgid);
    fn(page, node, depth);
    if (page) {
      if (page.isBranch()) for (let i = 0; i < page.count; i++) this.forEachPageNodeAt(page.branchPgid(i), depth + 1, fn);
    } else if (!node!.isLeaf) {
      for (const it of node!.inodes) this.forEachPageNodeAt(it.pgid, depth + 1, fn);
    }
  }

  /** The materialised node for a page id if there is one, else the page. */
  pageNode(id: number): { page?: PageView; node?: Node } {
    if (this.root === 0) {
      if (id !== 0) throw new Error(`inline bucket non-zero page access(2): ${id} != 0`);
      if (this.rootNode) return { node: this.rootNode };
      return { page: this.page };
    }
    const n = this.nodes?.get(id);
    if (n) return { node: n };
    return { page: this.tx.page(id) };
  }
}

interface ElemRef {
  page: PageView | undefined;
  node: Node | undefined;
  index: number;
}

const refIsLeaf = (r: ElemRef) => (r.node ? r.node.isLeaf : r.page!.isLeaf());
const refCount = (r: ElemRef) => (r.node ? r.node.inodes.length : r.page!.count);

export interface Entry {
  key: Buffer;
  /** undefined for a sub-bucket. */
  value: Buffer | undefined;
}

interface RawEntry {
  key: Buffer | undefined;
  value: Buffer | undefined;
  flags: number;
}

const NONE: RawEntry = { key: undefined, value: undefined, flags: 0 };

/** A position in a bucket, over pages and (in a write transaction) materialised nodes. */
export class Cursor {
  private stack: ElemRef[] = [];

  constructor(readonly bucket: Bucket) {}

  first(): Entry | undefined {
    this.stack = [];
    const { page, node } = this.bucket.pageNode(this.bucket.root);
    this.stack.push({ page, node, index: 0 });
    this.goFirst();
    if (refCount(this.stack[this.stack.length - 1]) === 0) this.nextRaw();
    return this.entry(this.keyValue());
  }

  next(): Entry | undefined {
    return this.entry(this.nextRaw());
  }

  /** The first entry at or after key. */
  seek(key: Buffer): Entry | undefined {
    let kv = this.seekRaw(key);
    const ref = this.stack[this.stack.length - 1];
    if (ref.index >= refCount(ref)) kv = this.nextRaw();
    return this.entry(kv);
  }

  private entry(kv: RawEntry): Entry | undefined {
    if (!kv.key) return undefined;
    return { key: kv.key, value: (kv.flags & BUCKET_LEAF_FLAG) !== 0 ? undefined : kv.value };
  }

  seekRaw(key: Buffer): RawEntry {
    this.stack = [];
    this.search(key, this.bucket.root);
    return this.keyValue();
  }

  private goFirst(): void {
    for (;;) {
      const ref = this.stack[this.stack.length - 1];
      if (refIsLeaf(ref)) break;
      const pgid = ref.node ? ref.node.inodes[ref.index].pgid : ref.page!.branchPgid(ref.index);
      const { page, node } = this.bucket.pageNode(pgid);
      this.stack.push({ page, node, index: 0 });
    }
  }

  private nextRaw(): RawEntry {
    for (;;) {
      let i: number;
      for (i = this.stack.length - 1; i >= 0; i--) {
        const e = this.stack[i];
        if (e.index < refCount(e) - 1) {
          e.index++;
          break;
        }
      }
      if (i === -1) return NONE;
      this.stack.length = i + 1;
      this.goFirst();
      if (refCount(this.stack[this.stack.length - 1]) === 0) continue;
      return this.keyValue();
    }
  }

  private search(key: Buffer, pgid: number): void {
    const { page, node } = this.bucket.pageNode(pgid);
    if (page && !page.isLeaf() && !page.isBranch()) throw new Error(`invalid page type: ${page.id}: ${page.flags.toString(16)}`);
    const e: ElemRef = { page, node, index: 0 };
    this.stack.push(e);
    if (refIsLeaf(e)) {
      this.nsearch(key);
      return;
    }
    let index: number;
    if (node) {
      index = searchInodes(node.inodes, key);
      const exact = index < node.inodes.length && node.inodes[index].key.equals(key);
      if (!exact && index > 0) index--;
      e.index = index;
      this.search(key, node.inodes[index].pgid);
    } else {
      const p = page!;
      let lo = 0;
      let hi = p.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (p.compareKey(mid, key, false) < 0) lo = mid + 1;
        else hi = mid;
      }
      index = lo;
      const exact = index < p.count && p.compareKey(index, key, false) === 0;
      if (!exact && index > 0) index--;
      e.index = index;
      this.search(key, p.branchPgid(index));
    }
  }

  private nsearch(key: Buffer): void {
    const e = this.stack[this.stack.length - 1];
    if (e.node) {
      e.index = searchInodes(e.node.inodes, key);
      return;
    }
    const p = e.page!;
    let lo = 0;
    let hi = p.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (p.compareKey(mid, key, true) < 0) lo = mid + 1;
      else hi = mid;
    }
    e.index = lo;
  }

  private keyValue(): RawEntry {
    const ref = this.stack[this.stack.length - 1];
    if (refCount(ref) === 0 || ref.index >= refCount(ref)) return NONE;
    if (ref.node) {
      const it = ref.node.inodes[ref.index];
      return { key: it.key, value: it.value ?? EMPTY, flags: it.flags };
    }
    const p = ref.page!;
    return { key: p.leafKey(ref.index), value: p.leafValue(ref.index), flags: p.leafFlags(ref.index) };
  }

  /** The leaf node under the cursor, materialising the path to it. */
  node(): Node {
    const top = this.stack[this.stack.length - 1];
    if (top.node && refIsLeaf(top)) return top.node;
    let n = this.stack[0].node ?? this.bucket.node(this.stack[0].page!.id, undefined);
    for (const ref of this.stack.slice(0, -1)) {
      if (n.isLeaf) throw new Error('expected branch node');
      n = n.childAt(ref.index);
    }
    if (!n.isLeaf) throw new Error('expected leaf node');
    return n;
  }
}

const EMPTY = Buffer.alloc(0);
