// The one place where peer sockets and listeners are made: plain TCP for http:// peer URLs, TLS for
// https:// ones (etcd's peer TLS flags), with the same shapes, so the protocol code does not care.

import * as net from 'node:net';
import * as tls from 'node:tls';
import { tlsAcceptor, type TlsInfo } from '../../tls';

export interface SocketFactory {
  /** Starts a connection to url (http:// or https://host:port); the caller waits for connectEvent(url) or 'error'. */
  connect(url: URL): net.Socket;
  /** A listener for url; every accepted socket goes to onConnection (handshaken first on https). */
  createServer(url: URL, onConnection: (socket: net.Socket) => void): net.Server;
  /** Wraps the connection handler of a listener bound already, for url. */
  accepting(url: URL, onConnection: (socket: net.Socket) => void): (socket: net.Socket) => void;
  /** The event a connected socket emits when it is ready for the handshake. */
  connectEvent(url: URL): 'connect' | 'secureConnect';
}

/** Peer TLS (etcd's PeerTLSInfo): the listener's and the dialer's options, made from the same info. */
export interface PeerTls {
  info: TlsInfo;
  server: tls.TlsOptions;
  client: tls.ConnectionOptions;
}

export function portOf(url: URL): number {
  return Number(url.port || 80);
}

/** The host as net.connect / server.listen want it (IPv6 literals without brackets). */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export const plainTcp: SocketFactory = peerSockets(undefined);

/**
 * The peer socket factory. Without TLS an https:// peer is dialled over TLS with Node's defaults (as
 * etcd's dialer with an empty TLS info would, and fails unless its certificate verifies).
 */
export function peerSockets(peerTls: PeerTls | undefined, log: (level: 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => void = () => {}): SocketFactory {
  const secure = (url: URL) => url.protocol === 'https:';
  const accepting = (url: URL, onConnection: (socket: net.Socket) => void) => {
    if (!secure(url)) return onConnection;
    if (!peerTls) throw new Error(`cannot listen for peers on ${url.href}: https needs --peer-cert-file and --peer-key-file (or --peer-auto-tls)`);
    return tlsAcceptor(peerTls.server, peerTls.info, 'peer-listener', log, onConnection);
  };
  return {
    connect(url) {
      // Frames are written whole, once per event-loop turn; Nagle would only add latency.
      const socket = secure(url)
        ? tls.connect({ ...(peerTls?.client ?? {}), host: hostOf(url), port: portOf(url), servername: peerTls?.client.servername ?? (net.isIP(hostOf(url)) ? undefined : hostOf(url)) })
        : net.connect({ host: hostOf(url), port: portOf(url) });
      socket.setNoDelay(true);
      return socket;
    },
    createServer(url, onConnection) {
      return net.createServer({ noDelay: true }, accepting(url, onConnection));
    },
    accepting,
    connectEvent: (url) => (secure(url) ? 'secureConnect' : 'connect'),
  };
}

/**
 * Parses a peer URL as the transport accepts it: http:// or https://host:port, no path.
 * Throws an Error that says what is wrong.
 */
export function parsePeerUrl(raw: string | URL): URL {
  let url: URL;
  try {
    url = typeof raw === 'string' ? new URL(raw) : raw;
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(String(raw))}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`invalid peer URL ${url.href}: only http:// and https:// are supported`);
  if (!url.hostname) throw new Error(`invalid peer URL ${url.href}: no host`);
  if (url.pathname !== '/' && url.pathname !== '') throw new Error(`invalid peer URL ${url.href}: a path is not allowed`);
  return url;
}
