// WatchResponse encoded by hand: under fan-out one event goes to many watchers, so each event is
// encoded once and its bytes are copied into every watcher's response (protobufjs would re-encode
// the whole object per watcher). Field numbers from rpc.proto / kv.proto.

export interface HeaderFields {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export interface WatchResponseFields {
  /** Not needed when the header's bytes are passed to encodeWatchResponse. */
  header?: HeaderFields;
  watchId: bigint;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
  fragment?: boolean;
  /** Encoded mvccpb.Event messages. */
  events?: Buffer[];
}

/** Collects protobuf bytes; sizes are computed by writing, since messages here are small. */
class Writer {
  private buf = Buffer.allocUnsafe(256);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    if (n < 0) return this.bigVarint(BigInt(n));
    this.ensure(10);
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  bigVarint(n: bigint): void {
    this.ensure(10);
    let u = BigInt.asUintN(64, n);
    while (u >= 128n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  bytes(b: Buffer): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.pos += b.copy(this.buf, this.pos);
  }

  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** The cluster and member id fields of the last header encoded: the same on every answer of a member. */
let ids: { clusterId: bigint; memberId: bigint; bytes: Buffer } | undefined;

function idBytes(h: HeaderFields): Buffer {
  if (ids && ids.clusterId === h.clusterId && ids.memberId === h.memberId) return ids.bytes;
  const w = new Writer();
  if (h.clusterId !== 0n) (w.byte(0x08), w.bigVarint(h.clusterId));
  if (h.memberId !== 0n) (w.byte(0x10), w.bigVarint(h.memberId));
  ids = { clusterId: h.clusterId, memberId: h.memberId, bytes: Buffer.from(w.done()) };
  return ids.bytes;
}

function writeSmallVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

export function encodeHeader(h: HeaderFields): Buffer {
  if (h.revision < 0 || h.raftTerm < 0) {
    // Not seen from a server; kept exact for completeness (negative int64 is ten bytes).
    const w = new Writer();
    if (h.clusterId !== 0n) (w.byte(0x08), w.bigVarint(h.clusterId));
    if (h.memberId !== 0n) (w.byte(0x10), w.bigVarint(h.memberId));
    if (h.revision !== 0) (w.byte(0x18), w.varint(h.revision));
    if (h.raftTerm !== 0) (w.byte(0x20), w.varint(h.raftTerm));
    return Buffer.from(w.done());
  }
  const prefix = idBytes(h);
  const out = Buffer.allocUnsafe(prefix.length + 22);
  let pos = prefix.copy(out, 0);
  if (h.revision !== 0) (out[pos++] = 0x18, (pos = writeSmallVarint(out, pos, h.revision)));
  if (h.raftTerm !== 0) (out[pos++] = 0x20, (pos = writeSmallVarint(out, pos, h.raftTerm)));
  return out.subarray(0, pos);
}

export const EventType = { PUT: 0, DELETE: 1 } as const;

/** An mvccpb.Event from its type and already-encoded KeyValues. */
export function encodeEvent(type: number, kv: Buffer, prevKv?: Buffer): Buffer {
  const w = new Writer();
  if (type !== 0) (w.byte(0x08), w.varint(type));
  w.byte(0x12);
  w.bytes(kv);
  if (prevKv) (w.byte(0x1a), w.bytes(prevKv));
  return Buffer.from(w.done());
}

export function encodeWatchResponse(r: WatchResponseFields, headerBytes?: Buffer): Buffer {
  const header = headerBytes ?? encodeHeader(r.header!);
  const w = new Writer();
  w.byte(0x0a);
  w.bytes(header);
  if (r.watchId !== 0n) (w.byte(0x10), w.bigVarint(r.watchId));
  if (r.created) (w.byte(0x18), w.byte(1));
  if (r.canceled) (w.byte(0x20), w.byte(1));
  if (r.compactRevision) (w.byte(0x28), w.varint(r.compactRevision));
  if (r.cancelReason) (w.byte(0x32), w.bytes(Buffer.from(r.cancelReason)));
  if (r.fragment) (w.byte(0x38), w.byte(1));
  if (r.events) for (const e of r.events) (w.byte(0x5a), w.bytes(e));
  return w.done();
}

/**
 * The exact protobuf size of a WatchResponse { header, watch_id, events, fragment }, as etcd's
 * sendFragments measures it with WatchResponse.Size().
 */
export function watchResponseSize(headerLen: number, watchId: bigint, events: Buffer[], fragment: boolean): number {
  let n = 1 + varintLen(headerLen) + headerLen;
  if (watchId !== 0n) n += 1 + bigVarintLen(watchId);
  if (fragment) n += 2;
  for (const e of events) n += 1 + varintLen(e.length) + e.length;
  return n;
}

function bigVarintLen(n: bigint): number {
  let u = BigInt.asUintN(64, n);
  let l = 1;
  while (u >= 128n) {
    u >>= 7n;
    l++;
  }
  return l;
}

function varintLen(n: number): number {
  let l = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    l++;
  }
  return l;
}
