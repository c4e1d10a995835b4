import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCInvalidArgumentError,
  type IOptions,
} from 'etcd3';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// Auth over gRPC and the gateway, driven by real clients: the npm etcd3 library (users, roles, KV, watch with a
// user's token) and etcdctl / fetch with JWT tokens. The etcd3 part runs against real etcd 3.4 too, as a
// reference for the same assertions.

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Runs etcdctl and fails the test with its output when it does not exit 0. */
function ctl(endpoint: string, args: string[]): string {
  const r = etcdctl(endpoint, args);
  expect(r.code, `etcdctl ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

/** alice (role ra: readwrite a/, read r/), r/1 and secret, root; then auth enable. */
function setUpAuth(endpoint: string): void {
  ctl(endpoint, ['user', 'add', 'root:rootpw']);
  ctl(endpoint, ['user', 'add', 'alice:apw']);
  ctl(endpoint, ['role', 'add', 'ra']);
  ctl(endpoint, ['role', 'grant-permission', 'ra', 'readwrite', 'a/', '--prefix']);
  ctl(endpoint, ['role', 'grant-permission', 'ra', 'read', 'r/', '--prefix']);
  ctl(endpoint, ['user', 'grant-role', 'alice', 'ra']);
  ctl(endpoint, ['put', 'r/1', 'x']);
  ctl(endpoint, ['put', 'secret', 'y']);
  ctl(endpoint, ['auth', 'enable']);
}

/** A promise that fails after ms, so no wait in this file is unbounded. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

const kinds: Array<'plinth' | 'etcd'> = ETCD_AVAILABLE ? ['plinth', 'etcd'] : ['plinth'];

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('etcd3 client with auth enabled (%s)', (kind) => {
  let server: RunningServer;
  const clients: Etcd3[] = [];
  /** A client with short deadlines (a refused call must not wait for etcd3's 30 s defaults). */
  function client(auth?: IOptions['auth']): Etcd3 {
    const c = new Etcd3({
      hosts: `http://${server.endpoint}`,
      auth,
      dialTimeout: 5_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 8_000 }),
    });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    server = kind === 'plinth' ? await startPlinth({ backend: 'memory', extraArgs: ['--bcrypt-cost', '4'] }) : await startEtcd();
    setUpAuth(server.endpoint);
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it('alice reads and writes under a/, reads r/, and is refused elsewhere', async () => {
    const alice = client({ username: 'alice', password: 'apw' });
    await alice.put('a/1').value('v1');
    expect(await alice.get('a/1').string()).toBe('v1');
    expect(await alice.getAll().prefix('a/').strings()).toEqual({ 'a/1': 'v1' });
    expect(await alice.get('r/1').string()).toBe('x');

    const putR = await alice.put('r/1').value('nope').then(() => 'resolved', (e: unknown) => e);
    expect(putR).toBeInstanceOf(EtcdPermissionDeniedError);
    expect((putR as Error).message).toContain('etcdserver: permission denied');
    const getSecret = await alice.get('secret').string().then(() => 'resolved', (e: unknown) => e);
    expect(getSecret).toBeInstanceOf(EtcdPermissionDeniedError);
    const delAll = await alice.delete().all().then(() => 'resolved', (e: unknown) => e);
    expect(delAll).toBeInstanceOf(EtcdPermissionDeniedError);

    // Nothing was written by the refused put; root sees the old values.
    expect(ctl(server.endpoint, ['--user', 'root:rootpw', 'get', 'r/1', '--print-value-only']).trim()).toBe('x');
  });

  it('a watch opened by alice on a/ sees her put', async () => {
    const alice = client({ username: 'alice', password: 'apw' });
    const watcher = await within(alice.watch().prefix('a/').create(), 10_000, 'watch create');
    try {
      const seen = within(
        new Promise<{ key: string; value: string }>((resolve) =>
          watcher.on('put', (kv) => resolve({ key: kv.key.toString(), value: kv.value.toString() })),
        ),
        10_000,
        'watch event',
      );
      await alice.put('a/w').value('watched');
      expect(await seen).toEqual({ key: 'a/w', value: 'watched' });
    } finally {
      await within(watcher.cancel(), 10_000, 'watch cancel');
    }
  });

  it('a watch opened by alice on a key she may not read is refused with permission denied', async () => {
    const alice = client({ username: 'alice', password: 'apw' });
    const watcher = alice.watch().key('secret').watcher();
    const outcome = await within(
      new Promise<unknown>((resolve) => {
        watcher.on('error', resolve);
        watcher.on('connected', () => resolve('connected'));
      }),
      10_000,
      'watch on secret',
    );
    // A refused watcher is already gone (the etcd3 library's cancel() would wait forever on it).
    if (outcome === 'connected') await within(watcher.cancel(), 10_000, 'watch cancel');
    expect(outcome).toBeInstanceOf(EtcdPermissionDeniedError);
    expect((outcome as Error).message).toContain('etcdserver: permission denied');
  });

  it('a client without a user is refused with "user name is empty"; a wrong password with authentication failed', async () => {
    const anonymous = client();
    const noUser = await anonymous.get('a/1').string().then(() => 'resolved', (e: unknown) => e);
    expect(noUser).toBeInstanceOf(GRPCInvalidArgumentError);
    expect((noUser as Error).message).toContain('etcdserver: user name is empty');

    const wrong = client({ username: 'alice', password: 'bad' });
    const badPw = await wrong.get('a/1').string().then(() => 'resolved', (e: unknown) => e);
    expect(badPw).toBeInstanceOf(EtcdAuthenticationFailedError);
    expect((badPw as Error).message).toContain('etcdserver: authentication failed, invalid user ID or password');

    const nobody = client({ username: 'nobody', password: 'x' });
    expect(await nobody.get('a/1').then(() => 'resolved', (e: unknown) => e)).toBeInstanceOf(EtcdAuthenticationFailedError);
  });

  it('root manages users and roles through the etcd3 API; the new user gets exactly the granted range', async () => {
    const root = client({ username: 'root', password: 'rootpw' });
    expect((await root.getUsers()).map((u) => u.name).sort()).toEqual(['alice', 'root']);
    expect((await root.getRoles()).map((r) => r.name).sort()).toEqual(['ra', 'root']);
    expect((await root.user('alice').roles()).map((r) => r.name)).toEqual(['ra']);
    const perms = await root.role('ra').permissions();
    expect(perms.map((p) => p.permission).sort()).toEqual(['Read', 'Readwrite']);

    const bob = await root.user('bob').create('bpw');
    const rb = await root.role('rb').create();
    await rb.grant({ permission: 'Readwrite', range: root.range({ prefix: 'b/' }) });
    await bob.addRole(rb);
    expect((await root.user('bob').roles()).map((r) => r.name)).toEqual(['rb']);
    const rbPerms = await rb.permissions();
    expect(rbPerms).toHaveLength(1);
    expect(rbPerms[0].permission).toBe('Readwrite');
    expect(rbPerms[0].range.start.toString()).toBe('b/');
    expect(rbPerms[0].range.end.toString()).toBe('b0');

    const asBob = client({ username: 'bob', password: 'bpw' });
    await asBob.put('b/1').value('bv');
    expect(await asBob.get('b/1').string()).toBe('bv');
    expect(await asBob.get('a/1').then(() => 'resolved', (e: unknown) => e)).toBeInstanceOf(EtcdPermissionDeniedError);

    // alice may not manage users.
    const alice = client({ username: 'alice', password: 'apw' });
    expect(await alice.getUsers().then(() => 'resolved', (e: unknown) => e)).toBeInstanceOf(EtcdPermissionDeniedError);

    await root.user('bob').delete();
    expect((await root.getUsers()).map((u) => u.name).sort()).toEqual(['alice', 'root']);
    expect(await root.user('bob').roles().then(() => 'resolved', (e: unknown) => e)).toBeInstanceOf(EtcdUserNotFoundError);
  });
});

describe.skipIf(!ETCDCTL_AVAILABLE)('JWT tokens (--auth-token jwt, RS256)', () => {
  let server: RunningServer;
  let keyDir: string;
  beforeAll(async () => {
    keyDir = mkdtempSync(join(tmpdir(), 'plinth-jwt-'));
    const priv = join(keyDir, 'k.pem');
    const pub = join(keyDir, 'k.pub');
    for (const args of [['genrsa', '-out', priv, '2048'], ['rsa', '-in', priv, '-pubout', '-out', pub]]) {
      const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
    }
    server = await startPlinth({
      backend: 'memory',
      extraArgs: ['--bcrypt-cost', '4', '--auth-token', `jwt,pub-key=${pub},priv-key=${priv},sign-method=RS256,ttl=5m`],
    });
    setUpAuth(server.endpoint);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  it('etcdctl --user works with JWT tokens', () => {
    ctl(server.endpoint, ['--user', 'alice:apw', 'put', 'a/x', 'v']);
    expect(ctl(server.endpoint, ['--user', 'alice:apw', 'get', 'a/x', '--print-value-only']).trim()).toBe('v');
    const denied = etcdctl(server.endpoint, ['--user', 'alice:apw', 'get', 'secret']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('etcdserver: permission denied');
  });

  it('the gateway hands out an RS256 JWT naming alice, and accepts it in authorization', async () => {
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`http://${server.endpoint}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: token } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });

    const auth = await post('/v3/auth/authenticate', { name: 'alice', password: 'apw' });
    expect(auth.status).toBe(200);
    const { token } = (await auth.json()) as { token: string };
    const parts = token.split('.');
    expect(parts).toHaveLength(3);
    for (const p of parts) expect(p).toMatch(/^[A-Za-z0-9_-]+$/);
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString()) as Record<string, unknown>;
    expect(header.alg).toBe('RS256');
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString()) as Record<string, unknown>;
    expect(payload.username).toBe('alice');
    expect(typeof payload.revision).toBe('number');
    expect(payload.revision as number).toBeGreaterThan(0);
    // ttl=5m
    const ttl = (payload.exp as number) - Date.now() / 1000;
    expect(ttl).toBeGreaterThan(240);
    expect(ttl).toBeLessThanOrEqual(301);

    const range = await post('/v3/kv/range', { key: b64('a/x') }, token);
    expect(range.status).toBe(200);
    const body = (await range.json()) as { count?: string; kvs?: Array<{ key: string; value: string }> };
    expect(body.count).toBe('1');
    expect(Buffer.from(body.kvs![0].value, 'base64').toString()).toBe('v');

    // The same range with a tampered signature, or outside alice's permissions, is refused.
    const forged = `${parts[0]}.${parts[1]}.${parts[2].slice(0, -4)}AAAA`;
    const bad = await post('/v3/kv/range', { key: b64('a/x') }, forged);
    expect(bad.status).not.toBe(200);
    expect(await bad.text()).toContain('invalid auth token');
    const secret = await post('/v3/kv/range', { key: b64('secret') }, token);
    expect(secret.status).not.toBe(200);
    expect(await secret.text()).toContain('permission denied');
  });
});
