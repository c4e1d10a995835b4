// bench:compare --cluster: sizes, rows, member command lines (checked against Plinth's own CLI parser and
// the flags real etcd 3.4 lists), and leader agreement from StatusResponses encoded by protobufjs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/cli/flags';
import { encodeMessage } from '../../src/wire/root';
import {
  agreedLeader,
  clientEndpoints,
  type ClusterLayout,
  clusterRowIds,
  CLUSTER_ROW_IDS,
  decodeStatus,
  initialCluster,
  memberCommand,
  memberNames,
  type MemberStatus,
  parseClusterSize,
  resultBaseName,
  shellLine,
} from '../../bench/lib/cluster-cmd';
import { FlagError } from '../../bench/lib/flags';

const OPTS = { etcdBin: '/usr/bin/etcd', nodeBin: '/usr/bin/node', plinthJs: '/repo/bin/plinth.js', backend: 'lmdb', heartbeatMs: 100, electionMs: 1000 };

function layout(kind: 'etcd' | 'plinth', n = 3): ClusterLayout {
  const names = memberNames(n);
  return { kind, names, addrs: names.map((_, i) => ({ client: 20000 + 10 * i, peer: 20001 + 10 * i })), dataDirs: names.map((x) => `/d/${x}`), token: 'tok' };
}

/** The value after --flag in argv (every flag here takes one). */
const flagValue = (args: string[], flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};

describe('--cluster size and rows', () => {
  it('takes 1, 3 and 5 members and refuses anything else with a FlagError', () => {
    expect([1, 3, 5].map(parseClusterSize)).toEqual([1, 3, 5]);
    for (const bad of [0, 2, 4, 6, 7, -3]) expect(() => parseClusterSize(bad)).toThrow(FlagError);
    expect(() => parseClusterSize(2)).toThrow(/1, 3 or 5 members \(got 2\)/);
  });
  it('runs the four cluster rows by default, in table order, and subsets of them on request', () => {
    expect(clusterRowIds([])).toEqual(['put-100c', 'range-l-100c', 'range-s-100c', 'txn-put']);
    expect(clusterRowIds(['targets'])).toEqual([...CLUSTER_ROW_IDS]);
    expect(clusterRowIds(['txn-put', 'put-100c', 'txn-put'])).toEqual(['put-100c', 'txn-put']);
  });
  it('refuses single-server rows and groups instead of dropping them', () => {
    expect(() => clusterRowIds(['put-1c'])).toThrow(/--cluster runs only the workloads .* not "put-1c"/);
    expect(() => clusterRowIds(['put-100c', 'scaling'])).toThrow(FlagError);
    expect(() => clusterRowIds(['all'])).toThrow(FlagError);
  });
  it('names the result files apart from the single-server ones', () => {
    expect(resultBaseName(1)).toBe('compare');
    expect(resultBaseName(3)).toBe('compare-cluster3');
    expect(resultBaseName(5)).toBe('compare-cluster5');
  });
});

describe('member command lines', () => {
  it('builds --initial-cluster and the client endpoints in member order', () => {
    const l = layout('etcd');
    expect(initialCluster(l.names, l.addrs)).toBe('m1=http://127.0.0.1:20001,m2=http://127.0.0.1:20011,m3=http://127.0.0.1:20021');
    expect(clientEndpoints(l.addrs)).toEqual(['127.0.0.1:20000', '127.0.0.1:20010', '127.0.0.1:20020']);
    expect(() => initialCluster(['m1'], l.addrs)).toThrow(/1 names for 3 members/);
  });
  it('gives etcd and Plinth the same etcd flags; etcd adds its zap logger, Plinth its engine', () => {
    const e = memberCommand(layout('etcd'), 1, OPTS);
    const p = memberCommand(layout('plinth'), 1, OPTS);
    expect(e.cmd).toBe('/usr/bin/etcd');
    expect(p.cmd).toBe('/usr/bin/node');
    expect(p.args[0]).toBe('/repo/bin/plinth.js');
    expect(e.args.slice(-4)).toEqual(['--logger', 'zap', '--log-outputs', 'stderr']);
    expect(p.args.slice(-2)).toEqual(['--backend', 'lmdb']);
    expect(e.args.slice(0, -4)).toEqual(p.args.slice(1, -2));
    expect(flagValue(e.args, '--name')).toBe('m2');
    expect(flagValue(e.args, '--data-dir')).toBe('/d/m2');
    expect(flagValue(e.args, '--listen-client-urls')).toBe('http://127.0.0.1:20010');
    expect(flagValue(e.args, '--advertise-client-urls')).toBe('http://127.0.0.1:20010');
    expect(flagValue(e.args, '--listen-peer-urls')).toBe('http://127.0.0.1:20011');
    expect(flagValue(e.args, '--initial-advertise-peer-urls')).toBe('http://127.0.0.1:20011');
    expect(flagValue(e.args, '--initial-cluster-state')).toBe('new');
    expect(flagValue(e.args, '--initial-cluster-token')).toBe('tok');
    expect(flagValue(e.args, '--heartbeat-interval')).toBe('100');
    expect(flagValue(e.args, '--election-timeout')).toBe('1000');
  });
  it("is a command line Plinth's own CLI accepts as the member it names", () => {
    const l = layout('plinth', 5);
    for (let i = 0; i < 5; i++) {
      const c = parseArgs(memberCommand(l, i, OPTS).args.slice(1));
      if (c.kind !== 'serve') throw new Error(`parsed as ${c.kind}`);
      expect(c.config).toMatchObject({
        name: `m${i + 1}`,
        initialCluster: initialCluster(l.names, l.addrs),
        initialClusterState: 'new',
        initialClusterToken: 'tok',
        heartbeatIntervalMs: 100,
        electionTimeoutMs: 1000,
      });
    }
  });
  it.runIf(existsSync('/usr/bin/etcd'))('uses only flags real etcd 3.4 lists in its --help', () => {
    const help = execFileSync('/usr/bin/etcd', ['--help'], { encoding: 'utf8', timeout: 10_000 });
    const flags = memberCommand(layout('etcd'), 0, OPTS).args.filter((a) => a.startsWith('--'));
    expect(flags.length).toBe(13);
    for (const f of flags) expect(help, f).toMatch(new RegExp(`^\\s+${f}\\b`, 'm'));
  });
  it('refuses a member index outside the layout and layouts of mismatched lengths', () => {
    expect(() => memberCommand(layout('etcd'), 3, OPTS)).toThrow(/member 3/);
    expect(() => memberCommand({ ...layout('etcd'), dataDirs: ['/d/m1'] }, 0, OPTS)).toThrow(/1 data dirs/);
  });
  it('shows placeholders and quotes only what a shell would split', () => {
    const l: ClusterLayout = { kind: 'etcd', names: ['m1'], addrs: [{ client: 'C1', peer: 'P1' }], dataDirs: ['DIR/m1'], token: 'TOKEN' };
    const c = memberCommand(l, 0, OPTS);
    expect(shellLine(c.cmd, c.args)).toBe(
      '/usr/bin/etcd --name m1 --data-dir DIR/m1 --listen-client-urls http://127.0.0.1:C1 --advertise-client-urls http://127.0.0.1:C1 --listen-peer-urls http://127.0.0.1:P1 --initial-advertise-peer-urls http://127.0.0.1:P1 --initial-cluster m1=http://127.0.0.1:P1 --initial-cluster-state new --initial-cluster-token TOKEN --heartbeat-interval 100 --election-timeout 1000 --logger zap --log-outputs stderr',
    );
    expect(shellLine('echo', ["it's", 'a b', ''])).toBe(`echo 'it'\\''s' 'a b' ''`);
  });
});

describe('leader agreement from Maintenance.Status', () => {
  const status = (member: string, leader: string, term = '2', index = '7') =>
    decodeStatus(encodeMessage('etcdserverpb.StatusResponse', { header: { clusterId: '9', memberId: member, revision: '1', raftTerm: term }, version: '3.4.23', dbSize: '49152', leader, raftIndex: index, raftTerm: term }));
  // ids with the top bit set (as etcd's often have) must read as unsigned
  const A = (0x92b8b8062aa73d2en).toString();
  const B = (0x1760d0076ce3ead3n).toString();
  const C = (0x240a87a836bb9efn).toString();

  it('reads the member id, leader, term and index as unsigned 64-bit numbers', () => {
    expect(status(A, A, '5', '123')).toEqual({ memberId: 0x92b8b8062aa73d2en, leader: 0x92b8b8062aa73d2en, raftTerm: 5n, raftIndex: 123n });
    expect(decodeStatus(Buffer.alloc(0))).toEqual({ memberId: 0n, leader: 0n, raftTerm: 0n, raftIndex: 0n });
  });
  it('agrees when every member names the same member as leader, and says which one it is', () => {
    expect(agreedLeader([status(A, B), status(B, B), status(C, B)])).toEqual({ ok: true, leader: 1, term: 2n });
  });
  it('does not agree on no leader, split answers, an outsider, a silent member, or no members', () => {
    const no = (answers: (MemberStatus | Error)[], why: RegExp) => {
      const a = agreedLeader(answers);
      expect(a.ok).toBe(false);
      if (!a.ok) expect(a.reason).toMatch(why);
    };
    no([status(A, '0'), status(B, '0'), status(C, '0')], /no agreed leader: m1: leader 0 term 2/);
    no([status(A, A), status(B, A), status(C, C)], /no agreed leader/);
    no([status(A, '77'), status(B, '77'), status(C, '77')], /leader 4d is none of the members/);
    no([status(A, A), new Error('dial 127.0.0.1:1: timeout'), status(C, A)], /not every member answers: .*m2: error dial 127.0.0.1:1: timeout/);
    no([], /no members/);
  });
});
