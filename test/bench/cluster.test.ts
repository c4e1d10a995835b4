// bench/lib/cluster.ts against the real servers: a fresh 3-member cluster of real etcd 3.4 and of Plinth
// (dist/ built), one small measured run on each, and nothing left behind (processes by PID, data dirs).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClusterStartOpts, runOnFreshCluster, startCluster } from '../../bench/lib/cluster';
import { closeAll, connect, unary } from '../../bench/lib/load';
import { killAllSync } from '../../bench/lib/servers';
import { summarize } from '../../bench/lib/stats';
import { encodePut } from '../../bench/lib/wire';

const ROOT = resolve(__dirname, '..', '..');
const base = mkdtempSync(join(tmpdir(), 'plinth-bench-cluster-test.'));
const kept = mkdtempSync(join(tmpdir(), 'plinth-bench-cluster-test-logs.'));
afterAll(() => {
  killAllSync();
  rmSync(base, { recursive: true, force: true });
  rmSync(kept, { recursive: true, force: true });
});

const opts = (size: number): ClusterStartOpts => ({
  baseDir: base,
  size,
  etcdBin: '/usr/bin/etcd',
  nodeBin: process.execPath,
  plinthJs: join(ROOT, 'bin', 'plinth.js'),
  backend: 'lmdb',
  heartbeatMs: 100,
  electionMs: 1000,
  readyTimeoutMs: 45_000,
  keptLogsDir: kept,
});

/** 60 puts over one connection per member, as a Summary. */
async function smallLoad(endpoints: string[]) {
  const conns = await connect(endpoints, endpoints.length, 5000);
  try {
    const t0 = performance.now();
    const ms = new Float64Array(60);
    for (let i = 0; i < 60; i++) {
      const s = performance.now();
      await unary(conns[i % conns.length], '/etcdserverpb.KV/Put', encodePut(Buffer.from(`k${i}`), Buffer.from('v')), 10_000);
      ms[i] = performance.now() - s;
    }
    return { summary: summarize(ms, 0, (performance.now() - t0) / 1000) };
  } finally {
    closeAll(conns);
  }
}

/** PIDs of live processes whose command line names a path under dir (our members run on data dirs there). */
function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'latin1').includes(dir)) out.push(Number(e));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe.each(['etcd', 'plinth'] as const)('3-member %s cluster for bench:compare', (kind) => {
  it.runIf(kind === 'etcd' ? existsSync('/usr/bin/etcd') : true)('starts ready with an agreed leader, measures each member, and leaves nothing behind', async () => {
    const lines: string[] = [];
    const m = await runOnFreshCluster(kind, {
      start: opts(3),
      // the cluster is ready when setup runs: every member names the same leader
      setup: async () => expect(readdirSync(base)).toHaveLength(1),
      load: smallLoad,
      quiet: { ms: 0 },
      label: `test-${kind}`,
      log: (l) => lines.push(l),
    });
    expect(lines).toEqual([]);
    expect(m).toMatchObject({ ok: true, count: 60, errors: 0 });
    expect(m.members?.map((x) => x.name)).toEqual(['m1', 'm2', 'm3']);
    expect(m.members?.filter((x) => x.role === 'leader')).toHaveLength(1);
    for (const x of m.members ?? []) {
      expect(x.hwmMb).toBeGreaterThan(5);
      expect(x.cpuMsPer1k).toBeGreaterThanOrEqual(0);
    }
    expect(m.hwmMb).toBeCloseTo(m.members!.reduce((s, x) => s + x.hwmMb, 0), 6);
    expect(m.cluster).toMatchObject({ size: 3 });
    expect(m.cluster!.readyMs).toBeGreaterThan(0);
    expect(m.cluster!.leaderAfter).toBe(m.cluster!.leaderBefore);
    // stopped and removed: no member process, no data dir
    expect(processesUnder(base)).toEqual([]);
    expect(readdirSync(base)).toEqual([]);
  }, 90_000);
});

describe('a cluster that cannot start', () => {
  it('fails within its time limit, says why with the members\' logs, and kills what it started', async () => {
    // election timeout below 5 heartbeats: both servers refuse the flags and exit at once
    const bad = { ...opts(3), heartbeatMs: 500, electionMs: 1000 };
    await expect(startCluster('plinth', bad)).rejects.toThrow(/plinth member m\d exited at start .*member logs kept in .*\n[\s\S]*election-timeout/);
    expect(processesUnder(base)).toEqual([]);
    expect(readdirSync(base)).toEqual([]);
    const [startLogs] = readdirSync(kept);
    expect(readdirSync(join(kept, startLogs)).sort()).toEqual(['m1.log', 'm2.log', 'm3.log']);
  }, 60_000);
});
