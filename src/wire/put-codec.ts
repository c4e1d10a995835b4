import type { PutRequest } from '../mvcc/types';
import { ProtoReader, varintSize, writeVarint } from '../mvcc/key-value';

// PutRequest by hand, both ways: the request of every write (decoded off the wire, encoded into the
// WAL's InternalRaftRequest). Field numbers from rpc.proto; the bytes were checked by wire-check first.

const EMPTY = Buffer.alloc(0);

/**
 * Decodes a PutRequest whose wire format is known to be valid (wire-check.ts ran on it). Key and value
 * are views into buf: the transport hands each message over in a buffer of its own.
 */
export function decodePutRequest(buf: Buffer): PutRequest {
  const r: PutRequest = { key: EMPTY, value: EMPTY, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
  const rd = new ProtoReader(buf);
  while (!rd.done) {
    const tag = rd.uint(); // a varint: unknown fields may number 16 and up
    const field = tag >>> 3;
    // Fields 1-2 are bytes, 3-6 varints (wire-check refused other wire types for them).
    if (field === 1) r.key = rd.bytes();
    else if (field === 2) r.value = rd.bytes();
    else if (field === 3) r.lease = rd.int64();
    else if (field === 4) r.prevKv = rd.uint() !== 0;
    else if (field === 5) r.ignoreValue = rd.uint() !== 0;
    else if (field === 6) r.ignoreLease = rd.uint() !== 0;
    else rd.skip(tag & 7);
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

/**
 * The PutRequest as proto3 encodes it (zero values left out), wrapped as InternalRaftRequest's put
 * (field 4), after prefix (the request's header field), in one buffer.
 */
export function encodePutEntry(r: PutRequest, prefix?: Buffer): Buffer {
  const lease = r.lease !== 0n ? bigVarintBytes(r.lease) : undefined;
  let size = 0;
  if (r.key.length) size += 1 + varintSize(r.key.length) + r.key.length;
  if (r.value.length) size += 1 + varintSize(r.value.length) + r.value.length;
  if (lease) size += 1 + lease.length;
  if (r.prevKv) size += 2;
  if (r.ignoreValue) size += 2;
  if (r.ignoreLease) size += 2;
  const pre = prefix ? prefix.length : 0;
  const out = Buffer.allocUnsafe(pre + 1 + varintSize(size) + size);
  if (prefix) prefix.copy(out, 0);
  out[pre] = 0x22;
  let pos = writeVarint(out, pre + 1, size);
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
