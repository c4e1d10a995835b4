// etcd 3.4 keeps two of its buckets in protobuf:
//   lease: key = lease ID (int64 big-endian); value = leasepb.Lease{ID=1, TTL=2, RemainingTTL=3}.
//   alarm: key = etcdserverpb.AlarmMember{MemberID=1, Alarm=2}; the value is empty.
// Plinth writes them so too (src/lease/lessor.ts, src/server/alarms.ts), as every other bucket (key:
// revision → mvccpb.KeyValue; meta: consistent_index, scheduledCompactRev, finishedCompactRev), so a
// bolt engine's file is etcd's. Earlier Plinth data dirs hold fixed-width records instead — lease value
// [ttl int64 BE][remaining ttl int64 BE], alarm key [member ID u64 BE][alarm u8] — which the readers
// below still take, and which bbolt-format snapshots convert.
import type { Bucket } from './engine';

/** etcd 3.4's buckets: Plinth's, and `cluster` (cluster version), which Plinth does not keep. */
/**
 * Plinth's own meta keys `plinthRejectedConfChange/<index as 16 hex digits>`: the conf changes refused
 * when they first applied (the server's applyConfChange). Local bookkeeping, left out of Maintenance.Hash.
 */
export const REJECTED_CONF_CHANGE_PREFIX = 'plinthRejectedConfChange/';

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

export function alarmKeyToEtcd(key: Buffer): Buffer {
  if (key.length !== 9) throw new Error(`alarm key ${key.toString('hex')}: a Plinth alarm key is 9 bytes`);
  return encodeFields([[1, key.readBigUInt64BE(0)], [2, BigInt(key[8])]]);
}

/**
 * An entry as etcd stores it: an earlier Plinth's fixed-width lease or alarm record converted, anything
 * else (etcd's records included) as it is.
 */
export function entryToEtcd(bucket: Bucket, key: Buffer, value: Buffer): [Buffer, Buffer] {
  if (bucket === 'lease' && key.length === 8 && value.length === 16 && value[0] === 0) return [key, leaseToEtcd(key, value)];
  if (bucket === 'alarm' && key.length === 9) return [alarmKeyToEtcd(key), value];
  return [key, value];
}

/** A lease record as etcd stores it. */
export function encodeLeaseRecord(id: bigint, ttl: number, remainingTtl: number): Buffer {
  return encodeFields([[1, id], [2, BigInt(ttl)], [3, BigInt(remainingTtl)]]);
}

/**
 * A lease record, etcd's or Plinth's earlier fixed-width one (16 bytes whose first is the TTL's top
 * byte, 0; etcd's starts with field 1's tag, 0x08).
 */
export function decodeLeaseRecord(value: Buffer): { ttl: number; remainingTtl: number } {
  if (value.length === 16 && value[0] === 0) return { ttl: Number(value.readBigInt64BE(0)), remainingTtl: Number(value.readBigInt64BE(8)) };
  const f = readFields(value);
  return { ttl: Number(BigInt.asIntN(64, f.get(2) ?? 0n)), remainingTtl: Number(BigInt.asIntN(64, f.get(3) ?? 0n)) };
}

/** An alarm key as etcd stores it. */
export function encodeAlarmKey(memberId: bigint, alarm: number): Buffer {
  return encodeFields([[1, BigInt.asUintN(64, memberId)], [2, BigInt(alarm)]]);
}

/** Plinth's earlier alarm key (9 bytes). */
export function legacyAlarmKey(memberId: bigint, alarm: number): Buffer {
  const k = Buffer.alloc(9);
  k.writeBigUInt64BE(BigInt.asUintN(64, memberId));
  k[8] = alarm;
  return k;
}

/**
 * An alarm key, etcd's or Plinth's earlier 9-byte one (etcd's is 9 bytes only for a member ID below
 * 2^42, which the member ID hash does not give).
 */
export function decodeAlarmKey(key: Buffer): { memberId: bigint; alarm: number } {
  if (key.length === 9) return { memberId: key.readBigUInt64BE(0), alarm: key[8] };
  const f = readFields(key);
  return { memberId: BigInt.asUintN(64, f.get(1) ?? 0n), alarm: Number(f.get(2) ?? 0n) };
}
