import type * as grpc from '@grpc/grpc-js';
import { Errors, EtcdError, GrpcCode } from '../errors';
import { Concurrency, type LeaderKey } from '../server/concurrency';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer, toServiceError } from './errors';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcd runs v3lock/v3election on an inner client, so every error they pass on reaches the caller as a
 * plain error: gRPC UNKNOWN with etcd's message (e.g. "etcdserver: requested lease not found").
 */
function asInnerClientError(err: unknown): never {
  if (err instanceof EtcdError) throw new EtcdError(GrpcCode.UNKNOWN, err.message);
  throw err;
}

/** Aborts when the client cancels the call or goes away (a waiting Lock/Campaign then gives up). */
function callSignal(call: grpc.ServerUnaryCall<any, any> | grpc.ServerWritableStream<any, any>): AbortSignal {
  const ac = new AbortController();
  call.on('cancelled', () => ac.abort());
  call.on('close', () => ac.abort());
  return ac.signal;
}

const leaderFromWire = (l: any): LeaderKey => ({ name: l.name, key: l.key, rev: Number(l.rev), lease: BigInt(l.lease ?? 0) });
const leaderToWire = (l: LeaderKey) => ({ name: l.name, key: l.key, rev: l.rev, lease: l.lease.toString() });

/** v3lockpb.Lock. */
export function lockService(s: EtcdServer): grpc.UntypedServiceImplementation {
  const cc = new Concurrency(s);
  return {
    Lock(call: Call, cb: Cb) {
      const signal = callSignal(call);
      answer(s, cb, () => withAuth(s, call, (auth) =>
        cc.lock(call.request.name, BigInt(call.request.lease ?? 0), signal, auth).catch(asInnerClientError).then((r) => ({ header: c.header(s.header(r.revision)), key: r.key })),
      ));
    },
    Unlock(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => cc.unlock(call.request.key, auth).catch(asInnerClientError).then((rev) => ({ header: c.header(s.header(rev)) }))));
    },
  };
}

/** v3electionpb.Election. */
export function electionService(s: EtcdServer): grpc.UntypedServiceImplementation {
  const cc = new Concurrency(s);
  return {
    Campaign(call: Call, cb: Cb) {
      const r = call.request;
      const signal = callSignal(call);
      answer(s, cb, () => withAuth(s, call, (auth) =>
        cc.campaign(r.name, BigInt(r.lease ?? 0), r.value, signal, auth).catch(asInnerClientError).then((out) => ({
          header: c.header(s.header(out.revision)),
          leader: leaderToWire(out.leader),
        })),
      ));
    },
    Proclaim(call: Call, cb: Cb) {
      answer(s, cb, () => {
        if (!call.request.leader) throw Errors.missingLeaderKey;
        return withAuth(s, call, (auth) => cc.proclaim(leaderFromWire(call.request.leader), call.request.value, auth).catch(asInnerClientError).then((rev) => ({ header: c.header(s.header(rev)) })));
      });
    },
    Resign(call: Call, cb: Cb) {
      answer(s, cb, () => {
        if (!call.request.leader) throw Errors.missingLeaderKey;
        return withAuth(s, call, (auth) => cc.resign(leaderFromWire(call.request.leader), auth).catch(asInnerClientError).then((rev) => ({ header: c.header(s.header(rev)) })));
      });
    },
    Leader(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => {
        const l = cc.leader(call.request.name, auth);
        return { header: c.header(s.header(l.revision)), kv: c.keyValue(l.kv) };
      }));
    },
    Observe(call: grpc.ServerWritableStream<any, any>) {
      const signal = callSignal(call);
      Promise.resolve(withAuth(s, call, (auth) => cc.observe(call.request.name, (rev, kv) => call.write({ header: c.header(s.header(rev)), kv: c.keyValue(kv) }), signal, auth))).then(
        () => call.end(),
        (err) => {
          if (!signal.aborted) call.emit('error', toServiceError(s, err));
        },
      );
    },
  };
}
