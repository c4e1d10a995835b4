// raftpb.ConfChange's protobuf encoding, by hand (it is the data of every CONF_CHANGE entry, so the
// WAL and peers see the same bytes etcd writes): ID=1 uint64, Type=2 enum, NodeID=3 uint64,
// Context=4 bytes. gogoproto's non-nullable fields are always written, zero or not, in field order.
import { ConfChangeType, RaftError, type ConfChange } from './types';

const MAX_U64 = (1n << 64n) - 1n;

function varintLen(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, pos: number, v: bigint): number {
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

function checkU64(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new RaftError(`conf change ${what} must be a uint64 bigint`);
}

export function encodeConfChange(cc: ConfChange): Buffer {
  checkU64(cc.id, 'id');
  checkU64(cc.nodeId, 'node id');
  if (!isConfChangeType(cc.type)) throw new RaftError(`unknown conf change type ${cc.type}`);
  const type = BigInt(cc.type);
  const ctx = cc.context ?? Buffer.alloc(0);
  // Go writes Context when it is non-nil; etcd always sets it, so an empty one is the only case
  // where the bytes could differ, and it decodes the same.
  const ctxLen = ctx.length > 0 ? 1 + varintLen(BigInt(ctx.length)) + ctx.length : 0;
  const buf = Buffer.allocUnsafe(3 + varintLen(cc.id) + varintLen(type) + varintLen(cc.nodeId) + ctxLen);
  let pos = 0;
  buf[pos++] = 0x08;
  pos = writeVarint(buf, pos, cc.id);
  buf[pos++] = 0x10;
  pos = writeVarint(buf, pos, type);
  buf[pos++] = 0x18;
  pos = writeVarint(buf, pos, cc.nodeId);
  if (ctx.length > 0) {
    buf[pos++] = 0x22;
    pos = writeVarint(buf, pos, BigInt(ctx.length));
    ctx.copy(buf, pos);
  }
  return buf;
}

function isConfChangeType(t: number): t is ConfChangeType {
  return t === ConfChangeType.ADD_NODE || t === ConfChangeType.REMOVE_NODE
    || t === ConfChangeType.UPDATE_NODE || t === ConfChangeType.ADD_LEARNER_NODE;
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.buf.length) throw new RaftError('conf change: unexpected end of data in a varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) {
        if (v > MAX_U64) throw new RaftError('conf change: varint overflows 64 bits');
        return v;
      }
    }
    throw new RaftError('conf change: varint longer than 10 bytes');
  }

  skip(n: number): void {
    if (n > this.buf.length - this.pos) throw new RaftError('conf change: unexpected end of data');
    this.pos += n;
  }
}

/** Decodes a ConfChange; throws RaftError on damaged bytes. Unknown fields are skipped, as protobuf does. */
export function decodeConfChange(b: Buffer): ConfChange {
  const r = new Reader(b);
  const cc: ConfChange = { id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 0n, context: Buffer.alloc(0) };
  while (r.pos < b.length) {
    const key = r.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new RaftError('conf change: field number 0');
    if (field === 1 && wire === 0) cc.id = r.varint();
    else if (field === 2 && wire === 0) {
      const t = r.varint();
      if (t > 3n || !isConfChangeType(Number(t))) throw new RaftError(`conf change: unknown type ${t}`);
      cc.type = Number(t) as ConfChangeType;
    } else if (field === 3 && wire === 0) cc.nodeId = r.varint();
    else if (field === 4 && wire === 2) {
      const len = Number(r.varint());
      const start = r.pos;
      r.skip(len);
      cc.context = Buffer.from(b.subarray(start, start + len));
    } else if (wire === 0) r.varint();
    else if (wire === 1) r.skip(8);
    else if (wire === 2) r.skip(Number(r.varint()));
    else if (wire === 5) r.skip(4);
    else throw new RaftError(`conf change: unsupported wire type ${wire} for field ${field}`);
  }
  return cc;
}
