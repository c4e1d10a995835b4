// etcd 3.4 keeps two of its buckets in protobuf where Plinth's layers keep fixed-width records:
//   lease: key = lease ID (int64 big-endian) in both; value = leasepb.Lease{ID=1, TTL=2, RemainingTTL=3}
//          in etcd, [ttl int64 BE][remaining ttl int64 BE] in Plinth (src/lease/lessor.ts).
//   alarm: key = etcdserverpb.AlarmMember{MemberID=1, Alarm=2} in etcd, [member ID u64 BE][alarm u8] in
//          Plinth (src/server/alarms.ts); the value is empty in both.
// Every other bucket Plinth writes is byte-for-byte etcd's (key: revision → mvccpb.KeyValue; meta:
// consistent_index, scheduledCompactRev, finishedCompactRev). These functions convert at the seams
// where Plinth's data meets etcd's file format: the bolt engine and bbolt-format snapshots.
import type { Bucket } from './engine';

/** etcd 3.4's buckets: Plinth's, and `cluster` (cluster version), which Plinth does not keep. */
export const ETCD_BUCKETS = ['alarm', 'auth', 'authRoles', 'authUsers', 'cluster', 'key', 'lease', 'members', 'members_removed', 'meta'] as const;

function putVarint(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

/** Reads the varint fields of a flat protobuf message (other wire types are skipped). */
function readFields(buf: Buffer): Map<number, bigint> {
  const fields = new Map<number, bigint>();
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated protobuf varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf varint too long');
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 0) throw new Error('protobuf field number 0');
    if (wire === 0) fields.set(field, varint());
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) pos += Number(varint());
    else throw new Error(`unexpected protobuf wire type ${wire}`);
    if (pos > buf.length) throw new Error('truncated protobuf field');
  }
  return fields;
}

/** A message of varint fields, zero values left out as gogo-protobuf's Marshal does. */
function encodeFields(values: [number, bigint][]): Buffer {
  const out: number[] = [];
  for (const [field, v] of values) {
    if (v === 0n) continue;
    out.push(field << 3);
    putVarint(out, v);
  }
  return Buffer.from(out);
}

export function leaseToEtcd(key: Buffer, value: Buffer): Buffer {
  if (value.length !== 16) throw new Error(`lease ${key.toString('hex')}: a Plinth lease record is 16 bytes, got ${value.length}`);
  return encodeFields([[1, key.readBigInt64BE(0)], [2, value.readBigInt64BE(0)], [3, value.readBigInt64BE(8)]]);
}

export function leaseFromEtcd(value: Buffer): { id: bigint; value: Buffer } {
  const f = readFields(value);
  const out = Buffer.alloc(16);
  out.writeBigInt64BE(BigInt.asIntN(64, f.get(2) ?? 0n), 0);
  out.writeBigInt64BE(BigInt.asIntN(64, f.get(3) ?? 0n), 8);
  return { id: BigInt.asIntN(64, f.get(1) ?? 0n), value: out };
}

export function alarmKeyToEtcd(key: Buffer): Buffer {
  if (key.length !== 9) throw new Error(`alarm key ${key.toString('hex')}: a Plinth alarm key is 9 bytes`);
  return encodeFields([[1, key.readBigUInt64BE(0)], [2, BigInt(key[8])]]);
}

export function alarmKeyFromEtcd(key: Buffer): Buffer {
  const f = readFields(key);
  const out = Buffer.alloc(9);
  out.writeBigUInt64BE(BigInt.asUintN(64, f.get(1) ?? 0n), 0);
  out[8] = Number(f.get(2) ?? 0n);
  return out;
}

/**
 * Plinth's entry as etcd stores it (the key and value to write into etcd's bucket). Records that do not
 * have Plinth's shape are written as they are.
 */
export function entryToEtcd(bucket: Bucket, key: Buffer, value: Buffer): [Buffer, Buffer] {
  if (bucket === 'lease' && key.length === 8 && value.length === 16) return [key, leaseToEtcd(key, value)];
  if (bucket === 'alarm' && key.length === 9) return [alarmKeyToEtcd(key), value];
  return [key, value];
}

/** etcd's entry as Plinth's layers read it; a record that is not etcd's protobuf is kept as it is. */
export function entryFromEtcd(bucket: Bucket, key: Buffer, value: Buffer): [Buffer, Buffer] {
  try {
    if (bucket === 'lease' && key.length === 8) return [key, leaseFromEtcd(value).value];
    if (bucket === 'alarm') return [alarmKeyFromEtcd(key), value];
  } catch {
    // not etcd's encoding
  }
  return [key, value];
}
