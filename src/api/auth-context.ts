import type { AuthContext, EtcdServer } from '../server/etcd-server';

/**
 * Runs a handler with its call's auth context (etcd's AuthInfoFromCtx, from the "token" or, as the gateway
 * forwards it, "authorization" metadata). While auth is off the handler runs at once with undefined (the
 * hot paths pay one check); while it is on, once the token is verified — a token that is not valid ends the
 * call with etcd's "etcdserver: invalid auth token".
 */
export function withAuth<T>(s: EtcdServer, call: unknown, run: (auth: AuthContext | undefined) => T): T | Promise<Awaited<T>> {
  const ctx = s.authContext((call as { token?: string }).token || undefined);
  return ctx === undefined ? run(undefined) : (ctx.then(run) as Promise<Awaited<T>>);
}
