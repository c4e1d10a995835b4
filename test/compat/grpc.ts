// A minimal raw gRPC client for the KV service, for request fields etcdctl 3.4 cannot send
// (count_only, min/max_mod_revision, min/max_create_revision, Compare.range_end, LEASE compares,
// nested txns). Responses are decoded with every field present (defaults: true), so a server that
// encodes an explicit zero and one that omits it compare equal, as they do for real clients.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { resolve } from 'node:path';

export type KvMethod = 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact';

const PROTO_ROOT = resolve(__dirname, '..', '..', 'proto');

let kvCtor: grpc.ServiceClientConstructor | undefined;
function kvService(): grpc.ServiceClientConstructor {
  if (!kvCtor) {
    const def = protoLoader.loadSync('etcd/etcdserver/etcdserverpb/rpc.proto', {
      includeDirs: [PROTO_ROOT],
      keepCase: true,
      longs: String,
      enums: String,
      bytes: String, // base64, like etcdctl -w json
      defaults: true,
      oneofs: false,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      etcdserverpb: { KV: grpc.ServiceClientConstructor };
    };
    kvCtor = pkg.etcdserverpb.KV;
  }
  return kvCtor;
}

export interface GrpcResult {
  ok?: unknown;
  error?: { code: string; details: string };
}

export class KvClient {
  private readonly client: grpc.Client;
  constructor(endpoint: string) {
    const Ctor = kvService();
    this.client = new Ctor(endpoint, grpc.credentials.createInsecure());
  }

  call(method: KvMethod, request: unknown, timeoutMs = 5_000): Promise<GrpcResult> {
    return new Promise((res) => {
      const fn = (this.client as unknown as Record<string, Function>)[method].bind(this.client);
      fn(request, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, resp: unknown) => {
        if (err) res({ error: { code: grpc.status[err.code] ?? String(err.code), details: err.details } });
        else res({ ok: resp });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
