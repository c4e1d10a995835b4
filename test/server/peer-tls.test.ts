import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster';
import { makeTestCerts, type TestCerts } from '../helpers/certs';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl } from '../helpers/servers';

// Peer TLS (issue #15): 3-member clusters on https:// peer URLs with etcd's peer flags (mutual TLS with the
// test CA), Plinth and real etcd 3.4 started the same way; and a member whose certificate is of another CA
// is kept out.

const kinds: Array<'etcd' | 'plinth'> = ETCD_AVAILABLE ? ['plinth', 'etcd'] : ['plinth'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let certs: TestCerts;
beforeAll(async () => {
  certs = await makeTestCerts();
});
afterAll(async () => {
  await certs?.cleanup();
});

const peerFlags = (c: { cert: string; key: string }) => [
  '--peer-cert-file', c.cert, '--peer-key-file', c.key, '--peer-trusted-ca-file', certs.ca, '--peer-client-cert-auth',
];

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('a 3-member %s cluster on https peer URLs', (kind) => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ kind, size: 3, peerScheme: 'https', extraArgs: () => peerFlags(certs.peer), heartbeatMs: 50, electionMs: 500, backend: 'memory' });
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  it('replicates writes to every member, and a restarted follower catches up over TLS', async () => {
    const l = await c.waitForLeader();
    const f = (l + 1) % 3;
    expect(etcdctl(c.members[f].endpoint, ['put', 'k', 'v1']).code).toBe(0);
    const list = JSON.parse(etcdctl(c.members[l].endpoint, ['member', 'list', '-w', 'json']).stdout) as { members: { peerURLs: string[] }[] };
    for (const m of list.members) expect(m.peerURLs[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await c.stop(f);
    for (let i = 0; i < 20; i++) expect(etcdctl(c.members[l].endpoint, ['put', `k${i}`, 'x']).code).toBe(0);
    await c.restart(f);
    const deadline = Date.now() + 15_000;
    let got = '';
    while (Date.now() < deadline) {
      got = etcdctl(c.members[f].endpoint, ['get', 'k19', '--consistency=s', '--print-value-only']).stdout.trim();
      if (got === 'x') break;
      await sleep(200);
    }
    expect(got).toBe('x');
    for (const m of c.members) expect(etcdctl(m.endpoint, ['get', 'k', '--consistency=s', '--print-value-only']).stdout.trim()).toBe('v1');
  }, 60_000);
});

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)('a 3-member %s cluster with --peer-auto-tls', (kind) => {
  it('forms, with self-signed peer certificates made in each data dir, and replicates', async () => {
    const c = await startCluster({ kind, size: 3, peerScheme: 'https', extraArgs: ['--peer-auto-tls'], heartbeatMs: 50, electionMs: 500, backend: 'memory' });
    try {
      const l = await c.waitForLeader();
      expect(etcdctl(c.members[l].endpoint, ['put', 'auto', 'tls']).code).toBe(0);
      for (const m of c.members) {
        let got = '';
        for (let i = 0; i < 50 && got !== 'tls'; i++, await sleep(100)) got = etcdctl(m.endpoint, ['get', 'auto', '--consistency=s', '--print-value-only']).stdout.trim();
        expect(got).toBe('tls');
      }
    } finally {
      await c.close();
    }
  }, 60_000);
});

describe.skipIf(!ETCDCTL_AVAILABLE)('peer TLS refusals', () => {
  it('--peer-cert-allowed-cn: a peer certificate with another CN is refused, so no member hears another', async () => {
    const err = await startCluster({
      // Slow elections: fewer log lines, so the members' last lines still show why they cannot connect.
      kind: 'plinth', size: 3, peerScheme: 'https', heartbeatMs: 400, electionMs: 4000, backend: 'memory', readyTimeoutMs: 6000,
      extraArgs: () => [...peerFlags(certs.peer), '--peer-cert-allowed-cn', 'someone-else'],
    }).then(async (c) => {
      await c.close();
      return new Error('the cluster came up');
    }, (e: Error) => e);
    expect(err.message).toMatch(/no agreed leader|no leader/);
    // Each dialer refuses the others' certificates (etcd checks the allowed CN on both sides).
    expect(err.message).toMatch(/cannot connect to peer [0-9a-f]+ at 127\.0\.0\.1:\d+: .*client certificate authentication failed/);
  }, 60_000);

  it('a member whose certificate is of another CA gets no connection; the other two keep a quorum', async () => {
    // The cluster helper wants every member to agree on a leader: here m1 and m2 do, m3 never hears from them.
    const err = await startCluster({
      kind: 'plinth', size: 3, peerScheme: 'https', heartbeatMs: 50, electionMs: 500, backend: 'memory', readyTimeoutMs: 8000,
      extraArgs: (i) => peerFlags(i === 2 ? certs.foreignClient : certs.peer),
    }).then(async (c) => {
      await c.close();
      return new Error('the cluster came up with m3 in it');
    }, (e: Error) => e);
    const m = /m1: leader ([0-9a-f]+) term \d+; m2: leader ([0-9a-f]+) term \d+; m3: leader 0 term/.exec(err.message);
    expect(m, err.message.slice(0, 300)).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    expect(m![1]).not.toBe('0');
    // Its connections were refused for their certificate, and logged as etcd logs them.
    expect(err.message).toMatch(/rejected connection".*(UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate)/);
  }, 60_000);
});
