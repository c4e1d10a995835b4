import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCDCTL_AVAILABLE, etcdctl, type RunningServer } from '../helpers/servers';
import { apiTargets, packageDefinition, startTarget } from './grpc-client';

const pb = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as any;
const call = (client: any, method: string, req: unknown): Promise<any> =>
  new Promise((res, rej) => client[method](req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, out: any) => (err ? rej(err) : res(out))));
const fails = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (e: grpc.ServiceError) => ({ code: e.code, details: e.details }));

describe.each(apiTargets())('Lease API (%s)', (target) => {
  let server: RunningServer;
  let lease: any;
  beforeAll(async () => {
    server = await startTarget(target);
    lease = new pb.Lease(server.endpoint, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    lease?.close();
    await server?.stop();
  });

  it('grants with a chosen id, refuses a duplicate and a TTL too large, clamps the minimum TTL', async () => {
    expect(await call(lease, 'LeaseGrant', { ID: '4242', TTL: 1 })).toMatchObject({ ID: '4242', TTL: '2' });
    expect(await fails(call(lease, 'LeaseGrant', { ID: '4242', TTL: 10 }))).toEqual({ code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: lease already exists' });
    expect(await fails(call(lease, 'LeaseGrant', { TTL: 9_000_000_001 }))).toEqual({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: too large lease TTL' });
    const auto = await call(lease, 'LeaseGrant', { TTL: 30 });
    expect(BigInt(auto.ID)).toBeGreaterThan(0n);
    const leases = await call(lease, 'LeaseLeases', {});
    expect(leases.leases.map((l: any) => l.ID).sort()).toEqual([auto.ID, '4242'].sort());
  });

  it('answers unknown leases as etcd: revoke fails, time-to-live is -1, keep-alive TTL is 0', async () => {
    expect(await fails(call(lease, 'LeaseRevoke', { ID: '999' }))).toEqual({ code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
    expect(await call(lease, 'LeaseTimeToLive', { ID: '999' })).toMatchObject({ ID: '999', TTL: '-1' });
    const ka = lease.LeaseKeepAlive();
    const got = new Promise<any>((r) => ka.once('data', r));
    ka.write({ ID: '999' });
    expect(await got).toMatchObject({ ID: '999', TTL: '0' });
    ka.end();
  });

  it('keeps many leases alive on one stream', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, () => call(lease, 'LeaseGrant', { TTL: 3 }).then((r) => r.ID as string)));
    const ka = lease.LeaseKeepAlive();
    const seen = new Map<string, number>();
    ka.on('data', (r: any) => seen.set(r.ID, Number(r.TTL)));
    ka.on('error', () => {});
    for (let round = 0; round < 3; round++) {
      for (const id of ids) ka.write({ ID: id });
      await new Promise((r) => setTimeout(r, 1500));
    }
    // 4.5 s after the grant, with a 3 s TTL: alive only because of the keep-alives.
    for (const id of ids) {
      expect(seen.get(id)).toBe(3);
      expect(Number((await call(lease, 'LeaseTimeToLive', { ID: id })).TTL)).toBeGreaterThan(0);
    }
    ka.end();
  });

  it.skipIf(!ETCDCTL_AVAILABLE)('etcdctl lease grant, timetolive --keys, keep-alive --once, revoke, list', () => {
    const id = /lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(etcdctl(server.endpoint, ['lease', 'grant', '30']).stdout)![1];
    expect(etcdctl(server.endpoint, ['put', 'lk', 'v', `--lease=${id}`]).code).toBe(0);
    expect(etcdctl(server.endpoint, ['lease', 'timetolive', id, '--keys']).stdout).toMatch(new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[lk\\]\\)`));
    expect(etcdctl(server.endpoint, ['lease', 'keep-alive', '--once', id]).stdout).toContain(`lease ${id} keepalived with TTL(30)`);
    expect(etcdctl(server.endpoint, ['lease', 'list']).stdout).toContain(id);
    expect(etcdctl(server.endpoint, ['lease', 'revoke', id]).stdout).toContain(`lease ${id} revoked`);
    expect(etcdctl(server.endpoint, ['get', 'lk']).stdout).toBe('');
  });

  it('the npm etcd3 client: lease, put with it, keep-alive, revoke', async () => {
    const client = new Etcd3({ hosts: server.url });
    try {
      const l = client.lease(3);
      await l.put('npm-lease-key').value('v');
      expect(await client.get('npm-lease-key').string()).toBe('v');
      await new Promise((r) => setTimeout(r, 4000)); // the client keeps it alive past its TTL
      expect(await client.get('npm-lease-key').string()).toBe('v');
      await l.revoke();
      expect(await client.get('npm-lease-key').string()).toBeNull();
    } finally {
      client.close();
    }
  });
});
