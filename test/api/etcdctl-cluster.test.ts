import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

// etcdctl's cluster-level commands against Plinth, and the same commands against real etcd: the
// answers must have the same shape and the same values where they do not depend on timing.
describe.skipIf(!ETCDCTL_AVAILABLE || !ETCD_AVAILABLE)('etcdctl endpoint and member commands', () => {
  let plinth: RunningServer;
  let etcd: RunningServer;
  beforeAll(async () => {
    etcd = await startEtcd();
    // Same peer URL and token as the etcd: the member and cluster IDs must come out the same.
    const peer = /"peerURLs":\["([^"]+)"/.exec(etcdctl(etcd.endpoint, ['member', 'list', '-w', 'json']).stdout)![1];
    plinth = await startPlinth({ backend: 'lmdb', extraArgs: ['--initial-advertise-peer-urls', peer] });
  });
  afterAll(async () => {
    await Promise.all([plinth?.stop(), etcd?.stop()]);
  });

  const json = (s: RunningServer, args: string[]) => {
    const r = etcdctl(s.endpoint, [...args, '-w', 'json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  // uint64 IDs lose precision in JSON.parse: read them from the text.
  const rawIds = (s: RunningServer) => {
    const out = etcdctl(s.endpoint, ['member', 'list', '-w', 'json']).stdout;
    return [...out.matchAll(/"(cluster_id|member_id|ID)":(\d+)/g)].map((m) => `${m[1]}=${m[2]}`);
  };

  it('endpoint health: healthy, as etcd', () => {
    for (const s of [plinth, etcd]) {
      const r = etcdctl(s.endpoint, ['endpoint', 'health']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toContain(`${s.endpoint} is healthy: successfully committed proposal`);
    }
  });

  it('member list: same member and cluster IDs as a default etcd, advertised client URL', () => {
    const p = json(plinth, ['member', 'list']);
    const e = json(etcd, ['member', 'list']);
    expect(rawIds(plinth)).toEqual(rawIds(etcd));
    expect(p.members).toHaveLength(1);
    expect(Object.keys(p.members[0]).sort()).toEqual(Object.keys(e.members[0]).sort());
    expect(p.members[0]).toMatchObject({ name: 'default', clientURLs: [plinth.url] });
  });

  it('endpoint status: same fields, leader is itself, raft index moves with writes', () => {
    // A fresh member's zero fields are left out of etcdctl's JSON; write once to both first.
    for (const s of [plinth, etcd]) expect(etcdctl(s.endpoint, ['put', 'first', 'v']).code).toBe(0);
    const before = json(plinth, ['endpoint', 'status'])[0].Status;
    const e = json(etcd, ['endpoint', 'status'])[0].Status;
    expect(Object.keys(before).sort()).toEqual(Object.keys(e).sort());
    expect(before.version).toBe(e.version);
    expect(before.leader).toBe(before.header.member_id);
    expect(before.dbSize).toBeGreaterThan(0);
    expect(etcdctl(plinth.endpoint, ['put', 'status-key', 'v']).code).toBe(0);
    const after = json(plinth, ['endpoint', 'status'])[0].Status;
    expect(after.raftIndex).toBe(before.raftIndex + 1);
    expect(after.header.revision).toBe(before.header.revision + 1);
  });

  it('alarm list: empty on a fresh member, as etcd', () => {
    for (const s of [plinth, etcd]) {
      const r = etcdctl(s.endpoint, ['alarm', 'list']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('');
    }
  });
});
