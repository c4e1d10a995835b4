// bench:compare — Plinth against real etcd 3.4, side by side, with the workloads of etcd's own
// tools/benchmark (issue #8).
//
//   npm run bench:compare [-- OPTIONS]          (npm's own `--quick` style works too: npm run bench:compare --quick)
//
// Starts real etcd (/usr/bin/etcd, Debian's 3.4) and Plinth (node bin/plinth.js from this checkout's dist/)
// with the same settings: a fresh data dir under one base dir for every run (default: a temp dir on the
// real disk; --tmpfs for /dev/shm), fsync on, loopback only, free ports. Each workload runs against etcd,
// then Plinth, for each of --rounds rounds (A B A B A B), a freshly started server per run; the tables
// hold medians. Then the scaling part (0 / 100k / 1M preloaded keys: put and range throughput, latency,
// RSS) and the list-all part (a prefix read in pages of 500 as kube-apiserver does, and one unpaginated
// range of 100k keys: total time and RSS growth).
//
// Load tool: etcd's own Go tool (/tmp/etcd-benchmark/benchmark, built by
// ../shared/tools/build-etcd-benchmark.sh) where it has the workload (--driver go, the default when the
// binary exists), else the TS driver (bench/driver.ts), which costs several times more CPU per request
// and so takes CPU from the server it measures on this 2-core machine.
//
// Options:
//   --quick               short totals, 1 round, scaling at 0/20k keys: a smoke run of ~2-3 minutes
//   --rounds N            rounds of A B (default 3; quick 1)
//   --driver go|ts        load tool for the workloads the Go tool has (default go if built)
//   --workloads a,b       rows by id (see --list), or groups: targets (the default rows), scaling, list-all,
//                         all (every row, scaling, list-all). Default: targets,scaling,list-all
//   --base-dir DIR        where the data dirs go (default: a new temp dir under /var/tmp, real disk)
//   --tmpfs               base dir under /dev/shm instead
//   --out-dir DIR         where compare.md / compare.svg / compare.json go (default bench/results)
//   --scaling-sizes a,b   key counts for scaling and list-all (default 0,100000,1000000; quick 0,20000)
//   --quiet-budget SEC    total time to wait for a quiet machine before runs (default 60, quick 15; 0 = never)
//   --go-bin PATH, --etcd-bin PATH
//   --tls                 both servers serve https client URLs with one server certificate (CN=server, SAN
//                         IP:127.0.0.1,DNS:localhost, EC P-256) signed by a throw-away CA, both made with
//                         openssl in a temp dir at the start and removed at the end; every load tool,
//                         preload and health check dials TLS and verifies against that CA (--cacert).
//                         Single servers only (not with --cluster)
//   --cluster N           N = 3 or 5: N-member clusters of each (etcd's flags, fresh per run, the load
//                         tool given all N endpoints) for put-100c, range-l-100c, range-s-100c, txn-put;
//                         writes compare-clusterN.{md,svg,json}. Default 1: single servers, as above
//   --list                print the workloads and exit
//   --render              only re-render compare.md / compare.svg (or, with --cluster N, compare-clusterN.*)
//                         from --out-dir's .json (no run)

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { FlagError, type FlagSpecs, parseCommandLine } from './lib/flags';
import { parseGoOutput, pickSection } from './lib/go-output';
import { type ClientTls, closeAll, connect, unary } from './lib/load';
import { clusterRowIds, CLUSTER_ROW_IDS, type ClusterLayout, memberCommand, memberNames, parseClusterSize, resultBaseName, shellLine } from './lib/cluster-cmd';
import { type ClusterCompareResult, renderClusterMarkdown } from './lib/cluster-report';
import { type ClusterStartOpts, runOnFreshCluster } from './lib/cluster';
import { cpuSnapshot, cpuUse, type MachineInfo, machineInfo, waitQuiet } from './lib/machine';
import { RssSampler, statusKb } from './lib/proc';
import {
  type CompareResult,
  detailTable,
  fmt,
  headlineTable,
  type Kind,
  type ListPoint,
  listAllTable,
  machineLines,
  type Metric,
  perRoundLines,
  ratioSvg,
  type RowResult,
  type RunMetrics,
  type ScalePoint,
  scalingTable,
  sizeLabel,
} from './lib/report';
import { killAllSync, restartServer, runChild, type Server, startServer, stopServer } from './lib/servers';
import type { Summary } from './lib/stats';
import { type BenchTls, makeBenchTls, removeBenchTls, SERVER_CN, SERVER_SAN } from './lib/tls';
import { encodePut } from './lib/wire';
import { type DriverResult, preloadKey } from './driver';

const ROOT = resolve(__dirname, '..', '..');
const DRIVER_JS = join(ROOT, 'dist', 'bench', 'driver.js');
const DEFAULT_GO_BIN = '/tmp/etcd-benchmark/benchmark';

// ---------------------------------------------------------------------------------------------------
// Workloads (rows of the table)

interface Row {
  id: string;
  title: string;
  metric: Metric;
  /** one of issue #8's target rows (run by default) */
  target: boolean;
  /** false when etcd 3.4's Go tool lacks the workload (then the TS driver runs it) */
  go: boolean;
  args: (total: number) => string[];
  total: { full: number; quick: number };
  /** which report of the output is the headline (default: the last / only one) */
  section?: RegExp;
  /** false: the tool's latencies mean nothing here (left out of the tables) */
  latency?: boolean;
  /** run before the load against this endpoint (the server's, or a cluster's first member's) */
  setup?: (endpoint: string, o: Opts) => Promise<void>;
}

const RANGE_KEY = '/bench/range-key';
const VALUE_256 = Buffer.alloc(256, 'v');

async function putOne(endpoint: string, key: string, value: Buffer, tls?: ClientTls): Promise<void> {
  const [c] = await connect([endpoint], 1, 5000, 0, tls);
  try {
    await unary(c, '/etcdserverpb.KV/Put', encodePut(Buffer.from(key), value));
  } finally {
    closeAll([c]);
  }
}

const putArgs = ['--key-size=16', '--val-size=256', '--sequential-keys', '--key-space-size=10000000'];

const ROWS: Row[] = [
  {
    id: 'put-100c',
    title: 'put, 100 clients / 10 conns, 256 B values, distinct keys',
    metric: 'rps',
    target: true,
    go: true,
    total: { full: 40_000, quick: 10_000 },
    args: (n) => ['--conns=10', '--clients=100', 'put', ...putArgs, `--total=${n}`],
  },
  {
    id: 'range-s-100c',
    title: 'range one key, serializable, 100 clients',
    metric: 'rps',
    target: true,
    go: true,
    total: { full: 60_000, quick: 15_000 },
    args: (n) => ['--conns=10', '--clients=100', 'range', RANGE_KEY, '--consistency=s', `--total=${n}`],
    setup: (endpoint, o) => putOne(endpoint, RANGE_KEY, VALUE_256, o.certs),
  },
  {
    id: 'range-l-100c',
    title: 'range one key, linearizable, 100 clients',
    metric: 'rps',
    target: true,
    go: true,
    total: { full: 40_000, quick: 10_000 },
    args: (n) => ['--conns=10', '--clients=100', 'range', RANGE_KEY, '--consistency=l', `--total=${n}`],
    setup: (endpoint, o) => putOne(endpoint, RANGE_KEY, VALUE_256, o.certs),
  },
  {
    id: 'put-1c',
    title: 'put, 1 client, 256 B values',
    metric: 'p50',
    target: true,
    go: true,
    total: { full: 4_000, quick: 1_000 },
    args: (n) => ['--conns=1', '--clients=1', 'put', ...putArgs, `--total=${n}`],
  },
  {
    id: 'watch-latency-100w',
    title: 'watch latency, 100 watchers / 10 streams, 100 puts/s',
    metric: 'p99',
    target: true,
    go: true,
    total: { full: 1_000, quick: 200 },
    args: (n) => ['--conns=10', '--clients=100', 'watch-latency', `--total=${n}`, '--put-rate=100'],
  },
  {
    id: 'txn-put',
    title: 'txn-put, 4 puts per txn, 100 clients',
    metric: 'rps',
    target: true,
    go: true,
    total: { full: 20_000, quick: 5_000 },
    args: (n) => ['--conns=10', '--clients=100', 'txn-put', '--txn-ops=4', '--key-size=16', '--val-size=256', '--key-space-size=10000000', `--total=${n}`],
  },
  {
    id: 'txn-mixed',
    title: 'txn-mixed, 4 reads (limit 100) : 1 write, 100 clients',
    metric: 'rps',
    target: true,
    go: false,
    total: { full: 20_000, quick: 5_000 },
    section: /^$/,
    args: (n) => ['--conns=10', '--clients=100', 'txn-mixed', '--rw-ratio=4', '--limit=100', '--consistency=l', '--key-size=16', '--val-size=256', '--key-space-size=1000', `--total=${n}`],
  },
  {
    id: 'lease-keepalive',
    title: 'lease keep-alive, 100 clients',
    metric: 'rps',
    target: true,
    go: true,
    total: { full: 30_000, quick: 8_000 },
    args: (n) => ['--conns=10', '--clients=100', 'lease-keepalive', `--total=${n}`],
  },
  {
    id: 'range-prefix-limit',
    title: 'range 1000-key prefix, limit 100, linearizable, 100 clients',
    metric: 'rps',
    target: true,
    go: false,
    total: { full: 10_000, quick: 3_000 },
    args: (n) => ['--conns=10', '--clients=100', 'range', '/bench/prefix/', '--prefix', '--limit=100', '--consistency=l', `--total=${n}`],
    setup: (endpoint, o) => preload(endpoint, o, 1000, '/bench/prefix/').then(() => undefined),
  },
  {
    id: 'watch',
    title: 'watch: 1000 watchers on 10 keys, then puts (events/s)',
    metric: 'rps',
    target: false,
    go: true,
    total: { full: 2_000, quick: 500 },
    section: /events received/,
    latency: false,
    args: (n) => ['--conns=10', '--clients=10', 'watch', '--streams=10', '--watch-per-stream=100', '--watched-key-total=10', '--key-space-size=10', '--sequential-keys', `--put-total=${n}`, '--put-rate=2000'],
  },
  // Not in the default set (--workloads ID, or all): what the former bench/watch-latency.sh and bench/lease-keepalive.sh measured.
  {
    id: 'watch-latency-1w',
    title: 'watch latency, 1 watcher, 100 puts/s',
    metric: 'p99',
    target: false,
    go: true,
    total: { full: 1_000, quick: 200 },
    args: (n) => ['--conns=1', '--clients=1', 'watch-latency', `--total=${n}`, '--put-rate=100'],
  },
  {
    id: 'watch-latency-1000w',
    title: 'watch latency, 1000 watchers / 10 streams, 100 puts/s',
    metric: 'p99',
    target: false,
    go: true,
    total: { full: 1_000, quick: 200 },
    args: (n) => ['--conns=10', '--clients=1000', 'watch-latency', `--total=${n}`, '--put-rate=100'],
  },
  {
    id: 'lease-keepalive-1c',
    title: 'lease keep-alive, 1 client',
    metric: 'rps',
    target: false,
    go: true,
    total: { full: 10_000, quick: 2_000 },
    args: (n) => ['--conns=1', '--clients=1', 'lease-keepalive', `--total=${n}`],
  },
];
const DEFAULT_ROWS = ROWS.filter((r) => r.target || r.id === 'watch').map((r) => r.id);
for (const id of CLUSTER_ROW_IDS) if (!ROWS.some((r) => r.id === id)) throw new Error(`cluster row ${id} is not a workload`);

// ---------------------------------------------------------------------------------------------------
// Options

const FLAGS: FlagSpecs = {
  quick: { type: 'bool', default: false, help: 'short totals, 1 round, small scaling sizes' },
  rounds: { type: 'int', default: 0, help: 'rounds (default 3, quick 1)' },
  driver: { type: 'string', default: '', help: 'go | ts' },
  workloads: { type: 'list', default: [], help: 'row ids, or targets, scaling, list-all, all' },
  'base-dir': { type: 'string', default: '', help: 'base dir for data dirs' },
  tmpfs: { type: 'bool', default: false, help: 'base dir under /dev/shm' },
  'out-dir': { type: 'string', default: '', help: 'output dir' },
  'scaling-sizes': { type: 'list', default: [], help: 'key counts' },
  'quiet-budget': { type: 'int', default: -1, help: 'seconds to wait for a quiet machine, in all (default 60, quick 15)' },
  'go-bin': { type: 'string', default: DEFAULT_GO_BIN, help: "etcd's Go benchmark tool" },
  'etcd-bin': { type: 'string', default: '/usr/bin/etcd', help: 'etcd binary' },
  cluster: { type: 'int', default: 1, help: 'members per cluster: 1 (single servers), 3 or 5' },
  tls: { type: 'bool', default: false, help: 'serve and dial https with a throw-away CA and server certificate' },
  list: { type: 'bool', default: false, help: 'list workloads' },
  render: { type: 'bool', default: false, help: 're-render compare.md/svg from the compare.json in --out-dir' },
};

interface Opts {
  quick: boolean;
  rounds: number;
  driver: 'go' | 'ts';
  rows: Row[];
  scaling: boolean;
  listAll: boolean;
  baseDir: string;
  ownBaseDir: boolean;
  outDir: string;
  sizes: number[];
  quiet: { ms: number };
  goBin: string;
  etcdBin: string;
  /** members per server: 1 = single servers (scaling and list-all run only then) */
  cluster: number;
  /** --tls: both servers on https client URLs, every client over TLS */
  tls: boolean;
  /** the certificates of a --tls run, made by main() before the first server starts */
  certs?: BenchTls;
  commandLine: string;
}

/** `npm run bench:compare --quick` hands --quick to npm, which passes it on as npm_config_quick=true. */
function npmConfigArgs(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const name of Object.keys(FLAGS)) {
    const v = env[`npm_config_${name.replace(/-/g, '_')}`];
    if (v === undefined || v === '') continue;
    if (FLAGS[name].type === 'bool') {
      if (v === 'true') out.push(`--${name}`);
    } else out.push(`--${name}=${v}`);
  }
  return out;
}

function parseOpts(argv: string[]): Opts | undefined {
  const all = [...npmConfigArgs(process.env), ...argv];
  const p = parseCommandLine(all, FLAGS);
  const f = p.flags;
  if (p.positionals.length) throw new FlagError(`unexpected argument ${p.positionals[0]}`);
  if (f.help) {
    // the header comment (the file's leading // lines) is the help text
    const lines = readFileSync(__filename, 'utf8').split('\n');
    const start = Math.max(0, lines.findIndex((l) => l.startsWith('//'))); // after the compiled file's "use strict"
    const end = lines.findIndex((l, i) => i > start && !l.startsWith('//'));
    process.stdout.write(lines.slice(start, end < 0 ? lines.length : end).map((l) => l.slice(3)).join('\n') + '\n');
    return undefined;
  }
  const cluster = parseClusterSize(f.cluster as number);
  // clusters would need peer certificates too, and their report has no TLS column: refuse rather than
  // measure a plaintext cluster under a --tls command line
  if (f.tls && cluster > 1) throw new FlagError('--tls: single servers only (leave out --cluster, or use --cluster 1)');
  if (f.render) {
    const outDir = (f['out-dir'] as string) || join(ROOT, 'bench', 'results');
    if (cluster > 1) renderCluster(outDir, cluster);
    else render(outDir);
    return undefined;
  }
  if (f.list) {
    for (const r of ROWS) process.stdout.write(`${r.id.padEnd(22)} ${r.target ? 'target' : DEFAULT_ROWS.includes(r.id) ? 'default' : 'extra '} ${r.go ? 'go|ts' : 'ts   '} ${r.title}\n`);
    process.stdout.write(`${'scaling'.padEnd(22)} group  0/100k/1M keys preloaded: put, range, RSS\n${'list-all'.padEnd(22)} group  prefix listed in pages of 500, and one unpaginated range of 100k keys\n`);
    return undefined;
  }
  const quick = f.quick as boolean;
  let driver = f.driver as string;
  const goBin = f['go-bin'] as string;
  if (!driver) {
    driver = existsSync(goBin) ? 'go' : 'ts';
    if (driver === 'ts') log(`etcd's Go benchmark tool not found at ${goBin}: every workload runs with the TS driver (build the Go tool with: bash ../shared/tools/build-etcd-benchmark.sh)`);
  }
  if (driver !== 'go' && driver !== 'ts') throw new FlagError('--driver must be go or ts');
  if (driver === 'go' && !existsSync(goBin)) throw new FlagError(`--driver go: ${goBin} not found (build it: bash ../shared/tools/build-etcd-benchmark.sh)`);
  const wanted = (f.workloads as string[]).length ? (f.workloads as string[]) : cluster > 1 ? ['targets'] : ['targets', 'scaling', 'list-all'];
  const ids = new Set<string>(cluster > 1 ? clusterRowIds(wanted) : []);
  let scaling = false;
  let listAll = false;
  for (const w of cluster > 1 ? [] : wanted) {
    if (w === 'all') {
      ROWS.forEach((r) => ids.add(r.id));
      scaling = listAll = true;
    } else if (w === 'targets') DEFAULT_ROWS.forEach((i) => ids.add(i));
    else if (w === 'scaling') scaling = true;
    else if (w === 'list-all') listAll = true;
    else if (ROWS.some((r) => r.id === w)) ids.add(w);
    else throw new FlagError(`unknown workload ${JSON.stringify(w)} (see --list)`);
  }
  const rounds = (f.rounds as number) || (quick ? 1 : 3);
  if (!(rounds >= 1 && rounds <= 20)) throw new FlagError('--rounds: 1..20');
  let baseDir = f['base-dir'] as string;
  let ownBaseDir = false;
  if (!baseDir) {
    baseDir = mkdtempSync(join(f.tmpfs ? '/dev/shm' : '/var/tmp', 'plinth-compare.'));
    ownBaseDir = true;
  } else mkdirSync(baseDir, { recursive: true });
  const sizes = (f['scaling-sizes'] as string[]).length
    ? (f['scaling-sizes'] as string[]).map((s) => {
        const n = Number(s.replace(/k$/i, '000').replace(/m$/i, '000000'));
        if (!Number.isInteger(n) || n < 0 || n > 5_000_000) throw new FlagError(`bad scaling size ${s}`);
        return n;
      })
    : quick
      ? [0, 20_000]
      : [0, 100_000, 1_000_000];
  return {
    quick,
    rounds,
    driver,
    // a cluster run shows its rows in CLUSTER_ROW_IDS' order
    rows: cluster > 1 ? [...ids].map((id) => ROWS.find((r) => r.id === id)!) : ROWS.filter((r) => ids.has(r.id)),
    scaling,
    listAll,
    baseDir,
    ownBaseDir,
    outDir: (f['out-dir'] as string) || join(ROOT, 'bench', 'results'),
    sizes,
    quiet: { ms: ((f['quiet-budget'] as number) >= 0 ? (f['quiet-budget'] as number) : quick ? 15 : 60) * 1000 },
    goBin,
    etcdBin: f['etcd-bin'] as string,
    cluster,
    tls: f.tls as boolean,
    commandLine: `npm run bench:compare${all.length ? ` -- ${all.join(' ')}` : ''}`,
  };
}

// ---------------------------------------------------------------------------------------------------
// Running the load tools

const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

interface LoadOut {
  section: Summary & { errorDist?: Record<string, number> };
  driverResult?: DriverResult;
}

/** The load tools' TLS flags (the Go tool's names, which the TS driver shares): trust the run's CA. */
function tlsClientArgs(o: Opts): string[] {
  return o.certs ? [`--cacert=${o.certs.caFile}`] : [];
}

/** Runs the load tool against `endpoints` (one server's, or every member of a cluster). */
async function runLoad(driver: 'go' | 'ts', o: Opts, endpoints: readonly string[], args: string[], timeoutMs: number, section?: RegExp): Promise<LoadOut> {
  if (driver === 'go') {
    const r = await runChild(o.goBin, [`--endpoints=${endpoints.join(',')}`, ...tlsClientArgs(o), '--precise', ...args], timeoutMs);
    if (r.timedOut) throw new Error(`Go tool timed out after ${timeoutMs / 1000} s`);
    const secs = parseGoOutput(r.stdout);
    if (r.code !== 0 && secs.length === 0) throw new Error(`Go tool exited ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    return { section: pickSection(secs, section) };
  }
  const r = await runChild(process.execPath, ['--max-semi-space-size=32', DRIVER_JS, `--endpoints=${endpoints.join(',')}`, ...tlsClientArgs(o), '--json', `--max-time=${Math.round(timeoutMs * 0.8)}ms`, ...args], timeoutMs);
  if (r.timedOut) throw new Error(`TS driver timed out after ${timeoutMs / 1000} s`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let res: DriverResult;
  try {
    res = JSON.parse(line) as DriverResult;
  } catch {
    throw new Error(`TS driver exited ${r.code ?? r.signal} without a result: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  }
  const sec = section ? res.sections.find((x) => section.test(x.title)) : res.sections[res.sections.length - 1];
  if (!sec) throw new Error('TS driver: no such report');
  return { section: sec, driverResult: res };
}

function metricsOf(sec: Summary, hwmMb: number, cpuMsPer1k: number, othersPct: number): RunMetrics {
  return {
    ok: sec.count > 0,
    note: sec.count > 0 ? undefined : 'no successful request',
    rps: sec.rps,
    p50: sec.pct['50'],
    p90: sec.pct['90'],
    p99: sec.pct['99'],
    p999: sec.pct['99.9'],
    max: sec.slowest,
    count: sec.count,
    errors: sec.errors,
    hwmMb,
    cpuMsPer1k,
    othersPct,
  };
}

const failed = (note: string): RunMetrics => ({ ok: false, note, rps: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, count: 0, errors: 0, hwmMb: NaN, cpuMsPer1k: NaN, othersPct: NaN });

/** One measured load run against a running server: CPU and memory around it. */
async function measured(driver: 'go' | 'ts', o: Opts, s: Server, args: string[], timeoutMs: number, section?: RegExp): Promise<RunMetrics> {
  await waitQuiet(25, o.quiet);
  const a = cpuSnapshot(s.pid);
  const out = await runLoad(driver, o, [s.endpoint], args, timeoutMs, section);
  const b = cpuSnapshot(s.pid);
  const use = cpuUse(a, b);
  const hwm = statusKb(s.pid, 'VmHWM') / 1024;
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) throw new Error(`${s.kind} died during the run; log: ${s.log}`);
  const m = metricsOf(out.section, hwm, out.section.count > 0 ? (use.serverSec * 1e6) / out.section.count : NaN, use.othersPct);
  if (out.driverResult?.extra.complete === false) m.note = 'incomplete (time limit)';
  return m;
}

async function preload(endpoint: string, o: Opts, n: number, prefix: string): Promise<number> {
  const t0 = Date.now();
  const r = await runChild(process.execPath, ['--max-semi-space-size=32', DRIVER_JS, `--endpoints=${endpoint}`, ...tlsClientArgs(o), '--json', '--conns=4', '--clients=16', 'preload', `--total=${n}`, `--key-prefix=${prefix}`, '--val-size=256', '--txn-ops=128', '--max-time=20m'], 25 * 60_000);
  const res = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as DriverResult;
  const sec = res.sections?.[0];
  if (!sec || sec.errors > 0 || sec.count !== Math.ceil(n / 128)) {
    throw new Error(`preload of ${n} keys failed: ${JSON.stringify(sec?.errorDist ?? r.stderr.slice(-300))}`);
  }
  return (Date.now() - t0) / 1000;
}

function timeoutFor(o: Opts): number {
  return (o.quick ? 90 : 180) * 1000;
}

const serverOpts = (o: Opts) => ({ baseDir: o.baseDir, root: ROOT, etcdBin: o.etcdBin, tls: o.certs });

async function runRow(o: Opts, row: Row, kind: Kind): Promise<RunMetrics> {
  const driver = row.go ? o.driver : 'ts';
  let s: Server | undefined;
  try {
    s = await startServer(kind, serverOpts(o));
    if (row.setup) await row.setup(s.endpoint, o);
    return await measured(driver, o, s, row.args(o.quick ? row.total.quick : row.total.full), timeoutFor(o), row.section);
  } catch (e) {
    log(`  ${kind}: FAILED: ${(e as Error).message.split('\n')[0]}`);
    return failed((e as Error).message.split('\n')[0].slice(0, 120));
  } finally {
    if (s) await stopServer(s);
  }
}

// ---------------------------------------------------------------------------------------------------
// Scaling and list-all

const SCALE_PREFIX = '/registry/pods/';

async function runSizePoint(o: Opts, size: number, kind: Kind, scaling: ScalePoint[], lists: ListPoint[]): Promise<void> {
  const q = o.quick;
  const point: ScalePoint = { size, kind, preloadSec: 0, rssAfterPreloadMb: NaN, hwmEndMb: NaN };
  let s: Server | undefined;
  try {
    s = await startServer(kind, serverOpts(o));
    const key = size > 0 ? preloadKey(SCALE_PREFIX, Math.floor(size / 2), size) : preloadKey(SCALE_PREFIX, 0, 1);
    if (size > 0) {
      log(`  ${kind}: preloading ${sizeLabel(size)} keys`);
      point.preloadSec = await preload(s.endpoint, o, size, SCALE_PREFIX);
    } else await putOne(s.endpoint, key, VALUE_256, o.certs);
    point.rssAfterPreloadMb = statusKb(s.pid, 'VmRSS') / 1024;
    const tmo = timeoutFor(o);
    if (o.scaling) {
      const step = async (name: string, args: string[]): Promise<RunMetrics> => {
        try {
          const m = await measured(o.driver, o, s!, args, tmo);
          log(`  ${kind} ${sizeLabel(size)} ${name}: ${fmt(m.rps, 0)} req/s, p50 ${fmt(m.p50)} ms, p99 ${fmt(m.p99)} ms`);
          return m;
        } catch (e) {
          log(`  ${kind} ${sizeLabel(size)} ${name}: FAILED ${(e as Error).message}`);
          return failed((e as Error).message.slice(0, 120));
        }
      };
      point.rangeS = await step('range s 100c', ['--conns=10', '--clients=100', 'range', key, '--consistency=s', `--total=${q ? 10_000 : 40_000}`]);
      point.rangeL1 = await step('range l 1c', ['--conns=1', '--clients=1', 'range', key, '--consistency=l', `--total=${q ? 1_000 : 4_000}`]);
      point.put = await step('put 100c', ['--conns=10', '--clients=100', 'put', '--key-size=16', '--val-size=256', '--key-space-size=10000000', `--total=${q ? 10_000 : 30_000}`]);
    }
    point.hwmEndMb = statusKb(s.pid, 'VmHWM') / 1024;
    if (o.listAll && size > 0) {
      // each listing on a freshly restarted server (same data dir): its RSS before is a clean baseline
      const listRun = async (mode: 'paginated' | 'unpaginated', args: string[]): Promise<void> => {
        const lp: ListPoint = { size, kind, mode, limit: mode === 'paginated' ? 500 : 0, keys: 0, pages: 0, totalSec: NaN, pageP50: NaN, pageMax: NaN, bytes: 0, rssBeforeMb: NaN, rssMaxMb: NaN, hwmBeforeMb: NaN, hwmAfterMb: NaN, restartSec: NaN, ok: false };
        try {
          const r0 = Date.now();
          s = await restartServer(s!);
          lp.restartSec = (Date.now() - r0) / 1000;
          await waitQuiet(25, o.quiet);
          const sampler = new RssSampler(s.pid, 20);
          const out = await runLoad('ts', o, [s.endpoint], args, 10 * 60_000);
          const rss = sampler.stop();
          const ex = out.driverResult!.extra;
          Object.assign(lp, {
            keys: Number(ex.keys), pages: Number(ex.pages), bytes: Number(ex.bytes), totalSec: Number(ex.totalSec),
            pageP50: out.section.pct['50'], pageMax: out.section.slowest,
            rssBeforeMb: rss.startMb, rssMaxMb: rss.maxMb, hwmBeforeMb: rss.hwmStartMb, hwmAfterMb: rss.hwmEndMb,
            ok: ex.complete === true && out.section.errors === 0,
          });
          if (!lp.ok) lp.note = ex.complete ? 'errors' : 'incomplete';
          log(`  ${kind} ${sizeLabel(size)} list ${mode}: ${lp.keys} keys in ${fmt(lp.totalSec, 2)} s, ${lp.pages} pages, RSS ${fmt(lp.rssBeforeMb, 0)} → max ${fmt(lp.rssMaxMb, 0)} MB (restart ${fmt(lp.restartSec, 1)} s)`);
        } catch (e) {
          lp.note = (e as Error).message.split('\n')[0].slice(0, 120);
          log(`  ${kind} ${sizeLabel(size)} list ${mode}: FAILED ${lp.note}`);
        }
        lists.push(lp);
      };
      await listRun('paginated', ['list-all', SCALE_PREFIX, '--limit=500', '--consistency=l']);
      const n = Math.min(size, 100_000);
      const unpag = n === size ? ['list-all', SCALE_PREFIX, '--limit=0'] : ['list-all', preloadKey(SCALE_PREFIX, 0, size), preloadKey(SCALE_PREFIX, n, size), '--limit=0'];
      await listRun('unpaginated', unpag);
    }
  } catch (e) {
    point.note = (e as Error).message.split('\n')[0].slice(0, 160);
    log(`  ${kind} ${sizeLabel(size)}: FAILED ${point.note}`);
  } finally {
    if (s) await stopServer(s);
  }
  if (o.scaling) scaling.push(point);
}

// ---------------------------------------------------------------------------------------------------
// Clusters (--cluster N)

const HEARTBEAT_MS = 100;
const ELECTION_MS = 1000;

const clusterStartOpts = (o: Opts): ClusterStartOpts => ({
  baseDir: o.baseDir,
  size: o.cluster,
  etcdBin: o.etcdBin,
  nodeBin: process.execPath,
  plinthJs: join(ROOT, 'bin', 'plinth.js'),
  backend: 'lmdb',
  heartbeatMs: HEARTBEAT_MS,
  electionMs: ELECTION_MS,
});

/** Each member's command line with placeholders for what is fresh per cluster (ports, dir, token). */
function memberCommandLines(o: Opts, kind: Kind): string[] {
  const names = memberNames(o.cluster);
  const layout: ClusterLayout = {
    kind,
    names,
    addrs: names.map((_, i) => ({ client: `C${i + 1}`, peer: `P${i + 1}` })),
    dataDirs: names.map((n) => `DIR/${n}`),
    token: 'TOKEN',
  };
  return names.map((_, i) => {
    const c = memberCommand(layout, i, { ...clusterStartOpts(o), nodeBin: 'node', plinthJs: 'bin/plinth.js' });
    return shellLine(c.cmd, c.args);
  });
}

function clusterLoadCommand(row: Row, o: Opts): string {
  const driver = row.go ? o.driver : 'ts';
  const eps = memberNames(o.cluster).map((_, i) => `127.0.0.1:C${i + 1}`).join(',');
  const tool = driver === 'go' ? 'benchmark' : 'node dist/bench/driver.js';
  return `${tool} --endpoints=${eps}${driver === 'go' ? ' --precise' : ''} ${row.args(o.quick ? row.total.quick : row.total.full).join(' ')}`;
}

async function runClusterRow(o: Opts, row: Row, kind: Kind, round: number): Promise<RunMetrics> {
  const driver = row.go ? o.driver : 'ts';
  return runOnFreshCluster(kind, {
    start: clusterStartOpts(o),
    setup: row.setup ? (endpoint) => row.setup!(endpoint, o) : undefined,
    load: async (endpoints) => {
      const out = await runLoad(driver, o, endpoints, row.args(o.quick ? row.total.quick : row.total.full), timeoutFor(o), row.section);
      return { summary: out.section, note: out.driverResult?.extra.complete === false ? 'incomplete (time limit)' : undefined };
    },
    quiet: o.quiet,
    label: `${kind}-${row.id}-round${round}`,
    log,
  });
}

function clusterDriverNote(o: Opts): string {
  return o.driver === 'go'
    ? "etcd 3.4's own Go tool (`tools/benchmark`, built by `../shared/tools/build-etcd-benchmark.sh`)"
    : 'the TS driver (`bench/driver.ts`, etcd tools/benchmark\'s flags), which costs several times the Go tool\'s CPU per request';
}

function writeClusterOutputs(r: ClusterCompareResult, outDir: string): string {
  const base = resultBaseName(r.clusterSize);
  const m = r.machine;
  writeFileSync(join(outDir, `${base}.md`), `${renderClusterMarkdown(r, `${base}.svg`)}\n`);
  const sub = `${r.clusterSize}-member clusters; ${m.cores} cores ${m.cpu}, ${r.baseDir.startsWith('/dev/shm') ? 'tmpfs' : 'disk'}, fsync on; ${r.rounds} round(s); ${r.driverNote.startsWith('etcd') ? 'Go tool' : 'TS driver'}; ${m.date.slice(0, 10)}; Plinth ${m.git.split(' ')[0]}`;
  writeFileSync(join(outDir, `${base}.svg`), ratioSvg(r.rows, sub));
  return join(outDir, `${base}.md`);
}

function renderCluster(outDir: string, size: number): void {
  const file = join(outDir, `${resultBaseName(size)}.json`);
  const result = JSON.parse(readFileSync(file, 'utf8'), (_k, v) => (v === null ? NaN : v)) as ClusterCompareResult;
  for (const r of result.rows) r.title = ROWS.find((x) => x.id === r.id)?.title ?? r.title;
  log(`re-rendered ${writeClusterOutputs(result, outDir)} and its .svg from ${file}`);
}

async function runClusterCompare(o: Opts, machine: MachineInfo, t0: number): Promise<void> {
  const n = o.cluster;
  log(`bench:compare --cluster ${n}: ${o.rows.length} workload(s) × ${o.rounds} round(s), fresh ${n}-member clusters; driver ${o.driver}; data under ${o.baseDir}`);
  const rows: RowResult[] = o.rows.map((r) => ({
    id: r.id,
    title: r.title,
    metric: r.metric,
    target: true,
    driver: r.go ? o.driver : 'ts',
    command: clusterLoadCommand(r, o),
    runs: { etcd: [], plinth: [] },
    latency: r.latency,
  }));
  for (let round = 1; round <= o.rounds; round++) {
    for (let i = 0; i < o.rows.length; i++) {
      for (const kind of ['etcd', 'plinth'] as const) {
        const row = o.rows[i];
        log(`round ${round}/${o.rounds} ${row.id}: ${n}-member ${kind} cluster`);
        const m = await runClusterRow(o, row, kind, round);
        rows[i].runs[kind].push(m);
        if (m.ok) {
          const per = (m.members ?? []).map((x) => `${x.name}${x.role === 'leader' ? '*' : ''} ${fmt(x.cpuMsPer1k, 0)} ms/1k ${fmt(x.hwmMb, 0)} MB`).join(', ');
          log(`  ${kind}: ${fmt(m.rps, 0)} req/s, p50 ${fmt(m.p50)} ms, p99 ${fmt(m.p99)} ms, server CPU ${fmt(m.cpuMsPer1k, 0)} ms/1k (${per}), ready in ${fmt((m.cluster?.readyMs ?? NaN) / 1000, 1)} s, others ${fmt(m.othersPct, 0)}%${m.errors ? `, ${m.errors} errors` : ''}`);
        }
      }
    }
  }
  const result: ClusterCompareResult = {
    command: o.commandLine,
    machine,
    baseDir: o.baseDir,
    rounds: o.rounds,
    quick: o.quick,
    clusterSize: n,
    driverNote: clusterDriverNote(o),
    elapsedSec: (Date.now() - t0) / 1000,
    rows,
    memberCommands: { etcd: memberCommandLines(o, 'etcd'), plinth: memberCommandLines(o, 'plinth') },
  };
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(join(o.outDir, `${resultBaseName(n)}.json`), `${JSON.stringify(result, null, 1)}\n`);
  log(`wrote ${writeClusterOutputs(result, o.outDir)} (${Math.round(result.elapsedSec)} s)`);
  process.stdout.write(`${renderClusterMarkdown(result, `${resultBaseName(n)}.svg`)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// Report

/** The load commands' endpoint flags as the report shows them (PORT: a fresh free port per run). */
function endpointArgs(o: Opts): string {
  return o.tls ? '--endpoints=https://127.0.0.1:PORT --cacert=ca.pem' : '--endpoints=127.0.0.1:PORT';
}

/** What the report says of a --tls run: the servers' flags, the certificate, how every client dialed. */
function tlsNote(o: Opts): string | undefined {
  if (!o.certs) return undefined;
  const c = o.certs;
  return (
    `TLS: both servers served their client URL over https (\`--listen-client-urls https://127.0.0.1:PORT --advertise-client-urls https://127.0.0.1:PORT --cert-file ${basename(c.certFile)} --key-file ${basename(c.keyFile)}\`, no client-certificate auth) with the same server certificate ` +
    `(CN=${SERVER_CN}, SAN ${SERVER_SAN}, EC P-256, extendedKeyUsage serverAuth,clientAuth) signed by a throw-away EC P-256 CA, both made with openssl at the start of the run and deleted at its end; ` +
    `every client (the load tool, the TS preloader, set-up puts, health checks) dialed https://127.0.0.1:PORT and verified the certificate against that CA (\`--cacert=${basename(c.caFile)}\`)`
  );
}

function commandOf(row: Row, o: Opts): string {
  const driver = row.go ? o.driver : 'ts';
  const tool = driver === 'go' ? 'benchmark' : 'node dist/bench/driver.js';
  return `${tool} ${endpointArgs(o)}${driver === 'go' ? ' --precise' : ''} ${row.args(o.quick ? row.total.quick : row.total.full).join(' ')}`;
}

function renderMarkdown(r: CompareResult): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`# Plinth vs etcd ${m.etcd}, side by side${r.tls ? ', over TLS' : ''} (issue #8)`);
  lines.push('');
  lines.push('Generated by `npm run bench:compare` (`bench/compare.ts`) — do not edit by hand; the raw numbers are in `compare.json`.');
  lines.push('');
  lines.push(`- command: \`${r.command}\` (${r.quick ? 'quick' : 'full'} mode, ${Math.round(r.elapsedSec)} s)`);
  lines.push(machineLines(m, r.baseDir));
  lines.push(`- load: ${r.driverNote}`);
  // results from before --tls existed have no field: those runs were plaintext too
  lines.push(r.tls ? `- transport: ${r.tls}. Reproduce: \`${r.command}\`` : '- transport: plaintext gRPC (HTTP/2 without TLS) on loopback; `--tls` runs both servers on https');
  lines.push(
    `- method: for each workload and each of ${r.rounds} round(s), etcd then Plinth (A B${r.rounds > 1 ? ' A B' : ''}${r.rounds > 2 ? ' …' : ''}), each time a freshly started server on a new data dir, loopback, free port; the tables hold medians over rounds. Before each run the orchestrator waits (budget-limited) for the shared machine to be under 25% busy; "others" is the CPU % other processes used during a run.`,
  );
  lines.push('');
  if (r.rows.length) {
    lines.push(`## Workloads (medians of ${r.rounds} round(s))`);
    lines.push('');
    lines.push('Plinth/etcd is the ratio of the medians of the metric shown: above 1 is better for Plinth for throughput, below 1 is better for Plinth for latency. "better" calls a difference of 5% or less a tie.');
    lines.push('');
    lines.push(headlineTable(r.rows));
    lines.push('');
    lines.push('![Plinth vs etcd](compare.svg)');
    lines.push('');
    lines.push('### Details (medians)');
    lines.push('');
    lines.push('Peak RSS is VmHWM at the end of the run (the server started fresh for it). Server CPU counts all the server\'s threads.');
    lines.push('');
    lines.push(detailTable(r.rows));
    lines.push('');
    lines.push('### Per round (headline metric, [others\' CPU %])');
    lines.push('');
    lines.push(perRoundLines(r.rows));
    lines.push('');
    lines.push('### Load commands');
    lines.push('');
    lines.push('```');
    for (const row of r.rows) lines.push(`${row.id}: ${row.command}`);
    lines.push('```');
    lines.push('');
  }
  if (r.scaling.length) {
    lines.push('## Scaling with the number of keys (one round)');
    lines.push('');
    lines.push(
      `Each server starts fresh, gets N keys \`${SCALE_PREFIX}<8 digits>\` with 256-byte values (TS preloader: txns of 128 puts, 16 clients), then: range of one preloaded key (serializable, 100 clients; linearizable, 1 client), then put of new random 16-byte keys (100 clients). "0 keys" holds just the one key ranged. RSS after preload is VmRSS once the preload is done; peak RSS is VmHWM at the end (includes preload and, where run, list-all).`,
    );
    lines.push('');
    lines.push(scalingTable(r.scaling));
    lines.push('');
    lines.push('```');
    for (const c of r.scaleCommands) lines.push(c);
    lines.push('```');
    lines.push('');
  }
  if (r.listAll.length) {
    lines.push('## List-all, as kube-apiserver lists (one round)');
    lines.push('');
    lines.push(
      `On the same data as the scaling rows (N keys under \`${SCALE_PREFIX}\`), each listing on a freshly restarted server (same data dir; "restart" is the time until it answered a linearizable range): \`node dist/bench/driver.js list-all ${SCALE_PREFIX} --limit=500 --consistency=l\` reads the prefix in pages of 500, each from the last key + "\\0", pages after the first at the first page's revision (kube-apiserver's continue); then one unpaginated range of (the first) 100k keys (\`--limit=0\`). One client, one page at a time. RSS growth = largest VmRSS sampled every 20 ms during the listing minus VmRSS before it (RSS includes the pages of the memory-mapped database file, bbolt's or LMDB's, that the listing touched). Both servers count the whole remaining range for every page (etcd 3.4's \`count\`), so a paginated list costs O(N²/500) index steps.`,
    );
    lines.push('');
    lines.push(listAllTable(r.listAll));
    lines.push('');
  }
  return lines.join('\n');
}

function writeOutputs(result: CompareResult, outDir: string, driver: string): void {
  const m = result.machine;
  writeFileSync(join(outDir, 'compare.md'), `${renderMarkdown(result)}\n`);
  if (result.rows.length) {
    const sub = `${m.cores} cores ${m.cpu}, ${result.baseDir.startsWith('/dev/shm') ? 'tmpfs' : 'disk'}, fsync on${result.tls ? ', TLS' : ''}; ${result.rounds} round(s); ${driver === 'go' ? 'Go tool' : 'TS driver'}; ${m.date.slice(0, 10)}; Plinth ${m.git.split(' ')[0]}`;
    writeFileSync(join(outDir, 'compare.svg'), ratioSvg(result.rows, sub));
  }
}

/** Re-renders compare.md / compare.svg from compare.json (row titles as the code names them now). */
function render(outDir: string): void {
  const result = JSON.parse(readFileSync(join(outDir, 'compare.json'), 'utf8'), (_k, v) => (v === null ? NaN : v)) as CompareResult;
  for (const r of result.rows) r.title = ROWS.find((x) => x.id === r.id)?.title ?? r.title;
  writeOutputs(result, outDir, result.rows.some((r) => r.driver === 'go') ? 'go' : 'ts');
  log(`re-rendered ${join(outDir, 'compare.md')} and compare.svg from compare.json`);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let o: Opts | undefined;
  try {
    o = parseOpts(process.argv.slice(2));
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`bench:compare: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (!o) return 0;
  const opts = o;
  if (opts.ownBaseDir) process.on('exit', () => rmSync(opts.baseDir, { recursive: true, force: true }));
  if (!existsSync(DRIVER_JS)) throw new Error(`${DRIVER_JS} missing: run npm run build`);
  if (!existsSync(o.etcdBin)) throw new Error(`${o.etcdBin} missing: apt-get install -y etcd-server`);
  const t0 = Date.now();
  const machine = machineInfo(o.baseDir, ROOT, o.etcdBin);
  if (o.cluster > 1) {
    try {
      await runClusterCompare(o, machine, t0);
      return 0;
    } finally {
      killAllSync();
      if (o.ownBaseDir) rmSync(o.baseDir, { recursive: true, force: true });
    }
  }
  if (o.tls) {
    const certs = await makeBenchTls();
    o.certs = certs;
    // an interrupt exits through servers.ts' signal handlers: 'exit' handlers cannot wait, so this one is sync
    process.on('exit', () => rmSync(certs.dir, { recursive: true, force: true }));
    log(`TLS: CA and server certificate (CN=${SERVER_CN}, SAN ${SERVER_SAN}) in ${certs.dir}; both servers on https`);
  }
  log(`bench:compare: ${o.rows.length} workload(s) × ${o.rounds} round(s)${o.scaling ? `, scaling ${o.sizes.map(sizeLabel).join('/')}` : ''}${o.listAll ? ', list-all' : ''}; driver ${o.driver}${o.tls ? '; TLS (https)' : ''}; data under ${o.baseDir}`);
  const rows: RowResult[] = o.rows.map((r) => ({
    id: r.id,
    title: r.title,
    metric: r.metric,
    target: r.target,
    driver: r.go ? o!.driver : 'ts',
    command: commandOf(r, o!),
    runs: { etcd: [], plinth: [] },
    latency: r.latency,
  }));
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (let i = 0; i < o.rows.length; i++) {
        for (const kind of ['etcd', 'plinth'] as const) {
          const row = o.rows[i];
          log(`round ${round}/${o.rounds} ${row.id}: ${kind}`);
          const m = await runRow(o, row, kind);
          rows[i].runs[kind].push(m);
          if (m.ok) log(`  ${kind}: ${fmt(m.rps, 0)} req/s, p50 ${fmt(m.p50)} ms, p99 ${fmt(m.p99)} ms, peak RSS ${fmt(m.hwmMb, 0)} MB, server CPU ${fmt(m.cpuMsPer1k, 0)} ms/1k, others ${fmt(m.othersPct, 0)}%${m.errors ? `, ${m.errors} errors` : ''}`);
        }
      }
    }
    const scaling: ScalePoint[] = [];
    const lists: ListPoint[] = [];
    if (o.scaling || o.listAll) {
      for (const size of o.sizes) {
        if (!o.scaling && size === 0) continue;
        for (const kind of ['etcd', 'plinth'] as const) {
          log(`size ${sizeLabel(size)}: ${kind}`);
          await runSizePoint(o, size, kind, scaling, lists);
        }
      }
    }
    const result: CompareResult = {
      command: o.commandLine,
      machine,
      baseDir: o.baseDir,
      rounds: o.rounds,
      quick: o.quick,
      driverNote:
        o.driver === 'go'
          ? `etcd 3.4's own Go tool (\`tools/benchmark\`, built by \`../shared/tools/build-etcd-benchmark.sh\`) for the rows marked go; the TS driver (\`bench/driver.ts\`, same flags) for txn-mixed and range with --limit (not in 3.4's tool), preload and list-all`
          : 'the TS driver (`bench/driver.ts`, etcd tools/benchmark\'s flags) for every row; it shares the 2 cores with the server and costs several times more CPU per request than the Go tool, which squeezes ratios towards 1',
      elapsedSec: (Date.now() - t0) / 1000,
      rows,
      scaling,
      listAll: lists,
      tls: tlsNote(o),
      scaleCommands: o.scaling
        ? [
            `preload: node dist/bench/driver.js ${endpointArgs(o)} --conns=4 --clients=16 preload --total=N --key-prefix=${SCALE_PREFIX} --val-size=256 --txn-ops=128`,
            `${o.driver === 'go' ? 'benchmark' : 'node dist/bench/driver.js'} ${endpointArgs(o)} --conns=10 --clients=100 range ${SCALE_PREFIX}<N/2> --consistency=s --total=${o.quick ? 10_000 : 40_000}`,
            `${o.driver === 'go' ? 'benchmark' : 'node dist/bench/driver.js'} ${endpointArgs(o)} --conns=1 --clients=1 range ${SCALE_PREFIX}<N/2> --consistency=l --total=${o.quick ? 1_000 : 4_000}`,
            `${o.driver === 'go' ? 'benchmark' : 'node dist/bench/driver.js'} ${endpointArgs(o)} --conns=10 --clients=100 put --key-size=16 --val-size=256 --key-space-size=10000000 --total=${o.quick ? 10_000 : 30_000}`,
          ]
        : [],
    };
    mkdirSync(o.outDir, { recursive: true });
    writeFileSync(join(o.outDir, 'compare.json'), `${JSON.stringify(result, null, 1)}\n`);
    writeOutputs(result, o.outDir, o.driver);
    log(`wrote ${join(o.outDir, 'compare.md')} (${Math.round(result.elapsedSec)} s)`);
    process.stdout.write(`${renderMarkdown(result)}\n`);
    return 0;
  } finally {
    killAllSync();
    if (o.ownBaseDir) rmSync(o.baseDir, { recursive: true, force: true });
    if (o.certs) await removeBenchTls(o.certs);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench:compare: ${e instanceof Error ? e.stack : e}\n`);
    killAllSync();
    process.exit(1);
  },
);
