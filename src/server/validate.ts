import { Errors } from '../errors';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../mvcc/types';

// Checks that need no state, done before a request is proposed (etcd's v3rpc key.go).

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
}

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
  if (r.ignoreValue && r.value.length !== 0) throw Errors.valueProvided;
  if (r.ignoreLease && r.lease !== 0n) throw Errors.leaseProvided;
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
}

export function checkTxn(r: TxnRequest, maxTxnOps: number): void {
  checkTxnOps(r, maxTxnOps);
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkTxnOps(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps;
  for (const c of r.compare) if (c.key.length === 0) throw Errors.emptyKey;
  for (const op of r.success) checkOp(op, maxTxnOps - opc);
  for (const op of r.failure) checkOp(op, maxTxnOps - opc);
}

function checkOp(op: RequestOp, maxTxnOps: number): void {
  if ('range' in op) checkRange(op.range);
  else if ('put' in op) checkPut(op.put);
  else if ('deleteRange' in op) checkDelete(op.deleteRange);
  else checkTxnOps(op.txn, maxTxnOps);
}

/** A deleted interval [lo, hi) in latin1 strings; hi '' = unbounded; a point is [k, k+"\0"). */
interface Interval {
  lo: string;
  hi: string;
}

const UNBOUNDED = '';

function contains(iv: Interval, k: string): boolean {
  return k >= iv.lo && (iv.hi === UNBOUNDED || k < iv.hi);
}

function deleteInterval(key: Buffer, rangeEnd: Buffer): Interval {
  const lo = key.toString('latin1');
  if (rangeEnd.length === 0) return { lo, hi: lo + '\0' };
  // etcd's affine interval: "\0" as end means every key from lo on.
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { lo, hi: UNBOUNDED };
  return { lo, hi: rangeEnd.toString('latin1') };
}

/**
 * etcd's checkIntervals: a key may not be put twice in a txn's branch (nested txns included), nor put
 * and deleted; the two branches of a nested txn may each put the same key.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) if ('deleteRange' in op) dels.push(deleteInterval(op.deleteRange.key, op.deleteRange.rangeEnd));
  const deleted = (k: string) => dels.some((iv) => contains(iv, k));

  const puts = new Set<string>();
  for (const op of ops) {
    if (!('txn' in op)) continue;
    const then = checkIntervals(op.txn.success);
    const els = checkIntervals(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(k)) throw Errors.duplicateKey;
      puts.add(k);
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey;
      if (deleted(k)) throw Errors.duplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const op of ops) {
    if (!('put' in op)) continue;
    const k = op.put.key.toString('latin1');
    if (puts.has(k) || deleted(k)) throw Errors.duplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}
