// bbolt's on-disk page format (go.etcd.io/bbolt page.go, db.go's meta), byte for byte, little-endian as
// bbolt writes it on amd64/arm64:
//   page header (16 bytes): id u64, flags u16, count u16, overflow u32
//   branch element (16): pos u32, ksize u32, pgid u64   — pos is relative to the element itself
//   leaf element (16):   flags u32, pos u32, ksize u32, vsize u32
//   meta (64, after the header): magic u32, version u32, pageSize u32, flags u32, root {pgid u64,
//   sequence u64}, freelist u64, pgid u64, txid u64, checksum u64 (fnv-1a 64 of the 56 bytes before it)

export const PAGE_HEADER_SIZE = 16;
export const BRANCH_ELEMENT_SIZE = 16;
export const LEAF_ELEMENT_SIZE = 16;
/** A bucket's header in its parent's leaf: root pgid u64, sequence u64; an inline page follows when root is 0. */
export const BUCKET_HEADER_SIZE = 16;
export const META_SIZE = 64;

export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;
/** A leaf element whose value is a bucket header. */
export const BUCKET_LEAF_FLAG = 0x01;

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
/** meta.freelist when the freelist is not written (NoFreelistSync): all ones on disk. */
export const NO_FREELIST = -1;
export const DEFAULT_PAGE_SIZE = 4096;
export const MIN_KEYS_PER_PAGE = 2;
export const MAX_KEY_SIZE = 32768;
export const MAX_VALUE_SIZE = 2 ** 31 - 2;

const TWO32 = 2 ** 32;

/** A u64 as a JS number (page ids and txids stay far below 2^53). */
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32;
}

export function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v % TWO32 >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / TWO32) >>> 0, off + 4);
}

/** A page viewed in place: the header at buf[off]. Inline bucket pages live inside a value buffer. */
export class PageView {
  constructor(readonly buf: Buffer, readonly off: number) {}
  get id(): number {
    return readU64(this.buf, this.off);
  }
  get flags(): number {
    return this.buf.readUInt16LE(this.off + 8);
  }
  get count(): number {
    return this.buf.readUInt16LE(this.off + 10);
  }
  get overflow(): number {
    return this.buf.readUInt32LE(this.off + 12);
  }
  isLeaf(): boolean {
    return (this.flags & LEAF_PAGE) !== 0;
  }
  isBranch(): boolean {
    return (this.flags & BRANCH_PAGE) !== 0;
  }
  /** Offset of element i (leaf and branch elements are both 16 bytes). */
  elem(i: number): number {
    return this.off + PAGE_HEADER_SIZE + i * 16;
  }
  leafFlags(i: number): number {
    return this.buf.readUInt32LE(this.elem(i));
  }
  leafKey(i: number): Buffer {
    const e = this.elem(i);
    const start = e + this.buf.readUInt32LE(e + 4);
    return this.buf.subarray(start, start + this.buf.readUInt32LE(e + 8));
  }
  leafValue(i: number): Buffer {
    const e = this.elem(i);
    const start = e + this.buf.readUInt32LE(e + 4) + this.buf.readUInt32LE(e + 8);
    return this.buf.subarray(start, start + this.buf.readUInt32LE(e + 12));
  }
  branchKey(i: number): Buffer {
    const e = this.elem(i);
    const start = e + this.buf.readUInt32LE(e);
    return this.buf.subarray(start, start + this.buf.readUInt32LE(e + 4));
  }
  branchPgid(i: number): number {
    return readU64(this.buf, this.elem(i) + 8);
  }
  /** Compares key i of this page (leaf or branch) with k, without making a subarray. */
  compareKey(i: number, k: Buffer, leaf: boolean): number {
    const e = this.elem(i);
    let start: number;
    let len: number;
    if (leaf) {
      start = e + this.buf.readUInt32LE(e + 4);
      len = this.buf.readUInt32LE(e + 8);
    } else {
      start = e + this.buf.readUInt32LE(e);
      len = this.buf.readUInt32LE(e + 4);
    }
    const n = len < k.length ? len : k.length;
    if (n > 64) return this.buf.compare(k, 0, k.length, start, start + len);
    // bytes.Compare in JS for short keys (no call into C++).
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      const d = buf[start + i] - k[i];
      if (d !== 0) return d;
    }
    return len - k.length;
  }
  typeName(): string {
    const f = this.flags;
    if (f & BRANCH_PAGE) return 'branch';
    if (f & LEAF_PAGE) return 'leaf';
    if (f & META_PAGE) return 'meta';
    if (f & FREELIST_PAGE) return 'freelist';
    return `unknown<${f.toString(16).padStart(2, '0')}>`;
  }
}

export function writePageHeader(buf: Buffer, off: number, id: number, flags: number, count: number, overflow: number): void {
  writeU64(buf, off, id);
  buf.writeUInt16LE(flags, off + 8);
  buf.writeUInt16LE(count, off + 10);
  buf.writeUInt32LE(overflow, off + 12);
}

export interface Meta {
  magic: number;
  version: number;
  pageSize: number;
  flags: number;
  root: number;
  sequence: number;
  /** NO_FREELIST when not synced. */
  freelist: number;
  /** High-water mark: the first page id past the end of the data. */
  pgid: number;
  txid: number;
  checksum: bigint;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

export function fnv64a(data: Buffer): bigint {
  let h = FNV_OFFSET;
  for (let i = 0; i < data.length; i++) {
    h ^= BigInt(data[i]);
    h = (h * FNV_PRIME) & MASK64;
  }
  return h;
}

/** Reads the meta of a meta page; off is the page's start. */
export function readMeta(buf: Buffer, off: number): Meta {
  const m = off + PAGE_HEADER_SIZE;
  const freelistLo = buf.readUInt32LE(m + 32);
  const freelistHi = buf.readUInt32LE(m + 36);
  return {
    magic: buf.readUInt32LE(m),
    version: buf.readUInt32LE(m + 4),
    pageSize: buf.readUInt32LE(m + 8),
    flags: buf.readUInt32LE(m + 12),
    root: readU64(buf, m + 16),
    sequence: readU64(buf, m + 24),
    freelist: freelistLo === 0xffffffff && freelistHi === 0xffffffff ? NO_FREELIST : readU64(buf, m + 32),
    pgid: readU64(buf, m + 40),
    txid: readU64(buf, m + 48),
    checksum: buf.readBigUInt64LE(m + 56),
  };
}

function encodeMetaBody(meta: Meta): Buffer {
  const b = Buffer.alloc(META_SIZE);
  b.writeUInt32LE(meta.magic, 0);
  b.writeUInt32LE(meta.version, 4);
  b.writeUInt32LE(meta.pageSize, 8);
  b.writeUInt32LE(meta.flags, 12);
  writeU64(b, 16, meta.root);
  writeU64(b, 24, meta.sequence);
  if (meta.freelist === NO_FREELIST) b.fill(0xff, 32, 40);
  else writeU64(b, 32, meta.freelist);
  writeU64(b, 40, meta.pgid);
  writeU64(b, 48, meta.txid);
  return b;
}

export function metaChecksum(meta: Meta): bigint {
  return fnv64a(encodeMetaBody(meta).subarray(0, 56));
}

/** Why a meta is not usable, or undefined when it is (bbolt's meta.validate). */
export function validateMeta(buf: Buffer, off: number): string | undefined {
  const meta = readMeta(buf, off);
  if (meta.magic !== MAGIC) return 'invalid database';
  if (meta.version !== VERSION) return 'version mismatch';
  if (meta.checksum !== 0n && meta.checksum !== fnv64a(buf.subarray(off + PAGE_HEADER_SIZE, off + PAGE_HEADER_SIZE + 56))) return 'checksum error';
  return undefined;
}

/** A whole meta page (id = txid % 2, as bbolt's meta.write) with its checksum. */
export function encodeMetaPage(meta: Meta, pageSize: number, id = meta.txid % 2): Buffer {
  const page = Buffer.alloc(pageSize);
  writePageHeader(page, 0, id, META_PAGE, 0, 0);
  const body = encodeMetaBody(meta);
  body.writeBigUInt64LE(fnv64a(body.subarray(0, 56)), 56);
  body.copy(page, PAGE_HEADER_SIZE);
  return page;
}
