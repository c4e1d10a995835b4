// src/metrics.ts: the text it renders is what client_golang writes (labels sorted by name with le last,
// cumulative buckets, Go's float formatting), and it parses as the exposition format.
import { describe, expect, it } from 'vitest';
import { Registry, exponentialBuckets, formatValue, sampleLine } from '../../../src/metrics';
import { parseExposition } from './metrics-text';

describe('metrics registry', () => {
  it("formats values as Go's strconv 'g'", () => {
    expect(formatValue(2147483648)).toBe('2.147483648e+09');
    expect(formatValue(26869760)).toBe('2.686976e+07');
    expect(formatValue(20480)).toBe('20480');
    expect(formatValue(0.00001)).toBe('1e-05');
    expect(formatValue(18446744073709551615)).toBe('1.8446744073709552e+19');
    expect(formatValue(Infinity)).toBe('+Inf');
    expect(exponentialBuckets(0.001, 2, 14).map(formatValue).slice(-2)).toEqual(['4.096', '8.192']);
  });

  it('renders sorted families, sorted labels and cumulative histograms', () => {
    const r = new Registry();
    const c = r.counter('b_total', 'a counter', ['grpc_type', 'grpc_code']);
    c.series({ grpc_type: 'unary', grpc_code: 'OK' }).v += 3;
    const h = r.histogram('a_seconds', 'a histogram', [0.1, 1], ['method']);
    h.child({ method: 'Put' }).observe(0.05);
    h.child({ method: 'Put' }).observe(0.5);
    h.child({ method: 'Put' }).observe(5);
    const text = r.render();
    expect(text).toBe([
      '# HELP a_seconds a histogram',
      '# TYPE a_seconds histogram',
      'a_seconds_bucket{method="Put",le="0.1"} 1',
      'a_seconds_bucket{method="Put",le="1"} 2',
      'a_seconds_bucket{method="Put",le="+Inf"} 3',
      'a_seconds_sum{method="Put"} 5.55',
      'a_seconds_count{method="Put"} 3',
      '# HELP b_total a counter',
      '# TYPE b_total counter',
      'b_total{grpc_code="OK",grpc_type="unary"} 3',
      '',
    ].join('\n'));
    expect(parseExposition(text).value('a_seconds_bucket{le="1",method="Put"}')).toBe(2);
  });

  it('leaves out a family whose collector fails, and merges external families (its own win a clash)', async () => {
    const r = new Registry();
    r.gauge('ok_gauge', 'fine', [], () => 1);
    r.gauge('broken_gauge', 'no source', [], () => {
      throw new Error('gone');
    });
    r.addExternal(async () => [
      { name: 'ok_gauge', help: 'theirs', type: 'gauge', samples: ['ok_gauge 2'] },
      { name: 'nodejs_x', help: 'node', type: 'gauge', samples: [sampleLine('nodejs_x', { le: 1, kind: 'major' }, 1e-7)] },
    ]);
    const e = parseExposition(await r.renderAll());
    expect([...e.families.keys()]).toEqual(['nodejs_x', 'ok_gauge']);
    expect(e.value('ok_gauge')).toBe(1);
    expect(e.families.get('nodejs_x')!.samples[0]).toEqual({ name: 'nodejs_x', labels: { kind: 'major', le: '1' }, value: 1e-7 });
    expect(await r.renderAll()).toContain('nodejs_x{kind="major",le="1"} 1e-07\n');
  });
});
