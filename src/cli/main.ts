import { startGrpc } from '../api/grpc-server';
import { bindClientListeners } from '../api/http/listener';
import { prepareClientTls, type ClientTls } from '../api/http/client-tls';
import { bindListeners, type BoundListener } from '../net/bound-listener';
import { ETCD_COMPAT_VERSION } from '../server/config';
import { EtcdServer } from '../server/etcd-server';
import { restoreSnapshot } from '../server/snapshot';
import { join } from 'node:path';
import { initRestoredMember } from '../server/bootstrap';
import { ENGINE_KINDS, openBackend, type EngineKind } from '../storage';
import { parseArgs, usage, UsageError, type Command } from './flags';

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
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
  // Listeners first, as etcd's: a busy port is reported before anything is read from or written to the
  // data dir, and no other process can take a port while the WAL is replayed. Connections that arrive
  // meanwhile wait (bounded: bound-listener.ts).
  let clientListeners: BoundListener[];
  let peerListeners: BoundListener[] = [];
  try {
    clientListeners = await bindClientListeners(cfg.listenClientUrls);
    try {
      if (cfg.listenPeerUrls) peerListeners = await bindListeners(cfg.listenPeerUrls, 'peers', 2380, { noDelay: true });
    } catch (err) {
      await Promise.all(clientListeners.map((l) => l.close()));
      throw err;
    }
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  // The client URLs' TLS (files read, --auto-tls certificates made), refused in etcd's words before the
  // data dir is opened.
  let clientTls: ClientTls | undefined;
  try {
    clientTls = await prepareClientTls(cfg.listenClientUrls, cfg.clientTls, cfg.dataDir, (level, msg) => log(level === 'warn' ? `warning: ${msg}` : msg));
    if (clientTls) cfg.clientTls = clientTls.info;
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    await Promise.all([...clientListeners, ...peerListeners].map((l) => l.close()));
    process.exit(1);
  }
  let server: EtcdServer;
  // Set once serving: how the member stops (a signal, or its removal from the cluster).
  let stopServing: ((why: string) => Promise<void>) | undefined;
  try {
    server = await EtcdServer.open(cfg, {
      log,
      // The WAL or the backend could not be written: stop, as etcd does; a restart replays the WAL.
      onFatal: () => process.exit(1),
      // Removed from the cluster: stop as after SIGTERM, with status 0 (as etcd exits).
      onRemoved: () => void (stopServing ? stopServing('removal from the cluster') : process.exit(0)),
      peerListeners,
    });
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    process.exit(1);
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
    log(`cannot start: cannot serve clients: ${(err as Error).message}`);
    await server.close().catch(() => {});
    process.exit(1);
  }
  const { server: grpcServer, listeners } = served;
  log(`plinth ${PLINTH_VERSION} serving ${cfg.listenClientUrls.map((u) => u.href).join(',')} (backend ${cfg.backend}, data-dir ${cfg.dataDir}, member ${server.memberId.toString(16)})`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(signal.startsWith('SIG') ? `received ${signal}, stopping` : `stopping after ${signal}`);
    // The HTTP side first: its gateway streams are gRPC calls that would hold up the gRPC shutdown.
    await listeners.close();
    const force = setTimeout(() => grpcServer.forceShutdown(), 5000);
    await new Promise<void>((r) => grpcServer.tryShutdown(() => r()));
    clearTimeout(force);
    await server.close();
    process.exit(0);
  };
  stopServing = stop;
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

const SNAPSHOT_USAGE = `Usage: plinth snapshot restore FILE --data-dir DIR [--backend lmdb|leveldb|bolt] [--skip-hash-check]
         [--name NAME] [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
         [--initial-advertise-peer-urls URL,...] [--wal-dir DIR]

Turns a snapshot taken with 'etcdctl snapshot save' from a Plinth member or from real etcd (a bbolt file,
or Plinth's earlier format) into the data dir of a member of a new cluster (as 'etcdctl snapshot
restore': the cluster flags name the new members, with etcd's defaults; restore each member's data dir
with its own --name and --initial-advertise-peer-urls).
Start a member on it with the same flags: plinth --data-dir DIR --backend <same or another engine>`;

async function snapshotCommand(argv: string[]): Promise<void> {
  const fail = (msg: string): never => {
    process.stderr.write(`plinth snapshot: ${msg}\n${SNAPSHOT_USAGE}\n`);
    process.exit(2);
  };
  if (argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(SNAPSHOT_USAGE + '\n');
    return;
  }
  if (argv[0] !== 'restore') fail(`unknown subcommand "${argv[0] ?? ''}"`);
  let file: string | undefined;
  let dataDir: string | undefined;
  let backend: EngineKind = 'lmdb';
  let skipHashCheck = false;
  let name = 'default';
  let initialCluster = '';
  let token = 'etcd-cluster';
  let peerUrls = ['http://localhost:2380'];
  let walDir = '';
  for (let i = 1; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? fail(`flag needs an argument: ${flag}`);
    if (flag === '--data-dir') dataDir = value();
    else if (flag === '--backend') {
      const v = value();
      if (!ENGINE_KINDS.includes(v as EngineKind)) fail(`invalid value "${v}" for flag --backend`);
      backend = v as EngineKind;
    } else if (flag === '--skip-hash-check') skipHashCheck = inline === undefined || inline === 'true';
    else if (flag === '--name') name = value();
    else if (flag === '--initial-cluster') initialCluster = value();
    else if (flag === '--initial-cluster-token') token = value();
    else if (flag === '--initial-advertise-peer-urls') peerUrls = value().split(',').map((u) => u.trim());
    else if (flag === '--wal-dir') walDir = value();
    else if (flag.startsWith('-')) fail(`unknown flag: ${flag}`);
    else if (!file) file = flag;
    else fail(`unexpected argument "${flag}"`);
  }
  if (!file) fail('no snapshot file given');
  if (!dataDir) fail('--data-dir is required');
  if (backend === 'memory') fail('the memory engine keeps nothing on disk: restore onto lmdb, leveldb or bolt');
  try {
    const { entries } = await restoreSnapshot(file!, dataDir!, backend, { skipHashCheck });
    const be = await openBackend(backend, { dir: join(dataDir!, 'member', 'snap') });
    try {
      const ids = await initRestoredMember(be, walDir || join(dataDir!, 'member', 'wal'), {
        name, initialCluster: initialCluster || peerUrls.map((u) => `${name}=${u}`).join(','), token, advertisePeerUrls: peerUrls,
      });
      process.stderr.write(`restored snapshot ${file} into ${dataDir} (${backend}, ${entries} entries; member ${ids.memberId.toString(16)} of cluster ${ids.clusterId.toString(16)})\n`);
    } finally {
      await be.close();
    }
  } catch (err) {
    process.stderr.write(`plinth snapshot: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
