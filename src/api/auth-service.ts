import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Auth: translation only. Each call hands the decoded request to the server (which hashes
 * passwords before proposing, proposes, and answers with what the auth store applied) and answers with a
 * header, as etcd's AuthServer; errors are etcd's codes and words (errors.ts).
 * Every call but Authenticate carries the caller's token (withAuth): the server checks the root role where
 * etcd does, before proposing and again when the entry is applied.
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
    AuthEnable(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.authEnable(auth))));
    },
    AuthDisable(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.authDisable(auth))));
    },
    UserAdd(call: Call, cb: Cb) {
      const r = call.request;
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userAdd({ name: str(r.name), password: str(r.password), options: r.options ? { noPassword: !!r.options.noPassword } : null }, auth))));
    },
    UserGet(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userGet({ name: str(call.request.name) }, auth))));
    },
    UserList(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userList(auth))));
    },
    UserDelete(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userDelete({ name: str(call.request.name) }, auth))));
    },
    UserChangePassword(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userChangePassword({ name: str(call.request.name), password: str(call.request.password) }, auth))));
    },
    UserGrantRole(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userGrantRole({ user: str(call.request.user), role: str(call.request.role) }, auth))));
    },
    UserRevokeRole(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.userRevokeRole({ name: str(call.request.name), role: str(call.request.role) }, auth))));
    },
    RoleAdd(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleAdd({ name: str(call.request.name) }, auth))));
    },
    RoleGet(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleGet({ role: str(call.request.role) }, auth))));
    },
    RoleList(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleList(auth))));
    },
    RoleDelete(call: Call, cb: Cb) {
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleDelete({ role: str(call.request.role) }, auth))));
    },
    RoleGrantPermission(call: Call, cb: Cb) {
      const p = call.request.perm;
      const perm = p ? { permType: Number(p.permType ?? 0), key: bytes(p.key), rangeEnd: bytes(p.rangeEnd) } : null;
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleGrantPermission({ name: str(call.request.name), perm }, auth))));
    },
    RoleRevokePermission(call: Call, cb: Cb) {
      const r = call.request;
      answer(s, cb, () => withHeader(withAuth(s, call, (auth) => s.roleRevokePermission({ role: str(r.role), key: bytes(r.key), rangeEnd: bytes(r.rangeEnd) }, auth))));
    },
  };
}
