import { ENGINE_KINDS, type EngineKind } from '../storage';
import { defaultConfig, type ServerConfig } from '../server/config';
import { parseCompactionRetention, UsageProblem, type AutoCompactionMode } from '../server/auto-compactor';

// etcd 3.4's whole command line (etcdmain/config.go, help.go), plus Plinth's own flags. Each flag has
// etcd's name, default and meaning, and reads its environment variable (ETCD_* for etcd's flags, as etcd
// does; PLINTH_* for ours); a flag wins. `plinth --help` and README's flag table are made from FLAGS
// (usage(), flagsMarkdown(); `npm run docs:flags` rewrites README's section).
//
// Every etcd flag is one of:
//   implemented: Plinth does what etcd does with it;
//   stored:      accepted at any valid value and kept in the config; pure tuning with no observable
//                contract, or something Plinth does its own way (the help says what Plinth does);
//   refused:     accepted only at etcd's default; any other value stops the start with a one-line reason
//                (the v2 API, the v2 proxy, discovery, and safety-relevant behaviour not built yet).

export class UsageError extends Error {}

export type FlagStatus = 'implemented' | 'stored' | 'refused';
export type FlagType = 'string' | 'bool' | 'uint' | 'int' | 'duration' | 'urls' | 'strings';

export const FLAG_GROUPS = [
  'Member', 'Clustering', 'Security', 'Auth', 'Profiling and Monitoring', 'Logging', 'v2 Proxy',
  'Experimental feature', 'Unsafe feature', 'To be deprecated', 'Plinth',
] as const;
export type FlagGroup = (typeof FLAG_GROUPS)[number];

export interface FlagSpec {
  name: string;
  /** What the flag means (etcd's words for etcd's flags). */
  help: string;
  /** etcd has this flag (its env var is ETCD_<NAME>); otherwise PLINTH_<NAME>. */
  etcd: boolean;
  group: FlagGroup;
  type: FlagType;
  /** The default as --help prints it (Plinth's; etcd's where they are the same). */
  def: string;
  /** etcd 3.4's default where Plinth's differs. */
  etcdDef?: string;
  status: FlagStatus;
  /** What Plinth does with it, where that says more than `help`. */
  plinth?: string;
  apply(cfg: ServerConfig, value: string, ctx: ParseContext): void;
}

/** What a parse gathers besides the config: flags given (by flags or env) and warnings to print at start. */
export interface ParseContext {
  given: Set<string>;
  warnings: string[];
  /** --debug=true (deprecated: --log-level debug). */
  debug: boolean;
  /** --experimental-enable-lease-checkpoint-persist=true (needs the checkpoint flag). */
  leaseCheckpointPersist: boolean;
}

const int = (flag: string, v: string, min = 0): number => {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid value "${v}" for flag --${flag}: not an integer`);
  const n = Number(v);
  if (n < min) throw new UsageError(`invalid value "${v}" for flag --${flag}: must be >= ${min}`);
  return n;
};

const bool = (flag: string, v: string): boolean => {
  if (v === '' || v === 'true' || v === '1' || v === 't' || v === 'T' || v === 'TRUE' || v === 'True') return true;
  if (v === 'false' || v === '0' || v === 'f' || v === 'F' || v === 'FALSE' || v === 'False') return false;
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

/**
 * URLs may be https where the flag allows it (served with the TLS flags, or auto TLS). Each URL counts
 * once, as etcd's UniqueURLs (kubeadm's --listen-client-urls=https://127.0.0.1:2379,https://IP:2379 names
 * one URL twice where IP is 127.0.0.1).
 */
function urls(flag: string, v: string, https = false): URL[] {
  const seen = new Set<string>();
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
  }).filter((u) => (seen.has(u.href) ? false : (seen.add(u.href), true)));
}

/** A comma-separated list, as etcd's UniqueStringsValue: empty items dropped, each value once. */
const list = (v: string): string[] => [...new Set(v.split(',').map((x) => x.trim()).filter((x) => x !== ''))];

const refusal = (name: string, v: string, def: string, reason: string) =>
  new UsageError(`--${name}=${v}: ${reason} (accepted only at its default, '${def}')`);

/** A flag Plinth takes only at etcd's default (compared as its type reads it). */
function refused(
  f: Omit<FlagSpec, 'status' | 'apply' | 'etcd'> & { reason: string; same?: (v: string) => boolean },
): FlagSpec {
  const same = f.same ?? ((v: string) => {
    switch (f.type) {
      case 'bool': return bool(f.name, v) === bool(f.name, f.def);
      case 'uint': case 'int': return int(f.name, v, f.type === 'uint' ? 0 : -Infinity) === Number(f.def);
      case 'duration': return parseDuration(f.name, v) === parseDuration(f.name, f.def);
      default: return v === f.def;
    }
  });
  return {
    ...f, etcd: true, status: 'refused', plinth: f.plinth ?? `${f.reason}.`,
    apply: (_c, v) => {
      if (!same(v)) throw refusal(f.name, v, f.def, f.reason);
    },
  };
}

const V2 = 'Plinth serves only the v3 API, not the v2 API';
const PROXY = 'Plinth does not run as a v2 proxy; it is always a member';
const DISCOVERY = 'Plinth does not bootstrap through a discovery service or DNS SRV records yet; list the members in --initial-cluster';

export const FLAGS: FlagSpec[] = [
  // ---- Member
  { name: 'name', etcd: true, group: 'Member', type: 'string', def: 'default', status: 'implemented', help: 'Human-readable name for this member.', apply: (c, v) => (c.name = v) },
  {
    name: 'data-dir', etcd: true, group: 'Member', type: 'string', def: 'data', etcdDef: '${name}.etcd', status: 'implemented',
    help: 'Path to the data directory.', plinth: 'any placement: disk, NVMe, tmpfs.', apply: (c, v) => (c.dataDir = v),
  },
  {
    name: 'wal-dir', etcd: true, group: 'Member', type: 'string', def: '', status: 'implemented',
    help: 'Path to the dedicated wal directory.', plinth: "'' is <data-dir>/member/wal (e.g. a separate NVMe).", apply: (c, v) => (c.walDir = v),
  },
  {
    name: 'snapshot-count', etcd: true, group: 'Member', type: 'uint', def: '100000', status: 'implemented',
    help: 'Number of committed transactions to trigger a snapshot to disk.',
    plinth: 'applied entries between raft snapshot points (the log behind one is released; a follower that far behind gets the backend).',
    apply: (c, v) => (c.snapshotCount = int('snapshot-count', v, 1)),
  },
  { name: 'heartbeat-interval', etcd: true, group: 'Member', type: 'uint', def: '100', status: 'implemented', help: 'Time (in milliseconds) of a heartbeat interval.', plinth: 'one raft tick.', apply: (c, v) => (c.heartbeatIntervalMs = int('heartbeat-interval', v, 1)) },
  {
    name: 'election-timeout', etcd: true, group: 'Member', type: 'uint', def: '1000', status: 'implemented',
    help: 'Time (in milliseconds) for an election to timeout.', plinth: "at least 5 heartbeats, at most 50 s (etcd's checks and words).",
    apply: (c, v) => (c.electionTimeoutMs = int('election-timeout', v, 1)),
  },
  {
    name: 'initial-election-tick-advance', etcd: true, group: 'Member', type: 'bool', def: 'true', status: 'stored',
    help: 'Whether to fast-forward initial election ticks on boot for faster election.',
    plinth: 'raft timing only: a booting member waits a randomized election timeout before campaigning either way.',
    apply: (c, v) => (c.initialElectionTickAdvance = bool('initial-election-tick-advance', v)),
  },
  {
    name: 'listen-peer-urls', etcd: true, group: 'Member', type: 'urls', def: '', etcdDef: 'http://localhost:2380', status: 'implemented',
    help: 'List of URLs to listen on for peer traffic.',
    plinth: 'http or https (with the peer TLS flags); not set: a member with peers listens on its advertised peer URLs, a single member does not listen.',
    apply: (c, v) => (c.listenPeerUrls = urls('listen-peer-urls', v, true)),
  },
  {
    name: 'listen-client-urls', etcd: true, group: 'Member', type: 'urls', def: 'http://127.0.0.1:2379', etcdDef: 'http://localhost:2379', status: 'implemented',
    help: 'List of URLs to listen on for client traffic.', plinth: 'http or https (with the client TLS flags): gRPC, the JSON gateway, /metrics, /health and /version on each.',
    apply: (c, v) => (c.listenClientUrls = urls('listen-client-urls', v, true)),
  },
  {
    name: 'max-snapshots', etcd: true, group: 'Member', type: 'uint', def: '5', status: 'stored',
    help: 'Maximum number of snapshot files to retain (0 is unlimited).',
    plinth: 'Plinth writes no .snap files (the backend is its snapshot), so there are none to retain.',
    apply: (c, v) => (c.maxSnapshots = int('max-snapshots', v, 0)),
  },
  refused({
    name: 'max-wals', group: 'Member', type: 'uint', def: '5', help: 'Maximum number of wal files to retain (0 is unlimited).',
    reason: 'Plinth does not support WAL file retention yet: it deletes WAL segments as soon as the backend holds their entries durably',
  }),
  {
    name: 'quota-backend-bytes', etcd: true, group: 'Member', type: 'int', def: '0', status: 'implemented',
    help: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).', plinth: '0 is 2 GiB; negative: no quota.',
    apply: (c, v) => (c.quotaBackendBytes = int('quota-backend-bytes', v, -1)),
  },
  {
    name: 'backend-batch-interval', etcd: true, group: 'Member', type: 'duration', def: '100ms', etcdDef: '', status: 'implemented',
    help: 'BackendBatchInterval is the maximum time before commit the backend transaction.', plinth: "'' or 0: 100ms, as etcd.",
    apply: (c, v) => {
      const ms = v === '' ? 0 : parseDuration('backend-batch-interval', v);
      c.backendBatchIntervalMs = ms > 0 ? ms : 100;
    },
  },
  {
    name: 'backend-batch-limit', etcd: true, group: 'Member', type: 'int', def: '10000', etcdDef: '0', status: 'implemented',
    help: 'BackendBatchLimit is the maximum operations before commit the backend transaction.', plinth: '0: 10000, as etcd.',
    apply: (c, v) => {
      const n = int('backend-batch-limit', v, 0);
      c.backendBatchLimit = n > 0 ? n : 10_000;
    },
  },
  { name: 'max-txn-ops', etcd: true, group: 'Member', type: 'uint', def: '128', status: 'implemented', help: 'Maximum number of operations permitted in a transaction.', apply: (c, v) => (c.maxTxnOps = int('max-txn-ops', v, 1)) },
  { name: 'max-request-bytes', etcd: true, group: 'Member', type: 'uint', def: '1572864', status: 'implemented', help: 'Maximum client request size in bytes the server will accept.', apply: (c, v) => (c.maxRequestBytes = int('max-request-bytes', v, 1)) },
  {
    // etcd's default is math.MaxUint32 (no limit); 0 in the config says the same.
    name: 'max-concurrent-streams', etcd: true, group: 'Member', type: 'uint', def: '4294967295', etcdDef: 'math.MaxUint32', status: 'implemented',
    help: 'Maximum concurrent streams that each client can open at a time.', plinth: 'more are refused (REFUSED_STREAM); 4294967295: no limit.',
    apply: (c, v) => {
      const n = int('max-concurrent-streams', v, 0);
      c.maxConcurrentStreams = n >= 0xffffffff ? 0 : n;
    },
  },
  {
    name: 'grpc-keepalive-min-time', etcd: true, group: 'Member', type: 'duration', def: '5s', status: 'implemented',
    help: 'Minimum duration interval that a client should wait before pinging server.',
    plinth: "a client pinging more often (or with no call open) is sent GOAWAY too_many_pings, as grpc-go; 0: grpc-go's 5m.",
    apply: (c, v) => (c.grpcKeepaliveMinTimeMs = parseDuration('grpc-keepalive-min-time', v)),
  },
  {
    name: 'grpc-keepalive-interval', etcd: true, group: 'Member', type: 'duration', def: '2h', status: 'implemented',
    help: 'Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).',
    apply: (c, v) => (c.grpcKeepaliveIntervalMs = parseDuration('grpc-keepalive-interval', v)),
  },
  {
    name: 'grpc-keepalive-timeout', etcd: true, group: 'Member', type: 'duration', def: '20s', status: 'implemented',
    help: 'Additional duration of wait before closing a non-responsive connection (0 to disable).',
    apply: (c, v) => (c.grpcKeepaliveTimeoutMs = parseDuration('grpc-keepalive-timeout', v)),
  },

  // ---- Clustering
  {
    name: 'initial-advertise-peer-urls', etcd: true, group: 'Clustering', type: 'urls', def: 'http://localhost:2380', status: 'implemented',
    help: "List of this member's peer URLs to advertise to the rest of the cluster.", plinth: 'with the token, they derive the member ID as etcd does.',
    apply: (c, v) => (c.initialAdvertisePeerUrls = urls('initial-advertise-peer-urls', v, true).map((u) => u.href.replace(/\/$/, ''))),
  },
  {
    name: 'initial-cluster', etcd: true, group: 'Clustering', type: 'string', def: '', etcdDef: 'default=http://localhost:2380', status: 'implemented',
    help: 'Initial cluster configuration for bootstrapping.', plinth: "name=peerURL,...; '' is <name>=<advertised peer URLs>; ignored on a restart.",
    apply: (c, v) => (c.initialCluster = v),
  },
  {
    name: 'initial-cluster-state', etcd: true, group: 'Clustering', type: 'string', def: 'new', status: 'implemented',
    help: "Initial cluster state ('new' or 'existing').", plinth: "existing: join a running cluster after 'etcdctl member add'.",
    apply: (c, v) => {
      if (v !== 'new' && v !== 'existing') throw new UsageError(`invalid value "${v}" for flag --initial-cluster-state: want new or existing`);
      c.initialClusterState = v;
    },
  },
  { name: 'initial-cluster-token', etcd: true, group: 'Clustering', type: 'string', def: 'etcd-cluster', status: 'implemented', help: 'Initial cluster token for the etcd cluster during bootstrap.', plinth: 'member and cluster IDs derive from it, as etcd.', apply: (c, v) => (c.initialClusterToken = v) },
  {
    name: 'advertise-client-urls', etcd: true, group: 'Clustering', type: 'urls', def: 'http://127.0.0.1:2379', etcdDef: 'http://localhost:2379', status: 'implemented',
    help: "List of this member's client URLs to advertise to the public.", plinth: 'not given: the listen client URLs.',
    apply: (c, v) => (c.advertiseClientUrls = urls('advertise-client-urls', v, true).map((u) => u.href.replace(/\/$/, ''))),
  },
  refused({ name: 'discovery', group: 'Clustering', type: 'string', def: '', help: 'Discovery URL used to bootstrap the cluster.', reason: DISCOVERY }),
  refused({
    name: 'discovery-fallback', group: 'Clustering', type: 'string', def: 'proxy', help: "Expected behavior ('exit' or 'proxy') when discovery services fails. \"proxy\" supports v2 API only.",
    reason: "Plinth does not use a discovery service; its values are 'proxy' and 'exit'", same: (v) => v === 'proxy' || v === 'exit',
    plinth: "accepted at 'proxy' or 'exit' (no discovery service is used either way); other values refused.",
  }),
  refused({ name: 'discovery-proxy', group: 'Clustering', type: 'string', def: '', help: 'HTTP proxy to use for traffic to discovery service.', reason: DISCOVERY }),
  refused({ name: 'discovery-srv', group: 'Clustering', type: 'string', def: '', help: 'DNS srv domain used to bootstrap the cluster.', reason: DISCOVERY }),
  refused({ name: 'discovery-srv-name', group: 'Clustering', type: 'string', def: '', help: 'Suffix to the dns srv name queried when bootstrapping.', reason: DISCOVERY }),
  {
    name: 'strict-reconfig-check', etcd: true, group: 'Clustering', type: 'bool', def: 'true', status: 'implemented',
    help: 'Reject reconfiguration requests that would cause quorum loss.',
    plinth: "refuses member changes that would leave fewer started members than a quorum, or asked of a member not connected to every voter for 5 s (etcd's checks and words).",
    apply: (c, v) => (c.strictReconfigCheck = bool('strict-reconfig-check', v)),
  },
  { name: 'pre-vote', etcd: true, group: 'Clustering', type: 'bool', def: 'false', status: 'implemented', help: 'Enable to run an additional Raft election phase.', apply: (c, v) => (c.preVote = bool('pre-vote', v)) },
  {
    name: 'auto-compaction-retention', etcd: true, group: 'Clustering', type: 'string', def: '0', status: 'implemented',
    help: 'Auto compaction retention length. 0 means disable auto compaction.',
    plinth: "periodic: a duration ('30m', '1h'; a bare number is hours); revision: how many revisions to keep.",
    apply: (c, v) => (c.autoCompactionRetention = v),
  },
  {
    name: 'auto-compaction-mode', etcd: true, group: 'Clustering', type: 'string', def: 'periodic', status: 'implemented',
    help: "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
    apply: (c, v) => {
      if (v !== 'periodic' && v !== 'revision') throw new UsageError(`unknown auto-compaction-mode "${v}"`);
      c.autoCompactionMode = v as AutoCompactionMode;
    },
  },
  refused({ name: 'enable-v2', group: 'Clustering', type: 'bool', def: 'false', help: 'Accept etcd V2 client requests.', reason: V2 }),

  // ---- Security
  { name: 'cert-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the client server TLS cert file.', plinth: 'https client URLs serve gRPC and the gateway on one port (ALPN h2 and http/1.1).', apply: (c, v) => (c.clientTls.certFile = v) },
  { name: 'key-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the client server TLS key file.', apply: (c, v) => (c.clientTls.keyFile = v) },
  {
    name: 'client-cert-auth', etcd: true, group: 'Security', type: 'bool', def: 'false', status: 'implemented', help: 'Enable client cert authentication.',
    plinth: "with auth on, a request without a token is its certificate's CN (not through the gateway, which etcd refuses then).",
    apply: (c, v) => (c.clientTls.clientCertAuth = bool('client-cert-auth', v)),
  },
  { name: 'client-crl-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the client certificate revocation list file.', apply: (c, v) => (c.clientTls.crlFile = v) },
  { name: 'client-cert-allowed-hostname', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Allowed TLS hostname for client cert authentication.', apply: (c, v) => (c.clientTls.allowedHostname = v) },
  { name: 'trusted-ca-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the client server TLS trusted CA cert file.', apply: (c, v) => (c.clientTls.trustedCaFile = v) },
  { name: 'auto-tls', etcd: true, group: 'Security', type: 'bool', def: 'false', status: 'implemented', help: 'Client TLS using generated certificates.', plinth: 'a self-signed certificate (P-521, as etcd 3.4) in <data-dir>/fixtures/client.', apply: (c, v) => (c.clientTls.autoTls = bool('auto-tls', v)) },
  { name: 'peer-cert-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the peer server TLS cert file.', apply: (c, v) => (c.peerTls.certFile = v) },
  { name: 'peer-key-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the peer server TLS key file.', apply: (c, v) => (c.peerTls.keyFile = v) },
  { name: 'peer-client-cert-auth', etcd: true, group: 'Security', type: 'bool', def: 'false', status: 'implemented', help: 'Enable peer client cert authentication.', apply: (c, v) => (c.peerTls.clientCertAuth = bool('peer-client-cert-auth', v)) },
  { name: 'peer-trusted-ca-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the peer server TLS trusted CA file.', apply: (c, v) => (c.peerTls.trustedCaFile = v) },
  { name: 'peer-cert-allowed-cn', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Required CN for client certs connecting to the peer endpoint.', apply: (c, v) => (c.peerTls.allowedCN = v) },
  { name: 'peer-cert-allowed-hostname', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Allowed TLS hostname for inter peer authentication.', apply: (c, v) => (c.peerTls.allowedHostname = v) },
  { name: 'peer-auto-tls', etcd: true, group: 'Security', type: 'bool', def: 'false', status: 'implemented', help: 'Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.', plinth: "in <data-dir>/fixtures/peer (peers not verified, as etcd's).", apply: (c, v) => (c.peerTls.autoTls = bool('peer-auto-tls', v)) },
  { name: 'peer-crl-file', etcd: true, group: 'Security', type: 'string', def: '', status: 'implemented', help: 'Path to the peer certificate revocation list file.', apply: (c, v) => (c.peerTls.crlFile = v) },
  {
    name: 'cipher-suites', etcd: true, group: 'Security', type: 'strings', def: '', status: 'implemented',
    help: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).', plinth: "Go's cipher suite names.",
    apply: (c, v) => (c.clientTls.cipherSuites = c.peerTls.cipherSuites = v.split(',').map((x) => x.trim()).filter((x) => x !== '')),
  },
  refused({
    name: 'cors', group: 'Security', type: 'strings', def: '*', help: 'Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).',
    reason: 'Plinth answers every origin (Access-Control-Allow-Origin: *); a list of origins is not supported yet', same: (v) => list(v).every((x) => x === '*'),
    plinth: "accepted at '*' or '' (allow all: Plinth's gateway answers every origin); a list of origins is refused (not supported yet).",
  }),
  refused({
    name: 'host-whitelist', group: 'Security', type: 'strings', def: '*', help: 'Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).',
    reason: 'Plinth accepts every Host header; a list of hostnames is not supported yet', same: (v) => list(v).every((x) => x === '*'),
    plinth: "accepted at '*' or '' (allow all); a list of hostnames is refused (not supported yet).",
  }),

  // ---- Auth
  { name: 'auth-token', etcd: true, group: 'Auth', type: 'string', def: 'simple', status: 'implemented', help: "Specify a v3 authentication token type and its options ('simple' or 'jwt').", plinth: "simple, or jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…; a bad value stops the start with etcd's 'auth: invalid auth options'.", apply: (c, v) => (c.authToken = v) },
  { name: 'bcrypt-cost', etcd: true, group: 'Auth', type: 'uint', def: '10', status: 'implemented', help: 'Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.', plinth: "outside 4–31: 10, with etcd's warning.", apply: (c, v) => (c.bcryptCost = int('bcrypt-cost', v, 0)) },
  { name: 'auth-token-ttl', etcd: true, group: 'Auth', type: 'uint', def: '300', status: 'implemented', help: 'Time (in seconds) of the auth-token-ttl.', apply: (c, v) => (c.authTokenTtlS = int('auth-token-ttl', v, 0)) },

  // ---- Profiling and Monitoring
  {
    name: 'enable-pprof', etcd: true, group: 'Profiling and Monitoring', type: 'bool', def: 'false', status: 'implemented',
    help: 'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"', plinth: "Node's profiles (CPU, heap) under /debug/pprof/.",
    apply: (c, v) => (c.enablePprof = bool('enable-pprof', v)),
  },
  {
    name: 'metrics', etcd: true, group: 'Profiling and Monitoring', type: 'string', def: 'basic', status: 'implemented',
    help: "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.", plinth: 'basic or extensive; other values are refused (etcd takes them as basic).',
    apply: (c, v) => {
      if (v !== 'basic' && v !== 'extensive') throw new UsageError(`invalid value "${v}" for flag --metrics: want basic or extensive`);
      c.metrics = v;
    },
  },
  {
    name: 'listen-metrics-urls', etcd: true, group: 'Profiling and Monitoring', type: 'urls', def: '', status: 'implemented',
    help: 'List of URLs to listen on for the metrics and health endpoints.', plinth: 'http, or https with the client TLS flags: /metrics and /health only.',
    apply: (c, v) => (c.listenMetricsUrls = v.trim() === '' ? [] : urls('listen-metrics-urls', v, true)),
  },

  // ---- Logging
  {
    name: 'logger', etcd: true, group: 'Logging', type: 'string', def: 'zap', etcdDef: 'capnslog', status: 'implemented',
    help: "Specify 'zap' for structured logging or 'capnslog'.", plinth: "zap: JSON lines, as etcd's; capnslog: etcd 3.4's older text lines (etcd 3.4's default; deprecated in 3.5).",
    apply: (c, v) => {
      if (v !== 'zap' && v !== 'capnslog') throw new UsageError(`unknown logger option "${v}"`);
      c.logger = v;
    },
  },
  {
    name: 'log-outputs', etcd: true, group: 'Logging', type: 'strings', def: 'default', status: 'implemented',
    help: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.",
    plinth: "default (stderr; there is no journald writer), stderr, stdout, or file paths; capnslog takes one of default, stderr, stdout.",
    apply: (c, v) => (c.logOutputs = list(v)),
  },
  {
    name: 'log-level', etcd: true, group: 'Logging', type: 'string', def: 'info', status: 'implemented',
    help: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.', plinth: 'panic and fatal log as error (Plinth logs nothing at those levels).',
    apply: (c, v) => {
      if (v === 'panic' || v === 'fatal') v = 'error';
      if (!['debug', 'info', 'warn', 'error'].includes(v)) throw new UsageError(`invalid value "${v}" for flag --log-level`);
      c.logLevel = v as ServerConfig['logLevel'];
    },
  },

  // ---- v2 Proxy
  refused({ name: 'proxy', group: 'v2 Proxy', type: 'string', def: 'off', help: "Proxy mode setting ('off', 'readonly' or 'on').", reason: PROXY }),
  refused({ name: 'proxy-failure-wait', group: 'v2 Proxy', type: 'uint', def: '5000', help: 'Time (in milliseconds) an endpoint will be held in a failed state.', reason: PROXY }),
  refused({ name: 'proxy-refresh-interval', group: 'v2 Proxy', type: 'uint', def: '30000', help: 'Time (in milliseconds) of the endpoints refresh interval.', reason: PROXY }),
  refused({ name: 'proxy-dial-timeout', group: 'v2 Proxy', type: 'uint', def: '1000', help: 'Time (in milliseconds) for a dial to timeout.', reason: PROXY }),
  refused({ name: 'proxy-write-timeout', group: 'v2 Proxy', type: 'uint', def: '5000', help: 'Time (in milliseconds) for a write to timeout.', reason: PROXY }),
  refused({ name: 'proxy-read-timeout', group: 'v2 Proxy', type: 'uint', def: '0', help: 'Time (in milliseconds) for a read to timeout.', reason: PROXY }),

  // ---- Experimental feature
  {
    name: 'experimental-initial-corrupt-check', etcd: true, group: 'Experimental feature', type: 'bool', def: 'false', status: 'implemented',
    help: 'Enable to check data corruption before serving any client/peer traffic.',
    plinth: "a restarted member compares its KV hash at its revision with each peer's before raft runs or clients are served; a different hash at the same compact revision stops it (\"found data inconsistency with peers\"), as etcd's.",
    apply: (c, v) => (c.initialCorruptCheck = bool('experimental-initial-corrupt-check', v)),
  },
  refused({
    name: 'experimental-corrupt-check-time', group: 'Experimental feature', type: 'duration', def: '0s', help: 'Duration of time between cluster corruption check passes.',
    reason: 'Plinth does not run periodic corruption checks (hash comparisons raising the CORRUPT alarm) yet',
  }),
  refused({ name: 'experimental-enable-v2v3', group: 'Experimental feature', type: 'string', def: '', help: 'Serve v2 requests through the v3 backend under a given prefix.', reason: V2 }),
  {
    name: 'experimental-backend-bbolt-freelist-type', etcd: true, group: 'Experimental feature', type: 'string', def: 'array', status: 'implemented',
    help: 'ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).', plinth: 'the bolt engine (--backend bolt).',
    apply: (c, v) => {
      if (v !== 'array' && v !== 'map') throw new UsageError(`invalid value "${v}" for flag --experimental-backend-bbolt-freelist-type: want array or map`);
      c.backendBboltFreelistType = v;
    },
  },
  {
    name: 'experimental-enable-lease-checkpoint', etcd: true, group: 'Experimental feature', type: 'bool', def: 'false', status: 'implemented',
    help: 'ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases.',
    plinth: "leases' remaining TTLs are recorded in the log, so a restart or a new leader does not renew them.",
    apply: (c, v) => (c.leaseCheckpointEnabled = bool('experimental-enable-lease-checkpoint', v)),
  },
  {
    name: 'experimental-enable-lease-checkpoint-persist', etcd: true, group: 'Experimental feature', type: 'bool', def: 'false', status: 'implemented',
    help: 'Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases. Requires experimental-enable-lease-checkpoint to be enabled.',
    plinth: "Plinth's checkpoints always persist (as etcd 3.6); etcd's check: true requires --experimental-enable-lease-checkpoint.",
    apply: (_c, v, ctx) => (ctx.leaseCheckpointPersist = bool('experimental-enable-lease-checkpoint-persist', v)),
  },
  {
    name: 'experimental-lease-checkpoint-interval', etcd: true, group: 'Experimental feature', type: 'duration', def: '5m', status: 'implemented',
    help: 'Duration of the time between lease checkpoints (etcd 3.5\'s flag).', plinth: 'with --experimental-enable-lease-checkpoint.',
    apply: (c, v) => (c.leaseCheckpointIntervalMs = parseDuration('experimental-lease-checkpoint-interval', v)),
  },
  {
    name: 'experimental-compaction-batch-limit', etcd: true, group: 'Experimental feature', type: 'int', def: '1000', status: 'implemented',
    help: 'ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.', plinth: 'revisions deleted per backend commit during compaction.',
    apply: (c, v) => (c.compactionBatchLimit = int('experimental-compaction-batch-limit', v, 1)),
  },
  {
    name: 'experimental-compaction-sleep-interval', etcd: true, group: 'Experimental feature', type: 'duration', def: '10ms', status: 'implemented',
    help: "Sets the sleep interval between each compaction batch (etcd 3.5's flag; etcd 3.4 sleeps a fixed 10ms).",
    apply: (c, v) => (c.compactionSleepIntervalMs = parseDuration('experimental-compaction-sleep-interval', v)),
  },
  {
    name: 'experimental-peer-skip-client-san-verification', etcd: true, group: 'Experimental feature', type: 'bool', def: 'false', status: 'implemented',
    help: 'Skip verification of SAN field in client certificate for peer connections.',
    apply: (c, v) => (c.peerTls.skipClientSanVerify = bool('experimental-peer-skip-client-san-verification', v)),
  },
  {
    name: 'experimental-watch-progress-notify-interval', etcd: true, group: 'Experimental feature', type: 'duration', def: '10m', status: 'implemented',
    help: 'Duration of periodical watch progress notification.', plinth: 'how often progress_notify watchers get a progress response.',
    apply: (c, v) => (c.watchProgressNotifyIntervalMs = parseDuration('experimental-watch-progress-notify-interval', v)),
  },
  {
    name: 'experimental-warning-apply-duration', etcd: true, group: 'Experimental feature', type: 'duration', def: '100ms', status: 'implemented',
    help: 'Warning is generated if requests take more than this duration.', plinth: 'logged as etcd\'s "apply request took too long".',
    apply: (c, v) => (c.warningApplyDurationMs = parseDuration('experimental-warning-apply-duration', v)),
  },
  {
    name: 'experimental-snapshot-catchup-entries', etcd: true, group: 'Experimental feature', type: 'uint', def: '5000', status: 'implemented',
    help: "Number of entries for a slow follower to catch up after compacting the raft storage entries (etcd 3.5's flag; etcd 3.4's fixed SnapshotCatchUpEntries).",
    plinth: 'entries kept in the log behind a snapshot point, so a follower that lags by fewer catches up from the log.',
    apply: (c, v) => (c.snapshotCatchUpEntries = int('experimental-snapshot-catchup-entries', v, 1)),
  },

  // ---- Unsafe feature
  refused({
    name: 'force-new-cluster', group: 'Unsafe feature', type: 'bool', def: 'false', help: 'Force to create a new one-member cluster.',
    reason: "Plinth does not support --force-new-cluster yet; to recover, restore a snapshot with 'plinth snapshot restore' into a new cluster",
  }),
  { name: 'unsafe-no-fsync', etcd: true, group: 'Unsafe feature', type: 'bool', def: 'false', status: 'implemented', help: 'Disables fsync, unsafe, will cause data loss.', plinth: 'a power loss can lose acknowledged writes (a process crash cannot).', apply: (c, v) => (c.unsafeNoFsync = bool('unsafe-no-fsync', v)) },

  // ---- To be deprecated (and etcd's flags that its help does not list)
  {
    name: 'debug', etcd: true, group: 'To be deprecated', type: 'bool', def: 'false', status: 'implemented',
    help: "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use '--log-level=debug' instead.", plinth: 'true: --log-level debug, with etcd\'s warning.',
    apply: (_c, v, ctx) => (ctx.debug = bool('debug', v)),
  },
  {
    name: 'log-package-levels', etcd: true, group: 'To be deprecated', type: 'string', def: '', status: 'stored',
    help: "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
    plinth: "with etcd's deprecation warning; Plinth has no per-package levels (as etcd with --logger=zap): use --log-level.",
    apply: (c, v) => (c.logPackageLevels = v),
  },
  {
    name: 'log-output', etcd: true, group: 'To be deprecated', type: 'strings', def: 'default', status: 'implemented',
    help: "[TO BE DEPRECATED IN v3.5] use '--log-outputs'.", plinth: 'an older name of --log-outputs (with etcd\'s warning).',
    apply: (c, v, ctx) => {
      const outs = list(v);
      if (!ctx.given.has('log-outputs')) c.logOutputs = outs;
      if (!(outs.length === 1 && outs[0] === 'default')) ctx.warnings.push("'--log-output' flag has been deprecated! Please use '--log-outputs'!");
    },
  },
  refused({
    name: 'config-file', group: 'To be deprecated', type: 'string', def: '', help: 'Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.',
    reason: 'Plinth does not read configuration files yet; give the flags, or their ETCD_* environment variables',
  }),
  refused({
    name: 'enable-grpc-gateway', group: 'To be deprecated', type: 'bool', def: 'true', help: 'Enable GRPC gateway.',
    reason: 'Plinth always serves the gRPC gateway (JSON over HTTP) on its client URLs; turning it off is not supported yet',
  }),

  // ---- Plinth's own
  {
    name: 'backend', etcd: false, group: 'Plinth', type: 'string', def: 'lmdb', status: 'implemented', help: `Storage engine: ${ENGINE_KINDS.join(', ')}.`,
    apply: (c, v) => {
      if (!ENGINE_KINDS.includes(v as EngineKind)) throw new UsageError(`invalid value "${v}" for flag --backend: want one of ${ENGINE_KINDS.join(', ')}`);
      c.backend = v as EngineKind;
    },
  },
  {
    name: 'backend-bbolt-freelist-sync', etcd: false, group: 'Plinth', type: 'bool', def: 'false', status: 'implemented',
    help: 'Write the bolt freelist page on every commit, as plain bbolt does (false: rebuilt at open, as etcd 3.4 runs bbolt).',
    apply: (c, v) => (c.backendBboltFreelistSync = bool('backend-bbolt-freelist-sync', v)),
  },
  {
    name: 'wal-segment-bytes', etcd: false, group: 'Plinth', type: 'uint', def: '67108864', status: 'implemented',
    help: "Size of each preallocated WAL segment file (etcd's is fixed at 64 MiB; smaller suits a small tmpfs).",
    apply: (c, v) => (c.walSegmentBytes = int('wal-segment-bytes', v, 64 * 1024)),
  },
  {
    name: 'auto-compaction-revision-interval', etcd: false, group: 'Plinth', type: 'duration', def: '5m', status: 'implemented',
    help: 'How often revision-mode auto compaction checks (fixed at 5m in etcd 3.4).',
    apply: (c, v) => (c.autoCompactionRevisionIntervalMs = Math.max(1, parseDuration('auto-compaction-revision-interval', v))),
  },
];

export type Command = { kind: 'serve'; config: ServerConfig; warnings: string[] } | { kind: 'help' } | { kind: 'version' };

export const envName = (f: FlagSpec) => (f.etcd ? 'ETCD_' : 'PLINTH_') + f.name.toUpperCase().replace(/-/g, '_');

/** Parses argv (without node and script) and env into a command; throws UsageError on bad input. */
export function parseArgs(argv: string[], env: Record<string, string | undefined> = {}): Command {
  const cfg = defaultConfig();
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  const ctx: ParseContext = { given: new Set(), warnings: [], debug: false, leaseCheckpointPersist: false };
  const seen = new Set<string>();
  const set = (f: FlagSpec, v: string) => {
    f.apply(cfg, v, ctx);
    ctx.given.add(f.name);
  };
  const fromArgv: [FlagSpec, string][] = [];
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
      if (f.type === 'bool') value = 'true';
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${f.name}`);
        value = argv[++i];
      }
    }
    if (seen.has(f.name)) throw new UsageError(`flag --${f.name} given twice`);
    seen.add(f.name);
    fromArgv.push([f, value]);
  }
  // The environment, as etcd's SetFlagsFromEnv: an empty variable is not a value, and a flag given on
  // the command line shadows its variable (with etcd 3.4's warning), so a bad variable it shadows is
  // not an error.
  for (const f of FLAGS) {
    const name = envName(f);
    const v = env[name];
    if (v === undefined || v === '') continue;
    if (seen.has(f.name)) {
      ctx.warnings.push(`recognized environment variable ${name}, but unused: shadowed by corresponding flag`);
      continue;
    }
    set(f, v);
  }
  for (const [f, v] of fromArgv) set(f, v);
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
  if (ctx.given.has('listen-client-urls') && !ctx.given.has('advertise-client-urls')) cfg.advertiseClientUrls = cfg.listenClientUrls.map((u) => u.href.replace(/\/$/, ''));
  checkLogging(cfg, ctx);
  if (ctx.leaseCheckpointPersist && !cfg.leaseCheckpointEnabled) {
    throw new UsageError('setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint');
  }
  return { kind: 'serve', config: cfg, warnings: ctx.warnings };
}

/** etcd's checks of the logging flags (embed/config_logging.go setupLogging), with its words. */
function checkLogging(cfg: ServerConfig, ctx: ParseContext): void {
  if (ctx.debug) {
    ctx.warnings.push(`[WARNING] Deprecated '--debug' flag is set to true (use '--log-level=debug' instead`);
    if (cfg.logLevel !== 'debug') ctx.warnings.push(`[WARNING] Deprecated '--debug' flag is set to true with inconsistent '--log-level=${cfg.logLevel}' flag`);
    cfg.logLevel = 'debug';
  }
  if (cfg.logger === 'capnslog') ctx.warnings.push(`[WARNING] Deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead`);
  if (cfg.logPackageLevels !== '') ctx.warnings.push(`[WARNING] Deprecated '--log-package-levels=${cfg.logPackageLevels}' flag is set; use '--logger=zap' flag instead`);
  const outs = cfg.logOutputs;
  const q = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(' ')}]`;
  if (cfg.logger === 'capnslog') {
    if (outs.length !== 1) throw new UsageError(`--logger=capnslog supports only 1 value in '--log-outputs', got ${q(outs)}`);
    if (!['default', 'stderr', 'stdout'].includes(outs[0])) throw new UsageError(`unknown log-output "${outs[0]}" (only supports "default", "stderr", "stdout")`);
  } else {
    if (outs.length === 0) cfg.logOutputs = ['default'];
    if (outs.length > 1 && outs.includes('default')) throw new UsageError(`multi logoutput for "default" is not supported yet`);
  }
}

const quote = (v: string) => `'${v}'`;

/** What Plinth does with a flag, in a few words and its note. */
function statusText(f: FlagSpec): string {
  const label = !f.etcd ? "Plinth's own" : f.status === 'implemented' ? '' : f.status === 'stored' ? 'accepted and stored' : `refused unless ${quote(f.def)}`;
  return [label, f.plinth ?? ''].filter((x) => x !== '').join(': ');
}

/** `plinth --help`: every flag, in etcd's groups, as etcd prints it (`--name 'default'`), with its type and env variable. */
export function usage(): string {
  const lines = [
    'Usage:', '', '  plinth [flags]', '    Start a Plinth member (an etcd v3 compatible key-value server).', '',
    '  plinth --version', '    Show the version of Plinth.', '',
    '  plinth -h | --help', '    Show the help information about Plinth.', '',
    '  plinth snapshot restore FILE --data-dir DIR [flags]', "    Restore a snapshot taken with 'etcdctl snapshot save' (plinth snapshot --help).", '',
    '  plinth snapshot status FILE [-w simple|json|table|fields]', "    Print a snapshot file's hash, revision, total keys and total size, as 'etcdctl snapshot status'.", '',
    'Each flag can be given in the environment: ETCD_<NAME> for etcd\'s flags, PLINTH_<NAME> for Plinth\'s own',
    '(upper case, - as _); a flag on the command line wins. Flags marked "accepted only at" stop the start',
    'with a one-line reason at any other value.',
  ];
  for (const g of FLAG_GROUPS) {
    const fs = FLAGS.filter((f) => f.group === g);
    if (fs.length === 0) continue;
    lines.push('', `${g === 'Plinth' ? "Plinth's own" : g}:`);
    for (const f of fs) {
      lines.push(`  --${f.name} ${quote(f.def)}    [${f.type}; env ${envName(f)}]`);
      lines.push(`    ${f.help}`);
      if (f.etcdDef !== undefined) lines.push(`    etcd 3.4's default: ${quote(f.etcdDef)}.`);
      const s = f.etcd ? statusText(f) : '';
      if (s) lines.push(`    Plinth: ${s}`);
    }
  }
  return lines.join('\n');
}

const md = (s: string) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** README's flag table, made from the same FLAGS as --help. */
export function flagsMarkdown(): string {
  const lines = [
    '| flag | type | default | meaning | in Plinth |',
    '|---|---|---|---|---|',
  ];
  for (const g of FLAG_GROUPS) {
    const fs = FLAGS.filter((f) => f.group === g);
    if (fs.length === 0) continue;
    lines.push(`| **${g === 'Plinth' ? "Plinth's own (env PLINTH_*)" : g}** | | | | |`);
    for (const f of fs) {
      const def = f.def === '' ? "`''`" : `\`${f.def}\``;
      const etcdDef = f.etcdDef !== undefined ? ` (etcd: ${f.etcdDef === '' ? "`''`" : `\`${f.etcdDef}\``})` : '';
      const status = f.etcd && f.status === 'implemented' ? ['implemented', f.plinth ?? ''].filter((x) => x !== '').join(': ') : statusText(f);
      lines.push(`| \`--${f.name}\` | ${f.type} | ${def}${etcdDef} | ${md(f.help)} | ${md(status)} |`);
    }
  }
  return lines.join('\n');
}

export const FLAGS_MD_BEGIN = '<!-- flags:begin (generated from src/cli/flags.ts by `npm run docs:flags`; do not edit) -->';
export const FLAGS_MD_END = '<!-- flags:end -->';

/** README's text with the section between the markers replaced by the generated table. */
export function withFlagsSection(readme: string): string {
  const a = readme.indexOf(FLAGS_MD_BEGIN);
  const b = readme.indexOf(FLAGS_MD_END);
  if (a < 0 || b < a) throw new Error('README.md has no flags section markers');
  return readme.slice(0, a + FLAGS_MD_BEGIN.length) + '\n' + flagsMarkdown() + '\n' + readme.slice(b);
}
