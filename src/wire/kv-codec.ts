import { encodeKeyValue, varintSize, writeVarint, type KeyValue } from '../mvcc/key-value';
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
