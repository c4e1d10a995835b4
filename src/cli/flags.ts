import { ENGINE_KINDS, type EngineKind } from '../storage';
import { defaultConfig, type ServerConfig } from '../server/config';
import { parseCompactionRetention, UsageProblem, type AutoCompactionMode } from '../server/auto-compactor';

// Flags with etcd's names where etcd has the flag, so scripts can swap binaries. Each also reads its
// environment variable (ETCD_* for etcd's flags, as etcd does; PLINTH_* for ours); a flag wins.

export class UsageError extends Error {}

interface FlagSpec {
  name: string;
  help: string;
  /** etcd has this flag (its env var is ETCD_<NAME>); otherwise PLINTH_<NAME>. */
  etcd: boolean;
  bool?: boolean;
  apply(cfg: ServerConfig, value: string): void;
}

const int = (flag: string, v: string, min = 0): number => {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid value "${v}" for flag --${flag}: not an integer`);
  const n = Number(v);
  if (n < min) throw new UsageError(`invalid value "${v}" for flag --${flag}: must be >= ${min}`);
  return n;
};

const bool = (flag: string, v: string): boolean => {
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new UsageError(`invalid value "${v}" for flag --${flag}: not a boolean`);
};

/** A Go duration as etcd's flags take it ("10ms", "1s", "1m30s"), in milliseconds. */
export function parseDuration(flag: string, v: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (v === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m; (m = re.exec(v)); ) {
    total += Number(m[1]) * units[m[2]];
    matched = re.lastIndex;
  }
  if (matched !== v.length || v.length === 0) throw new UsageError(`invalid value "${v}" for flag --${flag}: not a duration (e.g. 10ms, 1s)`);
  return total;
}

/** URLs may be https where the flag allows it (served with the TLS flags, or auto TLS). */
function urls(flag: string, v: string, https = false): URL[] {
  return v.split(',').map((s) => {
    let u: URL;
    try {
      u = new URL(s.trim());
    } catch {
      throw new UsageError(`invalid value "${s}" for flag --${flag}: not a URL`);
    }
    if (u.protocol !== 'http:' && !(https && u.protocol === 'https:')) {
      throw new UsageError(`--${flag}: ${u.protocol} URLs are not supported (${https ? 'http and https' : 'http only'})`);
    }
    if (!u.port) throw new UsageError(`--${flag}: URL "${s}" has no port`);
    return u;
  });
}

export const FLAGS: FlagSpec[] = [
  { name: 'name', etcd: true, help: 'Human-readable name for this member.', apply: (c, v) => (c.name = v) },
  { name: 'data-dir', etcd: true, help: 'Path to the data directory (any placement: disk, NVMe, tmpfs).', apply: (c, v) => (c.dataDir = v) },
  { name: 'wal-dir', etcd: true, help: 'Path to the dedicated WAL directory (default <data-dir>/member/wal).', apply: (c, v) => (c.walDir = v) },
  { name: 'wal-segment-bytes', etcd: false, help: 'Size of each preallocated WAL segment file (default 64 MiB, as etcd).', apply: (c, v) => (c.walSegmentBytes = int('wal-segment-bytes', v, 64 * 1024)) },
  { name: 'backend-batch-limit', etcd: true, help: 'Maximum writes in one backend commit (default 10000).', apply: (c, v) => (c.backendBatchLimit = int('backend-batch-limit', v, 1)) },
  { name: 'backend-batch-interval', etcd: true, help: 'Maximum time between backend commits (default 100ms).', apply: (c, v) => (c.backendBatchIntervalMs = parseDuration('backend-batch-interval', v)) },
  {
    name: 'backend', etcd: false, help: `Storage engine: ${ENGINE_KINDS.join('|')}.`,
    apply: (c, v) => {
      if (!ENGINE_KINDS.includes(v as EngineKind)) throw new UsageError(`invalid value "${v}" for flag --backend: want one of ${ENGINE_KINDS.join(', ')}`);
      c.backend = v as EngineKind;
    },
  },
  {
    name: 'experimental-backend-bbolt-freelist-type', etcd: true, help: "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses (array and map are supported types; --backend bolt) (default 'array').",
    apply: (c, v) => {
      if (v !== 'array' && v !== 'map') throw new UsageError(`invalid value "${v}" for flag --experimental-backend-bbolt-freelist-type: want array or map`);
      c.backendBboltFreelistType = v;
    },
  },
  {
    name: 'backend-bbolt-freelist-sync', etcd: false, bool: true, help: 'Write the bolt freelist page on every commit, as plain bbolt does (default false: rebuilt at open, as etcd 3.4 runs bbolt).',
    apply: (c, v) => (c.backendBboltFreelistSync = bool('backend-bbolt-freelist-sync', v)),
  },
  { name: 'listen-client-urls', etcd: true, help: 'List of URLs to listen on for client traffic.', apply: (c, v) => (c.listenClientUrls = urls('listen-client-urls', v, true)) },
  { name: 'advertise-client-urls', etcd: true, help: 'List of this member\'s client URLs to advertise to the public.', apply: (c, v) => (c.advertiseClientUrls = urls('advertise-client-urls', v, true).map((u) => u.href.replace(/\/$/, ''))) },
  { name: 'listen-peer-urls', etcd: true, help: 'List of URLs to listen on for peer traffic.', apply: (c, v) => (c.listenPeerUrls = urls('listen-peer-urls', v, true)) },
  { name: 'initial-advertise-peer-urls', etcd: true, help: 'List of this member\'s peer URLs to advertise to the rest of the cluster.', apply: (c, v) => (c.initialAdvertisePeerUrls = urls('initial-advertise-peer-urls', v, true).map((u) => u.href.replace(/\/$/, ''))) },
  { name: 'initial-cluster', etcd: true, help: 'Initial cluster configuration for bootstrapping (name=peerURL,...).', apply: (c, v) => (c.initialCluster = v) },
  {
    name: 'initial-cluster-state', etcd: true, help: "Initial cluster state ('new' or 'existing').",
    apply: (c, v) => {
      if (v !== 'new' && v !== 'existing') throw new UsageError(`invalid value "${v}" for flag --initial-cluster-state: want new or existing`);
      c.initialClusterState = v;
    },
  },
  { name: 'initial-cluster-token', etcd: true, help: 'Initial cluster token for the etcd cluster during bootstrap.', apply: (c, v) => (c.initialClusterToken = v) },
  { name: 'heartbeat-interval', etcd: true, help: 'Time (in milliseconds) of a heartbeat interval.', apply: (c, v) => (c.heartbeatIntervalMs = int('heartbeat-interval', v, 1)) },
  { name: 'election-timeout', etcd: true, help: 'Time (in milliseconds) for an election to timeout.', apply: (c, v) => (c.electionTimeoutMs = int('election-timeout', v, 1)) },
  {
    name: 'experimental-snapshot-catchup-entries', etcd: true, help: 'Number of entries for a slow follower to catch up after compacting the raft storage entries (etcd 3.5; default 5000).',
    apply: (c, v) => (c.snapshotCatchUpEntries = int('experimental-snapshot-catchup-entries', v, 1)),
  },
  { name: 'snapshot-count', etcd: true, help: 'Number of committed transactions to trigger a snapshot to disk.', apply: (c, v) => (c.snapshotCount = int('snapshot-count', v, 1)) },
  {
    name: 'strict-reconfig-check', etcd: true, bool: true, help: 'Reject reconfiguration requests that would cause quorum loss.',
    apply: (c, v) => (c.strictReconfigCheck = bool('strict-reconfig-check', v)),
  },
  { name: 'pre-vote', etcd: true, bool: true, help: 'Enable to run an additional Raft election phase.', apply: (c, v) => (c.preVote = bool('pre-vote', v)) },
  { name: 'max-request-bytes', etcd: true, help: 'Maximum client request size in bytes the server will accept.', apply: (c, v) => (c.maxRequestBytes = int('max-request-bytes', v, 1)) },
  {
    // etcd's default is math.MaxUint32 (no limit); 0 here says the same.
    name: 'max-concurrent-streams', etcd: true, help: 'Maximum concurrent streams that each client can open at a time.',
    apply: (c, v) => {
      const n = int('max-concurrent-streams', v, 0);
      c.maxConcurrentStreams = n >= 0xffffffff ? 0 : n;
    },
  },
  {
    name: 'grpc-keepalive-min-time', etcd: true, help: 'Minimum interval duration that a client should wait before pinging server.',
    apply: (c, v) => (c.grpcKeepaliveMinTimeMs = parseDuration('grpc-keepalive-min-time', v)),
  },
  {
    name: 'grpc-keepalive-interval', etcd: true, help: 'Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).',
    apply: (c, v) => (c.grpcKeepaliveIntervalMs = parseDuration('grpc-keepalive-interval', v)),
  },
  {
    name: 'grpc-keepalive-timeout', etcd: true, help: 'Additional duration of wait before closing a non-responsive connection (0 to disable).',
    apply: (c, v) => (c.grpcKeepaliveTimeoutMs = parseDuration('grpc-keepalive-timeout', v)),
  },
  { name: 'max-txn-ops', etcd: true, help: 'Maximum number of operations permitted in a transaction.', apply: (c, v) => (c.maxTxnOps = int('max-txn-ops', v, 1)) },
  { name: 'quota-backend-bytes', etcd: true, help: 'Raise alarms when backend size exceeds the given quota. 0 means use the default quota (2 GiB).', apply: (c, v) => (c.quotaBackendBytes = int('quota-backend-bytes', v, -1)) },
  {
    name: 'auto-compaction-retention', etcd: true,
    help: "Auto compaction retention for mvcc key value store. 0 means disable auto compaction (default '0').",
    apply: (c, v) => (c.autoCompactionRetention = v),
  },
  {
    name: 'auto-compaction-mode', etcd: true,
    help: "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention (default 'periodic').",
    apply: (c, v) => {
      if (v !== 'periodic' && v !== 'revision') throw new UsageError(`unknown auto-compaction-mode "${v}"`);
      c.autoCompactionMode = v as AutoCompactionMode;
    },
  },
  {
    name: 'auto-compaction-revision-interval', etcd: false,
    help: 'How often revision-mode auto compaction checks (default 5m, fixed in etcd 3.4).',
    apply: (c, v) => (c.autoCompactionRevisionIntervalMs = Math.max(1, parseDuration('auto-compaction-revision-interval', v))),
  },
  { name: 'experimental-compaction-batch-limit', etcd: true, help: 'Sets the maximum revisions deleted in each compaction batch.', apply: (c, v) => (c.compactionBatchLimit = int('experimental-compaction-batch-limit', v, 1)) },
  { name: 'experimental-compaction-sleep-interval', etcd: true, help: 'Sets the sleep interval between each compaction batch (e.g. 10ms).', apply: (c, v) => (c.compactionSleepIntervalMs = parseDuration('experimental-compaction-sleep-interval', v)) },
  { name: 'experimental-watch-progress-notify-interval', etcd: true, help: 'Duration of periodic watch progress notifications (default 10m).', apply: (c, v) => (c.watchProgressNotifyIntervalMs = parseDuration('experimental-watch-progress-notify-interval', v)) },
  {
    name: 'experimental-enable-lease-checkpoint', etcd: true, bool: true, help: 'Enable the leader to send regular checkpoints to persist the remaining TTL of leases.',
    apply: (c, v) => (c.leaseCheckpointEnabled = bool('experimental-enable-lease-checkpoint', v)),
  },
  {
    name: 'experimental-lease-checkpoint-interval', etcd: true, help: 'Duration of the time between lease checkpoints (default 5m; with --experimental-enable-lease-checkpoint).',
    apply: (c, v) => (c.leaseCheckpointIntervalMs = parseDuration('experimental-lease-checkpoint-interval', v)),
  },
  { name: 'experimental-warning-apply-duration', etcd: true, help: 'Time duration after which a warning is generated if a request takes more time (default 100ms).', apply: (c, v) => (c.warningApplyDurationMs = parseDuration('experimental-warning-apply-duration', v)) },
  { name: 'auth-token', etcd: true, help: "Specify auth token specific options. (default 'simple')", apply: (c, v) => (c.authToken = v) },
  { name: 'bcrypt-cost', etcd: true, help: 'Specify bcrypt algorithm cost factor for auth password hashing. (default 10)', apply: (c, v) => (c.bcryptCost = int('bcrypt-cost', v, 0)) },
  { name: 'auth-token-ttl', etcd: true, help: 'The lifetime in seconds of the auth token. (default 300)', apply: (c, v) => (c.authTokenTtlS = int('auth-token-ttl', v, 0)) },
  { name: 'cert-file', etcd: true, help: 'Path to the client server TLS cert file.', apply: (c, v) => (c.clientTls.certFile = v) },
  { name: 'key-file', etcd: true, help: 'Path to the client server TLS key file.', apply: (c, v) => (c.clientTls.keyFile = v) },
  { name: 'trusted-ca-file', etcd: true, help: 'Path to the client server TLS trusted CA cert file.', apply: (c, v) => (c.clientTls.trustedCaFile = v) },
  { name: 'client-cert-auth', etcd: true, bool: true, help: 'Enable client cert authentication.', apply: (c, v) => (c.clientTls.clientCertAuth = bool('client-cert-auth', v)) },
  { name: 'client-crl-file', etcd: true, help: 'Path to the client certificate revocation list file.', apply: (c, v) => (c.clientTls.crlFile = v) },
  { name: 'client-cert-allowed-hostname', etcd: true, help: 'Allowed TLS hostname for client cert authentication.', apply: (c, v) => (c.clientTls.allowedHostname = v) },
  { name: 'auto-tls', etcd: true, bool: true, help: 'Client TLS using generated certificates.', apply: (c, v) => (c.clientTls.autoTls = bool('auto-tls', v)) },
  {
    name: 'cipher-suites', etcd: true, help: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).',
    apply: (c, v) => (c.clientTls.cipherSuites = c.peerTls.cipherSuites = v.split(',').map((x) => x.trim()).filter((x) => x !== '')),
  },
  { name: 'peer-cert-file', etcd: true, help: 'Path to the peer server TLS cert file.', apply: (c, v) => (c.peerTls.certFile = v) },
  { name: 'peer-key-file', etcd: true, help: 'Path to the peer server TLS key file.', apply: (c, v) => (c.peerTls.keyFile = v) },
  { name: 'peer-trusted-ca-file', etcd: true, help: 'Path to the peer server TLS trusted CA file.', apply: (c, v) => (c.peerTls.trustedCaFile = v) },
  { name: 'peer-client-cert-auth', etcd: true, bool: true, help: 'Enable peer client cert authentication.', apply: (c, v) => (c.peerTls.clientCertAuth = bool('peer-client-cert-auth', v)) },
  { name: 'peer-crl-file', etcd: true, help: 'Path to the peer certificate revocation list file.', apply: (c, v) => (c.peerTls.crlFile = v) },
  { name: 'peer-cert-allowed-cn', etcd: true, help: 'Allowed CN for inter peer authentication.', apply: (c, v) => (c.peerTls.allowedCN = v) },
  { name: 'peer-cert-allowed-hostname', etcd: true, help: 'Allowed TLS hostname for inter peer authentication.', apply: (c, v) => (c.peerTls.allowedHostname = v) },
  { name: 'peer-auto-tls', etcd: true, bool: true, help: 'Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.', apply: (c, v) => (c.peerTls.autoTls = bool('peer-auto-tls', v)) },
  {
    name: 'experimental-peer-skip-client-san-verification', etcd: true, bool: true, help: 'Skip verification of SAN field in client certificate for peer connections.',
    apply: (c, v) => (c.peerTls.skipClientSanVerify = bool('experimental-peer-skip-client-san-verification', v)),
  },
  { name: 'unsafe-no-fsync', etcd: true, bool: true, help: 'Disables fsync, unsafe, will cause data loss.', apply: (c, v) => (c.unsafeNoFsync = bool('unsafe-no-fsync', v)) },
  {
    name: 'log-level', etcd: true, help: 'Configures log level. Only supports debug, info, warn, error.',
    apply: (c, v) => {
      if (!['debug', 'info', 'warn', 'error'].includes(v)) throw new UsageError(`invalid value "${v}" for flag --log-level`);
      c.logLevel = v as ServerConfig['logLevel'];
    },
  },
];

export type Command = { kind: 'serve'; config: ServerConfig } | { kind: 'help' } | { kind: 'version' };

const envName = (f: FlagSpec) => (f.etcd ? 'ETCD_' : 'PLINTH_') + f.name.toUpperCase().replace(/-/g, '_');

/** Parses argv (without node and script) and env into a command; throws UsageError on bad input. */
export function parseArgs(argv: string[], env: Record<string, string | undefined> = {}): Command {
  const cfg = defaultConfig();
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  let advertiseGiven = false;
  let listenGiven = false;
  const seen = new Set<string>();
  for (const f of FLAGS) {
    const v = env[envName(f)];
    if (v !== undefined) {
      f.apply(cfg, v);
      if (f.name === 'advertise-client-urls') advertiseGiven = true;
      if (f.name === 'listen-client-urls') listenGiven = true;
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help' || arg === '-help') return { kind: 'help' };
    if (arg === '--version' || arg === '-version') return { kind: 'version' };
    const m = /^--?([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"`);
    const f = byName.get(m[1]);
    if (!f) throw new UsageError(`unknown flag: --${m[1]}`);
    let value = m[2];
    if (value === undefined) {
      if (f.bool) value = 'true';
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${f.name}`);
        value = argv[++i];
      }
    }
    if (seen.has(f.name)) throw new UsageError(`flag --${f.name} given twice`);
    seen.add(f.name);
    f.apply(cfg, value);
    if (f.name === 'advertise-client-urls') advertiseGiven = true;
    if (f.name === 'listen-client-urls') listenGiven = true;
  }
  // The retention reads by the mode, which may come after it.
  try {
    parseCompactionRetention(cfg.autoCompactionMode, cfg.autoCompactionRetention);
  } catch (err) {
    if (err instanceof UsageProblem) throw new UsageError(err.message);
    throw err;
  }
  // etcd's checks of the raft timing (etcdmain/config.go, embed/config.go), with its words.
  if (5 * cfg.heartbeatIntervalMs > cfg.electionTimeoutMs) {
    throw new UsageError(`--election-timeout[${cfg.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${cfg.heartbeatIntervalMs}ms]`);
  }
  if (cfg.electionTimeoutMs > 50_000) throw new UsageError(`--election-timeout[${cfg.electionTimeoutMs}ms] is too long, and should be set less than 50000ms`);
  // Without an explicit advertise URL, advertise what we listen on.
  if (listenGiven && !advertiseGiven) cfg.advertiseClientUrls = cfg.listenClientUrls.map((u) => u.href.replace(/\/$/, ''));
  return { kind: 'serve', config: cfg };
}

export function usage(): string {
  const lines = ['Usage: plinth [flags]', '', 'An etcd v3 compatible key-value server.', '', 'Flags:'];
  for (const f of FLAGS) {
    lines.push(`  --${f.name}${f.bool ? '' : ' VALUE'}`);
    lines.push(`      ${f.help} (env ${envName(f)})`);
  }
  lines.push('  --help', '      Show this help.', '  --version', '      Print the version and exit.');
  return lines.join('\n');
}
