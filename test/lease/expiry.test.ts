import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { packageDefinition, RawKv } from '../api/grpc-client';
import { startPlinth, type RunningServer } from '../helpers/servers';

const b = (s: string) => Buffer.from(s);
const pb = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as any;
const unary = (client: any, method: string, req: unknown): Promise<any> =>
  new Promise((res, rej) => client[method](req, { deadline: Date.now() + 15_000 }, (err: Error | null, out: any) => (err ? rej(err) : res(out))));

async function pool<T>(n: number, count: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

describe('lease expiry and restart', () => {
  const parent = mkdtempSync(join(tmpdir(), 'plinth-lease-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('expires 10k leases on time, each exactly once, deleting their keys with watch events', async () => {
    const server = await startPlinth({ backend: 'lmdb' });
    onTestFinished(() => server.stop()); // also when an assertion fails first
    const leaseClient = new pb.Lease(server.endpoint, grpc.credentials.createInsecure());
    const kv = new RawKv(server.endpoint);
    const N = 10_000;
    const watch = new pb.Watch(server.endpoint, grpc.credentials.createInsecure()).Watch();
    const deletedAt = new Map<string, number[]>();
    let created = false;
    watch.on('data', (r: any) => {
      if (r.created) created = true;
      for (const e of r.events) {
        if (e.type !== 'DELETE') continue;
        const k = e.kv.key.toString();
        deletedAt.set(k, [...(deletedAt.get(k) ?? []), Date.now()]);
      }
    });
    watch.on('error', () => {});
    watch.write({ create_request: { key: b('lk/'), range_end: b('lk0') } });
    while (!created) await new Promise((r) => setTimeout(r, 10));

    const granted = await pool(64, N, async (i) => {
      const ttl = 2 + (i % 4);
      // The lease is granted between these two instants: its expiry can be bounded from both sides.
      const asked = Date.now();
      const r = await unary(leaseClient, 'LeaseGrant', { TTL: ttl });
      const at = Date.now();
      await kv.put({ key: b(`lk/${i}`), value: b('v'), lease: r.ID });
      return { key: `lk/${i}`, ttl, asked, at, id: r.ID as string };
    });
    expect(new Set(granted.map((g) => g.id)).size).toBe(N);
    const deadline = Date.now() + 20_000;
    while (deletedAt.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    expect(deletedAt.size).toBe(N);
    const late: string[] = [];
    for (const g of granted) {
      const times = deletedAt.get(g.key)!;
      expect(times, `${g.key} deleted once`).toHaveLength(1);
      // Not before its TTL from the grant request; at most 2 s after its answer (the 500 ms expiry tick,
      // the revoke's round through the log).
      const early = times[0] - g.asked < g.ttl * 1000;
      if (early || times[0] - g.at > g.ttl * 1000 + 2000) late.push(`${g.key}: ${times[0] - g.at} ms after the grant's answer for TTL ${g.ttl}s`);
    }
    expect(late.slice(0, 10)).toEqual([]);
    expect((await kv.range({ key: b('lk/'), range_end: b('lk0'), count_only: true })).count).toBe('0');
    const leases = await unary(leaseClient, 'LeaseLeases', {});
    expect(leases.leases).toHaveLength(0);
    watch.end();
    kv.close();
    leaseClient.close();
    await server.stop();
  }, 60_000);

  it.each([
    ['without checkpoints, a restart renews the full TTL', [], (ttl: number) => ttl >= 9],
    ['with checkpoints, a restart keeps the remaining TTL', ['--experimental-enable-lease-checkpoint', '--experimental-lease-checkpoint-interval', '500ms'], (ttl: number) => ttl <= 8],
  ] as const)('%s', async (_name, flags, ttlOk) => {
    const dataDir = join(parent, `restart-${flags.length}`);
    let server: RunningServer = await startPlinth({ backend: 'leveldb', dataDir, extraArgs: [...flags] });
    onTestFinished(() => server.stop({ keepData: true })); // the one running then, whichever it is
    let leaseClient = new pb.Lease(server.endpoint, grpc.credentials.createInsecure());
    let kv = new RawKv(server.endpoint);
    const { ID } = await unary(leaseClient, 'LeaseGrant', { TTL: 10 });
    await kv.put({ key: b('held'), value: b('v'), lease: ID });
    await new Promise((r) => setTimeout(r, 2500));
    kv.close();
    leaseClient.close();
    await server.stop({ keepData: true });

    server = await startPlinth({ backend: 'leveldb', dataDir, extraArgs: [...flags] });
    leaseClient = new pb.Lease(server.endpoint, grpc.credentials.createInsecure());
    kv = new RawKv(server.endpoint);
    const ttl = await unary(leaseClient, 'LeaseTimeToLive', { ID, keys: true });
    expect(ttl.keys.map((k: Buffer) => k.toString())).toEqual(['held']);
    expect(Number(ttl.grantedTTL)).toBe(10);
    expect(ttlOk(Number(ttl.TTL)), `TTL after restart: ${ttl.TTL}`).toBe(true);
    expect((await kv.range({ key: b('held') })).kvs[0].lease).toBe(ID);
    kv.close();
    leaseClient.close();
    await server.stop({ keepData: true });
  }, 30_000);
});
