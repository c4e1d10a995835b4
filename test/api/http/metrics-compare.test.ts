// /metrics compared with real etcd 3.4's, family by family (issue #17): the same requests made to both
// (etcdctl, so the bytes on the wire are the same), both /metrics parsed as the Prometheus text format, and
// every etcd family either present in Plinth with etcd's type, label names and buckets, or listed below as
// absent with the reason. Counters are checked to count: the same requests move them by the same amounts.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../../helpers/servers';
import { parseExposition, type Exposition } from './metrics-text';

/** etcd families that have no meaning in Plinth: they must not be there. */
const NO_MEANING: [RegExp, string][] = [
  [/^go_/, "Go's runtime: Plinth exports Node's instead (nodejs_*, prom-client's names)"],
  [/^etcd_server_go_version$/, "Go's version: nodejs_version_info instead"],
  [/^etcd_debugging_store_/, 'the v2 store: Plinth has no v2 API'],
  [/^etcd_grpc_proxy_/, "etcd's gRPC proxy (etcd grpc-proxy): not part of Plinth"],
  [/^etcd_debugging_disk_backend_commit_(rebalance|spill|write)_duration_seconds$/,
    "phases of a bbolt commit: Plinth's engines commit in one step, measured by etcd_disk_backend_commit_duration_seconds"],
  [/^etcd_mvcc_db_open_read_transactions$/, "bbolt read transactions held open: Plinth's reads are synchronous, no read transaction outlives a request"],
];

/**
 * etcd families that have a meaning in Plinth but need a figure from a module another change wires (the
 * server's counters, the lessor, the watch streams, raft snapshots): absent until then, etcd's shape once there.
 */
const PENDING: [RegExp, string][] = [
  [/^etcd_server_(proposals_failed_total|read_indexes_failed_total|slow_read_indexes_total|slow_apply_total|heartbeat_send_failures_total|learner_promote_successes|snapshot_apply_in_progress_total)$/,
    "the server's counters (ServerGauges' optional fields, api/http/endpoints.ts ServerCounters)"],
  [/^etcd_debugging_(lease_(granted|renewed|revoked)_total|lease_ttl_total|server_lease_expired_total)$/, "the lessor's counters (metrics.ts registerLeaseMetrics)"],
  [/^etcd_debugging_mvcc_(watch_stream_total|slow_watcher_total|pending_events_total|events_total)$/, "the watch streams' figures (ServerCounters)"],
  [/^etcd_(debugging_)?snap_/, 'raft snapshot files and received snapshots (src/raft/snapshot)'],
];

const reasonOf = (list: [RegExp, string][], name: string) => list.find(([re]) => re.test(name))?.[1];

/** The label-name sets of a family's series (le left out), sorted, as one string. */
function labelShape(e: Exposition, fam: string): string {
  const shapes = new Set(e.families.get(fam)!.samples.map((s) => Object.keys(s.labels).filter((l) => l !== 'le').sort().join(',')));
  return [...shapes].sort().join(' | ');
}

/** A histogram's bucket bounds (of its first series). */
function buckets(e: Exposition, fam: string): string[] {
  const f = e.families.get(fam)!;
  const first = f.samples.find((s) => s.name === `${fam}_bucket`);
  if (!first) return [];
  const key = JSON.stringify({ ...first.labels, le: undefined });
  return f.samples.filter((s) => s.name === `${fam}_bucket` && JSON.stringify({ ...s.labels, le: undefined }) === key).map((s) => s.labels.le);
}

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url + '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(await res.text());
}

function ok(endpoint: string, args: string[], input?: string): string {
  const r = etcdctl(endpoint, args, input);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The same requests for both servers: puts, ranges, a delete, a txn, a lease, a watch, a compaction. */
function workload(endpoint: string): void {
  for (let i = 1; i <= 3; i++) ok(endpoint, ['put', `a${i}`, `v${i}`]);
  ok(endpoint, ['get', 'a1']);
  ok(endpoint, ['get', 'a', '--prefix']);
  ok(endpoint, ['get', 'a', '--prefix', '--keys-only']);
  ok(endpoint, ['del', 'a2']);
  ok(endpoint, ['put', 'a1', 'v1b', '--prev-kv']);
  // compare, then a put and a range on success
  ok(endpoint, ['txn'], 'value("a1") = "v1b"\n\nput t1 x\nget a1\n\n\n');
  // a read-only txn with two compares
  ok(endpoint, ['txn'], 'value("a1") = "v1b"\nversion("a3") = "1"\n\nget a3\n\n\n');
  const lease = /lease ([0-9a-f]+) granted/.exec(ok(endpoint, ['lease', 'grant', '60']))![1];
  ok(endpoint, ['put', 'l1', 'v', `--lease=${lease}`]);
  ok(endpoint, ['put', 'l2', 'v', `--lease=${lease}`]);
  ok(endpoint, ['lease', 'keep-alive', '--once', lease]);
  // a watch stream that sees one event, then ends (etcdctl exits after its timeout)
  spawnSync('etcdctl', ['--endpoints', endpoint, 'watch', 'a3', '--rev=1'], { timeout: 1500, env: { ...process.env, ETCDCTL_API: '3' } });
  ok(endpoint, ['lease', 'revoke', lease]);
  const rev = JSON.parse(ok(endpoint, ['get', 'a1', '-w', 'json'])).header.revision as number;
  ok(endpoint, ['compaction', String(rev - 1)]);
}

const D = (before: Exposition, after: Exposition, key: string) => (after.value(key) ?? NaN) - (before.value(key) ?? NaN);

/** Counter and gauge moves that the workload must cause the same way in both (key: name{labels} as in value()). */
const SAME_DELTA = [
  'etcd_mvcc_put_total', 'etcd_mvcc_range_total', 'etcd_mvcc_delete_total', 'etcd_mvcc_txn_total',
  'etcd_debugging_mvcc_put_total', 'etcd_debugging_mvcc_range_total', 'etcd_debugging_mvcc_delete_total', 'etcd_debugging_mvcc_txn_total',
  'etcd_debugging_mvcc_total_put_size_in_bytes',
  'etcd_debugging_mvcc_keys_total', 'etcd_debugging_mvcc_current_revision', 'etcd_debugging_mvcc_compact_revision',
  'grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_started_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="DeleteRange",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="Compact",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"}',
  'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}',
  'grpc_server_handling_seconds_count{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}',
  'etcd_network_client_grpc_received_bytes_total',
];

describe.skipIf(!ETCD_AVAILABLE || !ETCDCTL_AVAILABLE)('/metrics compared with etcd 3.4', () => {
  let etcd: RunningServer;
  let plinth: RunningServer;
  const got: Record<'etcd' | 'plinth', { before?: Exposition; after?: Exposition }> = { etcd: {}, plinth: {} };

  beforeAll(async () => {
    [etcd, plinth] = await Promise.all([startEtcd(['--metrics', 'extensive']), startPlinth({ extraArgs: ['--metrics', 'extensive'] })]);
    for (const [k, s] of [['etcd', etcd], ['plinth', plinth]] as const) {
      got[k].before = await scrape(s.url);
      workload(s.endpoint);
      // The backends commit every 100 ms: let the disk histograms see the writes.
      await new Promise((r) => setTimeout(r, 300));
      got[k].after = await scrape(s.url);
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all([etcd?.stop(), plinth?.stop()]);
  });

  it("has each etcd family with etcd's type, label names and buckets, or says why not", () => {
    const theirs = got.etcd.after!;
    const ours = got.plinth.after!;
    const problems: string[] = [];
    const report: string[] = [];
    for (const [name, f] of [...theirs.families].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const mine = ours.families.get(name);
      const noMeaning = reasonOf(NO_MEANING, name);
      const pending = reasonOf(PENDING, name);
      if (!mine) {
        if (noMeaning) report.push(`absent   ${name}: ${noMeaning}`);
        else if (pending) report.push(`pending  ${name}: ${pending}`);
        else problems.push(`${name}: missing`);
        continue;
      }
      if (noMeaning) problems.push(`${name}: listed as having no meaning in Plinth, but present`);
      if (mine.type !== f.type) problems.push(`${name}: type ${mine.type}, etcd ${f.type}`);
      if (f.samples.length > 0 && mine.samples.length > 0 && labelShape(ours, name) !== labelShape(theirs, name)) {
        problems.push(`${name}: labels {${labelShape(ours, name)}}, etcd {${labelShape(theirs, name)}}`);
      }
      if (f.type === 'histogram' && buckets(ours, name).join(' ') !== buckets(theirs, name).join(' ')) {
        problems.push(`${name}: buckets ${buckets(ours, name).join(' ')}, etcd ${buckets(theirs, name).join(' ')}`);
      }
      if (mine.help !== f.help) problems.push(`${name}: help "${mine.help}", etcd "${f.help}"`);
      report.push(`present  ${name} (${f.type})`);
    }
    if (process.env.METRICS_REPORT) console.log(report.join('\n'));
    expect(problems).toEqual([]);
    // Plinth's own families beyond etcd's are Node's (nodejs_*, prom-client's process_* extras) only.
    const extra = [...ours.families.keys()].filter((n) => !theirs.families.has(n) && !/^nodejs_|^process_(cpu_(user|system)_seconds_total|heap_bytes)$/.test(n));
    expect(extra).toEqual([]);
  });

  it('counts the same requests as etcd does', () => {
    const diffs: string[] = [];
    for (const key of SAME_DELTA) {
      const e = D(got.etcd.before!, got.etcd.after!, key);
      const p = D(got.plinth.before!, got.plinth.after!, key);
      if (!(e === p)) diffs.push(`${key}: Plinth +${p}, etcd +${e}`);
    }
    expect(diffs).toEqual([]);
    // The counters moved at all (a workload that reached neither server would pass the comparison).
    expect(D(got.plinth.before!, got.plinth.after!, 'etcd_mvcc_put_total')).toBe(7);
    // Requests by type, whatever the client version label says.
    const byType = (e: Exposition, type: string) => e.sum('etcd_server_client_requests_total', { type });
    for (const type of ['unary', 'stream']) {
      expect([type, byType(got.plinth.after!, type) - byType(got.plinth.before!, type)])
        .toEqual([type, byType(got.etcd.after!, type) - byType(got.etcd.before!, type)]);
    }
  });
});
