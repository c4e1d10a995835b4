import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer, Member } from '../server/etcd-server';
import { answer } from './errors';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Cluster, as etcd 3.4's ClusterServer: member changes go through the server (checks, one
 * conf change through the log, answered once applied here); every answer carries the member list after
 * the change, and a header without a revision (etcd's ClusterServer fills cluster, member and term only).
 */
export function clusterService(s: EtcdServer): grpc.UntypedServiceImplementation {
  const header = () => ({ clusterId: s.clusterId.toString(), memberId: s.memberId.toString(), raftTerm: s.raftTerm });
  const id = (v: unknown): bigint => BigInt.asUintN(64, BigInt((v as string | number | undefined) ?? 0));
  const urls = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
  return {
    MemberList(_call: Call, cb: Cb) {
      answer(s, cb, () => ({ header: header(), members: s.members().map(wireMember) }));
    },
    MemberAdd(call: Call, cb: Cb) {
      answer(s, cb, () =>
        withAuth(s, call, (auth) => s.addMember(urls(call.request.peerURLs), !!call.request.isLearner, auth)).then((r) => ({
          header: header(),
          member: { ID: r.member.id.toString(), peerURLs: r.member.peerUrls, isLearner: r.member.isLearner },
          members: r.members.map(wireMember),
        })),
      );
    },
    MemberRemove(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => s.removeMember(id(call.request.ID), auth)).then((ms) => ({ header: header(), members: ms.map(wireMember) })));
    },
    MemberUpdate(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => s.updateMember(id(call.request.ID), urls(call.request.peerURLs), auth)).then((ms) => ({ header: header(), members: ms.map(wireMember) })));
    },
    MemberPromote(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => s.promoteMember(id(call.request.ID), auth)).then((ms) => ({ header: header(), members: ms.map(wireMember) })));
    },
  };
}

function wireMember(m: Member) {
  return { ID: m.id.toString(), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner };
}
