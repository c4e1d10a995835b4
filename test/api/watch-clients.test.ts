// Watch through real clients, against every target of apiTargets(), each case compared with what real
// etcd 3.4 gives for the same request sequence (on its own fresh server, so revisions line up):
//  - `etcdctl watch` (plain, --prefix, a range, --rev, --prev-kv, -w json, -i, a compacted --rev, the
//    exec-command form): a child process, always bounded (it is killed after a deadline at the latest);
//  - the npm `etcd3` client's watch API: key / prefix / startRevision / filters / prev kv, the 'put',
//    'delete', 'data', 'connected', 'end' events, cancel, many watchers sharing one stream, and a stream
//    that never needs to reconnect ('disconnected' must never fire) while every event arrives in order.
//
// The `etcd` target runs each case on a second etcd and compares it with the first (is the case itself
// deterministic?). Plinth targets need `npm run build`.
import { spawn } from 'node:child_process';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { normaliseJson, normaliseStderr, parseJsonExact } from '../compat/normalise';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, type RunningServer } from '../helpers/servers';
import { apiTargets, startTarget, type ApiTarget } from './grpc-client';
import { sleep } from './watch-client';

const ETCD_FAST = ['--heartbeat-interval=10', '--election-timeout=100'];

function start(target: ApiTarget, args: string[] = []): Promise<RunningServer> {
  return target === 'etcd' ? startEtcd([...ETCD_FAST, ...args]) : startTarget(target, args);
}

/** Runs a case on a fresh server of the target (with these server flags); the server is always stopped. */
async function onFresh<T>(target: ApiTarget, run: (s: RunningServer) => Promise<T>, args: string[] = []): Promise<T> {
  const server = await start(target, args);
  try {
    return await run(server);
  } finally {
    await server.stop();
  }
}

/** etcd's outcome of each case, computed once (by whichever target asks first). */
const references = new Map<string, Promise<unknown>>();
function reference<T>(name: string, run: (s: RunningServer) => Promise<T>, args: string[] = []): Promise<T> {
  let p = references.get(name);
  if (!p) references.set(name, (p = onFresh('etcd', run, args)));
  return p as Promise<T>;
}

/** Waits until cond() holds, at most ms; returns whether it did. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// etcdctl watch
// ---------------------------------------------------------------------------------------------

/** A running `etcdctl watch`, killed after maxMs at the latest. */
class CtlWatch {
  stdout = '';
  stderr = '';
  code: number | string | undefined;
  private readonly proc;
  private readonly exited: Promise<void>;
  private lastOutput = Date.now();

  constructor(endpoint: string, args: string[], maxMs = 15_000) {
    this.proc = spawn('etcdctl', ['--endpoints', endpoint, 'watch', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: maxMs, // the hard bound: SIGTERM after maxMs
    });
    this.proc.stdout.on('data', (d) => {
      this.stdout += d;
      this.lastOutput = Date.now();
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      this.lastOutput = Date.now();
    });
    this.exited = new Promise((r) =>
      this.proc.on('exit', (code, signal) => {
        this.code = code ?? signal ?? undefined;
        r();
      }),
    );
  }

  write(line: string): void {
    this.proc.stdin.write(line);
  }

  get running(): boolean {
    return this.code === undefined;
  }

  /** Waits until the output has not changed for quietMs (at most maxMs), or the process has exited. */
  async quiet(quietMs = 400, maxMs = 5_000): Promise<void> {
    const deadline = Date.now() + maxMs;
    const from = Date.now();
    while (this.running && Date.now() < deadline && Date.now() - Math.max(this.lastOutput, from) < quietMs) await sleep(25);
  }

  /** Ends the watch (SIGTERM, then SIGKILL) unless it exited by itself; resolves once it has exited. */
  async stop(): Promise<{ stdout: string; stderr: string; code: number | string }> {
    if (this.running) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 3_000);
      await this.exited;
      clearTimeout(t);
    } else await this.exited;
    return { stdout: this.stdout, stderr: this.stderr, code: this.code ?? 'unknown' };
  }
}

/** etcdctl -w json watch prints one JSON document per response, one per line. */
function normaliseWatchJson(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return normaliseJson(parseJsonExact(l), new Map());
      } catch {
        return l;
      }
    });
}

interface CtlOutcome {
  stdout: unknown;
  stderr: string[];
  code: number | string;
  /** Outputs of other etcdctl commands of the case. */
  other?: string[];
}

function ctlOutcome(r: { stdout: string; stderr: string; code: number | string }, json: boolean): CtlOutcome {
  // etcdctl's own exit is compared as it is; our SIGTERM shows as the signal name.
  return { stdout: json ? normaliseWatchJson(r.stdout) : r.stdout, stderr: normaliseStderr(r.stderr, new Map()), code: r.code };
}

/** The writes of the etcdctl cases, by etcdctl itself (exit code checked). */
function ctl(server: RunningServer, ...args: string[]): string {
  const r = etcdctl(server.endpoint, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** Time a fresh `etcdctl watch` (no --rev) is given to connect and create its watch before writes start. */
const CTL_CONNECT_MS = 1_200;

interface CtlCase {
  name: string;
  run(s: RunningServer): Promise<CtlOutcome>;
}

/** A live watch: start etcdctl, give it time to connect, write, wait for quiet, stop it. */
function liveCase(name: string, args: string[], writes: string[][], json = false): CtlCase {
  return {
    name,
    async run(s) {
      const w = new CtlWatch(s.endpoint, [...args, ...(json ? ['-w', 'json'] : [])]);
      await sleep(CTL_CONNECT_MS);
      for (const a of writes) ctl(s, ...a);
      await w.quiet();
      return ctlOutcome(await w.stop(), json);
    },
  };
}

/** A watch from a past revision: write, then start etcdctl with --rev; no timing involved. */
function historyCase(name: string, writes: string[][], args: string[], json = false, after: string[][] = []): CtlCase {
  return {
    name,
    async run(s) {
      for (const a of writes) ctl(s, ...a);
      const w = new CtlWatch(s.endpoint, [...args, ...(json ? ['-w', 'json'] : [])]);
      await w.quiet(600);
      for (const a of after) ctl(s, ...a);
      await w.quiet();
      return ctlOutcome(await w.stop(), json);
    },
  };
}

const HISTORY: string[][] = [
  ['put', 'k1', 'v1'],
  ['put', 'k2', 'v1'],
  ['put', 'k1', 'v2'],
  ['del', 'k2'],
  ['put', 'x', 'v1'],
];

const CTL_CASES: CtlCase[] = [
  liveCase('watch a key', ['a'], [['put', 'a', '1'], ['put', 'b', '1'], ['put', 'a', '2'], ['del', 'a'], ['put', 'a', '3']]),
  liveCase('watch --prefix', ['--prefix', 'p/'], [['put', 'p/1', '1'], ['put', 'p', 'no'], ['put', 'p/2', '2'], ['del', '--prefix', 'p/'], ['put', 'q', 'no']]),
  liveCase('watch a range [b, d)', ['b', 'd'], [['put', 'a', '1'], ['put', 'b', '1'], ['put', 'c', '1'], ['put', 'd', '1'], ['put', 'bb', '1']]),
  liveCase('watch --prefix "" (every key)', ['--prefix', ''], [['put', 'a', '1'], ['put', 'zz', '1'], ['del', 'a']]),
  liveCase('watch --prev-kv', ['--prev-kv', 'a'], [['put', 'a', '1'], ['put', 'a', '2'], ['del', 'a'], ['put', 'a', '3']]),
  liveCase('watch -w json', ['--prefix', 'j/'], [['put', 'j/1', 'x'], ['put', 'j/2', 'y'], ['del', '--prefix', 'j/']], true),
  liveCase('watch --prev-kv -w json', ['--prev-kv', 'a'], [['put', 'a', '1'], ['put', 'a', '2'], ['del', 'a']], true),
  historyCase('watch --rev 2 --prefix k (history)', HISTORY, ['--rev', '2', '--prefix', 'k'], false, [['put', 'k3', 'live']]),
  historyCase('watch --rev 3 -w json (history)', HISTORY, ['--rev', '3', '--prefix', 'k'], true, [['put', 'k1', 'live']]),
  historyCase('watch --rev 2 --prev-kv (history)', HISTORY, ['--rev', '2', '--prev-kv', 'k1'], false),
  historyCase('watch --rev on a compacted revision', [...HISTORY, ['compact', '4']], ['--rev', '2', 'k1'], false),
  historyCase('watch --rev on a compacted revision -w json', [...HISTORY, ['compact', '4']], ['--rev', '2', 'k1'], true),
  {
    name: 'watch -i (interactive: several watches on one stream)',
    async run(s) {
      ctl(s, 'put', 'a', '0');
      const w = new CtlWatch(s.endpoint, ['-i']);
      w.write('watch a\n');
      w.write('watch --prefix b\n');
      w.write('watch --rev 2 a\n');
      // Three watches to open, on a loaded machine: more time than one needs.
      await sleep(3 * CTL_CONNECT_MS);
      for (const a of [['put', 'a', '1'], ['put', 'b/1', '1'], ['put', 'c', '1'], ['del', 'a']]) ctl(s, ...a);
      await w.quiet(1_000);
      const out = await w.stop();
      // Each watch of -i has its own goroutine printing line by line, so lines of different watches can
      // interleave (on etcd as well): compare the sorted lines.
      return { ...ctlOutcome(out, false), stdout: out.stdout.replace(/\n$/, '').split('\n').sort() };
    },
  },
  {
    name: 'watch with an exec-command',
    async run(s) {
      const w = new CtlWatch(s.endpoint, ['e', '--', 'sh', '-c', 'echo "$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE rev $ETCD_WATCH_REVISION"']);
      await sleep(CTL_CONNECT_MS);
      for (const a of [['put', 'e', '1'], ['put', 'e', '2'], ['del', 'e']]) ctl(s, ...a);
      await w.quiet();
      return ctlOutcome(await w.stop(), false);
    },
  },
];

describe.skipIf(!ETCDCTL_AVAILABLE || !ETCD_AVAILABLE).each(apiTargets())('etcdctl watch against etcd 3.4 (%s)', (target) => {
  it.each(CTL_CASES.map((c) => [c.name, c] as const))('%s', { timeout: 60_000 }, async (_name, c) => {
    const [want, got] = await Promise.all([reference(`ctl:${c.name}`, (s) => c.run(s)), onFresh(target, (s) => c.run(s))]);
    if (process.env.PLINTH_WATCH_DUMP) console.log(`${c.name}\n etcd: ${JSON.stringify(want, null, 1)}\n ${target}: ${JSON.stringify(got, null, 1)}`);
    // The case must show something (else it compares nothing).
    expect(JSON.stringify(want.stdout).length + want.stderr.join('').length, 'etcd printed nothing').toBeGreaterThan(5);
    expect(got).toEqual(want);
  });
});

// ---------------------------------------------------------------------------------------------
// npm etcd3 client
// ---------------------------------------------------------------------------------------------

const kvText = (kv: IKeyValue | undefined): string =>
  kv ? `${kv.key.toString()}=${kv.value.toString()} c${kv.create_revision} m${kv.mod_revision} v${kv.version}` : 'none';

/** Every event of a watcher as text, 'disconnected' and 'error' included (they must not happen). */
function record(w: Watcher, log: string[], tag = ''): void {
  w.on('put', (kv, prev) => log.push(`${tag}put ${kvText(kv)}${prev ? ` prev ${kvText(prev)}` : ''}`));
  w.on('delete', (kv, prev) => log.push(`${tag}delete ${kvText(kv)}${prev ? ` prev ${kvText(prev)}` : ''}`));
  w.on('data', (res) => log.push(`${tag}data rev=${res.header.revision} events=${res.events.length}`));
  w.on('end', () => log.push(`${tag}end`));
  w.on('disconnected', (err) => log.push(`${tag}DISCONNECTED ${err?.message}`));
  w.on('error', (err) => log.push(`${tag}error ${err?.message}`));
}

/** Awaits p, failing after ms (never hang a test on a client promise). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

interface ClientCase {
  name: string;
  /** Server flags, the same for etcd and Plinth. */
  args?: string[];
  run(client: Etcd3): Promise<string[]>;
}

const count = (log: string[], re: RegExp) => log.filter((l) => re.test(l)).length;

const CLIENT_CASES: ClientCase[] = [
  {
    name: 'key(): put, delete and data events in order, then cancel',
    async run(client) {
      const log: string[] = [];
      const w = await within(client.watch().key('a').create(), 5_000, 'create');
      record(w, log);
      log.push(`watch id ${w.id}`);
      await client.put('a').value('1');
      await client.put('b').value('1');
      await client.put('a').value('2');
      await client.delete().key('a');
      await client.put('a').value('3');
      await until(() => count(log, /^(put|delete) /) >= 4, 5_000);
      await within(w.cancel(), 5_000, 'cancel');
      log.push('canceled');
      await client.put('a').value('4');
      await sleep(300); // nothing more may come
      return log;
    },
  },
  {
    name: 'prefix() with withPreviousKV()',
    async run(client) {
      const log: string[] = [];
      const w = await within(client.watch().prefix('p/').withPreviousKV().create(), 5_000, 'create');
      record(w, log);
      await client.put('p/1').value('1');
      await client.put('p/2').value('1');
      await client.put('p/1').value('2');
      await client.put('q').value('no');
      await client.delete().prefix('p/');
      await until(() => count(log, /^(put|delete) /) >= 5, 5_000);
      await sleep(200);
      await within(w.cancel(), 5_000, 'cancel');
      return log;
    },
  },
  {
    name: 'startRevision() replays history, then live events',
    async run(client) {
      const log: string[] = [];
      await client.put('h').value('1');
      await client.put('other').value('1');
      await client.put('h').value('2');
      await client.delete().key('h');
      await client.put('h').value('3');
      const w = await within(client.watch().key('h').startRevision('3').create(), 5_000, 'create');
      record(w, log);
      await until(() => count(log, /^(put|delete) /) >= 3, 5_000);
      await client.put('h').value('4');
      await until(() => count(log, /^(put|delete) /) >= 4, 5_000);
      await sleep(200);
      log.push(`lastRevision ${w.lastRevision()}`);
      await within(w.cancel(), 5_000, 'cancel');
      return log;
    },
  },
  {
    name: 'only() / ignore() filters',
    async run(client) {
      const log: string[] = [];
      const puts = await within(client.watch().key('f').only('put').create(), 5_000, 'create');
      const dels = await within(client.watch().key('f').only('delete').create(), 5_000, 'create');
      record(puts, log, 'only-put: ');
      record(dels, log, 'only-delete: ');
      await client.put('f').value('1');
      await client.delete().key('f');
      await client.put('f').value('2');
      await until(() => count(log, /(put|delete) f/) >= 3, 5_000);
      await sleep(200);
      await within(Promise.all([puts.cancel(), dels.cancel()]), 5_000, 'cancel');
      // Two watchers on one stream: their responses may interleave either way.
      return [...log.filter((l) => l.startsWith('only-put')), ...log.filter((l) => l.startsWith('only-delete'))];
    },
  },
  {
    name: 'many watchers created at once share one stream, each gets its own events',
    async run(client) {
      const n = 25;
      const logs: string[][] = Array.from({ length: n }, () => []);
      const ws = await within(Promise.all(Array.from({ length: n }, (_, i) => client.watch().key(`k${i}`).create())), 10_000, 'create');
      ws.forEach((w, i) => record(w, logs[i]));
      const ids = ws.map((w) => w.id);
      for (let i = n - 1; i >= 0; i--) await client.put(`k${i}`).value(`v${i}`);
      await until(() => logs.every((l) => count(l, /^put /) >= 1), 5_000);
      await sleep(200);
      await within(Promise.all(ws.map((w) => w.cancel())), 10_000, 'cancel');
      return [`ids ${ids.join(',')}`, ...logs.map((l, i) => `k${i}: ${l.join(' ; ')}`)];
    },
  },
  {
    name: 'a compacted startRevision: created, then canceled with an error',
    async run(client) {
      const log: string[] = [];
      for (const v of ['1', '2', '3', '4']) await client.put('c').value(v);
      await client.kv.compact({ revision: '4' });
      const w = client.watch().key('c').startRevision('2').watcher();
      record(w, log);
      w.on('connected', (res) => log.push(`connected id=${res.watch_id} rev=${res.header.revision}`));
      await until(() => log.some((l) => l.startsWith('error')), 5_000);
      await sleep(200);
      return log;
    },
  },
  {
    // etcd3's builder always asks for progress_notify; each progress response (no events) moves the
    // watcher's lastRevision(), where it would resume from after a reconnect.
    name: 'progress notifications move lastRevision() past writes to other keys',
    args: ['--experimental-watch-progress-notify-interval', '300ms'],
    async run(client) {
      const log: string[] = [];
      const w = await within(client.watch().key('a').create(), 5_000, 'create');
      log.push(`lastRevision after create ${w.lastRevision()}`);
      let progress = 0;
      w.on('data', (res) => {
        if (res.events.length === 0) progress++;
      });
      await client.put('b').value('1');
      await client.put('b').value('2');
      await client.put('b').value('3'); // revision 4
      await until(() => String(w.lastRevision()) === '5', 2_000);
      log.push(`lastRevision after writes to another key and progress notifications ${w.lastRevision()}`);
      log.push(`progress notifications seen: ${progress > 0}`);
      await within(w.cancel(), 5_000, 'cancel');
      return log;
    },
  },
  {
    name: 'cancel every watcher, then watch again (a new stream)',
    async run(client) {
      const log: string[] = [];
      const w1 = await within(client.watch().key('r').create(), 5_000, 'create');
      record(w1, log, 'w1: ');
      await client.put('r').value('1');
      await until(() => count(log, /put/) >= 1, 5_000);
      await within(w1.cancel(), 5_000, 'cancel');
      const w2 = await within(client.watch().key('r').create(), 5_000, 'create');
      record(w2, log, 'w2: ');
      log.push(`w2 id ${w2.id}`);
      await client.put('r').value('2');
      await until(() => count(log, /w2: put/) >= 1, 5_000);
      await sleep(200);
      await within(w2.cancel(), 5_000, 'cancel');
      return log;
    },
  },
];

describe.skipIf(!ETCD_AVAILABLE).each(apiTargets())('etcd3 client watch against etcd 3.4 (%s)', (target) => {
  const runCase = (c: ClientCase) => (s: RunningServer) => {
    const client = new Etcd3({ hosts: s.url });
    return c.run(client).finally(() => client.close());
  };

  it.each(CLIENT_CASES.map((c) => [c.name, c] as const))('%s', { timeout: 60_000 }, async (_name, c) => {
    const [want, got] = await Promise.all([reference(`client:${c.name}`, runCase(c), c.args), onFresh(target, runCase(c), c.args)]);
    if (process.env.PLINTH_WATCH_DUMP) console.log(`${c.name}\n etcd: ${JSON.stringify(want, null, 1)}\n ${target}: ${JSON.stringify(got, null, 1)}`);
    expect(want.join('\n')).not.toMatch(/DISCONNECTED/);
    expect(got).toEqual(want);
  });

  it('every event of 600 concurrent writes arrives once, in revision order, without a reconnect', { timeout: 60_000 }, async () => {
    await onFresh(target, async (s) => {
      const client = new Etcd3({ hosts: s.url });
      try {
        const log: string[] = [];
        const revs: number[] = [];
        const keys = new Set<string>();
        const w = await within(client.watch().prefix('load/').withPreviousKV().create(), 5_000, 'create');
        record(w, log);
        w.on('put', (kv, prev) => {
          revs.push(Number(kv.mod_revision));
          keys.add(kv.key.toString());
          if (prev) log.push(`unexpected prev_kv on a creation: ${kvText(prev)}`);
        });
        const start = Number((await client.get('none').exec()).header.revision);
        let next = 0;
        const total = 600;
        const writer = async () => {
          while (next < total) {
            const i = next++;
            await client.put(`load/${String(i).padStart(4, '0')}`).value(String(i));
          }
        };
        await Promise.all(Array.from({ length: 16 }, writer));
        expect(await until(() => revs.length >= total, 10_000), `received ${revs.length} of ${total} events`).toBe(true);
        await sleep(200);
        expect(revs).toEqual(Array.from({ length: total }, (_, i) => start + 1 + i));
        expect(keys.size).toBe(total);
        expect(log.filter((l) => /^(DISCONNECTED|error|unexpected|end)/.test(l))).toEqual([]);
        await within(w.cancel(), 5_000, 'cancel');
      } finally {
        client.close();
      }
    });
  });
});
