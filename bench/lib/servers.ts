// Throw-away servers for benchmarks: real etcd (Debian's /usr/bin/etcd, 3.4) and Plinth (node bin/plinth.js
// from this checkout's dist/), each on a fresh data dir under one base dir, on free loopback ports, with
// the same durability (fsync on, default batch settings); with `tls`, both serve https client URLs with the
// same certificate (etcd's --cert-file/--key-file, which Plinth shares). Every child process this module
// starts (servers and load tools) is registered, and killed — by its PID only — when the orchestrator
// exits, is interrupted, or fails.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type ClientTls, closeAll, connect, unary } from './load';
import { type BenchTls, serverTlsArgs } from './tls';
import { encodeRange } from './wire';

export type ServerKind = 'etcd' | 'plinth';

export interface Server {
  kind: ServerKind;
  pid: number;
  port: number;
  endpoint: string;
  dir: string;
  log: string;
  proc: ChildProcess;
  /** ms from spawn to the first successful linearizable Range. */
  startMs: number;
  cmd: string;
  args: string[];
  healthTimeoutMs: number;
  /** set when the server serves https: what a client needs to trust it (endpoint is then https://) */
  tls?: ClientTls;
}

// ---------------------------------------------------------------------------------------------------
// Children: registered so they can be killed on every way out

const live = new Map<number, { proc: ChildProcess; dir?: string }>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => killAllSync());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping ${live.size} child process(es)\n`);
      killAllSync();
      process.exit(130);
    });
  }
}

/** SIGKILLs every registered child still running (by its PID) and removes its data dir. Synchronous. */
export function killAllSync(): void {
  for (const c of live.values()) {
    // a child that already exited is not signalled: its PID may belong to someone else by now
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (c.dir) rmSync(c.dir, { recursive: true, force: true });
  }
  live.clear();
}

/** Registers a child until stopServer / its close: killed and its dir removed on every way out. */
export function register(proc: ChildProcess, dir?: string): void {
  installHandlers();
  if (proc.pid) live.set(proc.pid, { proc, dir });
}

// ---------------------------------------------------------------------------------------------------

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export interface StartOpts {
  baseDir: string;
  /** Repository root (for bin/plinth.js). */
  root: string;
  etcdBin?: string;
  plinthBackend?: string;
  extraArgs?: string[];
  healthTimeoutMs?: number;
  /** serve the client URL over https with this certificate (the peer URL stays http: single member) */
  tls?: BenchTls;
}

export async function startServer(kind: ServerKind, o: StartOpts): Promise<Server> {
  const dir = mkdtempSync(join(o.baseDir, `${kind}-bench.`));
  const port = await freePort();
  const url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const tlsArgs = o.tls ? serverTlsArgs(o.tls) : [];
  const log = join(dir, `${kind}.log`);
  let args: string[];
  let cmd: string;
  if (kind === 'etcd') {
    const peer = `http://127.0.0.1:${await freePort()}`;
    cmd = o.etcdBin ?? '/usr/bin/etcd';
    args = [
      '--name', 'bench', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`,
      '--logger', 'zap', '--log-outputs', 'stderr',
      ...tlsArgs,
      ...(o.extraArgs ?? []),
    ];
  } else {
    cmd = process.execPath;
    args = [
      join(o.root, 'bin', 'plinth.js'), '--data-dir', join(dir, 'data'),
      '--listen-client-urls', url, '--advertise-client-urls', url, '--backend', o.plinthBackend ?? 'lmdb',
      ...tlsArgs,
      ...(o.extraArgs ?? []),
    ];
  }
  // with TLS the endpoint says https:// so that every client (the Go tool, the TS driver, the health check)
  // dials TLS whatever its defaults for a bare host:port, and an http-only server fails the run loudly
  const endpoint = o.tls ? url : `127.0.0.1:${port}`;
  const tls = o.tls ? { ca: o.tls.ca } : undefined;
  return launch({ kind, pid: -1, port, endpoint, dir, log, proc: undefined as unknown as ChildProcess, startMs: 0, cmd, args, healthTimeoutMs: o.healthTimeoutMs ?? 30_000, tls });
}

/** Spawns s.cmd s.args (logging to s.log) and waits until a linearizable Range answers. */
async function launch(s: Server): Promise<Server> {
  const fd = openSync(s.log, 'a');
  const t0 = Date.now();
  const proc = spawn(s.cmd, s.args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  register(proc, s.dir);
  const srv: Server = { ...s, pid: proc.pid ?? -1, proc, startMs: 0 };
  let exited = false;
  proc.once('exit', () => (exited = true));
  const deadline = t0 + s.healthTimeoutMs;
  // healthy = a linearizable Range answers (what `etcdctl endpoint health` checks)
  for (;;) {
    if (exited) {
      const tail = safeTail(s.log);
      await stopServer(srv);
      throw new Error(`${s.kind} exited at start (exit ${proc.exitCode}); log:\n${tail}`);
    }
    if (Date.now() > deadline) {
      await stopServer(srv);
      throw new Error(`${s.kind} not healthy after ${s.healthTimeoutMs / 1000} s; log:\n${safeTail(s.log)}`);
    }
    try {
      const [c] = await connect([srv.endpoint], 1, 1000, 0, srv.tls);
      try {
        await unary(c, '/etcdserverpb.KV/Range', encodeRange({ key: Buffer.from('health') }), 1000);
        srv.startMs = Date.now() - t0;
        return srv;
      } finally {
        closeAll([c]);
      }
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Stops the server (SIGTERM) and starts it again on the same data dir and port: a fresh process, same data. */
export async function restartServer(s: Server): Promise<Server> {
  await stopProcess(s);
  return launch({ ...s, healthTimeoutMs: Math.max(s.healthTimeoutMs, 120_000) });
}

/** The last `lines` lines of a log file ('(no log)' when it cannot be read). */
export function safeTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** SIGTERM, then SIGKILL after graceMs; waits for the exit and forgets the child. That PID only. */
export async function stopChild(p: ChildProcess, graceMs = 10_000): Promise<void> {
  if (p.exitCode === null && p.signalCode === null) {
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }
  if (p.pid) live.delete(p.pid);
}

async function stopProcess(s: Server, graceMs = 10_000): Promise<void> {
  await stopChild(s.proc, graceMs);
}

/** Stops the server (stopProcess) and removes its data dir. */
export async function stopServer(s: Server, graceMs = 10_000): Promise<void> {
  await stopProcess(s, graceMs);
  rmSync(s.dir, { recursive: true, force: true });
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/** Runs a registered child to completion, killed (SIGKILL, its PID) after timeoutMs. */
export function runChild(cmd: string, args: string[], timeoutMs: number): Promise<ChildResult> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    register(proc);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let errBytes = 0;
    proc.stdout!.on('data', (b: Buffer) => out.push(b));
    proc.stderr!.on('data', (b: Buffer) => {
      // the Go tool's progress bar is on stdout; stderr is small, but keep at most 1 MB of it
      if (errBytes < 1 << 20) err.push(b);
      errBytes += b.length;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (proc.pid) live.delete(proc.pid);
      res({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut, ms: Date.now() - t0 });
    });
  });
}
