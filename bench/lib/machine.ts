// What machine a benchmark ran on (cores, CPU model, RAM, kernel, Node, etcd, disk under the base dir, git
// revision), and CPU accounting from /proc: how busy the machine is, a process's own CPU, and this
// process's reaped children's (the load tool). Other sessions share this 2-core machine, so every run
// records how much CPU *others* used while it ran.

import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import { basename, join } from 'node:path';

function sh(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
  } catch {
    return '';
  }
}

export interface MachineInfo {
  cores: number;
  cpu: string;
  ramGiB: number;
  kernel: string;
  node: string;
  etcd: string;
  disk: string;
  /** mean latency of a 4 KiB write + fdatasync under the base dir, ms */
  fsyncMs: number;
  git: string;
  date: string;
}

export function machineInfo(baseDir: string, root: string, etcdBin: string): MachineInfo {
  const cpus = os.cpus();
  const etcdV = sh(etcdBin, ['--version']).match(/etcd Version:\s*(\S+)/)?.[1] ?? '?';
  const df = sh('df', ['-T', baseDir]).split('\n')[1]?.split(/\s+/) ?? [];
  const dev = df[0] ?? '?';
  const fs = df[1] ?? '?';
  const rot = (() => {
    try {
      return readFileSync(`/sys/block/${basename(dev)}/queue/rotational`, 'utf8').trim() === '1' ? 'rotational' : 'non-rotational';
    } catch {
      return fs === 'tmpfs' ? 'RAM' : '?';
    }
  })();
  const rev = sh('git', ['rev-parse', '--short', 'HEAD'], root);
  const branch = sh('git', ['rev-parse', '--abbrev-ref', 'HEAD'], root);
  const dirty = sh('git', ['status', '--porcelain', '--', 'src'], root) ? ', src/ has uncommitted changes' : '';
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? '?',
    ramGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    etcd: etcdV,
    disk: `${baseDir} on ${dev} (${fs}, ${rot})`,
    fsyncMs: fsyncLatencyMs(baseDir),
    git: `${rev || '?'} (branch ${branch || '?'}${dirty})`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** Mean of 100 × (4 KiB write + fdatasync) in a temp file under dir. */
export function fsyncLatencyMs(dir: string, n = 100): number {
  const f = join(dir, `.fsync-probe-${process.pid}`);
  const buf = Buffer.alloc(4096, 7);
  const fd = openSync(f, 'w');
  try {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      writeSync(fd, buf, 0, buf.length, i * 4096);
      fdatasyncSync(fd);
    }
    return Number(process.hrtime.bigint() - t0) / 1e6 / n;
  } finally {
    closeSync(fd);
    rmSync(f, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// CPU accounting (clock ticks; USER_HZ is 100 on Linux)

const HZ = 100;

/** [busy (user+nice+system), all] ticks of the whole machine. irq/softirq left out (charged to no process). */
export function machineTicks(): [number, number] {
  const l = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return [l[0] + l[1] + l[2], l.slice(0, 8).reduce((a, b) => a + b, 0)];
}

/** utime+stime of a process (all its threads), and its reaped children's (cutime+cstime). */
export function procTicks(pid: number | 'self'): { own: number; children: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return { own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return { own: NaN, children: NaN };
  }
}

export interface CpuSnapshot {
  busy: number;
  all: number;
  server: number;
  self: number;
}

export function cpuSnapshot(serverPid: number): CpuSnapshot {
  const [busy, all] = machineTicks();
  const me = procTicks('self');
  return { busy, all, server: procTicks(serverPid).own, self: me.own + me.children };
}

export interface CpuUse {
  /** Server CPU seconds during the run. */
  serverSec: number;
  /** This process and the load tools it ran (reaped children), CPU seconds. */
  driverSec: number;
  /** % of the machine's CPU used by every other process (other sessions, kernel threads) during the run. */
  othersPct: number;
}

export function cpuUse(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const all = b.all - a.all;
  const server = b.server - a.server;
  const self = b.self - a.self;
  const others = all > 0 ? Math.max(0, ((b.busy - a.busy - server - self) / all) * 100) : 0;
  return { serverSec: server / HZ, driverSec: self / HZ, othersPct: others };
}

/** CPU ticks of several server processes (a cluster's members) at one moment, with the machine's and ours. */
export interface ClusterCpuSnapshot {
  busy: number;
  all: number;
  /** utime+stime of each member, in the order of the pids given */
  members: number[];
  self: number;
}

export function clusterCpuSnapshot(pids: readonly number[]): ClusterCpuSnapshot {
  const [busy, all] = machineTicks();
  const me = procTicks('self');
  return { busy, all, members: pids.map((p) => procTicks(p).own), self: me.own + me.children };
}

export interface ClusterCpuUse {
  /** CPU seconds of each member during the run (NaN for a member that was gone at either end) */
  memberSec: number[];
  /** their sum */
  serverSec: number;
  driverSec: number;
  /** % of the machine used by every process but the members, this process and its load tools */
  othersPct: number;
}

/** cpuUse for N members: each one's CPU, their sum, and what everybody else used meanwhile. Pure. */
export function clusterCpuUse(a: ClusterCpuSnapshot, b: ClusterCpuSnapshot): ClusterCpuUse {
  if (a.members.length !== b.members.length) throw new Error(`${a.members.length} members before, ${b.members.length} after`);
  const member = a.members.map((t, i) => b.members[i] - t);
  const servers = member.reduce((x, y) => x + y, 0);
  const all = b.all - a.all;
  const self = b.self - a.self;
  const others = all > 0 && Number.isFinite(servers) ? Math.max(0, ((b.busy - a.busy - servers - self) / all) * 100) : NaN;
  return { memberSec: member.map((t) => t / HZ), serverSec: servers / HZ, driverSec: self / HZ, othersPct: others };
}

/**
 * Waits (0.3 s samples) until the machine is less than `maxBusyPct` busy, for at most budget.ms in all;
 * returns how long it waited.
 */
export async function waitQuiet(maxBusyPct: number, budget: { ms: number }): Promise<number> {
  let waited = 0;
  while (budget.ms > 0) {
    const [b0, a0] = machineTicks();
    await new Promise((r) => setTimeout(r, 300));
    const [b1, a1] = machineTicks();
    const pct = a1 > a0 ? ((b1 - b0) / (a1 - a0)) * 100 : 0;
    if (pct < maxBusyPct) return waited;
    waited += 300;
    budget.ms -= 300;
  }
  return waited;
}
