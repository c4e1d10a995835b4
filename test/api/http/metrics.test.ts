// /metrics: Prometheus text that a parser accepts, etcd's metric names (each family Plinth exports that
// real etcd 3.4 also exports has the same type there), and the named metrics moving with the load.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, startEtcd, startPlinth, type RunningServer } from '../../helpers/servers';
import { b64, call, parseMetrics } from './http-helpers';

async function scrape(url: string) {
  const res = await fetch(url + '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseMetrics(await res.text());
}

const NAMED: [string, string][] = [
  ['etcd_server_has_leader', 'gauge'],
  ['etcd_server_is_leader', 'gauge'],
  ['etcd_server_id', 'gauge'],
  ['etcd_server_version', 'gauge'],
  ['etcd_cluster_version', 'gauge'],
  ['etcd_server_proposals_committed_total', 'gauge'],
  ['etcd_server_proposals_applied_total', 'gauge'],
  ['etcd_server_quota_backend_bytes', 'gauge'],
  ['etcd_server_health_success', 'counter'],
  ['etcd_mvcc_db_total_size_in_bytes', 'gauge'],
  ['etcd_mvcc_db_total_size_in_use_in_bytes', 'gauge'],
  ['etcd_debugging_mvcc_keys_total', 'gauge'],
  ['etcd_debugging_mvcc_current_revision', 'gauge'],
  ['etcd_disk_wal_fsync_duration_seconds', 'histogram'],
  ['etcd_disk_backend_commit_duration_seconds', 'histogram'],
  ['grpc_server_started_total', 'counter'],
  ['grpc_server_handled_total', 'counter'],
  ['grpc_server_msg_received_total', 'counter'],
  ['grpc_server_msg_sent_total', 'counter'],
  ['process_cpu_seconds_total', 'counter'],
  ['process_resident_memory_bytes', 'gauge'],
  ['process_open_fds', 'gauge'],
  ['process_start_time_seconds', 'gauge'],
];

const PUT_OK = 'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}';

describe('/metrics', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startPlinth({ backend: 'lmdb' });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('exports etcd\'s named metrics with their types, every gRPC method declared', async () => {
    const m = await scrape(server.url);
    for (const [name, type] of NAMED) expect([name, m.types.get(name)]).toEqual([name, type]);
    expect(m.samples.get('etcd_server_has_leader')).toBe(1);
    expect(m.samples.get('etcd_server_version{server_version="3.4.23"}')).toBe(1);
    expect(m.samples.get('etcd_server_id{server_id="8e9e05c52164694d"}')).toBe(1);
    expect(m.samples.get('etcd_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);
    expect(m.samples.get(PUT_OK)).toBe(0);
    expect(m.samples.get('etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"}')).toBe(m.samples.get('etcd_disk_wal_fsync_duration_seconds_count'));
  });

  it('moves with writes, reads and health checks', async () => {
    const before = await scrape(server.url);
    const n = 5;
    for (let i = 0; i < n; i++) {
      const r = await call(server.url, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`m${i}`), value: b64('v') }));
      expect(r.status).toBe(200);
    }
    await call(server.url, 'POST', '/v3/kv/deleterange', JSON.stringify({ key: b64('m0') }));
    expect((await call(server.url, 'GET', '/health')).status).toBe(200);
    // The backend commits every --backend-batch-interval (100 ms).
    await new Promise((r) => setTimeout(r, 400));
    const after = await scrape(server.url);
    const d = (k: string) => (after.samples.get(k) ?? NaN) - (before.samples.get(k) ?? NaN);
    expect(d(PUT_OK)).toBe(n);
    expect(d('grpc_server_started_total{grpc_method="DeleteRange",grpc_service="etcdserverpb.KV",grpc_type="unary"}')).toBe(1);
    expect(d('etcd_debugging_mvcc_keys_total')).toBe(n - 1);
    expect(d('etcd_debugging_mvcc_current_revision')).toBe(n + 1);
    expect(d('etcd_server_proposals_applied_total')).toBeGreaterThanOrEqual(n + 1);
    expect(d('etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(d('etcd_disk_wal_fsync_duration_seconds_sum')).toBeGreaterThan(0);
    expect(d('etcd_disk_backend_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(d('etcd_server_health_success')).toBe(1);
  });

  it.skipIf(!ETCD_AVAILABLE)('uses the names and types real etcd 3.4 uses for the same families', async () => {
    const etcd = await startEtcd();
    try {
      const theirs = await scrape(etcd.url);
      const ours = await scrape(server.url);
      const mismatched: string[] = [];
      for (const [name, type] of ours.types) {
        if (name.startsWith('process_')) continue; // Go's process collector; Plinth's own subset
        if (name.startsWith('nodejs_')) continue; // Node's runtime where etcd has Go's (go_*)
        if (theirs.types.get(name) !== type) mismatched.push(`${name} ${type} (etcd: ${theirs.types.get(name) ?? 'absent'})`);
      }
      expect(mismatched).toEqual([]);
      // The same label names on the series of shared families.
      const labelsOf = (m: Map<string, number>, fam: string) =>
        new Set([...m.keys()].filter((k) => k.startsWith(fam + '{')).map((k) => k.slice(fam.length).replace(/="[^"]*"/g, '')));
      for (const fam of ['grpc_server_handled_total', 'grpc_server_started_total', 'etcd_server_id', 'etcd_server_version']) {
        expect([...labelsOf(ours.samples, fam)]).toEqual([...labelsOf(theirs.samples, fam)]);
      }
    } finally {
      await etcd.stop();
    }
  }, 60_000);
});
