// Latency statistics for the load driver, as etcd's pkg/report computes them, so that numbers from the TS
// driver and from etcd's Go tool (tools/benchmark) mean the same thing:
//  - percentile p of n sorted samples = the first sample i with i*100/n >= p (pkg/report `percentiles`);
//  - requests/sec = successful requests / wall time of the run;
//  - a histogram of 10 equal buckets between fastest and slowest.
// Everything here is pure (no I/O), and unit-tested in test/bench/stats.test.ts.

/** Percentiles reported everywhere (pkg/report prints 10..99.9; the tables use 50/90/99/99.9). */
export const PERCENTILES = [10, 25, 50, 75, 90, 95, 99, 99.9] as const;

/**
 * Latency samples in milliseconds, in a preallocated typed array: recording one is a store and an increment
 * (no allocation per request). Grows by doubling if a run records more than `capacity` samples.
 */
export class Recorder {
  private buf: Float64Array;
  n = 0;
  errors = 0;
  /** Error messages and how often each was seen (capped: a storm of distinct messages stays small). */
  readonly errorDist = new Map<string, number>();

  constructor(capacity = 1024) {
    this.buf = new Float64Array(Math.max(16, capacity));
  }

  record(ms: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = ms;
  }

  error(message: string): void {
    this.errors++;
    const c = this.errorDist.get(message);
    if (c !== undefined) this.errorDist.set(message, c + 1);
    else if (this.errorDist.size < 20) this.errorDist.set(message, 1);
    else this.errorDist.set('(other errors)', (this.errorDist.get('(other errors)') ?? 0) + 1);
  }

  /** The samples recorded so far (a view, not a copy). */
  samples(): Float64Array {
    return this.buf.subarray(0, this.n);
  }
}

export interface Summary {
  /** Successful requests (samples). */
  count: number;
  errors: number;
  /** Wall time of the run, seconds. */
  totalSec: number;
  /** count / totalSec. */
  rps: number;
  /** Latencies in ms (0 when there are no samples). */
  fastest: number;
  slowest: number;
  average: number;
  stddev: number;
  /** pNN in ms, for each of PERCENTILES (key: '50', '99.9', ...). */
  pct: Record<string, number>;
}

/** Sorts in place and returns the same array. */
export function sortSamples(a: Float64Array): Float64Array {
  return a.sort();
}

/**
 * pkg/report's percentiles over sorted samples: for each p (ascending), the first sample whose rank
 * i*100/n reaches p, one percentile per sample. Percentiles left over (too few samples) are 0, as in Go.
 */
export function percentiles(sorted: ArrayLike<number>, ps: readonly number[] = PERCENTILES): number[] {
  const out = new Array<number>(ps.length).fill(0);
  const n = sorted.length;
  let j = 0;
  for (let i = 0; i < n && j < ps.length; i++) {
    const current = (i * 100) / n;
    if (current >= ps[j]) {
      // one percentile per sample at most, as Go's loop does (matters only for tiny sample counts)
      out[j] = sorted[i];
      j++;
    }
  }
  return out;
}

/** One percentile of sorted samples, same rule as percentiles(). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return percentiles(sorted, [p])[0];
}

/** Summary of a run: samples (ms, any order; sorted in place), error count, and wall time in seconds. */
export function summarize(samples: Float64Array, errors: number, totalSec: number): Summary {
  const s = sortSamples(samples);
  const n = s.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  const average = n ? sum / n : 0;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (s[i] - average) * (s[i] - average);
  const pv = percentiles(s);
  const pct: Record<string, number> = {};
  PERCENTILES.forEach((p, i) => (pct[String(p)] = pv[i]));
  return {
    count: n,
    errors,
    totalSec,
    rps: totalSec > 0 ? n / totalSec : 0,
    fastest: n ? s[0] : 0,
    slowest: n ? s[n - 1] : 0,
    average,
    stddev: n ? Math.sqrt(sq / n) : 0,
    pct,
  };
}

export interface Bucket {
  /** Upper edge of the bucket, ms. */
  upper: number;
  count: number;
}

/**
 * pkg/report's histogram: `buckets` equal steps from fastest, then a last bucket at slowest; a sample goes to
 * the first bucket whose upper edge is >= the sample. Sorted samples in.
 */
export function histogram(sorted: ArrayLike<number>, buckets = 10): Bucket[] {
  const n = sorted.length;
  if (n === 0) return [];
  const fastest = sorted[0];
  const slowest = sorted[n - 1];
  const step = (slowest - fastest) / buckets;
  const out: Bucket[] = [];
  for (let i = 0; i < buckets; i++) out.push({ upper: fastest + step * i, count: 0 });
  out.push({ upper: slowest, count: 0 });
  let b = 0;
  for (let i = 0; i < n; ) {
    if (sorted[i] <= out[b].upper) {
      out[b].count++;
      i++;
    } else if (b < out.length - 1) b++;
    else {
      out[b].count++; // float rounding above slowest: last bucket
      i++;
    }
  }
  return out;
}

/** Median of numbers (mean of the middle two for an even count); NaN for none. NaNs are ignored. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** A Summary printed the way pkg/report prints one (seconds, `%4.4f`, or `%g` with precise). */
export function formatReport(s: Summary, sorted: ArrayLike<number> | undefined, precise = false): string {
  const f = (x: number) => (precise ? String(x) : x.toFixed(4));
  const sec = (ms: number) => `${f(ms / 1000)} secs`;
  let out = '';
  if (s.count > 0) {
    out += '\nSummary:\n';
    out += `  Total:\t${f(s.totalSec)} secs.\n`;
    out += `  Slowest:\t${sec(s.slowest)}.\n`;
    out += `  Fastest:\t${sec(s.fastest)}.\n`;
    out += `  Average:\t${sec(s.average)}.\n`;
    out += `  Stddev:\t${sec(s.stddev)}.\n`;
    out += `  Requests/sec:\t${f(s.rps)}\n`;
    if (sorted) {
      const h = histogram(sorted);
      const max = Math.max(1, ...h.map((b) => b.count));
      out += '\nResponse time histogram:\n';
      for (const b of h) out += `  ${f(b.upper / 1000)} [${b.count}]\t|${'∎'.repeat(Math.floor((b.count * 40) / max))}\n`;
    }
    out += '\nLatency distribution:\n';
    for (const p of PERCENTILES) {
      const v = s.pct[String(p)];
      if (v > 0) out += `  ${p}% in ${sec(v)}.\n`;
    }
  }
  return out;
}
