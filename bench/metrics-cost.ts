// The per-put cost of the metric updates one Put makes (issue #17): Plinth's own registry (src/metrics.ts)
// against prom-client, the ecosystem's Prometheus client, each used as well as it allows.
//
//   npm run build && node dist/bench/metrics-cost.js [--time MS]
//
// The updates one gRPC Put makes in Plinth, as etcd makes them:
//   go-grpc-prometheus: grpc_server_started_total, _msg_received_total, _msg_sent_total, _handled_total
//     (4 labelled counters: grpc_type, grpc_service, grpc_method [, grpc_code]);
//   etcd_network_client_grpc_received_bytes_total and _sent_bytes_total (2 counters, no labels);
//   etcd_mvcc_put_total and etcd_debugging_mvcc_put_total (2 counters), etcd_debugging_mvcc_total_put_size_in_bytes
//     (a gauge, added to);
//   with --metrics extensive also grpc_server_handling_seconds (a labelled histogram, 12 buckets).
// The WAL fsync and backend commit histograms are observed once per batch of puts, not per put; they are
// left out (they would add the same small figure to both).
//
// Variants: own registry with series found once (what src/ uses); prom-client with label-bound children
// cached (labels() called once: the best prom-client allows); prom-client with labels passed per call
// (the common way to use it). Each call of a task makes the updates of 1000 puts; the table gives ns per put
// and that as a share of a put's server CPU (33 µs: bench/results/compare.md, put-100c, Plinth "server CPU
// ms/1k req"; pass --put-us to use another figure). The result is written to bench/results/metrics/cost.md.

import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import type { Bench as BenchClass, Task } from 'tinybench';
import * as prom from 'prom-client';
import { Registry, exponentialBuckets } from '../src/metrics';

type TinybenchModule = typeof import('tinybench');
async function loadTinybench(): Promise<TinybenchModule> {
  const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<TinybenchModule>;
  return dynamicImport('tinybench');
}

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const TIME_MS = arg('--time', 1000);
const PUT_US = arg('--put-us', 33);
const N = 1000; // puts per task call

const GRPC = ['grpc_type', 'grpc_service', 'grpc_method'];
const PUT_LABELS = { grpc_type: 'unary', grpc_service: 'etcdserverpb.KV', grpc_method: 'Put' };
const PUT_VALUES = ['unary', 'etcdserverpb.KV', 'Put'];
const HANDLING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
let sink = 0;

/** Own registry: series found once (src/api/http/grpc-metrics.ts's MethodSeries). */
function ownVariant(extensive: boolean): () => void {
  const r = new Registry();
  const started = r.counter('grpc_server_started_total', 'h', GRPC).series(PUT_LABELS);
  const received = r.counter('grpc_server_msg_received_total', 'h', GRPC).series(PUT_LABELS);
  const sent = r.counter('grpc_server_msg_sent_total', 'h', GRPC).series(PUT_LABELS);
  const handledOk = r.counter('grpc_server_handled_total', 'h', ['grpc_code', ...GRPC]).series({ grpc_code: 'OK', ...PUT_LABELS });
  const rxBytes = r.counter('etcd_network_client_grpc_received_bytes_total', 'h').series();
  const txBytes = r.counter('etcd_network_client_grpc_sent_bytes_total', 'h').series();
  const put = r.counter('etcd_mvcc_put_total', 'h').series();
  const putDebug = r.counter('etcd_debugging_mvcc_put_total', 'h').series();
  const putSize = r.gauge('etcd_debugging_mvcc_total_put_size_in_bytes', 'h').series();
  const handling = r.histogram('grpc_server_handling_seconds', 'h', HANDLING_BUCKETS, GRPC).child(PUT_LABELS);
  return () => {
    for (let i = 0; i < N; i++) {
      const t0 = extensive ? process.hrtime.bigint() : 0n;
      started.v++;
      received.v++;
      rxBytes.v += 300;
      put.v++;
      putDebug.v++;
      putSize.v += 256;
      sent.v++;
      txBytes.v += 30;
      handledOk.v++;
      if (extensive) handling.observeSince(t0);
    }
    sink += put.v;
  };
}

/** prom-client; bound: label-bound children cached; otherwise labels passed on every call. */
function promVariant(extensive: boolean, bound: boolean): () => void {
  const r = new prom.Registry();
  const c = (name: string, labelNames: string[] = []) => new prom.Counter({ name, help: 'h', labelNames, registers: [r] });
  const started = c('grpc_server_started_total', GRPC);
  const received = c('grpc_server_msg_received_total', GRPC);
  const sent = c('grpc_server_msg_sent_total', GRPC);
  const handled = c('grpc_server_handled_total', ['grpc_code', ...GRPC]);
  const rxBytes = c('etcd_network_client_grpc_received_bytes_total');
  const txBytes = c('etcd_network_client_grpc_sent_bytes_total');
  const put = c('etcd_mvcc_put_total');
  const putDebug = c('etcd_debugging_mvcc_put_total');
  const putSize = new prom.Gauge({ name: 'etcd_debugging_mvcc_total_put_size_in_bytes', help: 'h', registers: [r] });
  const handling = new prom.Histogram({ name: 'grpc_server_handling_seconds', help: 'h', labelNames: GRPC, buckets: HANDLING_BUCKETS, registers: [r] });
  if (bound) {
    const s = started.labels(...PUT_VALUES);
    const rc = received.labels(...PUT_VALUES);
    const se = sent.labels(...PUT_VALUES);
    const h = handled.labels('OK', ...PUT_VALUES);
    const hs = handling.labels(...PUT_VALUES);
    return () => {
      for (let i = 0; i < N; i++) {
        const t0 = extensive ? process.hrtime.bigint() : 0n;
        s.inc();
        rc.inc();
        rxBytes.inc(300);
        put.inc();
        putDebug.inc();
        putSize.inc(256);
        se.inc();
        txBytes.inc(30);
        h.inc();
        if (extensive) hs.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      sink += N;
    };
  }
  const ok = { grpc_code: 'OK', ...PUT_LABELS };
  return () => {
    for (let i = 0; i < N; i++) {
      const t0 = extensive ? process.hrtime.bigint() : 0n;
      started.inc(PUT_LABELS);
      received.inc(PUT_LABELS);
      rxBytes.inc(300);
      put.inc();
      putDebug.inc();
      putSize.inc(256);
      sent.inc(PUT_LABELS);
      txBytes.inc(30);
      handled.inc(ok);
      if (extensive) handling.observe(PUT_LABELS, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    sink += N;
  };
}

/** The rule of issue #17: prom-client unless it costs the put path more than 1 %. */
function decision(rows: { name: string; ns: number }[], putNs: number): string {
  const best = Math.min(...rows.filter((r) => r.name.startsWith('prom-client') && r.name.endsWith('basic')).map((r) => r.ns));
  const own = rows.find((r) => r.name === 'own registry, basic')!.ns;
  const share = (100 * best) / putNs;
  return share > 1
    ? `Decision: prom-client at its best costs a put ${best.toFixed(0)} ns (${share.toFixed(1)} % of its CPU, over the 1 % allowed); ` +
      `the own registry costs ${own.toFixed(0)} ns. Plinth keeps its own registry on the request path (prom-client's ` +
      'label-bound children hash their label set on every inc; its unlabelled counters are cheap, but four of the ' +
      "put's updates are labelled), and uses prom-client for the Node.js metrics, read at scrape time."
    : `Decision: prom-client costs a put ${best.toFixed(0)} ns (${share.toFixed(2)} % of its CPU), within the 1 % allowed.`;
}

async function main(): Promise<void> {
  const tb = await loadTinybench();
  const tasks: [string, () => void][] = [
    ['own registry, basic', ownVariant(false)],
    ['prom-client children cached, basic', promVariant(false, true)],
    ['prom-client labels per call, basic', promVariant(false, false)],
    ['own registry, extensive', ownVariant(true)],
    ['prom-client children cached, extensive', promVariant(true, true)],
    ['prom-client labels per call, extensive', promVariant(true, false)],
  ];
  const rows: { name: string; ns: number; rme: number }[] = [];
  for (const [name, fn] of tasks) {
    const bench: BenchClass = new tb.Bench({ time: TIME_MS, warmupTime: 200, timestampProvider: 'hrtimeNow', throws: true });
    bench.add(name, fn);
    const [task] = (await bench.run()) as Task[];
    const r = task.result as unknown as { latency: { mean: number; rme: number } };
    rows.push({ name, ns: (r.latency.mean * 1e6) / N, rme: r.latency.rme });
  }
  void exponentialBuckets;
  const putNs = PUT_US * 1000;
  const lines = [
    '# Metric updates per Put: own registry vs prom-client (issue #17)',
    '',
    'Generated by `npm run build && node dist/bench/metrics-cost.js` (`bench/metrics-cost.ts`).',
    '',
    `- machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), Node ${process.version}, prom-client ${require('prom-client/package.json').version}`,
    `- date: ${new Date().toISOString()}; tinybench ${TIME_MS} ms per task, ${N} puts' updates per call`,
    `- a put's server CPU: ${PUT_US} µs (bench/results/compare.md, put-100c, Plinth, server CPU ms/1k req)`,
    '',
    '| variant | ns per put | ± % | share of a put\'s CPU |',
    '|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.ns.toFixed(1)} | ${r.rme.toFixed(1)} | ${((100 * r.ns) / putNs).toFixed(2)} % |`),
    '',
    decision(rows, putNs),
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(text + '\n');
  const dir = resolve(__dirname, '..', '..', 'bench', 'results', 'metrics');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cost.md'), text);
  if (sink === -1) console.log(sink);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
