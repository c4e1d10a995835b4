import { Errors } from '../errors';
import { isReadOnly, type KV } from '../mvcc/kv';
import type { DeleteRangeResponse, PutResponse, TxnResponse } from '../mvcc/types';
import { AlarmType, type Alarm, type AlarmStore } from './alarms';
import type { InternalRequest } from './internal-request';
import type { Lessor } from '../lease/lessor';

export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;

export type ApplyResult =
  | PutResponse
  | DeleteRangeResponse
  | TxnResponse
  | { revision: number; compacted: Promise<void> }
  | { alarms: Alarm[] }
  | { leaseId: bigint; ttl: number }
  | { revision: number };

/**
 * Applies committed requests to the state machine (mvcc, alarms), in log order. Deterministic: the
 * same entries on the same state give the same state, which is what makes WAL replay correct.
 * Errors it throws are the request's answer (etcd's apply errors); the entry stays applied.
 */
export class Applier {
  constructor(private readonly kv: KV, private readonly alarms: AlarmStore, private readonly lessor: Lessor) {}

  /** Member attributes are the server's (membership), not the state machine's. */
  apply(r: Exclude<InternalRequest, { memberAttributes: unknown }>): ApplyResult {
    if ('put' in r) {
      if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
      return this.kv.put(r.put);
    }
    if ('deleteRange' in r) return this.kv.deleteRange(r.deleteRange);
    if ('txn' in r) {
      if (this.alarms.has(AlarmType.NOSPACE) && !isReadOnly(r.txn)) throw Errors.noSpace;
      return this.kv.txn(r.txn);
    }
    if ('compaction' in r) {
      const { revision, done } = this.kv.compact(r.compaction.revision);
      return { revision, compacted: done };
    }
    if ('leaseGrant' in r) {
      if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
      const lease = this.lessor.grant(r.leaseGrant.id, r.leaseGrant.ttl);
      return { leaseId: lease.id, ttl: lease.ttl };
    }
    if ('leaseRevoke' in r) {
      this.lessor.revoke(r.leaseRevoke.id, this.kv.store);
      return { revision: this.kv.rev };
    }
    if ('leaseCheckpoint' in r) {
      for (const c of r.leaseCheckpoint.checkpoints) this.lessor.checkpoint(c.id, c.remainingTtl);
      return { revision: this.kv.rev };
    }
    const a = r.alarm;
    switch (a.action) {
      case AlarmAction.ACTIVATE:
        if (a.alarm === AlarmType.NONE) return { alarms: [] };
        return { alarms: [this.alarms.activate(a.memberId, a.alarm)] };
      case AlarmAction.DEACTIVATE: {
        const removed = this.alarms.deactivate(a.memberId, a.alarm);
        return { alarms: removed ? [removed] : [] };
      }
      default:
        return { alarms: this.alarms.list().filter((x) => a.alarm === AlarmType.NONE || x.alarm === a.alarm) };
    }
  }
}

