import { join } from 'node:path';
import { Errors } from '../errors';
import { KV } from '../mvcc/kv';
import { KVStore } from '../mvcc/kv-store';
import type {
  DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
  RequestOp, TxnRequest, TxnResponse,
} from '../mvcc/types';
import { openBackend, type Backend } from '../storage';
import { AlarmStore, AlarmType } from './alarms';
import { effectiveQuota, type ServerConfig } from './config';
import { clusterId, memberId } from './identity';
import { checkDelete, checkPut, checkRange, checkTxn } from './validate';

const META_CONSISTENT_INDEX = Buffer.from('consistent_index');
const META_TERM = Buffer.from('term');
/** etcd's estimate of a put's cost beyond its key and value (quota.go). */
const KV_OVERHEAD = 256;

export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/**
 * The request pipeline of a single member: checks, quota, then the write path (propose → apply →
 * durable → answer). It is a cluster of one; the raft layer will take over `propose` without changing
 * what api/ sees.
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly raftTerm: number;
  /** Index of the last applied proposal (etcd's consistent index). */
  appliedIndex: number;
  private closed = false;
  private readonly quota: number;

  private constructor(
    readonly cfg: ServerConfig,
    readonly backend: Backend,
    readonly store: KVStore,
    readonly kv: KV,
    readonly alarms: AlarmStore,
    ids: { member: bigint; cluster: bigint; term: number; index: number },
  ) {
    this.memberId = ids.member;
    this.clusterId = ids.cluster;
    this.raftTerm = ids.term;
    this.appliedIndex = ids.index;
    this.quota = effectiveQuota(cfg);
  }

  static async open(cfg: ServerConfig): Promise<EtcdServer> {
    const backend = await openBackend(cfg.backend, { dir: join(cfg.dataDir, 'member', 'snap'), noSync: cfg.unsafeNoFsync });
    const store = await KVStore.open(backend, {
      compaction: { batchLimit: cfg.compactionBatchLimit, sleepMs: cfg.compactionSleepIntervalMs },
    });
    const member = memberId(cfg.initialAdvertisePeerUrls, cfg.initialClusterToken);
    const cluster = clusterId([member]);
    // Each start is a new term, as a restarted single member elects itself again.
    const termBuf = backend.get('meta', META_TERM);
    const term = termBuf ? Number(termBuf.readBigUInt64BE(0)) + 1 : 2;
    backend.put('meta', META_TERM, u64(term));
    const idxBuf = backend.get('meta', META_CONSISTENT_INDEX);
    const index = idxBuf ? Number(idxBuf.readBigUInt64BE(0)) : 0;
    const alarms = await AlarmStore.open(backend);
    await backend.commit();
    return new EtcdServer(cfg, backend, store, new KV(store), alarms, { member, cluster, term, index });
  }

  header(revision = this.store.currentRev): ResponseHeader {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.raftTerm };
  }

  members(): Member[] {
    return [{
      id: this.memberId,
      name: this.cfg.name,
      peerUrls: this.cfg.initialAdvertisePeerUrls,
      clientUrls: this.cfg.advertiseClientUrls,
      isLearner: false,
    }];
  }

  // --- KV ---

  range(req: RangeRequest): RangeResponse {
    this.assertOpen();
    checkRange(req);
    // One member: every applied write is committed, so serializable and linearizable reads agree.
    return this.kv.range(req);
  }

  put(req: PutRequest): Promise<PutResponse> {
    this.assertOpen();
    checkPut(req);
    this.checkQuota(KV_OVERHEAD + req.key.length + req.value.length);
    return this.propose(() => this.kv.put(req));
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    this.assertOpen();
    checkDelete(req);
    return this.propose(() => this.kv.deleteRange(req));
  }

  txn(req: TxnRequest): Promise<TxnResponse> | TxnResponse {
    this.assertOpen();
    checkTxn(req, this.cfg.maxTxnOps);
    if (isReadOnly(req)) return this.kv.txn(req); // etcd serves read-only txns without a proposal
    this.checkQuota(txnCost(req));
    return this.propose(() => this.kv.txn(req));
  }

  /** Compaction; with physical, answers only once the old revisions are gone from the backend. */
  async compact(revision: number, physical: boolean): Promise<number> {
    this.assertOpen();
    let done: Promise<void> | undefined;
    const rev = await this.propose(() => {
      const r = this.kv.compact(revision);
      done = r.done;
      return r.revision;
    });
    if (physical) await done;
    else done!.catch((err) => console.error(`compaction at ${revision} failed: ${err}`));
    return rev;
  }

  // --- write path ---

  /**
   * Applies a request in order and answers once it is durable. Writes that arrive while one backend
   * commit runs share the next one (group commit).
   */
  private async propose<T>(apply: () => T): Promise<T> {
    const result = apply();
    this.appliedIndex++;
    this.backend.put('meta', META_CONSISTENT_INDEX, u64(this.appliedIndex));
    await this.backend.commit();
    return result;
  }

  private checkQuota(cost: number): void {
    if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
    if (this.backend.sizeBytes() + cost >= this.quota) {
      this.alarms.activate(this.memberId, AlarmType.NOSPACE);
      throw Errors.noSpace;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw Errors.stopped;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function isReadOnly(t: TxnRequest): boolean {
  const ro = (ops: RequestOp[]): boolean => ops.every((op) => 'range' in op || ('txn' in op && isReadOnly(op.txn)));
  return ro(t.success) && ro(t.failure);
}

function txnCost(t: TxnRequest): number {
  const cost = (ops: RequestOp[]): number =>
    ops.reduce((sum, op) => sum + ('put' in op ? KV_OVERHEAD + op.put.key.length + op.put.value.length : 'txn' in op ? txnCost(op.txn) : 0), 0);
  return Math.max(cost(t.success), cost(t.failure));
}
