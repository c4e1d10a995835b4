// TLS listener behaviour built from serverTlsOptions + guardSecureServer, checked with Node clients
// against the cases etcd 3.4 refuses or accepts (client certs, CA, expiry, CRL, allowed CN/hostname,
// peer SANs, ALPN for gRPC-over-h2 and the HTTP/1.1 gateway on one port, the dialing side).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fsp, readFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTestCerts, type CertFiles, type TestCerts } from '../helpers/certs';
import {
  CLIENT_CERT_AUTH_FAILED,
  TlsConfigError,
  checkPeerCertificate,
  clientTlsOptions,
  emptyTlsInfo,
  guardSecureServer,
  serverTlsOptions,
  tlsInfoString,
  type PeerRole,
  type TlsInfo,
} from '../../src/tls';

let certs: TestCerts;
beforeAll(async () => {
  certs = await makeTestCerts();
});
afterAll(async () => {
  await certs?.cleanup();
});

function info(over: Partial<TlsInfo>): TlsInfo {
  return { ...emptyTlsInfo(), certFile: certs.server.cert, keyFile: certs.server.key, ...over };
}

interface Started {
  port: number;
  rejects: string[];
  /** codes of the handshake failures the server saw (tlsClientError) */
  handshakeErrors: string[];
  close(): Promise<void>;
}

/** A tls server that answers "ok:<CN>" on every accepted connection. */
async function startTls(i: TlsInfo, role: PeerRole = 'client-listener'): Promise<Started> {
  const server = tls.createServer(await serverTlsOptions(i));
  server.on('secureConnection', (s: TLSSocket) => {
    const cn = s.getPeerCertificate()?.subject?.CN ?? '';
    s.end(`ok:${cn}`);
  });
  const handshakeErrors: string[] = [];
  server.on('tlsClientError', (e: NodeJS.ErrnoException) => handshakeErrors.push(`${e.code} ${e.message}`));
  const rejects: string[] = [];
  guardSecureServer(server, i, { role, onReject: (_s, err) => rejects.push(err.message) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    rejects,
    handshakeErrors,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

interface Outcome {
  ok: boolean;
  data: string;
  error?: string;
  alpn?: string | false | null;
}

function dial(port: number, client?: CertFiles | null, extra: tls.ConnectionOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const opts: tls.ConnectionOptions = {
      host: '127.0.0.1',
      port,
      ca: readFileSync(certs.ca),
      servername: 'localhost',
      ...extra,
    };
    if (client) {
      opts.cert = readFileSync(client.cert);
      opts.key = readFileSync(client.key);
    }
    let data = '';
    let alpn: string | false | null | undefined;
    let done = false;
    const finish = (o: Omit<Outcome, 'data' | 'alpn'>): void => {
      if (done) return;
      done = true;
      resolve({ ...o, data, alpn });
      s.destroy();
    };
    const s = tls.connect(opts, () => {
      alpn = s.alpnProtocol;
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => finish({ ok: data.startsWith('ok:') }));
    s.on('close', () => finish({ ok: data.startsWith('ok:') }));
    s.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
  });
}

describe('client certificate authentication', () => {
  it('accepts a client certificate from the trusted CA and exposes its CN', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }));
    try {
      const o = await dial(srv.port, certs.clientRoot);
      expect(o).toMatchObject({ ok: true, data: 'ok:root' });
      expect((await dial(srv.port, certs.clientAlice)).data).toBe('ok:alice');
    } finally {
      await srv.close();
    }
  });

  it('refuses a client without a certificate when client-cert-auth is on', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }));
    try {
      const o = await dial(srv.port, null);
      expect(o.ok).toBe(false);
      expect(o.data).toBe('');
      expect(srv.handshakeErrors.join()).toMatch(/PEER_DID_NOT_RETURN_A_CERTIFICATE/);
    } finally {
      await srv.close();
    }
  });

  it('requires a certificate with --trusted-ca-file alone, as etcd 3.4 does', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca }));
    try {
      expect((await dial(srv.port, null)).ok).toBe(false);
      expect((await dial(srv.port, certs.clientRoot)).ok).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it('asks for no certificate without trusted CA or client-cert-auth (any client is served)', async () => {
    const srv = await startTls(info({}));
    try {
      expect(await dial(srv.port, null)).toMatchObject({ ok: true, data: 'ok:' });
      expect((await dial(srv.port, certs.expiredClient)).ok).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it('refuses a certificate from another CA', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }));
    try {
      const o = await dial(srv.port, certs.foreignClient);
      // Node closes the connection after the handshake without an alert (Go sends bad_certificate)
      expect(o).toMatchObject({ ok: false, data: '' });
    } finally {
      await srv.close();
    }
  });

  it('refuses an expired certificate', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }));
    try {
      const o = await dial(srv.port, certs.expiredClient);
      // Node closes the connection after the handshake without an alert (Go sends bad_certificate)
      expect(o).toMatchObject({ ok: false, data: '' });
    } finally {
      await srv.close();
    }
  });

  it('refuses TLS below 1.2', async () => {
    const srv = await startTls(info({}));
    try {
      const o = await dial(srv.port, null, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' });
      expect(o.ok).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

describe('CRL (--client-crl-file / --peer-crl-file)', () => {
  for (const kind of ['PEM', 'DER'] as const) {
    it(`refuses a revoked certificate with etcd's error (${kind} CRL) and serves the others`, async () => {
      const crlFile = kind === 'PEM' ? certs.crlPem : certs.crlDer;
      const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, crlFile }));
      try {
        expect((await dial(srv.port, certs.revokedClient)).ok).toBe(false);
        expect(srv.rejects).toEqual([`transport: certificate serial ${certs.revokedClient.serial} revoked`]);
        expect((await dial(srv.port, certs.clientRoot)).ok).toBe(true);
      } finally {
        await srv.close();
      }
    });
  }

  it('re-reads the CRL file for each connection, as etcd', async () => {
    const crlFile = join(certs.dir, 'crl-rotating.pem');
    await fsp.copyFile(certs.crlEmpty, crlFile);
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, crlFile }));
    try {
      expect((await dial(srv.port, certs.revokedClient)).ok).toBe(true);
      await fsp.copyFile(certs.crlPem, crlFile);
      expect((await dial(srv.port, certs.revokedClient)).ok).toBe(false);
    } finally {
      await srv.close();
    }
  });

  it('refuses connections while the CRL file cannot be read, with Go\'s error', async () => {
    const crlFile = join(certs.dir, 'no-such-crl.pem');
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, crlFile }));
    try {
      expect((await dial(srv.port, certs.clientRoot)).ok).toBe(false);
      expect(srv.rejects).toEqual([`open ${crlFile}: no such file or directory`]);
    } finally {
      await srv.close();
    }
  });

  it('a "-----BEGIN CRL-----" PEM is not taken (Go parses only "X509 CRL" PEM, else DER)', async () => {
    const crlFile = join(certs.dir, 'crl-wrong-label.pem');
    const text = (await fsp.readFile(certs.crlPem, 'utf8')).replace(/X509 CRL/g, 'CRL');
    await fsp.writeFile(crlFile, text);
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, crlFile }));
    try {
      expect((await dial(srv.port, certs.clientRoot)).ok).toBe(false);
      expect(srv.rejects[0]).toMatch(/^x509: malformed crl/);
    } finally {
      await srv.close();
    }
  });
});

describe('allowed CN / hostname', () => {
  it('--peer-cert-allowed-cn: other CNs refused with "client certificate authentication failed"', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, allowedCN: 'root' }));
    try {
      expect((await dial(srv.port, certs.clientRoot)).data).toBe('ok:root');
      expect((await dial(srv.port, certs.clientAlice)).ok).toBe(false);
      expect(srv.rejects).toEqual([CLIENT_CERT_AUTH_FAILED]);
    } finally {
      await srv.close();
    }
  });

  it('--client-cert-allowed-hostname matches SANs only (not the CN)', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, allowedHostname: 'alice.example.com' }));
    try {
      expect((await dial(srv.port, certs.clientAlice)).data).toBe('ok:alice');
      expect((await dial(srv.port, certs.clientRoot)).ok).toBe(false);
      expect(srv.rejects).toEqual([CLIENT_CERT_AUTH_FAILED]);
    } finally {
      await srv.close();
    }
    const byCn = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true, allowedHostname: 'root' }));
    try {
      expect((await dial(byCn.port, certs.clientRoot)).ok).toBe(false);
    } finally {
      await byCn.close();
    }
  });

  it('CN and hostname together are refused at start with etcd\'s text', async () => {
    await expect(serverTlsOptions(info({ allowedCN: 'a', allowedHostname: 'b' }))).rejects.toThrow(
      'AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")',
    );
  });

  it('is not applied when client certificates are not requested (Go never calls VerifyPeerCertificate)', async () => {
    const srv = await startTls(info({ allowedCN: 'root' }));
    try {
      expect((await dial(srv.port, null)).ok).toBe(true);
    } finally {
      await srv.close();
    }
  });
});

describe('peer listener: client certificate SANs must match the remote address', () => {
  const peerInfo = (over: Partial<TlsInfo> = {}): TlsInfo =>
    info({ certFile: certs.peer.cert, keyFile: certs.peer.key, trustedCaFile: certs.ca, clientCertAuth: true, ...over });

  it('accepts a peer whose IP SAN is its address, refuses one whose SANs do not match', async () => {
    const srv = await startTls(peerInfo(), 'peer-listener');
    try {
      expect((await dial(srv.port, certs.peer)).data).toBe('ok:peer');
      expect((await dial(srv.port, certs.clientRoot)).ok).toBe(true); // no SANs: nothing to check
      expect((await dial(srv.port, certs.peerWrongSan)).ok).toBe(false);
      expect(srv.rejects).toEqual(['x509: certificate is valid for 10.0.0.99, not 127.0.0.1']);
    } finally {
      await srv.close();
    }
  });

  it('--experimental-peer-skip-client-san-verification skips it; client listeners never check it', async () => {
    const skip = await startTls(peerInfo({ skipClientSanVerify: true }), 'peer-listener');
    const client = await startTls(peerInfo(), 'client-listener');
    try {
      expect((await dial(skip.port, certs.peerWrongSan)).ok).toBe(true);
      expect((await dial(client.port, certs.peerWrongSan)).ok).toBe(true);
    } finally {
      await skip.close();
      await client.close();
    }
  });
});

describe('ALPN: gRPC over h2 and the JSON gateway over HTTP/1.1 on one TLS port', () => {
  it('negotiates h2 and http/1.1 on an http2 secure server, through the post-handshake guard', async () => {
    const i = info({ trustedCaFile: certs.ca, clientCertAuth: true, crlFile: certs.crlPem });
    const server = http2.createSecureServer({ ...(await serverTlsOptions(i)), allowHTTP1: true }, (req, res) => {
      res.end(`${req.httpVersion} ${(req.socket as TLSSocket).alpnProtocol}`);
    });
    const rejects: string[] = [];
    guardSecureServer(server, i, { role: 'client-listener', onReject: (_s, e) => rejects.push(e.message) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const tlsOpts = {
      ca: readFileSync(certs.ca),
      cert: readFileSync(certs.clientRoot.cert),
      key: readFileSync(certs.clientRoot.key),
      servername: 'localhost',
    };
    try {
      // HTTP/2: the client sends its preface and request at once, while the guard still reads the CRL.
      const h2 = await new Promise<string>((resolve, reject) => {
        const session = http2.connect(`https://127.0.0.1:${port}`, tlsOpts);
        session.on('error', reject);
        const req = session.request({ ':path': '/' });
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => {
          session.close();
          resolve(body);
        });
        req.on('error', reject);
        req.end();
      });
      expect(h2).toBe('2.0 h2');

      const h1 = await new Promise<string>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port, path: '/', ...tlsOpts, ALPNProtocols: ['http/1.1'], agent: false } as https.RequestOptions,
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve(body));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(h1).toBe('1.1 http/1.1');

      // a client with no ALPN at all is served HTTP/1.1 (etcd's cmux does the same)
      const plain = await new Promise<string>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path: '/', ...tlsOpts, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
      expect(plain).toBe('1.1 false');

      // revoked client on the same server: closed before any request is read
      const revoked = await new Promise<string>((resolve) => {
        const session = http2.connect(`https://127.0.0.1:${port}`, {
          ...tlsOpts,
          cert: readFileSync(certs.revokedClient.cert),
          key: readFileSync(certs.revokedClient.key),
        });
        session.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
        const req = session.request({ ':path': '/' });
        req.on('response', () => resolve('response'));
        req.on('error', () => {});
        session.on('close', () => resolve('closed'));
        req.end();
      });
      expect(revoked).not.toBe('response');
      expect(rejects).toEqual([`transport: certificate serial ${certs.revokedClient.serial} revoked`]);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('reports the offered protocols', async () => {
    const srv = await startTls(info({}));
    try {
      expect((await dial(srv.port, null, { ALPNProtocols: ['h2'] })).alpn).toBe('h2');
      expect((await dial(srv.port, null, { ALPNProtocols: ['http/1.1'] })).alpn).toBe('http/1.1');
      expect((await dial(srv.port, null, {})).alpn).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

describe('dialing side (peer transport): clientTlsOptions', () => {
  async function dialWith(port: number, i: TlsInfo): Promise<{ ok: boolean; error?: string; socket?: TLSSocket }> {
    const opts = await clientTlsOptions(i);
    return new Promise((resolve) => {
      const s = tls.connect({ ...opts, host: '127.0.0.1', port, servername: opts.servername ?? 'localhost' }, () =>
        resolve({ ok: true, socket: s }),
      );
      s.on('error', (e) => resolve({ ok: false, error: e.message }));
    });
  }

  it('presents the peer certificate and verifies the server against the trusted CA', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }), 'peer-listener');
    try {
      const r = await dialWith(srv.port, info({ certFile: certs.peer.cert, keyFile: certs.peer.key, trustedCaFile: certs.ca }));
      expect(r.ok).toBe(true);
      r.socket!.destroy();
      // the server's certificate is not from otherCa
      const bad = await dialWith(srv.port, info({ certFile: certs.peer.cert, keyFile: certs.peer.key, trustedCaFile: certs.otherCa }));
      expect(bad.ok).toBe(false);
    } finally {
      await srv.close();
    }
  });

  it('applies allowed-CN to the server certificate, as etcd\'s VerifyPeerCertificate', async () => {
    const srv = await startTls(info({ trustedCaFile: certs.ca, clientCertAuth: true }));
    try {
      const base = { certFile: certs.peer.cert, keyFile: certs.peer.key, trustedCaFile: certs.ca };
      const good = await dialWith(srv.port, info({ ...base, allowedCN: 'server' }));
      expect(good.ok).toBe(true);
      good.socket!.destroy();
      const bad = await dialWith(srv.port, info({ ...base, allowedCN: 'someone-else' }));
      expect(bad).toMatchObject({ ok: false, error: CLIENT_CERT_AUTH_FAILED });
    } finally {
      await srv.close();
    }
  });

  it('insecureSkipVerify connects without checking; allowed-CN then fails as in etcd', async () => {
    const srv = await startTls(info({}));
    try {
      const i = info({ certFile: certs.peer.cert, keyFile: certs.peer.key, insecureSkipVerify: true, allowedCN: 'server' });
      const r = await dialWith(srv.port, i);
      expect(r.ok).toBe(true);
      await expect(checkPeerCertificate(r.socket!, i, 'dialer')).rejects.toThrow(CLIENT_CERT_AUTH_FAILED);
      r.socket!.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe('configuration errors, as etcd words them', () => {
  it('missing files, missing key, mismatched key', async () => {
    await expect(serverTlsOptions(info({ certFile: '/nonexistent/cert.pem' }))).rejects.toThrow(
      'open /nonexistent/cert.pem: no such file or directory',
    );
    await expect(serverTlsOptions(info({ keyFile: '' }))).rejects.toThrow(
      `KeyFile and CertFile must both be present[key: , cert: ${certs.server.cert}]`,
    );
    await expect(serverTlsOptions(info({ keyFile: certs.clientRoot.key }))).rejects.toThrow(
      'tls: private key does not match public key',
    );
    await expect(serverTlsOptions(info({ trustedCaFile: join(certs.dir, 'nope.pem') }))).rejects.toBeInstanceOf(TlsConfigError);
  });

  it('String() as etcd logs it', () => {
    expect(tlsInfoString(info({ trustedCaFile: '/ca', clientCertAuth: true }))).toBe(
      `cert = ${certs.server.cert}, key = ${certs.server.key}, trusted-ca = /ca, client-cert-auth = true, crl-file = `,
    );
  });
});
