import type { EngineKind } from '../storage';
import type { AutoCompactionMode } from './auto-compactor';
import { emptyTlsInfo, type TlsInfo } from '../tls/tls-info';

/** The server's whole configuration: built once from flags, environment and defaults, then read-only. */
export interface ServerConfig {
  name: string;
  dataDir: string;
  /** Where the WAL lives; '' = <data-dir>/member/wal (etcd's --wal-dir). */
  walDir: string;
  /** WAL segment size (etcd's is fixed at 64 MiB; smaller suits small tmpfs placements). */
  walSegmentBytes: number;
  backend: EngineKind;
  /** The bolt engine's freelist: etcd's --experimental-backend-bbolt-freelist-type (array, etcd 3.4's default, or map). */
  backendBboltFreelistType: 'array' | 'map';
  /** Write the bolt freelist every commit (bbolt's default); etcd 3.4 does not (NoFreelistSync) and rebuilds it at open. */
  backendBboltFreelistSync: boolean;
  listenClientUrls: URL[];
  advertiseClientUrls: string[];
  /** This member's peer URLs as the others reach it (its member ID derives from them, as etcd's). */
  initialAdvertisePeerUrls: string[];
  /**
   * Where to listen for peers. Undefined (flag not given): a single member does not listen at all
   * (etcd would take localhost:2380); a member with peers listens on its advertised peer URLs.
   */
  listenPeerUrls: URL[] | undefined;
  /** etcd's --initial-cluster (name=peerURL,...); '' = this member alone at its advertised peer URLs. */
  initialCluster: string;
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  /** Raft heartbeat interval (one tick), ms (etcd's --heartbeat-interval). */
  heartbeatIntervalMs: number;
  /** Raft election timeout, ms (etcd's --election-timeout); a whole number of heartbeats. */
  electionTimeoutMs: number;
  /** Applied entries between raft snapshots (etcd's --snapshot-count). */
  snapshotCount: number;
  /**
   * Entries the leader keeps in its log behind a snapshot, so a follower that lags by fewer catches up
   * from the log rather than by a whole snapshot (etcd's SnapshotCatchUpEntries, 5000; etcd 3.5's
   * --experimental-snapshot-catchup-entries).
   */
  snapshotCatchUpEntries: number;
  /** Raft pre-vote (etcd's --pre-vote): a partitioned member cannot disrupt the others when it returns. */
  preVote: boolean;
  /**
   * etcd's --strict-reconfig-check (default true): member changes that would leave fewer started
   * members than a quorum, or that a member not connected to every peer for 5 s asks for, are refused.
   */
  strictReconfigCheck: boolean;
  maxRequestBytes: number;
  /** etcd's --max-concurrent-streams: streams one client connection may have open (0 = no limit, etcd's math.MaxUint32). */
  maxConcurrentStreams: number;
  /** etcd's --grpc-keepalive-min-time: a client pinging more often is told too_many_pings and cut off (ms). */
  grpcKeepaliveMinTimeMs: number;
  /** etcd's --grpc-keepalive-interval: the server pings a connection idle this long (ms; 0 = never). */
  grpcKeepaliveIntervalMs: number;
  /** etcd's --grpc-keepalive-timeout: a connection whose ping is not answered within this is closed (ms). */
  grpcKeepaliveTimeoutMs: number;
  maxTxnOps: number;
  /** Backend size at which the NOSPACE alarm is raised; 0 = etcd's default 2 GiB, negative = no quota. */
  quotaBackendBytes: number;
  /** Backend writes per backend commit (etcd's --backend-batch-limit). */
  backendBatchLimit: number;
  /** Longest time between backend commits (etcd's --backend-batch-interval). */
  backendBatchIntervalMs: number;
  /** Revisions deleted per backend commit in a compaction (etcd's --experimental-compaction-batch-limit). */
  compactionBatchLimit: number;
  /** Pause between compaction batches (etcd's --experimental-compaction-sleep-interval). */
  compactionSleepIntervalMs: number;
  /** etcd's --auto-compaction-mode: how autoCompactionRetention reads. */
  autoCompactionMode: AutoCompactionMode;
  /** etcd's --auto-compaction-retention as given ("0" = off, "1" = 1h in periodic mode, "30m", "1000"). */
  autoCompactionRetention: string;
  /** How often revision mode checks (etcd 3.4: fixed 5 minutes; Plinth's own flag, for tests). */
  autoCompactionRevisionIntervalMs: number;
  unsafeNoFsync: boolean;
  /** Record leases' remaining TTLs in the log, so a restart does not renew them (etcd's experimental flag). */
  leaseCheckpointEnabled: boolean;
  leaseCheckpointIntervalMs: number;
  /** Requests slower than this are logged (etcd's 100 ms; --experimental-warning-apply-duration). */
  warningApplyDurationMs: number;
  /** How often progress_notify watchers get a progress response (etcd's default 10 minutes). */
  watchProgressNotifyIntervalMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** etcd's --logger: 'zap' (structured JSON lines, our default) or 'capnslog' (etcd 3.4's older text format). */
  logger: 'zap' | 'capnslog';
  /** etcd's --log-outputs: 'default' (stderr), 'stderr', 'stdout', or file paths. */
  logOutputs: string[];
  /** etcd's --metrics: 'basic', or 'extensive' (adds gRPC handling-time histograms). */
  metrics: 'basic' | 'extensive';
  /** etcd's --listen-metrics-urls: extra listeners serving only /metrics and /health. */
  listenMetricsUrls: URL[];
  /** etcd's --enable-pprof: serve runtime profiles under /debug/pprof/ on the client URLs. */
  enablePprof: boolean;
  /**
   * etcd's --experimental-initial-corrupt-check: before serving, a member that restarts on a data dir
   * compares its KV hash with its peers' at its revision (etcd's CheckInitialHashKV) and refuses to
   * start on a mismatch at the same compact revision.
   */
  initialCorruptCheck: boolean;
  /** etcd's --initial-election-tick-advance: fast-forward election ticks at boot (stored; raft timing only). */
  initialElectionTickAdvance: boolean;
  /** etcd's --max-snapshots: snapshot files kept (stored; Plinth writes no .snap files: the backend is its snapshot). */
  maxSnapshots: number;
  /** etcd's --log-package-levels (capnslog's per-package levels; stored, and warned about, as etcd does with zap). */
  logPackageLevels: string;
  /** etcd's --bcrypt-cost: bcrypt's cost for auth passwords (outside [4, 31]: 10, with a warning). */
  bcryptCost: number;
  /** etcd's --auth-token: "simple" or "jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...". */
  authToken: string;
  /** etcd's --auth-token-ttl: a simple token's lifetime, seconds. */
  authTokenTtlS: number;
  /**
   * The client listeners' TLS (etcd's ClientTLSInfo: --cert-file, --key-file, --trusted-ca-file,
   * --client-cert-auth, --client-crl-file, --client-cert-allowed-hostname, --cipher-suites, --auto-tls),
   * used by https client URLs. With clientCertAuth, a request without a token is its certificate's CN.
   */
  clientTls: TlsInfo;
  /**
   * The peer listeners' and dialer's TLS (etcd's PeerTLSInfo: --peer-cert-file, --peer-key-file,
   * --peer-trusted-ca-file, --peer-client-cert-auth, --peer-crl-file, --peer-cert-allowed-cn,
   * --peer-cert-allowed-hostname, --peer-auto-tls), used with https peer URLs.
   */
  peerTls: TlsInfo;
}

export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** gRPC messages may exceed the request limit by this much before gRPC itself refuses them (etcd's). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** The etcd release whose API and behaviour Plinth follows; reported where etcd reports its version. */
export const ETCD_COMPAT_VERSION = '3.4.23';
export const ETCD_CLUSTER_VERSION = '3.4.0';

export function defaultConfig(): ServerConfig {
  return {
    name: 'default',
    dataDir: 'data',
    walDir: '',
    walSegmentBytes: 64 * 1024 * 1024,
    backend: 'lmdb',
    backendBboltFreelistType: 'array',
    backendBboltFreelistSync: false,
    listenClientUrls: [new URL('http://127.0.0.1:2379')],
    advertiseClientUrls: ['http://127.0.0.1:2379'],
    initialAdvertisePeerUrls: ['http://localhost:2380'],
    listenPeerUrls: undefined,
    initialCluster: '',
    initialClusterState: 'new',
    initialClusterToken: 'etcd-cluster',
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    snapshotCount: 100_000,
    snapshotCatchUpEntries: 5000,
    preVote: false,
    strictReconfigCheck: true,
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxConcurrentStreams: 0,
    grpcKeepaliveMinTimeMs: 5_000,
    grpcKeepaliveIntervalMs: 2 * 3_600_000,
    grpcKeepaliveTimeoutMs: 20_000,
    maxTxnOps: 128,
    quotaBackendBytes: 0,
    backendBatchLimit: 10_000,
    backendBatchIntervalMs: 100,
    compactionBatchLimit: 1000,
    compactionSleepIntervalMs: 10,
    autoCompactionMode: 'periodic',
    autoCompactionRetention: '0',
    autoCompactionRevisionIntervalMs: 5 * 60 * 1000,
    unsafeNoFsync: false,
    watchProgressNotifyIntervalMs: 10 * 60 * 1000,
    warningApplyDurationMs: 100,
    leaseCheckpointEnabled: false,
    leaseCheckpointIntervalMs: 5 * 60 * 1000,
    logLevel: 'info',
    logger: 'zap',
    logOutputs: ['default'],
    metrics: 'basic',
    listenMetricsUrls: [],
    enablePprof: false,
    initialCorruptCheck: false,
    initialElectionTickAdvance: true,
    maxSnapshots: 5,
    logPackageLevels: '',
    bcryptCost: 10,
    authToken: 'simple',
    authTokenTtlS: 300,
    clientTls: emptyTlsInfo(),
    peerTls: emptyTlsInfo(),
  };
}

export function effectiveQuota(cfg: ServerConfig): number {
  if (cfg.quotaBackendBytes < 0) return Infinity;
  return cfg.quotaBackendBytes === 0 ? DEFAULT_QUOTA_BYTES : cfg.quotaBackendBytes;
}
