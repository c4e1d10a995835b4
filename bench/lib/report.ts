// Rendering of bench:compare's results: Markdown tables (medians over rounds, Plinth/etcd ratios) and one
// hand-written SVG bar chart of the ratios. Pure functions of the result data (bench/results/compare.json
// holds the same data, so a report can be rendered again without re-running).

import { median } from './stats';
import type { MachineInfo } from './machine';

export type Kind = 'etcd' | 'plinth';
export type Metric = 'rps' | 'p50' | 'p99';

export interface RunMetrics {
  ok: boolean;
  /** why a run failed or what to know about it */
  note?: string;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  count: number;
  errors: number;
  /** VmHWM at the end of the run (a fresh server per run: the run's peak RSS), MB */
  hwmMb: number;
  /** server CPU ms per 1000 successful requests */
  cpuMsPer1k: number;
  othersPct: number;
  /** cluster runs (--cluster N): each member, in name order (hwmMb above is then their sum, cpuMsPer1k the sum's) */
  members?: MemberRun[];
  cluster?: ClusterRunInfo;
}

export interface MemberRun {
  name: string;
  /** its role once the run was over */
  role: 'leader' | 'follower';
  /** this member's CPU ms per 1000 successful requests */
  cpuMsPer1k: number;
  /** VmHWM at the end of the run (fresh cluster per run: the run's peak) and VmRSS then, MB */
  hwmMb: number;
  rssMb: number;
}

export interface ClusterRunInfo {
  size: number;
  /** ms from spawning the members to an agreed leader and a linearizable read answered by every member */
  readyMs: number;
  /** leader's name and raft term before and after the load (a change means an election under load) */
  leaderBefore: string;
  leaderAfter: string;
  termBefore: number;
  termAfter: number;
}

export interface RowResult {
  id: string;
  title: string;
  metric: Metric;
  target: boolean;
  driver: 'go' | 'ts';
  /** the load command, with PORT for the server's port */
  command: string;
  runs: Record<Kind, RunMetrics[]>;
  /** false when the tool's latencies mean nothing for this row (watch: events are stamped as received) */
  latency?: boolean;
}

export interface ScalePoint {
  size: number;
  kind: Kind;
  preloadSec: number;
  rssAfterPreloadMb: number;
  put?: RunMetrics;
  rangeS?: RunMetrics;
  rangeL1?: RunMetrics;
  hwmEndMb: number;
  note?: string;
}

export interface ListPoint {
  size: number;
  kind: Kind;
  /** 'paginated' (pages of `limit`) or 'unpaginated' (one range of `keys` keys) */
  mode: 'paginated' | 'unpaginated';
  limit: number;
  keys: number;
  pages: number;
  totalSec: number;
  pageP50: number;
  /** slowest page, ms */
  pageMax: number;
  bytes: number;
  rssBeforeMb: number;
  rssMaxMb: number;
  hwmBeforeMb: number;
  hwmAfterMb: number;
  /** seconds to restart the server on this data before the listing */
  restartSec: number;
  ok: boolean;
  note?: string;
}

export interface CompareResult {
  command: string;
  machine: MachineInfo;
  baseDir: string;
  rounds: number;
  quick: boolean;
  driverNote: string;
  elapsedSec: number;
  rows: RowResult[];
  scaling: ScalePoint[];
  listAll: ListPoint[];
  scaleCommands: string[];
  discardedNote?: string;
  /** set for a --tls run: how the servers served https and how the clients dialed (absent: plaintext) */
  tls?: string;
}

export const METRIC_LABEL: Record<Metric, string> = { rps: 'throughput (req/s)', p50: 'p50 latency (ms)', p99: 'p99 latency (ms)' };
/** true when a larger value is better for that metric */
export const HIGHER_IS_BETTER: Record<Metric, boolean> = { rps: true, p50: false, p99: false };

export function medianOf(runs: readonly RunMetrics[], field: keyof RunMetrics): number {
  return median(runs.filter((r) => r.ok).map((r) => r[field] as number));
}

/** Plinth/etcd of the row's headline metric, from the medians (NaN when either side has no good run). */
export function rowRatio(row: RowResult): number {
  const e = medianOf(row.runs.etcd, row.metric);
  const p = medianOf(row.runs.plinth, row.metric);
  return e > 0 && p >= 0 ? p / e : NaN;
}

/** How much better Plinth is (>1) or worse (<1): the ratio for throughput, its inverse for latency. */
export function advantage(row: RowResult): number {
  const r = rowRatio(row);
  return HIGHER_IS_BETTER[row.metric] ? r : 1 / r;
}

export function fmt(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return '–';
  const d = digits ?? (Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const fmtRatio = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : '–');

function metricValue(runs: readonly RunMetrics[], m: Metric): string {
  const v = medianOf(runs, m);
  return m === 'rps' ? fmt(v, 0) : fmt(v);
}

export const sizeLabel = (n: number): string => (n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

export function headlineTable(rows: readonly RowResult[]): string {
  const out = [
    '| workload | driver | metric | etcd | Plinth | **Plinth/etcd** | better |',
    '|---|---|---|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const adv = advantage(r);
    const better = !Number.isFinite(adv) ? '' : adv >= 1.05 ? 'Plinth' : adv <= 0.95 ? 'etcd' : '≈';
    out.push(
      `| ${r.target ? '' : '(extra) '}${r.title} | ${r.driver} | ${METRIC_LABEL[r.metric]} | ${metricValue(r.runs.etcd, r.metric)} | ${metricValue(r.runs.plinth, r.metric)} | **${fmtRatio(rowRatio(r))}** | ${better} |`,
    );
  }
  return out.join('\n');
}

export function detailTable(rows: readonly RowResult[]): string {
  const out = [
    '| workload | server | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | peak RSS MB | server CPU ms/1k req | good runs | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    for (const k of ['etcd', 'plinth'] as const) {
      const runs = r.runs[k];
      const m = (f: keyof RunMetrics) => (r.latency === false && /^(p\d+|max)$/.test(f) ? NaN : medianOf(runs, f));
      const errs = runs.reduce((a, x) => a + x.errors, 0);
      out.push(
        `| ${r.id} | ${k === 'etcd' ? 'etcd' : 'Plinth'} | ${fmt(m('rps'), 0)} | ${fmt(m('p50'))} | ${fmt(m('p90'))} | ${fmt(m('p99'))} | ${fmt(m('p999'))} | ${fmt(m('max'))} | ${fmt(m('hwmMb'), 0)} | ${fmt(m('cpuMsPer1k'), 0)} | ${runs.filter((x) => x.ok).length}/${runs.length} | ${errs} |`,
      );
    }
  }
  return out.join('\n');
}

export function perRoundLines(rows: readonly RowResult[]): string {
  return rows
    .map((r) => {
      const show = (runs: RunMetrics[]) =>
        runs.map((x) => (x.ok ? `${r.metric === 'rps' ? fmt(x.rps, 0) : fmt(x[r.metric])} [${fmt(x.othersPct, 0)}%]` : `failed (${x.note ?? '?'})`)).join(', ');
      return `- ${r.id} (${METRIC_LABEL[r.metric]}): etcd ${show(r.runs.etcd)} | Plinth ${show(r.runs.plinth)}`;
    })
    .join('\n');
}

export function scalingTable(points: readonly ScalePoint[]): string {
  const sizes = [...new Set(points.map((p) => p.size))].sort((a, b) => a - b);
  const get = (size: number, kind: Kind) => points.find((p) => p.size === size && p.kind === kind);
  const v = (p: ScalePoint | undefined, f: (p: ScalePoint) => number | undefined) => (p ? (f(p) ?? NaN) : NaN);
  const out = [
    '| keys | server | preload s | RSS after preload MB | put 100c req/s | put p99 ms | range 1 key (s, 100c) req/s | range p99 ms | range 1 key (l, 1 client) p50 ms | peak RSS MB |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const ratio = ['| | **Plinth/etcd** | | | | | | | | |'];
  for (const size of sizes) {
    for (const kind of ['etcd', 'plinth'] as const) {
      const p = get(size, kind);
      out.push(
        `| ${sizeLabel(size)} | ${kind === 'etcd' ? 'etcd' : 'Plinth'} | ${fmt(v(p, (x) => x.preloadSec), 1)} | ${fmt(v(p, (x) => x.rssAfterPreloadMb), 0)} | ${fmt(v(p, (x) => x.put?.ok ? x.put.rps : NaN), 0)} | ${fmt(v(p, (x) => x.put?.ok ? x.put.p99 : NaN))} | ${fmt(v(p, (x) => x.rangeS?.ok ? x.rangeS.rps : NaN), 0)} | ${fmt(v(p, (x) => x.rangeS?.ok ? x.rangeS.p99 : NaN))} | ${fmt(v(p, (x) => x.rangeL1?.ok ? x.rangeL1.p50 : NaN))} | ${fmt(v(p, (x) => x.hwmEndMb), 0)} |`,
      );
    }
    const e = get(size, 'etcd');
    const p = get(size, 'plinth');
    const r = (f: (x: ScalePoint) => number | undefined) => fmtRatio(v(p, f) / v(e, f));
    out.push(
      `| ${sizeLabel(size)} | **Plinth/etcd** | ${r((x) => x.preloadSec)} | ${r((x) => x.rssAfterPreloadMb)} | **${r((x) => (x.put?.ok ? x.put.rps : NaN))}** | ${r((x) => (x.put?.ok ? x.put.p99 : NaN))} | **${r((x) => (x.rangeS?.ok ? x.rangeS.rps : NaN))}** | ${r((x) => (x.rangeS?.ok ? x.rangeS.p99 : NaN))} | ${r((x) => (x.rangeL1?.ok ? x.rangeL1.p50 : NaN))} | ${r((x) => x.hwmEndMb)} |`,
    );
  }
  void ratio;
  return out.join('\n');
}

export function listAllTable(points: readonly ListPoint[]): string {
  const out = [
    '| keys in prefix | listing | server | total s | pages | keys read | MB read | page p50 ms | slowest page ms | restart s | RSS before MB | max RSS during MB | **RSS growth MB** | VmHWM before → after MB |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const keyOf = (p: ListPoint) => `${p.size}/${p.mode}`;
  const groups = [...new Set(points.map(keyOf))];
  for (const g of groups) {
    const ps = points.filter((p) => keyOf(p) === g);
    for (const p of ps) {
      const listing = p.mode === 'paginated' ? `pages of ${p.limit}` : `one range of ${sizeLabel(p.keys)} keys`;
      out.push(
        `| ${sizeLabel(p.size)} | ${listing} | ${p.kind === 'etcd' ? 'etcd' : 'Plinth'} | ${p.ok ? fmt(p.totalSec, 2) : `failed: ${p.note ?? '?'}`} | ${p.pages} | ${fmt(p.keys, 0)} | ${fmt(p.bytes / 2 ** 20, 1)} | ${p.pages > 1 ? fmt(p.pageP50) : '–'} | ${fmt(p.pageMax)} | ${fmt(p.restartSec, 1)} | ${fmt(p.rssBeforeMb, 0)} | ${fmt(p.rssMaxMb, 0)} | **${fmt(p.rssMaxMb - p.rssBeforeMb, 0)}** | ${fmt(p.hwmBeforeMb, 0)} → ${fmt(p.hwmAfterMb, 0)} |`,
      );
    }
    const e = ps.find((p) => p.kind === 'etcd');
    const pl = ps.find((p) => p.kind === 'plinth');
    if (e && pl && e.ok && pl.ok) {
      const gr = (p: ListPoint) => p.rssMaxMb - p.rssBeforeMb;
      out.push(`| | | **Plinth/etcd** | **${fmtRatio(pl.totalSec / e.totalSec)}** | | | | ${pl.pages > 1 ? fmtRatio(pl.pageP50 / e.pageP50) : ''} | ${fmtRatio(pl.pageMax / e.pageMax)} | ${fmtRatio(pl.restartSec / e.restartSec)} | | | **${fmtRatio(gr(pl) / gr(e))}** | |`);
    }
  }
  return out.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * Horizontal bars, one per row, on a log2 axis centred on 1: how many times better Plinth is than etcd
 * (throughput ratio, or etcd/Plinth for latency rows). Green right of 1 = Plinth better, red left = etcd better.
 */
export function ratioSvg(rows: readonly RowResult[], subtitle: string): string {
  const W = 960;
  const labelW = 430;
  const rowH = 28;
  const top = 70;
  const plotW = W - labelW - 90;
  const lo = -3;
  const hi = 3; // 1/8 .. 8
  const x = (adv: number) => labelW + ((Math.max(lo, Math.min(hi, Math.log2(adv))) - lo) / (hi - lo)) * plotW;
  const H = top + rows.length * rowH + 60;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="16" y="26" font-size="17" font-weight="bold">Plinth vs etcd: how many times better Plinth is (median of rounds)</text>`);
  parts.push(`<text x="16" y="48" fill="#555">${esc(subtitle)}</text>`);
  for (let t = lo; t <= hi; t++) {
    const xx = x(2 ** t);
    parts.push(`<line x1="${xx.toFixed(1)}" y1="${top - 8}" x2="${xx.toFixed(1)}" y2="${top + rows.length * rowH}" stroke="${t === 0 ? '#333' : '#ddd'}" stroke-width="${t === 0 ? 1.5 : 1}"/>`);
    const label = t >= 0 ? `${2 ** t}×` : `1/${2 ** -t}`;
    parts.push(`<text x="${xx.toFixed(1)}" y="${top + rows.length * rowH + 18}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  parts.push(`<text x="${x(1 / 8)}" y="${top + rows.length * rowH + 38}" fill="#b03a2e">◀ etcd better</text>`);
  parts.push(`<text x="${x(8)}" y="${top + rows.length * rowH + 38}" text-anchor="end" fill="#1e8449">Plinth better ▶</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const adv = advantage(r);
    const name = `${r.title}${r.metric === 'rps' ? '' : ` — ${r.metric}`}`;
    parts.push(`<text x="${labelW - 10}" y="${y + 18}" text-anchor="end">${esc(name.length > 58 ? `${name.slice(0, 57)}…` : name)}</text>`);
    if (!Number.isFinite(adv) || adv <= 0) {
      parts.push(`<text x="${x(1) + 6}" y="${y + 18}" fill="#888">no result</text>`);
      return;
    }
    const x0 = x(1);
    const x1 = x(adv);
    const good = adv >= 1;
    parts.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y + 5}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${rowH - 10}" fill="${good ? '#27ae60' : '#e74c3c'}" opacity="0.85"/>`);
    const ratioText = `${adv.toFixed(2)}×${r.metric === 'rps' ? '' : ' (latency)'}`;
    parts.push(`<text x="${(good ? Math.max(x1, x0) + 6 : Math.min(x1, x0) - 6).toFixed(1)}" y="${y + 18}" text-anchor="${good ? 'start' : 'end'}" fill="#222">${esc(ratioText)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function machineLines(m: MachineInfo, baseDir: string): string {
  return [
    `- machine: ${m.cores} cores (${m.cpu}), ${m.ramGiB} GiB RAM, ${m.kernel}, Node ${m.node}, etcd ${m.etcd} (Debian)`,
    `- disk: data dirs under ${m.disk}; one 4 KiB write + fdatasync there takes ${fmt(m.fsyncMs, 3)} ms (mean of 100)`,
    `- Plinth: git ${m.git}, \`node bin/plinth.js --backend lmdb\` from dist/, defaults otherwise; etcd: \`${'/usr/bin/etcd'}\`, defaults otherwise; fsync on for both, loopback only`,
    `- date: ${m.date}`,
  ].join('\n');
}
