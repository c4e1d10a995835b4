// Throw-away TLS material for benchmarks over https (bench:compare --tls): a CA and one server certificate
// signed by it, made with openssl in a fresh temp dir at the start of a run and removed at its end. Both
// servers (real etcd and Plinth) get the same certificate, so neither pays for a bigger key or a different
// curve; the load tools trust the CA (--cacert) and check the server's name against the SAN.
//
// EC P-256 for both keys: what etcd's own docs and cfssl examples use, and the cheapest handshake Go and
// Node both do in constant time. The server certificate also carries clientAuth so that the same pair can
// be handed to a client (--cert/--key) if a run ever turns on --client-cert-auth.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BenchTls {
  /** the temp dir holding every file below (removeBenchTls deletes it) */
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** the CA certificate's PEM, for in-process gRPC clients */
  ca: Buffer;
}

/** The server certificate's subject and names: loopback by IP (what the endpoints use) and by name. */
export const SERVER_CN = 'server';
export const SERVER_SAN = 'IP:127.0.0.1,DNS:localhost';

/** Runs openssl with args (cwd = dir); rejects with its stderr when it fails. Async: no blocking of the loop. */
function openssl(dir: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    p.on('error', (e) => rej(new Error(`openssl: ${e.message} (is openssl installed?)`)));
    p.on('close', (code, signal) => {
      if (code === 0) res();
      else rej(new Error(`openssl ${args[0]} failed (${code ?? signal}): ${Buffer.concat(err).toString('utf8').trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/** Makes a CA and a server certificate (CN=server, SAN IP:127.0.0.1,DNS:localhost) in a new temp dir. */
export async function makeBenchTls(parent = tmpdir()): Promise<BenchTls> {
  const dir = await mkdtemp(join(parent, 'plinth-bench-tls.'));
  try {
    const days = '7'; // a run lasts hours at most; a short life keeps a leaked key worthless
    // our own config, not the system's openssl.cnf: the CA's extensions must not depend on the distribution
    await writeFile(
      join(dir, 'req.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = plinth-bench-ca',
        '[ca]',
        'basicConstraints = critical, CA:TRUE',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca-key.pem']);
    await openssl(dir, ['req', '-config', 'req.cnf', '-x509', '-new', '-key', 'ca-key.pem', '-sha256', '-days', days, '-extensions', 'ca', '-out', 'ca.pem']);
    await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server-key.pem']);
    await openssl(dir, ['req', '-config', 'req.cnf', '-new', '-key', 'server-key.pem', '-subj', `/CN=${SERVER_CN}`, '-out', 'server.csr']);
    // extensions from a file: `openssl x509 -req` takes no -addext (and OpenSSL 1.1 has no -copy_extensions)
    await writeFile(
      join(dir, 'server.ext'),
      [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature', // an EC key signs (ECDHE); it never enciphers a key
        'extendedKeyUsage = serverAuth, clientAuth',
        `subjectAltName = ${SERVER_SAN}`,
        '',
      ].join('\n'),
    );
    await openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-sha256', '-days', days, '-extfile', 'server.ext', '-out', 'server.pem']);
    const caFile = join(dir, 'ca.pem');
    return { dir, caFile, certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server-key.pem'), ca: await readFile(caFile) };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

export function removeBenchTls(t: BenchTls): Promise<void> {
  return rm(t.dir, { recursive: true, force: true });
}

/** The server flags (etcd's names, which Plinth shares) that serve https with t's certificate. */
export function serverTlsArgs(t: Pick<BenchTls, 'certFile' | 'keyFile'>): string[] {
  return ['--cert-file', t.certFile, '--key-file', t.keyFile];
}
