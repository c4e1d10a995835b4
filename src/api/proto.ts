import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// etcd's wire contract, loaded from proto/ (same packages, names and field numbers as etcd 3.4).

const PROTO_DIR = join(__dirname, '..', '..', '..', 'proto');

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String, // int64 ids (lease, member, cluster) exceed 2^53
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

export function loadEtcdProtos(): grpc.GrpcObject {
  cached ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(
      [
        'etcd/etcdserver/etcdserverpb/rpc.proto',
        'etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto',
        'etcd/etcdserver/api/v3election/v3electionpb/v3election.proto',
      ],
      LOADER_OPTIONS,
    ),
  );
  return cached;
}

/** Size in bytes of a decoded request as it came off the wire (for etcd's request-size limit). */
export const WIRE_SIZE = Symbol('wireSize');

/** A service definition from the protos, whose request decoders remember each message's wire size. */
export function serviceDefinition(pkg: string, service: string): grpc.ServiceDefinition {
  const root = loadEtcdProtos() as Record<string, any>;
  const ctor = root[pkg][service] as { service: grpc.ServiceDefinition };
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const [name, m] of Object.entries(ctor.service)) {
    const decode = m.requestDeserialize;
    def[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        const msg = decode(buf);
        msg[WIRE_SIZE] = buf.length;
        return msg;
      },
    };
  }
  return def as grpc.ServiceDefinition;
}
