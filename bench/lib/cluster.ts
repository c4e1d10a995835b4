// Throw-away N-member clusters for `bench:compare --cluster N`: real etcd (Debian's 3.4) or Plinth, started
// with the same etcd command line (bench/lib/cluster-cmd.ts) on fresh data dirs under one base dir and free
// loopback ports, ready once every member names the same leader and answers a linearizable read. Every
// member is registered with servers.ts, so it is killed by its PID on every way out of the orchestrator;
// one load run on a fresh cluster (runOnFreshCluster) records each member's CPU and memory and whether the
// leader changed under the load. A run that fails or sees errors keeps the members' logs (failedLogsDir).

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  agreedLeader,
  clientEndpoints,
  type ClusterKind,
  type ClusterLayout,
  decodeStatus,
  type LeaderAgreement,
  type MemberAddr,
  memberCommand,
  type MemberCommandOpts,
  memberNames,
  type MemberStatus,
  shellLine,
} from './cluster-cmd';
import { closeAll, connect, unary } from './load';
import { clusterCpuSnapshot, clusterCpuUse, waitQuiet } from './machine';
import { statusKb } from './proc';
import type { RunMetrics } from './report';
import { freePort, register, safeTail, stopChild } from './servers';
import type { Summary } from './stats';
import { encodeRange } from './wire';

export interface ClusterMember {
  name: string;
  endpoint: string;
  proc: ChildProcess;
  pid: number;
  log: string;
  commandLine: string;
}

export interface Cluster {
  kind: ClusterKind;
  /** holds every member's data dir and log; removed by stopCluster */
  dir: string;
  members: ClusterMember[];
  endpoints: string[];
  readyMs: number;
}

export interface ClusterStartOpts extends MemberCommandOpts {
  baseDir: string;
  size: number;
  /** how long the members may take to agree on a leader and serve (default 60 s: 2 busy cores, N processes) */
  readyTimeoutMs?: number;
  /** where the logs of failed runs are kept (default: one new temp dir per orchestrator) */
  keptLogsDir?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const gone = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;

/** 2n distinct free loopback ports (freePort may hand one out twice once it was closed): at most 20n tries. */
async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n; tries++) {
    if (tries >= 20 * n) throw new Error(`could not find ${n} distinct free ports`);
    ports.add(await freePort());
  }
  return [...ports];
}

export async function startCluster(kind: ClusterKind, o: ClusterStartOpts): Promise<Cluster> {
  const dir = mkdtempSync(join(o.baseDir, `${kind}-cluster${o.size}.`));
  const ports = await distinctPorts(2 * o.size);
  const addrs: MemberAddr[] = Array.from({ length: o.size }, (_, i) => ({ client: ports[2 * i], peer: ports[2 * i + 1] }));
  const names = memberNames(o.size);
  // a token per cluster: members of an earlier cluster that reused a port cannot join this one
  const layout: ClusterLayout = { kind, names, addrs, dataDirs: names.map((n) => join(dir, n)), token: `bench-${basename(dir)}` };
  const t0 = Date.now();
  const c: Cluster = { kind, dir, members: [], endpoints: clientEndpoints(addrs), readyMs: 0 };
  try {
    for (let i = 0; i < o.size; i++) {
      const { cmd, args } = memberCommand(layout, i, o);
      const log = join(dir, `${names[i]}.log`);
      const fd = openSync(log, 'a');
      const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      register(proc, dir);
      c.members.push({ name: names[i], endpoint: c.endpoints[i], proc, pid: proc.pid ?? -1, log, commandLine: shellLine(cmd, args) });
    }
    await waitReady(c, o.readyTimeoutMs ?? 60_000);
    c.readyMs = Date.now() - t0;
    return c;
  } catch (e) {
    const kept = c.members.length ? keepLogs(c, `start-${basename(dir)}`, o.keptLogsDir) : undefined;
    await stopCluster(c);
    if (!kept) throw e;
    const [first, ...rest] = (e as Error).message.split('\n');
    throw new Error([`${first}; member logs kept in ${kept}`, ...rest].join('\n'));
  }
}

/** SIGTERM to every member at once (SIGKILL after graceMs), wait for all, remove the cluster's dir. */
export async function stopCluster(c: Cluster, graceMs = 10_000): Promise<void> {
  await Promise.all(c.members.map((m) => stopChild(m.proc, graceMs)));
  rmSync(c.dir, { recursive: true, force: true });
}

/** Each member's Maintenance.Status, or the error it gave (one connection per member, closed after). */
export async function memberStatuses(c: Cluster, timeoutMs = 1000): Promise<(MemberStatus | Error)[]> {
  return Promise.all(
    c.members.map(async (m) => {
      try {
        const [conn] = await connect([m.endpoint], 1, timeoutMs);
        try {
          return decodeStatus(await unary(conn, '/etcdserverpb.Maintenance/Status', Buffer.alloc(0), timeoutMs));
        } finally {
          closeAll([conn]);
        }
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    }),
  );
}

export async function leaderAgreement(c: Cluster): Promise<LeaderAgreement> {
  return agreedLeader(await memberStatuses(c));
}

/** Throws unless every member answers a linearizable Range (what `etcdctl endpoint health --cluster` asks). */
async function linearizableReadOnEach(c: Cluster, timeoutMs = 2000): Promise<void> {
  await Promise.all(
    c.members.map(async (m) => {
      const [conn] = await connect([m.endpoint], 1, timeoutMs);
      try {
        await unary(conn, '/etcdserverpb.KV/Range', encodeRange({ key: Buffer.from('health') }), timeoutMs);
      } catch (e) {
        throw new Error(`${m.name}: ${(e as Error).message}`);
      } finally {
        closeAll([conn]);
      }
    }),
  );
}

function exitedMember(c: Cluster): ClusterMember | undefined {
  return c.members.find((m) => gone(m.proc));
}

function logTails(c: Cluster, lines: number): string {
  return c.members.map((m) => `--- ${m.name} (${m.log}):\n${safeTail(m.log, lines)}`).join('\n');
}

/** Polls (bounded by timeoutMs) until a leader is agreed and every member serves a linearizable read. */
async function waitReady(c: Cluster, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not asked yet';
  for (;;) {
    const dead = exitedMember(c);
    if (dead) throw new Error(`${c.kind} member ${dead.name} exited at start (${dead.proc.exitCode ?? dead.proc.signalCode}); logs:\n${logTails(c, 10)}`);
    if (Date.now() > deadline) throw new Error(`${c.kind} cluster not ready after ${timeoutMs / 1000} s: ${last}; logs:\n${logTails(c, 10)}`);
    try {
      const a = await leaderAgreement(c);
      if (a.ok) {
        await linearizableReadOnEach(c);
        return;
      }
      last = a.reason;
    } catch (e) {
      last = (e as Error).message.split('\n')[0];
    }
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------------
// One measured run

let defaultKeptLogsDir: string | undefined;

/** Copies every member's log to a directory kept after the run (default: one temp dir per orchestrator); returns it. */
export function keepLogs(c: Cluster, label: string, under?: string): string {
  const root = under ?? (defaultKeptLogsDir ??= mkdtempSync(join(tmpdir(), 'plinth-cluster-logs.')));
  const to = join(root, label.replace(/[^\w.-]+/g, '_'));
  mkdirSync(to, { recursive: true });
  for (const m of c.members) {
    try {
      copyFileSync(m.log, join(to, `${m.name}.log`));
    } catch {
      /* a log that cannot be read is reported as missing by its absence */
    }
  }
  return to;
}

export interface ClusterRunOpts {
  start: ClusterStartOpts;
  /** run before measuring, against the first member's endpoint (e.g. put the key the range rows read) */
  setup?: (endpoint: string) => Promise<void>;
  /** the load itself, given every member's endpoint: its report, and what to know about it (e.g. cut short) */
  load: (endpoints: string[]) => Promise<{ summary: Summary; note?: string }>;
  /** quiet-machine budget shared by the whole orchestrator */
  quiet: { ms: number };
  /** names the kept logs of a failed run */
  label: string;
  log: (line: string) => void;
}

export function failedRun(note: string): RunMetrics {
  return { ok: false, note, rps: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, count: 0, errors: 0, hwmMb: NaN, cpuMsPer1k: NaN, othersPct: NaN };
}

/** Starts a fresh cluster, runs setup and the load on it, stops it. Never throws: a failure is a failed run. */
export async function runOnFreshCluster(kind: ClusterKind, o: ClusterRunOpts): Promise<RunMetrics> {
  let c: Cluster | undefined;
  try {
    c = await startCluster(kind, o.start);
    const cl = c;
    if (o.setup) await o.setup(cl.endpoints[0]);
    await waitQuiet(25, o.quiet);
    const before = await leaderAgreement(cl);
    if (!before.ok) throw new Error(`before the load: ${before.reason}`);
    const a = clusterCpuSnapshot(cl.members.map((m) => m.pid));
    const { summary: sec, note: loadNote } = await o.load(cl.endpoints);
    const b = clusterCpuSnapshot(cl.members.map((m) => m.pid));
    const use = clusterCpuUse(a, b);
    const hwm = cl.members.map((m) => statusKb(m.pid, 'VmHWM') / 1024);
    const rss = cl.members.map((m) => statusKb(m.pid, 'VmRSS') / 1024);
    const dead = exitedMember(cl);
    if (dead) throw new Error(`member ${dead.name} died during the run (${dead.proc.exitCode ?? dead.proc.signalCode})`);
    const after = await leaderAgreement(cl);
    const per1k = (s: number) => (sec.count > 0 ? (s * 1e6) / sec.count : NaN);
    const m: RunMetrics = {
      ok: sec.count > 0,
      note: sec.count > 0 ? loadNote : 'no successful request',
      rps: sec.rps,
      p50: sec.pct['50'],
      p90: sec.pct['90'],
      p99: sec.pct['99'],
      p999: sec.pct['99.9'],
      max: sec.slowest,
      count: sec.count,
      errors: sec.errors,
      hwmMb: hwm.reduce((x, y) => x + y, 0),
      cpuMsPer1k: per1k(use.serverSec),
      othersPct: use.othersPct,
      members: cl.members.map((mem, i) => ({
        name: mem.name,
        role: after.ok ? (after.leader === i ? 'leader' : 'follower') : before.leader === i ? 'leader' : 'follower',
        cpuMsPer1k: per1k(use.memberSec[i]),
        hwmMb: hwm[i],
        rssMb: rss[i],
      })),
      cluster: {
        size: cl.members.length,
        readyMs: cl.readyMs,
        leaderBefore: cl.members[before.leader].name,
        leaderAfter: after.ok ? cl.members[after.leader].name : `none (${after.reason})`,
        termBefore: Number(before.term),
        termAfter: after.ok ? Number(after.term) : NaN,
      },
    };
    const elected = !after.ok || after.leader !== before.leader || after.term !== before.term;
    if (sec.errors > 0 || elected) {
      const kept = keepLogs(cl, o.label, o.start.keptLogsDir);
      const what = [sec.errors > 0 ? `${sec.errors} errors` : '', elected ? `leader ${m.cluster!.leaderBefore} term ${before.term} → ${m.cluster!.leaderAfter} term ${m.cluster!.termAfter}` : ''].filter(Boolean).join('; ');
      m.note = `${m.note ? `${m.note}; ` : ''}${what}; member logs kept in ${kept}`;
      o.log(`  ${kind}: ${m.note}`);
    }
    return m;
  } catch (e) {
    const msg = (e as Error).message;
    let note = msg.split('\n')[0].slice(0, 200);
    // a load that hangs because a member died says so (the Go tool's clients wait for their member forever)
    const dead = c ? exitedMember(c) : undefined;
    if (dead && !note.includes(`member ${dead.name} died`)) note = `member ${dead.name} died (${dead.proc.exitCode ?? dead.proc.signalCode}); ${note}`;
    if (c && c.members.length) note += `; member logs kept in ${keepLogs(c, o.label, o.start.keptLogsDir)}`;
    o.log(`  ${kind}: FAILED: ${msg.split('\n').slice(0, 40).join('\n    ')}`);
    return failedRun(note);
  } finally {
    if (c) await stopCluster(c);
  }
}
