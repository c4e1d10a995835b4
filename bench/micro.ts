// Micro-benchmarks (tinybench) of Plinth's hot paths: mvcc put and range on each storage engine, and
// the engine-independent internals under them (key index, KeyValue and revision encoding, protobuf).
//
//   npm run bench:micro                      # build, then every engine and the internals
//   node dist/bench/micro.js --engines lmdb,memory --quick
//
// Options:
//   --engines a,b   engines to run (lmdb, leveldb, memory; "none" = internals only). Default: all.
//   --no-internals  skip the engine-independent tasks.
//   --quick         short run: 100 ms per task, 10k preloaded keys, no 1M-key index.
//   --time MS       time budget per task (default 400, quick 100).
//
// Every task runs alone (warmup, then its run) with a time budget, a minimum of a few iterations and a
// hard wall-clock limit (an AbortSignal), so no loop is unbounded. The table is printed and written as
// Markdown to bench/results/micro-<all | engines>[-quick].md. Temp dirs are removed at the end.

import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Bench as BenchClass, Fn, Task } from 'tinybench';
import * as convert from '../src/wire/convert';
import { encodePutResponse, encodeRangeResponse } from '../src/wire/kv-codec';
import { loadEtcdProtos, serviceDefinition } from '../src/api/proto';
import { TreeIndex, type RevHit } from '../src/mvcc/key-index';
import { decodeKeyValue, encodeKeyValue, type KeyValue } from '../src/mvcc/key-value';
import { KV } from '../src/mvcc/kv';
import { KVStore } from '../src/mvcc/kv-store';
import { REV_BYTES, revisionBytes, writeRevision } from '../src/mvcc/revision';
import type { PutRequest, RangeRequest } from '../src/mvcc/types';
import { ENGINE_KINDS, openBackend, type Backend, type EngineKind } from '../src/storage';

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  engines: EngineKind[];
  internals: boolean;
  quick: boolean;
  timeMs: number;
  warmupMs: number;
  /** Keys preloaded per engine (and the key space puts cycle over). */
  preload: number;
  /** Key index sizes for the TreeIndex tasks. */
  indexSizes: number[];
  /** Puts per backend.commit() in the group-commit variant. */
  commitEvery: number;
}

function usage(code: number): never {
  console.log('usage: node dist/bench/micro.js [--engines lmdb,leveldb,memory|none] [--no-internals] [--quick] [--time MS]');
  process.exit(code);
}

function parseArgs(argv: string[]): Options {
  let engines: EngineKind[] = [...ENGINE_KINDS];
  let internals = true;
  let quick = false;
  let time: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2) as [string, string | undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(2);
      return v;
    };
    switch (flag) {
      case '--engines': {
        const v = value();
        const list = v === 'none' ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
        for (const e of list) {
          if (!(ENGINE_KINDS as readonly string[]).includes(e)) {
            console.error(`unknown engine ${JSON.stringify(e)}; known: ${ENGINE_KINDS.join(', ')}`);
            process.exit(2);
          }
        }
        engines = list as EngineKind[];
        break;
      }
      case '--no-internals':
        internals = false;
        break;
      case '--quick':
        quick = true;
        break;
      case '--time':
        time = Number(value());
        if (!(time > 0 && time <= 10_000)) usage(2);
        break;
      case '--help':
      case '-h':
        usage(0);
      default:
        console.error(`unknown option ${argv[i]}`);
        usage(2);
    }
  }
  const timeMs = time ?? (quick ? 100 : 400);
  return {
    engines,
    internals,
    quick,
    timeMs,
    warmupMs: Math.max(50, Math.round(timeMs / 4)),
    preload: quick ? 10_000 : 100_000,
    indexSizes: quick ? [100_000] : [100_000, 1_000_000],
    commitEvery: 100,
  };
}

// ---------------------------------------------------------------------------------------------------
// Running tasks and collecting rows

interface Row {
  group: string;
  task: string;
  /** Operations done by one call of the task function (inner loop / batch size). */
  opsPerIter: number;
  opsPerSec: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  samples: number;
  note: string;
}

type TinybenchModule = typeof import('tinybench');
let tinybench: TinybenchModule;

/** tinybench is ESM-only; import() works from CommonJS on every Node 20 (require(esm) only from 20.19). */
async function loadTinybench(): Promise<TinybenchModule> {
  const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<TinybenchModule>;
  return dynamicImport('tinybench');
}

/**
 * A full GC before each task, so one task's garbage (a dropped 1M-key index, say) is not collected
 * on the next one's clock. Without --expose-gc, the flag is set at run time and gc taken from a fresh context.
 */
const fullGc: () => void = (() => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return () => {};
  }
})();

const rows: Row[] = [];
/** Results land here so the JIT cannot drop the work. */
let sink = 0;

interface TaskOpts {
  /** Operations per call of fn (mean and p99 are divided by it). */
  ops?: number;
  /** Untimed work after each call (e.g. a commit that must not count). */
  afterEach?: () => Promise<void> | void;
  /** Shown in the table; a function is called after the run. */
  note?: string | (() => string);
  /** false skips tinybench's warmup (when earlier work already ran the same code hot). */
  warmup?: boolean;
  /** Aborted by the task itself when its bounded input runs out. */
  stop?: AbortController;
}

async function runTask(opts: Options, group: string, name: string, fn: Fn, t: TaskOpts = {}): Promise<void> {
  const ops = t.ops ?? 1;
  const isAsync = fn.constructor.name === 'AsyncFunction';
  // Hard wall-clock bound (warmup + run + untimed hooks), on top of tinybench's time budget.
  const deadline = AbortSignal.timeout(opts.timeMs * 6 + opts.warmupMs * 6 + 3_000);
  const signal = t.stop ? AbortSignal.any([deadline, t.stop.signal]) : deadline;
  const bench: BenchClass = new tinybench.Bench({
    time: opts.timeMs,
    warmupTime: opts.warmupMs,
    iterations: 16,
    warmupIterations: 4,
    warmup: t.warmup ?? true,
    timestampProvider: 'hrtimeNow',
    subtractTimerOverhead: true,
    throws: true,
    signal,
  });
  bench.add(name, fn, { async: isAsync, afterEach: t.afterEach });
  fullGc();
  const started = Date.now();
  const [task] = (await bench.run()) as Task[];
  const r = task.result;
  if (r.state !== 'completed' && r.state !== 'aborted-with-statistics') {
    throw new Error(`task ${group} / ${name} ended ${r.state}${'error' in r ? `: ${r.error.stack}` : ''}`);
  }
  const meanMs = r.latency.mean;
  const row: Row = {
    group,
    task: name,
    opsPerIter: ops,
    opsPerSec: meanMs > 0 ? (ops * 1000) / meanMs : Infinity,
    meanUs: (meanMs * 1000) / ops,
    p50Us: (r.latency.p50 * 1000) / ops,
    p99Us: (r.latency.p99 * 1000) / ops,
    samples: r.latency.samplesCount,
    note: [
      typeof t.note === 'function' ? t.note() : t.note,
      r.state !== 'aborted-with-statistics' ? '' : t.stop?.signal.aborted ? 'stopped when its input ran out' : 'cut by the wall-clock limit',
    ].filter(Boolean).join('; '),
  };
  rows.push(row);
  process.stderr.write(
    `  ${group.padEnd(9)} ${name.padEnd(44)} ${fmtOps(row.opsPerSec).padStart(12)} ops/s ${fmtUs(row.meanUs).padStart(10)} µs  (${row.samples} samples, ${Date.now() - started} ms)\n`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Data

const KEY_BYTES = 16;
const VALUE_BYTES = 256;
/** Keys sharing their first 13 bytes: 1000 per prefix. */
const PREFIX_BYTES = 13;
const PREFIX_SPAN = 1000;

/**
 * 16-byte key: 'k' + 15 digits, as a flat latin1 string like the server's key.toString('latin1')
 * (a concatenated string is a rope: comparing it in the index is measurably slower).
 */
const keyString = (i: number): string => Buffer.from('k' + String(i).padStart(KEY_BYTES - 1, '0'), 'latin1').toString('latin1');

/** Deterministic xorshift32, so runs pick the same keys. */
function rng(seed = 0x9e3779b9): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function shuffleInPlace<T>(a: T[], next: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function rangeReq(key: Buffer, over: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key, rangeEnd: Buffer.alloc(0), limit: 0, revision: 0, sortOrder: 0, sortTarget: 0, serializable: false,
    keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0,
    ...over,
  };
}

const putReq = (key: Buffer, value: Buffer): PutRequest => ({ key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });

/** clientv3.GetPrefixRangeEnd for a prefix without 0xff bytes. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  return end;
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`sanity check failed: ${what}`);
}

// ---------------------------------------------------------------------------------------------------
// Engine tasks

const tempDirs = new Set<string>();

function removeTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

async function benchEngine(opts: Options, kind: EngineKind): Promise<void> {
  const group = kind;
  const dir = mkdtempSync(join(os.tmpdir(), `plinth-bench-${kind}-`));
  tempDirs.add(dir);
  let backend: Backend | undefined;
  try {
    backend = await openBackend(kind, { dir });
    const store = await KVStore.open(backend);
    const kv = new KV(store);
    const n = opts.preload;
    const keys: Buffer[] = new Array(n);
    for (let i = 0; i < n; i++) keys[i] = Buffer.from(keyString(i), 'latin1');
    const value = randomBytes(VALUE_BYTES);

    // Preload: one put per revision (as n separate requests), committed 1000 at a time.
    const t0 = Date.now();
    const revOf: number[] = new Array(n);
    for (let i = 0; i < n; i++) {
      revOf[i] = kv.put(putReq(keys[i], value)).revision;
      if (i % 1000 === 999) await backend.commit();
    }
    await backend.commit();
    process.stderr.write(`${kind}: preloaded ${n} keys in ${Date.now() - t0} ms (${dir})\n`);

    // Sanity: reads come back right from the engine.
    {
      const r = kv.range(rangeReq(keys[123]));
      check(r.kvs.length === 1 && r.kvs[0].key.equals(keys[123]) && r.kvs[0].value.equals(value), `${kind} range 1 key`);
      const p = keys[2000].subarray(0, PREFIX_BYTES);
      const rp = kv.range(rangeReq(p, { rangeEnd: prefixEnd(p), limit: 100 }));
      check(rp.kvs.length === 100 && rp.more && rp.count === PREFIX_SPAN, `${kind} prefix range: ${rp.kvs.length} kvs, count ${rp.count}`);
      check(backend.pendingWrites === 0, `${kind} nothing pending after commit`);
    }

    const pick = rng();
    await runTask(opts, group, 'mvcc range 1 key', () => {
      const r = kv.range(rangeReq(keys[pick() % n]));
      sink += r.kvs.length;
    }, { note: `random key of ${fmtCount(n)}` });

    const prefixes = Math.max(1, Math.floor(n / PREFIX_SPAN));
    const prefixReqs: RangeRequest[] = [];
    for (let b = 0; b < prefixes; b++) {
      const p = keys[b * PREFIX_SPAN].subarray(0, PREFIX_BYTES);
      prefixReqs.push(rangeReq(p, { rangeEnd: prefixEnd(p), limit: 100 }));
    }
    await runTask(opts, group, 'mvcc range prefix limit 100', () => {
      const r = kv.range(prefixReqs[pick() % prefixes]);
      sink += r.kvs.length;
    }, { note: `prefix of ${PREFIX_SPAN} keys: 100 kvs read, ${PREFIX_SPAN} counted` });

    const revKeys: Buffer[] = revOf.map((rev) => revisionBytes(rev, 0));
    await runTask(opts, group, 'backend.get revision key', () => {
      const v = backend!.get('key', revKeys[pick() % n]);
      sink += v!.length;
    }, { note: 'Backend (pending-buffer lookup) + engine' });
    const engine = backend.engine;
    await runTask(opts, group, 'engine.get revision key', () => {
      const v = engine.get('key', revKeys[pick() % n]);
      sink += v!.length;
    }, { note: 'engine read path alone' });

    // Puts: updates of the preloaded keys, cycling over the key space.
    let next = 0;
    const N = opts.commitEvery;
    const revBefore = store.currentRev;
    let puts = 0;
    await runTask(opts, group, `mvcc put (apply only, ${N}/iter)`, () => {
      for (let j = 0; j < N; j++) {
        sink += kv.put(putReq(keys[next], value)).revision;
        next = (next + 1) % n;
      }
      puts += N;
    }, { ops: N, afterEach: () => backend!.commit(), note: 'index + encode + buffer; commit untimed' });
    await runTask(opts, group, `mvcc put, commit every ${N}`, async () => {
      for (let j = 0; j < N; j++) {
        sink += kv.put(putReq(keys[next], value)).revision;
        next = (next + 1) % n;
      }
      puts += N;
      await backend!.commit();
    }, { ops: N, note: `${N} puts then one awaited backend.commit()` });
    await runTask(opts, group, 'mvcc put + commit each', async () => {
      sink += kv.put(putReq(keys[next], value)).revision;
      next = (next + 1) % n;
      puts++;
      await backend!.commit();
    }, { note: kind === 'memory' ? 'no disk: commit is a promise turn' : 'one fsynced engine commit per put' });

    // Sanity: every put made one revision, all durable, and reads see the newest value.
    check(store.currentRev === revBefore + puts, `${kind} revisions: ${store.currentRev} vs ${revBefore} + ${puts}`);
    check(backend.pendingWrites === 0, `${kind} nothing pending after put tasks`);
    const last = kv.range(rangeReq(keys[(next + n - 1) % n])).kvs[0];
    check(last.version >= 2 && last.modRevision === store.currentRev, `${kind} last put visible`);

    // The backend's own put (what mvcc's put buffers), under revision keys far above the store's revisions,
    // so the mvcc state checked above is not touched. Committed (untimed) after each batch.
    // 1000 per call: the untimed (fsynced) commit after each call would otherwise eat the wall-clock bound.
    let bmain = 2 ** 40;
    const BP = 1000;
    await runTask(opts, group, `backend.put revision key (${BP}/iter)`, () => {
      for (let j = 0; j < BP; j++) backend!.put('key', revisionBytes(bmain++, 0), value);
    }, { ops: BP, afterEach: () => backend!.commit(), note: 'into the pending batch; commit untimed' });
    check(backend.get('key', revisionBytes(bmain - 1, 0))?.equals(value) === true, `${kind} backend.put readable`);
  } finally {
    if (backend) await backend.close();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---------------------------------------------------------------------------------------------------
// Engine-independent tasks

async function benchIndex(opts: Options, size: number): Promise<void> {
  const group = 'index';
  const label = fmtCount(size);
  const keys: string[] = new Array(size);
  for (let i = 0; i < size; i++) keys[i] = keyString(i);
  const ti = new TreeIndex();
  const t0 = Date.now();
  // Insert in a shuffled order, as keys arrive in a real store.
  const order = shuffleInPlace(Array.from({ length: size }, (_, i) => i), rng(12345));
  let rev = 1;
  for (const i of order) ti.put(keys[i], ++rev, 0);
  process.stderr.write(`index: built ${label} keys in ${Date.now() - t0} ms\n`);
  check(ti.size === size, 'index size');

  const hit: RevHit = { modMain: 0, modSub: 0, createdMain: 0, version: 0 };
  const pick = rng(777);
  const G = 100;
  await runTask(opts, group, `TreeIndex.get (${label} keys)`, () => {
    for (let j = 0; j < G; j++) if (ti.get(keys[pick() % size], rev, hit)) sink += hit.modMain;
  }, { ops: G, note: 'random key, latest rev' });
  const blocks = Math.floor(size / PREFIX_SPAN);
  await runTask(opts, group, `TreeIndex.visit ${PREFIX_SPAN} keys (${label} keys)`, () => {
    const b = pick() % blocks;
    const start = keys[b * PREFIX_SPAN].slice(0, PREFIX_BYTES);
    const end = start.slice(0, -1) + String.fromCharCode(start.charCodeAt(start.length - 1) + 1);
    let count = 0;
    ti.visit(start, end, (_k, ki) => {
      if (ki.get(rev, hit)) count++;
    });
    sink += count;
  }, { note: 'what a prefix range does to count (limit does not stop it)' });
  await runTask(opts, group, `TreeIndex.put existing (${label} keys)`, () => {
    for (let j = 0; j < G; j++) ti.put(keys[pick() % size], ++rev, 0);
  }, { ops: G, note: 'random key, new revision' });
  // New keys at random places among the existing ones: 'k' + the first 14 digits of a key + a letter
  // sorts right after that key's group of 10. At most size/2 of them (the index grows by ≤ 50 %); the
  // task stops when they run out. No warmup: building the index ran this code hot.
  const poolSize = Math.floor(size / 10) * 5;
  const pool: string[] = new Array(poolSize);
  for (let j = 0; j < poolSize; j++) {
    const g = Math.floor(j / 5);
    pool[j] = Buffer.from('k' + String(g).padStart(KEY_BYTES - 2, '0') + 'abcde'[j % 5], 'latin1').toString('latin1');
  }
  shuffleInPlace(pool, rng(4242));
  let fresh = 0;
  const stop = new AbortController();
  const sizeBefore = ti.size;
  await runTask(opts, group, `TreeIndex.put new key (${label} keys)`, () => {
    for (let j = 0; j < G; j++) ti.put(pool[fresh++], ++rev, 0);
    if (fresh + G > poolSize) stop.abort(); // tinybench checks the signal before the next call
  }, { ops: G, warmup: false, stop, note: () => `insert at random places; the index grew by ${fresh.toLocaleString('en-US')} keys` });
  check(ti.size === sizeBefore + fresh, 'index grew by the keys inserted');
}

async function benchEncoding(opts: Options): Promise<void> {
  const group = 'encoding';
  const kv: KeyValue = {
    key: Buffer.from(keyString(4242), 'latin1'),
    createRevision: 123_456,
    modRevision: 234_567,
    version: 3,
    value: randomBytes(VALUE_BYTES),
    lease: 0n,
  };
  const enc = encodeKeyValue(kv);
  const dec = decodeKeyValue(enc);
  check(dec.key.equals(kv.key) && dec.value.equals(kv.value) && dec.modRevision === kv.modRevision && dec.version === 3, 'KeyValue round trip');
  const E = 100;
  await runTask(opts, group, 'encodeKeyValue (256 B value)', () => {
    for (let j = 0; j < E; j++) sink += encodeKeyValue(kv).length;
  }, { ops: E, note: `${enc.length} bytes out` });
  await runTask(opts, group, 'decodeKeyValue (256 B value)', () => {
    for (let j = 0; j < E; j++) sink += decodeKeyValue(enc).version;
  }, { ops: E, note: 'key/value are views, no copy' });
  const R = 1000;
  let main = 1_000_000;
  await runTask(opts, group, 'revisionBytes', () => {
    for (let j = 0; j < R; j++) sink += revisionBytes(main++, j & 7)[16];
  }, { ops: R, note: 'alloc 17 B + 2 BigInt writes' });
  const scratch = Buffer.alloc(REV_BYTES);
  await runTask(opts, group, 'writeRevision (scratch buffer)', () => {
    for (let j = 0; j < R; j++) sink += writeRevision(scratch, main++, j & 7)[16];
  }, { ops: R, note: 'read path: no alloc' });
}

async function benchProto(opts: Options): Promise<void> {
  const group = 'proto';
  const root = loadEtcdProtos() as any;
  const svc = root.etcdserverpb.KV.service;
  const put = svc.Put;
  const range = svc.Range;
  const checked = serviceDefinition('etcdserverpb', 'KV', 1.5 * 1024 * 1024) as any;

  const value = randomBytes(VALUE_BYTES);
  const putWire = { key: Buffer.from(keyString(4242), 'latin1'), value };
  const putBytes: Buffer = put.requestSerialize(putWire);
  const putBack = put.requestDeserialize(putBytes);
  check(putBack.value.equals(value) && putBack.key.equals(putWire.key), 'PutRequest round trip');
  const rangeReqBytes: Buffer = range.requestSerialize({ key: Buffer.from('k0000000000042'), rangeEnd: Buffer.from('k0000000000043'), limit: 100 });

  const hdr = { clusterId: '14841639068965178418', memberId: '10276657743932975437', revision: 100_001, raftTerm: 2 };
  const kvs = (count: number): KeyValue[] =>
    Array.from({ length: count }, (_, i) => ({
      key: Buffer.from(keyString(i), 'latin1'), createRevision: 1000 + i, modRevision: 2000 + i, version: 2, value, lease: 0n,
    }));
  const resp1 = convert.rangeResponse({ revision: 100_001, kvs: kvs(1), more: false, count: 1 }, hdr);
  const resp100 = convert.rangeResponse({ revision: 100_001, kvs: kvs(100), more: true, count: 1000 }, hdr);
  const resp1Bytes: Buffer = range.responseSerialize(resp1);
  const resp100Bytes: Buffer = range.responseSerialize(resp100);
  const back100 = range.responseDeserialize(resp100Bytes);
  check(back100.kvs.length === 100 && back100.kvs[99].value.equals(value) && Number(back100.count) === 1000, 'RangeResponse round trip');

  const P = 10;
  await runTask(opts, group, 'PutRequest serialize', () => {
    for (let j = 0; j < P; j++) sink += put.requestSerialize(putWire).length;
  }, { ops: P, note: `${putBytes.length} B` });
  await runTask(opts, group, 'PutRequest deserialize', () => {
    for (let j = 0; j < P; j++) sink += put.requestDeserialize(putBytes).value.length;
  }, { ops: P });
  await runTask(opts, group, 'PutRequest deserialize + wire check', () => {
    for (let j = 0; j < P; j++) sink += checked.Put.requestDeserialize(putBytes).value.length;
  }, { ops: P, note: "server's decoder (serviceDefinition)" });
  await runTask(opts, group, 'RangeRequest deserialize + wire check', () => {
    for (let j = 0; j < P; j++) sink += checked.Range.requestDeserialize(rangeReqBytes).key.length;
  }, { ops: P });
  await runTask(opts, group, 'RangeResponse serialize (1 kv)', () => {
    for (let j = 0; j < P; j++) sink += range.responseSerialize(resp1).length;
  }, { ops: P, note: `${resp1Bytes.length} B` });
  await runTask(opts, group, 'RangeResponse deserialize (1 kv)', () => {
    for (let j = 0; j < P; j++) sink += range.responseDeserialize(resp1Bytes).kvs.length;
  }, { ops: P });
  const kvs100 = kvs(100);
  await runTask(opts, group, 'convert.rangeResponse (100 kvs)', () => {
    sink += convert.rangeResponse({ revision: 100_001, kvs: kvs100, more: true, count: 1000 }, hdr).kvs.length;
  }, { note: 'mvcc KeyValue → proto-loader object' });
  await runTask(opts, group, 'RangeResponse serialize (100 kvs)', () => {
    sink += range.responseSerialize(resp100).length;
  }, { note: `${resp100Bytes.length} B` });
  await runTask(opts, group, 'RangeResponse deserialize (100 kvs)', () => {
    sink += range.responseDeserialize(resp100Bytes).kvs.length;
  });

  // What the server sends now: Range and Put answers encoded by hand (src/wire/kv-codec.ts).
  const hdrFields = { clusterId: 14841639068965178418n, memberId: 10276657743932975437n, revision: 100_001, raftTerm: 2 };
  const kvs1 = kvs(1);
  const hand1 = encodeRangeResponse(hdrFields, kvs1, false, 1);
  const hand100 = encodeRangeResponse(hdrFields, kvs100, true, 1000);
  const handBack = range.responseDeserialize(hand100);
  check(handBack.kvs.length === 100 && handBack.kvs[99].value.equals(value) && Number(handBack.count) === 1000 && handBack.more, 'hand-encoded RangeResponse decodes');
  check(range.responseDeserialize(hand1).kvs[0].key.equals(kvs1[0].key), 'hand-encoded RangeResponse (1 kv) decodes');
  await runTask(opts, group, 'encodeRangeResponse by hand (1 kv)', () => {
    for (let j = 0; j < P; j++) sink += encodeRangeResponse(hdrFields, kvs1, false, 1).length;
  }, { ops: P, note: `${hand1.length} B; the server's Range answer` });
  await runTask(opts, group, 'encodeRangeResponse by hand (100 kvs)', () => {
    sink += encodeRangeResponse(hdrFields, kvs100, true, 1000).length;
  }, { note: `${hand100.length} B` });
  const putRespBytes = encodePutResponse(hdrFields, undefined);
  check(Number(svc.Put.responseDeserialize(putRespBytes).header.revision) === 100_001, 'hand-encoded PutResponse decodes');
  await runTask(opts, group, 'encodePutResponse by hand', () => {
    for (let j = 0; j < P; j++) sink += encodePutResponse(hdrFields, undefined).length;
  }, { ops: P, note: `${putRespBytes.length} B; the server's Put answer` });
  const rangeWire = { key: Buffer.from('k0000000000042'), rangeEnd: Buffer.from('k0000000000043'), limit: 100 };
  await runTask(opts, group, 'RangeRequest serialize', () => {
    for (let j = 0; j < P; j++) sink += range.requestSerialize(rangeWire).length;
  }, { ops: P, note: `${rangeReqBytes.length} B; what a proto-loader client does` });
}

/** The floor under any durable commit on os.tmpdir(): one 4 KiB write + fdatasync. */
async function benchDisk(opts: Options): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'plinth-bench-disk-'));
  tempDirs.add(dir);
  const fd = openSync(join(dir, 'f'), 'w');
  try {
    const page = randomBytes(4096);
    let off = 0;
    await runTask(opts, 'disk', 'write 4 KiB + fdatasync', () => {
      writeSync(fd, page, 0, page.length, off);
      off = (off + 4096) % (4096 * 256);
      fdatasyncSync(fd);
    }, { note: `baseline for a durable commit on ${os.tmpdir()}` });
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---------------------------------------------------------------------------------------------------
// Output

function fmtCount(n: number): string {
  return n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

function fmtOps(x: number): string {
  if (!Number.isFinite(x)) return '∞';
  return Math.round(x).toLocaleString('en-US');
}

function fmtUs(x: number): string {
  if (x >= 1000) return x.toFixed(0);
  if (x >= 100) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function table(): string {
  const head = ['Group', 'Task', 'ops/s', 'mean µs', 'p50 µs', 'p99 µs', 'ops/iter', 'samples', 'Notes'];
  const body = rows.map((r) => [
    r.group, r.task, fmtOps(r.opsPerSec), fmtUs(r.meanUs), fmtUs(r.p50Us), fmtUs(r.p99Us), String(r.opsPerIter), String(r.samples), r.note,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const numeric = new Set([2, 3, 4, 5, 6, 7]);
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (numeric.has(i) ? c.padStart(width[i]) : c.padEnd(width[i]))).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (numeric.has(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

function mountOf(path: string): string {
  try {
    let best: string[] | undefined;
    for (const l of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const f = l.split(' ');
      if (f.length < 3) continue;
      const mnt = f[1];
      if ((path === mnt || path.startsWith(mnt.endsWith('/') ? mnt : mnt + '/')) && (!best || mnt.length > best[1].length)) best = f;
    }
    return best ? `${best[0]} on ${best[1]} (${best[2]})` : 'unknown';
  } catch {
    return 'unknown';
  }
}

const loadAvg = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' / ');
const loadAtStart = loadAvg();

function machine(): string[] {
  const cpus = os.cpus();
  return [
    `- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} (nproc ${os.availableParallelism?.() ?? cpus.length})`,
    `- Memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${os.type()} ${os.release()} ${os.arch()}`,
    `- Node ${process.version}; tmpdir ${os.tmpdir()}: ${mountOf(os.tmpdir())}`,
    `- Load average (1/5/15 min) at start ${loadAtStart}, at end ${loadAvg()}`,
  ];
}

function projectRoot(): string {
  let d = __dirname;
  for (;;) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'bench'))) return d;
    const up = dirname(d);
    if (up === d) return resolve('.');
    d = up;
  }
}

function writeResults(opts: Options, argv: string[], elapsedMs: number): string {
  const all = opts.engines.length === ENGINE_KINDS.length && opts.internals;
  const label = all ? 'all' : opts.engines.length > 0 ? opts.engines.join('-') : 'internals';
  const dir = join(projectRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `micro-${label}${opts.quick ? '-quick' : ''}.md`);
  const md = [
    `# Plinth micro-benchmarks (${label}${opts.quick ? ', quick' : ''})`,
    '',
    `\`node dist/bench/micro.js${argv.length ? ' ' + argv.join(' ') : ''}\` — ${new Date().toISOString()}, ${(elapsedMs / 1000).toFixed(1)} s`,
    '',
    ...machine(),
    `- tinybench ${opts.timeMs} ms per task (warmup ${opts.warmupMs} ms), ${fmtCount(opts.preload)} keys preloaded per engine, ` +
      `${KEY_BYTES} B keys, ${VALUE_BYTES} B values`,
    '',
    'ops/s = ops/iter ÷ mean. mean, p50 and p99 are per operation; where ops/iter > 1 one sample times a whole ' +
      'batch, so p50/p99 are those of batch means (batch latency ÷ ops/iter). A mean far above p50 means a few ' +
      'samples were stalled (GC, or CPU taken by other processes: see the load average). Disk engines fsync on every commit.',
    '',
    table(),
    '',
  ].join('\n');
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, md);
  renameSync(tmp, file);
  return file;
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseArgs(argv);
  tinybench = await loadTinybench();
  const started = Date.now();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      removeTempDirs();
      process.exit(130);
    });
  }
  try {
    process.stderr.write(`plinth micro-bench: engines [${opts.engines.join(', ')}], internals ${opts.internals}, ${opts.timeMs} ms/task\n`);
    if (opts.engines.some((e) => e !== 'memory')) await benchDisk(opts);
    for (const kind of opts.engines) await benchEngine(opts, kind);
    if (opts.internals) {
      for (const size of opts.indexSizes) await benchIndex(opts, size);
      await benchEncoding(opts);
      await benchProto(opts);
    }
  } finally {
    removeTempDirs();
  }
  const elapsed = Date.now() - started;
  const file = writeResults(opts, argv, elapsed);
  console.log();
  console.log(machine().join('\n'));
  console.log();
  console.log(table());
  console.log();
  console.log(`written to ${file} (${(elapsed / 1000).toFixed(1)} s; sink ${sink % 10})`);
}

main().catch((err) => {
  removeTempDirs();
  console.error(err);
  process.exit(1);
});
