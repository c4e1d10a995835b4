import * as grpc from '@grpc/grpc-js';
import { GRPC_OVERHEAD_BYTES } from '../server/config';
import type { EtcdServer } from '../server/etcd-server';
import { clusterService } from './cluster-service';
import { kvService } from './kv-service';
import { maintenanceService } from './maintenance-service';
import { serviceDefinition } from './proto';

/** The gRPC front of a server: etcd's services on the given listen URLs (plain http only for now). */
export async function startGrpc(s: EtcdServer, urls: URL[]): Promise<{ server: grpc.Server; ports: number[] }> {
  const server = new grpc.Server({
    // As etcd: gRPC refuses messages beyond the request limit plus overhead; between the two, etcd's
    // own "request is too large" answers.
    'grpc.max_receive_message_length': s.cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
  });
  server.addService(serviceDefinition('etcdserverpb', 'KV'), kvService(s));
  server.addService(serviceDefinition('etcdserverpb', 'Maintenance'), maintenanceService(s));
  server.addService(serviceDefinition('etcdserverpb', 'Cluster'), clusterService(s));
  // Services not built yet are registered empty, so every call gets gRPC's UNIMPLEMENTED status.
  for (const svc of ['Watch', 'Lease', 'Auth']) server.addService(serviceDefinition('etcdserverpb', svc), {});
  server.addService(serviceDefinition('v3lockpb', 'Lock'), {});
  server.addService(serviceDefinition('v3electionpb', 'Election'), {});

  const ports: number[] = [];
  for (const u of urls) {
    const host = u.hostname.startsWith('[') ? u.hostname : u.hostname;
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:${u.port || '2379'}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    ports.push(port);
  }
  return { server, ports };
}
