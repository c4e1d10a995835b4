// Why: a listener bound before the member opened its data dir hands over raw sockets (net/bound-listener);
// on an https URL each must be handshaken before the protocol code sees it. A tls.Server that the raw
// sockets are handed to does the handshake (timed out), the client certificate must have verified where one
// is required (Go's RequireAndVerifyClientCert), then etcd's post-handshake checks (checkPeerCertificate:
// allowed CN/hostname, CRL, a peer's SAN) run before the socket is passed on.

import type * as net from 'node:net';
import { createServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { checkPeerCertificate, needsPeerCheck, type PeerRole } from './peer-check';
import type { TlsInfo } from './tls-info';

/**
 * Handshakes under way per listener, past which new connections are closed at once (a client that opens
 * connections and never finishes a handshake holds one slot each, for HANDSHAKE_TIMEOUT_MS).
 */
export const MAX_PENDING_HANDSHAKES = 1024;
/** A handshake not done by then is dropped (grpc-go's server ConnectionTimeout is 120 s; a TLS handshake is milliseconds). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface AcceptorLog {
  (level: 'debug' | 'warn', msg: string, fields?: Record<string, unknown>): void;
}

/**
 * A connection handler for raw sockets: each is handshaken, checked, then handed to next decrypted. A
 * refused connection is logged as etcd logs it ("rejected connection") and closed.
 */
export function tlsAcceptor(options: TlsOptions, info: TlsInfo, role: PeerRole, log: AcceptorLog, next: (sock: TLSSocket) => void): (sock: net.Socket) => void {
  // Client certificates are verified here rather than by Node's server, so a refused one is logged with
  // why (etcd: "rejected connection ... certificate signed by unknown authority").
  const required = !!options.requestCert && options.rejectUnauthorized !== false;
  const server = createServer({ ...options, rejectUnauthorized: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  /** Handshakes under way, by remote address: each releases its slot once done or gone. */
  const pending = new Map<string, () => void>();
  const release = (sock: net.Socket) => pending.get(`${sock.remoteAddress}:${sock.remotePort}`)?.();
  const reject = (sock: TLSSocket, why: string) => {
    log('warn', 'rejected connection', { 'remote-addr': `${sock.remoteAddress}:${sock.remotePort}`, error: why });
    sock.destroy();
  };
  server.on('secureConnection', (sock: TLSSocket) => {
    release(sock);
    if (required && !sock.authorized) return reject(sock, String(sock.authorizationError ?? 'no client certificate'));
    if (!needsPeerCheck(info, role)) return next(sock);
    checkPeerCertificate(sock, info, role).then(
      () => {
        if (!sock.destroyed) next(sock);
      },
      (err: Error) => reject(sock, err.message),
    );
  });
  server.on('tlsClientError', (err: Error, sock: TLSSocket) => {
    release(sock);
    log('debug', `http: TLS handshake error from ${sock.remoteAddress}:${sock.remotePort}: ${err.message}`);
  });
  return (raw) => {
    if (pending.size >= MAX_PENDING_HANDSHAKES) {
      raw.destroy();
      return;
    }
    const key = `${raw.remoteAddress}:${raw.remotePort}`;
    const done = () => {
      pending.delete(key);
      raw.off('close', done);
    };
    pending.set(key, done);
    raw.once('close', done);
    server.emit('connection', raw);
  };
}
