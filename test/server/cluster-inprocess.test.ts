import { memoryLogger, type LogRecord } from '../../src/log';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashKV } from '../../src/mvcc/hash';
import { defaultConfig, type ServerConfig } from '../../src/server/config';
import { EtcdServer } from '../../src/server/etcd-server';
import { leaderOf, until } from '../helpers/inprocess';
import { freePort } from '../helpers/servers';
import { putReq, rangeReq } from '../helpers/stores';

// Three and five members in one process over real peer connections on loopback: the write path through
// raft (forwarding from followers), linearizable reads on every member, a member stopped and started
// again, catch-up by snapshot. The process-level fault tests (kill -9, partitions) are in cluster.test.ts.

const dirs: string[] = [];
const servers = new Set<EtcdServer>();
afterEach(async () => {
  for (const s of servers) await s.close().catch(() => {});
  servers.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface MemberSpec {
  cfg: ServerConfig;
}

async function clusterSpecs(n: number, over: Partial<ServerConfig> = {}): Promise<MemberSpec[]> {
  const peers: { name: string; port: number }[] = [];
  for (let i = 1; i <= n; i++) peers.push({ name: `m${i}`, port: await freePort() });
  const initial = peers.map((p) => `${p.name}=http://127.0.0.1:${p.port}`).join(',');
  const token = `t-${Math.random().toString(36).slice(2)}`;
  return peers.map((p) => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-cluster-'));
    dirs.push(dir);
    const url = `http://127.0.0.1:${p.port}`;
    return {
      cfg: {
        ...defaultConfig(),
        name: p.name,
        dataDir: dir,
        backend: 'lmdb',
        unsafeNoFsync: true,
        initialCluster: initial,
        initialClusterToken: token,
        initialAdvertisePeerUrls: [url],
        listenPeerUrls: [new URL(url)],
        advertiseClientUrls: [`http://127.0.0.1:${p.port + 10000}`],
        heartbeatIntervalMs: 20,
        electionTimeoutMs: 200,
        ...over,
      },
    };
  });
}

const logs = new Map<string, LogRecord[]>();
async function start(spec: MemberSpec): Promise<EtcdServer> {
  const logger = memoryLogger();
  logs.set(spec.cfg.name, logger.records);
  const s = await EtcdServer.open(spec.cfg, { logger });
  servers.add(s);
  return s;
}

async function stop(s: EtcdServer): Promise<void> {
  servers.delete(s);
  await s.close();
}

const value = (s: EtcdServer, key: string, serializable = false) =>
  Promise.resolve(s.range(rangeReq(key, { serializable }))).then((r) => r.kvs[0]?.value.toString());

describe('a cluster in one process', () => {
  it('elects one leader; writes on every member are read back linearizably on every member', async () => {
    const specs = await clusterSpecs(3);
    const ms = await Promise.all(specs.map(start));
    const leader = await leaderOf(ms);
    expect(new Set(ms.map((m) => m.clusterId)).size).toBe(1);
    expect(ms.map((m) => m.members().length)).toEqual([3, 3, 3]);
    for (let i = 0; i < ms.length; i++) {
      const r = await ms[i].put(putReq(`k${i}`, `v${i}`));
      expect(r.revision).toBeGreaterThan(1);
      for (const other of ms) expect(await value(other, `k${i}`)).toBe(`v${i}`);
    }
    // Concurrent writes through followers and the leader all land, in one order on every member.
    await Promise.all(Array.from({ length: 300 }, (_, i) => ms[i % 3].put(putReq(`c${i % 17}`, `x${i}`))));
    // A linearizable read on each member sees the last write's revision.
    const revs = await Promise.all(ms.map(async (m) => (await Promise.resolve(m.range(rangeReq('c0')))).revision));
    expect(new Set(revs).size).toBe(1);
    expect(new Set(ms.map((m) => m.currentRevision())).size).toBe(1);
    const hashes = await Promise.all(ms.map((m) => hashKV(m.store, 0)));
    expect(new Set(hashes.map((h) => h.hash)).size).toBe(1);
    expect(leader.memberId).not.toBe(0n);
  });

  it('a follower stopped misses writes and catches up when it comes back; a new leader after the leader stops', async () => {
    const specs = await clusterSpecs(3);
    const ms = await Promise.all(specs.map(start));
    const leader = await leaderOf(ms);
    const fi = ms.findIndex((m) => m !== leader);
    await stop(ms[fi]);
    for (let i = 0; i < 50; i++) await leader.put(putReq(`after-${i}`, 'v'));
    ms[fi] = await start(specs[fi]);
    expect(await until(() => ms[fi].currentRevision() === leader.currentRevision(), 10_000)).toBe(true);
    expect(await value(ms[fi], 'after-49')).toBe('v');
    const li = ms.indexOf(leader);
    await stop(leader);
    const rest = ms.filter((_, i) => i !== li);
    const next = await leaderOf(rest);
    await next.put(putReq('new-leader', 'yes'));
    for (const m of rest) expect(await value(m, 'new-leader')).toBe('yes');
  });

  it('a member far behind catches up from a snapshot of the backend', async () => {
    const specs = await clusterSpecs(3, { snapshotCount: 50, snapshotCatchUpEntries: 50 });
    const ms = await Promise.all(specs.map(start));
    const leader = await leaderOf(ms);
    const fi = ms.findIndex((m) => m !== leader);
    await stop(ms[fi]);
    for (let i = 0; i < 400; i++) await leader.put(putReq(`snap-${i % 40}`, `v${i}`));
    ms[fi] = await start(specs[fi]);
    expect(await until(() => ms[fi].currentRevision() === leader.currentRevision(), 15_000)).toBe(true);
    const followerLog = logs.get(specs[fi].cfg.name)!;
    expect(await until(() => followerLog.some((l) => l.msg === 'applied incoming Raft snapshot'), 5000), 'caught up by a snapshot').toBe(true);
    expect(logs.get(specs[ms.indexOf(leader)].cfg.name)!.some((l) => l.msg === 'saved snapshot'), 'the leader took snapshots').toBe(true);
    const a = await hashKV(leader.store, 0);
    const b = await hashKV(ms[fi].store, 0);
    expect(b.hash).toBe(a.hash);
    expect(await value(ms[fi], 'snap-39', true)).toBe('v399');
  });
});
