import type { AuthContext, EtcdServer } from '../server/etcd-server';

interface CallAuth {
  token?: string;
  viaGateway?: boolean;
  peerCommonName?: () => string | undefined;
}

/**
 * A call's auth context (etcd's AuthInfoFromCtx): undefined while auth is off (a token is still verified);
 * else from the "token" or,
 * as the gateway forwards it, "authorization" metadata; without one, with --client-cert-auth, the verified
 * client certificate's CN (etcd's AuthInfoFromTLS), except for the gateway's own requests.
 */
export function authContextOf(s: EtcdServer, call: unknown): Promise<AuthContext | undefined> | undefined {
  const c = call as CallAuth;
  const token = c.token || undefined;
  if (!s.authEnabled) return token ? s.authContext(token) : undefined;
  const commonName = !token && s.cfg.clientTls.clientCertAuth && !c.viaGateway ? c.peerCommonName?.() : undefined;
  return s.authContext(token, commonName);
}

/**
 * Runs a handler with its call's auth context. While auth is off the handler runs at once with undefined
 * (the hot paths pay one check); while it is on, once the token is verified — a token that is not valid
 * ends the call with etcd's "etcdserver: invalid auth token".
 */
export function withAuth<T>(s: EtcdServer, call: unknown, run: (auth: AuthContext | undefined) => T): T | Promise<Awaited<T>> {
  const ctx = authContextOf(s, call);
  return ctx === undefined ? run(undefined) : (ctx.then(run) as Promise<Awaited<T>>);
}
