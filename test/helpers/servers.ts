// Start real etcd (Debian's etcd-server) or Plinth on a free loopback port, for integration tests.
// Every server is a child process we started; stop() ends only that PID.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface RunningServer {
  kind: 'etcd' | 'plinth';
  endpoint: string; // host:port
  url: string; // http://host:port
  port: number;
  pid: number;
  dataDir: string;
  proc: ChildProcess;
  /** The last few KB of the server's output. */
  logs(): string;
  /** Stops the process (TERM, then KILL) and removes its data dir unless keepData. */
  stop(opts?: { keepData?: boolean; signal?: NodeJS.Signals }): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export function hasBinary(name: string): boolean {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const ETCDCTL_AVAILABLE = hasBinary('etcdctl');
export const ETCD_AVAILABLE = hasBinary('etcd');

const REPO = resolve(__dirname, '..', '..');

// A safety net: whatever a test leaves running (a failed assertion before its stop()), the servers it
// started end with the test process.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
function track(p: ChildProcess): ChildProcess {
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}

async function waitFor(cond: () => boolean, proc: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${logs()}`);
    if (Date.now() > deadline) throw new Error(`server not ready after 20 s: ${logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitHealthy(endpoint: string, proc: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${logs()}`);
    if (await probe(endpoint)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${endpoint} not ready after 20 s: ${logs()}`);
}

// A TCP connect is not enough (the port may open before the server serves), so ask for /version
// over HTTP/1 when available, else fall back to a gRPC-level check by the caller's first request.
function probe(endpoint: string): Promise<boolean> {
  return new Promise((res) => {
    const [host, port] = endpoint.split(':');
    const sock = require('node:net').connect({ host, port: Number(port) });
    sock.once('connect', () => {
      sock.destroy();
      res(true);
    });
    sock.once('error', () => res(false));
  });
}

function makeStop(proc: ChildProcess, dataDir: string, removable: string) {
  return async (opts: { keepData?: boolean; signal?: NodeJS.Signals } = {}) => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill(opts.signal ?? 'SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    if (!opts.keepData) rmSync(removable, { recursive: true, force: true });
  };
}

/**
 * A free port can be taken by another server starting at the same moment (tests run in parallel):
 * when a start fails, try again on new ports.
 */
async function withRetries(start: () => Promise<RunningServer>, attempts = 3): Promise<RunningServer> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (err) {
      if (i >= attempts) throw err;
    }
  }
}

export function startEtcd(extraArgs: string[] = []): Promise<RunningServer> {
  return withRetries(() => startEtcdOnce(extraArgs));
}

async function startEtcdOnce(extraArgs: string[]): Promise<RunningServer> {
  const port = await freePort();
  const peerPort = await freePort();
  const parent = mkdtempSync(join(tmpdir(), 'etcd-test-'));
  const dataDir = join(parent, 'data');
  const url = `http://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let out = '';
  const proc = track(spawn(
    'etcd',
    [
      '--name', 'default', '--data-dir', dataDir,
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `default=${peer}`, '--logger', 'zap', '--log-outputs', 'stderr',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  ));
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-4000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  const endpoint = `127.0.0.1:${port}`;
  const stop = makeStop(proc, dataDir, parent);
  try {
    await waitHealthy(endpoint, proc, () => out);
    // etcd opens its port before it has a leader; wait until a request succeeds.
    await waitEtcdctl(endpoint);
  } catch (err) {
    await stop();
    throw err;
  }
  return { kind: 'etcd', endpoint, url, port, pid: proc.pid!, dataDir, proc, stop, logs: () => out };
}

export interface PlinthOptions {
  backend?: 'lmdb' | 'leveldb' | 'memory' | 'bolt';
  dataDir?: string; // reuse a data dir (restart tests); a fresh temp dir otherwise
  port?: number;
  /** The advertised client URL (default: the one it listens on). */
  advertiseUrl?: string;
  extraArgs?: string[];
}

export function startPlinth(opts: PlinthOptions = {}): Promise<RunningServer> {
  return opts.port ? startPlinthOnce(opts) : withRetries(() => startPlinthOnce(opts));
}

async function startPlinthOnce(opts: PlinthOptions): Promise<RunningServer> {
  const port = opts.port ?? (await freePort());
  const parent = opts.dataDir ? resolve(opts.dataDir, '..') : mkdtempSync(join(tmpdir(), 'plinth-test-'));
  const dataDir = opts.dataDir ?? join(parent, 'data');
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const bin = join(REPO, 'bin', 'plinth.js');
  if (!existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ missing: run npm run build');
  const proc = track(spawn(
    process.execPath,
    [
      bin, '--name', 'default', '--data-dir', dataDir,
      '--listen-client-urls', url, '--advertise-client-urls', opts.advertiseUrl ?? url,
      '--backend', opts.backend ?? 'lmdb', ...(opts.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  ));
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-4000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  const endpoint = `127.0.0.1:${port}`;
  // Remove only what we created: the temp parent, or just the caller's data dir.
  const stop = makeStop(proc, dataDir, opts.dataDir ? dataDir : parent);
  try {
    // Its own "serving client traffic" line (etcd's), not a TCP probe: another process may hold the port we were given.
    let serving = false;
    const seen = (d: unknown) => (serving ||= String(d).includes('"msg":"serving client traffic') || out.includes('"msg":"serving client traffic'));
    proc.stderr!.on('data', seen);
    proc.stdout!.on('data', seen);
    await waitFor(() => serving, proc, () => out);
    await waitHealthy(endpoint, proc, () => out);
  } catch (err) {
    await stop({ keepData: !!opts.dataDir });
    throw err;
  }
  return {
    kind: 'plinth', endpoint, url, port, pid: proc.pid!, dataDir, proc, logs: () => out,
    // A caller-provided data dir is the caller's to remove.
    stop: (o = {}) => stop({ ...o, keepData: o.keepData ?? !!opts.dataDir }),
  };
}

async function waitEtcdctl(endpoint: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      execFileSync('etcdctl', ['--endpoints', endpoint, '--command-timeout=1s', 'endpoint', 'health'], {
        stdio: 'ignore',
        env: { ...process.env, ETCDCTL_API: '3' },
      });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`etcd at ${endpoint} not healthy`);
}

/** Runs etcdctl (API v3) against an endpoint; returns stdout, stderr and exit code, never throws. */
export function etcdctl(endpoint: string, args: string[], input?: string): { stdout: string; stderr: string; code: number } {
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync('etcdctl', ['--endpoints', endpoint, '--command-timeout=5s', ...args], {
    input,
    encoding: 'utf8',
    timeout: 15_000,
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status ?? -1 };
}
