import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Auth: translation only. Each call hands the decoded request to the server (which hashes
 * passwords before proposing, proposes, and answers with what the auth store applied) and answers with a
 * header, as etcd's AuthServer; errors are etcd's codes and words (errors.ts).
 *
 * Auth is never enabled yet (issue #15, step 2: enforcement on every request comes first): AuthEnable is
 * not registered (gRPC answers UNIMPLEMENTED), so Authenticate answers etcd's "etcdserver: authentication is
 * not enabled" (clientv3 then goes on without a token, so clients configured with a user work).
 */
export function authService(s: EtcdServer): grpc.UntypedServiceImplementation {
  const withHeader = (p: Promise<Record<string, unknown>>) => p.then((r) => ({ header: c.header(s.header()), ...r }));
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const bytes = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v) : Buffer.alloc(0));
  return {
    Authenticate(call: Call, cb: Cb) {
      // While auth is off: "etcdserver: authentication is not enabled", before any password check (as etcd).
      answer(s, cb, () => withHeader(s.authenticate(str(call.request.name), str(call.request.password))));
    },
    AuthDisable(_call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.authDisable()));
    },
    UserAdd(call: Call, cb: Cb) {
      const r = call.request;
      answer(s, cb, () => withHeader(s.userAdd({ name: str(r.name), password: str(r.password), options: r.options ? { noPassword: !!r.options.noPassword } : null })));
    },
    UserGet(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userGet({ name: str(call.request.name) })));
    },
    UserList(_call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userList()));
    },
    UserDelete(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userDelete({ name: str(call.request.name) })));
    },
    UserChangePassword(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userChangePassword({ name: str(call.request.name), password: str(call.request.password) })));
    },
    UserGrantRole(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userGrantRole({ user: str(call.request.user), role: str(call.request.role) })));
    },
    UserRevokeRole(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.userRevokeRole({ name: str(call.request.name), role: str(call.request.role) })));
    },
    RoleAdd(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.roleAdd({ name: str(call.request.name) })));
    },
    RoleGet(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.roleGet({ role: str(call.request.role) })));
    },
    RoleList(_call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.roleList()));
    },
    RoleDelete(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(s.roleDelete({ role: str(call.request.role) })));
    },
    RoleGrantPermission(call: Call, cb: Cb) {
      const p = call.request.perm;
      const perm = p ? { permType: Number(p.permType ?? 0), key: bytes(p.key), rangeEnd: bytes(p.rangeEnd) } : null;
      answer(s, cb, () => withHeader(s.roleGrantPermission({ name: str(call.request.name), perm })));
    },
    RoleRevokePermission(call: Call, cb: Cb) {
      const r = call.request;
      answer(s, cb, () => withHeader(s.roleRevokePermission({ role: str(r.role), key: bytes(r.key), rangeEnd: bytes(r.rangeEnd) })));
    },
  };
}
