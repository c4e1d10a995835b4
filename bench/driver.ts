// Load driver for etcd v3 servers (Plinth or etcd), in TypeScript with @grpc/grpc-js: the workloads and flag
// names of etcd's own tools/benchmark (3.4, plus 3.5's txn-mixed), and bench/'s own preload and list-all.
//
//   node dist/bench/driver.js [--endpoints=127.0.0.1:2379] [--conns=N] [--clients=N] COMMAND [args] [flags]
//
//   put              --key-size --val-size --sequential-keys --key-space-size --total --rate
//   range KEY [END]  --consistency=l|s --total --rate; Plinth's own: --prefix (END = KEY's prefix end), --limit
//   txn-put          --key-size --val-size --txn-ops --key-space-size --total --rate
//   txn-mixed [KEY [END]]  --rw-ratio --limit --consistency --key-size --val-size --key-space-size --total --rate
//   watch            --streams --watch-per-stream --watched-key-total --put-rate --put-total --key-size
//                    --key-space-size --sequential-keys   (watchers first, then puts; events received/s)
//   watch-latency    --total --put-rate --key-size --val-size   (put -> event on every watcher; --clients watchers)
//   lease-keepalive  --total                    (each client grants a lease, then keeps it alive once per request)
//   preload          --total --key-prefix --val-size --txn-ops   (N keys PREFIX00000000.., txns of --txn-ops puts)
//   list-all KEY [END]  --limit --consistency   (pages of --limit from the last key + "\0" at the first page's
//                    revision, as kube-apiserver lists; --limit=0 is one unpaginated range)
//
// Global: --endpoints, --conns, --clients, --precise, --dial-timeout, --cacert/--cert/--key (TLS, as the Go
// tool: an https:// endpoint dials TLS, a bare host:port does when --cacert is given), and the driver's own --json (one JSON
// result line on stdout, the text report on stderr), --server-pid (sample that process's RSS during the run),
// --max-time (wall-time bound of the load phase, default 5m). Output: pkg/report's text (Summary, histogram,
// latency distribution, errors), so the same parser reads both tools.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import { type CommandSpec, FlagError, type FlagSpecs, type FlagValue, flagUsage, parseCommandLine } from './lib/flags';
import { type ClientTls, closeAll, connect, Limiter, pass, runUnary, sleep, unary, type UnaryResult } from './lib/load';
import { RssSampler, type RssStats } from './lib/proc';
import { formatReport, Recorder, summarize, type Summary } from './lib/stats';
import {
  encodeLeaseGrant,
  encodeLeaseKeepAlive,
  encodePut,
  encodeRange,
  encodeTxn,
  encodeWatchCreate,
  leaseGrantInfo,
  prefixRange,
  putTemplate,
  rangeInfo,
  requestOpPut,
  requestOpRange,
  txnPutTemplate,
  varintKey,
  watchEventCount,
  watchInfo,
} from './lib/wire';

const M = {
  range: '/etcdserverpb.KV/Range',
  put: '/etcdserverpb.KV/Put',
  txn: '/etcdserverpb.KV/Txn',
  watch: '/etcdserverpb.Watch/Watch',
  leaseGrant: '/etcdserverpb.Lease/LeaseGrant',
  leaseKeepAlive: '/etcdserverpb.Lease/LeaseKeepAlive',
};

// ---------------------------------------------------------------------------------------------------
// Flags

const int = (d: number, help: string) => ({ type: 'int' as const, default: d, help });
const str = (d: string, help: string) => ({ type: 'string' as const, default: d, help });
const bool = (help: string) => ({ type: 'bool' as const, default: false, help });

export const GLOBAL_FLAGS: FlagSpecs = {
  endpoints: { type: 'list', default: ['127.0.0.1:2379'], help: 'gRPC endpoints' },
  conns: int(1, 'Total number of gRPC connections'),
  clients: int(1, 'Total number of gRPC clients'),
  precise: bool('use full floating point precision'),
  'dial-timeout': { type: 'duration', default: 10_000, help: 'dial timeout for client connections' },
  cacert: str('', 'verify certificates of HTTPS-enabled servers using this CA bundle'),
  cert: str('', 'identify HTTPS client using this SSL certificate file'),
  key: str('', 'identify HTTPS client using this SSL key file'),
  json: bool('print one JSON result line on stdout (the text report goes to stderr)'),
  'server-pid': int(0, "sample this process's VmRSS/VmHWM during the run"),
  'max-time': { type: 'duration', default: 300_000, help: 'stop sending after this long (the run is still reported)' },
};

const consistency = str('l', 'Linearizable(l) or Serializable(s)');

export const COMMANDS: Record<string, CommandSpec> = {
  put: {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Benchmark put',
    flags: {
      'key-size': int(8, 'Key size of put request'),
      'val-size': int(8, 'Value size of put request'),
      rate: int(0, 'Maximum puts per second (0 is no limit)'),
      total: int(10000, 'Total number of put requests'),
      'key-space-size': int(1, 'Maximum possible keys'),
      'sequential-keys': bool('Use sequential keys'),
    },
  },
  range: {
    args: 'key [end-range]',
    minArgs: 1,
    maxArgs: 2,
    help: 'Benchmark range',
    flags: {
      rate: int(0, 'Maximum range requests per second (0 is no limit)'),
      total: int(10000, 'Total number of range requests'),
      consistency,
      limit: int(0, 'Maximum keys per response (0 is no limit) [driver extension]'),
      prefix: bool('range over the keys with prefix KEY [driver extension]'),
    },
  },
  'txn-put': {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Benchmark txn-put',
    flags: {
      'key-size': int(8, 'Key size of txn put'),
      'val-size': int(8, 'Value size of txn put'),
      'txn-ops': int(1, 'Number of puts per txn'),
      rate: int(0, 'Maximum txns per second (0 is no limit)'),
      total: int(10000, 'Total number of txn requests'),
      'key-space-size': int(1, 'Maximum possible keys'),
    },
  },
  'txn-mixed': {
    args: '[key [end-range]]',
    minArgs: 0,
    maxArgs: 2,
    help: 'Benchmark a mixed load of txn-put & txn-range',
    flags: {
      'key-size': int(8, 'Key size of mixed txn'),
      'val-size': int(8, 'Value size of mixed txn'),
      rate: int(0, 'Maximum txns per second (0 is no limit)'),
      total: int(10000, 'Total number of txn requests'),
      'end-key': str('', 'Read operation range end key. By default, a prefix range of KEY (all keys)'),
      limit: int(1000, 'Read operation range result limit'),
      'key-space-size': int(1, 'Maximum possible keys'),
      consistency,
      'rw-ratio': { type: 'float', default: 1, help: 'Read/write ops ratio' },
    },
  },
  watch: {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Benchmark watch: watchers first, then puts on the watched keys; events received per second',
    flags: {
      streams: int(10, 'Total watch streams'),
      'watch-per-stream': int(100, 'Total watchers per stream'),
      'watched-key-total': int(1, 'Total number of keys to be watched'),
      'put-rate': int(0, 'Number of keys to put per second (0 is no limit)'),
      'put-total': int(1000, 'Number of put requests'),
      'key-size': int(32, 'Key size of watch request'),
      'key-space-size': int(1, 'Maximum possible keys'),
      'sequential-keys': bool('Use sequential keys'),
    },
  },
  'watch-latency': {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Benchmark watch latency: put, then time until every watcher (--clients) has the event',
    flags: {
      total: int(10000, 'Total number of put requests'),
      'put-rate': int(100, 'Number of keys to put per second'),
      'key-size': int(32, 'Key size of watch response'),
      'val-size': int(32, 'Value size of watch response'),
    },
  },
  'lease-keepalive': {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Benchmark lease keepalive',
    flags: { total: int(10000, 'Total number of lease keepalive requests') },
  },
  preload: {
    args: '',
    minArgs: 0,
    maxArgs: 0,
    help: 'Write --total keys PREFIX + zero-padded index (8+ digits), in txns of --txn-ops puts, as fast as the clients go',
    flags: {
      total: int(100000, 'Number of keys'),
      'key-prefix': str('/registry/pods/', 'Key prefix'),
      'val-size': int(256, 'Value size'),
      'txn-ops': int(128, 'Puts per txn (at most the servers\' --max-txn-ops)'),
      offset: int(0, 'First index'),
    },
  },
  'list-all': {
    args: 'key [end-range]',
    minArgs: 1,
    maxArgs: 2,
    help: 'List a prefix (or [key, end)) in pages of --limit, as kube-apiserver does; --limit=0 for one range',
    flags: {
      limit: int(500, 'Keys per page (0: one unpaginated range)'),
      consistency,
      'max-pages': int(1_000_000, 'Stop after this many pages'),
    },
  },
};

export interface DriverResult {
  command: string;
  /** Reports in pkg/report's sense; the first is the headline unless a title says otherwise. */
  sections: (Summary & { title: string; errorDist: Record<string, number> })[];
  extra: Record<string, number | string | boolean>;
  rss?: RssStats;
}

type Flags = Record<string, FlagValue>;

function section(title: string, rec: Recorder, totalSec: number): DriverResult['sections'][number] {
  return { title, ...summarize(rec.samples(), rec.errors, totalSec), errorDist: Object.fromEntries(rec.errorDist) };
}

function checkPositive(flags: Flags, ...names: string[]): void {
  for (const n of names) {
    if (!((flags[n] as number) > 0)) throw new FlagError(`expected positive --${n}, got (${flags[n]})`);
  }
}

function consistencyOf(flags: Flags): boolean {
  const c = flags.consistency as string;
  if (c !== 'l' && c !== 's') throw new FlagError('--consistency must be l or s');
  return c === 's';
}

// ---------------------------------------------------------------------------------------------------
// Workloads

interface Ctx {
  flags: Flags;
  args: string[];
  conns: grpc.Client[];
  clients: number;
  maxMs: number;
  endpoints: string[];
  dialMs: number;
  /** the TLS material of --cacert/--cert/--key, for connections a workload opens itself */
  tls?: ClientTls;
  log: (s: string) => void;
}

async function putCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  checkPositive(f, 'key-space-size', 'key-size');
  const keySpace = f['key-space-size'] as number;
  const seq = f['sequential-keys'] as boolean;
  const tpl = putTemplate(f['key-size'] as number, randomBytes(f['val-size'] as number));
  const r = await runUnary(c.conns, c.clients, {
    method: M.put,
    total: f.total as number,
    rate: f.rate as number,
    request: (i) => tpl.varint(seq ? i % keySpace : Math.floor(Math.random() * keySpace)),
  }, c.maxMs);
  return single('put', r);
}

function single(command: string, r: UnaryResult, extra: DriverResult['extra'] = {}): DriverResult {
  return { command, sections: [section('', r.recorder, r.elapsedSec)], extra: { ...extra, unsent: r.unsent } };
}

async function rangeCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  let key: Buffer = Buffer.from(c.args[0], 'utf8');
  let end: Buffer = c.args[1] !== undefined ? Buffer.from(c.args[1], 'utf8') : Buffer.alloc(0);
  if (f.prefix) {
    if (c.args[1] !== undefined) throw new FlagError('--prefix and an end-range exclude each other');
    [key, end] = prefixRange(key);
  }
  const serializable = consistencyOf(f);
  c.log(`bench with ${serializable ? 'serializable' : 'linearizable'} range`);
  const req = encodeRange({ key, rangeEnd: end, limit: f.limit as number, serializable });
  const r = await runUnary(c.conns, c.clients, { method: M.range, total: f.total as number, rate: f.rate as number, request: () => req }, c.maxMs);
  // what one answer holds (a sanity line for the reader: an empty range measures little)
  const one = rangeInfo(await unary(c.conns[0], M.range, req));
  return single('range', r, { kvsPerResponse: one.kvs, count: one.count });
}

async function txnPutCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  checkPositive(f, 'key-space-size', 'key-size', 'txn-ops');
  const keySpace = f['key-space-size'] as number;
  const ops = f['txn-ops'] as number;
  const put = putTemplate(f['key-size'] as number, randomBytes(f['val-size'] as number));
  const request = ops === 1
    ? (() => {
        const t = txnPutTemplate(f['key-size'] as number, randomBytes(f['val-size'] as number));
        return (i: number) => t.varint(i % keySpace);
      })()
    : (i: number) => {
        const list: Buffer[] = new Array(ops);
        for (let j = 0; j < ops; j++) list[j] = requestOpPut(put.varint((i * ops + j) % keySpace));
        return encodeTxn(list);
      };
  const r = await runUnary(c.conns, c.clients, { method: M.txn, total: f.total as number, rate: f.rate as number, request }, c.maxMs);
  return single('txn-put', r);
}

async function txnMixedCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  checkPositive(f, 'key-space-size', 'key-size');
  if (!((f['rw-ratio'] as number) >= 0)) throw new FlagError('--rw-ratio must be >= 0');
  const serializable = consistencyOf(f);
  c.log(`bench with ${serializable ? 'serializable' : 'linearizable'} range`);
  const endArg = (c.args[1] ?? (f['end-key'] as string)) || '';
  // As 3.5's tool: the read is a range over KEY's prefix ("" = every key) with --limit, unless an end is given.
  const [key, end] = endArg ? [Buffer.from(c.args[0] ?? '', 'utf8'), Buffer.from(endArg, 'utf8')] : prefixRange(Buffer.from(c.args[0] ?? '', 'utf8'));
  const readTxn = encodeTxn([requestOpRange(encodeRange({ key, rangeEnd: end, limit: f.limit as number, serializable }))]);
  const write = txnPutTemplate(f['key-size'] as number, randomBytes(f['val-size'] as number));
  const keySpace = f['key-space-size'] as number;
  const total = f.total as number;
  const pRead = (f['rw-ratio'] as number) / (1 + (f['rw-ratio'] as number));
  const isRead = new Uint8Array(total);
  for (let i = 0; i < total; i++) isRead[i] = Math.random() < pRead ? 1 : 0;
  const reads = new Recorder(total);
  const writes = new Recorder(total);
  const r = await runUnary(c.conns, c.clients, {
    method: M.txn,
    total,
    rate: f.rate as number,
    request: (i) => (isRead[i] ? readTxn : write.varint(i % keySpace)),
    recorderFor: (i) => (isRead[i] ? reads : writes),
  }, c.maxMs);
  const all = new Recorder(reads.n + writes.n);
  for (const x of reads.samples()) all.record(x);
  for (const x of writes.samples()) all.record(x);
  all.errors = reads.errors + writes.errors;
  for (const rec of [reads, writes]) for (const [k, v] of rec.errorDist) all.errorDist.set(k, (all.errorDist.get(k) ?? 0) + v);
  return {
    command: 'txn-mixed',
    sections: [section('', all, r.elapsedSec), section('Read', reads, r.elapsedSec), section('Write', writes, r.elapsedSec)],
    extra: { reads: reads.n, writes: writes.n, unsent: r.unsent },
  };
}

/** A watch stream: create requests out, responses counted by the handler given. */
function openWatchStream(conn: grpc.Client, onData: (b: Buffer) => void, onEnd: (err?: Error) => void): grpc.ClientDuplexStream<Buffer, Buffer> {
  const s = conn.makeBidiStreamRequest(M.watch, pass, pass);
  s.on('data', onData);
  s.on('error', (e) => onEnd(e));
  s.on('end', () => onEnd());
  return s;
}

/** Creates `n` watchers on one stream (one create request each, in order) and resolves when all are created. */
async function createWatchers(
  stream: grpc.ClientDuplexStream<Buffer, Buffer>,
  reqs: Buffer[],
  created: { waiting: number; wake?: () => void; sent: number[]; got: number },
  deadline: number,
): Promise<void> {
  for (const r of reqs) {
    created.sent.push(performance.now());
    stream.write(r);
  }
  while (created.waiting > 0) {
    if (performance.now() > deadline) throw new Error(`watch creation timed out (${created.waiting} not created)`);
    await new Promise<void>((res) => {
      created.wake = res;
      setTimeout(res, 200);
    });
  }
}

async function watchCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  checkPositive(f, 'key-space-size', 'key-size', 'streams', 'watched-key-total');
  const nStreams = f.streams as number;
  const perStream = f['watch-per-stream'] as number;
  const keySpace = f['key-space-size'] as number;
  const keySize = f['key-size'] as number;
  const keys: Buffer[] = [];
  for (let i = 0; i < (f['watched-key-total'] as number); i++) {
    keys.push(varintKey(keySize, f['sequential-keys'] ? i % keySpace : Math.floor(Math.random() * keySpace)));
  }
  const deadline = performance.now() + c.maxMs;
  // clients as the Go tool has them: client i on connection i mod conns; stream s on client s mod clients
  const clientConn = (i: number) => c.conns[i % c.conns.length];
  const creation = new Recorder(nStreams * perStream);
  const watchersOf = new Map<string, number>();
  let received = 0;
  let expected = Infinity;
  let firstEventAt = 0;
  let lastEventAt = 0;
  let allIn: (() => void) | undefined;
  let streamErr: Error | undefined;
  const streams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  const creates: Promise<void>[] = [];
  let k = 0;
  for (let s = 0; s < nStreams; s++) {
    const state = { waiting: perStream, wake: undefined as (() => void) | undefined, sent: [] as number[], got: 0 };
    const onData = (b: Buffer) => {
      const n = watchEventCount(b);
      if (n === 0) {
        const w = watchInfo(b);
        if (w.created && state.waiting > 0) {
          creation.record(performance.now() - state.sent[state.got++]);
          if (--state.waiting === 0) state.wake?.();
        } else if (w.canceled) streamErr ??= new Error(`watch canceled: ${w.cancelReason}`);
        return;
      }
      const now = performance.now();
      if (received === 0) firstEventAt = now;
      received += n;
      lastEventAt = now;
      if (received >= expected) allIn?.();
    };
    const stream = openWatchStream(clientConn(s % c.clients), onData, (err) => {
      if (err && received < expected) streamErr ??= err;
    });
    streams.push(stream);
    const reqs: Buffer[] = [];
    for (let j = 0; j < perStream; j++, k++) {
      const key = keys[k % keys.length];
      const id = key.toString('latin1');
      watchersOf.set(id, (watchersOf.get(id) ?? 0) + 1);
      reqs.push(encodeWatchCreate({ key }));
    }
    creates.push(createWatchers(stream, reqs, state, deadline));
  }
  const t0 = performance.now();
  await Promise.all(creates);
  const creationSec = (performance.now() - t0) / 1000;
  const putTotal = f['put-total'] as number;
  expected = 0;
  for (let i = 0; i < putTotal; i++) expected += watchersOf.get(keys[i % keys.length].toString('latin1')) ?? 0;
  // puts of "data" to the watched keys from every client, rate-limited (burst 1) as in the Go tool
  const data = Buffer.from('data');
  const putReqs = keys.map((key) => encodePut(key, data));
  const putStart = performance.now();
  const done = new Promise<void>((res) => {
    allIn = res;
    if (received >= expected) res();
  });
  const puts = runUnary(c.conns, c.clients, {
    method: M.put,
    total: putTotal,
    rate: f['put-rate'] as number,
    request: (i) => putReqs[i % putReqs.length],
  }, Math.max(1, deadline - performance.now()));
  const timeout = new Promise<void>((res) => setTimeout(res, Math.max(1, deadline - performance.now())).unref());
  const putResult = await puts;
  await Promise.race([done, timeout, (async () => { while (!streamErr) await sleep(100); })()]);
  const end = received >= expected ? lastEventAt : performance.now();
  for (const s of streams) s.cancel();
  const eventsSec = (end - putStart) / 1000;
  const events = new Recorder(1);
  const result: DriverResult = {
    command: 'watch',
    sections: [
      section('Watch creation summary', creation, creationSec),
      { ...section('Watch events received summary', events, eventsSec), count: received, rps: eventsSec > 0 ? received / eventsSec : 0 },
      section('Puts', putResult.recorder, putResult.elapsedSec),
    ],
    extra: { expectedEvents: expected, receivedEvents: received, firstEventMs: firstEventAt ? firstEventAt - putStart : -1, complete: received >= expected },
  };
  if (streamErr) result.extra.streamError = streamErr.message;
  if (received < expected) c.log(`warning: ${received} of ${expected} events received before the time limit`);
  return result;
}

async function watchLatencyCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  const key = randomBytes(f['key-size'] as number);
  const value = randomBytes(f['val-size'] as number);
  const W = c.clients;
  const total = f.total as number;
  const deadline = performance.now() + c.maxMs;
  const putConn = (await connect(c.endpoints, 1, c.dialMs, c.conns.length, c.tls))[0];
  const rec = new Recorder(W * total);
  // one stream per connection used by a watcher (clientv3 puts a client's watches on one stream)
  const nStreams = Math.min(c.conns.length, W);
  const arrivals = new Float64Array(W);
  let got = 0;
  let cycleDone: (() => void) | undefined;
  let streamErr: Error | undefined;
  const streams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  const creates: Promise<void>[] = [];
  for (let s = 0; s < nStreams; s++) {
    let n = 0;
    for (let i = s; i < W; i += nStreams) n++;
    const state = { waiting: n, wake: undefined as (() => void) | undefined, sent: [] as number[], got: 0 };
    const onData = (b: Buffer) => {
      const ev = watchEventCount(b);
      if (ev === 0) {
        const w = watchInfo(b);
        if (w.created && state.waiting > 0 && --state.waiting === 0) state.wake?.();
        else if (w.canceled) streamErr ??= new Error(`watch canceled: ${w.cancelReason}`);
        return;
      }
      const now = performance.now();
      for (let e = 0; e < ev && got < W; e++) arrivals[got++] = now;
      if (got >= W) cycleDone?.();
    };
    const stream = openWatchStream(c.conns[s], onData, (err) => {
      if (err) streamErr ??= err;
    });
    streams.push(stream);
    const req = encodeWatchCreate({ key });
    creates.push(createWatchers(stream, new Array(n).fill(req), state, deadline));
  }
  await Promise.all(creates);
  const limiter = new Limiter(f['put-rate'] as number, f['put-rate'] as number);
  const putReq = encodePut(key, value);
  const t0 = performance.now();
  let puts = 0;
  for (; puts < total; puts++) {
    if (performance.now() > deadline || streamErr) break;
    const wait = limiter.reserve();
    if (wait > 0) await sleep(wait);
    const cycle = new Promise<void>((res) => (cycleDone = res));
    await unary(putConn, M.put, putReq);
    const st = performance.now();
    if (got < W) {
      const left = deadline - performance.now();
      await Promise.race([cycle, sleep(Math.max(1, left))]);
    }
    if (got < W) {
      c.log(`warning: only ${got} of ${W} watchers had put ${puts + 1}'s event before the time limit`);
      for (let e = 0; e < got; e++) rec.record(Math.max(0, arrivals[e] - st));
      rec.errors += W - got;
      break;
    }
    for (let e = 0; e < W; e++) rec.record(Math.max(0, arrivals[e] - st));
    got = 0;
  }
  const totalSec = (performance.now() - t0) / 1000;
  for (const s of streams) s.cancel();
  putConn.close();
  const result: DriverResult = { command: 'watch-latency', sections: [section('', rec, totalSec)], extra: { puts, watchers: W, streams: nStreams } };
  if (streamErr) result.extra.streamError = streamErr.message;
  return result;
}

class KeepAliveWorker {
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  private t0 = 0;
  private req!: Buffer;
  private readonly onData: () => void;
  private readonly onError: (e: Error) => void;
  constructor(private readonly conn: grpc.Client, private readonly st: { next: number; total: number; deadline: number; rec: Recorder; live: number; done: () => void }) {
    this.onData = () => this.finish(undefined);
    this.onError = (e) => this.finish(e);
  }
  async start(): Promise<void> {
    const g = leaseGrantInfo(await unary(this.conn, M.leaseGrant, encodeLeaseGrant(100)));
    if (g.error) throw new Error(`lease grant: ${g.error}`);
    this.req = encodeLeaseKeepAlive(g.id);
  }
  next(): void {
    const st = this.st;
    if (st.next >= st.total || performance.now() > st.deadline) {
      if (--st.live === 0) st.done();
      return;
    }
    st.next++;
    // as clientv3's KeepAliveOnce, which the Go tool calls: a stream per keep-alive
    const s = this.conn.makeBidiStreamRequest(M.leaseKeepAlive, pass, pass);
    this.stream = s;
    s.on('data', this.onData);
    s.on('error', this.onError);
    this.t0 = performance.now();
    s.write(this.req);
  }
  private finish(err: Error | undefined): void {
    const s = this.stream;
    if (!s) return;
    this.stream = undefined;
    if (err) this.st.rec.error(err.message);
    else this.st.rec.record(performance.now() - this.t0);
    s.removeListener('data', this.onData);
    s.removeListener('error', this.onError);
    s.on('error', noop);
    s.cancel();
    this.next();
  }
}
const noop = () => {};

async function leaseKeepAliveCmd(c: Ctx): Promise<DriverResult> {
  const total = c.flags.total as number;
  let resolve!: () => void;
  const finished = new Promise<void>((r) => (resolve = r));
  const st = { next: 0, total, deadline: 0, rec: new Recorder(total), live: c.clients, done: resolve };
  const workers: KeepAliveWorker[] = [];
  for (let i = 0; i < c.clients; i++) workers.push(new KeepAliveWorker(c.conns[i % c.conns.length], st));
  await Promise.all(workers.map((w) => w.start()));
  const t0 = performance.now();
  st.deadline = t0 + c.maxMs;
  for (const w of workers) w.next();
  await finished;
  return { command: 'lease-keepalive', sections: [section('', st.rec, (performance.now() - t0) / 1000)], extra: { unsent: total - st.next } };
}

/** Key `prefix + zero-padded i` (8 digits at least), as preload writes them. */
export function preloadKey(prefix: string, i: number, total: number): string {
  return prefix + String(i).padStart(Math.max(8, String(Math.max(0, total - 1)).length), '0');
}

async function preloadCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  checkPositive(f, 'txn-ops');
  const total = f.total as number;
  const ops = f['txn-ops'] as number;
  const offset = f.offset as number;
  const prefix = f['key-prefix'] as string;
  const value = randomBytes(f['val-size'] as number);
  const width = offset + total;
  const txns = Math.ceil(total / ops);
  let lastLog = performance.now();
  let written = 0;
  const t0 = performance.now();
  const r = await runUnary(c.conns, c.clients, {
    method: M.txn,
    total: txns,
    rate: 0,
    request: (t) => {
      const from = t * ops;
      const to = Math.min(total, from + ops);
      const list: Buffer[] = new Array(to - from);
      for (let i = from; i < to; i++) list[i - from] = requestOpPut(encodePut(Buffer.from(preloadKey(prefix, offset + i, width), 'latin1'), value));
      written = to;
      const now = performance.now();
      if (now - lastLog > 5000) {
        lastLog = now;
        c.log(`preload: ${written} keys sent, ${Math.round(written / ((now - t0) / 1000))} keys/s`);
      }
      return encodeTxn(list);
    },
  }, c.maxMs);
  const keysPerSec = r.recorder.n === txns ? total / r.elapsedSec : NaN;
  return single('preload', r, { keys: total, txnOps: ops, keysPerSec });
}

async function listAllCmd(c: Ctx): Promise<DriverResult> {
  const f = c.flags;
  const [key, end] = c.args[1] !== undefined ? [Buffer.from(c.args[0], 'utf8'), Buffer.from(c.args[1], 'utf8')] : prefixRange(Buffer.from(c.args[0], 'utf8'));
  const limit = f.limit as number;
  const serializable = consistencyOf(f);
  const rec = new Recorder(1024);
  const conn = c.conns[0];
  const deadline = performance.now() + c.maxMs;
  let cur = key;
  let rev = 0;
  let keys = 0;
  let bytes = 0;
  let pages = 0;
  let complete = false;
  const t0 = performance.now();
  while (pages < (f['max-pages'] as number) && performance.now() < deadline) {
    const req = encodeRange({ key: cur, rangeEnd: end, limit, revision: rev, serializable });
    const s = performance.now();
    const resp = await unary(conn, M.range, req, Math.max(1000, deadline - s));
    rec.record(performance.now() - s);
    const info = rangeInfo(resp);
    pages++;
    keys += info.kvs;
    bytes += resp.length;
    if (!info.more || !info.lastKey || limit === 0) {
      complete = true;
      break;
    }
    // kube-apiserver's continue: from the last key + "\0", at the first page's revision
    cur = Buffer.concat([info.lastKey, Buffer.from([0])]);
    if (rev === 0) rev = info.revision;
  }
  const totalSec = (performance.now() - t0) / 1000;
  return {
    command: 'list-all',
    sections: [section('Pages', rec, totalSec)],
    extra: { keys, pages, bytes, totalSec, complete, limit },
  };
}

const RUNNERS: Record<string, (c: Ctx) => Promise<DriverResult>> = {
  put: putCmd,
  range: rangeCmd,
  'txn-put': txnPutCmd,
  'txn-mixed': txnMixedCmd,
  watch: watchCmd,
  'watch-latency': watchLatencyCmd,
  'lease-keepalive': leaseKeepAliveCmd,
  preload: preloadCmd,
  'list-all': listAllCmd,
};

// ---------------------------------------------------------------------------------------------------
// Main

function usage(): string {
  const cmds = Object.entries(COMMANDS)
    .map(([n, s]) => `  ${`${n} ${s.args}`.padEnd(30)} ${s.help}\n${flagUsage(s.flags)}`)
    .join('\n');
  return `A load driver for etcd v3 servers (etcd tools/benchmark's workloads and flags).\n\nUsage:\n  node dist/bench/driver.js [global flags] COMMAND [args] [flags]\n\nCommands:\n${cmds}\n\nGlobal flags:\n${flagUsage(GLOBAL_FLAGS)}\n`;
}

export function formatResult(r: DriverResult, precise: boolean): string {
  let out = '';
  for (const s of r.sections) {
    if (s.title) out += `${s.title}:\n`;
    out += formatReport(s, undefined, precise);
    if (s.errors) out += `\nError distribution:\n${Object.entries(s.errorDist).map(([m, n]) => `  [${n}]\t${m}\n`).join('')}`;
    out += '\n';
  }
  const extra = Object.entries(r.extra).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : v}`);
  if (extra.length) out += `${extra.join(' ')}\n`;
  if (r.rss) out += `server RSS: start ${r.rss.startMb.toFixed(1)} MB, max ${r.rss.maxMb.toFixed(1)} MB, end ${r.rss.endMb.toFixed(1)} MB, VmHWM ${r.rss.hwmEndMb.toFixed(1)} MB\n`;
  return out;
}

/**
 * --cacert / --cert / --key as the Go tool reads them: a client pair needs both halves; with a pair but no
 * CA the servers are checked against the system's roots. undefined when none is given (plaintext unless an
 * endpoint says https://).
 */
async function clientTls(cacert: string, cert: string, key: string): Promise<ClientTls | undefined> {
  if (!cacert && !cert && !key) return undefined;
  if (Boolean(cert) !== Boolean(key)) throw new Error('--cert and --key go together');
  const read = (flag: string, file: string) => readFile(file).catch((e: Error) => Promise.reject(new Error(`--${flag}: ${e.message}`)));
  const [ca, c, k] = await Promise.all([cacert ? read('cacert', cacert) : undefined, cert ? read('cert', cert) : undefined, key ? read('key', key) : undefined]);
  return { ca, cert: c, key: k };
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv, GLOBAL_FLAGS, COMMANDS);
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`Error: ${e.message}\nRun with --help for usage.\n`);
      return 2;
    }
    throw e;
  }
  const f = parsed.flags;
  if (f.help) {
    process.stdout.write(usage());
    return 0;
  }
  const clients = f.clients as number;
  const nConns = f.conns as number;
  if (!(clients > 0 && nConns > 0)) {
    process.stderr.write('Error: --clients and --conns must be positive\n');
    return 2;
  }
  const json = f.json as boolean;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const endpoints = f.endpoints as string[];
  let tls: ClientTls | undefined;
  try {
    tls = await clientTls(f.cacert as string, f.cert as string, f.key as string);
  } catch (e) {
    process.stderr.write(`Error: ${(e as Error).message}\n`);
    return 2;
  }
  const conns = await connect(endpoints, Math.min(nConns, clients), f['dial-timeout'] as number, 0, tls);
  const pid = f['server-pid'] as number;
  const sampler = pid > 0 ? new RssSampler(pid) : undefined;
  try {
    const result = await RUNNERS[parsed.command]({
      flags: f,
      args: parsed.positionals,
      conns,
      clients,
      maxMs: f['max-time'] as number,
      endpoints,
      dialMs: f['dial-timeout'] as number,
      tls,
      log,
    });
    if (sampler) result.rss = sampler.stop();
    const text = formatResult(result, f.precise as boolean);
    if (json) {
      process.stderr.write(text);
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else process.stdout.write(text);
    return result.sections.some((s) => s.errors > 0) ? 1 : 0;
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`Error: ${e.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    sampler?.stop();
    closeAll(conns);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // streams canceled and channels closed; nothing should hold the loop, but never hang on exit
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (e) => {
      process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
      process.exit(1);
    },
  );
}
