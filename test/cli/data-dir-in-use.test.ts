import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { etcdctl, freePort, startPlinth, type RunningServer } from '../helpers/servers';

// A second member started on a data dir in use is refused before it reads or writes anything (without a
// lock both served and interleaved their writes until the dir no longer started); a busy port is named
// before the data dir is touched.

const BIN = resolve(__dirname, '..', '..', 'bin', 'plinth.js');
const dirs: string[] = [];
const running: RunningServer[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      res({ code, stderr });
    });
  });
}

describe('one member per data dir', () => {
  it('a second plinth on a data dir in use exits 1 naming the owner; the first keeps serving its data', async () => {
    const first = await startPlinth({ backend: 'lmdb' });
    running.push(first);
    expect(etcdctl(first.endpoint, ['put', 'k', 'v1']).code).toBe(0);
    const port = await freePort();
    const r = await run(['--data-dir', first.dataDir, '--listen-client-urls', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`data dir ${first.dataDir} is in use by process ${first.pid}`);
    expect(etcdctl(first.endpoint, ['put', 'k', 'v2']).code).toBe(0);
    expect(etcdctl(first.endpoint, ['get', 'k', '--print-value-only']).stdout).toBe('v2\n');
  });

  it('a busy client port is named before anything is written to the data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-busy-'));
    dirs.push(dir);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await run(['--data-dir', join(dir, 'd'), '--listen-client-urls', `http://127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot listen for clients on http://127.0.0.1:${port}/: address already in use`);
      expect(existsSync(join(dir, 'd', 'member'))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it('a busy peer port is named before anything is written, and the client port it bound is released', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-busy-'));
    dirs.push(dir);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const peerPort = (blocker.address() as net.AddressInfo).port;
    const free = net.createServer();
    await new Promise<void>((r) => free.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const clientPort = (free.address() as net.AddressInfo).port;
    await new Promise((r) => free.close(r));
    try {
      const peer = `http://127.0.0.1:${peerPort}`;
      const r = await run([
        '--data-dir', join(dir, 'd'), '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.msg === 'failed to start etcd')).toEqual([
        expect.objectContaining({ level: 'fatal', error: `cannot listen for peers on http://127.0.0.1:${peerPort}/: address already in use` }),
      ]);
      expect(existsSync(join(dir, 'd', 'member'))).toBe(false);
    } finally {
      blocker.close();
    }
  });
});
