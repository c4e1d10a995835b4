// A small client for cluster fault tests: put / get / cas / delete on one chosen member over gRPC, each
// call with its own deadline, answering a result or a typed error (never throwing for a server or
// network failure), and `recordOp` to run one op into a HistoryRecorder for the linearizability checker.
import { EtcdGrpc, statusName, type DeleteRangeResponse, type PutResponse, type RangeResponse, type TxnResponse } from './etcd-grpc';
import type { HistoryRecorder, OpInput, OpOutput } from './linearizability';

export interface ClientError {
  /** gRPC status code (4 DEADLINE_EXCEEDED, 14 UNAVAILABLE, ...). */
  code: number;
  codeName: string;
  /** The server's message (etcd's, e.g. "etcdserver: request timed out") or the transport's. */
  details: string;
}

export type ClientResult<T> = { ok: true; value: T; revision: number } | { ok: false; error: ClientError };

export interface ClusterClientOptions {
  /** Deadline of each call (default 2000 ms). */
  timeoutMs?: number;
}

export class ClusterClient {
  readonly endpoint: string;
  readonly timeoutMs: number;
  private readonly grpc: EtcdGrpc;

  constructor(endpoint: string, opts: ClusterClientOptions = {}) {
    this.endpoint = endpoint;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.grpc = new EtcdGrpc(endpoint);
  }

  put(key: string, value: string): Promise<ClientResult<undefined>> {
    return this.run<PutResponse, undefined>('Put', { key: Buffer.from(key), value: Buffer.from(value) }, () => undefined);
  }

  /** A linearizable read unless serializable is set. */
  get(key: string, opts: { serializable?: boolean } = {}): Promise<ClientResult<string | null>> {
    return this.run<RangeResponse, string | null>('Range', { key: Buffer.from(key), serializable: !!opts.serializable }, (r) =>
      r.kvs.length ? r.kvs[0].value.toString() : null,
    );
  }

  /**
   * Writes `value` iff the key holds `expected` (null: the key does not exist, compared as
   * create_revision = 0, as etcd's clients do); answers whether it did.
   */
  cas(key: string, expected: string | null, value: string): Promise<ClientResult<boolean>> {
    const k = Buffer.from(key);
    const compare =
      expected === null
        ? { key: k, result: 'EQUAL', target: 'CREATE', create_revision: 0 }
        : { key: k, result: 'EQUAL', target: 'VALUE', value: Buffer.from(expected) };
    return this.run<TxnResponse, boolean>(
      'Txn',
      { compare: [compare], success: [{ request_put: { key: k, value: Buffer.from(value) } }], failure: [] },
      (r) => r.succeeded,
    );
  }

  /** Answers whether the key existed. */
  delete(key: string): Promise<ClientResult<boolean>> {
    return this.run<DeleteRangeResponse, boolean>('DeleteRange', { key: Buffer.from(key) }, (r) => Number(r.deleted) > 0);
  }

  /** Runs one op of the checker's model. */
  exec(input: OpInput): Promise<ClientResult<OpOutput>> {
    switch (input.kind) {
      case 'get':
        return this.get(input.key);
      case 'put':
        return this.put(input.key, input.value);
      case 'cas':
        return this.cas(input.key, input.expected, input.value);
      case 'delete':
        return this.delete(input.key);
    }
  }

  close(): void {
    this.grpc.close();
  }

  private async run<R extends { header: { revision: string } }, T>(method: string, req: unknown, pick: (r: R) => T): Promise<ClientResult<T>> {
    try {
      const r = await this.grpc.call<R>('kv', method, req, this.timeoutMs);
      return { ok: true, value: pick(r), revision: Number(r.header.revision) };
    } catch (e) {
      const err = e as { code?: unknown; details?: unknown; message?: unknown };
      if (typeof err?.code !== 'number') throw e; // a bug here, not a server's answer
      return { ok: false, error: { code: err.code, codeName: statusName(err.code), details: String(err.details ?? err.message ?? '') } };
    }
  }
}

/**
 * Runs one op through `client` and records it: its answer, or, on any error, an unknown outcome (a write
 * that failed may still have been committed: etcd's "request timed out", a deadline, a dropped
 * connection; counting every error as unknown never makes the checker report a false violation).
 */
export async function recordOp(
  history: HistoryRecorder,
  clientId: number | string,
  client: ClusterClient,
  input: OpInput,
): Promise<ClientResult<OpOutput>> {
  const op = history.call(clientId, input);
  const r = await client.exec(input);
  if (r.ok) history.ret(op, r.value);
  else history.unknown(op);
  return r;
}
