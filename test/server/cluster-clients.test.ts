import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster';
import { EtcdGrpc } from '../helpers/etcd-grpc';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE } from '../helpers/servers';

// What clients see of a 3-member cluster, the same on real etcd 3.4 and on Plinth: etcdctl's member
// list and endpoint status/health with --cluster, leases granted, kept alive, looked at and revoked
// through followers, a lease surviving a change of leader and expiring after it, /health going false
// on a member cut off from the others and true again once healed.

const kinds = [...(ETCD_AVAILABLE ? (['etcd'] as const) : []), 'plinth' as const];

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request(url, { method: 'GET', timeout: 5000 }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', rej);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function etcdctlAsync(endpoint: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((res) => {
    execFile('etcdctl', ['--endpoints', endpoint, '--command-timeout=5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 }, (err, stdout, stderr) =>
      res({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? -1) : 0 }),
    );
  });
}

/** etcdctl -w json prints uint64 IDs as JSON numbers: keep them exact (as strings) before parsing. */
const parseJson = (out: string) => JSON.parse(out.replace(/("(?:ID|leader|member_id|cluster_id)":)(\d+)/g, '$1"$2"'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('clients of a 3-member %s cluster', (kind) => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ kind, size: 3, proxies: true, heartbeatMs: 50, electionMs: 500 });
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  // Asynchronous: the fault proxies run in this process and must keep forwarding meanwhile.
  const ctl = (i: number, args: string[]) => etcdctlAsync(c.members[i].endpoint, args);

  it('member list, endpoint status --cluster and endpoint health --cluster', async () => {
    const l = await c.waitForLeader();
    const list = parseJson((await ctl((l + 1) % 3, ['member', 'list', '-w', 'json'])).stdout);
    expect(list.members.map((m: { name: string }) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const m of c.members) {
      const got = list.members.find((x: { name: string }) => x.name === m.name);
      expect(BigInt(got.ID)).toBe(m.id);
      expect(got.peerURLs).toEqual([m.peerUrl]);
      expect(got.clientURLs).toEqual([m.clientUrl]);
    }
    const status = parseJson((await ctl(0, ['endpoint', 'status', '--cluster', '-w', 'json'])).stdout) as { Endpoint: string; Status: any }[];
    expect(status.map((s) => s.Endpoint).sort()).toEqual(c.members.map((m) => m.clientUrl).sort());
    expect(new Set(status.map((s) => s.Status.leader)).size).toBe(1);
    expect(BigInt(status[0].Status.leader)).toBe(c.members[l].id);
    expect(new Set(status.map((s) => s.Status.raft_term)).size).toBe(1);
    for (const s of status) expect(s.Status.raftAppliedIndex ?? s.Status.raft_applied_index).toBeDefined();
    const health = await ctl(2, ['endpoint', 'health', '--cluster']);
    expect(health.code, health.stderr).toBe(0);
    for (const m of c.members) expect(health.stdout + health.stderr).toContain(`${m.clientUrl} is healthy`);
  });

  it('leases through followers: grant, attach, keep-alive, time-to-live, revoke', async () => {
    const l = await c.waitForLeader();
    const [f1, f2] = [(l + 1) % 3, (l + 2) % 3];
    const grant = await ctl(f1, ['lease', 'grant', '30']);
    expect(grant.code, grant.stderr).toBe(0);
    const id = /lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(grant.stdout)![1];
    expect((await ctl(f2, ['put', 'leased', 'v', '--lease', id])).code).toBe(0);
    const ka = await ctl(f1, ['lease', 'keep-alive', '--once', id]);
    expect(ka.stdout).toContain(`lease ${id} keepalived with TTL(30)`);
    const ttl = await ctl(f2, ['lease', 'timetolive', id, '--keys']);
    expect(ttl.stdout).toMatch(new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[leased\\]\\)`));
    const remaining = Number(/remaining\((\d+)s\)/.exec(ttl.stdout)![1]);
    expect(remaining).toBeGreaterThan(20);
    expect(remaining).toBeLessThanOrEqual(30);
    expect((await ctl(f1, ['lease', 'list'])).stdout).toContain(id);
    expect((await ctl(f2, ['lease', 'revoke', id])).stdout).toContain(`lease ${id} revoked`);
    for (let i = 0; i < 3; i++) expect((await ctl(i, ['get', 'leased', '--print-value-only'])).stdout.trim()).toBe('');
    const gone = await ctl(f1, ['lease', 'keep-alive', '--once', id]);
    expect(gone.stdout + gone.stderr).toMatch(/lease not found|TTL\(0\)|expired or revoked/i);
  });

  it('/health is false on a member cut off from the others, and true again once healed', async () => {
    const l = await c.waitForLeader();
    for (const m of c.members) expect(await httpGet(`${m.clientUrl}/health`)).toEqual({ status: 200, body: '{"health":"true"}' });
    const f = (l + 1) % 3;
    c.isolate(f, 'cut');
    try {
      let last = '';
      // As Go's http.Error writes it: the body and a newline.
      const unhealthy = await until(async () => (last = (await httpGet(`${c.members[f].clientUrl}/health`)).body) === '{"health":"false"}\n', 10_000);
      expect(unhealthy, `last /health answer: ${last}`).toBe(true);
      expect((await httpGet(`${c.members[f].clientUrl}/health`)).status).toBe(503);
      // The majority is fine.
      expect((await httpGet(`${c.members[(f + 1) % 3].clientUrl}/health`)).body).toBe('{"health":"true"}');
      // A client that requires a leader (clientv3.WithRequireLeader) is refused by the cut-off member, as
      // etcd's interceptor refuses it; its watch (etcdctl watch requires a leader) ends likewise.
      const g = new EtcdGrpc(c.members[f].endpoint);
      try {
        const refused = await g.call('kv', 'Range', { key: Buffer.from('x') }, 3000, { requireLeader: true }).then(() => undefined, (e) => e);
        expect(refused).toMatchObject({ code: 14, details: 'etcdserver: no leader' });
      } finally {
        g.close();
      }
      const watch = await ctl(f, ['watch', 'x']);
      expect(watch.stderr).toContain('etcdserver: no leader');
    } finally {
      c.heal(f);
    }
    expect(await until(async () => (await httpGet(`${c.members[f].clientUrl}/health`)).body === '{"health":"true"}', 15_000)).toBe(true);
  });

  it('a lease outlives a change of leader (its TTL goes on from the new leader) and then expires everywhere', async () => {
    const l = await c.waitForLeader();
    const f = (l + 1) % 3;
    const grant = await ctl(f, ['lease', 'grant', '4']);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1];
    expect((await ctl(f, ['put', 'short', 'lived', '--lease', id])).code).toBe(0);
    const t0 = Date.now();
    await c.kill(l);
    await c.waitForLeader(15_000, { not: l });
    // Not before its TTL, counted from the grant.
    if (Date.now() - t0 < 3000) expect((await ctl(f, ['get', 'short', '--print-value-only'])).stdout.trim()).toBe('lived');
    const others = [0, 1, 2].filter((i) => i !== l);
    const empty = async (i: number, ...extra: string[]) => (await ctl(i, ['get', 'short', '--print-value-only', ...extra])).stdout.trim() === '';
    expect(await until(async () => (await Promise.all(others.map((i) => empty(i)))).every(Boolean), 20_000), 'the lease expired').toBe(true);
    await c.restart(l);
    expect(await until(() => empty(l, '--consistency', 's'), 15_000)).toBe(true);
  });
});
