import { startGrpc } from '../api/grpc-server';
import { bindClientListeners } from '../api/http/listener';
import { prepareClientTls, type ClientTls } from '../api/http/client-tls';
import { bindMetricsListeners, startMetricsListeners, type MetricsListeners } from '../api/http/metrics-listener';
import { bindListeners, type BoundListener } from '../net/bound-listener';
import { ETCD_COMPAT_VERSION } from '../server/config';
import { EtcdServer } from '../server/etcd-server';
import { initialClusterOf } from '../server/bootstrap';
import type { ServerConfig } from '../server/config';
import { goDuration } from '../mvcc/kv-store';
import { createLogger, type Logger } from '../log';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs, usage, UsageError, type Command } from './flags';
import { snapshotCommand } from './snapshot-command';

const PLINTH_VERSION: string = require('../../../package.json').version;

/** The `plinth` command. */
export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'snapshot') return snapshotCommand(argv.slice(1));
  let cmd: Command;
  try {
    cmd = parseArgs(argv, process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`plinth: ${err.message}\nRun 'plinth --help' for the flags.\n`);
      process.exit(2);
    }
    throw err;
  }
  if (cmd.kind === 'help') {
    process.stdout.write(usage() + '\n');
    return;
  }
  if (cmd.kind === 'version') {
    process.stdout.write(`plinth Version: ${PLINTH_VERSION}\netcd API Version: ${ETCD_COMPAT_VERSION}\nNode Version: ${process.version}\n`);
    return;
  }
  const cfg = cmd.config;
  // The one logger (src/log): --logger, --log-level, --log-outputs; every layer logs through it.
  let logger: Logger;
  try {
    logger = createLogger({ logger: cfg.logger, level: cfg.logLevel, outputs: cfg.logOutputs });
  } catch (err) {
    process.stderr.write(`plinth: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const log = logger.module('cli/main.ts');
  // A start that fails: one "fatal" line (etcd's words: "failed to start etcd"), written out, then exit 1.
  const cannotStart = async (err: unknown): Promise<never> => {
    logger.fatal('cli/main.ts', 'failed to start etcd', { error: (err as Error).message });
    await logger.flush();
    process.exit(1);
  };
  for (const w of cmd.warnings) log('warn', w);
  if (cfg.listenPeerUrls) log('info', 'configuring peer listeners', { 'listen-peer-urls': cfg.listenPeerUrls.map(urlString) });
  log('info', 'configuring client listeners', { 'listen-client-urls': cfg.listenClientUrls.map(urlString) });
  // Listeners first, as etcd's: a busy port is reported before anything is read from or written to the
  // data dir, and no other process can take a port while the WAL is replayed. Connections that arrive
  // meanwhile wait (bounded: bound-listener.ts).
  let clientListeners: BoundListener[];
  let peerListeners: BoundListener[] = [];
  let metricsBound: BoundListener[] = [];
  try {
    clientListeners = await bindClientListeners(cfg.listenClientUrls);
    try {
      if (cfg.listenPeerUrls) peerListeners = await bindListeners(cfg.listenPeerUrls, 'peers', 2380, { noDelay: true });
      metricsBound = await bindMetricsListeners(cfg.listenMetricsUrls);
    } catch (err) {
      await Promise.all([...clientListeners, ...peerListeners].map((l) => l.close()));
      throw err;
    }
  } catch (err) {
    return cannotStart(err);
  }
  // The client URLs' TLS (files read, --auto-tls certificates made), refused in etcd's words before the
  // data dir is opened.
  let clientTls: ClientTls | undefined;
  try {
    // The metrics URLs too: an https one is served with the client certificate, as etcd's.
    clientTls = await prepareClientTls([...cfg.listenClientUrls, ...cfg.listenMetricsUrls], cfg.clientTls, cfg.dataDir, logger.module('api/http/client-tls.ts'));
    if (clientTls) cfg.clientTls = clientTls.info;
  } catch (err) {
    await Promise.all([...clientListeners, ...peerListeners, ...metricsBound].map((l) => l.close()));
    return cannotStart(err);
  }
  log('info', 'starting an etcd server', startFields(cfg));
  let server: EtcdServer;
  // Set once serving: how the member stops (a signal, or its removal from the cluster).
  let stopServing: ((why: string) => Promise<void>) | undefined;
  try {
    server = await EtcdServer.open(cfg, {
      logger,
      // The WAL or the backend could not be written: stop, as etcd does; a restart replays the WAL.
      // (The server logged it as "fatal"; the line is written out before the exit.)
      onFatal: () => void logger.flush().finally(() => process.exit(1)),
      // Removed from the cluster: stop as after SIGTERM, with status 0 (as etcd exits).
      onRemoved: () => void (stopServing ? stopServing('removal from the cluster') : logger.flush().finally(() => process.exit(0))),
      peerListeners,
    });
  } catch (err) {
    return cannotStart(err);
  }
  if (cfg.initialClusterState === 'existing') {
    // A member joining a running cluster serves clients once it is in the member list with its name, as
    // etcd's does (its client port waits for ReadyNotify): `member list` then shows it started.
    await Promise.race([server.published, new Promise((r) => setTimeout(r, 60_000).unref())]);
  }
  let served: Awaited<ReturnType<typeof startGrpc>>;
  try {
    served = await startGrpc(server, clientListeners, clientTls);
  } catch (err) {
    await server.close().catch(() => {});
    return cannotStart(new Error(`cannot serve clients: ${(err as Error).message}`));
  }
  const { server: grpcServer, listeners } = served;
  // --listen-metrics-urls: /metrics and /health on their own listeners, as etcd's.
  let metricsListeners: MetricsListeners;
  try {
    metricsListeners = await startMetricsListeners(server, metricsBound, clientTls);
  } catch (err) {
    await listeners.close();
    grpcServer.forceShutdown();
    await server.close().catch(() => {});
    return cannotStart(new Error(`cannot serve metrics: ${(err as Error).message}`));
  }
  // etcd's embed/serve.go lines, one per client listener.
  for (const l of clientListeners) {
    const address = `${l.url.hostname}:${l.port}`;
    if (l.url.protocol === 'https:') log('info', 'serving client traffic securely', { address });
    else log('info', 'serving client traffic insecurely; this is strongly discouraged!', { address });
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // etcd's words (osutil's interrupt handler, embed's Close); Go names the signals "terminated", "interrupt".
    if (signal.startsWith('SIG')) log('info', 'received signal; shutting down', { signal: signal === 'SIGTERM' ? 'terminated' : signal === 'SIGINT' ? 'interrupt' : signal });
    else log('info', 'the member stops', { reason: signal });
    const closing = { name: cfg.name, 'data-dir': cfg.dataDir, 'advertise-peer-urls': cfg.initialAdvertisePeerUrls, 'advertise-client-urls': cfg.advertiseClientUrls };
    log('info', 'closing etcd server', closing);
    // The HTTP side first: its gateway streams are gRPC calls that would hold up the gRPC shutdown.
    await metricsListeners.close();
    await listeners.close();
    const force = setTimeout(() => grpcServer.forceShutdown(), 5000);
    await new Promise<void>((r) => grpcServer.tryShutdown(() => r()));
    clearTimeout(force);
    await server.close();
    log('info', 'closed etcd server', closing);
    await logger.flush();
    process.exit(0);
  };
  stopServing = stop;
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** A URL as etcd writes it in its log lines (no trailing slash). */
function urlString(u: URL): string {
  return u.href.replace(/\/$/, '');
}

/** etcd's "starting an etcd server" fields (embed.StartEtcd), with Node's where etcd names Go's. */
function startFields(cfg: ServerConfig): Record<string, unknown> {
  return {
    'etcd-version': ETCD_COMPAT_VERSION,
    'plinth-version': PLINTH_VERSION,
    'node-version': process.version,
    'node-os': process.platform,
    'node-arch': process.arch,
    'max-cpu-available': availableParallelism(),
    'member-initialized': existsSync(join(cfg.dataDir, 'member')),
    name: cfg.name,
    'data-dir': cfg.dataDir,
    'wal-dir': cfg.walDir,
    'member-dir': join(cfg.dataDir, 'member'),
    backend: cfg.backend,
    'heartbeat-interval': goDuration(cfg.heartbeatIntervalMs),
    'election-timeout': goDuration(cfg.electionTimeoutMs),
    'snapshot-count': cfg.snapshotCount,
    'snapshot-catchup-entries': cfg.snapshotCatchUpEntries,
    'initial-advertise-peer-urls': cfg.initialAdvertisePeerUrls,
    'listen-peer-urls': (cfg.listenPeerUrls ?? []).map(urlString),
    'advertise-client-urls': cfg.advertiseClientUrls,
    'listen-client-urls': cfg.listenClientUrls.map(urlString),
    'listen-metrics-urls': (cfg.listenMetricsUrls ?? []).map(urlString),
    'initial-cluster': initialClusterOf(cfg),
    'initial-cluster-state': cfg.initialClusterState,
    'initial-cluster-token': cfg.initialClusterToken,
    'quota-backend-bytes': cfg.quotaBackendBytes,
    'max-request-bytes': cfg.maxRequestBytes,
    'max-concurrent-streams': cfg.maxConcurrentStreams,
    'pre-vote': cfg.preVote,
    'auto-compaction-mode': cfg.autoCompactionMode,
    'auto-compaction-retention': cfg.autoCompactionRetention,
  };
}
