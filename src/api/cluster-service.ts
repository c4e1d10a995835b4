import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Cluster: MemberList of every member (names and client URLs published through the log).
 * MemberAdd/Remove/Update/Promote are issue #14: until then they are not registered and gRPC answers
 * UNIMPLEMENTED (etcdctl prints "Error: unknown method ..."), never a silent success.
 */
export function clusterService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    MemberList(_call: Call, cb: Cb) {
      answer(s, cb, () => ({
        header: c.header(s.header()),
        members: s.members().map((m) => ({
          ID: m.id.toString(),
          name: m.name,
          peerURLs: m.peerUrls,
          clientURLs: m.clientUrls,
          isLearner: m.isLearner,
        })),
      }));
    },
  };
}
