import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Cluster: MemberList of this single member. MemberAdd/Remove/Update/Promote need raft
 * and are not registered yet (gRPC answers UNIMPLEMENTED).
 */
export function clusterService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    MemberList(_call: Call, cb: Cb) {
      answer(cb, () => ({
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
