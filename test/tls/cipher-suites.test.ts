// --cipher-suites: Go names → OpenSSL names, etcd's error for unknown names, and a handshake that
// shows the restriction holds for TLS 1.2 while TLS 1.3 stays as Go leaves it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { makeTestCerts, type TestCerts } from '../helpers/certs';
import {
  CipherSuiteError,
  GO_TO_OPENSSL_CIPHER,
  TLS13_SUITES,
  cipherSettings,
  clientTlsOptions,
  emptyTlsInfo,
  openSslCipherName,
  serverTlsOptions,
} from '../../src/tls';

let certs: TestCerts;
beforeAll(async () => {
  certs = await makeTestCerts();
});
afterAll(async () => {
  await certs?.cleanup();
});

describe('mapping', () => {
  it('maps every Go name etcd 3.4 accepts', () => {
    expect(openSslCipherName('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256')).toBe('ECDHE-ECDSA-AES128-GCM-SHA256');
    expect(openSslCipherName('TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384')).toBe('ECDHE-RSA-AES256-GCM-SHA384');
    expect(openSslCipherName('TLS_RSA_WITH_AES_128_CBC_SHA')).toBe('AES128-SHA');
    expect(openSslCipherName('TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305')).toBe('ECDHE-RSA-CHACHA20-POLY1305');
    expect(openSslCipherName('TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256')).toBe('ECDHE-RSA-CHACHA20-POLY1305');
    expect(Object.keys(GO_TO_OPENSSL_CIPHER)).toHaveLength(17 + 8 + 2) // CipherSuites() + InsecureCipherSuites() + 2 aliases;
    // every non-legacy mapped name is one this OpenSSL knows
    const known = new Set(tls.getCiphers());
    for (const [go, ossl] of Object.entries(GO_TO_OPENSSL_CIPHER)) {
      if (/RC4|3DES/.test(go)) continue;
      expect(known.has(ossl.toLowerCase()), `${go} → ${ossl}`).toBe(true);
    }
  });

  it('refuses an unknown name with etcd\'s error text', () => {
    expect(() => cipherSettings(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_FOO'])).toThrow(
      new CipherSuiteError('TLS_FOO'),
    );
    expect(() => cipherSettings(['ECDHE-RSA-AES128-GCM-SHA256'])).toThrow(
      'unexpected TLS cipher suite "ECDHE-RSA-AES128-GCM-SHA256"',
    );
    expect(openSslCipherName('toString')).toBeUndefined();
  });

  it('keeps order, adds the TLS 1.3 suites Go cannot turn off, drops what OpenSSL lacks', () => {
    expect(cipherSettings([])).toBeUndefined();
    const s = cipherSettings([
      'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
      'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
      'TLS_RSA_WITH_RC4_128_SHA',
    ])!;
    expect(s.ciphers).toBe(['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256', ...TLS13_SUITES].join(':'));
    expect(s.minVersion).toBe('TLSv1.2');
    expect(s.unsupported).toEqual(['TLS_RSA_WITH_RC4_128_SHA']);
    expect(cipherSettings(['TLS_AES_128_GCM_SHA256'])!.minVersion).toBe('TLSv1.3');
  });

  it('serverTlsOptions / clientTlsOptions refuse unknown names', async () => {
    const info = { ...emptyTlsInfo(), certFile: certs.server.cert, keyFile: certs.server.key, cipherSuites: ['nope'] };
    await expect(serverTlsOptions(info)).rejects.toThrow('unexpected TLS cipher suite "nope"');
    await expect(clientTlsOptions(info)).rejects.toThrow('unexpected TLS cipher suite "nope"');
  });
});

describe('handshake', () => {
  async function serve(cipherSuites: string[]): Promise<{ port: number; close(): Promise<void> }> {
    const opts = await serverTlsOptions({ ...emptyTlsInfo(), certFile: certs.server.cert, keyFile: certs.server.key, cipherSuites });
    const server = tls.createServer(opts, (s) => s.end('ok'));
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
  }
  function hello(port: number, extra: tls.ConnectionOptions): Promise<string> {
    return new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca), servername: 'localhost', ...extra }, () => {
        resolve(`${s.getProtocol()} ${s.getCipher().name}`);
        s.destroy();
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
    });
  }

  it('TLS 1.2 uses only the listed suites; TLS 1.3 still works', async () => {
    const srv = await serve(['TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384']);
    try {
      expect(await hello(srv.port, { maxVersion: 'TLSv1.2' })).toBe('TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384');
      expect(await hello(srv.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toMatch(/^error /);
      expect(await hello(srv.port, {})).toMatch(/^TLSv1.3 TLS_/);
    } finally {
      await srv.close();
    }
  });

  it('suites that do not fit the key (RSA suites, ECDSA certificate) leave TLS 1.2 without a common suite', async () => {
    const srv = await serve(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256']);
    try {
      expect(await hello(srv.port, { maxVersion: 'TLSv1.2' })).toMatch(/^error /);
    } finally {
      await srv.close();
    }
  });
});
