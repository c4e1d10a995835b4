import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdGrpc } from '../helpers/etcd-grpc';
import { freePort, startPlinth, type RunningServer } from '../helpers/servers';

// How a member starts and stops as a process: a start-up failure is one line and a non-zero exit; kill -9
// at any instant of a start loses nothing; SIGTERM under load answers or refuses every request, exits 0,
// and leaves a data dir that starts without replaying the WAL (the backend holds everything applied).

const BIN = resolve(__dirname, '..', '..', 'bin', 'plinth.js');
const dirs: string[] = [];
const running: RunningServer[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-startstop-'));
  dirs.push(d);
  return d;
};

function run(args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs ?? 20_000);
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stderr });
    });
  });
}

const key = (i: number) => Buffer.from(`k${String(i).padStart(5, '0')}`);

async function countKeys(endpoint: string): Promise<number> {
  const c = new EtcdGrpc(endpoint);
  try {
    const r = await c.call<{ count: string }>('kv', 'Range', { key: Buffer.from('k'), range_end: Buffer.from('l'), count_only: true }, 5000);
    return Number(r.count);
  } finally {
    c.close();
  }
}

describe('start-up failures', () => {
  it('a data dir that cannot be created is one fatal JSON line on stderr and exit 1, no stack trace', async () => {
    const dir = tmp();
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const port = await freePort();
    const r = await run(['--data-dir', join(file, 'data'), '--listen-client-urls', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    // Start-up lines, then one "fatal" line in etcd's words with the reason; all JSON.
    const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.level === 'fatal')).toEqual([expect.objectContaining({ msg: 'failed to start etcd', error: expect.stringContaining('data') })]);
    expect(lines[lines.length - 1].level).toBe('fatal');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('a bad flag value is one line and exit 2', async () => {
    const r = await run(['--listen-client-urls', 'ftp://127.0.0.1:1']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr.trim().split('\n')[0]).toMatch(/^plinth: /);
  });
});

describe('kill -9 during start-up', () => {
  it('loses nothing: after kills at several instants of a start, the member starts with every key', async () => {
    const first = await startPlinth({ backend: 'lmdb' });
    running.push(first);
    const c = new EtcdGrpc(first.endpoint);
    for (let i = 0; i < 200; i++) await c.call('kv', 'Put', { key: key(i), value: Buffer.from('v') }, 5000);
    c.close();
    const dataDir = first.dataDir;
    await first.stop({ keepData: true, signal: 'SIGKILL' });
    running.length = 0;
    dirs.push(resolve(dataDir, '..'));
    // Each kill lands somewhere in opening the WAL, the backend, replaying, binding, serving.
    for (const ms of [40, 120, 250, 400, 700]) {
      const port = await freePort();
      const r = await run(['--data-dir', dataDir, '--listen-client-urls', `http://127.0.0.1:${port}`], ms);
      expect(r.code === null ? r.signal : r.code).toBe('SIGKILL');
    }
    const again = await startPlinth({ backend: 'lmdb', dataDir });
    running.push(again);
    expect(await countKeys(again.endpoint)).toBe(200);
  }, 60_000);
});

describe('SIGTERM under load', () => {
  it('every acknowledged put survives, the process exits 0, and the restart replays nothing', async () => {
    const s = await startPlinth({ backend: 'lmdb' });
    running.push(s);
    const dataDir = s.dataDir;
    const acked = new Set<number>();
    let next = 0;
    let stopped = false;
    const writer = async () => {
      const c = new EtcdGrpc(s.endpoint);
      // Bounded: at most 20k puts in all, and the loop ends once the server is gone.
      while (!stopped && next < 20_000) {
        const i = next++;
        try {
          await c.call('kv', 'Put', { key: key(i), value: Buffer.from('v') }, 3000);
          acked.add(i);
        } catch {
          break;
        }
      }
      c.close();
    };
    const writers = Array.from({ length: 8 }, writer);
    await new Promise((r) => setTimeout(r, 700));
    const exit = new Promise<number | null>((r) => s.proc.once('exit', (code) => r(code)));
    s.proc.kill('SIGTERM');
    const code = await Promise.race([exit, new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000))]);
    stopped = true;
    await Promise.all(writers);
    expect(code).toBe(0);
    expect(acked.size).toBeGreaterThan(20);
    running.length = 0;
    dirs.push(resolve(dataDir, '..'));
    const again = await startPlinth({ backend: 'lmdb', dataDir });
    running.push(again);
    expect(again.logs()).not.toContain('replayed the WAL');
    const c = new EtcdGrpc(again.endpoint);
    try {
      for (const i of acked) {
        const r = await c.call<{ count: string }>('kv', 'Range', { key: key(i), count_only: true, serializable: true }, 5000);
        expect(Number(r.count), `acknowledged key ${i}`).toBe(1);
      }
    } finally {
      c.close();
    }
  }, 60_000);
});
