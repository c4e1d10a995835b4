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
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}
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

export class Histogram extends Metric {
  readonly type = 'histogram' as const;
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help, []);
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }

  /** Observes the seconds elapsed since t0 (process.hrtime.bigint()). */
  observeSince(t0: bigint): void {
    this.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  get total(): number {
    return this.count;
  }

  samples(): string[] {
    const out = this.buckets.map((b, i) => `${this.name}_bucket{le="${formatValue(b)}"} ${this.counts[i]}`);
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return out;
  }
}

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, b = start; i < count; i++, b *= factor) out.push(Number(b.toPrecision(12)));
  return out;
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

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }

  /** The exposition text, metrics sorted by name as client_golang does. */
  render(): string {
    let out = '';
    for (const name of [...this.metrics.keys()].sort()) {
      const m = this.metrics.get(name)!;
      let samples: string[];
      try {
        samples = m.samples();
      } catch {
        continue; // a collector whose source is unavailable (e.g. an engine being swapped) is skipped
      }
      if (samples.length === 0) continue;
      out += `# HELP ${name} ${m.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${m.type}\n${samples.join('\n')}\n`;
    }
    return out;
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

/** Returns p, observing into h how long it took to settle (successfully or not). */
export function timed<T>(h: Histogram, p: Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const done = () => h.observeSince(t0);
  p.then(done, done);
  return p;
}
