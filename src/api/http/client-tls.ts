import type * as net from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Log } from '../../server/bootstrap';
import { applyAutoTls, isTlsInfoEmpty, tlsAcceptor, serverTlsOptions, tlsInfoString, TlsConfigError, type TlsInfo } from '../../tls';

// https client URLs, as etcd's configureClientListeners and transport.NewTLSListener: each accepted
// connection is handshaken (tls/acceptor.ts; gRPC and the gateway share the port: ALPN h2 and http/1.1,
// and the first bytes decide as on plain ports), then checked as Go checks it (allowed hostname, CRL).

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

/** A listener's connection handler for an https client URL (tls/acceptor.ts), logging with the server's logger. */
export function tlsAccept(tls: ClientTls, log: Log, next: (sock: net.Socket) => void): (sock: net.Socket) => void {
  return tlsAcceptor(tls.options, tls.info, 'client-listener', log, next);
}
