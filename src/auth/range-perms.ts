// Key-range permissions as etcd 3.4's range_perm_cache.go checks them, as pure functions over sorted,
// merged interval lists (no tree, no I/O) so the hot-path check is one binary search and the logic can
// be property-tested against a naive checker.
//
// etcd puts every permission of a user's roles into an adt.IntervalTree of BytesAffine intervals, where
// an EMPTY byte string compares greater than every other (it is "+infinity"), and then asks:
//   - a single key (range_end empty):    does any interval intersect [key, key+"\x00")?
//   - a range (range_end = "\x00" → open): is [key, range_end) covered by the union of intervals?
// A permission's interval is [key, range_end) with range_end "\x00" meaning "to the end of the key space",
// and [key, key+"\x00") (that key alone) when range_end is empty. Consequences kept here on purpose:
//   - a permission or request with an empty key begins at +infinity, so it grants / matches nothing
//     (etcdctl turns an empty key into "\x00" for that reason);
//   - a permission whose end is not after its begin is empty;
//   - a requested range whose end is not after its begin is permitted iff its begin key is (that is what
//     the interval tree's overlap test gives for such a query).

/** Permission types, as authpb.Permission.Type. */
export const PermType = { READ: 0, WRITE: 1, READWRITE: 2 } as const;
export type PermTypeValue = (typeof PermType)[keyof typeof PermType];

/** A permission as authpb.Permission decodes (protobufjs camelCase). */
export interface Permission {
  permType: number;
  key: Uint8Array;
  rangeEnd: Uint8Array;
}

/** null = +infinity (BytesAffineComparable's empty byte string). */
type Bound = Buffer | null;

const asBuf = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** BytesAffineComparable.Compare: +infinity above every key, equal to itself. */
export function cmpBound(a: Bound, b: Bound): number {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  return Buffer.compare(a, b);
}

const isZeroByte = (b: Uint8Array): boolean => b.length === 1 && b[0] === 0;

/** The half-open interval a permission grants, as etcd's getMergedPerms builds it. */
export function permInterval(key: Uint8Array, rangeEnd: Uint8Array): [Bound, Bound] {
  const begin = key.length === 0 ? null : asBuf(key);
  if (rangeEnd.length === 0) {
    // NewBytesAffinePoint(key): [key, key+"\x00").
    return [begin, Buffer.concat([asBuf(key), Buffer.from([0])])];
  }
  return [begin, isZeroByte(rangeEnd) ? null : asBuf(rangeEnd)];
}

/**
 * A union of half-open key intervals, kept as disjoint, non-touching intervals sorted by begin.
 * Immutable once built.
 */
export class IntervalSet {
  /** begins[i] < ends[i]; ends[i] < begins[i+1]. */
  private readonly begins: Buffer[] = [];
  private readonly ends: Bound[] = [];

  constructor(intervals: Iterable<[Bound, Bound]>) {
    const list: [Buffer, Bound][] = [];
    for (const [b, e] of intervals) {
      if (b === null || cmpBound(b, e) >= 0) continue; // empty: begins at +infinity or not before its end
      list.push([b, e]);
    }
    list.sort((x, y) => Buffer.compare(x[0], y[0]));
    for (const [b, e] of list) {
      const n = this.begins.length;
      if (n > 0 && cmpBound(this.ends[n - 1], b) >= 0) {
        if (cmpBound(e, this.ends[n - 1]) > 0) this.ends[n - 1] = e;
      } else {
        this.begins.push(b);
        this.ends.push(e);
      }
    }
  }

  get size(): number {
    return this.begins.length;
  }

  /** The merged intervals (for tests and debugging). */
  intervals(): [Buffer, Bound][] {
    return this.begins.map((b, i) => [b, this.ends[i]]);
  }

  /** Index of the last interval whose begin ≤ key, or -1. */
  private floor(key: Buffer): number {
    let lo = 0;
    let hi = this.begins.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(this.begins[mid], key) <= 0) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /** Whether a single key lies in the set (etcd's checkKeyPoint: Intersects with [key, key+"\x00")). */
  hasKey(key: Uint8Array): boolean {
    if (key.length === 0) return false; // begins at +infinity
    const k = asBuf(key);
    const i = this.floor(k);
    return i >= 0 && cmpBound(k, this.ends[i]) < 0;
  }

  /**
   * Whether [key, rangeEnd) is covered (etcd's checkKeyInterval: Contains). rangeEnd "\x00" or empty means
   * to the end of the key space here (callers pass an empty rangeEnd to hasKey instead, as etcd does).
   */
  coversRange(key: Uint8Array, rangeEnd: Uint8Array): boolean {
    const end: Bound = rangeEnd.length === 0 || isZeroByte(rangeEnd) ? null : asBuf(rangeEnd);
    if (key.length === 0) return false;
    const k = asBuf(key);
    if (cmpBound(k, end) >= 0) return this.hasKey(k);
    const i = this.floor(k);
    return i >= 0 && cmpBound(end, this.ends[i]) <= 0;
  }
}

/** One user's merged permissions (etcd's unifiedRangePermissions). */
export class UnifiedRangePermissions {
  readonly read: IntervalSet;
  readonly write: IntervalSet;

  constructor(perms: Iterable<Permission>) {
    const read: [Bound, Bound][] = [];
    const write: [Bound, Bound][] = [];
    for (const p of perms) {
      const ivl = permInterval(p.key, p.rangeEnd);
      if (p.permType === PermType.READ || p.permType === PermType.READWRITE) read.push(ivl);
      if (p.permType === PermType.WRITE || p.permType === PermType.READWRITE) write.push(ivl);
    }
    this.read = new IntervalSet(read);
    this.write = new IntervalSet(write);
  }

  /** etcd's isRangeOpPermitted for one user: a single key when rangeEnd is empty, else a range. */
  permits(key: Uint8Array, rangeEnd: Uint8Array | undefined, permType: PermTypeValue): boolean {
    const set = permType === PermType.READ ? this.read : permType === PermType.WRITE ? this.write : undefined;
    if (!set) throw new Error(`unknown auth type: ${permType}`);
    if (!rangeEnd || rangeEnd.length === 0) return set.hasKey(key);
    return set.coversRange(key, rangeEnd);
  }
}
