import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCerts, type TestCerts } from '../helpers/certs';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, freePort } from '../helpers/servers';

// kubeadm's static pod manifest starts etcd with this command line (kubeadm's etcd.go, IP = the node's
// address; here 127.0.0.1 on free ports, with real certificates). `plinth` takes it unchanged and serves
// etcdctl over TLS with client certificates; real etcd 3.4 is started the same way where installed.

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');
const IP = '127.0.0.1';

let certs: TestCerts;
let dir: string;
beforeAll(async () => {
  certs = await makeTestCerts();
  dir = mkdtempSync(join(tmpdir(), 'plinth-kubeadm-'));
});
afterAll(async () => {
  await certs?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function kubeadmArgs(name: string, dataDir: string, client: number, peer: number, metrics: number): string[] {
  return [
    `--advertise-client-urls=https://${IP}:${client}`,
    `--cert-file=${certs.server.cert}`,
    '--client-cert-auth=true',
    `--data-dir=${dataDir}`,
    '--experimental-initial-corrupt-check=true',
    '--experimental-watch-progress-notify-interval=5s',
    `--initial-advertise-peer-urls=https://${IP}:${peer}`,
    `--initial-cluster=${name}=https://${IP}:${peer}`,
    `--key-file=${certs.server.key}`,
    `--listen-client-urls=https://127.0.0.1:${client},https://${IP}:${client}`,
    `--listen-metrics-urls=http://127.0.0.1:${metrics}`,
    `--listen-peer-urls=https://${IP}:${peer}`,
    `--name=${name}`,
    `--peer-cert-file=${certs.peer.cert}`,
    '--peer-client-cert-auth=true',
    `--peer-key-file=${certs.peer.key}`,
    `--peer-trusted-ca-file=${certs.ca}`,
    '--snapshot-count=10000',
    `--trusted-ca-file=${certs.ca}`,
  ];
}

function ctl(endpoint: string, args: string[], withCert = true) {
  const tls = ['--cacert', certs.ca, ...(withCert ? ['--cert', certs.clientRoot.cert, '--key', certs.clientRoot.key] : [])];
  const r = spawnSync('etcdctl', ['--endpoints', endpoint, '--command-timeout=5s', ...tls, ...args], {
    encoding: 'utf8', timeout: 15_000, env: { ...process.env, ETCDCTL_API: '3' },
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status ?? -1 };
}

async function waitHealthy(endpoint: string, proc: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}: ${logs()}`);
    if (ctl(endpoint, ['endpoint', 'health']).code === 0) return;
    if (Date.now() > deadline) throw new Error(`not healthy after 30 s: ${logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const kinds = ETCD_AVAILABLE ? (['plinth', 'etcd'] as const) : (['plinth'] as const);

describe.skipIf(!ETCDCTL_AVAILABLE).each(kinds)("kubeadm's etcd command line, on %s", (kind) => {
  it('starts, and serves etcdctl over TLS with client certificates only', async () => {
    const [client, peer, metrics] = [await freePort(), await freePort(), await freePort()];
    const name = `node-${kind}`;
    const args = kubeadmArgs(name, join(dir, kind), client, peer, metrics);
    const proc = kind === 'plinth'
      ? spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out = (out + d).slice(-6000)));
    proc.stderr!.on('data', (d) => (out = (out + d).slice(-6000)));
    const endpoint = `https://127.0.0.1:${client}`;
    try {
      await waitHealthy(endpoint, proc, () => out);
      expect(ctl(endpoint, ['put', '/registry/pods/default/p1', 'spec']).stdout.trim()).toBe('OK');
      expect(ctl(endpoint, ['get', '/registry/pods/', '--prefix', '--print-value-only']).stdout.trim()).toBe('spec');
      // The member is the one kubeadm named, at its https peer and client URLs.
      const list = JSON.parse(ctl(endpoint, ['member', 'list', '-w', 'json']).stdout) as { members: Array<{ name: string; peerURLs: string[]; clientURLs: string[] }> };
      expect(list.members).toHaveLength(1);
      expect(list.members[0]).toMatchObject({ name, peerURLs: [`https://${IP}:${peer}`], clientURLs: [`https://${IP}:${client}`] });
      // --client-cert-auth=true: without a client certificate nothing is served.
      expect(ctl(endpoint, ['get', '/registry/pods/p1'], false).code).not.toBe(0);
      // Plain http on the client port is not served either.
      const plain = spawnSync('etcdctl', ['--endpoints', `http://127.0.0.1:${client}`, '--command-timeout=2s', 'get', 'x'], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ETCDCTL_API: '3' } });
      expect(plain.status).not.toBe(0);
      expect(proc.exitCode).toBeNull();
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  }, 60_000);
});
