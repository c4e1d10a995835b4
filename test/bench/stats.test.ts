import { describe, expect, it } from 'vitest';
import { formatReport, histogram, median, percentile, percentiles, Recorder, summarize } from '../../bench/lib/stats';
import { Limiter } from '../../bench/lib/load';

describe('percentiles (pkg/report rule: first sample whose rank i*100/n reaches p)', () => {
  it('on 1..100 gives the sample at rank p', () => {
    const s = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentiles(s, [10, 50, 90, 99, 99.9])).toEqual([11, 51, 91, 100, 0]);
    expect(percentile(s, 50)).toBe(51);
  });
  it('on 1..1000 reaches 99.9', () => {
    const s = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentiles(s, [50, 99, 99.9])).toEqual([501, 991, 1000]);
  });
  it('takes one percentile per sample, as Go does, and leaves the rest 0', () => {
    expect(percentiles([5, 7], [10, 25, 50, 75])).toEqual([7, 0, 0, 0]);
    expect(percentiles([], [50])).toEqual([0]);
  });
});

describe('summarize', () => {
  it('sorts, averages and derives req/s from the wall time', () => {
    const s = summarize(Float64Array.from([4, 1, 3, 2]), 1, 2);
    expect(s).toMatchObject({ count: 4, errors: 1, totalSec: 2, rps: 2, fastest: 1, slowest: 4, average: 2.5 });
    expect(s.stddev).toBeCloseTo(Math.sqrt(1.25));
    expect(s.pct['50']).toBe(4); // one percentile per sample: 10→2, 25→3, 50→4
  });
  it('is all zeros for no samples', () => {
    const s = summarize(new Float64Array(0), 3, 1);
    expect(s).toMatchObject({ count: 0, errors: 3, rps: 0, fastest: 0, slowest: 0, average: 0 });
  });
});

describe('histogram (pkg/report: 10 equal buckets from fastest, then one at slowest)', () => {
  it('puts every sample in the first bucket whose upper edge holds it', () => {
    const s = Float64Array.from({ length: 11 }, (_, i) => i); // 0..10
    const h = histogram(s);
    expect(h).toHaveLength(11);
    expect(h.map((b) => b.upper)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(h.map((b) => b.count)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(h.reduce((a, b) => a + b.count, 0)).toBe(11);
  });
  it('handles equal samples and no samples', () => {
    expect(histogram([2, 2, 2]).reduce((a, b) => a + b.count, 0)).toBe(3);
    expect(histogram([])).toEqual([]);
  });
});

describe('Recorder', () => {
  it('grows past its capacity and caps distinct error messages', () => {
    const r = new Recorder(16);
    for (let i = 0; i < 100; i++) r.record(i);
    expect(r.n).toBe(100);
    expect(r.samples()[99]).toBe(99);
    for (let i = 0; i < 30; i++) r.error(`e${i}`);
    r.error('e0');
    expect(r.errors).toBe(31);
    expect(r.errorDist.get('e0')).toBe(2);
    expect(r.errorDist.size).toBe(21);
    expect(r.errorDist.get('(other errors)')).toBe(10);
  });
});

describe('median', () => {
  it('takes the middle, or the mean of the middle two, ignoring NaN', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
  });
});

describe('formatReport', () => {
  it("prints pkg/report's layout in seconds", () => {
    const samples = Float64Array.from([1, 2, 3, 4]);
    const s = summarize(samples, 0, 0.5);
    const text = formatReport(s, samples);
    expect(text).toContain('Requests/sec:\t8.0000');
    expect(text).toContain('  50% in 0.0040 secs.');
    expect(text).toContain('Response time histogram:');
  });
});

describe('Limiter (x/time/rate token bucket)', () => {
  it('lets a burst through, then spaces requests 1/rate apart', () => {
    const l = new Limiter(100, 2, 0);
    expect(l.reserve(0)).toBe(0);
    expect(l.reserve(0)).toBe(0);
    expect(l.reserve(0)).toBeCloseTo(10);
    expect(l.reserve(0)).toBeCloseTo(20);
    expect(l.reserve(100)).toBe(0); // refilled (capped at the burst)
  });
  it('never waits without a rate', () => {
    const l = new Limiter(0, 1, 0);
    for (let i = 0; i < 5; i++) expect(l.reserve(0)).toBe(0);
  });
});
