import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// Auth enabled (issue #15), compared with real etcd 3.4: the same etcdctl commands (gRPC, with --user) and
// the same gateway requests (Authorization header) against both, in the same order; answers and exit codes
// must be equal (headers, tokens and clientv3's retry log lines left out).

type Out = { code: number; stdout: string; stderr: string };

/** etcdctl's output without clientv3's log lines (they carry times and client ids) and JSON headers. */
function normalise(r: Out, json: boolean, endpoint = ''): Out {
  const named = (t: string) => (endpoint ? t.split(endpoint).join('<endpoint>') : t);
  r = { ...r, stdout: named(r.stdout), stderr: named(r.stderr.split('\n').filter((l) => !l.startsWith('{"level"')).join('\n')) };
  if (!json || r.code !== 0) return r;
  const v = JSON.parse(r.stdout) as Record<string, unknown>;
  delete v.header;
  return { ...r, stdout: JSON.stringify(v) };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A gateway answer with the header and token left out (they differ between two servers). */
async function gateway(endpoint: string, path: string, body: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = token;
  const res = await fetch(`http://${endpoint}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    delete v.header;
    if (typeof v.token === 'string') v.token = '<token>';
    parsed = v;
  } catch {
    // not JSON: compared as text
  }
  return { status: res.status, body: parsed };
}

/** The first line of a gateway watch stream (the create's answer), then the stream is dropped. */
async function firstWatchLine(endpoint: string, body: unknown, token: string): Promise<unknown> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 10_000);
  try {
    const res = await fetch(`http://${endpoint}/v3/watch`, { method: 'POST', headers: { authorization: token }, body: JSON.stringify(body), signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    const v = JSON.parse(text.split('\n')[0]) as { result?: Record<string, unknown> };
    delete v.result?.header;
    return v;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

describe.skipIf(!ETCDCTL_AVAILABLE || !ETCD_AVAILABLE)('auth enabled, as etcd 3.4', () => {
  let plinth: RunningServer;
  let etcd: RunningServer;
  beforeAll(async () => {
    [plinth, etcd] = await Promise.all([startPlinth({ backend: 'memory', extraArgs: ['--bcrypt-cost', '4'] }), startEtcd()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([plinth?.stop(), etcd?.stop()]);
  });

  /** Runs one etcdctl command against both and expects equal answers; returns etcd's. */
  function same(args: string[]): Out {
    const json = args.includes('json');
    // Answers that name the endpoint name it the same way for both.
    const e = normalise(etcdctl(etcd.endpoint, args), json, etcd.endpoint);
    const p = normalise(etcdctl(plinth.endpoint, args), json, plinth.endpoint);
    expect(p, `etcdctl ${args.join(' ')}`).toEqual(e);
    return e;
  }
  const ok = (args: string[]) => expect(same(args).code, args.join(' ')).toBe(0);
  const fails = (args: string[], words: string) => {
    const r = same(args);
    expect(r.code, args.join(' ')).not.toBe(0);
    expect(r.stderr + r.stdout).toContain(words);
  };
  const root = ['--user', 'root:rootpw'];
  const alice = ['--user', 'alice:apw'];

  it('enabling: refused without a root user, then on; a request without a user, or with a bad password, is refused', () => {
    ok(['user', 'add', 'alice:apw']);
    ok(['role', 'add', 'ra']);
    ok(['role', 'grant-permission', 'ra', 'readwrite', 'a/', '--prefix']);
    ok(['role', 'grant-permission', 'ra', 'read', 'r/', '--prefix']);
    ok(['user', 'grant-role', 'alice', 'ra']);
    ok(['put', 'r/1', 'x']);
    ok(['put', 'secret', 'y']);
    fails(['auth', 'enable'], 'root user does not exist');
    ok(['user', 'add', 'root:rootpw']);
    // etcdctl answers "root user does not have root role" by adding the role, granting it, and enabling again.
    ok(['auth', 'enable']);
    ok(['--user', 'root:rootpw', 'user', 'get', 'root']);
    fails(['get', 'a/1'], 'etcdserver: user name is empty');
    fails(['put', 'a/1', 'v'], 'etcdserver: user name is empty');
    fails(['--user', 'alice:bad', 'get', 'a/1'], 'etcdserver: authentication failed, invalid user ID or password');
    fails(['--user', 'nobody:x', 'get', 'a/1'], 'etcdserver: authentication failed, invalid user ID or password');
  });

  it('KV and txn within and outside a user\'s permissions', () => {
    ok([...alice, 'put', 'a/1', 'v']);
    ok([...alice, 'get', 'a/', '--prefix']);
    ok([...alice, '-w', 'json', 'get', 'r/1']);
    fails([...alice, 'put', 'r/1', 'v'], 'etcdserver: permission denied');
    fails([...alice, 'get', 'secret'], 'etcdserver: permission denied');
    fails([...alice, 'get', 'a/', '--from-key'], 'etcdserver: permission denied');
    fails([...alice, 'del', 'a', '--prefix'], 'etcdserver: permission denied');
    ok([...alice, 'del', 'a/1', '--prev-kv']);
    // etcdctl txn reads compares, success and failure requests from stdin: driven over the gateway below.
    ok([...root, 'get', 'secret']);
    ok([...root, 'put', 'secret', 'z']);
  });

  it('auth management: root only, but a user reads itself and its roles', () => {
    fails([...alice, 'user', 'list'], 'etcdserver: permission denied');
    fails([...alice, 'role', 'add', 'x'], 'etcdserver: permission denied');
    fails([...alice, 'user', 'get', 'root'], 'etcdserver: permission denied');
    ok([...alice, 'user', 'get', 'alice']);
    ok([...alice, 'role', 'get', 'ra']);
    fails([...alice, 'role', 'get', 'root'], 'etcdserver: permission denied');
    ok([...root, 'user', 'list']);
    ok([...root, '-w', 'json', 'role', 'list']);
    fails([...root, 'user', 'delete', 'root'], 'etcdserver: invalid auth management');
    fails([...root, 'user', 'revoke-role', 'root', 'root'], 'etcdserver: invalid auth management');
  });

  it('watch: a create outside the user\'s read permission is canceled with the gRPC error\'s words', () => {
    const r = same([...alice, 'watch', 'secret']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('rpc error: code = PermissionDenied desc = etcdserver: permission denied');
  });

  it('maintenance: Defragment, Hash and Snapshot need root and answer the auth package\'s own words; Status does not', () => {
    fails([...alice, 'defrag'], 'rpc error: code = Unknown desc = auth: permission denied');
    fails([...alice, 'endpoint', 'hashkv'], 'rpc error: code = Unknown desc = auth: permission denied');
    fails(['defrag'], 'rpc error: code = Unknown desc = auth: user name is empty');
    ok([...root, 'defrag']);
    expect(normalise(etcdctl(plinth.endpoint, [...alice, 'endpoint', 'status']), false).code).toBe(0);
  });

  it('leases: revoking one with keys outside the user\'s write permission is refused', () => {
    const grant = (s: RunningServer) => /lease ([0-9a-f]+) granted/.exec(etcdctl(s.endpoint, [...root, 'lease', 'grant', '600']).stdout)![1];
    const ids = [grant(etcd), grant(plinth)];
    const [e, p] = [etcd, plinth].map((s, i) => {
      expect(etcdctl(s.endpoint, [...root, 'put', 'secret-l', 'v', '--lease', ids[i]]).code).toBe(0);
      return normalise(etcdctl(s.endpoint, [...alice, 'lease', 'revoke', ids[i]]), false, s.endpoint);
    });
    expect(p).toEqual(e);
    expect(p.stderr).toContain('etcdserver: permission denied');
    for (const [i, s] of [etcd, plinth].entries()) expect(etcdctl(s.endpoint, [...root, 'lease', 'revoke', ids[i]]).code).toBe(0);
  });

  it('the gateway: Authenticate, then the token in Authorization; without it, or a bad one, etcd\'s errors', async () => {
    const token: Record<string, string> = {};
    for (const s of [etcd, plinth]) {
      const res = await fetch(`http://${s.endpoint}/v3/auth/authenticate`, { method: 'POST', body: JSON.stringify({ name: 'alice', password: 'apw' }) });
      token[s.endpoint] = ((await res.json()) as { token: string }).token;
    }
    const both = async (path: string, body: unknown, tok: 'alice' | 'none' | 'bad') => {
      const [e, p] = await Promise.all([etcd, plinth].map((s) =>
        gateway(s.endpoint, path, body, tok === 'alice' ? token[s.endpoint] : tok === 'bad' ? 'notatoken' : undefined)));
      expect(p, `${path} ${JSON.stringify(body)} (${tok})`).toEqual(e);
      return e;
    };
    expect((await both('/v3/auth/authenticate', { name: 'alice', password: 'apw' }, 'none')).status).toBe(200);
    expect((await both('/v3/auth/authenticate', { name: 'alice', password: 'no' }, 'none')).status).toBe(400);
    expect((await both('/v3/kv/put', { key: b64('a/2'), value: b64('v') }, 'alice')).status).toBe(200);
    expect((await both('/v3/kv/range', { key: b64('a/2') }, 'alice')).body).toMatchObject({ count: '1' });
    expect((await both('/v3/kv/range', { key: b64('a/2') }, 'none')).status).toBe(400);
    expect((await both('/v3/kv/range', { key: b64('a/2') }, 'bad')).status).toBe(401);
    expect((await both('/v3/kv/put', { key: b64('secret'), value: b64('v') }, 'alice')).status).toBe(403);
    // A txn touching one key outside her permission does nothing; within them it runs.
    const put = (k: string) => ({ request_put: { key: b64(k), value: b64('t') } });
    expect((await both('/v3/kv/txn', { success: [put('a/3'), put('secret')] }, 'alice')).status).toBe(403);
    expect((await both('/v3/kv/txn', { compare: [{ key: b64('secret'), target: 'VERSION', result: 'EQUAL', version: '0' }], success: [put('a/3')] }, 'alice')).status).toBe(403);
    expect((await both('/v3/kv/txn', { compare: [{ key: b64('r/1'), target: 'VERSION', result: 'GREATER', version: '0' }], success: [put('a/3')] }, 'alice')).body).toMatchObject({ succeeded: true });
    expect((await both('/v3/kv/range', { key: b64('a/3') }, 'alice')).body).toMatchObject({ count: '1' });
    expect((await both('/v3/auth/user/list', {}, 'alice')).status).toBe(403);
    expect((await both('/v3/maintenance/hash', {}, 'alice')).status).toBe(500);
    // A watch: the create's answer, refused or not.
    for (const [key, tok] of [['secret', 'alice'], ['a/', 'alice'], ['a/', 'bad']] as const) {
      const body = { create_request: { key: b64(key) } };
      const [e, p] = await Promise.all([etcd, plinth].map((s) => firstWatchLine(s.endpoint, body, tok === 'alice' ? token[s.endpoint] : 'notatoken')));
      expect(p, `watch ${key} (${tok})`).toEqual(e);
    }
  });

  it('disabling: root only; a token is still verified after (etcd: "invalid auth token")', async () => {
    fails([...alice, 'auth', 'disable'], 'etcdserver: permission denied');
    ok([...root, 'auth', 'disable']);
    ok(['get', 'secret']);
    const [e, p] = await Promise.all([etcd, plinth].map((s) => gateway(s.endpoint, '/v3/kv/range', { key: b64('secret') }, 'notatoken')));
    expect(p).toEqual(e);
    expect(e.status).toBe(401);
    expect((await gateway(plinth.endpoint, '/v3/kv/range', { key: b64('secret') })).status).toBe(200);
  });
});
