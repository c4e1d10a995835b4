// Why: etcd describes each TLS endpoint (client listener, peer listener, peer dialer) with one
// TLSInfo (pkg/transport/listener.go) and derives Go tls.Configs from it. This is that struct and
// those derivations for Node: options for tls/http2 servers and for the peer transport's dialer,
// read with async fs only, with etcd's validation errors word for word.

import {
  checkServerIdentity,
  createSecureContext,
  type ConnectionOptions,
  type PeerCertificate,
  type TlsOptions,
} from 'node:tls';
import { cipherSettings } from './cipher-suites';
import { readFileGo, requiresClientCert, TlsConfigError, verifiedCommonName } from './common';
import { allowedCheckText, certNamesFromDer } from './peer-check';
import { loadX509 } from './x509-lib';

export { readFileGo, requiresClientCert, TlsConfigError, verifiedCommonName };

export interface TlsInfo {
  /** --cert-file / --peer-cert-file */
  certFile: string;
  /** --key-file / --peer-key-file */
  keyFile: string;
  /** --trusted-ca-file / --peer-trusted-ca-file */
  trustedCaFile: string;
  /** --client-cert-auth / --peer-client-cert-auth */
  clientCertAuth: boolean;
  /** --client-crl-file / --peer-crl-file (PEM "X509 CRL" or DER); checked after each handshake. */
  crlFile: string;
  /** --peer-cert-allowed-cn (etcd has no client-side flag; the struct field exists for both). */
  allowedCN: string;
  /** --client-cert-allowed-hostname / --peer-cert-allowed-hostname */
  allowedHostname: string;
  /** --cipher-suites, Go names (see cipher-suites.ts). Empty: Node's defaults. */
  cipherSuites: string[];
  /** --auto-tls / --peer-auto-tls asked for (self-cert.ts fills the files in). */
  autoTls?: boolean;
  /** set by selfCert(): a dialer with this info does not verify the remote end (etcd: selfCert). */
  selfCert?: boolean;
  /** dialer: do not verify the server's chain (etcd: InsecureSkipVerify, set from --peer-auto-tls). */
  insecureSkipVerify?: boolean;
  /** dialer: name to verify the server against and to send as SNI (etcd: ServerName). */
  serverName?: string;
  /** peer listener: skip the client-cert SAN vs remote address check
   *  (--experimental-peer-skip-client-san-verification). */
  skipClientSanVerify?: boolean;
}

/** A TlsInfo with everything off; spread over it to fill in flags. */
export function emptyTlsInfo(): TlsInfo {
  return {
    certFile: '',
    keyFile: '',
    trustedCaFile: '',
    clientCertAuth: false,
    crlFile: '',
    allowedCN: '',
    allowedHostname: '',
    cipherSuites: [],
  };
}

/** etcd's TLSInfo.Empty(): no cert and no key. */
export function isTlsInfoEmpty(info: TlsInfo): boolean {
  return info.certFile === '' && info.keyFile === '';
}

/** etcd's TLSInfo.String(), as it logs it at start ("ClientTLS: ...", "peerTLS: ..."). */
export function tlsInfoString(info: TlsInfo): string {
  return (
    `cert = ${info.certFile}, key = ${info.keyFile}, trusted-ca = ${info.trustedCaFile}, ` +
    `client-cert-auth = ${info.clientCertAuth}, crl-file = ${info.crlFile}`
  );
}

const goQ = (s: string): string => JSON.stringify(s);

/** etcd's baseConfig checks that need no file: both files named, CN xor hostname. */
export function validateTlsInfo(info: TlsInfo): void {
  if (info.keyFile === '' || info.certFile === '') {
    throw new TlsConfigError(
      `KeyFile and CertFile must both be present[key: ${info.keyFile}, cert: ${info.certFile}]`,
    );
  }
  if (info.allowedCN !== '' && info.allowedHostname !== '') {
    throw new TlsConfigError(
      `AllowedCN and AllowedHostname are mutually exclusive (cn=${goQ(info.allowedCN)}, hostname=${goQ(info.allowedHostname)})`,
    );
  }
}

function hasPem(b: Buffer): boolean {
  return b.includes('-----BEGIN');
}

/** tlsutil.NewCert + tls.X509KeyPair: both files read and checked to belong together. */
export async function loadKeyPair(info: TlsInfo): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readFileGo(info.certFile), readFileGo(info.keyFile)]);
  if (!hasPem(cert)) throw new TlsConfigError('tls: failed to find any PEM data in certificate input');
  if (!hasPem(key)) throw new TlsConfigError('tls: failed to find any PEM data in key input');
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    const msg = (e as Error).message;
    if (/key values mismatch/i.test(msg)) throw new TlsConfigError('tls: private key does not match public key');
    throw new TlsConfigError(`tls: ${msg}`);
  }
  return { cert, key };
}

async function loadCa(info: TlsInfo): Promise<Buffer | undefined> {
  if (info.trustedCaFile === '') return undefined;
  const ca = await readFileGo(info.trustedCaFile);
  try {
    createSecureContext({ ca });
  } catch (e) {
    throw new TlsConfigError(`x509: malformed certificate in ${info.trustedCaFile}: ${(e as Error).message}`);
  }
  return ca;
}

export interface ServerTlsOptionsExtra {
  /** ALPN to offer; default h2 then http/1.1 (gRPC and the JSON gateway share one port). */
  alpnProtocols?: string[];
  /** Called with Go names this OpenSSL cannot offer (RC4/3DES); they are dropped. */
  onUnsupportedCipher?: (names: string[]) => void;
}

/**
 * etcd's TLSInfo.ServerConfig() as Node server options (tls.createServer, https, http2.createSecureServer).
 * Refuses what etcd refuses at start. Client certificates are required and verified when
 * trusted-ca-file or client-cert-auth is set. Allowed-CN/hostname, CRL and the peer SAN check run
 * after the handshake: see guardSecureServer / checkPeerCertificate.
 */
export async function serverTlsOptions(info: TlsInfo, extra: ServerTlsOptionsExtra = {}): Promise<TlsOptions> {
  validateTlsInfo(info);
  const ciphers = cipherSettings(info.cipherSuites);
  if (ciphers && ciphers.unsupported.length > 0) extra.onUnsupportedCipher?.(ciphers.unsupported);
  const [{ cert, key }, ca] = await Promise.all([loadKeyPair(info), loadCa(info)]);
  const verify = requiresClientCert(info);
  const opts: TlsOptions = {
    cert,
    key,
    minVersion: ciphers?.minVersion ?? 'TLSv1.2',
    requestCert: verify,
    rejectUnauthorized: verify,
    ALPNProtocols: extra.alpnProtocols ?? ['h2', 'http/1.1'],
  };
  if (ca) opts.ca = ca;
  if (ciphers) opts.ciphers = ciphers.ciphers;
  return opts;
}

export interface ClientTlsOptionsExtra {
  /** ALPN to offer when dialing; none by default. */
  alpnProtocols?: string[];
  onUnsupportedCipher?: (names: string[]) => void;
}

/**
 * etcd's TLSInfo.ClientConfig() for the peer transport's dialing side: presents cert/key when given,
 * trusts trusted-ca-file (else Node's root store), skips verification for self-signed auto-tls
 * (or insecureSkipVerify), and applies allowed-CN/hostname to the server's certificate as etcd's
 * VerifyPeerCertificate does. With verification skipped, call checkPeerCertificate(socket, info,
 * 'dialer') after 'secureConnect': like etcd it then refuses when allowed-CN/hostname is set.
 */
export async function clientTlsOptions(info: TlsInfo, extra: ClientTlsOptionsExtra = {}): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = { minVersion: 'TLSv1.2' };
  if (!isTlsInfoEmpty(info)) {
    validateTlsInfo(info);
    const { cert, key } = await loadKeyPair(info);
    opts.cert = cert;
    opts.key = key;
    const ciphers = cipherSettings(info.cipherSuites);
    if (ciphers) {
      if (ciphers.unsupported.length > 0) extra.onUnsupportedCipher?.(ciphers.unsupported);
      opts.ciphers = ciphers.ciphers;
      opts.minVersion = ciphers.minVersion;
    }
  }
  const ca = await loadCa(info);
  if (ca) opts.ca = ca;
  if (info.serverName) opts.servername = info.serverName;
  opts.rejectUnauthorized = !(info.insecureSkipVerify || info.selfCert);
  if (extra.alpnProtocols) opts.ALPNProtocols = extra.alpnProtocols;
  if (!isTlsInfoEmpty(info) && (info.allowedCN !== '' || info.allowedHostname !== '')) {
    const lib = await loadX509();
    opts.checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
      const err = checkServerIdentity(host, cert);
      if (err) return err;
      const text = allowedCheckText(certNamesFromDer(lib, cert.raw), info);
      return text === undefined ? undefined : new Error(text);
    };
  }
  return opts;
}
