// Why: etcd refuses some peers only after the TLS handshake (pkg/transport/listener_tls.go): a
// certificate whose serial is in the --client-crl-file / --peer-crl-file, a peer whose client
// certificate SANs do not match its address, and (inside Go's handshake, via VerifyPeerCertificate)
// a leaf whose CN / SANs miss --peer-cert-allowed-cn / --*-cert-allowed-hostname. Node has no hook
// for these, so they run on the handshaken socket, before any request is read, with etcd's errors.

import { promises as dns } from 'node:dns';
import type { DetailedPeerCertificate, Server as TlsServer, TLSSocket } from 'node:tls';
import { parseIp, verifyHostname, type CertNames } from './hostname';
import { readFileGo, requiresClientCert } from './common';
import type { TlsInfo } from './tls-info';
import { loadX509, type X509Lib } from './x509-lib';

/** Which end the socket belongs to; decides which of etcd's checks apply. */
export type PeerRole = 'client-listener' | 'peer-listener' | 'dialer';

/** etcd's VerifyPeerCertificate error for allowed-CN / allowed-hostname (both sides). */
export const CLIENT_CERT_AUTH_FAILED = 'client certificate authentication failed';

/** A connection refused after the handshake; message is etcd's error text. */
export class TlsRejectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsRejectError';
  }
}

/** CN (last one, as Go's pkix.Name), DNS and IP SANs of a DER certificate. */
export function certNamesFromDer(lib: X509Lib, der: Uint8Array): CertNames {
  const cert = new lib.X509Certificate(der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer);
  const cns = cert.subjectName.getField('CN');
  const san = cert.getExtension(lib.SubjectAlternativeNameExtension);
  const dnsNames: string[] = [];
  const ipAddresses: Uint8Array[] = [];
  for (const n of san?.names.items ?? []) {
    if (n.type === 'dns') dnsNames.push(n.value);
    else if (n.type === 'ip') {
      const ip = parseIp(n.value);
      if (ip) ipAddresses.push(ip);
    }
  }
  return { commonName: cns.length > 0 ? cns[cns.length - 1] : '', dnsNames, ipAddresses, hasSanExtension: san !== null };
}

/** etcd's baseConfig verifyCertificate on the verified leaf: undefined = allowed, else the error text. */
export function allowedCheckText(names: CertNames, info: TlsInfo): string | undefined {
  if (info.allowedCN !== '') {
    return names.commonName === info.allowedCN ? undefined : CLIENT_CERT_AUTH_FAILED;
  }
  if (info.allowedHostname !== '') {
    return verifyHostname(names, info.allowedHostname) === undefined ? undefined : CLIENT_CERT_AUTH_FAILED;
  }
  return undefined;
}

// ---- CRL -------------------------------------------------------------------------------------

const PEM_CRL_PREFIX = '-----BEGIN X509 CRL';

function pemDecodeFirst(text: string): { type: string; der: Buffer } | undefined {
  const m = /-----BEGIN ([^-\r\n]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) return undefined;
  const body = m[2]
    .split(/\r?\n/)
    .filter((l) => !l.includes(':'))
    .join('');
  return { type: m[1], der: Buffer.from(body, 'base64') };
}

/** Go's x509.ParseCRL: PEM only when the file starts with "-----BEGIN X509 CRL", else DER. */
export async function parseCrlSerials(bytes: Buffer): Promise<Set<bigint>> {
  let der = bytes;
  if (bytes.subarray(0, PEM_CRL_PREFIX.length).toString('latin1') === PEM_CRL_PREFIX) {
    const block = pemDecodeFirst(bytes.toString('latin1'));
    if (block && block.type === 'X509 CRL') der = block.der;
  }
  if (der.length === 0 || der[0] !== 0x30) {
    throw new TlsRejectError('x509: malformed crl: asn1: structure error: not a DER SEQUENCE');
  }
  const lib = await loadX509();
  let crl: InstanceType<X509Lib['X509Crl']>;
  try {
    crl = new lib.X509Crl(der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer);
  } catch (e) {
    throw new TlsRejectError(`x509: malformed crl: ${(e as Error).message}`);
  }
  const out = new Set<bigint>();
  for (const entry of crl.entries) out.add(serialToBigInt(entry.serialNumber));
  return out;
}

function serialToBigInt(hex: string): bigint {
  return hex === '' ? 0n : BigInt('0x' + hex);
}

/** Go's fmt %x of string(serial.Bytes()): minimal big-endian bytes, two lowercase digits each. */
export function goSerialHex(serial: bigint): string {
  if (serial === 0n) return '';
  const h = (serial < 0n ? -serial : serial).toString(16);
  return h.length % 2 === 1 ? '0' + h : h;
}

// etcd re-reads the CRL file on every connection (so a new CRL takes effect at once); the parse is
// cached per file content so that a re-read of the same bytes costs no ASN.1 work.
const crlCache = new Map<string, { bytes: Buffer; serials: Set<bigint> }>();

async function revokedSerials(path: string): Promise<Set<bigint>> {
  const bytes = await readFileGo(path).catch((e: Error) => {
    throw new TlsRejectError(e.message);
  });
  const hit = crlCache.get(path);
  if (hit && hit.bytes.equals(bytes)) return hit.serials;
  const serials = await parseCrlSerials(bytes);
  crlCache.set(path, { bytes, serials });
  return serials;
}

/** The certificates the peer showed, leaf first (Node gives the chain it built to a trusted root). */
function peerChainSerials(socket: TLSSocket): bigint[] {
  const out: bigint[] = [];
  let c = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
  const seen = new Set<unknown>();
  while (c && 'serialNumber' in c && c.serialNumber && !seen.has(c)) {
    seen.add(c);
    out.push(serialToBigInt(c.serialNumber));
    c = c.issuerCertificate;
  }
  return out;
}

/** etcd's checkCRL. */
export async function checkCrl(crlFile: string, serials: bigint[]): Promise<void> {
  if (serials.length === 0) return;
  const revoked = await revokedSerials(crlFile);
  for (const s of serials) {
    if (revoked.has(s)) throw new TlsRejectError(`transport: certificate serial ${goSerialHex(s)} revoked`);
  }
}

// ---- peer listener SAN check ------------------------------------------------------------------

function goQuoteList(xs: string[]): string {
  return '[' + xs.map((x) => JSON.stringify(x)).join(' ') + ']';
}

/** etcd's isHostInDNS: reverse lookup of the address against the names, then forward lookups. */
async function isHostInDns(host: string, dnsNames: string[]): Promise<{ ok: boolean; err?: Error }> {
  const wildcards: string[] = [];
  const names: string[] = [];
  for (const d of dnsNames) (d.startsWith('*.') ? wildcards : names).push(d.startsWith('*.') ? d.slice(1) : d);
  let err: Error | undefined;
  try {
    for (let name of await dns.reverse(host)) {
      if (name.endsWith('.')) name = name.slice(0, -1);
      if (wildcards.some((wc) => name.endsWith(wc))) return { ok: true };
      if (names.includes(name)) return { ok: true };
    }
  } catch (e) {
    err = e as Error;
  }
  for (const d of names) {
    try {
      const addrs = await dns.lookup(d, { all: true });
      if (addrs.some((a) => a.address === host)) return { ok: true };
    } catch (e) {
      err = e as Error;
    }
  }
  return { ok: false, err };
}

/** etcd's checkCertSAN: a peer's client certificate must name the address it connects from. */
export async function checkCertSan(names: CertNames, remoteHost: string): Promise<void> {
  if (names.ipAddresses.length === 0 && names.dnsNames.length === 0) return;
  if (names.ipAddresses.length > 0) {
    const err = verifyHostname(names, remoteHost);
    if (err === undefined) return;
    if (names.dnsNames.length === 0) throw new TlsRejectError(err);
  }
  const { ok, err } = await isHostInDns(remoteHost, names.dnsNames);
  if (ok) return;
  const suffix = err ? ` (${err.message})` : '';
  throw new TlsRejectError(
    `tls: ${JSON.stringify(remoteHost)} does not match any of DNSNames ${goQuoteList(names.dnsNames)}${suffix}`,
  );
}

function unmapHost(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

// ---- the post-handshake check ------------------------------------------------------------------

/** Whether checkPeerCertificate has anything to do for this info and role. */
export function needsPeerCheck(info: TlsInfo, role: PeerRole): boolean {
  const allowed = info.allowedCN !== '' || info.allowedHostname !== '';
  if (role === 'dialer') return allowed;
  if (info.crlFile !== '') return true;
  if (!requiresClientCert(info)) return false;
  return allowed || (role === 'peer-listener' && !info.skipClientSanVerify);
}

/**
 * etcd's checks on a handshaken socket, in etcd's order; resolves when the connection may be
 * used, rejects with a TlsRejectError carrying etcd's text otherwise (the caller closes the socket
 * and may log etcd's "rejected connection").
 *  - allowed CN / hostname on the verified leaf (listeners: only when client certs are requested,
 *    as Go calls VerifyPeerCertificate only then; dialer: always, and an unverified chain fails);
 *  - peer listener: the client certificate's IP/DNS SANs must match the remote address, unless
 *    skipClientSanVerify;
 *  - listeners: no certificate of the peer's chain may be in the CRL file (read on each call).
 */
export async function checkPeerCertificate(socket: TLSSocket, info: TlsInfo, role: PeerRole = 'client-listener'): Promise<void> {
  if (!needsPeerCheck(info, role)) return;
  const x509 = socket.getPeerX509Certificate();
  const allowed = info.allowedCN !== '' || info.allowedHostname !== '';
  let names: CertNames | undefined;
  const leafNames = async (): Promise<CertNames | undefined> => {
    if (!names && x509) names = certNamesFromDer(await loadX509(), x509.raw);
    return names;
  };

  if (allowed && (role === 'dialer' || requiresClientCert(info))) {
    const n = socket.authorized ? await leafNames() : undefined;
    if (!n || allowedCheckText(n, info) !== undefined) throw new TlsRejectError(CLIENT_CERT_AUTH_FAILED);
  }
  if (role === 'dialer') return;

  if (role === 'peer-listener' && !info.skipClientSanVerify && x509) {
    const n = await leafNames();
    if (n) await checkCertSan(n, unmapHost(socket.remoteAddress ?? ''));
  }
  if (info.crlFile !== '') await checkCrl(info.crlFile, peerChainSerials(socket));
}

export interface GuardOptions {
  role: PeerRole;
  /** etcd logs `rejected connection` with remote-addr, server-name and the error. */
  onReject?: (socket: TLSSocket, err: Error) => void;
}

/**
 * Puts checkPeerCertificate in front of a TLS server's connection handling (tls.Server,
 * https.Server, http2.createSecureServer): the 'secureConnection' listeners present now (the
 * http/http2 connection handlers are added by the constructors) run only after the checks pass;
 * a refused socket is destroyed. Add any further 'secureConnection' listeners before calling.
 * Does nothing when the info needs no post-handshake check.
 */
export function guardSecureServer(server: TlsServer, info: TlsInfo, opts: GuardOptions): void {
  if (!needsPeerCheck(info, opts.role)) return;
  const listeners = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: TLSSocket) => {
    checkPeerCertificate(socket, info, opts.role).then(
      () => {
        if (socket.destroyed) return;
        for (const l of listeners) l.call(server, socket);
      },
      (err: Error) => {
        try {
          opts.onReject?.(socket, err);
        } finally {
          socket.destroy();
        }
      },
    );
  });
}
