// Helpers for the ops tests: a seeded generator, a Zipf sampler, and an independent model of the key layout
// (written from the description with split('/'), not from src/ops/layout.ts).

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ranks 0..n-1 with P(k) proportional to 1/(k+1)^s, by binary search over the cumulative weights. */
export function zipfSampler(n: number, s: number, rnd: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  return () => {
    const u = rnd() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface KeyTruth {
  kube: boolean;
  resource: string;
  namespace: string; // '(cluster)' or '(none)' as the tracker reports them
  group: string; // the cold-report prefix
}

/** The layout, computed with split: the expected answer for a key. */
export function truthOf(key: string, prefix = '/registry/', twoSegment = ['services']): KeyTruth {
  if (!key.startsWith(prefix)) {
    const start = key.startsWith('/') ? 1 : 0;
    const j = key.indexOf('/', start);
    return { kube: false, resource: '(none)', namespace: '(none)', group: j < 0 ? '(other)' : key.slice(0, j + 1) };
  }
  const parts = key.slice(prefix.length).split('/');
  if (parts[0] === '') return { kube: false, resource: '(none)', namespace: '(none)', group: prefix };
  const r = parts[0].includes('.') || twoSegment.includes(parts[0]) ? 2 : 1;
  if (parts.length <= r) return { kube: true, resource: parts.join('/'), namespace: '(cluster)', group: prefix };
  const resource = parts.slice(0, r).join('/');
  if (parts.length === r + 1) return { kube: true, resource, namespace: '(cluster)', group: `${prefix}${resource}/` };
  return { kube: true, resource, namespace: parts[r], group: `${prefix}${resource}/${parts[r]}/` };
}

/** A store model: live keys with their size (key + value bytes) and access epoch; a LiveKeySource over it. */
export class ModelStore {
  readonly kvs = new Map<string, { size: number; value: number; epoch: number }>();
  private sorted: string[] | undefined;

  set(key: string, valueBytes: number, epoch: number): number {
    const prev = this.kvs.get(key);
    if (!prev) this.sorted = undefined;
    this.kvs.set(key, { size: key.length + valueBytes, value: valueBytes, epoch });
    return prev ? prev.value : -1;
  }

  delete(key: string): number {
    const prev = this.kvs.get(key);
    if (!prev) return -1;
    this.kvs.delete(key);
    this.sorted = undefined;
    return prev.value;
  }

  touch(key: string, epoch: number): void {
    const e = this.kvs.get(key);
    if (e) e.epoch = epoch;
  }

  keys(): string[] {
    if (!this.sorted) this.sorted = [...this.kvs.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sorted;
  }

  scan(after: string | undefined, max: number, fn: (key: string, bytes: number, epoch: number) => void): string | undefined {
    const keys = this.keys();
    let lo = 0;
    if (after !== undefined) {
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid] <= after) lo = mid + 1;
        else hi = mid;
      }
    }
    let last: string | undefined;
    for (let i = lo; i < keys.length && i < lo + max; i++) {
      const e = this.kvs.get(keys[i])!;
      fn(keys[i], e.size, e.epoch);
      last = keys[i];
    }
    return last;
  }
}
