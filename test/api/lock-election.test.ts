import { spawn } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCDCTL_AVAILABLE, type RunningServer } from '../helpers/servers';
import { apiTargets, startTarget } from './grpc-client';

const PROTO = join(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync(['etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto', 'etcd/etcdserver/api/v3election/v3electionpb/v3election.proto', 'etcd/etcdserver/etcdserverpb/rpc.proto'], {
  includeDirs: [PROTO], keepCase: true, longs: String, defaults: true,
});
const pkg = grpc.loadPackageDefinition(def) as any;
const b = (s: string) => Buffer.from(s);
const call = (client: any, method: string, req: unknown, ms = 10_000): Promise<any> =>
  new Promise((res, rej) => client[method](req, { deadline: Date.now() + ms }, (err: grpc.ServiceError | null, out: any) => (err ? rej(err) : res(out))));
const fails = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return { code: (err as grpc.ServiceError).code, details: (err as grpc.ServiceError).details };
  }
  throw new Error('expected a failure');
};

describe.each(apiTargets())('v3lock and v3election (%s)', (target) => {
  let server: RunningServer;
  let lock: any;
  let election: any;
  let lease: any;
  beforeAll(async () => {
    server = await startTarget(target);
    const creds = grpc.credentials.createInsecure();
    lock = new pkg.v3lockpb.Lock(server.endpoint, creds);
    election = new pkg.v3electionpb.Election(server.endpoint, creds);
    lease = new pkg.etcdserverpb.Lease(server.endpoint, creds);
  });
  afterAll(async () => {
    [lock, election, lease].forEach((c) => c?.close());
    await server?.stop();
  });

  it('Lock waits for the holder, then grants in create order; Unlock releases', async () => {
    const l1 = (await call(lease, 'LeaseGrant', { TTL: 30 })).ID;
    const l2 = (await call(lease, 'LeaseGrant', { TTL: 30 })).ID;
    const first = await call(lock, 'Lock', { name: b('L'), lease: l1 });
    expect(first.key.toString()).toBe(`L/${BigInt(l1).toString(16)}`);
    let secondDone = false;
    const second = call(lock, 'Lock', { name: b('L'), lease: l2 }).then((r) => ((secondDone = true), r));
    await new Promise((r) => setTimeout(r, 300));
    expect(secondDone).toBe(false);
    await call(lock, 'Unlock', { key: first.key });
    const got = await second;
    expect(got.key.toString()).toBe(`L/${BigInt(l2).toString(16)}`);
    expect(Number(got.header.revision)).toBeGreaterThan(Number(first.header.revision));
    await call(lock, 'Unlock', { key: got.key });
  });

  it('Lock with an unknown lease fails as etcd (UNKNOWN: etcd passes on its inner client\'s error)', async () => {
    const err = await fails(call(lock, 'Lock', { name: b('L2'), lease: '12345' }));
    expect(err).toEqual({ code: grpc.status.UNKNOWN, details: 'etcdserver: requested lease not found' });
    const err2 = await fails(call(election, 'Campaign', { name: b('E2'), lease: '12345', value: b('v') }));
    expect(err2).toEqual({ code: grpc.status.UNKNOWN, details: 'etcdserver: requested lease not found' });
  });

  it('Campaign, Leader, Proclaim, Resign, and their errors', async () => {
    const l1 = (await call(lease, 'LeaseGrant', { TTL: 30 })).ID;
    expect(await fails(call(election, 'Leader', { name: b('E') }))).toEqual({ code: grpc.status.UNKNOWN, details: 'election: no leader' });
    const c1 = await call(election, 'Campaign', { name: b('E'), lease: l1, value: b('v1') });
    expect(c1.leader).toMatchObject({ name: b('E'), key: b(`E/${BigInt(l1).toString(16)}`), lease: l1 });
    expect(c1.leader.rev).toBe(c1.header.revision);
    const leader = await call(election, 'Leader', { name: b('E') });
    expect(leader.kv.value.toString()).toBe('v1');
    await call(election, 'Proclaim', { leader: c1.leader, value: b('v2') });
    expect((await call(election, 'Leader', { name: b('E') })).kv.value.toString()).toBe('v2');
    expect(await fails(call(election, 'Proclaim', { leader: { ...c1.leader, rev: '1' }, value: b('x') }))).toEqual({ code: grpc.status.UNKNOWN, details: 'election: not leader' });
    expect(await fails(call(election, 'Proclaim', { value: b('x') }))).toEqual({ code: grpc.status.UNKNOWN, details: '"leader" field must be provided' });
    // A second contender waits; the leader resigns; it leads.
    const l2 = (await call(lease, 'LeaseGrant', { TTL: 30 })).ID;
    const observed: string[] = [];
    const obs = election.Observe({ name: b('E') });
    obs.on('data', (r: any) => observed.push(r.kv.value.toString()));
    obs.on('error', () => {});
    const c2 = call(election, 'Campaign', { name: b('E'), lease: l2, value: b('w1') });
    await new Promise((r) => setTimeout(r, 300));
    await call(election, 'Resign', { leader: c1.leader });
    const won = await c2;
    expect(won.leader.key.toString()).toBe(`E/${BigInt(l2).toString(16)}`);
    await new Promise((r) => setTimeout(r, 300));
    expect(observed).toEqual(['v2', 'w1']);
    obs.cancel();
    // The leader's lease revoked: no leader.
    await call(lease, 'LeaseRevoke', { ID: l2 });
    expect(await fails(call(election, 'Leader', { name: b('E') }))).toEqual({ code: grpc.status.UNKNOWN, details: 'election: no leader' });
  });

  it.skipIf(!ETCDCTL_AVAILABLE)('etcdctl lock serializes two holders', async () => {
    const run = (tag: string, ms: number) =>
      new Promise<string>((res) => {
        const p = spawn('etcdctl', ['--endpoints', server.endpoint, 'lock', 'ctl', '--', 'sh', '-c', `echo ${tag}-in; sleep ${ms / 1000}; echo ${tag}-out`], { env: { ...process.env, ETCDCTL_API: '3' } });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        const t = setTimeout(() => p.kill(), 10_000);
        p.on('exit', () => (clearTimeout(t), res(out)));
      });
    const lines: string[] = [];
    const a = run('a', 800).then((o) => lines.push(...o.trim().split('\n').filter((l) => /-(in|out)$/.test(l))));
    await new Promise((r) => setTimeout(r, 300));
    const bb = run('b', 0).then((o) => lines.push(...o.trim().split('\n').filter((l) => /-(in|out)$/.test(l))));
    await Promise.all([a, bb]);
    expect(lines).toEqual(['a-in', 'a-out', 'b-in', 'b-out']);
  });

  it('the npm etcd3 client locks and elects', async () => {
    const client = new Etcd3({ hosts: server.url });
    try {
      // etcd3's lock is a try-lock: a second acquire fails while the first holds it.
      const m1 = client.lock('npm-lock').ttl(10);
      await m1.acquire();
      await expect(client.lock('npm-lock').ttl(10).acquire()).rejects.toThrow(/Failed to acquire a lock on npm-lock/);
      await m1.release();
      const m2 = client.lock('npm-lock').ttl(10);
      await m2.acquire();
      await m2.release();

      const e = client.election('npm-election', 5);
      const c = e.campaign('candidate-1');
      await new Promise<void>((res, rej) => (c.on('elected', () => res()), c.on('error', rej)));
      expect(await e.leader()).toBe('candidate-1');
      await c.resign();
    } finally {
      client.close();
    }
  });
});
