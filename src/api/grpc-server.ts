import type * as grpc from '@grpc/grpc-js';
import { GRPC_OVERHEAD_BYTES } from '../server/config';
import type { EtcdServer } from '../server/etcd-server';
import { authService } from './auth-service';
import { clusterService } from './cluster-service';
import { kvService, PREENCODED_KV_METHODS } from './kv-service';
import { leaseService } from './lease-service';
import { electionService, lockService } from './lock-election-service';
import { maintenanceDataService } from './maintenance-data-service';
import { maintenanceService } from './maintenance-service';
import { decodePutRequest } from '../wire/put-codec';
import { GrpcServer, type MethodDefinition, type ServerCall } from './h2/grpc-server';
import { Errors } from '../errors';
import { countClientRequest, countingBytes, enableHandlingTimeHistogram, grpcMethodSeries, handlingTime } from './http/grpc-metrics';
import type { BoundListener } from '../net/bound-listener';
import { serveClientUrls, type ClientListeners } from './http/listener';
import type { ClientTls } from './http/client-tls';
import { guard, serviceDefinition } from './proto';
import { watchService } from './watch-service';

type Defs = Record<string, MethodDefinition>;

/** The gRPC front of a server: etcd's services on the given listen URLs (plain http only for now). */
export async function startGrpc(
  s: EtcdServer,
  /** The client URLs, or their listeners bound already (bindClientListeners). */
  urls: URL[] | BoundListener[],
  /** The TLS of https client URLs (prepareClientTls). */
  tls?: ClientTls,
): Promise<{ server: GrpcServer; ports: number[]; listeners: ClientListeners }> {
  // As etcd: messages beyond the request limit plus overhead are refused with gRPC's words; between the
  // two, etcd's own "request is too large".
  const maxRecv = s.cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  const leaderWatch = new RequireLeaderStreams(s);
  const extensive = s.cfg.metrics === 'extensive';
  if (extensive) enableHandlingTimeHistogram();
  const server = new GrpcServer({
    maxReceiveMessageBytes: maxRecv,
    // etcd's transport flags, as etcd hands them to grpc-go: a zero min time leaves grpc-go's default
    // enforcement policy (5 minutes); a zero interval or timeout leaves its default keepalive (2 h, 20 s);
    // grpc-go raises an interval under 1 s to 1 s.
    h2: {
      maxConcurrentStreams: s.cfg.maxConcurrentStreams || undefined,
      keepaliveMinTimeMs: s.cfg.grpcKeepaliveMinTimeMs > 0 ? s.cfg.grpcKeepaliveMinTimeMs : 5 * 60_000,
      ...(s.cfg.grpcKeepaliveIntervalMs > 0 && s.cfg.grpcKeepaliveTimeoutMs > 0
        ? { keepaliveIntervalMs: Math.max(1000, s.cfg.grpcKeepaliveIntervalMs), keepaliveTimeoutMs: s.cfg.grpcKeepaliveTimeoutMs }
        : {}),
    },
    seriesFor: grpcMethodSeries,
    // etcd's interceptors: a client that requires a leader (clientv3.WithRequireLeader) is refused
    // while there is none, and its streams end once there has been none for a while.
    admit: (call) => {
      // etcd's interceptors: a learner serves Status and serializable ranges only (and no stream).
      if (s.isLearner && !supportedForLearner(call)) return { code: Errors.notSupportedForLearner.code, details: Errors.notSupportedForLearner.message };
      const stream = call.method.def.requestStream || call.method.def.responseStream;
      countClientRequest(stream, (call as { clientApiVersion?: string }).clientApiVersion || 'unknown');
      if (extensive) {
        const h = handlingTime(call.method.def.path);
        if (h) {
          const t0 = process.hrtime.bigint();
          call.once('close', () => h.observeSince(t0));
        }
      }
      if (!call.requireLeader) return undefined;
      if (s.leader === 0n) return { code: Errors.noLeader.code, details: Errors.noLeader.message };
      leaderWatch.add(call);
      return undefined;
    },
  });
  // etcd's codec counts the bytes of every message (etcd_network_client_grpc_{received,sent}_bytes_total).
  const counted = (defs: Defs): Defs => Object.fromEntries(Object.entries(defs).map(([k, d]) => [k, countingBytes(d)]));
  const add = (pkg: string, svc: string, impl: grpc.UntypedServiceImplementation) =>
    server.addService(counted(serviceDefinition(pkg, svc, maxRecv) as Defs), guard(impl));
  // Put requests are decoded by hand straight into the server's PutRequest (wire/put-codec.ts).
  const kvDef = serviceDefinition('etcdserverpb', 'KV', maxRecv, { Put: decodePutRequest }) as Defs;
  for (const m of PREENCODED_KV_METHODS) kvDef[m] = { ...kvDef[m], responseSerialize: (b: Buffer) => b };
  server.addService(counted(kvDef), guard(kvService(s)));
  add('etcdserverpb', 'Maintenance', { ...maintenanceService(s), ...maintenanceDataService(s) });
  add('etcdserverpb', 'Cluster', clusterService(s));
  // Watch responses are encoded by hand (watch-service.ts): its serializer passes the bytes through.
  const watchDef = serviceDefinition('etcdserverpb', 'Watch', maxRecv) as Defs;
  watchDef.Watch = { ...watchDef.Watch, responseSerialize: (b: Buffer) => b };
  // Its streams end as etcd's when the server stops, instead of holding a graceful stop up.
  server.addService(counted(watchDef), guard(watchService(s, (fn) => server.onShutdown(fn))));
  add('etcdserverpb', 'Lease', leaseService(s));
  // Auth is issue #15: Authenticate and AuthDisable answer as etcd with auth disabled (auth-service.ts).
  add('etcdserverpb', 'Auth', authService(s));
  add('v3lockpb', 'Lock', lockService(s));
  add('v3electionpb', 'Election', electionService(s));

  // One listener per client URL serves gRPC and HTTP/1.1 (the JSON gateway, /health, /version, /metrics).
  const listeners = await serveClientUrls(s, server, urls, tls);
  server.onShutdown(() => leaderWatch.stop());
  return { server, ports: listeners.ports, listeners };
}

/** etcd's isRPCSupportedForLearner. */
function supportedForLearner(call: ServerCall): boolean {
  const { service, name } = call.method;
  if (service === 'etcdserverpb.Maintenance' && name === 'Status') return true;
  return service === 'etcdserverpb.KV' && name === 'Range' && !!call.request?.serializable;
}

/**
 * etcd's monitorLeader for streams of clients that require a leader: checked every election timeout;
 * after three checks in a row without a leader, those streams end with "etcdserver: no leader".
 */
class RequireLeaderStreams {
  private readonly calls = new Set<ServerCall>();
  private timer: NodeJS.Timeout | undefined;
  private noLeader = 0;

  constructor(private readonly s: EtcdServer) {}

  add(call: ServerCall): void {
    if (!call.method.def.requestStream && !call.method.def.responseStream) return;
    this.calls.add(call);
    call.once('close', () => this.calls.delete(call));
    this.timer ??= setInterval(() => this.check(), this.s.cfg.electionTimeoutMs);
    this.timer.unref();
  }

  private check(): void {
    this.noLeader = this.s.leader === 0n ? this.noLeader + 1 : 0;
    if (this.noLeader >= 3) {
      const ended = [...this.calls];
      this.calls.clear();
      for (const c of ended) c.emit('error', { code: Errors.noLeader.code, details: Errors.noLeader.message });
    }
    if (this.calls.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
