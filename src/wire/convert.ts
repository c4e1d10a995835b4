import type { KeyValue } from '../mvcc/key-value';
import type {
  Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
  RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
} from '../mvcc/types';

// Translation between proto-loader's objects (camelCase, int64 as strings, bytes as Buffers) and the
// plain shapes of mvcc/types. Nothing here decides anything.

type Wire = Record<string, any>;

const EMPTY = Buffer.alloc(0);
const buf = (b: Buffer | undefined | null): Buffer => b ?? EMPTY;
const num = (s: string | number | undefined): number => (s === undefined ? 0 : Number(s));
const big = (s: string | number | undefined): bigint => (s === undefined || s === '' ? 0n : BigInt(s));

/** A response header as the server fills it. */
export interface Header {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export function header(h: Header): Wire {
  return { clusterId: h.clusterId.toString(), memberId: h.memberId.toString(), revision: h.revision, raftTerm: h.raftTerm };
}

export function keyValue(kv: KeyValue): Wire {
  return {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease === 0n ? 0 : kv.lease.toString(),
  };
}

export function rangeRequest(w: Wire): RangeRequest {
  return {
    key: buf(w.key),
    rangeEnd: buf(w.rangeEnd),
    limit: num(w.limit),
    revision: num(w.revision),
    sortOrder: w.sortOrder | 0,
    sortTarget: w.sortTarget | 0,
    serializable: !!w.serializable,
    keysOnly: !!w.keysOnly,
    countOnly: !!w.countOnly,
    minModRevision: num(w.minModRevision),
    maxModRevision: num(w.maxModRevision),
    minCreateRevision: num(w.minCreateRevision),
    maxCreateRevision: num(w.maxCreateRevision),
  };
}

export function putRequest(w: Wire): PutRequest {
  return {
    key: buf(w.key),
    value: buf(w.value),
    lease: big(w.lease),
    prevKv: !!w.prevKv,
    ignoreValue: !!w.ignoreValue,
    ignoreLease: !!w.ignoreLease,
  };
}

export function deleteRangeRequest(w: Wire): DeleteRangeRequest {
  return { key: buf(w.key), rangeEnd: buf(w.rangeEnd), prevKv: !!w.prevKv };
}

/** The oneof member that carries the operand of each compare target (CompareTarget order). */
const COMPARE_UNION = ['version', 'createRevision', 'modRevision', 'value', 'lease'];

function compare(w: Wire): Compare {
  const target = w.target | 0;
  // As etcd: only the member matching the target counts; any other leaves the operand zero/empty.
  const own = w.targetUnion === COMPARE_UNION[target];
  return {
    result: w.result | 0,
    target,
    key: buf(w.key),
    rangeEnd: buf(w.rangeEnd),
    value: own && target === 3 ? buf(w.value) : EMPTY,
    number: own && target !== 3 ? big(w[COMPARE_UNION[target]]) : 0n,
  };
}

function requestOp(w: Wire): RequestOp {
  switch (w.request) {
    case 'requestRange':
      return { range: rangeRequest(w.requestRange) };
    case 'requestPut':
      return { put: putRequest(w.requestPut) };
    case 'requestDeleteRange':
      return { deleteRange: deleteRangeRequest(w.requestDeleteRange) };
    case 'requestTxn':
      return { txn: txnRequest(w.requestTxn) };
    default:
      // An empty RequestOp: etcd rejects it as "key not found" in checkRequestOp.
      return { range: rangeRequest({}) };
  }
}

export function txnRequest(w: Wire): TxnRequest {
  return {
    compare: (w.compare ?? []).map(compare),
    success: (w.success ?? []).map(requestOp),
    failure: (w.failure ?? []).map(requestOp),
  };
}

// Responses. Nested responses (inside a txn) carry a header with only the revision, as etcd's.

export function rangeResponse(r: RangeResponse, h: Wire): Wire {
  return { header: h, kvs: r.kvs.map(keyValue), more: r.more, count: r.count };
}

export function putResponse(r: PutResponse, h: Wire): Wire {
  return { header: h, prevKv: r.prevKv ? keyValue(r.prevKv) : null };
}

export function deleteRangeResponse(r: DeleteRangeResponse, h: Wire): Wire {
  return { header: h, deleted: r.deleted, prevKvs: r.prevKvs.map(keyValue) };
}

export function txnResponse(r: TxnResponse, h: Wire): Wire {
  return { header: h, succeeded: r.succeeded, responses: r.responses.map(responseOp) };
}

function responseOp(op: ResponseOp): Wire {
  if ('range' in op) return { responseRange: rangeResponse(op.range, { revision: op.range.revision }) };
  if ('put' in op) return { responsePut: putResponse(op.put, { revision: op.put.revision }) };
  if ('deleteRange' in op) return { responseDeleteRange: deleteRangeResponse(op.deleteRange, { revision: op.deleteRange.revision }) };
  return { responseTxn: txnResponse(op.txn, { revision: op.txn.revision }) };
}

// Requests back to wire objects, for the write-ahead log (entries hold etcd's InternalRaftRequest).

export function rangeRequestToWire(r: RangeRequest): Wire {
  return { ...r };
}

export function putRequestToWire(r: PutRequest): Wire {
  return { ...r, lease: r.lease.toString() };
}

export function deleteRangeRequestToWire(r: DeleteRangeRequest): Wire {
  return { ...r };
}

function compareToWire(c: Compare): Wire {
  const union = COMPARE_UNION[c.target] ?? 'version';
  return {
    result: c.result,
    target: c.target,
    key: c.key,
    rangeEnd: c.rangeEnd,
    [union]: union === 'value' ? c.value : c.number.toString(),
  };
}

function requestOpToWire(op: RequestOp): Wire {
  if ('range' in op) return { requestRange: rangeRequestToWire(op.range) };
  if ('put' in op) return { requestPut: putRequestToWire(op.put) };
  if ('deleteRange' in op) return { requestDeleteRange: deleteRangeRequestToWire(op.deleteRange) };
  return { requestTxn: txnRequestToWire(op.txn) };
}

export function txnRequestToWire(t: TxnRequest): Wire {
  return { compare: t.compare.map(compareToWire), success: t.success.map(requestOpToWire), failure: t.failure.map(requestOpToWire) };
}
