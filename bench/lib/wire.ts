// Hand-made protobuf for the few etcd messages the load driver sends and reads (field numbers from
// proto/etcd/etcdserver/etcdserverpb/rpc.proto). Requests are encoded once, or from a template with only the
// key written per request; responses are scanned for the handful of fields the driver needs, without
// building objects. gRPC gets these buffers through pass-through (de)serializers. Pure; unit-tested against
// protobufjs in test/bench/wire.test.ts.

// ---------------------------------------------------------------------------------------------------
// Writing

export function varintSize(v: number | bigint): number {
  let x = BigInt.asUintN(64, BigInt(v));
  let n = 1;
  while (x >= 0x80n) {
    x >>= 7n;
    n++;
  }
  return n;
}

/** Writes an unsigned varint (numbers up to 2^53, or any int64 as a bigint, negatives as two's complement). */
export function writeVarint(buf: Buffer, pos: number, v: number | bigint): number {
  if (typeof v === 'number' && v >= 0 && v < 2 ** 31) {
    while (v >= 0x80) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    return pos;
  }
  let x = BigInt.asUintN(64, BigInt(v));
  while (x >= 0x80n) {
    buf[pos++] = Number(x & 0x7fn) | 0x80;
    x >>= 7n;
  }
  buf[pos++] = Number(x);
  return pos;
}

type Field = [no: number, kind: 'varint', v: number | bigint | boolean] | [no: number, kind: 'bytes', v: Buffer | Uint8Array];

/** Encodes fields in the given order, leaving out zero / empty / false values as proto3 does. */
export function encodeFields(fields: readonly Field[]): Buffer {
  let size = 0;
  for (const [no, kind, v] of fields) {
    if (kind === 'varint') {
      if (v === 0 || v === 0n || v === false) continue;
      size += varintSize(no << 3) + varintSize(v === true ? 1 : v);
    } else {
      if (v.length === 0) continue;
      size += varintSize((no << 3) | 2) + varintSize(v.length) + v.length;
    }
  }
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const [no, kind, v] of fields) {
    if (kind === 'varint') {
      if (v === 0 || v === 0n || v === false) continue;
      pos = writeVarint(buf, pos, no << 3);
      pos = writeVarint(buf, pos, v === true ? 1 : v);
    } else {
      if (v.length === 0) continue;
      pos = writeVarint(buf, pos, (no << 3) | 2);
      pos = writeVarint(buf, pos, v.length);
      buf.set(v, pos);
      pos += v.length;
    }
  }
  return buf;
}

export interface RangeOpts {
  key: Buffer;
  rangeEnd?: Buffer;
  limit?: number;
  revision?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export const encodeRange = (o: RangeOpts): Buffer =>
  encodeFields([
    [1, 'bytes', o.key],
    [2, 'bytes', o.rangeEnd ?? EMPTY],
    [3, 'varint', o.limit ?? 0],
    [4, 'varint', o.revision ?? 0],
    [7, 'varint', o.serializable ?? false],
    [8, 'varint', o.keysOnly ?? false],
    [9, 'varint', o.countOnly ?? false],
  ]);

export const encodePut = (key: Buffer, value: Buffer, lease: number | bigint = 0): Buffer =>
  encodeFields([
    [1, 'bytes', key],
    [2, 'bytes', value],
    [3, 'varint', lease],
  ]);

/** RequestOp with request_range (1) or request_put (2). */
export const requestOpRange = (range: Buffer): Buffer => encodeFields([[1, 'bytes', range]]);
export const requestOpPut = (put: Buffer): Buffer => encodeFields([[2, 'bytes', put]]);

/** TxnRequest with no compares and these RequestOps as `success`. */
export const encodeTxn = (success: readonly Buffer[]): Buffer => encodeFields(success.map((op): Field => [2, 'bytes', op]));

export const encodeLeaseGrant = (ttl: number, id: number | bigint = 0): Buffer =>
  encodeFields([
    [1, 'varint', ttl],
    [2, 'varint', id],
  ]);

export const encodeLeaseKeepAlive = (id: number | bigint): Buffer => encodeFields([[1, 'varint', id]]);

export interface WatchCreateOpts {
  key: Buffer;
  rangeEnd?: Buffer;
  startRevision?: number;
  prevKv?: boolean;
}

/** WatchRequest{create_request}. */
export function encodeWatchCreate(o: WatchCreateOpts): Buffer {
  const create = encodeFields([
    [1, 'bytes', o.key],
    [2, 'bytes', o.rangeEnd ?? EMPTY],
    [3, 'varint', o.startRevision ?? 0],
    [6, 'varint', o.prevKv ?? false],
  ]);
  return encodeFields([[1, 'bytes', create]]);
}

const EMPTY = Buffer.alloc(0);

/**
 * Requests that differ only in one fixed-size key (a PutRequest, or a TxnRequest around one): the bytes around
 * the key are laid out once, and each request is one allocation, one copy and the key written in place.
 * `build(key)` encodes the message for a key; the key's offset is found by building it with two placeholders.
 */
export class KeyedTemplate {
  private readonly tpl: Buffer;
  /** Where the key starts in every request buffer. */
  readonly keyAt: number;
  constructor(readonly keySize: number, build: (key: Buffer) => Buffer) {
    if (keySize <= 0) throw new Error('KeyedTemplate: key size must be > 0');
    const a = build(Buffer.alloc(keySize, 0x01));
    const b = build(Buffer.alloc(keySize, 0x02));
    let at = -1;
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        at = i;
        break;
      }
    }
    if (a.length !== b.length || at < 0 || !a.subarray(at, at + keySize).equals(Buffer.alloc(keySize, 0x01))) {
      throw new Error('KeyedTemplate: the key is not laid out as one run of bytes');
    }
    this.tpl = a;
    this.keyAt = at;
  }
  get size(): number {
    return this.tpl.length;
  }
  /** A new request buffer; the caller writes keySize key bytes at keyAt. */
  make(): Buffer {
    const b = Buffer.allocUnsafe(this.tpl.length);
    this.tpl.copy(b);
    return b;
  }
  withKey(key: Buffer): Buffer {
    if (key.length !== this.keySize) throw new Error(`key of ${key.length} bytes, template for ${this.keySize}`);
    const b = this.make();
    key.copy(b, this.keyAt);
    return b;
  }
  /** A request whose key is Go's varint key of i (see putVarintKey). */
  varint(i: number): Buffer {
    const b = this.make();
    putVarintKey(b, this.keyAt, this.keySize, i);
    return b;
  }
}

/** PutRequests with a fixed-size key. */
export const putTemplate = (keySize: number, value: Buffer, lease: number | bigint = 0): KeyedTemplate =>
  new KeyedTemplate(keySize, (k) => encodePut(k, value, lease));

/** TxnRequests of one put (txn-mixed's write). */
export const txnPutTemplate = (keySize: number, value: Buffer): KeyedTemplate =>
  new KeyedTemplate(keySize, (k) => encodeTxn([requestOpPut(encodePut(k, value))]));

/**
 * Go's binary.PutVarint(k, i) into a zeroed key of `size` bytes at buf[at..]: the keys etcd's benchmark tool
 * makes (`put`, `txn-put`, `watch`). Zigzag, then unsigned varint, then zeros. (The Go tool reuses one key
 * buffer, so its shorter varints keep the tail bytes of an earlier longer one; here the tail is always zero.)
 */
export function putVarintKey(buf: Buffer, at: number, size: number, i: number): void {
  buf.fill(0, at, at + size);
  let ux = i >= 0 ? i * 2 : -i * 2 - 1;
  let p = at;
  const end = at + size;
  while (ux >= 0x80) {
    if (p >= end) throw new Error(`key size ${size} too small for varint ${i}`);
    buf[p++] = (ux % 128) | 0x80;
    ux = Math.floor(ux / 128);
  }
  if (p >= end) throw new Error(`key size ${size} too small for varint ${i}`);
  buf[p] = ux;
}

export function varintKey(size: number, i: number): Buffer {
  const b = Buffer.alloc(size);
  putVarintKey(b, 0, size, i);
  return b;
}

/**
 * clientv3.GetPrefixRangeEnd: the prefix with its last byte below 0xff incremented; "\0" (from-key) when there
 * is no such byte. An empty prefix is every key: clientv3.WithPrefix then sends key "\0" too (see prefixRange).
 */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** [key, end) of a prefix range as clientv3.WithPrefix sends it: an empty prefix is ["\0", "\0"), every key. */
export function prefixRange(prefix: Buffer): [Buffer, Buffer] {
  if (prefix.length === 0) return [Buffer.from([0]), Buffer.from([0])];
  return [prefix, prefixEnd(prefix)];
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** Reads a varint at pos; returns [value (exact below 2^53), next pos]. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    v += (b & 0x7f) * mul;
    if (b < 0x80) return [v, pos];
    mul *= 128;
  }
  throw new Error('varint too long');
}

export function readVarintBig(buf: Uint8Array, pos: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) return [BigInt.asIntN(64, v), pos];
    shift += 7n;
  }
  throw new Error('varint too long');
}

/**
 * Calls fn(fieldNo, wireType, valueStart, valueEnd) for each top-level field. For varints valueStart is the
 * varint's position; for length-delimited fields [valueStart, valueEnd) is the payload. Returns nothing;
 * fn returns true to stop early.
 */
export function scanFields(buf: Uint8Array, fn: (no: number, wt: number, start: number, end: number) => boolean | void, from = 0, to = buf.length): void {
  let pos = from;
  while (pos < to) {
    let tag: number;
    [tag, pos] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wt = tag & 7;
    let start = pos;
    let end: number;
    switch (wt) {
      case 0:
        while (buf[pos] & 0x80) pos++;
        pos++;
        end = pos;
        break;
      case 1:
        pos += 8;
        end = pos;
        break;
      case 2: {
        let len: number;
        [len, start] = readVarint(buf, pos);
        end = start + len;
        pos = end;
        break;
      }
      case 5:
        pos += 4;
        end = pos;
        break;
      default:
        throw new Error(`unsupported wire type ${wt}`);
    }
    if (end > to) throw new Error('truncated field');
    if (fn(no, wt, start, end)) return;
  }
}

/** ResponseHeader.revision of any response whose header is field 1. */
export function headerRevision(resp: Uint8Array): number {
  let rev = 0;
  scanFields(resp, (no, wt, s, e) => {
    if (no === 1 && wt === 2) {
      scanFields(resp, (no2, wt2, s2) => {
        if (no2 === 3 && wt2 === 0) rev = readVarint(resp, s2)[0];
      }, s, e);
      return true;
    }
  });
  return rev;
}

export interface RangeInfo {
  revision: number;
  kvs: number;
  more: boolean;
  count: number;
  /** Key of the last KeyValue (a view into the response), for paging on. */
  lastKey: Buffer | undefined;
}

/** The fields of a RangeResponse that paging needs. */
export function rangeInfo(resp: Buffer): RangeInfo {
  let kvs = 0;
  let more = false;
  let count = 0;
  let lastS = -1;
  let lastE = -1;
  scanFields(resp, (no, wt, s, e) => {
    if (no === 2 && wt === 2) {
      kvs++;
      lastS = s;
      lastE = e;
    } else if (no === 3 && wt === 0) more = readVarint(resp, s)[0] !== 0;
    else if (no === 4 && wt === 0) count = readVarint(resp, s)[0];
  });
  let lastKey: Buffer | undefined;
  if (lastS >= 0) {
    scanFields(resp, (no, wt, s, e) => {
      if (no === 1 && wt === 2) {
        lastKey = resp.subarray(s, e);
        return true;
      }
    }, lastS, lastE);
    if (!lastKey) lastKey = EMPTY;
  }
  return { revision: headerRevision(resp), kvs, more, count, lastKey };
}

export interface WatchInfo {
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  events: number;
  cancelReason: string;
}

/** The fields of a WatchResponse the driver needs (events are counted, not decoded). */
export function watchInfo(resp: Buffer): WatchInfo {
  const w: WatchInfo = { watchId: 0, created: false, canceled: false, compactRevision: 0, events: 0, cancelReason: '' };
  scanFields(resp, (no, wt, s, e) => {
    if (wt === 0) {
      const v = readVarint(resp, s)[0];
      if (no === 2) w.watchId = v;
      else if (no === 3) w.created = v !== 0;
      else if (no === 4) w.canceled = v !== 0;
      else if (no === 5) w.compactRevision = v;
    } else if (wt === 2) {
      if (no === 11) w.events++;
      else if (no === 6) w.cancelReason = resp.toString('utf8', s, e);
    }
  });
  return w;
}

/** Number of events in a WatchResponse (field 11), the cheapest scan. */
export function watchEventCount(resp: Buffer): number {
  let n = 0;
  scanFields(resp, (no, wt) => {
    if (no === 11 && wt === 2) n++;
  });
  return n;
}

/** LeaseGrantResponse: ID, TTL, error. */
export function leaseGrantInfo(resp: Buffer): { id: bigint; ttl: number; error: string } {
  const r = { id: 0n, ttl: 0, error: '' };
  scanFields(resp, (no, wt, s, e) => {
    if (no === 2 && wt === 0) r.id = readVarintBig(resp, s)[0];
    else if (no === 3 && wt === 0) r.ttl = readVarint(resp, s)[0];
    else if (no === 4 && wt === 2) r.error = resp.toString('utf8', s, e);
  });
  return r;
}
