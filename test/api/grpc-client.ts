// Shared helpers for the API tests (test/api/*.test.ts):
//  - which servers to run against (env PLINTH_API_TARGETS) and how to start each one;
//  - a raw @grpc/grpc-js client for etcd's KV service, built from proto/, so that tests can
//    assert exact gRPC status codes and messages and send hand-made (even malformed) bytes.
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ETCD_AVAILABLE, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

export const ALL_TARGETS = ['etcd', 'plinth-lmdb', 'plinth-leveldb', 'plinth-memory'] as const;
export type ApiTarget = (typeof ALL_TARGETS)[number];

/**
 * The servers every API test runs against: env PLINTH_API_TARGETS (comma list), else all three
 * Plinth backends plus real etcd when the etcd binary is installed.
 */
export function apiTargets(): ApiTarget[] {
  const raw = (process.env.PLINTH_API_TARGETS ?? '').trim();
  if (!raw) {
    const plinth: ApiTarget[] = ['plinth-lmdb', 'plinth-leveldb', 'plinth-memory'];
    return ETCD_AVAILABLE ? [...plinth, 'etcd'] : plinth;
  }
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(ALL_TARGETS as readonly string[]).includes(n)) {
      throw new Error(`PLINTH_API_TARGETS: unknown target '${n}' (known: ${ALL_TARGETS.join(', ')})`);
    }
  }
  return [...new Set(names)] as ApiTarget[];
}

/** Starts a fresh server (fresh data dir, loopback, free port) for a target. */
export function startTarget(target: ApiTarget, extraArgs: string[] = []): Promise<RunningServer> {
  switch (target) {
    case 'etcd':
      return startEtcd(extraArgs);
    case 'plinth-lmdb':
      return startPlinth({ backend: 'lmdb', extraArgs });
    case 'plinth-leveldb':
      return startPlinth({ backend: 'leveldb', extraArgs });
    case 'plinth-memory':
      return startPlinth({ backend: 'memory', extraArgs });
  }
}

// ---------------------------------------------------------------------------------------------
// Raw gRPC client
// ---------------------------------------------------------------------------------------------

const PROTO_DIR = resolve(__dirname, '..', '..', 'proto');

/** etcd's rpc.proto, loaded the same way the server is expected to load it. */
export const packageDefinition = protoLoader.loadSync(join('etcd', 'etcdserver', 'etcdserverpb', 'rpc.proto'), {
  includeDirs: [PROTO_DIR],
  keepCase: true, // snake_case field names as on the wire (mod_revision, prev_kv, ...)
  longs: String, // int64 -> decimal string
  enums: String,
  defaults: true,
  oneofs: true,
});

const etcdserverpb = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as grpc.GrpcObject;

/** Gap every unary call is allowed before it fails with DEADLINE_EXCEEDED (never hang a test). */
export const CALL_TIMEOUT_MS = 15_000;

// Minimal shapes of the messages (as decoded with the options above). Requests accept numbers
// or strings for int64 fields; responses always carry int64 as decimal strings.
export type Bytes = Buffer | Uint8Array | string;
export type Int64 = number | string;

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}
export interface KeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}
export interface RangeRequest {
  key: Bytes;
  range_end?: Bytes;
  limit?: Int64;
  revision?: Int64;
  sort_order?: 'NONE' | 'ASCEND' | 'DESCEND';
  sort_target?: 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: Int64;
  max_mod_revision?: Int64;
  min_create_revision?: Int64;
  max_create_revision?: Int64;
}
export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}
export interface PutRequest {
  key: Bytes;
  value?: Bytes;
  lease?: Int64;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}
export interface PutResponse {
  header: ResponseHeader;
  prev_kv: KeyValue | null;
}
export interface DeleteRangeRequest {
  key: Bytes;
  range_end?: Bytes;
  prev_kv?: boolean;
}
export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: string;
  prev_kvs: KeyValue[];
}
export interface Compare {
  key: Bytes;
  range_end?: Bytes;
  result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
  target: 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Bytes;
  lease?: Int64;
}
export type RequestOp =
  | { request_range: RangeRequest }
  | { request_put: PutRequest }
  | { request_delete_range: DeleteRangeRequest }
  | { request_txn: TxnRequest };
export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}
export interface ResponseOp {
  response: 'response_range' | 'response_put' | 'response_delete_range' | 'response_txn';
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}
export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}
export interface CompactionRequest {
  revision: Int64;
  physical?: boolean;
}
export interface CompactionResponse {
  header: ResponseHeader;
}

export type KvMethod = 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact';

type UnaryFn = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;

/** Promise wrapper over the generated etcdserverpb.KV client, plus raw-bytes calls. */
export class RawKv {
  readonly endpoint: string;
  private readonly client: grpc.Client;
  private readonly raw: grpc.Client;

  constructor(endpoint: string) {
    this.endpoint = endpoint;
    const Ctor = etcdserverpb.KV as grpc.ServiceClientConstructor;
    // No client-side size limits: the server's limits are what the tests probe.
    const opts: grpc.ChannelOptions = {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    };
    this.client = new Ctor(endpoint, grpc.credentials.createInsecure(), opts);
    this.raw = new grpc.Client(endpoint, grpc.credentials.createInsecure(), opts);
  }

  call<Res>(method: KvMethod, req: unknown): Promise<Res> {
    const fn = (this.client as unknown as Record<string, UnaryFn>)[method].bind(this.client);
    return new Promise<Res>((res, rej) => {
      fn(req, new grpc.Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, out) =>
        err ? rej(err) : res(out as Res),
      );
    });
  }

  range(req: RangeRequest): Promise<RangeResponse> {
    return this.call('Range', req);
  }
  put(req: PutRequest): Promise<PutResponse> {
    return this.call('Put', req);
  }
  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.call('DeleteRange', req);
  }
  txn(req: TxnRequest): Promise<TxnResponse> {
    return this.call('Txn', req);
  }
  compact(req: CompactionRequest): Promise<CompactionResponse> {
    return this.call('Compact', req);
  }

  /**
   * Sends `bytes` verbatim as the request message of /etcdserverpb.KV/<method> (the serializer
   * ignores its argument), and returns the raw response bytes.
   */
  rawUnary(method: KvMethod, bytes: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((res, rej) => {
      this.raw.makeUnaryRequest<null, Buffer>(
        `/etcdserverpb.KV/${method}`,
        () => bytes,
        (b: Buffer) => b,
        null,
        new grpc.Metadata(),
        { deadline: Date.now() + CALL_TIMEOUT_MS },
        (err, out) => (err ? rej(err) : res(out!)),
      );
    });
  }

  /** Current store revision (header of a Range on a key nobody writes). */
  async revision(): Promise<number> {
    const r = await this.range({ key: Buffer.from('\u0000plinth-test-revision-probe'), count_only: true });
    return Number(r.header.revision);
  }

  close(): void {
    this.client.close();
    this.raw.close();
  }
}

/** The protobuf encoding of a KV request message, as the server will receive it. */
export function serializeRequest(method: KvMethod, req: unknown): Buffer {
  const def = packageDefinition['etcdserverpb.KV'] as protoLoader.ServiceDefinition;
  return def[method].requestSerialize(req as object);
}

/** Size in bytes of the protobuf encoding of a KV request message. */
export function serializedSize(method: KvMethod, req: unknown): number {
  return serializeRequest(method, req).length;
}

/** Awaits a call that must fail and returns its gRPC error; fails the test if it succeeded. */
export async function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  let out: unknown;
  try {
    out = await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (typeof err?.code !== 'number') throw e;
    return err;
  }
  throw new Error(`expected a gRPC error, got success: ${JSON.stringify(out)?.slice(0, 300)}`);
}

export const Status = grpc.status;
