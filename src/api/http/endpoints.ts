import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ETCD_CLUSTER_VERSION, ETCD_COMPAT_VERSION } from '../../server/config';
import type { EtcdServer } from '../../server/etcd-server';
import { registry } from '../../metrics';
import { addNodeMetrics } from './metrics-node';

// /health, /version and /metrics as etcd 3.4 serves them on the client URL (etcdhttp/metrics.go,
// etcdhttp/base.go, promhttp).

const healthSuccess = registry.counter('etcd_server_health_success', 'The total number of successful health checks');
const healthFailures = registry.counter('etcd_server_health_failures', 'The total number of failed health checks');

/** Go's http.Error: text/plain, nosniff, the message and a newline. */
export function httpError(res: ServerResponse, status: number, msg: string, headers: Record<string, string> = {}): void {
  const body = msg + '\n';
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function onlyGet(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET') return true;
  httpError(res, 405, 'Method Not Allowed', { Allow: 'GET' });
  return false;
}

/** etcd's checkHealth: an active alarm, no leader, or a linearizable read that does not finish within 1 s. */
async function checkHealth(s: EtcdServer): Promise<{ health: string }> {
  const ok = await s.healthy(1000);
  (ok ? healthSuccess : healthFailures).inc();
  return { health: ok ? 'true' : 'false' };
}

export async function serveHealth(s: EtcdServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!onlyGet(req, res)) return;
  const h = await checkHealth(s);
  const body = JSON.stringify(h);
  if (h.health !== 'true') return httpError(res, 503, body);
  res.writeHead(200, { 'Content-Length': Buffer.byteLength(body), 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(body);
}

export function serveVersion(req: IncomingMessage, res: ServerResponse): void {
  if (!onlyGet(req, res)) return;
  const body = JSON.stringify({ etcdserver: ETCD_COMPAT_VERSION, etcdcluster: ETCD_CLUSTER_VERSION });
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

// promhttp's own metrics (the handler etcd serves /metrics with): scrapes under way, and served by code.
const scrapesInFlight = registry.gauge('promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.').series();
const scrapes = registry.counter('promhttp_metric_handler_requests_total', 'Total number of scrapes by HTTP status code.', ['code']);
const scrapeSeries = new Map(['200', '500', '503'].map((code) => [code, scrapes.series({ code })]));

export function serveMetrics(res: ServerResponse): void {
  scrapesInFlight.v++;
  const done = (code: string) => {
    scrapesInFlight.v--;
    scrapeSeries.get(code)!.v++;
  };
  registry
    .renderAll()
    .then(
      (body) => {
        done('200');
        // The client may be gone by now: a write to a destroyed response is dropped, not thrown.
        if (res.destroyed) return;
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      },
      (err) => {
        done('500');
        if (!res.headersSent && !res.destroyed) httpError(res, 500, `An error has occurred while serving metrics:\n\n${(err as Error)?.message ?? String(err)}`);
      },
    )
    // Never an unhandled rejection (which would end the process) from writing the answer.
    .catch(() => res.destroy());
}

// --- the server's gauges, read at scrape time ---

const START_SECONDS = Math.round((Date.now() - process.uptime() * 1000) / 10) / 100;

function procStat(): { vsize: number; rss: number } | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { vsize: Number(f[20]), rss: Number(f[21]) * 4096 };
  } catch {
    return undefined;
  }
}

/** Go's process_virtual_memory_max_bytes: RLIMIT_AS, unlimited as 2^64-1. */
function maxAddressSpace(): number {
  try {
    const m = /Max address space\s+(\S+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return NaN;
    return m[1] === 'unlimited' ? 18446744073709551615 : Number(m[1]);
  } catch {
    return NaN;
  }
}

/**
 * Figures etcd exports that the server gives when it has them (ServerGauges' optional fields): a metric
 * whose figure the server does not give is left out of /metrics rather than shown as a made-up 0.
 */
export interface ServerCounters {
  /** etcd_server_proposals_failed_total: proposals that failed (timed out, dropped, no leader). */
  proposalsFailed?: number;
  /** etcd_server_read_indexes_failed_total / etcd_server_slow_read_indexes_total. */
  readIndexesFailed?: number;
  slowReadIndexes?: number;
  /** etcd_server_slow_apply_total: applies that took longer than 100 ms. */
  slowApplies?: number;
  /** etcd_server_heartbeat_send_failures_total. */
  heartbeatSendFailures?: number;
  /** etcd_server_learner_promote_successes. */
  learnerPromoteSuccesses?: number;
  /** etcd_server_snapshot_apply_in_progress_total: 1 while a received snapshot is applied. */
  snapshotApplyInProgress?: number;
  /** etcd_debugging_mvcc_watch_stream_total, _slow_watcher_total, _pending_events_total, _events_total. */
  watchStreams?: number;
  slowWatchers?: number;
  pendingEvents?: number;
  eventsSent?: number;
}

function maxFds(): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Registers the gauges that read this server (the last server registered is the one reported). */
export function registerServerMetrics(s: EtcdServer): void {
  addNodeMetrics(registry);
  const g = (name: string, help: string, read: () => number) => registry.gauge(name, help, [], read);
  // A figure the server may give (ServerCounters); absent, the collector throws and render leaves it out.
  const opt = (field: keyof ServerCounters) => () => {
    const v = (s.gauges() as ServerCounters)[field];
    if (v === undefined) throw new Error(`no ${field}`);
    return v;
  };
  const c = (name: string, help: string, read: () => number) => {
    registry.counter(name, help).collect = read;
  };
  c('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.', opt('proposalsFailed'));
  c('etcd_server_read_indexes_failed_total', 'The total number of failed read indexes seen.', opt('readIndexesFailed'));
  c('etcd_server_slow_read_indexes_total', 'The total number of pending read indexes not in sync with leader\'s or timed out read index requests.', opt('slowReadIndexes'));
  c('etcd_server_slow_apply_total', 'The total number of slow apply requests (likely overloaded from slow disk).', opt('slowApplies'));
  c('etcd_server_heartbeat_send_failures_total', 'The total number of leader heartbeat send failures (likely overloaded from slow disk).', opt('heartbeatSendFailures'));
  c('etcd_server_learner_promote_successes', 'The total number of successful learner promotions while this member is leader.', opt('learnerPromoteSuccesses'));
  g('etcd_server_snapshot_apply_in_progress_total', '1 if the server is applying the incoming snapshot. 0 if none.', opt('snapshotApplyInProgress'));
  g('etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', opt('watchStreams'));
  g('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', opt('slowWatchers'));
  g('etcd_debugging_mvcc_pending_events_total', 'Total number of pending events to be sent.', opt('pendingEvents'));
  c('etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.', opt('eventsSent'));
  g('etcd_debugging_auth_revision', 'The current revision of auth store.', () => s.authStore.revision);
  const one = (name: string, help: string, label: string, value: () => string) => {
    const m = registry.gauge(name, help, [label]);
    m.collect = () => [[{ [label]: value() }, 1]];
  };
  g('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (s.gauges().hasLeader ? 1 : 0));
  g('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (s.gauges().isLeader ? 1 : 0));
  g('etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', () => (s.gauges().isLearner ? 1 : 0));
  const changes = registry.counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.');
  changes.collect = () => s.gauges().leaderChanges;
  g('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => s.gauges().pendingProposals);
  one('etcd_server_id', "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", 'server_id', () => s.memberId.toString(16));
  one('etcd_server_version', "Which version is running. 1 for 'server_version' label with current version.", 'server_version', () => ETCD_COMPAT_VERSION);
  one('etcd_cluster_version', "Which version is running. 1 for 'cluster_version' label with current cluster version", 'cluster_version',
    () => ETCD_CLUSTER_VERSION.split('.').slice(0, 2).join('.'));
  g('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => s.gauges().committed);
  g('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => s.gauges().applied);
  g('etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', () => {
    const q = s.gauges().quota;
    return Number.isFinite(q) ? q : 0;
  });
  const dbSize = () => s.gauges().dbSize;
  g('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', dbSize);
  g('etcd_debugging_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', dbSize);
  g('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', () => s.gauges().dbSizeInUse);
  g('etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => s.gauges().currentRevision);
  // -1 before any compaction, as etcd's compactMainRev.
  g('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => s.store.compactMainRev);
  g('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => s.gauges().keys());
  g('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => s.gauges().watchers);
  // etcd's rafthttp metrics, from the peer links.
  const local = () => s.memberId.toString(16);
  const perPeer = (name: string, help: string, label: string, read: (p: ReturnType<EtcdServer['peerStats']>[number]) => number) => {
    const m = registry.counter(name, help, [label]);
    m.collect = () => s.peerStats().map((p) => [{ [label]: p.id.toString(16) }, read(p)]);
  };
  perPeer('etcd_network_peer_sent_bytes_total', 'The total number of bytes sent to peers.', 'To', (p) => p.sentBytes);
  perPeer('etcd_network_peer_received_bytes_total', 'The total number of bytes received from peers.', 'From', (p) => p.receivedBytes);
  perPeer('etcd_network_peer_sent_failures_total', 'The total number of send failures from peers.', 'To', (p) => p.sentFailures);
  const active = registry.gauge('etcd_network_active_peers', 'The current number of active peer connections.', ['Local', 'Remote']);
  active.collect = () => s.peerStats().map((p) => [{ Local: local(), Remote: p.id.toString(16) }, p.connected ? 1 : 0]);
  const disconnected = registry.counter('etcd_network_disconnected_peers_total', 'The total number of disconnected peers.', ['Local', 'Remote']);
  disconnected.collect = () => s.peerStats().map((p) => [{ Local: local(), Remote: p.id.toString(16) }, p.disconnects]);
  const cpu = registry.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
  cpu.collect = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  g('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => START_SECONDS);
  g('process_resident_memory_bytes', 'Resident memory size in bytes.', () => procStat()?.rss ?? process.memoryUsage().rss);
  g('process_virtual_memory_bytes', 'Virtual memory size in bytes.', () => procStat()?.vsize ?? NaN);
  g('process_open_fds', 'Number of open file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return NaN;
    }
  });
  g('process_max_fds', 'Maximum number of open file descriptors.', maxFds);
  g('process_virtual_memory_max_bytes', 'Maximum amount of virtual memory available in bytes.', maxAddressSpace);
  // etcd's os_fd_* (pkg/runtime, read by its fd monitor): the same figures as process_*.
  g('os_fd_used', 'The number of used file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return NaN;
    }
  });
  g('os_fd_limit', 'The file descriptor limit.', maxFds);
}
