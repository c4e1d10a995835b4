// Request latency while a large compaction runs: Plinth with several batch-limit / sleep settings, the
// same with no compaction, and real etcd 3.4 doing the same compaction (issue #6).
//
//   bash bench/compaction/run.sh [options]        # builds what is missing, then runs this
//   node dist/bench/compaction/compaction.js [options]
//
// Options:
//   --keys N         key space (default 100000)          --versions N   versions per key (default 10)
//   --val-size N     value bytes (default 256)           --rate N       puts/s and ranges/s each (default 200)
//   --only a,b       run only these scenarios (names as in the table; default all)
//   --parent DIR     where data dirs go (default /var/tmp: real disk, fsync on)
//   --preload-parent DIR  where the preload runs (default /dev/shm if present: etcd 3.4 has no
//                    --unsafe-no-fsync, and the preload is not what is measured); then copied to --parent
//   --bases DIR      keep the preloaded data dirs in DIR and reuse them when they are there (same
//                    --keys / --versions / --val-size); default: preload afresh, remove at the end
//   --quick          10000 keys x 10 versions, shorter windows (a smoke run; results not written over
//                    the committed ones unless --out-dir is given)
//   --out-dir DIR    where compaction.md and compaction-latency.svg go (default bench/results)
//
// What it does: preloads one Plinth (lmdb) and one etcd with keys x versions puts using etcd's Go
// benchmark tool (`benchmark put --sequential-keys`), stops them, and for each scenario starts a server on
// a copy of that data dir. A small open-loop client sends --rate puts/s (random preloaded key, same value
// size) and --rate linearizable single-key ranges/s, and records every request's send time and latency.
// After a warm-up it sends Compact(revision = end of preload, physical = true) and keeps the load on
// until 3 s after the compaction answered. The statistics are over requests sent while the compaction
// ran. Every loop is bounded in count and time; servers listen on 127.0.0.1 and only PIDs started here
// are stopped.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProtos } from '../../src/api/proto';

const ROOT = resolve(__dirname, '..', '..', '..');

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

interface Options {
  keys: number;
  versions: number;
  valSize: number;
  rate: number;
  parent: string;
  preloadParent: string;
  bases: string | undefined;
  quick: boolean;
  outDir: string;
  only: string[] | undefined;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { keys: 100_000, versions: 10, valSize: 256, rate: 200, parent: '/var/tmp', preloadParent: existsSync('/dev/shm') ? '/dev/shm' : '/var/tmp', bases: undefined, quick: false, outDir: join(ROOT, 'bench', 'results'), only: undefined };
  let outGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--keys') o.keys = num();
    else if (a === '--versions') o.versions = num();
    else if (a === '--val-size') o.valSize = num();
    else if (a === '--rate') o.rate = Math.min(num(), 2000);
    else if (a === '--parent') o.parent = argv[++i];
    else if (a === '--preload-parent') o.preloadParent = argv[++i];
    else if (a === '--bases') o.bases = resolve(argv[++i]);
    else if (a === '--out-dir') (o.outDir = resolve(argv[++i])), (outGiven = true);
    else if (a === '--only') o.only = argv[++i].split(',');
    else if (a === '--quick') o.quick = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.quick) {
    o.keys = Math.min(o.keys, 10_000);
    if (!outGiven) o.outDir = join(o.parent, 'plinth-compaction-quick');
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  server: 'plinth' | 'etcd';
  /** undefined = no compaction: the load runs for a fixed time. */
  compaction?: { batchLimit: number; sleepMs: number };
  label: string;
}

const NO_BATCHING = 100_000_000;

const SCENARIOS: Scenario[] = [
  { name: 'plinth-none', server: 'plinth', label: 'Plinth, no compaction' },
  { name: 'plinth-1000-10ms', server: 'plinth', compaction: { batchLimit: 1000, sleepMs: 10 }, label: 'Plinth 1000 / 10ms (default)' },
  { name: 'plinth-100-10ms', server: 'plinth', compaction: { batchLimit: 100, sleepMs: 10 }, label: 'Plinth 100 / 10ms' },
  { name: 'plinth-10000-0ms', server: 'plinth', compaction: { batchLimit: 10_000, sleepMs: 0 }, label: 'Plinth 10000 / 0ms' },
  { name: 'plinth-nobatch', server: 'plinth', compaction: { batchLimit: NO_BATCHING, sleepMs: 0 }, label: 'Plinth no batching (one batch, 0ms)' },
  { name: 'etcd-none', server: 'etcd', label: 'etcd 3.4, no compaction' },
  { name: 'etcd-1000-10ms', server: 'etcd', compaction: { batchLimit: 1000, sleepMs: 10 }, label: 'etcd 3.4 1000 / 10ms (default)' },
  { name: 'etcd-nobatch', server: 'etcd', compaction: { batchLimit: NO_BATCHING, sleepMs: 10 }, label: 'etcd 3.4 no batching (one batch)' },
];

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

interface Server {
  proc: ChildProcess;
  endpoint: string;
  port: number;
  logFile: string;
  logs(): string;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

async function startServer(kind: 'plinth' | 'etcd', dataDir: string, extra: string[]): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let args: string[];
  let bin: string;
  const quota = ['--quota-backend-bytes', String(8 * 1024 ** 3)];
  if (kind === 'plinth') {
    bin = process.execPath;
    args = [join(ROOT, 'bin', 'plinth.js'), '--data-dir', dataDir, '--listen-client-urls', url, '--advertise-client-urls', url, '--backend', 'lmdb', ...quota, ...extra];
  } else {
    const peerPort = await freePort();
    const peer = `http://127.0.0.1:${peerPort}`;
    bin = 'etcd';
    args = [
      '--name', 'default', '--data-dir', dataDir, '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
      '--logger', 'zap', '--log-outputs', 'stderr', ...quota, ...extra,
    ];
  }
  const logFile = `${dataDir}.log`;
  const out = createWriteStream(logFile, { flags: 'a' });
  let tail = '';
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const keep = (d: Buffer) => {
    out.write(d);
    tail = (tail + d.toString()).slice(-200_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const s: Server = { proc, endpoint: `127.0.0.1:${port}`, port, logFile, logs: () => tail };
  // Ready once a range answers (Plinth rebuilds its key index at start: up to a minute at 1M revisions).
  const kv = kvClient(s.endpoint);
  const deadline = Date.now() + 180_000;
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`${kind} exited with ${proc.exitCode}: ${tail.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`${kind} not ready after 180 s`);
      try {
        await unary(kv, 'Range', { key: Buffer.from('ready?') }, 2000);
        break;
      } catch {
        await sleep(200);
      }
    }
  } finally {
    kv.close();
  }
  return s;
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.proc.once('exit', () => r()));
  s.proc.kill('SIGTERM');
  const t = setTimeout(() => s.proc.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------------------------
// gRPC client
// ---------------------------------------------------------------------------------------------

type Client = grpc.Client & Record<string, Function>;

function kvClient(endpoint: string): Client {
  const root = loadEtcdProtos() as Record<string, any>;
  const Ctor = root.etcdserverpb.KV as typeof grpc.Client;
  return new Ctor(endpoint, grpc.credentials.createInsecure()) as Client;
}

function unary(c: Client, method: string, req: object, timeoutMs: number): Promise<any> {
  return new Promise((res, rej) => {
    c[method](req, { deadline: Date.now() + timeoutMs }, (err: Error | null, r: any) => (err ? rej(err) : res(r)));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The key the Go benchmark tool's put --sequential-keys writes for n: binary.PutVarint into 8 bytes. */
function goKey(n: number): Buffer {
  const k = Buffer.alloc(8);
  let v = BigInt(n) << 1n; // zig-zag for n >= 0
  let i = 0;
  while (v >= 0x80n) {
    k[i++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  k[i] = Number(v);
  return k;
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/** Every request: op (0 put, 1 range), send time (ms since the run's start), latency (ms), ok. */
class Samples {
  op: number[] = [];
  at: number[] = [];
  ms: number[] = [];
  ok: boolean[] = [];
  add(op: number, at: number, ms: number, ok: boolean): void {
    this.op.push(op);
    this.at.push(at);
    this.ms.push(ms);
    this.ok.push(ok);
  }
}

/**
 * An open-loop load: `rate` puts and `rate` ranges per second, sent on schedule whether or not earlier
 * ones answered (so a stalled server shows as latency, not as fewer requests), at most maxInFlight
 * outstanding per kind (beyond that a request is counted as skipped).
 */
class Load {
  readonly samples = new Samples();
  private timer: NodeJS.Timeout | undefined;
  private inFlight = [0, 0];
  skipped = 0;
  private sent = 0;
  private readonly t0: number;
  private readonly value: Buffer;
  private seed = 12345;

  constructor(private readonly c: Client, private readonly rate: number, private readonly keys: number, valSize: number, t0: number) {
    this.t0 = t0;
    this.value = Buffer.alloc(valSize, 'v');
  }

  private rnd(): number {
    this.seed = (this.seed * 1103515245 + 12345) >>> 0;
    return this.seed / 2 ** 32;
  }

  start(): void {
    const begin = performance.now();
    const period = 1000 / (2 * this.rate); // puts and ranges alternate
    this.timer = setInterval(() => {
      const due = Math.floor((performance.now() - begin) / period);
      // Catch up at most one second's worth at once (the client itself may have been descheduled).
      for (let n = 0; this.sent < due && n < 2 * this.rate; n++) this.send(this.sent++ % 2);
    }, 2);
  }

  private send(op: number): void {
    if (this.inFlight[op] >= 5000) {
      this.skipped++;
      return;
    }
    this.inFlight[op]++;
    const key = goKey(Math.floor(this.rnd() * this.keys));
    const start = performance.now();
    const done = (err: Error | null) => {
      const end = performance.now();
      this.inFlight[op]--;
      this.samples.add(op, start - this.t0, end - start, !err);
    };
    const deadline = { deadline: Date.now() + 120_000 };
    if (op === 0) this.c.Put({ key, value: this.value }, deadline, done);
    else this.c.Range({ key }, deadline, done);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const deadline = Date.now() + 130_000;
    while ((this.inFlight[0] > 0 || this.inFlight[1] > 0) && Date.now() < deadline) await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

interface Stats {
  n: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
}

function stats(s: Samples, op: number, from: number, to: number): Stats {
  const v: number[] = [];
  let errors = 0;
  for (let i = 0; i < s.op.length; i++) {
    if (s.op[i] !== op || s.at[i] < from || s.at[i] > to) continue;
    if (!s.ok[i]) errors++;
    v.push(s.ms[i]);
  }
  v.sort((a, b) => a - b);
  const q = (p: number) => (v.length ? v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)] : NaN);
  return { n: v.length, errors, p50: q(0.5), p99: q(0.99), max: v.length ? v[v.length - 1] : NaN };
}

interface Metrics {
  values: Record<string, number>;
  /** Histogram buckets by metric name: [upper bound, cumulative count]. */
  buckets: Record<string, [number, number][]>;
}

/** A few numbers from /metrics: etcd's compaction histograms and counter. */
async function compactionMetrics(port: number): Promise<Metrics> {
  const out: Metrics = { values: {}, buckets: {} };
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    for (const line of text.split('\n')) {
      const m = /^(etcd_debugging_mvcc_\w*compaction\w*) (\S+)$/.exec(line);
      if (m) out.values[m[1]] = Number(m[2]);
      const b = /^(etcd_debugging_mvcc_\w*compaction_pause_duration_milliseconds)_bucket\{le="([^"]+)"\} (\S+)$/.exec(line);
      if (b) (out.buckets[b[1]] ??= []).push([b[2] === '+Inf' ? Infinity : Number(b[2]), Number(b[3])]);
    }
  } catch {
    // a server without the metrics: leave them out
  }
  return out;
}

/** The bucket that holds the longest observation: the first whose cumulative count is the total. */
function maxBucket(m: Metrics, name: string): string {
  const buckets = m.buckets[name];
  const count = m.values[`${name}_count`];
  if (!buckets || !count) return '–';
  const i = buckets.findIndex(([, c]) => c >= count);
  if (i < 0) return '–';
  if (buckets[i][0] === Infinity) return `> ${buckets[i - 1][0]}`;
  return i === 0 ? `≤ ${buckets[0][0]}` : `${buckets[i - 1][0]}–${buckets[i][0]}`;
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

interface RunResult {
  sc: Scenario;
  samples: Samples;
  /** The window the statistics are over (ms since the run's start), and the whole run's length. */
  from: number;
  to: number;
  end: number;
  compactMs?: number;
  serverTook?: string;
  metrics: Metrics;
  skipped: number;
  before: { put: Stats; range: Stats };
  during: { put: Stats; range: Stats };
}

/** Preloads a server of this kind into dir (on --preload-parent, then copied); returns its revision. */
async function preload(kind: 'plinth' | 'etcd', dir: string, o: Options, bench: string): Promise<number> {
  const tag = `${o.keys}x${o.versions}x${o.valSize}`;
  if (o.bases && existsSync(join(o.bases, `${kind}-base`)) && existsSync(join(o.bases, `${kind}-base.rev`))) {
    const [rev, was] = readFileSync(join(o.bases, `${kind}-base.rev`), 'utf8').trim().split(' ');
    if (was === tag) {
      log(`${kind}: reusing the preloaded ${join(o.bases, `${kind}-base`)} (revision ${rev})`);
      execFileSync('cp', ['-a', join(o.bases, `${kind}-base`), dir]);
      return Number(rev);
    }
  }
  log(`preloading ${kind}: ${o.keys} keys x ${o.versions} versions of ${o.valSize} bytes (on ${o.preloadParent})`);
  const tmp = mkdtempSync(join(o.preloadParent, `plinth-compaction-preload-${kind}-`));
  const pdir = join(tmp, 'data');
  let rev: number;
  try {
    const s = await startServer(kind, pdir, []);
    try {
      const total = o.keys * o.versions;
      execFileSync(bench, [
        '--endpoints', s.endpoint, '--clients', '100', '--conns', '10',
        'put', '--sequential-keys', '--key-space-size', String(o.keys), '--total', String(total), '--val-size', String(o.valSize),
      ], { stdio: ['ignore', 'ignore', 'ignore'], timeout: 1_800_000 });
      const kv = kvClient(s.endpoint);
      const r = await unary(kv, 'Range', { key: goKey(0) }, 10_000);
      kv.close();
      rev = Number(r.header.revision);
      log(`${kind} preloaded: revision ${rev}`);
    } finally {
      await stopServer(s);
    }
    execFileSync('cp', ['-a', pdir, dir]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (o.bases) {
    mkdirSync(o.bases, { recursive: true });
    rmSync(join(o.bases, `${kind}-base`), { recursive: true, force: true });
    execFileSync('cp', ['-a', dir, join(o.bases, `${kind}-base`)]);
    writeFileSync(join(o.bases, `${kind}-base.rev`), `${rev} ${tag}\n`);
  }
  return rev;
}

async function runScenario(sc: Scenario, base: string, work: string, compactRev: number, o: Options): Promise<RunResult> {
  const dir = join(work, sc.name);
  rmSync(dir, { recursive: true, force: true });
  execFileSync('cp', ['-a', base, dir]);
  const extra: string[] = [];
  if (sc.compaction) {
    extra.push('--experimental-compaction-batch-limit', String(sc.compaction.batchLimit));
    if (sc.server === 'plinth') extra.push('--experimental-compaction-sleep-interval', `${sc.compaction.sleepMs}ms`);
  }
  log(`${sc.name}: starting`);
  const s = await startServer(sc.server, dir, extra);
  const kv = kvClient(s.endpoint);
  try {
    const warmMs = o.quick ? 2000 : 4000;
    const tailMs = 3000;
    const t0 = performance.now();
    const load = new Load(kv, o.rate, o.keys, o.valSize, t0);
    load.start();
    await sleep(warmMs);
    let from: number;
    let to: number;
    let compactMs: number | undefined;
    if (sc.compaction) {
      from = performance.now() - t0;
      log(`${sc.name}: compacting at revision ${compactRev}`);
      await unary(kv, 'Compact', { revision: compactRev, physical: true }, 30 * 60_000);
      to = performance.now() - t0;
      compactMs = to - from;
      log(`${sc.name}: compaction took ${(compactMs / 1000).toFixed(1)} s`);
    } else {
      from = performance.now() - t0;
      await sleep(o.quick ? 6000 : 20_000);
      to = performance.now() - t0;
    }
    await sleep(tailMs);
    await load.stop();
    const end = performance.now() - t0;
    const metrics = sc.compaction ? await compactionMetrics(s.port) : { values: {}, buckets: {} };
    const line = s.logs().split('\n').find((l) => l.includes('finished scheduled compaction'));
    const serverTook = line ? /"took":\s*"([^"]+)"/.exec(line)?.[1] : undefined;
    const sm = load.samples;
    return {
      sc, samples: sm, from, to, end, compactMs, serverTook, metrics, skipped: load.skipped,
      before: { put: stats(sm, 0, 500, from), range: stats(sm, 1, 500, from) },
      during: { put: stats(sm, 0, from, to), range: stats(sm, 1, from, to) },
    };
  } finally {
    kv.close();
    await stopServer(s);
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.log`, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const f = (v: number) => (Number.isNaN(v) ? '–' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

function table(results: RunResult[], o: Options, compactRev: Record<string, number>): string {
  const lines: string[] = [];
  lines.push('# Latency during a large compaction (issue #6)', '');
  lines.push(`Generated by \`bash bench/compaction/run.sh\` (\`node dist/bench/compaction/compaction.js\`) on ${new Date().toISOString().slice(0, 10)}; ${require('node:os').cpus().length} CPUs; data dirs on ${o.parent} (fsync on).`, '');
  lines.push(
    `Each server was preloaded with etcd's Go benchmark tool (\`benchmark put --sequential-keys --key-space-size ${o.keys} --total ${o.keys * o.versions} --val-size ${o.valSize}\`): ` +
      `${o.keys} keys x ${o.versions} versions = ${o.keys * o.versions} revisions, then stopped; every scenario starts a server (Plinth: lmdb) on a copy of that data dir. ` +
      `A small Node client sends ${o.rate} puts/s (random preloaded key, ${o.valSize}-byte value) and ${o.rate} linearizable single-key ranges/s, open loop, ` +
      `and records every request's latency. After a warm-up the client sends \`Compact(revision = ${compactRev.plinth ?? compactRev.etcd}, physical = true)\` ` +
      `(all but the last version of each key: ${(o.keys * (o.versions - 1)).toLocaleString('en')} revisions to delete) and the load goes on until 3 s after it answered.`,
    '',
  );
  lines.push('Latencies in ms, over the requests sent while the compaction ran (for the "no compaction" rows: a 20 s window). "compaction" is the time the physical Compact RPC took; "server took" is the `took` of the server\'s "finished scheduled compaction" log line (etcd\'s does not include the key-index compaction, Plinth\'s neither). Batch pauses: etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds (count / mean / the bucket holding the longest); index: etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds (Plinth: each slice that held the event loop; etcd: the whole index compaction). The 2-CPU machine may be shared with other work while this runs: compare the rows of one run, not runs with each other.', '');
  lines.push('| setting (batch limit / sleep) | compaction | server took | put p50 | put p99 | put max | range p50 | range p99 | range max | errors | db batch pauses (n / mean / max bucket) | index pauses (n / max bucket) |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const m = r.metrics;
    const dbn = m.values.etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_count;
    const dbs = m.values.etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_sum;
    const ixn = m.values.etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds_count;
    const d = r.during;
    lines.push(`| ${r.sc.label} | ${r.compactMs !== undefined ? `${(r.compactMs / 1000).toFixed(1)} s` : '–'} | ${r.serverTook ?? '–'} | ${f(d.put.p50)} | ${f(d.put.p99)} | ${f(d.put.max)} | ${f(d.range.p50)} | ${f(d.range.p99)} | ${f(d.range.max)} | ${d.put.errors + d.range.errors + r.skipped} | ${dbn !== undefined ? `${dbn} / ${f(dbs / Math.max(1, dbn))} / ${maxBucket(m, 'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds')}` : '–'} | ${ixn !== undefined ? `${ixn} / ${maxBucket(m, 'etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds')}` : '–'} |`);
  }
  lines.push('', 'Before the compaction (warm-up window of the same runs), for reference:', '');
  lines.push('| setting | put p50 | put p99 | put max | range p50 | range p99 | range max |', '|---|---|---|---|---|---|---|');
  for (const r of results) {
    const b = r.before;
    lines.push(`| ${r.sc.label} | ${f(b.put.p50)} | ${f(b.put.p99)} | ${f(b.put.max)} | ${f(b.range.p50)} | ${f(b.range.p99)} | ${f(b.range.max)} |`);
  }
  lines.push('', 'The latency over time of each run is in `compaction-latency.svg` (per 250 ms of send time: the slowest put and range, and the median).', '');
  return lines.join('\n');
}

/** Small multiples, one panel per run: per 250 ms bucket of send time, max and median latency (log scale). */
function svg(results: RunResult[]): string {
  const W = 900;
  const PH = 170;
  const M = { l: 60, r: 20, t: 28, b: 30 };
  const H = results.length * (PH + M.t + M.b) + 40;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">Request latency over time during a compaction (log scale; shaded: compaction running)</text>`);
  const yMin = 0.1;
  const yMax = 10_000;
  const ly = (v: number) => Math.log10(Math.min(Math.max(v, yMin), yMax));
  const colors = { put: '#d62728', range: '#1f77b4' };
  results.forEach((r, i) => {
    const top = 40 + i * (PH + M.t + M.b) + M.t;
    const left = M.l;
    const w = W - M.l - M.r;
    const xs = (t: number) => left + (t / r.end) * w;
    const ys = (v: number) => top + PH - ((ly(v) - ly(yMin)) / (ly(yMax) - ly(yMin))) * PH;
    out.push(`<text x="${left}" y="${top - 8}" font-size="12" font-weight="bold">${esc(r.sc.label)}${r.compactMs !== undefined ? ` — compaction ${(r.compactMs / 1000).toFixed(1)} s` : ''}</text>`);
    if (r.sc.compaction) out.push(`<rect x="${xs(r.from).toFixed(1)}" y="${top}" width="${Math.max(1, xs(r.to) - xs(r.from)).toFixed(1)}" height="${PH}" fill="#f2e6c9"/>`);
    out.push(`<rect x="${left}" y="${top}" width="${w}" height="${PH}" fill="none" stroke="#999"/>`);
    for (let e = -1; e <= 4; e++) {
      const y = ys(10 ** e);
      out.push(`<line x1="${left}" x2="${left + w}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${left - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : 10 ** e} ms</text>`);
    }
    const step = r.end > 60_000 ? 20_000 : r.end > 20_000 ? 5000 : 2000;
    for (let t = 0; t <= r.end; t += step) out.push(`<text x="${xs(t).toFixed(1)}" y="${top + PH + 14}" text-anchor="middle">${t / 1000}s</text>`);
    const BUCKET = 250;
    for (const [op, name] of [[0, 'put'], [1, 'range']] as const) {
      const n = Math.ceil(r.end / BUCKET);
      const groups: number[][] = Array.from({ length: n }, () => []);
      const s = r.samples;
      for (let k = 0; k < s.op.length; k++) if (s.op[k] === op) groups[Math.min(n - 1, Math.floor(s.at[k] / BUCKET))].push(s.ms[k]);
      const maxPts: string[] = [];
      const medPts: string[] = [];
      groups.forEach((g, b) => {
        if (!g.length) return;
        g.sort((x, y) => x - y);
        const x = xs((b + 0.5) * BUCKET).toFixed(1);
        maxPts.push(`${x},${ys(g[g.length - 1]).toFixed(1)}`);
        medPts.push(`${x},${ys(g[g.length >> 1]).toFixed(1)}`);
      });
      out.push(`<polyline fill="none" stroke="${colors[name]}" stroke-width="1.2" points="${maxPts.join(' ')}"/>`);
      out.push(`<polyline fill="none" stroke="${colors[name]}" stroke-width="1" stroke-dasharray="3,2" opacity="0.7" points="${medPts.join(' ')}"/>`);
    }
    const lx = left + w - 330;
    out.push(`<text x="${lx}" y="${top - 8}" fill="${colors.put}">— put max</text><text x="${lx + 75}" y="${top - 8}" fill="${colors.put}">- - put median</text>`);
    out.push(`<text x="${lx + 170}" y="${top - 8}" fill="${colors.range}">— range max</text><text x="${lx + 250}" y="${top - 8}" fill="${colors.range}">- - range median</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const bench = process.env.BENCHMARK_BIN ?? '/tmp/etcd-benchmark/benchmark';
  if (!existsSync(bench)) throw new Error(`etcd's Go benchmark tool not found at ${bench}: bash ../shared/tools/build-etcd-benchmark.sh (or set BENCHMARK_BIN)`);
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ missing: npm run build');
  const scenarios = SCENARIOS.filter((s) => !o.only || o.only.includes(s.name));
  if (!scenarios.length) throw new Error(`--only matches nothing (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  mkdirSync(o.parent, { recursive: true });
  const work = mkdtempSync(join(o.parent, 'plinth-compaction-bench-'));
  const started = Date.now();
  try {
    const revs: Record<string, number> = {};
    for (const kind of ['plinth', 'etcd'] as const) {
      if (scenarios.some((s) => s.server === kind)) revs[kind] = await preload(kind, join(work, `${kind}-base`), o, bench);
    }
    const results: RunResult[] = [];
    for (const sc of scenarios) results.push(await runScenario(sc, join(work, `${sc.server}-base`), work, revs[sc.server], o));
    mkdirSync(o.outDir, { recursive: true });
    const md = table(results, o, revs) + `\nWhole run: ${((Date.now() - started) / 60_000).toFixed(1)} min.\n`;
    writeFileSync(join(o.outDir, 'compaction.md'), md);
    writeFileSync(join(o.outDir, 'compaction-latency.svg'), svg(results));
    // Every request, for other plots: scenario, op, send time (ms), latency (ms), ok.
    const csv = ['scenario,op,sent_ms,latency_ms,ok'];
    for (const r of results) {
      const s = r.samples;
      for (let k = 0; k < s.op.length; k++) csv.push(`${r.sc.name},${s.op[k] ? 'range' : 'put'},${s.at[k].toFixed(2)},${s.ms[k].toFixed(3)},${s.ok[k] ? 1 : 0}`);
    }
    const rawFile = join(o.parent, 'compaction-latency.csv');
    writeFileSync(rawFile, csv.join('\n') + '\n');
    process.stdout.write(md);
    log(`wrote ${join(o.outDir, 'compaction.md')}, ${join(o.outDir, 'compaction-latency.svg')} and every request in ${rawFile}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`compaction bench: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
