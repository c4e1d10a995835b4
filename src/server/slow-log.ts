import type { InternalRequest } from './internal-request';
import type { RangeRequest } from '../mvcc/types';

import type { Log } from '../log';
import { goDuration } from '../mvcc/kv-store';

// etcd's "apply request took too long" warning (etcdserver/util.go warnOfExpensiveGenericRequest): one
// line per request slower than the threshold, through the server's logger, with etcd's fields.

const quote = (b: Buffer) => JSON.stringify(b.toString('latin1'));

export function describeRequest(r: InternalRequest | { range: RangeRequest }): string {
  if ('range' in r) return `key:${quote(r.range.key)} range_end:${quote(r.range.rangeEnd)} limit:${r.range.limit} revision:${r.range.revision}`;
  // Values are not logged, only their size (as etcd's redacted request string).
  if ('put' in r) return `key:${quote(r.put.key)} value_size:${r.put.value.length} lease:${r.put.lease}`;
  if ('deleteRange' in r) return `key:${quote(r.deleteRange.key)} range_end:${quote(r.deleteRange.rangeEnd)}`;
  if ('txn' in r) return `compare:<${r.txn.compare.length}> success:<${r.txn.success.length}> failure:<${r.txn.failure.length}>`;
  if ('compaction' in r) return `revision:${r.compaction.revision} physical:${r.compaction.physical}`;
  if ('leaseGrant' in r) return `lease_grant:<ID:${r.leaseGrant.id} TTL:${r.leaseGrant.ttl}>`;
  if ('leaseRevoke' in r) return `lease_revoke:<ID:${r.leaseRevoke.id}>`;
  if ('leaseCheckpoint' in r) return `lease_checkpoint:<${r.leaseCheckpoint.checkpoints.length}>`;
  if ('auth' in r) return `${r.auth.kind}:<>`;
  if ('memberAttributes' in r) return `member_attributes:<name:${JSON.stringify(r.memberAttributes.name)}>`;
  return `alarm:<action:${r.alarm.action} alarm:${r.alarm.alarm}>`;
}

/** True if the request started at startMs has run longer than thresholdMs (cheap: on every request). */
export function isSlow(startMs: number, thresholdMs: number): boolean {
  return performance.now() - startMs > thresholdMs;
}

/** Logs a slow request as etcd's warnOfExpensiveGenericRequest does; called only once isSlow said so. */
export function warnSlow(log: Log, thresholdMs: number, startMs: number, prefix: string, request: string, response: string, err?: unknown): void {
  log('warn', 'apply request took too long', {
    took: goDuration(performance.now() - startMs),
    'expected-duration': goDuration(thresholdMs),
    prefix,
    request,
    response,
    ...(err ? { error: (err as Error).message } : {}),
  });
}
