import { encodeKeyValue, varintSize, writeVarint, type KeyValue } from '../mvcc/key-value';
import type { DeleteRangeResponse, ResponseOp, TxnResponse } from '../mvcc/types';
import { encodeHeader, type HeaderFields } from './watch-codec';

// RangeResponse and PutResponse encoded by hand: they are the hottest answers, and protobufjs spends
// several µs per KeyValue where encodeKeyValue spends a fraction of one. Field numbers from rpc.proto.

function writeField(buf: Buffer, pos: number, tag: number, bytes: Buffer): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, bytes.length);
  return pos + bytes.copy(buf, pos);
}

export function encodeRangeResponse(header: HeaderFields, kvs: KeyValue[], more: boolean, count: number): Buffer {
  return encodeStoredRangeResponse(header, kvs.map(encodeKeyValue), more, count);
}

/** A RangeResponse from KeyValues already encoded (as the store keeps them). */
export function encodeStoredRangeResponse(header: HeaderFields, encoded: Buffer[], more: boolean, count: number): Buffer {
  const h = encodeHeader(header);
  let size = 1 + varintSize(h.length) + h.length;
  for (const e of encoded) size += 1 + varintSize(e.length) + e.length;
  if (more) size += 2;
  if (count !== 0) size += 1 + varintSize(count);
  const buf = Buffer.allocUnsafe(size);
  let pos = writeField(buf, 0, 0x0a, h);
  for (const e of encoded) pos = writeField(buf, pos, 0x12, e);
  if (more) {
    buf[pos++] = 0x18;
    buf[pos++] = 1;
  }
  if (count !== 0) {
    buf[pos++] = 0x20;
    pos = writeVarint(buf, pos, count);
  }
  return buf;
}

export function encodePutResponse(header: HeaderFields, prevKv: KeyValue | undefined): Buffer {
  const h = encodeHeader(header);
  const p = prevKv ? encodeKeyValue(prevKv) : undefined;
  const buf = Buffer.allocUnsafe(1 + varintSize(h.length) + h.length + (p ? 1 + varintSize(p.length) + p.length : 0));
  let pos = writeField(buf, 0, 0x0a, h);
  if (p) pos = writeField(buf, pos, 0x12, p);
  return buf;
}

/** A message field: tag, length, bytes. */
function field(tag: number, bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + varintSize(bytes.length) + bytes.length);
  writeField(out, 0, tag, bytes);
  return out;
}

/** A varint field (non-negative values only: counts and booleans here). */
function varintField(tag: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(1 + varintSize(n));
  out[0] = tag;
  writeVarint(out, 1, n);
  return out;
}

/** The header of a response nested in a txn: etcd fills in only its revision. */
function nestedHeader(revision: number): HeaderFields {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}

function encodeDeleteRangeResponse(header: HeaderFields, r: DeleteRangeResponse): Buffer {
  const parts = [field(0x0a, encodeHeader(header))];
  if (r.deleted !== 0) parts.push(varintField(0x10, r.deleted));
  for (const kv of r.prevKvs) parts.push(field(0x1a, encodeKeyValue(kv)));
  return Buffer.concat(parts);
}

function encodeResponseOp(op: ResponseOp): Buffer {
  if ('range' in op) return field(0x0a, encodeRangeResponse(nestedHeader(op.range.revision), op.range.kvs, op.range.more, op.range.count));
  if ('put' in op) return field(0x12, encodePutResponse(nestedHeader(op.put.revision), op.put.prevKv));
  if ('deleteRange' in op) return field(0x1a, encodeDeleteRangeResponse(nestedHeader(op.deleteRange.revision), op.deleteRange));
  return field(0x22, encodeTxnResponse(nestedHeader(op.txn.revision), op.txn));
}

/** TxnResponse by hand, nested answers included (their headers carry only the revision, as etcd's). */
export function encodeTxnResponse(header: HeaderFields, r: TxnResponse): Buffer {
  const parts = [field(0x0a, encodeHeader(header))];
  if (r.succeeded) parts.push(varintField(0x10, 1));
  for (const op of r.responses) parts.push(field(0x1a, encodeResponseOp(op)));
  return Buffer.concat(parts);
}
