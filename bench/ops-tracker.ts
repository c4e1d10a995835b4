// Per-call cost of the ops tracker's hot-path methods (issue #19), and the cost of a report at 1M keys.
//
//   npm run build && node --expose-gc dist/bench/ops-tracker.js [--calls N] [--keys N]
//
// Each case runs N calls over keys drawn (Zipf s=1) from a pre-built array of kube keys, so that making
// keys is not measured; the baseline runs the same loop calling an empty function. The figure reported is
// ns per call above that baseline, median of 5 rounds. Scavenges (young-generation GCs) per million calls
// say how much a call allocates (one scavenge per ~16 MB allocated at Node 20's default semi-space).
// It also measures: a report's walk over 1M live keys (generated in key order) and the memory the two
// per-key fields (size, access epoch) add to a key-index-like object at 1M keys.

import { PerformanceObserver } from 'node:perf_hooks';
import { NO_CLIENT, OpsTracker } from '../src/ops/tracker';
import type { LiveKeySource } from '../src/ops/tracker';
import type { TxnLike } from '../src/ops/layout';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const CALLS = arg('--calls', 2_000_000);
const KEYS = arg('--keys', 100_000);
const gc = (globalThis as { gc?: () => void }).gc;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rnd = mulberry32(7);
const RES = ['pods', 'configmaps', 'events', 'secrets', 'leases', 'cilium.io/ciliumendpoints'];
const keys: string[] = [];
for (let i = 0; i < KEYS; i++) {
  keys.push(Buffer.from(`/registry/${RES[i % RES.length]}/ns-${i % 500}/object-${i}-${Math.floor(rnd() * 1e6)}`, 'latin1').toString('latin1'));
}
// Zipf(1) draw sequence, precomputed.
const cdf = new Float64Array(KEYS);
let sum = 0;
for (let k = 0; k < KEYS; k++) cdf[k] = sum += 1 / (k + 1);
const SEQ = 1 << 20;
const seq = new Int32Array(SEQ);
for (let i = 0; i < SEQ; i++) {
  const u = rnd() * sum;
  let lo = 0;
  let hi = KEYS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  seq[i] = lo;
}
const txns: TxnLike[] = keys.slice(0, 4096).map((k) => {
  const key = Buffer.from(k, 'latin1');
  return {
    compare: [{ result: 0, target: 2, key, number: 5n }],
    success: [{ put: { key } }],
    failure: [{ range: { key, rangeEnd: Buffer.alloc(0) } }],
  };
});

let scavenges = 0;
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 1) scavenges++;
});
obs.observe({ entryTypes: ['gc'] });

let sink = 0;
function noop(key: string, a: boolean, b: boolean, c: number): void {
  sink += key.length + (a ? 1 : 0) + (b ? 1 : 0) + c;
}

type Case = (n: number) => void;
function measure(fn: Case): { ns: number; scav: number } {
  fn(50_000); // warm up
  const rounds: number[] = [];
  let scav = 0;
  for (let r = 0; r < 5; r++) {
    gc?.();
    const s0 = scavenges;
    const t0 = process.hrtime.bigint();
    fn(CALLS);
    rounds.push(Number(process.hrtime.bigint() - t0) / CALLS);
    scav += scavenges - s0;
  }
  rounds.sort((a, b) => a - b);
  return { ns: rounds[2], scav: scav / 5 };
}

async function main(): Promise<void> {
  const client = (t: OpsTracker) => t.clientConnected('10.1.2.3');
  const fresh = (tickPerRequest = true) => new OpsTracker({ tickPerRequest });
  const results: [string, { ns: number; scav: number }][] = [];
  const base = measure((n) => {
    for (let i = 0; i < n; i++) noop(keys[seq[i & (SEQ - 1)]], false, false, 1);
  });
  results.push(['baseline (empty call)', base]);
  const cases: [string, (t: OpsTracker, c: number) => Case][] = [
    ['onRange get', (t, c) => (n) => { for (let i = 0; i < n; i++) t.onRange(keys[seq[i & (SEQ - 1)]], false, false, c); }],
    ['onRange list (prefix key)', (t, c) => (n) => { for (let i = 0; i < n; i++) t.onRange('/registry/pods/ns-1/', true, false, c); }],
    ['onPut', (t, c) => (n) => { for (let i = 0; i < n; i++) t.onPut(keys[seq[i & (SEQ - 1)]], c); }],
    ['keyPut (overwrite)', (t) => (n) => { for (let i = 0; i < n; i++) t.keyPut(keys[seq[i & (SEQ - 1)]], 200, 190); }],
    ['onPut + keyPut (a put)', (t, c) => (n) => {
      for (let i = 0; i < n; i++) {
        const k = keys[seq[i & (SEQ - 1)]];
        t.onPut(k, c);
        t.keyPut(k, 200, 190);
      }
    }],
    ['onTxn kube update (Buffer keys)', (t, c) => (n) => { for (let i = 0; i < n; i++) t.onTxn(txns[seq[i & (SEQ - 1)] & 4095], true, c); }],
    ['onWatchCreate', (t, c) => (n) => { for (let i = 0; i < n; i++) t.onWatchCreate(keys[seq[i & (SEQ - 1)]], false, c); }],
  ];
  for (const tick of [true, false]) {
    for (const [name, mk] of cases) {
      const t = fresh(tick);
      const c = client(t);
      // fill the key state as a long-running server's
      for (let i = 0; i < KEYS; i++) t.keyPut(keys[i], 190, -1);
      results.push([`${name}${tick ? '' : ' (tickPerRequest false)'}`, measure(mk(t, c))]);
      if (!tick && name !== 'onRange get') break; // the clock read is the only difference: one case is enough
    }
  }
  console.log(`ops tracker per-call cost: ${CALLS} calls per round, ${KEYS} keys (Zipf s=1), median of 5 rounds, Node ${process.version}`);
  console.log('| case | ns/call | above baseline | scavenges per 1M calls |');
  console.log('|---|---:|---:|---:|');
  for (const [name, r] of results) {
    console.log(`| ${name} | ${r.ns.toFixed(1)} | ${(r.ns - base.ns).toFixed(1)} | ${((r.scav / CALLS) * 1e6).toFixed(2)} |`);
  }

  // A report's walk at 1M keys, in key order, generated on the fly.
  const N = 1_000_000;
  const pad = (i: number, w: number) => String(i).padStart(w, '0');
  const keyAt = (i: number) => `/registry/${RES[Math.floor(i / 200_000)] ?? 'x'}/ns-${pad(Math.floor(i / 1000) % 200, 3)}/object-${pad(i, 7)}`;
  const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => (keyAt(a) < keyAt(b) ? -1 : 1));
  const sorted = order.map(keyAt);
  let idx = 0;
  const walk: LiveKeySource = {
    scan(after, max, fn) {
      if (after === undefined) idx = 0;
      let last: string | undefined;
      for (let n = 0; n < max && idx < sorted.length; n++, idx++) {
        last = sorted[idx];
        fn(last, 100 + (idx % 997), idx % 3 === 0 ? 0 : 1);
      }
      return last;
    },
  };
  const t = new OpsTracker();
  const r0 = process.hrtime.bigint();
  const rep = t.report({ top: 10, coldAfterSeconds: 0 }, walk);
  const walkMs = Number(process.hrtime.bigint() - r0) / 1e6;
  const s0 = process.hrtime.bigint();
  const job = t.startReport({ top: 10, coldAfterSeconds: 0 }, walk);
  let stepMax = 0;
  for (;;) {
    const a = process.hrtime.bigint();
    const done = job.step(10_000);
    stepMax = Math.max(stepMax, Number(process.hrtime.bigint() - a) / 1e6);
    if (done) break;
  }
  const stepsMs = Number(process.hrtime.bigint() - s0) / 1e6;
  console.log(`\nreport over ${rep.scannedKeys} live keys (longest + cold, ${rep.cold.length} cold rows): ${walkMs.toFixed(0)} ms at once; in steps of 10,000 keys ${stepsMs.toFixed(0)} ms, longest step ${stepMax.toFixed(1)} ms`);

  // The two per-key fields at 1M keys, in an object shaped like mvcc's KeyIndex.
  class Plain {
    modMain = 0;
    modSub = 0;
    gens: unknown[] = [];
    live = false;
  }
  class WithOps {
    modMain = 0;
    modSub = 0;
    gens: unknown[] = [];
    live = false;
    opsSize = 0;
    opsEpoch = 0;
  }
  const heapFor = (make: () => object) => {
    gc?.();
    const h0 = process.memoryUsage().heapUsed;
    const a: object[] = new Array(N);
    for (let i = 0; i < N; i++) a[i] = make();
    gc?.();
    const h = process.memoryUsage().heapUsed - h0;
    sink += a.length;
    return h;
  };
  const plain = heapFor(() => new Plain());
  const withOps = heapFor(() => {
    const o = new WithOps();
    o.opsSize = 300;
    o.opsEpoch = 12345;
    return o;
  });
  console.log(`key-index-like object at 1M keys: ${(plain / N).toFixed(1)} B/key without, ${(withOps / N).toFixed(1)} B/key with the two fields (+${((withOps - plain) / 1e6).toFixed(1)} MB)`);
  obs.disconnect();
  if (sink === 42) console.log('');
}

void main();
