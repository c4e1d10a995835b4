import * as net from 'node:net';

// Listeners bound before the member touches its data dir (as etcd's embed.StartEtcd opens its peer and
// client listeners before it reads the WAL): a busy or forbidden port is a one-line failure before
// anything is written, and nothing else can take the port while the WAL is replayed. Node accepts
// every connection at once, so what arrives before the server is ready is held, paused and unread, in
// a bounded queue (the kernel's accept backlog plays that part in Go), and handed over when it is.

/** Connections held per listener before it is served; beyond, new ones are closed (clients retry). */
export const MAX_EARLY_CONNECTIONS = 256;

export interface BoundListener {
  readonly url: URL;
  readonly server: net.Server;
  /** The port actually bound (the URL's, or the one chosen for port 0). */
  readonly port: number;
  /** From now on connections go to onConnection, those held first, in arrival order. */
  serve(onConnection: (socket: net.Socket) => void): void;
  close(): Promise<void>;
}

/** The host as server.listen wants it (IPv6 literals without brackets). */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Why a listen failed, in the words of etcd's one-line start-up errors. */
function listenError(err: NodeJS.ErrnoException): string {
  if (err.code === 'EADDRINUSE') return 'address already in use';
  if (err.code === 'EADDRNOTAVAIL') return 'address not available on this host';
  if (err.code === 'EACCES') return 'permission denied';
  return err.message;
}

/**
 * Binds url. defaultPort is used when the URL has none; `what` names the listener in the error
 * ("cannot listen for clients on http://…: address already in use").
 */
export async function bindListener(url: URL, what: string, defaultPort: number, opts: net.ServerOpts = {}): Promise<BoundListener> {
  const held: net.Socket[] = [];
  const forget = new Map<net.Socket, () => void>();
  let handler: ((socket: net.Socket) => void) | undefined;
  const server = net.createServer({ ...opts, pauseOnConnect: true }, (sock) => {
    if (handler) {
      sock.resume();
      return handler(sock);
    }
    if (held.length >= MAX_EARLY_CONNECTIONS) return void sock.destroy();
    held.push(sock);
    // A client that gives up while held is forgotten (an error must not be left unhandled).
    const ignore = () => {};
    const gone = () => {
      const i = held.indexOf(sock);
      if (i >= 0) held.splice(i, 1);
      forget.delete(sock);
    };
    sock.on('error', ignore);
    sock.once('close', gone);
    forget.set(sock, () => {
      sock.off('error', ignore);
      sock.off('close', gone);
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen for ${what} on ${url.href}: ${listenError(err)}`));
    server.once('error', onError);
    server.listen({ host: hostOf(url), port: Number(url.port || defaultPort) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url,
    server,
    port,
    serve(onConnection) {
      handler = onConnection;
      for (const sock of held.splice(0)) {
        forget.get(sock)?.();
        forget.delete(sock);
        if (sock.destroyed) continue;
        sock.resume();
        onConnection(sock);
      }
    },
    close() {
      for (const sock of held.splice(0)) sock.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Binds every URL, in order; on a failure, what was bound is closed again and the error thrown. */
export async function bindListeners(urls: readonly URL[], what: string, defaultPort: number, opts: net.ServerOpts = {}): Promise<BoundListener[]> {
  const bound: BoundListener[] = [];
  try {
    for (const u of urls) bound.push(await bindListener(u, what, defaultPort, opts));
  } catch (err) {
    await Promise.all(bound.map((b) => b.close()));
    throw err;
  }
  return bound;
}
