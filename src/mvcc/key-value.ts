// mvccpb.KeyValue, and its protobuf encoding written by hand: it is on every put and range, and its
// bytes must equal etcd's (fields in order, zero values omitted) so stored data and HashKV match etcd.

export interface KeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  /** int64 lease id; 0n = no lease. */
  lease: bigint;
}

const EMPTY = Buffer.alloc(0);

/** Bytes of a protobuf varint for a non-negative safe integer. */
export function varintSize(n: number): number {
  // Non-negative safe integers only (revisions, versions, lengths).
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes a varint at pos; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function bigVarintSize(n: bigint): number {
  let u = BigInt.asUintN(64, n);
  let size = 1;
  while (u >= 128n) {
    u >>= 7n;
    size++;
  }
  return size;
}

function writeBigVarint(buf: Buffer, pos: number, n: bigint): number {
  let u = BigInt.asUintN(64, n);
  while (u >= 128n) {
    buf[pos++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  buf[pos++] = Number(u);
  return pos;
}

export function encodeKeyValue(kv: KeyValue): Buffer {
  const k = kv.key.length;
  const v = kv.value.length;
  let size = 0;
  if (k > 0) size += 1 + varintSize(k) + k;
  if (kv.createRevision !== 0) size += 1 + varintSize(kv.createRevision);
  if (kv.modRevision !== 0) size += 1 + varintSize(kv.modRevision);
  if (kv.version !== 0) size += 1 + varintSize(kv.version);
  if (v > 0) size += 1 + varintSize(v) + v;
  if (kv.lease !== 0n) size += 1 + bigVarintSize(kv.lease);
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (k > 0) {
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, k);
    pos += kv.key.copy(buf, pos);
  }
  if (kv.createRevision !== 0) {
    buf[pos++] = 0x10;
    pos = writeVarint(buf, pos, kv.createRevision);
  }
  if (kv.modRevision !== 0) {
    buf[pos++] = 0x18;
    pos = writeVarint(buf, pos, kv.modRevision);
  }
  if (kv.version !== 0) {
    buf[pos++] = 0x20;
    pos = writeVarint(buf, pos, kv.version);
  }
  if (v > 0) {
    buf[pos++] = 0x2a;
    pos = writeVarint(buf, pos, v);
    pos += kv.value.copy(buf, pos);
  }
  if (kv.lease !== 0n) {
    buf[pos++] = 0x30;
    pos = writeBigVarint(buf, pos, kv.lease);
  }
  return buf;
}

/** A cursor over protobuf bytes (shared by the hand-written decoders: KeyValue here, PutRequest in wire/). */
export class ProtoReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** A varint as a number (lengths, revisions, bools: below 2^53). */
  uint(): number {
    const buf = this.buf;
    let n = 0;
    let mul = 1;
    let b: number;
    do {
      b = buf[this.pos++];
      n += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return n;
  }

  /** A varint as an int64 (two's complement, as lease ids). */
  int64(): bigint {
    const buf = this.buf;
    let u = 0n;
    let shift = 0n;
    let b: number;
    do {
      b = buf[this.pos++];
      u |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    } while (b & 0x80);
    return BigInt.asIntN(64, u);
  }

  /** Skips a field of an unknown number, as proto3 decoders do. */
  skip(wire: number): void {
    if (wire === 0) this.uint();
    else if (wire === 2) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new Error(`protobuf: wire type ${wire} cannot be skipped`);
  }

  /** A length-delimited field's bytes, as a view into buf. */
  bytes(): Buffer {
    const len = this.uint();
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}

/** Decodes a stored KeyValue; key and value are views into buf (callers must not mutate them). */
export function decodeKeyValue(buf: Buffer): KeyValue {
  const kv: KeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };
  const r = new ProtoReader(buf);
  while (!r.done) {
    const tag = buf[r.pos++];
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 2) {
      const bytes = r.bytes();
      if (field === 1) kv.key = bytes;
      else if (field === 5) kv.value = bytes;
    } else if (wire === 0) {
      if (field === 6) kv.lease = r.int64();
      else {
        const n = r.uint();
        if (field === 2) kv.createRevision = n;
        else if (field === 3) kv.modRevision = n;
        else if (field === 4) kv.version = n;
      }
    } else {
      throw new Error(`corrupt KeyValue: wire type ${wire}`);
    }
  }
  return kv;
}
