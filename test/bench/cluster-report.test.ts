// bench:compare --cluster's accounting and tables: CPU per member from two snapshots, medians per role,
// elections under load, and the rendered report's cluster parts.
import { describe, expect, it } from 'vitest';
import { clusterCpuUse } from '../../bench/lib/machine';
import { clusterDetailTable, costRatios, electionsDuring, leaderAndFollowers, memberMedians, renderClusterMarkdown, runNotes } from '../../bench/lib/cluster-report';
import type { MemberRun, RowResult, RunMetrics } from '../../bench/lib/report';

function run(rps: number, cpu: [number, number, number], leader: number, opts: Partial<RunMetrics> = {}): RunMetrics {
  const members: MemberRun[] = cpu.map((c, i) => ({ name: `m${i + 1}`, role: i === leader ? 'leader' : 'follower', cpuMsPer1k: c, hwmMb: 100 + 10 * i, rssMb: 90 + 10 * i }));
  return {
    ok: true, rps, p50: 5, p90: 8, p99: 12, p999: 20, max: 30, count: 1000, errors: 0,
    hwmMb: members.reduce((a, m) => a + m.hwmMb, 0), cpuMsPer1k: cpu[0] + cpu[1] + cpu[2], othersPct: 3,
    members,
    cluster: { size: 3, readyMs: 2500, leaderBefore: `m${leader + 1}`, leaderAfter: `m${leader + 1}`, termBefore: 2, termAfter: 2 },
    ...opts,
  };
}

const row = (etcd: RunMetrics[], plinth: RunMetrics[]): RowResult => ({
  id: 'put-100c', title: 'put, 100 clients', metric: 'rps', target: true, driver: 'go',
  command: 'benchmark --endpoints=127.0.0.1:C1,127.0.0.1:C2,127.0.0.1:C3 --precise put', runs: { etcd, plinth },
});

describe('CPU of each member', () => {
  it('splits the machine\'s busy ticks into members, us, and others', () => {
    const a = { busy: 1000, all: 4000, members: [100, 200, 300], self: 50 };
    const b = { busy: 1400, all: 4400, members: [250, 230, 330], self: 100 }; // 400 busy of 400: 150+30+30 members, 50 us
    const u = clusterCpuUse(a, b);
    expect(u.memberSec).toEqual([1.5, 0.3, 0.3]);
    expect(u.serverSec).toBeCloseTo(2.1, 10);
    expect(u.driverSec).toBe(0.5);
    expect(u.othersPct).toBeCloseTo((140 / 400) * 100, 10);
  });
  it('does not make up a number for a member that vanished, and refuses mismatched snapshots', () => {
    const u = clusterCpuUse({ busy: 0, all: 100, members: [0, 0], self: 0 }, { busy: 50, all: 200, members: [10, NaN], self: 0 });
    expect(u.memberSec[0]).toBe(0.1);
    expect(u.memberSec[1]).toBeNaN();
    expect(u.serverSec).toBeNaN();
    expect(u.othersPct).toBeNaN();
    expect(() => clusterCpuUse({ busy: 0, all: 0, members: [1], self: 0 }, { busy: 0, all: 0, members: [1, 2], self: 0 })).toThrow(/1 members before, 2 after/);
  });
});

describe('per-role medians', () => {
  it('separates the leader (whichever member it was) from the followers in name order', () => {
    const s = leaderAndFollowers(run(1, [10, 20, 30], 1));
    expect(s.leader?.name).toBe('m2');
    expect(s.followers.map((m) => m.name)).toEqual(['m1', 'm3']);
  });
  it('takes medians per role over good runs only', () => {
    const runs = [run(1, [90, 10, 12], 0), run(1, [14, 100, 16], 1), run(1, [18, 20, 80], 2), { ...run(1, [1, 1, 1], 0), ok: false }];
    expect(memberMedians(runs, 'cpuMsPer1k')).toEqual({ leader: 90, followers: [14, 16] });
    expect(memberMedians([], 'hwmMb')).toEqual({ leader: NaN, followers: [] });
  });
  it('counts runs whose leader or term changed under the load', () => {
    const moved = run(1, [1, 1, 1], 0, { cluster: { size: 3, readyMs: 1, leaderBefore: 'm1', leaderAfter: 'm2', termBefore: 2, termAfter: 3 } });
    const reelected = run(1, [1, 1, 1], 0, { cluster: { size: 3, readyMs: 1, leaderBefore: 'm1', leaderAfter: 'm1', termBefore: 2, termAfter: 4 } });
    expect(electionsDuring([run(1, [1, 1, 1], 0), moved, reelected])).toBe(2);
  });
});

describe('cluster report', () => {
  const r = row([run(1000, [60, 20, 20], 0), run(1200, [22, 21, 62], 2), run(1100, [21, 61, 20], 1)], [run(2000, [40, 10, 10], 1), run(2200, [42, 12, 11], 1), { ...run(0, [0, 0, 0], 0), ok: false, note: 'member m3 died during the run (SIGSEGV); member logs kept in /tmp/x' }]);

  it('shows summed and per-role CPU, per-member RSS, and election counts', () => {
    const t = clusterDetailTable([r]);
    const [etcdLine, plinthLine] = t.split('\n').slice(2);
    // etcd: req/s median 1100; CPU sums 100/105/102; leaders 60/62/61; first followers 20/22/21, second 20/21/20;
    // peak RSS of the leaders m1/m3/m2 = 100/120/110, first followers m2/m1/m1, second m3/m2/m3
    expect(etcdLine).toBe('| put-100c | etcd | 1,100 | 5.00 | 8.00 | 12.0 | 20.0 | 30.0 | 102 | 61 | 21 / 20 | 110 | 100 / 120 | 2.5 | 0 | 3/3 | 0 |');
    expect(plinthLine).toMatch(/^\| put-100c \| Plinth \| 2,100 \|.* \| 2\/3 \| 0 \|$/);
  });
  it('gives cost ratios of CPU per request and summed peak RSS', () => {
    const c = costRatios(r);
    expect(c.cpu).toBeCloseTo(62.5 / 102, 10);
    expect(c.rss).toBeCloseTo(330 / 330, 10);
  });
  it('lists the runs that failed or had something to say, with where their logs are', () => {
    expect(runNotes([r])).toEqual(['- put-100c, Plinth, round 3: failed: member m3 died during the run (SIGSEGV); member logs kept in /tmp/x']);
  });
  it('renders the whole page: title, headline ratio, commands, failures', () => {
    const md = renderClusterMarkdown(
      {
        command: 'npm run bench:compare -- --cluster 3 --quick', rounds: 3, quick: true, clusterSize: 3, elapsedSec: 100, baseDir: '/var/tmp/x',
        driverNote: "etcd 3.4's own Go tool", rows: [r],
        machine: { cores: 2, cpu: 'CPU', ramGiB: 8, kernel: 'Linux', node: 'v20', etcd: '3.4.23', disk: '/var/tmp', fsyncMs: 1, git: 'abc (branch main)', date: '2026-12-04T00:00:00Z' },
        memberCommands: { etcd: ['/usr/bin/etcd --name m1'], plinth: ['node bin/plinth.js --name m1'] },
      },
      'compare-cluster3.svg',
    );
    expect(md).toMatch(/^# Plinth vs etcd 3\.4\.23, 3-member clusters, side by side/);
    expect(md).toContain('| put, 100 clients | go | throughput (req/s) | 1,100 | 2,100 | **1.91** | Plinth |');
    expect(md).toContain('![Plinth vs etcd, 3-member clusters](compare-cluster3.svg)');
    expect(md).toContain('put-100c: benchmark --endpoints=127.0.0.1:C1,127.0.0.1:C2,127.0.0.1:C3 --precise put');
    expect(md).toContain('/usr/bin/etcd --name m1\nnode bin/plinth.js --name m1');
    expect(md).toContain('### Runs with failures, errors or an election');
  });
});
