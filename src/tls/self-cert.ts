// Why: --auto-tls / --peer-auto-tls make etcd create its own certificate (pkg/transport SelfCert,
// called from embed.Config.ClientSelfCert/PeerSelfCert). This does the same, asynchronously: an
// ECDSA P-521 key (etcd 3.4 uses elliptic.P521), a self-signed certificate for one year naming the
// listen hosts, in <data-dir>/fixtures/client|peer/{cert,key}.pem, reused when both files exist.

import { promises as fsp } from 'node:fs';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { emptyTlsInfo, isTlsInfoEmpty, type TlsInfo } from './tls-info';
import { loadX509 } from './x509-lib';

/** etcd 3.4: NotAfter = now + 365 * 24h. */
export const SELF_CERT_VALIDITY_DAYS = 365;

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

export interface SelfCertOptions {
  /** validity in days; etcd 3.4 has no flag for it (365). */
  validityDays?: number;
  /** extra extended key usages (OIDs) after serverAuth, as SelfCert's additionalUsages. */
  additionalUsages?: string[];
}

/** net.SplitHostPort's host, or the whole string when there is no port (etcd would use ""). */
export function hostOf(hostPort: string): string {
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    return end > 0 ? hostPort.slice(1, end) : hostPort;
  }
  const i = hostPort.lastIndexOf(':');
  if (i < 0) return hostPort;
  if (hostPort.indexOf(':') !== i) return hostPort; // bare IPv6 without brackets: no port
  return hostPort.slice(0, i);
}

/** The u.Host of each listen URL ("127.0.0.1:2379"), as embed passes them to SelfCert. */
export function hostsFromUrls(urls: readonly string[]): string[] {
  return urls.map((u) => {
    const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(u);
    const authority = m ? m[1] : u;
    const at = authority.lastIndexOf('@');
    return at >= 0 ? authority.slice(at + 1) : authority;
  });
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * etcd's transport.SelfCert(dir, hosts): returns {certFile, keyFile, selfCert: true} and nothing
 * else set (as etcd's returned TLSInfo). hosts are "host:port" (or bare hosts); IPs become IP SANs,
 * the rest DNS SANs.
 */
export async function selfCert(dir: string, hosts: readonly string[], opts: SelfCertOptions = {}): Promise<TlsInfo> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const result: TlsInfo = { ...emptyTlsInfo(), certFile, keyFile, selfCert: true };
  const [haveCert, haveKey] = await Promise.all([exists(certFile), exists(keyFile)]);
  if (haveCert && haveKey) return result;

  const x509 = await loadX509();
  const alg = { name: 'ECDSA', namedCurve: 'P-521' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;

  // rand.Int(rand.Reader, 2^128): a positive serial below 2^128.
  const serialBytes = randomBytes(16);
  let serialHex = serialBytes.toString('hex').replace(/^(00)+/, '');
  if (serialHex === '') serialHex = '01';
  if (parseInt(serialHex[0], 16) >= 8) serialHex = '00' + serialHex;

  const now = new Date();
  const validity = opts.validityDays ?? SELF_CERT_VALIDITY_DAYS;
  const ips: string[] = [];
  const dnsNames: string[] = [];
  for (const h of hosts) {
    const host = hostOf(h);
    if (isIP(host)) ips.push(host);
    else dnsNames.push(host);
  }
  const extensions: InstanceType<typeof x509.Extension>[] = [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([OID_SERVER_AUTH, ...(opts.additionalUsages ?? [])], false),
    new x509.BasicConstraintsExtension(false, undefined, true),
  ];
  if (ips.length + dnsNames.length > 0) {
    // Go writes DNS names first, then IPs.
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialHex,
      name: 'O=etcd',
      notBefore: now,
      notAfter: new Date(now.getTime() + validity * 24 * 3600 * 1000),
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-512' } as webcrypto.EcdsaParams,
      extensions,
    },
    webcrypto as never,
  );

  await fsp.writeFile(certFile, cert.toString('pem') + '\n');
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const sec1 = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'sec1', format: 'pem' });
  await fsp.writeFile(keyFile, sec1, { mode: 0o600 });
  return result;
}

export type AutoTlsKind = 'client' | 'peer';

/** <data-dir>/fixtures/client or /fixtures/peer, as embed.Config. */
export function autoTlsDir(dataDir: string, kind: AutoTlsKind): string {
  return join(dataDir, 'fixtures', kind);
}

export interface AutoTlsParams {
  dataDir: string;
  kind: AutoTlsKind;
  /** --listen-client-urls or --listen-peer-urls */
  listenUrls: readonly string[];
  /** etcd warns "ignoring client auto TLS since certs given" / "ignoring peer auto TLS since certs given". */
  onWarn?: (message: string) => void;
  selfCertOptions?: SelfCertOptions;
}

/**
 * embed.Config.ClientSelfCert / PeerSelfCert: without --auto-tls, the info as it is; with certs
 * given, a warning and the info as it is; otherwise etcd REPLACES the info with SelfCert's result
 * (so client-cert-auth, trusted CA, CRL and allowed-* given alongside auto-tls are dropped, as in
 * etcd 3.4), keeping only --cipher-suites.
 */
export async function applyAutoTls(info: TlsInfo, p: AutoTlsParams): Promise<TlsInfo> {
  if (!info.autoTls) return info;
  if (!isTlsInfoEmpty(info)) {
    p.onWarn?.(`ignoring ${p.kind} auto TLS since certs given`);
    return info;
  }
  const made = await selfCert(autoTlsDir(p.dataDir, p.kind), hostsFromUrls(p.listenUrls), p.selfCertOptions);
  return { ...made, autoTls: true, cipherSuites: [...info.cipherSuites] };
}
