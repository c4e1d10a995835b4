import type { PutRequest } from '../mvcc/types';
import { varintSize, writeVarint } from '../mvcc/key-value';

// PutRequest by hand, both ways: the request of every write (decoded off the wire, encoded into the
// WAL's InternalRaftRequest). Field numbers from rpc.proto; the bytes were checked by wire-check first.

const EMPTY = Buffer.alloc(0);

/** Decodes a PutRequest whose wire format is known to be valid (wire-check.ts ran on it). */
export function decodePutRequest(buf: Buffer): PutRequest {
  const r: PutRequest = { key: EMPTY, value: EMPTY, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
  let pos = 0;
  while (pos < buf.length) {
    const tag = buf[pos++];
    const field = tag >>> 3;
    if ((tag & 7) === 2) {
      let len = 0;
      let mul = 1;
      let b: number;
      do {
        b = buf[pos++];
        len += (b & 0x7f) * mul;
        mul *= 128;
      } while (b & 0x80);
      // A copy: the request outlives the message buffer (mvcc and the watch ring keep key and value).
      const bytes = Buffer.from(buf.subarray(pos, pos + len));
      pos += len;
      if (field === 1) r.key = bytes;
      else if (field === 2) r.value = bytes;
    } else {
      // Varints: lease (int64, two's complement) and the three bools; other wire types do not occur here.
      let v = 0n;
      let shift = 0n;
      let b: number;
      do {
        b = buf[pos++];
        v |= BigInt(b & 0x7f) << shift;
        shift += 7n;
      } while (b & 0x80);
      if (field === 3) r.lease = BigInt.asIntN(64, v);
      else if (field === 4) r.prevKv = v !== 0n;
      else if (field === 5) r.ignoreValue = v !== 0n;
      else if (field === 6) r.ignoreLease = v !== 0n;
    }
  }
  return r;
}

function bigVarintBytes(n: bigint): number[] {
  const out: number[] = [];
  let u = BigInt.asUintN(64, n);
  while (u >= 128n) {
    out.push(Number(u & 0x7fn) | 0x80);
    u >>= 7n;
  }
  out.push(Number(u));
  return out;
}

/** The PutRequest as proto3 encodes it (zero values left out), wrapped as InternalRaftRequest's put (field 4). */
export function encodePutEntry(r: PutRequest): Buffer {
  const lease = r.lease !== 0n ? bigVarintBytes(r.lease) : undefined;
  let size = 0;
  if (r.key.length) size += 1 + varintSize(r.key.length) + r.key.length;
  if (r.value.length) size += 1 + varintSize(r.value.length) + r.value.length;
  if (lease) size += 1 + lease.length;
  if (r.prevKv) size += 2;
  if (r.ignoreValue) size += 2;
  if (r.ignoreLease) size += 2;
  const out = Buffer.allocUnsafe(1 + varintSize(size) + size);
  out[0] = 0x22;
  let pos = writeVarint(out, 1, size);
  if (r.key.length) {
    out[pos++] = 0x0a;
    pos = writeVarint(out, pos, r.key.length);
    pos += r.key.copy(out, pos);
  }
  if (r.value.length) {
    out[pos++] = 0x12;
    pos = writeVarint(out, pos, r.value.length);
    pos += r.value.copy(out, pos);
  }
  if (lease) {
    out[pos++] = 0x18;
    for (const b of lease) out[pos++] = b;
  }
  if (r.prevKv) (out[pos++] = 0x20), (out[pos++] = 1);
  if (r.ignoreValue) (out[pos++] = 0x28), (out[pos++] = 1);
  if (r.ignoreLease) (out[pos++] = 0x30), (out[pos++] = 1);
  return out;
}
