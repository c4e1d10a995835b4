// The one place where peer sockets and listeners are made. Plain TCP for now; TLS slots in here
// (tls.connect / tls.createServer with the same shapes) without touching the protocol code.

import * as net from 'node:net';

export interface SocketFactory {
  /** Starts a connection to url (http://host:port); the caller waits for 'connect' or 'error'. */
  connect(url: URL): net.Socket;
  /** A listener; every accepted socket goes to onConnection. */
  createServer(onConnection: (socket: net.Socket) => void): net.Server;
  /** The event a connected socket emits when it is ready for the handshake. */
  readonly connectEvent: 'connect';
}

export function portOf(url: URL): number {
  return Number(url.port || 80);
}

/** The host as net.connect / server.listen want it (IPv6 literals without brackets). */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export const plainTcp: SocketFactory = {
  connect(url) {
    const socket = net.connect({ host: hostOf(url), port: portOf(url) });
    // Frames are written whole, once per event-loop turn; Nagle would only add latency.
    socket.setNoDelay(true);
    return socket;
  },
  createServer(onConnection) {
    return net.createServer({ noDelay: true }, onConnection);
  },
  connectEvent: 'connect',
};

/**
 * Parses a peer URL as the transport accepts it: http://host:port (https when TLS comes), no path.
 * Throws an Error that says what is wrong.
 */
export function parsePeerUrl(raw: string | URL): URL {
  let url: URL;
  try {
    url = typeof raw === 'string' ? new URL(raw) : raw;
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(String(raw))}: not a URL`);
  }
  if (url.protocol !== 'http:') throw new Error(`invalid peer URL ${url.href}: only http:// is supported (Plinth has no peer TLS)`);
  if (!url.hostname) throw new Error(`invalid peer URL ${url.href}: no host`);
  if (url.pathname !== '/' && url.pathname !== '') throw new Error(`invalid peer URL ${url.href}: a path is not allowed`);
  return url;
}
