import type * as net from 'node:net';
import { createServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { Log } from '../../server/bootstrap';
import { applyAutoTls, guardSecureServer, isTlsInfoEmpty, serverTlsOptions, tlsInfoString, TlsConfigError, type TlsInfo } from '../../tls';

// https client URLs, as etcd's configureClientListeners and transport.NewTLSListener: each accepted
// connection is handshaken here (gRPC and the gateway share the port: ALPN h2 and http/1.1, and the first
// bytes decide as on plain ports), then the checks Go runs after the handshake (allowed hostname, CRL).

/**
 * Handshakes under way per listener, past which new connections are closed at once (a client that
 * opens connections and never finishes a handshake holds one slot each, for HANDSHAKE_TIMEOUT_MS).
 */
export const MAX_PENDING_HANDSHAKES = 1024;
/** A handshake not done by then is dropped (grpc-go's server ConnectionTimeout is 120 s; a TLS handshake is milliseconds). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ClientTls {
  /** The info in force (--auto-tls replaces what was given, as etcd's ClientSelfCert). */
  info: TlsInfo;
  options: TlsOptions;
  /** The key pair the gateway presents when it dials this member (etcd's gateway uses the server's own). */
  keyPair: { cert: Buffer; key: Buffer };
}

/**
 * The client TLS configuration for the client URLs, or undefined when none is https. Refuses what etcd
 * refuses at start, in its words (an https URL without --cert-file/--key-file or --auto-tls).
 */
export async function prepareClientTls(
  urls: readonly URL[],
  given: TlsInfo,
  dataDir: string,
  log: (level: 'warn' | 'info', msg: string) => void,
): Promise<ClientTls | undefined> {
  const secure = urls.filter((u) => u.protocol === 'https:');
  if (secure.length === 0) {
    if (!isTlsInfoEmpty(given)) log('warn', 'scheme is HTTP while key and cert files are present; ignoring key and cert files');
    return undefined;
  }
  const info = await applyAutoTls(given, { dataDir, kind: 'client', listenUrls: urls.map((u) => u.href), onWarn: (m) => log('warn', m) });
  if (isTlsInfoEmpty(info)) {
    throw new TlsConfigError(`TLS key/cert (--cert-file, --key-file) must be provided for client url ${secure[0].href.replace(/\/$/, '')} with HTTPS scheme`);
  }
  const options = await serverTlsOptions(info, { onUnsupportedCipher: (names) => log('warn', `cipher suites not supported by this build, left out: ${names.join(',')}`) });
  log('info', `ClientTLS: ${tlsInfoString(info)}`);
  return { info, options, keyPair: { cert: options.cert as Buffer, key: options.key as Buffer } };
}

/**
 * Wraps a listener's connection handler: each connection is handshaken first (by a tls.Server the raw
 * sockets are handed to: it verifies client certificates as Go's RequireAndVerifyClientCert and drops
 * a handshake not done in HANDSHAKE_TIMEOUT_MS), checked (guardSecureServer: allowed hostname, CRL),
 * then handed on decrypted. A refused connection is logged as etcd logs it, and closed.
 */
export function tlsAccept(tls: ClientTls, log: Log, next: (sock: net.Socket) => void): (sock: net.Socket) => void {
  const server = createServer({ ...tls.options, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  /** Handshakes under way, by remote address: each releases its slot once done or gone. */
  const pending = new Map<string, () => void>();
  const release = (sock: net.Socket) => pending.get(`${sock.remoteAddress}:${sock.remotePort}`)?.();
  server.on('secureConnection', (sock: TLSSocket) => {
    release(sock);
    next(sock);
  });
  guardSecureServer(server, tls.info, {
    role: 'client-listener',
    onReject: (sock, err) => log('warn', 'rejected connection', { 'remote-addr': `${sock.remoteAddress}:${sock.remotePort}`, error: err.message }),
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
