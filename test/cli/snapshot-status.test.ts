import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatStatus, humanBytes } from '../../src/cli/snapshot-command';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, freePort, startEtcd } from '../helpers/servers';

// `plinth snapshot status FILE [-w ...]` prints what `etcdctl snapshot status` prints (etcd 3.4's
// clientv3/snapshot Status and etcdctl's printers), for snapshot files saved from real etcd and from Plinth.

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');
const plinth = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
const etcdctlLocal = (args: string[]) => spawnSync('etcdctl', args, { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plinth-snapshot-status-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Served {
  endpoint: string;
  stop(): Promise<void>;
}

/** A `plinth` process on a free port, ready once etcdctl finds it healthy (whatever its log lines say). */
async function startPlinthHere(backend: 'lmdb' | 'bolt'): Promise<Served> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [BIN, '--data-dir', join(dir, `data-${backend}`), '--listen-client-urls', url, '--backend', backend], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-4000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  const endpoint = `127.0.0.1:${port}`;
  const stop = async () => {
    const exited = new Promise((r) => proc.once('exit', r));
    if (proc.exitCode === null) proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + 30_000;
  while (etcdctl(endpoint, ['endpoint', 'health']).code !== 0) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`plinth did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { endpoint, stop };
}

/** Writes some keys (puts, an overwrite, a delete, a lease) and saves a snapshot with etcdctl. */
async function saved(server: Served, file: string): Promise<void> {
  for (let i = 0; i < 20; i++) expect(etcdctl(server.endpoint, ['put', `k${i}`, `value-${i}`]).code).toBe(0);
  expect(etcdctl(server.endpoint, ['put', 'k1', 'again']).code).toBe(0);
  expect(etcdctl(server.endpoint, ['del', 'k2']).code).toBe(0);
  expect(etcdctl(server.endpoint, ['lease', 'grant', '600']).code).toBe(0);
  const r = etcdctl(server.endpoint, ['snapshot', 'save', file]);
  expect(r.code, r.stderr).toBe(0);
}

describe.skipIf(!ETCDCTL_AVAILABLE)('plinth snapshot status', () => {
  const kinds = ETCD_AVAILABLE ? (['etcd', 'plinth-lmdb', 'plinth-bolt'] as const) : (['plinth-lmdb', 'plinth-bolt'] as const);
  it.each(kinds)('prints what etcdctl snapshot status prints, in every format, for a snapshot saved from %s', async (kind) => {
    const server = kind === 'etcd' ? await startEtcd() : await startPlinthHere(kind === 'plinth-bolt' ? 'bolt' : 'lmdb');
    const file = join(dir, `${kind}.db`);
    try {
      await saved(server, file);
    } finally {
      await server.stop();
    }
    const json = JSON.parse(etcdctlLocal(['snapshot', 'status', file, '-w', 'json']).stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
    // 20 puts, an overwrite and a delete: revision 23 (etcd starts at 1).
    expect(json.revision).toBe(23);
    for (const w of ['json', 'simple', 'table', 'fields']) {
      const want = etcdctlLocal(['snapshot', 'status', file, '-w', w]);
      expect(want.status).toBe(0);
      const got = plinth(['snapshot', 'status', file, '-w', w]);
      expect(got.stderr).toBe('');
      expect(got.status).toBe(0);
      expect(got.stdout, w).toBe(want.stdout);
    }
    // simple is the default, as etcdctl's; --write-out=json is the long form.
    expect(plinth(['snapshot', 'status', file]).stdout).toBe(etcdctlLocal(['snapshot', 'status', file]).stdout);
    expect(plinth(['snapshot', 'status', `--write-out=json`, file]).stdout).toBe(etcdctlLocal(['snapshot', 'status', file, '-w', 'json']).stdout);
  }, 60_000);

  it('refuses a missing file, a file that is not a snapshot, and bad arguments, with one line', () => {
    const missing = plinth(['snapshot', 'status', join(dir, 'nope.db')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^plinth snapshot: ENOENT: no such file or directory, stat '.*nope\.db'\n$/);
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'not a bbolt file\n');
    const bad = plinth(['snapshot', 'status', junk]);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('invalid database');
    const none = plinth(['snapshot', 'status']);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('plinth snapshot: snapshot status requires exactly one argument');
    const proto = plinth(['snapshot', 'status', junk, '-w', 'protobuf']);
    expect(proto.status).toBe(2);
    expect(proto.stderr).toContain('protobuf not supported as output format');
  });
});

describe('snapshot help', () => {
  it('plinth snapshot restore --help and plinth snapshot status --help print the usage, exit 0', () => {
    for (const args of [['snapshot', 'restore', '--help'], ['snapshot', 'status', '-h'], ['snapshot', '--help']]) {
      const r = plinth(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: plinth snapshot status FILE [-w simple|json|table|fields]');
      expect(r.stdout).toContain('plinth snapshot restore FILE --data-dir DIR');
    }
  });
});

describe('etcdctl formatting', () => {
  it("sizes as go-humanize's Bytes", () => {
    expect([0, 9, 10, 999, 1000, 1499, 9_949, 9_950, 20_480, 21_480, 245_760, 2_147_483_648].map(humanBytes))
      .toEqual(['0 B', '9 B', '10 B', '999 B', '1.0 kB', '1.5 kB', '9.9 kB', '10 kB', '20 kB', '22 kB', '246 kB', '2.1 GB']);
  });

  it("a table as etcdctl's tablewriter draws it", () => {
    expect(formatStatus({ hash: 0x86dea844, revision: 6, totalKey: 9, totalSize: 245760 }, 'table')).toBe([
      '+----------+----------+------------+------------+',
      '|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |',
      '+----------+----------+------------+------------+',
      '| 86dea844 |        6 |          9 |     246 kB |',
      '+----------+----------+------------+------------+',
    ].join('\n'));
  });
});
