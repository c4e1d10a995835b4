// Rendering of `bench:compare --cluster N` results (bench/results/compare-clusterN.{md,json,svg}): the
// headline ratios and chart as for one server (report.ts), plus what only a cluster has: server CPU summed
// over the members and split into leader and followers, each member's peak RSS, how long a cluster took to
// be ready, and whether a leader changed under the load. Pure functions of the result data.

import type { MachineInfo } from './machine';
import { fmt, headlineTable, type Kind, machineLines, medianOf, type MemberRun, perRoundLines, type RowResult, type RunMetrics } from './report';
import { median } from './stats';

export interface ClusterCompareResult {
  command: string;
  machine: MachineInfo;
  baseDir: string;
  rounds: number;
  quick: boolean;
  clusterSize: number;
  driverNote: string;
  elapsedSec: number;
  rows: RowResult[];
  /** each member's command line, ports and dirs as placeholders */
  memberCommands: Record<Kind, string[]>;
}

/** The member that led at the end of the run, and the followers in name order. */
export function leaderAndFollowers(run: RunMetrics): { leader: MemberRun | undefined; followers: MemberRun[] } {
  const ms = run.members ?? [];
  return { leader: ms.find((m) => m.role === 'leader'), followers: ms.filter((m) => m.role !== 'leader') };
}

/**
 * Medians over the good runs of one member field: the leader's, and each follower slot's (followers in
 * name order; clusters are fresh per run, so a slot is "the first follower", not one process).
 */
export function memberMedians(runs: readonly RunMetrics[], field: 'cpuMsPer1k' | 'hwmMb' | 'rssMb'): { leader: number; followers: number[] } {
  const good = runs.filter((r) => r.ok && r.members?.length);
  const split = good.map(leaderAndFollowers);
  const slots = Math.max(0, ...split.map((s) => s.followers.length));
  return {
    leader: median(split.map((s) => s.leader?.[field] ?? NaN)),
    followers: Array.from({ length: slots }, (_, j) => median(split.map((s) => s.followers[j]?.[field] ?? NaN))),
  };
}

/** Runs in which the leader or the term changed between the start and the end of the load. */
export function electionsDuring(runs: readonly RunMetrics[]): number {
  return runs.filter((r) => r.cluster && (r.cluster.leaderBefore !== r.cluster.leaderAfter || r.cluster.termBefore !== r.cluster.termAfter)).length;
}

export function clusterDetailTable(rows: readonly RowResult[]): string {
  const out = [
    '| workload | cluster | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU ms/1k req, all members | leader CPU ms/1k | each follower CPU ms/1k | leader peak RSS MB | each follower peak RSS MB | ready s | runs with an election | good runs | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    for (const k of ['etcd', 'plinth'] as const) {
      const runs = r.runs[k];
      const m = (f: keyof RunMetrics) => medianOf(runs, f);
      const cpu = memberMedians(runs, 'cpuMsPer1k');
      const hwm = memberMedians(runs, 'hwmMb');
      const ready = median(runs.filter((x) => x.ok).map((x) => (x.cluster?.readyMs ?? NaN) / 1000));
      const errs = runs.reduce((a, x) => a + x.errors, 0);
      out.push(
        `| ${r.id} | ${k === 'etcd' ? 'etcd' : 'Plinth'} | ${fmt(m('rps'), 0)} | ${fmt(m('p50'))} | ${fmt(m('p90'))} | ${fmt(m('p99'))} | ${fmt(m('p999'))} | ${fmt(m('max'))} | ${fmt(m('cpuMsPer1k'), 0)} | ${fmt(cpu.leader, 0)} | ${cpu.followers.map((x) => fmt(x, 0)).join(' / ') || '–'} | ${fmt(hwm.leader, 0)} | ${hwm.followers.map((x) => fmt(x, 0)).join(' / ') || '–'} | ${fmt(ready, 1)} | ${electionsDuring(runs)} | ${runs.filter((x) => x.ok).length}/${runs.length} | ${errs} |`,
      );
    }
  }
  return out.join('\n');
}

/** Plinth/etcd of the medians of server CPU per request (all members) and of the members' summed peak RSS. */
export function costRatios(row: RowResult): { cpu: number; rss: number } {
  const r = (f: keyof RunMetrics) => medianOf(row.runs.plinth, f) / medianOf(row.runs.etcd, f);
  return { cpu: r('cpuMsPer1k'), rss: r('hwmMb') };
}

export function costTable(rows: readonly RowResult[]): string {
  const out = ['| workload | Plinth/etcd server CPU per request (all members) | Plinth/etcd peak RSS (sum of members) |', '|---|---:|---:|'];
  for (const r of rows) {
    const c = costRatios(r);
    out.push(`| ${r.id} | ${fmt(c.cpu, 2)} | ${fmt(c.rss, 2)} |`);
  }
  return out.join('\n');
}

/** Notes of runs that failed, saw errors or an election (where the kept logs are), one line each. */
export function runNotes(rows: readonly RowResult[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    for (const k of ['etcd', 'plinth'] as const) {
      r.runs[k].forEach((x, i) => {
        if (x.note) out.push(`- ${r.id}, ${k === 'etcd' ? 'etcd' : 'Plinth'}, round ${i + 1}: ${x.ok ? '' : 'failed: '}${x.note}`);
      });
    }
  }
  return out;
}

export function renderClusterMarkdown(r: ClusterCompareResult, svgName: string): string {
  const m = r.machine;
  const n = r.clusterSize;
  const lines: string[] = [];
  lines.push(`# Plinth vs etcd ${m.etcd}, ${n}-member clusters, side by side`);
  lines.push('');
  lines.push('Generated by `npm run bench:compare -- --cluster N` (`bench/compare.ts`) — do not edit by hand; the raw numbers are in the `.json` next to this file.');
  lines.push('');
  lines.push(`- command: \`${r.command}\` (${r.quick ? 'quick' : 'full'} mode, ${Math.round(r.elapsedSec)} s)`);
  lines.push(machineLines(m, r.baseDir));
  lines.push(
    `- clusters: ${n} members of the same server on this one machine, started with etcd's own flags (below), heartbeat 100 ms, election timeout 1000 ms, each member's data dir fresh and on the same medium, fsync on, loopback, free ports. A cluster counts as ready once every member names the same leader (Maintenance.Status) and answers a linearizable Range.`,
  );
  lines.push(`- load: ${r.driverNote}; the tool gets every member's client URL (\`--endpoints=a,b,c\`), as etcd's own cluster benchmarks do: each of its connections dials the next member in turn (10 connections over ${n} members), so followers forward writes and linearizable reads to the leader.`);
  lines.push(
    `- method: for each workload and each of ${r.rounds} round(s), a fresh etcd cluster, then a fresh Plinth cluster (A B${r.rounds > 1 ? ' A B' : ''}${r.rounds > 2 ? ' …' : ''}); the tables hold medians over rounds. Before each run the orchestrator waits (budget-limited) for the shared machine to be under 25% busy; "others" is the CPU % other processes used during a run. Server CPU is every member's utime+stime during the load; peak RSS is each member's VmHWM at the end (a fresh cluster per run: that run's peak). Roles are those at the end of the run.`,
  );
  lines.push('');
  lines.push(`## Workloads (medians of ${r.rounds} round(s))`);
  lines.push('');
  lines.push('Plinth/etcd is the ratio of the medians of the metric shown: above 1 is better for Plinth for throughput, below 1 is better for Plinth for latency. "better" calls a difference of 5% or less a tie.');
  lines.push('');
  lines.push(headlineTable(r.rows));
  lines.push('');
  lines.push(`![Plinth vs etcd, ${n}-member clusters](${svgName})`);
  lines.push('');
  lines.push('Cost per request (below 1: Plinth uses less):');
  lines.push('');
  lines.push(costTable(r.rows));
  lines.push('');
  lines.push('### Details (medians)');
  lines.push('');
  lines.push(clusterDetailTable(r.rows));
  lines.push('');
  lines.push('### Per round (headline metric, [others\' CPU %])');
  lines.push('');
  lines.push(perRoundLines(r.rows));
  const notes = runNotes(r.rows);
  if (notes.length) {
    lines.push('');
    lines.push('### Runs with failures, errors or an election');
    lines.push('');
    lines.push(...notes);
  }
  lines.push('');
  lines.push('### Commands');
  lines.push('');
  lines.push(`Load (\`C1\`… are the members' client ports, fresh for each cluster):`);
  lines.push('');
  lines.push('```');
  for (const row of r.rows) lines.push(`${row.id}: ${row.command}`);
  lines.push('```');
  lines.push('');
  lines.push('Members (`C1`/`P1`… client/peer ports, `DIR` the cluster\'s fresh data dir, `TOKEN` fresh per cluster):');
  lines.push('');
  lines.push('```');
  for (const k of ['etcd', 'plinth'] as const) for (const c of r.memberCommands[k]) lines.push(c);
  lines.push('```');
  lines.push('');
  return lines.join('\n');
}
