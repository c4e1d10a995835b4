import type { AuthInfo, AuthStore } from '../auth';
import type { EtcdError } from '../errors';
import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types';
import type { Lessor } from '../lease/lessor';

/**
 * The permission checks of a write, as etcd's authApplierV3 makes them: before proposing (a refused
 * request costs no log entry) and again when the entry is applied, against the auth store as it is
 * then (a role revoked meanwhile, or a token older than the store's revision, refuses it). Each returns
 * the error to answer with, or undefined.
 *
 * Two choices safer than etcd 3.4's: a nested txn's requests are checked too (3.4 skips them), and a txn's
 * put with prev_kv needs read permission as a plain put does.
 */
export class WriteAuthChecks {
  constructor(private readonly store: AuthStore, private readonly lessor: Lessor) {}

  put(info: AuthInfo | undefined, req: PutRequest): EtcdError | undefined {
    return this.store.isPutPermitted(info, req.key)
      ?? this.leasePuts(info, req.lease)
      ?? (req.prevKv ? this.store.isRangePermitted(info, req.key) : undefined);
  }

  deleteRange(info: AuthInfo | undefined, req: DeleteRangeRequest): EtcdError | undefined {
    return this.store.isDeleteRangePermitted(info, req.key, req.rangeEnd)
      ?? (req.prevKv ? this.store.isRangePermitted(info, req.key, req.rangeEnd) : undefined);
  }

  /** etcd's checkTxnAuth: every compare's range (read), then the requests of both branches. */
  txn(info: AuthInfo | undefined, t: TxnRequest): EtcdError | undefined {
    for (const c of t.compare) {
      const err = this.store.isRangePermitted(info, c.key, c.rangeEnd);
      if (err) return err;
    }
    for (const ops of [t.success, t.failure]) {
      for (const op of ops) {
        const err = 'range' in op ? this.store.isRangePermitted(info, op.range.key, op.range.rangeEnd)
          : 'put' in op ? this.store.isPutPermitted(info, op.put.key) ?? (op.put.prevKv ? this.store.isRangePermitted(info, op.put.key) : undefined)
          : 'deleteRange' in op ? this.deleteRange(info, op.deleteRange)
          : this.txn(info, op.txn);
        if (err) return err;
      }
    }
    return undefined;
  }

  /** etcd's checkLeasePuts: write permission on every key attached to the lease (revoke, or put with it). */
  leasePuts(info: AuthInfo | undefined, id: bigint): EtcdError | undefined {
    if (id === 0n) return undefined;
    for (const k of this.lessor.leases.get(id)?.keys ?? []) {
      const err = this.store.isPutPermitted(info, Buffer.from(k, 'latin1'));
      if (err) return err;
    }
    return undefined;
  }
}
