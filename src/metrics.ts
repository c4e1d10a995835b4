// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4) that etcd's /metrics serves. Metric names follow etcd's where etcd
// has the metric, so existing dashboards work. No imports: the WAL and the backend observe into it.

type Labels = Record<string, string>;

/** Sample values as client_golang writes them: strconv.FormatFloat(v, 'g', -1, 64), e.g. 2.147483648e+09. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v === 0) return '0';
  const [mant, e] = v.toExponential().split('e'); // shortest digits, as Go's -1 precision
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric {
  /** Label names in byte order: client_golang writes a series' labels sorted by name. */
  readonly labelNames: readonly string[];
  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
  ) {
    this.labelNames = [...labelNames].sort();
  }
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  abstract samples(): string[];
  protected key(labels: Labels | undefined): string[] {
    return this.labelNames.map((n) => labels?.[n] ?? '');
  }
}

class Scalar extends Metric {
  readonly type: 'counter' | 'gauge';
  private readonly values = new Map<string, { labels: string[]; v: number }>();
  /** For gauges read at scrape time; replaces the stored values. */
  collect?: () => number | [Labels, number][];

  constructor(type: 'counter' | 'gauge', name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames);
    this.type = type;
  }

  private slot(labels?: Labels) {
    const ls = this.key(labels);
    const k = ls.join('\u0000');
    let s = this.values.get(k);
    if (!s) this.values.set(k, (s = { labels: ls, v: 0 }));
    return s;
  }

  inc(labels?: Labels, by = 1): void {
    this.slot(labels).v += by;
  }

  set(v: number, labels?: Labels): void {
    this.slot(labels).v = v;
  }

  /** The series for these labels, found once: for hot paths that count per request. */
  series(labels?: Labels): { v: number } {
    return this.slot(labels);
  }

  /** Makes the series exist with value 0 (as etcd pre-declares gRPC method series). */
  declare(labels?: Labels): void {
    this.slot(labels);
  }

  get(labels?: Labels): number {
    return this.values.get(this.key(labels).join('\u0000'))?.v ?? 0;
  }

  samples(): string[] {
    if (this.collect) {
      const out = this.collect();
      if (typeof out === 'number') return [`${this.name} ${formatValue(out)}`];
      return out.map(([l, v]) => `${this.name}${labelText(this.labelNames, this.key(l))} ${formatValue(v)}`);
    }
    return [...this.values.values()]
      .sort((a, b) => (a.labels.join('\u0000') < b.labels.join('\u0000') ? -1 : 1))
      .map((s) => `${this.name}${labelText(this.labelNames, s.labels)} ${formatValue(s.v)}`);
  }
}

export type Counter = Scalar;
export type Gauge = Scalar;

/** One series of a histogram: bucket counts (not cumulative), sum and count. */
export class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly labels: string[], private readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i]++;
        return;
      }
    }
  }

  /** Observes the seconds elapsed since t0 (process.hrtime.bigint()). */
  observeSince(t0: bigint): void {
    this.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  }
}

export class Histogram extends Metric {
  readonly type = 'histogram' as const;
  private readonly series = new Map<string, HistogramSeries>();
  private readonly plain: HistogramSeries | undefined;

  constructor(name: string, help: string, readonly buckets: readonly number[], labelNames: readonly string[] = []) {
    super(name, help, labelNames);
    // A histogram without labels is exported from the start, as client_golang's.
    if (labelNames.length === 0) this.plain = this.child();
  }

  /** The series for these labels, found once: for hot paths. */
  child(labels?: Labels): HistogramSeries {
    const ls = this.key(labels);
    const k = ls.join('\u0000');
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = new HistogramSeries(ls, this.buckets)));
    return s;
  }

  observe(v: number, labels?: Labels): void {
    (labels || !this.plain ? this.child(labels) : this.plain).observe(v);
  }

  /** Observes the seconds elapsed since t0 (process.hrtime.bigint()). */
  observeSince(t0: bigint): void {
    this.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  /** Observations so far (of the series without labels, or of all). */
  get total(): number {
    let n = 0;
    for (const s of this.series.values()) n += s.count;
    return n;
  }

  samples(): string[] {
    const out: string[] = [];
    const all = [...this.series.values()].sort((a, b) => (a.labels.join('\u0000') < b.labels.join('\u0000') ? -1 : 1));
    for (const s of all) {
      let cum = 0;
      this.buckets.forEach((b, i) => {
        cum += s.counts[i];
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', formatValue(b)])} ${cum}`);
      });
      const ls = labelText(this.labelNames, s.labels);
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', '+Inf'])} ${s.count}`,
        `${this.name}_sum${ls} ${formatValue(s.sum)}`, `${this.name}_count${ls} ${s.count}`);
    }
    return out;
  }
}

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, b = start; i < count; i++, b *= factor) out.push(Number(b.toPrecision(12)));
  return out;
}

/** One metric family as rendered: name, help, type and its sample lines. */
export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: string[];
}

function renderFamilies(fams: Family[]): string {
  let out = '';
  fams.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const f of fams) {
    if (f.samples.length === 0) continue;
    out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n${f.samples.join('\n')}\n`;
  }
  return out;
}

/** A sample line: name, labels (sorted by name, le and quantile last, as client_golang) and value. */
export function sampleLine(name: string, labels: Record<string, string | number>, value: number): string {
  const names = Object.keys(labels).filter((n) => n !== 'le' && n !== 'quantile').sort();
  if ('quantile' in labels) names.push('quantile');
  if ('le' in labels) names.push('le');
  const text = names.map((n) => `${n}="${escapeLabel(typeof labels[n] === 'number' ? formatValue(labels[n] as number) : String(labels[n]))}"`);
  return `${name}${text.length ? `{${text.join(',')}}` : ''} ${formatValue(value)}`;
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    const had = this.metrics.get(m.name);
    if (had) return had as M; // registering twice (tests, restarts in one process) shares the metric
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const c = this.add(new Scalar('counter', name, help, labelNames));
    if (labelNames.length === 0) c.declare(); // a plain counter is exported from the start, at 0
    return c;
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: Scalar['collect']): Gauge {
    const g = this.add(new Scalar('gauge', name, help, labelNames));
    if (collect) g.collect = collect;
    return g;
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames));
  }

  private readonly external: (() => Promise<Family[]>)[] = [];

  /** Adds families read at scrape time from elsewhere (prom-client's Node.js metrics); ours win a name clash. */
  addExternal(collect: () => Promise<Family[]>): void {
    this.external.push(collect);
  }

  private ownFamilies(): Family[] {
    const out: Family[] = [];
    for (const m of this.metrics.values()) {
      try {
        out.push({ name: m.name, help: m.help, type: m.type, samples: m.samples() });
      } catch {
        // a collector whose source is unavailable (e.g. an engine being swapped, a getter not there) is skipped
      }
    }
    return out;
  }

  /** The exposition text of this registry's own metrics, sorted by name as client_golang does. */
  render(): string {
    return renderFamilies(this.ownFamilies());
  }

  /** The exposition text with the external families too (what /metrics serves). */
  async renderAll(): Promise<string> {
    const fams = this.ownFamilies();
    const have = new Set(fams.map((f) => f.name));
    for (const collect of this.external) {
      let ext: Family[];
      try {
        ext = await collect();
      } catch {
        continue;
      }
      for (const f of ext) if (!have.has(f.name)) fams.push(f);
    }
    return renderFamilies(fams);
  }
}

/** The process-wide registry that /metrics serves. */
export const registry = new Registry();

/** etcd's disk histograms (wal/metrics.go, mvcc/backend/metrics.go): 1 ms .. 8 s, doubling. */
const DISK_BUCKETS = exponentialBuckets(0.001, 2, 14);

export const walFsyncSeconds = registry.histogram(
  'etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', DISK_BUCKETS);
export const backendCommitSeconds = registry.histogram(
  'etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', DISK_BUCKETS);

/** etcd_disk_wal_write_bytes_total: a gauge in etcd 3.4 (wal/metrics.go), bytes the WAL wrote. */
export const walWriteBytes = registry.gauge('etcd_disk_wal_write_bytes_total', 'Total number of bytes written in WAL.').series();
export const backendDefragSeconds = registry.histogram('etcd_disk_backend_defrag_duration_seconds',
  'The latency distribution of backend defragmentation.', exponentialBuckets(0.1, 2, 13));
export const backendSnapshotSeconds = registry.histogram('etcd_disk_backend_snapshot_duration_seconds',
  'The latency distribution of backend snapshots.', exponentialBuckets(0.01, 2, 17));
/** 1 while a defragmentation runs. */
export const defragInflight = registry.gauge('etcd_disk_defrag_inflight', 'Whether or not defrag is active on the member. 1 means active, 0 means not.').series();
export const hashSeconds = registry.histogram('etcd_mvcc_hash_duration_seconds',
  'The latency distribution of storage hash operation.', exponentialBuckets(0.01, 2, 15));
export const hashRevSeconds = registry.histogram('etcd_mvcc_hash_rev_duration_seconds',
  'The latency distribution of storage hash by revision operation.', exponentialBuckets(0.01, 2, 15));

/** etcd's lease metrics (lease/metrics.go, etcdserver/metrics.go), bumped by the lessor. */
export interface LeaseMetrics {
  granted: { v: number };
  renewed: { v: number };
  revoked: { v: number };
  /** etcd_debugging_server_lease_expired_total: leases revoked because they expired. */
  expired: { v: number };
  /** TTLs granted, in seconds. */
  ttl: HistogramSeries;
}

/** Registers etcd's lease metrics (once; the owner of the leases calls it and bumps what it returns). */
export function registerLeaseMetrics(reg: Registry = registry): LeaseMetrics {
  return {
    granted: reg.counter('etcd_debugging_lease_granted_total', 'The total number of granted leases.').series(),
    renewed: reg.counter('etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.').series(),
    revoked: reg.counter('etcd_debugging_lease_revoked_total', 'The total number of revoked leases.').series(),
    expired: reg.counter('etcd_debugging_server_lease_expired_total', 'The total number of expired leases.').series(),
    ttl: reg.histogram('etcd_debugging_lease_ttl_total', 'Bucketed histogram of lease TTLs.', exponentialBuckets(1, 2, 24)).child(),
  };
}

/** Returns p, observing into h how long it took to settle (successfully or not). */
export function timed<T>(h: Histogram, p: Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const done = () => h.observeSince(t0);
  p.then(done, done);
  return p;
}
