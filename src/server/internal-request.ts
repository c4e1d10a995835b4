import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types';
import * as c from '../wire/convert';
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
  | { alarm: AlarmRequest };

const TYPE = 'etcdserverpb.InternalRaftRequest';

export function encodeInternalRequest(r: InternalRequest): Buffer {
  if ('put' in r) return encodeMessage(TYPE, { put: c.putRequestToWire(r.put) });
  if ('deleteRange' in r) return encodeMessage(TYPE, { deleteRange: c.deleteRangeRequestToWire(r.deleteRange) });
  if ('txn' in r) return encodeMessage(TYPE, { txn: c.txnRequestToWire(r.txn) });
  if ('compaction' in r) return encodeMessage(TYPE, { compaction: r.compaction });
  return encodeMessage(TYPE, { alarm: { action: r.alarm.action, memberID: r.alarm.memberId.toString(), alarm: r.alarm.alarm } });
}

export function decodeInternalRequest(buf: Buffer): InternalRequest {
  const m = decodeMessage(TYPE, buf);
  if (m.put) return { put: c.putRequest(m.put) };
  if (m.deleteRange) return { deleteRange: c.deleteRangeRequest(m.deleteRange) };
  if (m.txn) return { txn: c.txnRequest(m.txn) };
  if (m.compaction) return { compaction: { revision: Number(m.compaction.revision), physical: !!m.compaction.physical } };
  if (m.alarm) return { alarm: { action: m.alarm.action | 0, memberId: BigInt(m.alarm.memberID ?? 0), alarm: m.alarm.alarm | 0 } };
  throw new Error('internal request: no known request in entry');
}
