// etcd's counters count (issue #17): N requests move etcd_mvcc_*_total, the gRPC and byte counters and the
// disk histograms by what etcd's rules say (mvcc/metrics_txn.go: every Range, Put and DeleteRange call on a
// store txn counts, a txn of more than one of them counts as a txn). Requests through the JSON gateway,
// which calls the gRPC services as etcd's does. No etcd needed (metrics-compare.test.ts compares with it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCDCTL_AVAILABLE, etcdctl, startPlinth, type RunningServer } from '../../helpers/servers';
import { b64, call } from './http-helpers';
import { parseExposition, type Exposition } from './metrics-text';

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url + '/metrics');
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

const KV = (m: string) => `{grpc_method="${m}",grpc_service="etcdserverpb.KV",grpc_type="unary"}`;

describe('/metrics counters count', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startPlinth({ extraArgs: ['--metrics', 'extensive'] });
  });
  afterAll(async () => {
    await s?.stop();
  });

  const post = async (path: string, body: unknown) => {
    const r = await call(s.url, 'POST', path, JSON.stringify(body));
    expect([path, r.status]).toEqual([path, 200]);
  };

  it('moves each counter by what the requests did', async () => {
    const before = await scrape(s.url);
    const n = 5;
    let putBytes = 0;
    for (let i = 0; i < n; i++) {
      await post('/v3/kv/put', { key: b64(`c${i}`), value: b64('value') });
      putBytes += `c${i}`.length + 5;
    }
    await post('/v3/kv/range', { key: b64('c0') });
    await post('/v3/kv/range', { key: b64('c'), range_end: b64('d') });
    await post('/v3/kv/deleterange', { key: b64('c4') });
    // a compare, then a put and a range: the compare's read txn (one range) and a write txn of two calls
    await post('/v3/kv/txn', {
      compare: [{ key: b64('c0'), target: 'VERSION', result: 'EQUAL', version: '1' }],
      success: [{ request_put: { key: b64('t'), value: b64('x') } }, { request_range: { key: b64('c0') } }],
    });
    putBytes += 2;
    // a put with prev_kv ranges first: a txn of two calls
    await post('/v3/kv/put', { key: b64('c0'), value: b64('w'), prev_kv: true });
    putBytes += 3;
    await new Promise((r) => setTimeout(r, 300)); // the backend commits every 100 ms
    const after = await scrape(s.url);
    const d = (k: string) => (after.value(k) ?? NaN) - (before.value(k) ?? NaN);
    expect({
      put: d('etcd_mvcc_put_total'),
      range: d('etcd_mvcc_range_total'),
      delete: d('etcd_mvcc_delete_total'),
      txn: d('etcd_mvcc_txn_total'),
      putDebugging: d('etcd_debugging_mvcc_put_total'),
      putSize: d('etcd_debugging_mvcc_total_put_size_in_bytes'),
      revision: d('etcd_debugging_mvcc_current_revision'),
      startedPut: d(`grpc_server_started_total${KV('Put')}`),
      handledTxn: d(`grpc_server_handled_total{grpc_code="OK",${KV('Txn').slice(1)}`),
      handlingPut: d(`grpc_server_handling_seconds_count${KV('Put')}`),
      handlingPutInf: d(`grpc_server_handling_seconds_bucket{le="+Inf",${KV('Put').slice(1)}`),
      unary: after.sum('etcd_server_client_requests_total', { type: 'unary' }) - before.sum('etcd_server_client_requests_total', { type: 'unary' }),
    }).toEqual({
      put: n + 2, range: 2 + 1 + 1 + 1, delete: 1, txn: 2, putDebugging: n + 2, putSize: putBytes, revision: n + 3,
      startedPut: n + 1, handledTxn: 1, handlingPut: n + 1, handlingPutInf: n + 1, unary: n + 5,
    });
    expect(d('etcd_network_client_grpc_received_bytes_total')).toBeGreaterThan(n * 10);
    expect(d('etcd_network_client_grpc_sent_bytes_total')).toBeGreaterThan(0);
    expect(d('etcd_disk_wal_write_bytes_total')).toBeGreaterThan(0);
    expect(d('etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(d('etcd_disk_backend_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(d('promhttp_metric_handler_requests_total{code="200"}')).toBe(1);
    expect(after.value('promhttp_metric_handler_requests_in_flight')).toBe(1);
  });

  it.skipIf(!ETCDCTL_AVAILABLE)('times Maintenance.Hash and HashKV, and defragmentation', async () => {
    const before = await scrape(s.url);
    await post('/v3/maintenance/hash', {});
    // HashKV has no gateway path in etcd 3.4: through gRPC (etcdctl)
    expect(etcdctl(s.endpoint, ['endpoint', 'hashkv']).code).toBe(0);
    await post('/v3/maintenance/defragment', {});
    const after = await scrape(s.url);
    const d = (k: string) => (after.value(k) ?? NaN) - (before.value(k) ?? NaN);
    expect([d('etcd_mvcc_hash_duration_seconds_count'), d('etcd_mvcc_hash_rev_duration_seconds_count'), d('etcd_disk_backend_defrag_duration_seconds_count')])
      .toEqual([1, 1, 1]);
    expect(after.value('etcd_disk_defrag_inflight')).toBe(0);
  });
});

describe('/metrics: slow applies and failed proposals', () => {
  it('counts every apply slower than --experimental-warning-apply-duration, no failed proposal, leases granted, renewed, revoked', async () => {
    const s = await startPlinth({ backend: 'memory', extraArgs: ['--experimental-warning-apply-duration', '1ns'] });
    try {
      const before = await scrape(s.url);
      for (let i = 0; i < 3; i++) expect((await call(s.url, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`s${i}`), value: b64('v') }))).status).toBe(200);
      const after = await scrape(s.url);
      // Each put's apply took more than 1 ns; the member publishing itself is not an apply of a request.
      expect((after.value('etcd_server_slow_apply_total') ?? NaN) - (before.value('etcd_server_slow_apply_total') ?? NaN)).toBe(3);
      expect(after.value('etcd_server_proposals_failed_total')).toBe(0);
      // A lease granted, kept alive once and revoked: etcd's lease counters and its TTL histogram.
      const grant = JSON.parse((await call(s.url, 'POST', '/v3/lease/grant', JSON.stringify({ TTL: 60 }))).text) as { ID: string };
      expect((await call(s.url, 'POST', '/v3/lease/keepalive', JSON.stringify({ ID: grant.ID }))).status).toBe(200);
      expect((await call(s.url, 'POST', '/v3/lease/revoke', JSON.stringify({ ID: grant.ID }))).status).toBe(200);
      const leases = await scrape(s.url);
      const d = (k: string) => (leases.value(k) ?? NaN) - (after.value(k) ?? NaN);
      expect([d('etcd_debugging_lease_granted_total'), d('etcd_debugging_lease_renewed_total'), d('etcd_debugging_lease_revoked_total')]).toEqual([1, 1, 1]);
      expect(d('etcd_debugging_lease_ttl_total_count')).toBe(1);
      expect(d('etcd_debugging_lease_ttl_total_bucket{le="64"}') - d('etcd_debugging_lease_ttl_total_bucket{le="32"}')).toBe(1);
    } finally {
      await s.stop();
    }
  });
});
