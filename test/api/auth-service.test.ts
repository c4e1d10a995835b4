import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// Until auth is built (issue #15), auth is never enabled in Plinth: the calls whose answer follows from
// that answer as etcd 3.4 with auth disabled, compared with real etcd.
describe.skipIf(!ETCDCTL_AVAILABLE || !ETCD_AVAILABLE)('Auth with auth disabled, as etcd', () => {
  let plinth: RunningServer;
  let etcd: RunningServer;
  beforeAll(async () => {
    [plinth, etcd] = await Promise.all([startPlinth({ backend: 'memory' }), startEtcd()]);
  });
  afterAll(async () => {
    await Promise.all([plinth?.stop(), etcd?.stop()]);
  });

  const post = async (s: RunningServer, path: string, body: unknown) => {
    const r = await fetch(s.url + path, { method: 'POST', body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('Authenticate: FAILED_PRECONDITION "etcdserver: authentication is not enabled" (gateway 412)', async () => {
    const [p, e] = await Promise.all([plinth, etcd].map((s) => post(s, '/v3/auth/authenticate', { name: 'root', password: 'x' })));
    expect(e).toEqual({ status: 412, body: { error: 'etcdserver: authentication is not enabled', message: 'etcdserver: authentication is not enabled', code: 9 } });
    expect(p).toEqual(e);
  });

  it('a client configured with a user works (clientv3 goes on without a token)', () => {
    for (const s of [plinth, etcd]) {
      expect(etcdctl(s.endpoint, ['--user', 'root:x', 'put', 'k', 'v']).code).toBe(0);
      expect(etcdctl(s.endpoint, ['--user', 'root:x', 'get', 'k', '--print-value-only']).stdout).toBe('v\n');
    }
  });

  it('AuthDisable: a no-op answered with a header ("Authentication Disabled")', async () => {
    for (const s of [plinth, etcd]) {
      const r = etcdctl(s.endpoint, ['auth', 'disable']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('Authentication Disabled\n');
      const g = await post(s, '/v3/auth/disable', {});
      expect(g.status).toBe(200);
      expect(Object.keys(g.body)).toEqual(['header']);
    }
  });
});
