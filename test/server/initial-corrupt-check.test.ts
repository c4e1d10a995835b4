import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/storage';
import { startCluster, type Cluster } from '../helpers/cluster';
import { EtcdGrpc } from '../helpers/etcd-grpc';

// --experimental-initial-corrupt-check (kubeadm passes it), as etcd's CheckInitialHashKV: a restarted
// member compares its KV hash at its revision with each peer's before raft runs or clients are served;
// a different hash at the same compact revision stops it with "found data inconsistency with peers".

describe('--experimental-initial-corrupt-check on a 3-member plinth cluster', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ kind: 'plinth', size: 3, heartbeatMs: 50, electionMs: 500, extraArgs: ['--experimental-initial-corrupt-check'] });
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const grpcOf = (i: number) => new EtcdGrpc(c.members[i].endpoint);
  const put = async (i: number, key: string, value: string) => {
    const g = grpcOf(i);
    try {
      await g.call('kv', 'Put', { key: Buffer.from(key), value: Buffer.from(value) }, 5000);
    } finally {
      g.close();
    }
  };
  const revisions = async () => Promise.all([0, 1, 2].map(async (i) => Number((await c.status(i, 2000)).header.revision)));

  it('passes on a member whose data agrees; refuses to start one whose data was changed behind its back', async () => {
    for (let i = 0; i < 20; i++) await put(i % 3, `k${i}`, `value-${i}`);
    // Every member has applied every put.
    for (let t = 0; ; t++) {
      const revs = await revisions();
      if (revs.every((r) => r === revs[0])) break;
      if (t > 100) throw new Error(`revisions never agreed: ${revs}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    await c.stop(1);
    await c.restart(1);
    expect(c.members[1].logs()).toContain('"msg":"starting initial corruption check"');
    expect(c.members[1].logs()).toContain('"msg":"initial corruption checking passed; no corruption"');

    // Change one value in m3's backend while it is down, keeping the record well-formed: same revision,
    // same compaction, another hash.
    await c.stop(2);
    const backend = await openBackend('lmdb', { dir: join(c.members[2].dataDir, 'member', 'snap') });
    let last: [Buffer, Buffer] | undefined;
    await backend.scan('key', Buffer.alloc(0), undefined, (k, v) => void (last = [Buffer.from(k), Buffer.from(v)]));
    expect(last).toBeDefined();
    const changed = Buffer.from(last![1]);
    changed[changed.length - 1] ^= 1; // the last byte of the value (KeyValue's last field without a lease)
    backend.put('key', last![0], changed);
    await backend.commit();
    await backend.close();

    const before = c.members[2].logs().length;
    c.respawn(2);
    const exit = await c.waitExit(2, 30_000);
    const logs = c.members[2].logs().slice(before);
    expect(exit, logs.slice(-3000)).not.toBe('timeout');
    expect(exit).not.toBe(0);
    expect(logs).toContain('"msg":"found different hash values from remote peer"');
    expect(logs).toMatch(/"msg":"failed to start etcd","error":"[0-9a-f]+ found data inconsistency with peers"/);
    expect(logs).not.toContain('serving client traffic');
    // The two others still serve, with their data as it was.
    const g = grpcOf(0);
    try {
      expect(String((await g.call<{ kvs: { value: Buffer }[] }>('kv', 'Range', { key: Buffer.from('k19') }, 5000)).kvs[0].value)).toBe('value-19');
    } finally {
      g.close();
    }
  }, 90_000);
});
