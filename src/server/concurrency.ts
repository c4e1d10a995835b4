import { Errors } from '../errors';
import type { KeyValue } from '../mvcc/key-value';
import { CompareResult, CompareTarget, SortOrder, SortTarget, type RangeRequest, type TxnResponse } from '../mvcc/types';
import { EventType, type WatchBatch } from '../watch/hub';
import type { AuthContext, EtcdServer } from './etcd-server';

// v3lock and v3election as etcd serves them (clientv3/concurrency, run inside the server): a
// contender's key is <name>/<lease in hex>, written with its lease; it holds the lock (or leads) once
// no key under the name has a lower create revision, waiting meanwhile for each older key's deletion.

/** The lease etcd's concurrency.NewSession grants when none is given. */
const SESSION_TTL = 60;

export interface LeaderKey {
  name: Buffer;
  key: Buffer;
  rev: number;
  lease: bigint;
}

const b = (s: string) => Buffer.from(s, 'latin1');
const EMPTY = Buffer.alloc(0);

function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function rangeReq(key: Buffer, over: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key, rangeEnd: EMPTY, limit: 0, revision: 0, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: false,
    countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0, ...over,
  };
}

export class Concurrency {
  constructor(private readonly s: EtcdServer) {}

  private async session(lease: bigint): Promise<bigint> {
    if (lease !== 0n) return lease;
    return (await this.s.leaseGrant(SESSION_TTL, 0n)).leaseId;
  }

  /** Lock: waits until this lease's key under name is the oldest. Returns the header revision and the key. */
  async lock(name: Buffer, leaseIn: bigint, signal: AbortSignal, auth?: AuthContext): Promise<{ revision: number; key: Buffer }> {
    const lease = await this.session(leaseIn);
    const pfx = Buffer.concat([name, b('/')]);
    const key = Buffer.concat([pfx, b(lease.toString(16))]);
    const r = await this.createOrGet(key, EMPTY, lease, auth, pfx);
    let myRev = r.revision;
    if (!r.succeeded) myRev = (r.responses[0] as { range: { kvs: KeyValue[] } }).range.kvs[0].createRevision;
    const owner = (r.responses[1] as { range: { kvs: KeyValue[] } }).range.kvs;
    if (owner.length === 0 || owner[0].createRevision === myRev) return { revision: r.revision, key };
    try {
      const revision = await this.waitDeletes(pfx, myRev - 1, signal, auth);
      return { revision, key };
    } catch (err) {
      // Given up (the caller went away): release the key, as etcd's Mutex.Lock does.
      await this.s.deleteRange({ key, rangeEnd: EMPTY, prevKv: false }, auth).catch(() => {});
      throw err;
    }
  }

  async unlock(key: Buffer, auth?: AuthContext): Promise<number> {
    return (await this.s.deleteRange({ key, rangeEnd: EMPTY, prevKv: false }, auth)).revision;
  }

  async campaign(name: Buffer, leaseIn: bigint, value: Buffer, signal: AbortSignal, auth?: AuthContext): Promise<{ revision: number; leader: LeaderKey }> {
    const lease = await this.session(leaseIn);
    const pfx = Buffer.concat([name, b('/')]);
    const key = Buffer.concat([pfx, b(lease.toString(16))]);
    const r = await this.createOrGet(key, value, lease, auth);
    const leader: LeaderKey = { name, key, rev: r.revision, lease };
    if (!r.succeeded) {
      const kv = (r.responses[0] as { range: { kvs: KeyValue[] } }).range.kvs[0];
      leader.rev = kv.createRevision;
      if (!kv.value.equals(value)) {
        try {
          await this.proclaim(leader, value, auth);
        } catch (err) {
          await this.resign(leader, auth).catch(() => {});
          throw err;
        }
      }
    }
    try {
      await this.waitDeletes(pfx, leader.rev - 1, signal, auth);
    } catch (err) {
      await this.resign(leader, auth).catch(() => {});
      throw err;
    }
    return { revision: r.revision, leader };
  }

  async proclaim(leader: LeaderKey, value: Buffer, auth?: AuthContext): Promise<number> {
    const r = await this.s.txn({
      compare: [{ key: leader.key, rangeEnd: EMPTY, target: CompareTarget.CREATE, result: CompareResult.EQUAL, value: EMPTY, number: BigInt(leader.rev) }],
      success: [{ put: { key: leader.key, value, lease: leader.lease, prevKv: false, ignoreValue: false, ignoreLease: false } }],
      failure: [],
    }, auth);
    if (!r.succeeded) throw Errors.electionNotLeader;
    return r.revision;
  }

  async resign(leader: LeaderKey, auth?: AuthContext): Promise<number> {
    const r = await this.s.txn({
      compare: [{ key: leader.key, rangeEnd: EMPTY, target: CompareTarget.CREATE, result: CompareResult.EQUAL, value: EMPTY, number: BigInt(leader.rev) }],
      success: [{ deleteRange: { key: leader.key, rangeEnd: EMPTY, prevKv: false } }],
      failure: [],
    }, auth);
    return r.revision;
  }

  /** The current leader's key-value: the oldest key under name. */
  leader(name: Buffer, auth?: AuthContext): { revision: number; kv: KeyValue } {
    const pfx = Buffer.concat([name, b('/')]);
    const r = this.firstCreate(pfx, auth);
    if (r.kvs.length === 0) throw Errors.electionNoLeader;
    return { revision: r.revision, kv: r.kvs[0] };
  }

  /**
   * Observe: calls onLeader with the leader now (or the first one to come) and each new value of it,
   * and again for each next leader, until signal aborts.
   */
  async observe(name: Buffer, onLeader: (revision: number, kv: KeyValue) => void, signal: AbortSignal, auth?: AuthContext): Promise<void> {
    const pfx = Buffer.concat([name, b('/')]);
    while (!signal.aborted) {
      const first = this.firstCreate(pfx, auth);
      let kv: KeyValue;
      let rev: number;
      if (first.kvs.length === 0) {
        // Wait for the first put under the prefix.
        const got = await this.nextEvent(pfx, prefixEnd(pfx), first.revision, (e) => e.type === EventType.PUT, signal);
        kv = got.kv;
        rev = got.kv.modRevision;
      } else {
        kv = first.kvs[0];
        rev = first.revision;
      }
      onLeader(rev, kv);
      // Follow this leader's key until it is deleted.
      let from = rev + 1;
      for (;;) {
        const ev = await this.nextEvent(kv.key, undefined, from, () => true, signal);
        if (ev.type === EventType.DELETE) break;
        onLeader(ev.revision, ev.kv);
        from = ev.kv.modRevision + 1;
      }
    }
  }

  private firstCreate(pfx: Buffer, auth: AuthContext | undefined): { revision: number; kvs: KeyValue[] } {
    this.s.checkReadPermission(auth, pfx, prefixEnd(pfx));
    const r = this.s.kv.range(rangeReq(pfx, { rangeEnd: prefixEnd(pfx), sortTarget: SortTarget.CREATE, sortOrder: SortOrder.ASCEND, limit: 1 }));
    return { revision: r.revision, kvs: r.kvs };
  }

  /** Txn: if key does not exist put it (with lease), else get it; plus the owner (first create) of pfx. */
  private async createOrGet(key: Buffer, value: Buffer, lease: bigint, auth: AuthContext | undefined, pfx?: Buffer): Promise<TxnResponse> {
    const owner = pfx ? [{ range: rangeReq(pfx, { rangeEnd: prefixEnd(pfx), sortTarget: SortTarget.CREATE, sortOrder: SortOrder.ASCEND, limit: 1 }) }] : [];
    return this.s.txn({
      compare: [{ key, rangeEnd: EMPTY, target: CompareTarget.CREATE, result: CompareResult.EQUAL, value: EMPTY, number: 0n }],
      success: [{ put: { key, value, lease, prevKv: false, ignoreValue: false, ignoreLease: false } }, ...owner],
      failure: [{ range: rangeReq(key) }, ...owner],
    }, auth);
  }

  /** Waits until no key under pfx has a create revision ≤ maxCreateRev (etcd's waitDeletes). */
  private async waitDeletes(pfx: Buffer, maxCreateRev: number, signal: AbortSignal, auth: AuthContext | undefined): Promise<number> {
    for (;;) {
      this.s.checkReadPermission(auth, pfx, prefixEnd(pfx));
      const r = this.s.kv.range(rangeReq(pfx, {
        rangeEnd: prefixEnd(pfx), maxCreateRevision: maxCreateRev, sortTarget: SortTarget.CREATE, sortOrder: SortOrder.DESCEND, limit: 1,
      }));
      if (r.kvs.length === 0) return r.revision;
      await this.nextEvent(r.kvs[0].key, undefined, r.revision, (e) => e.type === EventType.DELETE, signal);
    }
  }

  /** The first event on [key, end) from revision `from` that satisfies want. */
  private nextEvent(
    key: Buffer,
    end: Buffer | undefined,
    from: number,
    want: (e: { type: number }) => boolean,
    signal: AbortSignal,
  ): Promise<{ type: number; kv: KeyValue; revision: number }> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(Errors.canceled);
      const hub = this.s.watchHub;
      let done = false;
      const finish = () => {
        done = true;
        hub.cancel(w);
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        if (done) return;
        finish();
        reject(Errors.canceled);
      };
      const sink = {
        send: (batch: WatchBatch) => {
          if (done) return true;
          for (const e of batch.events) {
            if (want(e)) {
              finish();
              resolve({ type: e.type, kv: e.kv, revision: Math.max(batch.revision, e.kv.modRevision) });
              return true;
            }
          }
          return true;
        },
      };
      const w = hub.watch(-1n, key.toString('latin1'), end === undefined ? undefined : end.toString('latin1'), from, {}, sink);
      signal.addEventListener('abort', onAbort);
    });
  }
}
