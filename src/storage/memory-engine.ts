import BTree from 'sorted-btree';
import { BUCKETS, type Bucket, type Engine, type WriteOp } from './engine';

// Keys are held as latin1 strings: one char per byte, so JS string order is byte order.
const toKey = (b: Buffer): string => b.toString('latin1');
const fromKey = (s: string): Buffer => Buffer.from(s, 'latin1');

/** An in-memory engine: no durability, for tests and tmpfs-like experiments. */
export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  private readonly buckets = new Map<Bucket, BTree<string, Buffer>>();
  private bytes = 0;
  private closed = false;

  constructor() {
    for (const b of BUCKETS) this.buckets.set(b, new BTree<string, Buffer>());
  }

  get(bucket: Bucket, key: Buffer): Buffer | undefined {
    return this.tree(bucket).get(toKey(key));
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    this.assertOpen();
    for (const op of ops) {
      const tree = this.tree(op.bucket);
      const k = toKey(op.key);
      const old = tree.get(k);
      if (old) this.bytes -= k.length + old.length;
      if (op.value === undefined) tree.delete(k);
      else {
        // Copy: the caller may reuse its buffer.
        tree.set(k, Buffer.from(op.value));
        this.bytes += k.length + op.value.length;
      }
    }
  }

  async scan(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer, v: Buffer) => boolean | void): Promise<void> {
    const tree = this.tree(bucket);
    const hi = end === undefined ? undefined : toKey(end);
    for (const [k, v] of tree.entries(toKey(start))) {
      if (hi !== undefined && k >= hi) break;
      if (visit(fromKey(k), v) === false) break;
    }
  }

  async scanKeys(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (k: Buffer) => boolean | void): Promise<void> {
    return this.scan(bucket, start, end, (k) => visit(k));
  }

  sizeBytes(): number {
    return this.bytes;
  }

  sizeInUseBytes(): number {
    return this.bytes;
  }

  async defragment(): Promise<void> {
    // Nothing to give back: deleted entries are gone from the maps already.
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private tree(bucket: Bucket): BTree<string, Buffer> {
    this.assertOpen();
    return this.buckets.get(bucket)!;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('memory engine is closed');
  }
}
