import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawKv } from '../api/grpc-client';
import { freePort } from '../helpers/servers';

// The plinth process's log, as etcd 3.4's zap logger writes it: every line one JSON object with level, ts,
// caller, msg first; etcd's words and fields for the events etcd logs; --log-outputs and --log-level.

const REPO = resolve(__dirname, '..', '..');
const BIN = join(REPO, 'bin', 'plinth.js');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Run {
  proc: ChildProcess;
  endpoint: string;
  port: number;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM, then what the process wrote and its exit code. */
  stop(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts plinth; resolves once `ready` matches what it wrote (its serving line, by default). */
async function start(args: string[], ready = (out: string) => out.includes('serving client traffic')): Promise<Run> {
  if (!existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ missing: run npm run build');
  const dir = mkdtempSync(join(tmpdir(), 'plinth-logs-'));
  dirs.push(dir);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [BIN, '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url, '--backend', 'memory', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let [out, err] = ['', ''];
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!ready(out + err)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`plinth did not start (${proc.exitCode}):\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc, port, endpoint: `127.0.0.1:${port}`, stdout: () => out, stderr: () => err,
    async stop() {
      proc.kill('SIGTERM');
      const code = await exited;
      return { code, stdout: out, stderr: err };
    },
  };
}

/** Every non-empty line, parsed as JSON (a line that is not JSON fails the test here). */
function parse(text: string): Record<string, any>[] {
  return text.split('\n').filter((l) => l !== '').map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
  });
}

const ZAP_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$/;
const GO_DURATION = /^\d+(\.\d+)?(ns|µs|ms|s)$/;
const b = (s: string) => Buffer.from(s);
const once = (lines: Record<string, any>[], msg: string | RegExp) => {
  const found = lines.filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  expect(found, `lines with msg ${msg}`).toHaveLength(1);
  return found[0];
};

describe('plinth logs as etcd 3.4 with --logger zap (the default)', () => {
  it('every stderr line is JSON (level, ts, caller, msg first); start, serving, leader, compaction, slow request, alarm and stop in etcd\'s words', async () => {
    const s = await start(['--experimental-warning-apply-duration', '1ns', '--quota-backend-bytes', '300000']);
    const kv = new RawKv(s.endpoint);
    let stopped: Awaited<ReturnType<Run['stop']>>;
    try {
      await kv.put({ key: b('foo'), value: b('bar') });
      await kv.put({ key: b('foo'), value: b('baz') });
      await kv.compact({ revision: 2 });
      // Past the quota: the NOSPACE alarm is raised (once), later writes refused. (The backend's size
      // moves as its batches commit, every 100 ms by default: a pause between the writes.)
      const big = Buffer.alloc(60_000, 'x');
      for (let i = 0; i < 30; i++) {
        const refused = await kv.put({ key: b(`big${i}`), value: big }).then(() => false, (e: Error) => /database space exceeded/.test(e.message));
        if (refused) break;
        await new Promise((r) => setTimeout(r, 150));
      }
      // The alarm goes through the log after the request that found the quota exceeded was refused.
      for (const end = Date.now() + 5000; !s.stderr().includes('"msg":"alarm raised"') && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    } finally {
      kv.close();
      stopped = await s.stop();
    }
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toBe('');
    const lines = parse(stopped.stderr);
    for (const l of lines) {
      expect(Object.keys(l).slice(0, 4)).toEqual(['level', 'ts', 'caller', 'msg']);
      expect(['debug', 'info', 'warn', 'error', 'fatal']).toContain(l.level);
      expect(l.ts).toMatch(ZAP_TS);
      expect(typeof l.caller).toBe('string');
    }
    // no debug lines at the default --log-level info
    expect(lines.filter((l) => l.level === 'debug')).toEqual([]);

    const starting = once(lines, 'starting an etcd server');
    expect(starting).toMatchObject({ level: 'info', caller: 'cli/main.ts', name: 'default', 'etcd-version': expect.stringMatching(/^3\.4\./), 'member-initialized': false, 'quota-backend-bytes': 300000 });

    const serving = once(lines, 'serving client traffic insecurely; this is strongly discouraged!');
    expect(serving).toMatchObject({ level: 'info', address: `127.0.0.1:${s.port}` });

    const elected = once(lines, /^raft\.node: [0-9a-f]+ elected leader [0-9a-f]+ at term \d+$/);
    expect(elected.level).toBe('info');
    const [, self, leader] = /^raft\.node: ([0-9a-f]+) elected leader ([0-9a-f]+)/.exec(elected.msg)!;
    expect(leader).toBe(self);

    const compacted = once(lines, 'finished scheduled compaction');
    expect(compacted).toMatchObject({ level: 'info', 'compact-revision': 2 });
    expect(compacted.took).toMatch(GO_DURATION);

    const slow = lines.filter((l) => l.msg === 'apply request took too long');
    const slowPut = slow.find((l) => l.prefix === '' && String(l.request).includes('key:"foo"'));
    expect(slowPut).toMatchObject({ level: 'warn', 'expected-duration': '1ns', response: expect.any(String) });
    expect(slowPut!.took).toMatch(GO_DURATION);

    const alarm = once(lines, 'alarm raised');
    expect(alarm).toEqual(expect.objectContaining({ level: 'warn', alarm: 'NOSPACE', from: self }));

    // stopping: etcd's lines, the last written out before the process exits
    expect(once(lines, 'received signal; shutting down')).toMatchObject({ signal: 'terminated' });
    expect(lines[lines.length - 1]).toMatchObject({ msg: 'closed etcd server', name: 'default' });
    // events in the order they happen
    const at = (l: object) => lines.indexOf(l as Record<string, any>);
    expect(at(starting)).toBeLessThan(at(elected));
    expect(at(elected)).toBeLessThan(at(serving));
    expect(at(serving)).toBeLessThan(at(compacted));
    expect(at(compacted)).toBeLessThan(at(alarm));
  }, 60_000);

  it('--log-outputs stdout: the lines go to stdout, nothing to stderr', async () => {
    const s = await start(['--log-outputs', 'stdout']);
    const r = await s.stop();
    expect(r.stderr).toBe('');
    const lines = parse(r.stdout);
    once(lines, 'serving client traffic insecurely; this is strongly discouraged!');
    expect(lines[lines.length - 1].msg).toBe('closed etcd server');
  }, 30_000);

  it('--log-outputs with a file path and stderr: both get every line; the file is appended to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-logfile-'));
    dirs.push(dir);
    const file = join(dir, 'etcd.log');
    const first = await start(['--log-outputs', `${file},stderr`]);
    const r = await first.stop();
    const inFile = readFileSync(file, 'utf8');
    expect(inFile).toBe(r.stderr);
    once(parse(inFile), 'starting an etcd server');
    const again = await start([`--log-outputs=${file}`], () => {
      try {
        return readFileSync(file, 'utf8').split('"msg":"serving client traffic').length === 3;
      } catch {
        return false;
      }
    });
    const r2 = await again.stop();
    expect(r2.stderr).toBe('');
    const lines = parse(readFileSync(file, 'utf8'));
    expect(lines.filter((l) => l.msg === 'starting an etcd server')).toHaveLength(2);
    expect(lines[lines.length - 1].msg).toBe('closed etcd server');
  }, 30_000);

  it('--log-level warn: no info lines; warnings still written', async () => {
    const s = await start(['--log-level', 'warn', '--experimental-warning-apply-duration', '1ns'], () => true);
    // no serving line to wait for at warn: wait for the port instead
    const kv = new RawKv(s.endpoint);
    try {
      for (let i = 0; ; i++) {
        try {
          await kv.put({ key: b('k'), value: b('v') });
          break;
        } catch (err) {
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      kv.close();
    }
    const r = await s.stop();
    const lines = parse(r.stderr);
    expect(lines.filter((l) => l.level === 'info' || l.level === 'debug')).toEqual([]);
    expect(lines.some((l) => l.msg === 'apply request took too long')).toBe(true);
  }, 30_000);

  it('--logger capnslog: capnslog\'s text lines', async () => {
    const s = await start(['--logger', 'capnslog'], (out) => out.includes('serving client traffic'));
    const r = await s.stop();
    const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('[WARNING]') && !l.includes("'--logger=capnslog'"));
    for (const l of lines) expect(l).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} [DIWEC] \| [a-z/.-]+: /);
    expect(lines.some((l) => / I \| cli\/main: serving client traffic insecurely; this is strongly discouraged!, address: 127\.0\.0\.1:\d+$/.test(l))).toBe(true);
  }, 30_000);

  it('an output that cannot be opened: one line and exit 1', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dir = mkdtempSync(join(tmpdir(), 'plinth-logbad-'));
    dirs.push(dir);
    const p = spawn(process.execPath, [BIN, '--data-dir', join(dir, 'd'), '--listen-client-urls', url, '--advertise-client-urls', url, '--log-outputs', join(dir, 'no', 'such', 'x.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    const code = await new Promise((r) => p.on('exit', r));
    expect(code).toBe(1);
    expect(err.trim().split('\n')).toEqual([expect.stringMatching(/^plinth: cannot open log output .*x\.log: ENOENT$/)]);
  }, 30_000);
});
