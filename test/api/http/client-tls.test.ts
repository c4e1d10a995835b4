import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCerts, type TestCerts } from '../../helpers/certs';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, freePort } from '../../helpers/servers';
import { Etcd3 } from 'etcd3';

// https client URLs (issue #15): Plinth and real etcd 3.4 started with the same TLS flags, driven by the
// same etcdctl commands (--cacert / --cert / --key) and the same gateway requests over https.

const REPO = resolve(__dirname, '..', '..', '..');
const PYTHON = '/usr/bin/python3';
const HAS_PYTHON_ETCD3 = spawnSync(PYTHON, ['-c', 'import etcd3'], { stdio: 'ignore' }).status === 0;
type Out = { code: number; stdout: string; stderr: string };

interface Member {
  endpoint: string;
  proc: ChildProcess;
  logs: () => string;
  stop(): Promise<void>;
}

function etcdctl(endpoint: string, tls: string[], args: string[]): Out {
  const r = spawnSync('etcdctl', ['--endpoints', `https://${endpoint}`, '--command-timeout=5s', ...tls, ...args], {
    encoding: 'utf8', timeout: 15_000, env: { ...process.env, ETCDCTL_API: '3' },
  });
  const stderr = (r.stderr ?? '').split('\n').filter((l) => !l.startsWith('{"level"')).join('\n').split(endpoint).join('<endpoint>');
  return { code: r.status ?? -1, stdout: (r.stdout ?? '').split(endpoint).join('<endpoint>'), stderr };
}

/** Starts etcd or Plinth on an https client URL with the given flags; ready once etcdctl gets an answer. */
async function start(kind: 'etcd' | 'plinth', flags: string[], probeTls: string[]): Promise<Member> {
  const [port, peerPort] = [await freePort(), await freePort()];
  const parent = mkdtempSync(join(tmpdir(), `${kind}-tls-`));
  const url = `https://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const common = ['--name', 'default', '--data-dir', join(parent, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`, ...flags];
  const proc = kind === 'etcd'
    ? spawn('etcd', common, { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [join(REPO, 'bin', 'plinth.js'), '--backend', 'memory', '--bcrypt-cost', '4', ...common], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-8000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-8000)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const endpoint = `127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(parent, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) break;
    if (etcdctl(endpoint, probeTls, ['endpoint', 'health']).code === 0) return { endpoint, proc, logs: () => out, stop };
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`${kind} did not serve on ${url}: ${out}`);
}

/** A gateway request over https: status and body (the header left out). */
function gateway(endpoint: string, path: string, body: unknown, opts: { ca: string; cert?: string; key?: string; token?: string }): Promise<{ status: number; body: unknown }> {
  return new Promise((resolvePromise, reject) => {
    const [host, port] = endpoint.split(':');
    const req = request({
      host, port: Number(port), path, method: 'POST', ca: readFileSync(opts.ca), timeout: 10_000,
      ...(opts.cert ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key!) } : {}),
      headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: opts.token } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          const v = JSON.parse(text) as Record<string, unknown>;
          delete v.header;
          resolvePromise({ status: res.statusCode ?? 0, body: v });
        } catch {
          resolvePromise({ status: res.statusCode ?? 0, body: text });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.skipIf(!ETCD_AVAILABLE || !ETCDCTL_AVAILABLE)('https client URLs, as etcd 3.4', () => {
  let certs: TestCerts;
  beforeAll(async () => {
    certs = await makeTestCerts();
  });
  afterAll(async () => {
    await certs?.cleanup();
  });

  it('server TLS: etcdctl with the CA works, without it the certificate is refused; the gateway answers over https', async () => {
    const flags = ['--cert-file', certs.server.cert, '--key-file', certs.server.key];
    const tls = ['--cacert', certs.ca];
    const [etcd, plinth] = await Promise.all([start('etcd', flags, tls), start('plinth', flags, tls)]);
    try {
      for (const args of [['put', 'k', 'v'], ['get', 'k'], ['get', 'k', '--print-value-only']]) {
        const [e, p] = [etcdctl(etcd.endpoint, tls, args), etcdctl(plinth.endpoint, tls, args)];
        expect(p, args.join(' ')).toEqual(e);
        expect(e.code).toBe(0);
      }
      const [e, p] = [etcdctl(etcd.endpoint, [], ['get', 'k']), etcdctl(plinth.endpoint, [], ['get', 'k'])];
      expect(e.code).not.toBe(0);
      expect(p.code).toBe(e.code);
      const [ge, gp] = await Promise.all([etcd, plinth].map((m) => gateway(m.endpoint, '/v3/kv/range', { key: b64('k') }, { ca: certs.ca })));
      expect(gp).toEqual(ge);
      expect(ge.body).toMatchObject({ count: '1' });
    } finally {
      await Promise.all([etcd.stop(), plinth.stop()]);
    }
  }, 90_000);

  it('--client-cert-auth: a certificate of the trusted CA is needed; with auth on, its CN is the user (not through the gateway)', async () => {
    const flags = ['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca, '--client-cert-auth', '--client-crl-file', certs.crlPem];
    const asRoot = ['--cacert', certs.ca, '--cert', certs.clientRoot.cert, '--key', certs.clientRoot.key];
    const asAlice = ['--cacert', certs.ca, '--cert', certs.clientAlice.cert, '--key', certs.clientAlice.key];
    const [etcd, plinth] = await Promise.all([start('etcd', flags, asRoot), start('plinth', flags, asRoot)]);
    try {
      const same = (tls: string[], args: string[]) => {
        const [e, p] = [etcdctl(etcd.endpoint, tls, args), etcdctl(plinth.endpoint, tls, args)];
        expect(p, args.join(' ')).toEqual(e);
        return e;
      };
      // No client certificate, one of another CA, an expired one, a revoked one (in the CRL): no connection.
      const withCert = (c: { cert: string; key: string }) => ['--cacert', certs.ca, '--cert', c.cert, '--key', c.key];
      for (const tls of [['--cacert', certs.ca], withCert(certs.foreignClient), withCert(certs.expiredClient), withCert(certs.revokedClient)]) {
        const [e, p] = [etcdctl(etcd.endpoint, tls, ['get', 'k']), etcdctl(plinth.endpoint, tls, ['get', 'k'])];
        expect(e.code).not.toBe(0);
        expect(p.code).toBe(e.code);
      }
      for (const args of [['user', 'add', 'root:rootpw'], ['user', 'add', 'alice:apw'], ['role', 'add', 'ra'],
        ['role', 'grant-permission', 'ra', 'readwrite', 'a/', '--prefix'], ['user', 'grant-role', 'alice', 'ra'], ['put', 'secret', 's'], ['auth', 'enable']]) {
        expect(same(asRoot, args).code, args.join(' ')).toBe(0);
      }
      // No --user: the certificate's CN stands for the user.
      expect(same(asAlice, ['put', 'a/1', 'v']).code).toBe(0);
      expect(same(asAlice, ['get', 'a/1']).stdout).toBe('a/1\nv\n');
      const denied = same(asAlice, ['get', 'secret']);
      expect(denied.stderr).toContain('etcdserver: permission denied');
      expect(same(asRoot, ['get', 'secret']).code).toBe(0);
      // A token wins over the certificate.
      expect(same([...asRoot, '--user', 'alice:apw'], ['get', 'secret']).stderr).toContain('etcdserver: permission denied');
      // Through the gateway the certificate would not count (the gateway dials with the server's own): etcd
      // refuses such a request outright; with a token it is the token's user.
      const opts = { ca: certs.ca, cert: certs.clientRoot.cert, key: certs.clientRoot.key };
      const [ge, gp] = await Promise.all([etcd, plinth].map((m) => gateway(m.endpoint, '/v3/kv/range', { key: b64('secret') }, opts)));
      expect(gp).toEqual(ge);
      expect(ge).toEqual({ status: 400, body: 'CommonName of client sending a request against gateway will be ignored and not used as expected\n' });
      expect(same(asRoot, ['auth', 'disable']).code).toBe(0);
    } finally {
      await Promise.all([etcd.stop(), plinth.stop()]);
    }
  }, 90_000);

  it('--client-cert-allowed-hostname: only a client certificate naming that host is let in', async () => {
    const flags = ['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca, '--client-cert-auth',
      '--client-cert-allowed-hostname', 'alice.example.com'];
    const asAlice = ['--cacert', certs.ca, '--cert', certs.clientAlice.cert, '--key', certs.clientAlice.key];
    const asRoot = ['--cacert', certs.ca, '--cert', certs.clientRoot.cert, '--key', certs.clientRoot.key];
    const [etcd, plinth] = await Promise.all([start('etcd', flags, asAlice), start('plinth', flags, asAlice)]);
    try {
      const [e, p] = [etcdctl(etcd.endpoint, asAlice, ['put', 'k', 'v']), etcdctl(plinth.endpoint, asAlice, ['put', 'k', 'v'])];
      expect(p).toEqual(e);
      expect(e.code).toBe(0);
      const [er, pr] = [etcdctl(etcd.endpoint, asRoot, ['get', 'k']), etcdctl(plinth.endpoint, asRoot, ['get', 'k'])];
      expect(er.code).not.toBe(0);
      expect(pr.code).toBe(er.code);
    } finally {
      await Promise.all([etcd.stop(), plinth.stop()]);
    }
  }, 90_000);

  it('--auto-tls: a self-signed certificate made in the data dir; an https URL without certificates is refused at start', async () => {
    const insecure = ['--insecure-transport=false', '--insecure-skip-tls-verify'];
    const [etcd, plinth] = await Promise.all([start('etcd', ['--auto-tls'], insecure), start('plinth', ['--auto-tls'], insecure)]);
    try {
      const [e, p] = [etcdctl(etcd.endpoint, insecure, ['put', 'k', 'v']), etcdctl(plinth.endpoint, insecure, ['put', 'k', 'v'])];
      expect(p).toEqual(e);
      expect(e.code).toBe(0);
    } finally {
      await Promise.all([etcd.stop(), plinth.stop()]);
    }
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'plinth-tls-'));
    try {
      const r = spawnSync(process.execPath, [join(REPO, 'bin', 'plinth.js'), '--data-dir', join(dir, 'data'), '--listen-client-urls', `https://127.0.0.1:${port}`,
        '--advertise-client-urls', `https://127.0.0.1:${port}`], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:${port} with HTTPS scheme`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  // Debian's python3-etcd3 (gRPC; its token travels as call credentials, which grpcio sends only over TLS)
  // with user and password: the same session against both; every step's result must be equal.
  it.skipIf(!HAS_PYTHON_ETCD3)('python3-etcd3 with user and password over TLS gives etcd\'s answers', async () => {
    const flags = ['--cert-file', certs.server.cert, '--key-file', certs.server.key];
    const tls = ['--cacert', certs.ca];
    const [etcd, plinth] = await Promise.all([start('etcd', flags, tls), start('plinth', flags, tls)]);
    try {
      const runs = [etcd, plinth].map((m) => {
        for (const args of [['user', 'add', 'root:rootpw'], ['user', 'add', 'alice:apw'], ['role', 'add', 'ra'],
          ['role', 'grant-permission', 'ra', 'readwrite', 'a/', '--prefix'], ['role', 'grant-permission', 'ra', 'read', 'r/', '--prefix'],
          ['user', 'grant-role', 'alice', 'ra'], ['put', 'r/1', 'x'], ['put', 'secret', 'y'], ['auth', 'enable']]) {
          expect(etcdctl(m.endpoint, tls, args).code, args.join(' ')).toBe(0);
        }
        const r = spawnSync(PYTHON, [join(__dirname, '..', 'python3-etcd3-session.py'), m.endpoint.split(':')[1], certs.ca], { encoding: 'utf8', timeout: 90_000 });
        if (r.status !== 0) throw new Error(`python3-etcd3 session failed (${r.status}): ${r.stderr}`);
        return JSON.parse(r.stdout) as unknown[];
      });
      const [e, p] = runs;
      expect(e.length).toBe(17);
      for (let i = 0; i < e.length; i++) expect(p[i]).toEqual(e[i]);
      // The session reached the cases it is for.
      expect(e).toContainEqual(['alice get a/1', 'ok', 'v']);
      const all = JSON.stringify(e);
      for (const words of ['permission denied', 'user name is empty', 'authentication failed']) expect(all).toContain(words);
    } finally {
      await Promise.all([etcd.stop(), plinth.stop()]);
    }
  }, 120_000);

  it('the npm etcd3 client over TLS with a client certificate (its credentials option)', async () => {
    const flags = ['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca, '--client-cert-auth'];
    const probe = ['--cacert', certs.ca, '--cert', certs.clientAlice.cert, '--key', certs.clientAlice.key];
    const plinth = await start('plinth', flags, probe);
    const client = (cert?: { cert: string; key: string }) => new Etcd3({
      hosts: `https://${plinth.endpoint}`,
      credentials: { rootCertificate: readFileSync(certs.ca), ...(cert ? { privateKey: readFileSync(cert.key), certChain: readFileSync(cert.cert) } : {}) },
      defaultCallOptions: () => ({ deadline: Date.now() + 5000 }),
    });
    const alice = client(certs.clientAlice);
    const none = client();
    try {
      await alice.put('tls/k').value('v');
      expect(await alice.get('tls/k').string()).toBe('v');
      const w = await alice.watch().key('tls/k').create();
      const seen = new Promise<string>((r) => w.on('put', (kv) => r(kv.value.toString())));
      await alice.put('tls/k').value('w');
      expect(await seen).toBe('w');
      await w.cancel();
      await expect(none.get('tls/k').string()).rejects.toThrow();
    } finally {
      alice.close();
      none.close();
      await plinth.stop();
    }
  }, 60_000);
});
