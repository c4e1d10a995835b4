import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types';
import * as c from '../wire/convert';
import { encodePutEntry } from '../wire/put-codec';
import { decodeMessage, encodeMessage } from '../wire/root';

// What goes through the log: one write request, as etcd's InternalRaftRequest on the wire, so the
// WAL holds etcd's own encoding.

export interface AlarmRequest {
  action: number;
  memberId: bigint;
  alarm: number;
}

export type InternalRequest =
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: { revision: number; physical: boolean } }
  | { alarm: AlarmRequest }
  | { leaseGrant: { id: bigint; ttl: number } }
  | { leaseRevoke: { id: bigint } }
  | { leaseCheckpoint: { checkpoints: { id: bigint; remainingTtl: number }[] } };

const TYPE = 'etcdserverpb.InternalRaftRequest';

export function encodeInternalRequest(r: InternalRequest): Buffer {
  if ('put' in r) return encodePutEntry(r.put); // by hand: every write goes through here
  if ('deleteRange' in r) return encodeMessage(TYPE, { deleteRange: c.deleteRangeRequestToWire(r.deleteRange) });
  if ('txn' in r) return encodeMessage(TYPE, { txn: c.txnRequestToWire(r.txn) });
  if ('compaction' in r) return encodeMessage(TYPE, { compaction: r.compaction });
  if ('alarm' in r) return encodeMessage(TYPE, { alarm: { action: r.alarm.action, memberID: r.alarm.memberId.toString(), alarm: r.alarm.alarm } });
  if ('leaseGrant' in r) return encodeMessage(TYPE, { leaseGrant: { ID: r.leaseGrant.id.toString(), TTL: r.leaseGrant.ttl } });
  if ('leaseRevoke' in r) return encodeMessage(TYPE, { leaseRevoke: { ID: r.leaseRevoke.id.toString() } });
  return encodeMessage(TYPE, {
    leaseCheckpoint: { checkpoints: r.leaseCheckpoint.checkpoints.map((c) => ({ ID: c.id.toString(), remainingTTL: c.remainingTtl })) },
  });
}

export function decodeInternalRequest(buf: Buffer): InternalRequest {
  const m = decodeMessage(TYPE, buf);
  if (m.put) return { put: c.putRequest(m.put) };
  if (m.deleteRange) return { deleteRange: c.deleteRangeRequest(m.deleteRange) };
  if (m.txn) return { txn: c.txnRequest(m.txn) };
  if (m.compaction) return { compaction: { revision: Number(m.compaction.revision), physical: !!m.compaction.physical } };
  if (m.alarm) return { alarm: { action: m.alarm.action | 0, memberId: BigInt(m.alarm.memberID ?? 0), alarm: m.alarm.alarm | 0 } };
  if (m.leaseGrant) return { leaseGrant: { id: BigInt(m.leaseGrant.ID), ttl: Number(m.leaseGrant.TTL) } };
  if (m.leaseRevoke) return { leaseRevoke: { id: BigInt(m.leaseRevoke.ID) } };
  if (m.leaseCheckpoint) {
    return { leaseCheckpoint: { checkpoints: (m.leaseCheckpoint.checkpoints ?? []).map((c: any) => ({ id: BigInt(c.ID), remainingTtl: Number(c.remainingTTL) })) } };
  }
  throw new Error('internal request: no known request in entry');
}
