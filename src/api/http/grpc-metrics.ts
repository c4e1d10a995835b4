import type { MethodDefinition, MethodSeries } from '../h2/grpc-server';
import { registry, type Histogram, type HistogramSeries } from '../../metrics';
import { gatewayRoot } from './jsonpb';

// go-grpc-prometheus's server metrics, as etcd exports them: grpc_server_started_total,
// grpc_server_handled_total (by code), grpc_server_msg_received_total, grpc_server_msg_sent_total.

const LABELS = ['grpc_type', 'grpc_service', 'grpc_method'] as const;
const started = registry.counter('grpc_server_started_total', 'Total number of RPCs started on the server.', LABELS);
const handled = registry.counter(
  'grpc_server_handled_total', 'Total number of RPCs completed on the server, regardless of success or failure.',
  ['grpc_code', ...LABELS],
);
const received = registry.counter('grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', LABELS);
const sent = registry.counter('grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', LABELS);

import { CODE_NAMES } from '../../errors';

// etcd's own gRPC metrics (etcdserver/api/v3rpc/metrics.go): its codec counts the bytes of every message it
// unmarshals and marshals; its interceptors count requests by type and the client's API version.
const receivedBytes = registry.counter('etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.').series();
const sentBytes = registry.counter('etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.').series();
const clientRequests = registry.counter('etcd_server_client_requests_total', 'The total number of client requests per client version.', ['type', 'client_api_version']);

/** Wraps a method's (de)serializers to count message bytes as etcd's codec does. */
export function countingBytes<D extends { requestDeserialize(buf: Buffer): unknown; responseSerialize(v: unknown): Buffer }>(def: D): D {
  const des = def.requestDeserialize.bind(def);
  const ser = def.responseSerialize.bind(def);
  return {
    ...def,
    requestDeserialize: (buf: Buffer) => {
      receivedBytes.v += buf.length;
      return des(buf);
    },
    responseSerialize: (v: unknown) => {
      const b = ser(v);
      sentBytes.v += b.length;
      return b;
    },
  };
}

const requestSeries = new Map<string, { v: number }>();
/** etcd's clientRequests.WithLabelValues(type, version).Inc(): type "unary" or "stream". */
export function countClientRequest(stream: boolean, clientApiVersion: string): void {
  const k = (stream ? 's' : 'u') + clientApiVersion;
  let s = requestSeries.get(k);
  if (!s) requestSeries.set(k, (s = clientRequests.series({ type: stream ? 'stream' : 'unary', client_api_version: clientApiVersion })));
  s.v++;
}

// --metrics extensive: go-grpc-prometheus's EnableHandlingTimeHistogram (prometheus.DefBuckets).
const HANDLING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
let handling: Histogram | undefined;
const handlingSeries = new Map<string, HistogramSeries>();

/** Turns grpc_server_handling_seconds on (every method's series declared, as the Go client does). */
export function enableHandlingTimeHistogram(): void {
  if (handling) return;
  handling = registry.histogram('grpc_server_handling_seconds',
    'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.', HANDLING_BUCKETS, LABELS);
  for (const labels of allMethods()) handlingSeries.set(`/${labels.grpc_service}/${labels.grpc_method}`, handling.child(labels));
}

/** The handling-time series of a method (by its path), when the histogram is on. */
export function handlingTime(path: string): HistogramSeries | undefined {
  return handling && handlingSeries.get(path);
}

function grpcType(requestStream: boolean, responseStream: boolean): string {
  if (requestStream && responseStream) return 'bidi_stream';
  if (requestStream) return 'client_stream';
  if (responseStream) return 'server_stream';
  return 'unary';
}

type MethodLabels = { grpc_type: string; grpc_service: string; grpc_method: string };
let methods: MethodLabels[] | undefined;

/** The labels of every method of etcd's services. */
function allMethods(): MethodLabels[] {
  if (methods) return methods;
  methods = [];
  const root = gatewayRoot();
  for (const pkg of ['etcdserverpb', 'v3lockpb', 'v3electionpb']) {
    const ns = root.lookup(pkg) as unknown as { nestedArray: unknown[] };
    for (const svc of ns.nestedArray) {
      if (!(svc instanceof (require('protobufjs') as typeof import('protobufjs')).Service)) continue;
      for (const m of svc.methodsArray) {
        methods.push({ grpc_type: grpcType(!!m.requestStream, !!m.responseStream), grpc_service: `${pkg}.${svc.name}`, grpc_method: m.name });
      }
    }
  }
  return methods;
}

let declared = false;

/** Every method of etcd's services starts at 0, as go-grpc-prometheus pre-declares them. */
function declareAll(): void {
  if (declared) return;
  declared = true;
  for (const labels of allMethods()) {
    started.declare(labels);
    received.declare(labels);
    sent.declare(labels);
    for (const code of CODE_NAMES) handled.declare({ grpc_code: code, ...labels });
  }
}

/** The series of one method: found once when its service is added; a call then only bumps numbers. */
export function grpcMethodSeries(method: MethodDefinition): MethodSeries {
  declareAll();
  const slash = method.path.lastIndexOf('/');
  const labels = {
    grpc_type: grpcType(method.requestStream, method.responseStream),
    grpc_service: method.path.slice(1, slash),
    grpc_method: method.path.slice(slash + 1),
  };
  return {
    started: started.series(labels),
    received: received.series(labels),
    sent: sent.series(labels),
    handled: CODE_NAMES.map((code) => handled.series({ grpc_code: code, ...labels })),
  };
}
