import { Errors } from '../errors';
import type { KeyValue } from './key-value';
import { countRange, countTxn, type KVStore, type RangeKeysResult, type WriteTxn } from './kv-store';
import {
  CompareResult, CompareTarget, SortOrder, SortTarget,
  type Compare, type DeleteRangeRequest, type DeleteRangeResponse, type PutRequest, type PutResponse,
  type RangeEnd, type RangeRequest, type RangeResponse, type RequestOp, type ResponseOp, type StoredRangeResponse,
  type TxnRequest, type TxnResponse,
} from './types';

// The KV service's semantics over the store, as etcd's applier: Range with its options, Put, DeleteRange,
// Txn (compares, nested txns, one revision for the whole txn) and Compact. Pure functions of the
// store's state; request validation that needs no state lives in server/.

/** The wire's range_end to mvcc's: "" → single key, "\0" → no upper bound. */
export function toRangeEnd(rangeEnd: Buffer): RangeEnd {
  if (rangeEnd.length === 0) return undefined;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return Buffer.alloc(0);
  return rangeEnd;
}

/** Anything that reads: the store's current view, or a write txn that sees its own changes. */
interface ReadView {
  range(key: Buffer, end: RangeEnd, opts: { limit: number; rev: number; countOnly: boolean }): RangeKeysResult;
}

export class KV {
  constructor(readonly store: KVStore) {}

  get rev(): number {
    return this.store.currentRev;
  }

  private readonly currentView: ReadView = {
    range: (key, end, opts) => this.store.rangeKeys(key, end, this.store.currentRev, opts),
  };

  range(req: RangeRequest): RangeResponse {
    countRange();
    return rangeOn(this.currentView, req);
  }

  /**
   * A range whose answer is the stored KeyValues in key order and nothing else (no sort, revision
   * filters, keys_only or count_only): their stored bytes, which are their wire encoding. undefined
   * when the request needs more than that (then range() answers it).
   */
  rangeStored(r: RangeRequest): StoredRangeResponse | undefined {
    if (r.sortOrder !== SortOrder.NONE || r.sortTarget !== SortTarget.KEY || r.keysOnly || r.countOnly) return undefined;
    if (r.minModRevision !== 0 || r.maxModRevision !== 0 || r.minCreateRevision !== 0 || r.maxCreateRevision !== 0) return undefined;
    countRange();
    const rr = this.store.rangeStoredKeys(r.key, toRangeEnd(r.rangeEnd), this.store.currentRev, { limit: r.limit, rev: r.revision, countOnly: false });
    // Without filters, the keys beyond the limit are exactly those counted and not read.
    return { revision: rr.rev, kvs: rr.stored, more: r.limit > 0 && rr.count > r.limit, count: rr.count };
  }

  put(req: PutRequest): PutResponse {
    if (req.lease !== 0n && !this.store.leases.exists(req.lease)) throw Errors.leaseNotFound;
    const txn = this.store.write();
    try {
      return putIn(txn, req);
    } finally {
      txn.end();
    }
  }

  deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const txn = this.store.write();
    try {
      return deleteIn(txn, req);
    } finally {
      txn.end();
    }
  }

  txn(req: TxnRequest): TxnResponse {
    // As etcd's applier: compares and checks on a read txn; a write txn for the ops of a txn that writes.
    const read = new CountingView(this.store);
    let readEnded = false;
    try {
      const path = compareToPath(read, req);
      const write = !isReadOnly(req);
      if (write) this.checkOps(req, path, 0, (op) => this.checkPut(op, read));
      this.checkOps(req, path, 0, (op) => this.checkRange(op));
      if (!write) {
        const resp = applyTxn(readOnlyTxn(read), req, path, 0).resp;
        resp.revision = this.store.currentRev;
        return resp;
      }
      read.end();
      readEnded = true;
      const txn = this.store.write();
      const { resp } = applyTxn(txn, req, path, 0);
      resp.revision = txn.changes.length > 0 ? txn.beginRev + 1 : txn.beginRev;
      txn.end();
      return resp;
    } finally {
      if (!readEnded) read.end();
    }
  }

  /**
   * Compacts at rev. Returns the revision for the response header and a promise that resolves once the
   * old revisions are gone from the backend (what a physical compaction waits for).
   */
  compact(rev: number): { revision: number; done: Promise<void> } {
    const done = this.store.compact(rev);
    countRange(); // etcd's applyCompaction reads a key for the current revision
    return { revision: this.store.currentRev, done };
  }

  private checkPut(op: RequestOp, read: CountingView): void {
    if (!('put' in op)) return;
    const p = op.put;
    if (p.ignoreValue || p.ignoreLease) {
      read.ranges++; // etcd's checkPut ranges over the key
      if (!this.store.currentValue(p.key)) throw Errors.keyNotFound;
    }
    if (p.lease !== 0n && !this.store.leases.exists(p.lease)) throw Errors.leaseNotFound;
  }

  private checkRange(op: RequestOp): void {
    if (!('range' in op)) return;
    const r = op.range.revision;
    if (r === 0) return;
    if (r > this.store.currentRev) throw Errors.futureRev;
    if (r < this.store.compactMainRev) throw Errors.compacted;
  }

  /** Runs check over the ops on the txn's path (nested txns included); returns how many path entries it used. */
  private checkOps(req: TxnRequest, path: boolean[], at: number, check: (op: RequestOp) => void): number {
    const ops = path[at] ? req.success : req.failure;
    let used = 1;
    for (const op of ops) {
      if ('txn' in op) used += this.checkOps(op.txn, path, at + used, check);
      else check(op);
    }
    return used;
  }
}

/** A read txn over the store's current view that counts its ranges as etcd's metricsTxnWrite. */
class CountingView implements ReadView {
  ranges = 0;
  constructor(private readonly store: KVStore) {}
  range(key: Buffer, end: RangeEnd, opts: { limit: number; rev: number; countOnly: boolean }): RangeKeysResult {
    this.ranges++;
    return this.store.rangeKeys(key, end, this.store.currentRev, opts);
  }
  end(): void {
    countTxn(this.ranges, 0, 0, 0);
  }
}

function readOnlyTxn(view: ReadView): WriteTxn {
  // A read-only txn never writes; only range is called on it.
  return view as unknown as WriteTxn;
}

function rangeOn(view: ReadView, r: RangeRequest): RangeResponse {
  const filtered = r.minModRevision !== 0 || r.maxModRevision !== 0 || r.minCreateRevision !== 0 || r.maxCreateRevision !== 0;
  let limit = r.limit;
  if (r.sortOrder !== SortOrder.NONE || filtered) limit = 0;
  if (limit > 0) limit++; // one more than asked, to know whether there is more
  const rr = view.range(r.key, toRangeEnd(r.rangeEnd), { limit, rev: r.revision, countOnly: r.countOnly });
  let kvs = rr.kvs;
  if (filtered) {
    kvs = kvs.filter(
      (kv) =>
        !(r.maxModRevision !== 0 && kv.modRevision > r.maxModRevision) &&
        !(r.minModRevision !== 0 && kv.modRevision < r.minModRevision) &&
        !(r.maxCreateRevision !== 0 && kv.createRevision > r.maxCreateRevision) &&
        !(r.minCreateRevision !== 0 && kv.createRevision < r.minCreateRevision),
    );
  }
  let order = r.sortOrder;
  if (r.sortTarget !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  if (order !== SortOrder.NONE && kvs.length > 1) {
    const cmp = sorter(r.sortTarget);
    // Array.prototype.sort is stable, so ties keep key order in both directions, as etcd's sort does.
    kvs.sort(order === SortOrder.DESCEND ? (a, b) => cmp(b, a) : cmp);
  }
  let more = false;
  if (r.limit > 0 && kvs.length > r.limit) {
    kvs.length = r.limit;
    more = true;
  }
  if (r.keysOnly) for (const kv of kvs) kv.value = EMPTY;
  return { revision: rr.rev, kvs, more, count: rr.count };
}

const EMPTY = Buffer.alloc(0);

function sorter(target: number): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}

function putIn(txn: WriteTxn, p: PutRequest): PutResponse {
  let value = p.value;
  let lease = p.lease;
  let prev: KeyValue | undefined;
  if (p.ignoreValue || p.ignoreLease || p.prevKv) {
    prev = txn.range(p.key, undefined, { limit: 0, rev: 0, countOnly: false }).kvs[0];
  }
  if ((p.ignoreValue || p.ignoreLease) && !prev) throw Errors.keyNotFound;
  if (p.ignoreValue) value = prev!.value;
  if (p.ignoreLease) lease = prev!.lease;
  const revision = txn.put(p.key, value, lease);
  return { revision, prevKv: p.prevKv ? prev : undefined };
}

function deleteIn(txn: WriteTxn, d: DeleteRangeRequest): DeleteRangeResponse {
  const end = toRangeEnd(d.rangeEnd);
  const prevKvs = d.prevKv ? txn.range(d.key, end, { limit: 0, rev: 0, countOnly: false }).kvs : [];
  const deleted = txn.deleteRange(d.key, end);
  const revision = deleted !== 0 || txn.changes.length > 0 ? txn.beginRev + 1 : txn.beginRev;
  return { revision, deleted, prevKvs };
}

/** A txn with no put or delete on any path (nested txns included): etcd serves it without a proposal. */
export function isReadOnly(t: TxnRequest): boolean {
  const ro = (ops: RequestOp[]) => ops.every((op) => ('range' in op ? true : 'txn' in op ? isReadOnly(op.txn) : false));
  return ro(t.success) && ro(t.failure);
}

/** The branch taken by the txn and each nested txn on the way, in the order etcd walks them. */
function compareToPath(view: ReadView, t: TxnRequest): boolean[] {
  const ok = t.compare.every((c) => applyCompare(view, c));
  const path = [ok];
  for (const op of ok ? t.success : t.failure) if ('txn' in op) path.push(...compareToPath(view, op.txn));
  return path;
}

const ZERO_KV: KeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };

function applyCompare(view: ReadView, c: Compare): boolean {
  const { kvs } = view.range(c.key, toRangeEnd(c.rangeEnd), { limit: 0, rev: 0, countOnly: false });
  if (kvs.length === 0) return c.target === CompareTarget.VALUE ? false : compareKV(c, ZERO_KV);
  return kvs.every((kv) => compareKV(c, kv));
}

function compareKV(c: Compare, kv: KeyValue): boolean {
  let r: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      r = Buffer.compare(kv.value, c.value);
      break;
    case CompareTarget.CREATE:
      r = cmpBig(BigInt(kv.createRevision), c.number);
      break;
    case CompareTarget.MOD:
      r = cmpBig(BigInt(kv.modRevision), c.number);
      break;
    case CompareTarget.LEASE:
      r = cmpBig(kv.lease, c.number);
      break;
    default:
      r = cmpBig(BigInt(kv.version), c.number);
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return r === 0;
    case CompareResult.NOT_EQUAL:
      return r !== 0;
    case CompareResult.GREATER:
      return r > 0;
    case CompareResult.LESS:
      return r < 0;
  }
  return true;
}

const cmpBig = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

function applyTxn(txn: WriteTxn, t: TxnRequest, path: boolean[], at: number): { resp: TxnResponse; used: number } {
  const succeeded = path[at];
  const ops = succeeded ? t.success : t.failure;
  const responses: ResponseOp[] = [];
  let used = 1;
  for (const op of ops) {
    if ('range' in op) responses.push({ range: rangeOn(txn, op.range) });
    else if ('put' in op) responses.push({ put: putIn(txn, op.put) });
    else if ('deleteRange' in op) responses.push({ deleteRange: deleteIn(txn, op.deleteRange) });
    else {
      const inner = applyTxn(txn, op.txn, path, at + used);
      used += inner.used;
      responses.push({ txn: inner.resp });
    }
  }
  // A nested txn's header revision is left 0 by etcd; the outer one is set by the caller.
  return { resp: { revision: 0, succeeded, responses }, used };
}
