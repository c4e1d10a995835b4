// Test certificates made at test time (nothing committed): a CA, server/peer/client certificates,
// one from a foreign CA, an expired one and a revoked one with a CRL that lists it. ECDSA P-256
// through @peculiar/x509 and WebCrypto, so a whole set takes well under a second; make one set per
// test file (beforeAll) and remove it in afterAll.
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadX509, type X509Lib } from '../../src/tls/x509-lib';

export interface CertFiles {
  cert: string;
  key: string;
  /** serial as Go's %x prints it (lowercase, minimal bytes) */
  serial: string;
}

export interface TestCerts {
  dir: string;
  /** the trusted CA (PEM) */
  ca: string;
  /** another CA, not trusted by the servers */
  otherCa: string;
  /** CN "server", SANs localhost, 127.0.0.1, ::1; serverAuth + clientAuth */
  server: CertFiles;
  /** CN "peer", SANs localhost, 127.0.0.1; serverAuth + clientAuth */
  peer: CertFiles;
  /** CN "peer2", SAN 10.0.0.99 only (does not match a loopback peer address) */
  peerWrongSan: CertFiles;
  /** CN "root", no SANs; clientAuth */
  clientRoot: CertFiles;
  /** CN "alice", SAN DNS alice.example.com; clientAuth */
  clientAlice: CertFiles;
  /** CN "root", signed by otherCa */
  foreignClient: CertFiles;
  /** CN "root", expired yesterday */
  expiredClient: CertFiles;
  /** CN "revoked", listed in crlPem / crlDer */
  revokedClient: CertFiles;
  /** CRL of ca listing revokedClient, PEM ("X509 CRL", as openssl writes it) */
  crlPem: string;
  /** the same CRL, DER */
  crlDer: string;
  /** an empty CRL of ca */
  crlEmpty: string;
  cleanup(): Promise<void>;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams;
const DAY = 24 * 3600 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

type Issuer = { name: string; keys: webcrypto.CryptoKeyPair; pub: unknown };

function serialHex(): string {
  const b = randomBytes(12);
  b[0] = (b[0] & 0x7f) | 0x10; // positive, no leading zero byte
  return b.toString('hex');
}

function pem(type: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${type}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${type}-----\n`;
}

async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

async function genKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function makeCa(x: X509Lib, cn: string): Promise<{ issuer: Issuer; pem: string }> {
  const keys = await genKeys();
  const cert = await x.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialHex(),
      name: `CN=${cn}`,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      keys,
      signingAlgorithm: SIGN,
      extensions: [
        new x.BasicConstraintsExtension(true, undefined, true),
        new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign | x.KeyUsageFlags.digitalSignature, true),
        await x.SubjectKeyIdentifierExtension.create(keys.publicKey as never, false, webcrypto as never),
      ],
    },
    webcrypto as never,
  );
  return { issuer: { name: cert.subject, keys, pub: keys.publicKey }, pem: cert.toString('pem') + '\n' };
}

interface LeafSpec {
  cn: string;
  dns?: string[];
  ips?: string[];
  usages: string[];
  notBefore?: Date;
  notAfter?: Date;
}

async function makeLeaf(x: X509Lib, dir: string, name: string, issuer: Issuer, spec: LeafSpec): Promise<CertFiles> {
  const keys = await genKeys();
  const serial = serialHex();
  const extensions = [
    new x.BasicConstraintsExtension(false, undefined, true),
    new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature | x.KeyUsageFlags.keyEncipherment, true),
    new x.ExtendedKeyUsageExtension(spec.usages, false),
    await x.AuthorityKeyIdentifierExtension.create(issuer.pub as never, false, webcrypto as never),
  ] as InstanceType<X509Lib['Extension']>[];
  const sans = [
    ...(spec.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (sans.length > 0) extensions.push(new x.SubjectAlternativeNameExtension(sans, false));
  const cert = await x.X509CertificateGenerator.create(
    {
      serialNumber: serial,
      subject: `CN=${spec.cn}`,
      issuer: issuer.name,
      notBefore: spec.notBefore ?? new Date(Date.now() - DAY),
      notAfter: spec.notAfter ?? new Date(Date.now() + 30 * DAY),
      publicKey: keys.publicKey as never,
      signingKey: issuer.keys.privateKey as never,
      signingAlgorithm: SIGN,
      extensions,
    },
    webcrypto as never,
  );
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}-key.pem`);
  await fsp.writeFile(certPath, cert.toString('pem') + '\n');
  await fsp.writeFile(keyPath, await keyPem(keys), { mode: 0o600 });
  return { cert: certPath, key: keyPath, serial };
}

export async function makeTestCerts(): Promise<TestCerts> {
  const x = await loadX509();
  const dir = await fsp.mkdtemp(join(tmpdir(), 'plinth-certs-'));
  const [ca, other] = await Promise.all([makeCa(x, 'plinth test CA'), makeCa(x, 'other test CA')]);
  const caPath = join(dir, 'ca.pem');
  const otherPath = join(dir, 'other-ca.pem');
  await Promise.all([fsp.writeFile(caPath, ca.pem), fsp.writeFile(otherPath, other.pem)]);
  const both = [SERVER_AUTH, CLIENT_AUTH];
  const [server, peer, peerWrongSan, clientRoot, clientAlice, foreignClient, expiredClient, revokedClient] =
    await Promise.all([
      makeLeaf(x, dir, 'server', ca.issuer, { cn: 'server', dns: ['localhost'], ips: ['127.0.0.1', '::1'], usages: both }),
      makeLeaf(x, dir, 'peer', ca.issuer, { cn: 'peer', dns: ['localhost'], ips: ['127.0.0.1'], usages: both }),
      makeLeaf(x, dir, 'peer-wrong-san', ca.issuer, { cn: 'peer2', ips: ['10.0.0.99'], usages: both }),
      makeLeaf(x, dir, 'client-root', ca.issuer, { cn: 'root', usages: [CLIENT_AUTH] }),
      makeLeaf(x, dir, 'client-alice', ca.issuer, { cn: 'alice', dns: ['alice.example.com'], usages: [CLIENT_AUTH] }),
      makeLeaf(x, dir, 'foreign-client', other.issuer, { cn: 'root', usages: [CLIENT_AUTH] }),
      makeLeaf(x, dir, 'expired-client', ca.issuer, {
        cn: 'root',
        usages: [CLIENT_AUTH],
        notBefore: new Date(Date.now() - 10 * DAY),
        notAfter: new Date(Date.now() - DAY),
      }),
      makeLeaf(x, dir, 'revoked-client', ca.issuer, { cn: 'revoked', usages: [CLIENT_AUTH] }),
    ]);
  const crl = async (serials: string[]): Promise<ArrayBuffer> =>
    (
      await x.X509CrlGenerator.create(
        {
          issuer: ca.issuer.name,
          thisUpdate: new Date(Date.now() - DAY),
          nextUpdate: new Date(Date.now() + 30 * DAY),
          signingKey: ca.issuer.keys.privateKey as never,
          signingAlgorithm: SIGN,
          entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date(Date.now() - 3600_000) })),
        },
        webcrypto as never,
      )
    ).rawData;
  const [full, empty] = await Promise.all([crl([revokedClient.serial]), crl([])]);
  const crlPem = join(dir, 'crl.pem');
  const crlDer = join(dir, 'crl.der');
  const crlEmpty = join(dir, 'crl-empty.pem');
  await Promise.all([
    fsp.writeFile(crlPem, pem('X509 CRL', full)),
    fsp.writeFile(crlDer, Buffer.from(full)),
    fsp.writeFile(crlEmpty, pem('X509 CRL', empty)),
  ]);
  return {
    dir,
    ca: caPath,
    otherCa: otherPath,
    server,
    peer,
    peerWrongSan,
    clientRoot,
    clientAlice,
    foreignClient,
    expiredClient,
    revokedClient,
    crlPem,
    crlDer,
    crlEmpty,
    cleanup: () => fsp.rm(dir, { recursive: true, force: true }),
  };
}
