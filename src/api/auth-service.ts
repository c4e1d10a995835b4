import type * as grpc from '@grpc/grpc-js';
import { Errors } from '../errors';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Auth while Plinth has no auth (issue #15): auth is never enabled, so the two calls whose
 * answer follows from that answer as etcd 3.4 with auth disabled does. Authenticate is refused with
 * "etcdserver: authentication is not enabled" (clientv3 then goes on without a token, so clients configured
 * with a user work), AuthDisable is a no-op with a header. The user and role calls and AuthEnable are not
 * registered: gRPC answers UNIMPLEMENTED until #15 builds them.
 */
export function authService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    Authenticate(_call: Call, cb: Cb) {
      answer(s, cb, () => {
        throw Errors.authNotEnabled;
      });
    },
    AuthDisable(_call: Call, cb: Cb) {
      answer(s, cb, () => ({ header: c.header(s.header()) }));
    },
  };
}
