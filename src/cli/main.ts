import { startGrpc } from '../api/grpc-server';
import { ETCD_COMPAT_VERSION } from '../server/config';
import { EtcdServer } from '../server/etcd-server';
import { parseArgs, usage, UsageError, type Command } from './flags';

const PLINTH_VERSION: string = require('../../../package.json').version;

/** The `plinth` command. */
export async function main(argv: string[]): Promise<void> {
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
  let server: EtcdServer;
  try {
    server = await EtcdServer.open(cfg, {
      log,
      // The WAL or the backend could not be written: stop, as etcd does; a restart replays the WAL.
      onFatal: () => process.exit(1),
    });
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  const { server: grpcServer } = await startGrpc(server, cfg.listenClientUrls);
  log(`plinth ${PLINTH_VERSION} serving ${cfg.listenClientUrls.map((u) => u.href).join(',')} (backend ${cfg.backend}, data-dir ${cfg.dataDir}, member ${server.memberId.toString(16)})`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`received ${signal}, stopping`);
    const force = setTimeout(() => grpcServer.forceShutdown(), 5000);
    await new Promise<void>((r) => grpcServer.tryShutdown(() => r()));
    clearTimeout(force);
    await server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
