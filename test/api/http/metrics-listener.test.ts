// --listen-metrics-urls (issue #17): a listener per URL serving only /metrics and /health, as etcd's
// (anything else is Go's 404). In-process against a stand-in server, and through the plinth command.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsListeners, type MetricsListeners } from '../../../src/api/http/metrics-listener';
import type { EtcdServer } from '../../../src/server/etcd-server';
import { freePort, startPlinth, type RunningServer } from '../../helpers/servers';
import { parseExposition } from './metrics-text';

async function get(url: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url, { method, redirect: 'manual' });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

describe('metrics listener (in process)', () => {
  let healthy = true;
  // Only what the listener's handlers use; the server's gauges throw, so /metrics leaves them out.
  const stub = {
    healthy: async () => healthy,
    log: () => {},
    gauges: () => {
      throw new Error('no server');
    },
  } as unknown as EtcdServer;
  let l: MetricsListeners;
  let base: string;

  beforeAll(async () => {
    l = await startMetricsListeners(stub, [new URL('http://127.0.0.1:0')]);
    base = `http://127.0.0.1:${l.ports[0]}`;
  });
  afterAll(async () => {
    await l?.close();
  });

  it('serves /metrics in the text format', async () => {
    const r = await get(base + '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const e = parseExposition(r.body);
    expect(e.families.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge');
    expect(e.families.get('promhttp_metric_handler_requests_total')?.type).toBe('counter');
    expect(e.families.get('etcd_server_health_success')?.type).toBe('counter');
    expect(e.families.has('etcd_server_has_leader')).toBe(false); // the stand-in gives no gauges
  });

  it('serves /health as etcd: 200 healthy, 503 not, GET only', async () => {
    expect(await get(base + '/health')).toMatchObject({ status: 200, body: '{"health":"true"}' });
    healthy = false;
    expect(await get(base + '/health')).toMatchObject({ status: 503, body: '{"health":"false"}\n' });
    healthy = true;
    expect((await get(base + '/health', 'POST')).status).toBe(405);
  });

  it('answers anything else with Go\'s 404', async () => {
    for (const path of ['/version', '/v3/kv/range', '/', '/metricsx']) {
      expect([path, await get(base + path)]).toEqual([path, { status: 404, type: 'text/plain; charset=utf-8', body: '404 page not found\n' }]);
    }
  });

  it('stops serving once closed', async () => {
    const other = await startMetricsListeners(stub, [new URL('http://127.0.0.1:0')]);
    const url = `http://127.0.0.1:${other.ports[0]}/metrics`;
    expect((await get(url)).status).toBe(200);
    await other.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});

// Needs src/cli/main.ts to start the listeners (startMetricsListeners): fails until that is wired.
describe('plinth --listen-metrics-urls', () => {
  let s: RunningServer;
  let metricsUrl: string;
  beforeAll(async () => {
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}`;
    s = await startPlinth({ extraArgs: ['--listen-metrics-urls', metricsUrl] });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('serves /metrics and /health on the metrics URL, nothing else', async () => {
    const m = await get(metricsUrl + '/metrics');
    expect(m.status).toBe(200);
    const e = parseExposition(m.body);
    expect(e.value('etcd_server_has_leader')).toBe(1);
    // --metrics basic (the default): no handling-time histograms
    expect(e.families.has('grpc_server_handling_seconds')).toBe(false);
    expect(await get(metricsUrl + '/health')).toMatchObject({ status: 200, body: '{"health":"true"}' });
    expect((await get(metricsUrl + '/version')).status).toBe(404);
    // the client URL still serves its own /metrics and /version
    expect((await get(s.url + '/metrics')).status).toBe(200);
    expect((await get(s.url + '/version')).status).toBe(200);
  });
});
