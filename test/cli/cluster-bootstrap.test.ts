import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdGrpc } from '../helpers/etcd-grpc';
import { freePort } from '../helpers/servers';

// Starting members with etcd's cluster flags, and what is refused: a member whose --initial-cluster
// disagrees with the others' (another cluster ID), a data dir that belongs to another cluster, flags
// that do not name this member. A restart on an existing data dir ignores the initial-cluster flags.

const BIN = resolve(__dirname, '..', '..', 'bin', 'plinth.js');
const procs = new Set<ChildProcess>();
const dirs: string[] = [];
afterEach(async () => {
  for (const p of procs) await end(p);
  procs.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Spec {
  name: string;
  client: number;
  peer: number;
  dataDir: string;
}

async function specs(n: number): Promise<Spec[]> {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-boot-'));
  dirs.push(dir);
  const out: Spec[] = [];
  for (let i = 1; i <= n; i++) out.push({ name: `m${i}`, client: await freePort(), peer: await freePort(), dataDir: join(dir, `m${i}`) });
  return out;
}

const initialCluster = (ss: Spec[]) => ss.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');

function args(s: Spec, cluster: string, token: string): string[] {
  return [
    '--name', s.name, '--data-dir', s.dataDir,
    '--listen-client-urls', `http://127.0.0.1:${s.client}`, '--advertise-client-urls', `http://127.0.0.1:${s.client}`,
    '--listen-peer-urls', `http://127.0.0.1:${s.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${s.peer}`,
    '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
    '--heartbeat-interval', '50', '--election-timeout', '500',
  ];
}

interface Running {
  proc: ChildProcess;
  out: () => string;
}

function start(argv: string[]): Running {
  let out = '';
  const proc = spawn(process.execPath, [BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-20000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-20000)));
  return { proc, out: () => out };
}

async function end(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

async function leaderOf(s: Spec): Promise<bigint> {
  const g = new EtcdGrpc(`127.0.0.1:${s.client}`);
  try {
    return BigInt((await g.status(1000)).leader);
  } catch {
    return 0n;
  } finally {
    g.close();
  }
}

describe('cluster bootstrap from the command line', () => {
  it('refuses a member whose --initial-cluster differs from the others, and never merges it in', async () => {
    const ss = await specs(3);
    const token = 'boot-mismatch';
    const good = initialCluster(ss);
    const a = start(args(ss[0], good, token));
    const b = start(args(ss[1], good, token));
    // The third member believes in a cluster with a fourth member: its cluster ID differs.
    const odd = start(args(ss[2], `${good},m4=http://127.0.0.1:1`, token));
    expect(await until(async () => (await leaderOf(ss[0])) !== 0n, 15_000), 'the two agreeing members elect a leader').toBe(true);
    const named = await until(() => /cluster ID mismatch/.test(a.out() + b.out()) && /cluster ID mismatch/.test(odd.out()), 15_000);
    expect(named, `both sides log the mismatch; the odd member said:\n${odd.out().slice(-3000)}\nm1 said:\n${a.out().slice(-3000)}`).toBe(true);
    expect(await leaderOf(ss[2])).toBe(0n);
    expect(a.out() + b.out() + odd.out()).not.toMatch(/fatal/);
  });

  it('a restart ignores the initial-cluster flags; a data dir from another cluster is refused by the members', async () => {
    const ss = await specs(3);
    const ic = initialCluster(ss);
    const ms = ss.map((s) => start(args(s, ic, 'boot-one')));
    expect(await until(async () => (await leaderOf(ss[0])) !== 0n, 15_000)).toBe(true);
    // A restart with other initial flags (another token, another cluster list) keeps the member's identity.
    await end(ms[0].proc);
    const again = start(args(ss[0], `${ss[0].name}=http://127.0.0.1:${ss[0].peer}`, 'another-token'));
    expect(await until(async () => (await leaderOf(ss[0])) !== 0n, 15_000), 'the restarted member rejoins its cluster').toBe(true);
    expect(again.out()).not.toMatch(/starting a new member/);

    // A second cluster on new ports; its m3's data dir replaced by the first cluster's m3.
    const other = await specs(3);
    const ic2 = initialCluster(other);
    const first = [start(args(other[0], ic2, 'boot-two')), start(args(other[1], ic2, 'boot-two'))];
    expect(await until(async () => (await leaderOf(other[0])) !== 0n, 15_000)).toBe(true);
    await end(ms[2].proc);
    rmSync(other[2].dataDir, { recursive: true, force: true });
    renameSync(ss[2].dataDir, other[2].dataDir);
    const intruder = start(args(other[2], ic2, 'boot-two'));
    const refused = await until(() => /cluster ID mismatch|not a member of this cluster|unknown member/i.test(first[0].out() + first[1].out() + intruder.out()), 15_000);
    expect(refused, `the refusal is logged; the intruder said:\n${intruder.out().slice(-3000)}\nthe first member said:\n${first[0].out().slice(-3000)}`).toBe(true);
    expect(await leaderOf(other[2])).not.toBe((await leaderOf(other[0])) || -1n);
  });

  it('refuses flags that do not describe this member, with etcd\'s words, before writing anything', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-boot-'));
    dirs.push(dir);
    const run = (extra: string[]) =>
      spawnSync(process.execPath, [BIN, '--data-dir', join(dir, 'd'), '--listen-client-urls', 'http://127.0.0.1:1', ...extra], { encoding: 'utf8', timeout: 15_000 });
    // The reason is the "failed to start etcd" line's error field (stderr is JSON lines).
    const failed = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.level === 'fatal').map((l) => String(l.error)).join('\n');
    let r = run(['--name', 'x', '--initial-cluster', 'y=http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380']);
    expect(r.status).toBe(1);
    expect(failed(r.stderr)).toContain('couldn\'t find local name "x" in the initial cluster configuration');
    r = run(['--name', 'x', '--initial-cluster', 'x=http://127.0.0.1:2381', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380']);
    expect(r.status).toBe(1);
    expect(failed(r.stderr)).toContain('--initial-cluster has x=http://127.0.0.1:2381 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380');
    r = run(['--name', 'x', '--initial-cluster', 'x=http://127.0.0.1:2380,y=http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380']);
    expect(r.status).toBe(1);
    expect(failed(r.stderr)).toMatch(/has duplicate url/);
    expect(existsSync(join(dir, 'd', 'member', 'wal')), 'nothing written').toBe(false);
    r = run(['--heartbeat-interval', '300', '--election-timeout', '1000']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]');
  });
});
