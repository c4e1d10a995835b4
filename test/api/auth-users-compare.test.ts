import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// User and role management (auth disabled), compared with real etcd 3.4: the same etcdctl commands, in the
// same order, against both; the outputs (simple and JSON, headers left out) and exit codes must be equal.

type Out = { code: number; stdout: string; stderr: string };

/** JSON output without its header (cluster, member, revision and term differ between the two servers). */
function normalise(r: Out, json: boolean): Out {
  // clientv3's retry log lines carry a time and a client id: only etcdctl's own "Error: ..." line is compared.
  r = { ...r, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('{"level"')).join('\n') };
  if (!json || r.code !== 0) return r;
  const v = JSON.parse(r.stdout) as Record<string, unknown>;
  delete v.header;
  return { ...r, stdout: JSON.stringify(v) };
}

describe.skipIf(!ETCDCTL_AVAILABLE || !ETCD_AVAILABLE)('user and role management, as etcd 3.4', () => {
  let plinth: RunningServer;
  let etcd: RunningServer;
  beforeAll(async () => {
    [plinth, etcd] = await Promise.all([startPlinth({ backend: 'memory' }), startEtcd()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([plinth?.stop(), etcd?.stop()]);
  });

  /** Runs one etcdctl command against both and expects equal answers; returns etcd's. */
  function same(args: string[], input?: string): Out {
    const json = args.includes('json');
    const e = normalise(etcdctl(etcd.endpoint, args, input), json);
    const p = normalise(etcdctl(plinth.endpoint, args, input), json);
    expect(p, `etcdctl ${args.join(' ')}`).toEqual(e);
    return e;
  }
  const ok = (args: string[], input?: string) => expect(same(args, input).code, args.join(' ')).toBe(0);
  const fails = (args: string[], words: string) => {
    const r = same(args);
    expect(r.code, args.join(' ')).not.toBe(0);
    expect(r.stderr).toContain(words);
  };

  it('role add / list / get, and their errors', () => {
    ok(['role', 'add', 'r1']);
    ok(['role', 'add', 'r2']);
    fails(['role', 'add', 'r1'], 'etcdserver: role name already exists');
    fails(['role', 'add', ''], 'etcdserver: role name is empty');
    ok(['role', 'list']);
    ok(['-w', 'json', 'role', 'list']);
    ok(['role', 'get', 'r1']);
    fails(['role', 'get', 'nosuch'], 'etcdserver: role name not found');
  });

  it('user add (password, --new-user-password, --no-password) / get / list, and their errors', () => {
    ok(['user', 'add', 'alice:pw1']);
    ok(['user', 'add', 'bob', '--new-user-password=secret']);
    ok(['user', 'add', 'carol', '--no-password']);
    ok(['user', 'add', 'dave', '--interactive=false'], 'pw2\n');
    fails(['user', 'add', 'alice:other'], 'etcdserver: user name already exists');
    fails(['user', 'add', ':pw'], 'empty user name is not allowed'); // etcdctl's own check; the server's below (gateway)
    ok(['user', 'get', 'alice']);
    ok(['-w', 'json', 'user', 'get', 'alice']);
    fails(['user', 'get', 'nobody'], 'etcdserver: user name not found');
    ok(['user', 'list']);
    ok(['-w', 'json', 'user', 'list']);
  });

  it('role grant-permission (read, write, readwrite; key, --prefix, --from-key, range) and role get', () => {
    ok(['role', 'grant-permission', 'r1', 'read', 'foo']);
    ok(['role', 'grant-permission', 'r1', 'write', 'pre/', '--prefix']);
    ok(['role', 'grant-permission', 'r1', 'readwrite', 'a', 'c']);
    ok(['role', 'grant-permission', 'r1', 'read', 'k', '--from-key']);
    ok(['role', 'grant-permission', 'r1', 'readwrite', 'foo']); // updates the existing permission
    ok(['role', 'grant-permission', 'r2', 'write', '/x']);
    fails(['role', 'grant-permission', 'nosuch', 'read', 'k'], 'etcdserver: role name not found');
    ok(['role', 'get', 'r1']);
    ok(['-w', 'json', 'role', 'get', 'r1']);
  });

  it('user grant-role / revoke-role, and their errors', () => {
    ok(['user', 'grant-role', 'alice', 'r1']);
    ok(['user', 'grant-role', 'alice', 'r2']);
    ok(['user', 'grant-role', 'alice', 'r1']); // granted already: ignored
    ok(['user', 'grant-role', 'bob', 'root']); // the root role need not exist
    fails(['user', 'grant-role', 'alice', 'nosuch'], 'etcdserver: role name not found');
    fails(['user', 'grant-role', 'nobody', 'r1'], 'etcdserver: user name not found');
    ok(['user', 'get', 'alice']);
    ok(['user', 'get', 'alice', '--detail']);
    ok(['-w', 'json', 'user', 'get', 'bob']);
    ok(['user', 'revoke-role', 'alice', 'r2']);
    fails(['user', 'revoke-role', 'alice', 'r2'], 'etcdserver: role is not granted to the user');
    fails(['user', 'revoke-role', 'nobody', 'r1'], 'etcdserver: user name not found');
    ok(['user', 'get', 'alice']);
  });

  it('role revoke-permission, and its errors', () => {
    ok(['role', 'revoke-permission', 'r1', 'foo']);
    fails(['role', 'revoke-permission', 'r1', 'foo'], 'etcdserver: permission is not granted to the role');
    ok(['role', 'revoke-permission', 'r1', 'pre/', '--prefix']);
    ok(['role', 'revoke-permission', 'r1', 'a', 'c']);
    ok(['role', 'revoke-permission', 'r1', 'k', '--from-key']);
    fails(['role', 'revoke-permission', 'nosuch', 'k'], 'etcdserver: role name not found');
    ok(['role', 'get', 'r1']);
  });

  it('user passwd, user delete, role delete (taken from its users), and their errors', () => {
    ok(['user', 'passwd', 'bob', '--interactive=false'], 'newpw\n');
    fails(['user', 'passwd', 'nobody', '--interactive=false'], 'etcdserver: user name not found');
    ok(['user', 'grant-role', 'carol', 'r2']);
    ok(['role', 'delete', 'r2']);
    fails(['role', 'delete', 'r2'], 'etcdserver: role name not found');
    ok(['user', 'get', 'carol']);
    ok(['role', 'list']);
    ok(['user', 'delete', 'alice']);
    fails(['user', 'delete', 'alice'], 'etcdserver: user name not found');
    ok(['user', 'list']);
  });

  it('the JSON gateway: /v3/auth/user/list, /v3/auth/role/get and an error, as etcd', async () => {
    const post = async (s: RunningServer, path: string, body: unknown) => {
      const r = await fetch(s.url + path, { method: 'POST', body: JSON.stringify(body) });
      const v = (await r.json()) as Record<string, unknown>;
      delete v.header;
      return { status: r.status, body: v };
    };
    for (const [path, body] of [
      ['/v3/auth/user/list', {}],
      ['/v3/auth/role/get', { role: 'r1' }],
      ['/v3/auth/role/list', {}],
      ['/v3/auth/user/get', { name: 'nobody' }],
      ['/v3/auth/role/add', { name: '' }],
      ['/v3/auth/user/add', { name: '', password: 'x' }],
      ['/v3/auth/user/add', { name: '', options: { no_password: true } }],
      ['/v3/auth/user/grant', { user: 'nobody', role: 'r1' }],
      ['/v3/auth/role/revoke', { role: 'r1', key: Buffer.from('zz').toString('base64') }],
      ['/v3/auth/role/grant', { name: 'r1', perm: { permType: 'READWRITE', key: Buffer.from('g').toString('base64'), range_end: Buffer.from('h').toString('base64') } }],
      ['/v3/auth/role/get', { role: 'r1' }],
      ['/v3/auth/user/add', { name: 'gw', password: 'x' }],
      ['/v3/auth/user/add', { name: 'gw', password: 'x' }],
      ['/v3/auth/user/get', { name: 'gw' }],
    ] as const) {
      const [p, e] = await Promise.all([post(plinth, path, body), post(etcd, path, body)]);
      expect(p, path).toEqual(e);
    }
  });
});

describe.skipIf(!ETCDCTL_AVAILABLE)('users and roles persist', () => {
  it('a restart of Plinth keeps users, roles and permissions', async () => {
    const first = await startPlinth({ backend: 'lmdb' });
    const dataDir = first.dataDir;
    const run = (s: RunningServer, args: string[]) => {
      const r = etcdctl(s.endpoint, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    let second: RunningServer | undefined;
    try {
      run(first, ['user', 'add', 'u1:pw']);
      run(first, ['user', 'add', 'u2', '--no-password']);
      run(first, ['role', 'add', 'ra']);
      run(first, ['role', 'grant-permission', 'ra', 'readwrite', 'p/', '--prefix']);
      run(first, ['user', 'grant-role', 'u1', 'ra']);
      const before = [run(first, ['user', 'list']), run(first, ['role', 'list']), run(first, ['role', 'get', 'ra']), run(first, ['user', 'get', 'u1'])];
      await first.stop({ keepData: true });
      second = await startPlinth({ backend: 'lmdb', dataDir });
      const after = [run(second, ['user', 'list']), run(second, ['role', 'list']), run(second, ['role', 'get', 'ra']), run(second, ['user', 'get', 'u1'])];
      expect(after).toEqual(before);
      expect(after[0]).toBe('u1\nu2\n');
    } finally {
      await second?.stop({ keepData: true }).catch(() => {});
      await first.stop().catch(() => {}); // removes its temp dir, data dir included
    }
  }, 60_000);
});
