import type { MethodDefinition, MethodSeries } from '../h2/grpc-server';
import { registry } from '../../metrics';
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

function grpcType(requestStream: boolean, responseStream: boolean): string {
  if (requestStream && responseStream) return 'bidi_stream';
  if (requestStream) return 'client_stream';
  if (responseStream) return 'server_stream';
  return 'unary';
}

let declared = false;

/** Every method of etcd's services starts at 0, as go-grpc-prometheus pre-declares them. */
function declareAll(): void {
  if (declared) return;
  declared = true;
  const root = gatewayRoot();
  for (const pkg of ['etcdserverpb', 'v3lockpb', 'v3electionpb']) {
    const ns = root.lookup(pkg) as unknown as { nestedArray: unknown[] };
    for (const svc of ns.nestedArray) {
      if (!(svc instanceof (require('protobufjs') as typeof import('protobufjs')).Service)) continue;
      for (const m of svc.methodsArray) {
        const labels = { grpc_type: grpcType(!!m.requestStream, !!m.responseStream), grpc_service: `${pkg}.${svc.name}`, grpc_method: m.name };
        started.declare(labels);
        received.declare(labels);
        sent.declare(labels);
        for (const code of CODE_NAMES) handled.declare({ grpc_code: code, ...labels });
      }
    }
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
