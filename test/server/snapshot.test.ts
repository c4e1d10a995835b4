import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoltDb } from '../../src/storage/bolt/db';
import { BUCKETS } from '../../src/storage/engine';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, freePort, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';
import { buildGoCheck, dumpTx, goCheck, normalise } from '../storage/bolt/helpers';

// Snapshots are etcd's bbolt files, from every engine, both ways: etcdctl reads Plinth's and real etcd
// serves what etcdctl restores from them; Plinth restores real etcd's onto every engine.

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');
const ENGINES = ['lmdb', 'leveldb', 'memory', 'bolt'] as const;
const parent = mkdtempSync(join(tmpdir(), 'plinth-snap-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

/** Writes, a lease with keys, a delete and a compaction; returns what a client then sees. */
function fill(endpoint: string): { keys: string; leaseId: string; revision: number } {
  for (let i = 0; i < 30; i++) expect(etcdctl(endpoint, ['put', `s${i % 10}`, `v${i}`]).code).toBe(0);
  expect(etcdctl(endpoint, ['del', 's3']).code).toBe(0);
  const grant = etcdctl(endpoint, ['lease', 'grant', '3600']);
  const leaseId = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1];
  expect(etcdctl(endpoint, ['put', 'leased', 'yes', `--lease=${leaseId}`]).code).toBe(0);
  expect(etcdctl(endpoint, ['compaction', '10']).code).toBe(0);
  const keys = etcdctl(endpoint, ['get', '', '--prefix', '-w', 'json']).stdout;
  return { keys, leaseId, revision: Number(JSON.parse(keys).header.revision) };
}

/** The same keys, values, versions and revisions, the same revision, the lease and the compaction. */
function expectSame(endpoint: string, want: { keys: string; leaseId: string; revision: number }): void {
  const got = etcdctl(endpoint, ['get', '', '--prefix', '-w', 'json']).stdout;
  expect(JSON.parse(got).kvs).toEqual(JSON.parse(want.keys).kvs);
  expect(Number(JSON.parse(got).header.revision)).toBe(want.revision);
  expect(etcdctl(endpoint, ['lease', 'list']).stdout).toContain(want.leaseId);
  expect(etcdctl(endpoint, ['get', 's1', '--rev', '9']).stderr).toContain('required revision has been compacted');
}

function restoreWithEtcdctl(file: string, dataDir: string): void {
  const r = spawnSync('etcdctl', ['snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'default'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ETCDCTL_API: '3' } });
  expect(r.status, r.stderr).toBe(0);
}

describe.skipIf(!ETCD_AVAILABLE || !ETCDCTL_AVAILABLE)('snapshots in etcd format', () => {
  describe.each(ENGINES)('taken from Plinth on %s', (engine) => {
    it('etcdctl snapshot status reads it, and real etcd serves what etcdctl snapshot restore makes of it', async () => {
      const file = join(parent, `plinth-${engine}.db`);
      const s = await startPlinth({ backend: engine });
      let want: ReturnType<typeof fill>;
      try {
        want = fill(s.endpoint);
        const save = etcdctl(s.endpoint, ['snapshot', 'save', file]);
        expect(save.code, save.stderr).toBe(0);
      } finally {
        await s.stop();
      }
      const status = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
      expect(status.status, status.stderr).toBe(0);
      const st = JSON.parse(status.stdout);
      expect(st.revision).toBe(want.revision);
      expect(st.totalKey).toBeGreaterThan(20);
      const dataDir = join(parent, `etcd-from-${engine}`);
      restoreWithEtcdctl(file, dataDir);
      const etcd = await startEtcd(['--data-dir', dataDir]);
      try {
        expectSame(etcd.endpoint, want);
      } finally {
        await etcd.stop();
      }
    });
  });

  describe('taken from real etcd', () => {
    let want: ReturnType<typeof fill>;
    const file = join(parent, 'etcd.db');
    let etcdDataDir = '';

    it('etcdctl snapshot save from etcd', async () => {
      const etcd = await startEtcd();
      try {
        want = fill(etcd.endpoint);
        const save = etcdctl(etcd.endpoint, ['snapshot', 'save', file]);
        expect(save.code, save.stderr).toBe(0);
        etcdDataDir = etcd.dataDir;
      } finally {
        await etcd.stop({ keepData: true });
      }
    });

    it.each(['lmdb', 'leveldb', 'bolt'] as const)('plinth snapshot restore onto %s serves the same keys, lease, revision and compaction', async (to) => {
      const dataDir = join(parent, `plinth-from-etcd-${to}`);
      const r = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', file, '--data-dir', dataDir, '--backend', to], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      const s = await startPlinth({ backend: to, dataDir });
      try {
        expectSame(s.endpoint, want);
      } finally {
        await s.stop({ keepData: false });
      }
    });

    it("etcd's own member/snap/db reads in Plinth with every key equal", async () => {
      const db = await BoltDb.open(join(etcdDataDir, 'member', 'snap', 'db'), { readOnly: true });
      const tx = db.view();
      const mine = dumpTx(tx);
      const names = mine.map((e) => Buffer.from(e.k, 'hex').toString());
      for (const b of BUCKETS) expect(names, `etcd has bucket ${b}`).toContain(b);
      // The key bucket's last revision is the store's.
      const keyBucket = tx.bucket(Buffer.from('key'))!;
      let last: Buffer | undefined;
      keyBucket.forEach((k) => void (last = Buffer.from(k)));
      expect(Number(last!.readBigUInt64BE(0))).toBe(want.revision);
      const go = buildGoCheck();
      if (go.bin) expect(normalise(mine)).toEqual(normalise(goCheck(go.bin, ['check', join(etcdDataDir, 'member', 'snap', 'db')]).buckets));
      await db.close();
      rmSync(join(etcdDataDir, '..'), { recursive: true, force: true });
    });
  });

  it("the bolt engine's own file, copied as it is, is an etcd backend that real etcd serves", async () => {
    const s = await startPlinth({ backend: 'bolt' });
    let want: ReturnType<typeof fill>;
    try {
      want = fill(s.endpoint);
    } finally {
      await s.stop({ keepData: true });
    }
    const file = join(parent, 'bolt-file.db');
    copyFileSync(join(s.dataDir, 'member', 'snap', 'db'), file);
    rmSync(join(s.dataDir, '..'), { recursive: true, force: true });
    const dataDir = join(parent, 'etcd-from-bolt-file');
    const r = spawnSync('etcdctl', ['snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'default', '--skip-hash-check'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ETCDCTL_API: '3' } });
    expect(r.status, r.stderr).toBe(0);
    const etcd = await startEtcd(['--data-dir', dataDir]);
    try {
      expectSame(etcd.endpoint, want);
    } finally {
      await etcd.stop();
    }
  });

  it("restores Plinth's earlier snapshot format", async () => {
    // "PLINTH-SNAPSHOT-1\n", [bucket+1][klen][vlen][key][value]…, 0, padding to 512, sha256.
    const rec = (bucket: string, k: Buffer, v: Buffer) => {
      const h = Buffer.alloc(9);
      h[0] = BUCKETS.indexOf(bucket as never) + 1;
      h.writeUInt32BE(k.length, 1);
      h.writeUInt32BE(v.length, 5);
      return Buffer.concat([h, k, v]);
    };
    const kv = Buffer.from('0a03666f6f1002180220012a03626172', 'hex'); // KeyValue{key:"foo", create:2, mod:2, version:1, value:"bar"}
    const revKey = Buffer.alloc(17);
    revKey.writeBigUInt64BE(2n, 0);
    revKey[8] = 0x5f;
    const body = Buffer.concat([Buffer.from('PLINTH-SNAPSHOT-1\n'), rec('key', revKey, kv), Buffer.from([0])]);
    const padded = Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
    const file = join(parent, 'legacy.db');
    writeFileSync(file, Buffer.concat([padded, createHash('sha256').update(padded).digest()]));
    const dataDir = join(parent, 'legacy-restored');
    const r = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', file, '--data-dir', dataDir, '--backend', 'bolt'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const s: RunningServer = await startPlinth({ backend: 'bolt', dataDir });
    try {
      expect(etcdctl(s.endpoint, ['get', 'foo', '--print-value-only']).stdout.trim()).toBe('bar');
    } finally {
      await s.stop({ keepData: false });
    }
    void freePort;
  });
});
