// etcd's KV and Maintenance gRPC services as plain promise calls with a deadline, for the cluster harness
// and ClusterClient. Loaded from proto/ with @grpc/proto-loader, as test/api/grpc-client.ts does.
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_DIR = resolve(__dirname, '..', '..', 'proto');

const definition = protoLoader.loadSync(join('etcd', 'etcdserver', 'etcdserverpb', 'rpc.proto'), {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String, // uint64 ids and revisions as decimal strings
  enums: String,
  defaults: true,
  oneofs: true,
});
const pkg = grpc.loadPackageDefinition(definition).etcdserverpb as grpc.GrpcObject;

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}
export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  /** The member this one believes leads ("0": none). */
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
  errors: string[];
  isLearner: boolean;
}
export interface KeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
}
export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  count: string;
}
export interface PutResponse {
  header: ResponseHeader;
}
export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: string;
}
export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
}

type Unary = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;

// Reconnect quickly after a member restarts (grpc-js backs off up to 120 s by default).
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.min_reconnect_backoff_ms': 100,
};

/** One channel to one member, with the KV, Maintenance and Cluster services on it. */
export class EtcdGrpc {
  private readonly kv: grpc.Client;
  private readonly maintenance: grpc.Client;
  private readonly cluster: grpc.Client;

  constructor(readonly endpoint: string) {
    const KV = pkg.KV as grpc.ServiceClientConstructor;
    this.kv = new KV(endpoint, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    // The same channel for both services.
    const Maintenance = pkg.Maintenance as grpc.ServiceClientConstructor;
    this.maintenance = new Maintenance(endpoint, grpc.credentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      channelOverride: this.kv.getChannel(),
    });
    const Cluster = pkg.Cluster as grpc.ServiceClientConstructor;
    this.cluster = new Cluster(endpoint, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, channelOverride: this.kv.getChannel() });
  }

  /** A unary call; with requireLeader, the metadata clientv3.WithRequireLeader adds ("hasleader"). */
  call<T>(service: 'kv' | 'maintenance' | 'cluster', method: string, req: unknown, timeoutMs: number, opts: { requireLeader?: boolean } = {}): Promise<T> {
    const client = service === 'kv' ? this.kv : service === 'maintenance' ? this.maintenance : this.cluster;
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    const md = new grpc.Metadata();
    if (opts.requireLeader) md.set('hasleader', 'true');
    return new Promise<T>((res, rej) => {
      fn(req, md, { deadline: Date.now() + timeoutMs }, (err, out) => (err ? rej(err) : res(out as T)));
    });
  }

  status(timeoutMs: number): Promise<StatusResponse> {
    return this.call('maintenance', 'Status', {}, timeoutMs);
  }

  /** The member list as this member has applied it (names and client URLs as published). */
  memberList(timeoutMs: number): Promise<{ members: { ID: string; name: string; clientURLs: string[]; isLearner?: boolean }[] }> {
    return this.call('cluster', 'MemberList', {}, timeoutMs);
  }

  close(): void {
    this.kv.close();
    this.maintenance.close();
    this.cluster.close();
  }
}

export const GrpcStatus = grpc.status;

/** gRPC's name for a status code (14 → "UNAVAILABLE"). */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}
