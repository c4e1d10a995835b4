// --auto-tls / --peer-auto-tls: etcd's SelfCert (P-521, self-signed, one year, listen hosts as SANs,
// key 0600), reused when present, and usable by a TLS server and the dialing side.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyAutoTls,
  autoTlsDir,
  clientTlsOptions,
  emptyTlsInfo,
  hostOf,
  hostsFromUrls,
  selfCert,
  serverTlsOptions,
} from '../../src/tls';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'plinth-selfcert-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('selfCert', () => {
  it('creates cert.pem and key.pem as etcd, and reuses them on the next call', async () => {
    const d = join(dir, 'a', 'fixtures', 'client');
    const hosts = ['127.0.0.1:2379', 'localhost:2379', '[::1]:2379'];
    const info = await selfCert(d, hosts);
    expect(info).toMatchObject({ certFile: join(d, 'cert.pem'), keyFile: join(d, 'key.pem'), selfCert: true, trustedCaFile: '' });
    expect((await fsp.stat(d)).mode & 0o777).toBe(0o700);
    expect((await fsp.stat(info.keyFile)).mode & 0o777).toBe(0o600);
    const keyPem = await fsp.readFile(info.keyFile, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);

    const certPem = await fsp.readFile(info.certFile, 'utf8');
    const cert = new X509Certificate(certPem);
    expect(cert.subject).toBe('O=etcd');
    expect(cert.issuer).toBe('O=etcd');
    expect(cert.ca).toBe(false);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp521r1');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86400_000;
    expect(Math.round(days)).toBe(365);
    expect(cert.verify(cert.publicKey)).toBe(true);

    const again = await selfCert(d, ['10.0.0.1:2379']);
    expect(again).toEqual(info);
    expect(await fsp.readFile(info.certFile, 'utf8')).toBe(certPem);
    expect(await fsp.readFile(info.keyFile, 'utf8')).toBe(keyPem);
  });

  it('regenerates when one of the two files is missing', async () => {
    const d = join(dir, 'b');
    const first = await selfCert(d, ['127.0.0.1:2380']);
    const before = await fsp.readFile(first.certFile, 'utf8');
    await fsp.rm(first.keyFile);
    await selfCert(d, ['127.0.0.1:2380']);
    expect(await fsp.readFile(first.certFile, 'utf8')).not.toBe(before);
  });

  it('is usable by a TLS server; the dialer skips verification for a self cert', async () => {
    const info = await selfCert(join(dir, 'c'), ['127.0.0.1:0']);
    const server = tls.createServer(await serverTlsOptions(info), (s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const dialOpts = await clientTlsOptions(info);
      expect(dialOpts.rejectUnauthorized).toBe(false);
      const got = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ ...dialOpts, host: '127.0.0.1', port }, () => {
          let d = '';
          s.on('data', (b) => (d += b));
          s.on('end', () => resolve(`${s.getProtocol()} ${d}`));
        });
        s.on('error', reject);
      });
      expect(got).toBe('TLSv1.3 ok');
      // and a client that trusts the self-signed certificate verifies it by IP
      const verified = await new Promise<boolean>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: [dialOpts.cert as Buffer] }, () => {
          resolve(s.authorized);
          s.destroy();
        });
        s.on('error', () => resolve(false));
      });
      expect(verified).toBe(true);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('auto TLS as embed.Config does it', () => {
  it('hosts from listen URLs, split as net.SplitHostPort', () => {
    expect(hostsFromUrls(['https://127.0.0.1:2379', 'https://localhost:2379/', 'unixs://x:1'])).toEqual([
      '127.0.0.1:2379',
      'localhost:2379',
      'x:1',
    ]);
    expect(hostOf('[::1]:2380')).toBe('::1');
    expect(hostOf('example.com')).toBe('example.com');
  });

  it('writes into <data-dir>/fixtures/client|peer and replaces the info (only cipher suites kept)', async () => {
    const dataDir = join(dir, 'data');
    const warnings: string[] = [];
    const info = {
      ...emptyTlsInfo(),
      autoTls: true,
      clientCertAuth: true,
      trustedCaFile: '/ca.pem',
      cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
    };
    const out = await applyAutoTls(info, { dataDir, kind: 'peer', listenUrls: ['https://127.0.0.1:2380'], onWarn: (m) => warnings.push(m) });
    expect(out).toMatchObject({
      certFile: join(autoTlsDir(dataDir, 'peer'), 'cert.pem'),
      keyFile: join(dataDir, 'fixtures', 'peer', 'key.pem'),
      selfCert: true,
      clientCertAuth: false,
      trustedCaFile: '',
      cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
    });
    expect(warnings).toEqual([]);

    const given = { ...info, certFile: '/c.pem', keyFile: '/k.pem' };
    expect(await applyAutoTls(given, { dataDir, kind: 'client', listenUrls: [], onWarn: (m) => warnings.push(m) })).toBe(given);
    expect(warnings).toEqual(['ignoring client auto TLS since certs given']);
    const off = { ...emptyTlsInfo() };
    expect(await applyAutoTls(off, { dataDir, kind: 'client', listenUrls: [] })).toBe(off);
  });
});
