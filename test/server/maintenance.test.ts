import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ETCDCTL_AVAILABLE, etcdctl, startPlinth } from '../helpers/servers';

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');
const ENGINES = ['lmdb', 'leveldb', 'memory', 'bolt'] as const;
const status = (endpoint: string) => JSON.parse(etcdctl(endpoint, ['endpoint', 'status', '-w', 'json']).stdout)[0].Status;
const big = 'x'.repeat(4000);

describe.skipIf(!ETCDCTL_AVAILABLE)('maintenance with etcdctl', () => {
  const parent = mkdtempSync(join(tmpdir(), 'plinth-maint-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  describe.each(ENGINES)('quota and the NOSPACE alarm (%s)', (backend) => {
    it('refuses writes over --quota-backend-bytes as etcd, serves reads and deletes, recovers after disarm', async () => {
      const s = await startPlinth({ backend, extraArgs: ['--quota-backend-bytes', String(1024 * 1024), '--backend-batch-interval', '10ms'] });
      try {
        let failedAt = 0;
        let err = '';
        for (let i = 1; i <= 600 && !failedAt; i++) {
          const r = etcdctl(s.endpoint, ['put', `k${i}`, big]);
          if (r.code !== 0) [failedAt, err] = [i, r.stderr];
          // The backend's size is seen after its commits: give them time, as a client's pace would.
          if (i % 20 === 0) await new Promise((r) => setTimeout(r, 30));
        }
        expect(failedAt, 'a put must fail once the quota is reached').toBeGreaterThan(0);
        expect(err).toContain('Error: etcdserver: mvcc: database space exceeded');
        expect(err).toContain('code = ResourceExhausted');
        await new Promise((r) => setTimeout(r, 100));
        const alarms = etcdctl(s.endpoint, ['alarm', 'list']).stdout.trim();
        expect(alarms).toMatch(/^memberID:\d+ alarm:NOSPACE$/);
        expect(JSON.stringify(status(s.endpoint).errors)).toContain('alarm:NOSPACE');
        // Reads and deletes still work; puts do not.
        expect(etcdctl(s.endpoint, ['get', 'k1', '--print-value-only']).stdout.trim()).toBe(big);
        expect(etcdctl(s.endpoint, ['put', 'small', 'v']).stderr).toContain('database space exceeded');
        expect(etcdctl(s.endpoint, ['del', 'k', '--prefix']).stdout.trim()).toBe(String(failedAt - 1));
        // Give the space back, disarm: writes work again.
        const rev = status(s.endpoint).header.revision;
        expect(etcdctl(s.endpoint, ['compaction', '--physical', String(rev)]).code).toBe(0);
        expect(etcdctl(s.endpoint, ['defrag']).code).toBe(0);
        const disarm = etcdctl(s.endpoint, ['alarm', 'disarm']);
        expect(disarm.code, disarm.stderr).toBe(0);
        expect(disarm.stdout.trim()).toMatch(/^memberID:\d+ alarm:NOSPACE$/);
        expect(etcdctl(s.endpoint, ['alarm', 'list']).stdout.trim()).toBe('');
        const put = etcdctl(s.endpoint, ['put', 'small', 'v']);
        expect(put.code, put.stderr).toBe(0);
      } finally {
        await s.stop();
      }
    });
  });

  // 300 etcdctl processes one after another: slow on a loaded 2-core machine.
  it.each(ENGINES)('defragment gives space back and keeps data (%s)', async (backend) => {
    const s = await startPlinth({ backend, extraArgs: ['--backend-batch-interval', '10ms'] });
    try {
      for (let i = 0; i < 300; i++) expect(etcdctl(s.endpoint, ['put', `d${i}`, big]).code).toBe(0);
      expect(etcdctl(s.endpoint, ['put', 'keep', 'me']).code).toBe(0);
      expect(etcdctl(s.endpoint, ['del', 'd', '--prefix']).code).toBe(0);
      const rev = status(s.endpoint).header.revision;
      expect(etcdctl(s.endpoint, ['compaction', '--physical', String(rev)]).code).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
      const before = status(s.endpoint).dbSize;
      const r = etcdctl(s.endpoint, ['defrag']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Finished defragmenting etcd member[${s.endpoint}]`);
      const after = status(s.endpoint).dbSize;
      if (backend === 'lmdb' || backend === 'bolt') expect(after).toBeLessThan(before / 2);
      else expect(after).toBeLessThanOrEqual(before);
      expect(etcdctl(s.endpoint, ['get', 'keep', '--print-value-only']).stdout.trim()).toBe('me');
      expect(etcdctl(s.endpoint, ['put', 'after', 'defrag']).code).toBe(0);
    } finally {
      await s.stop();
    }
  }, 120_000);

  describe.each(ENGINES)('snapshot save from %s', (from) => {
    it('cannot restore onto the memory engine, which keeps nothing on disk', () => {
      const r = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', 'x.db', '--data-dir', join(parent, 'mem'), '--backend', 'memory'], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('the memory engine keeps nothing on disk');
    });

    // The snapshot is engine-independent (a bbolt file with etcd's buckets): one other engine per source
    // keeps the run short; test/server/snapshot.test.ts restores real etcd's onto each engine.
    const to = ({ lmdb: 'bolt', leveldb: 'lmdb', memory: 'leveldb', bolt: 'leveldb' } as const)[from];
    it(`restores onto ${to} with the same keys, revision and compaction`, async () => {
      const s = await startPlinth({ backend: from });
      const file = join(parent, `snap-${from}-${to}.db`);
      let want: string;
      try {
        for (let i = 0; i < 30; i++) etcdctl(s.endpoint, ['put', `s${i % 10}`, `v${i}`]);
        etcdctl(s.endpoint, ['del', 's3']);
        expect(etcdctl(s.endpoint, ['compaction', '10']).code).toBe(0);
        want = etcdctl(s.endpoint, ['get', 's', '--prefix', '-w', 'json']).stdout;
        const save = etcdctl(s.endpoint, ['snapshot', 'save', file]);
        expect(save.code, save.stderr).toBe(0);
        expect(save.stdout).toContain(`Snapshot saved at ${file}`);
      } finally {
        await s.stop();
      }
      const dataDir = join(parent, `restored-${from}-${to}`);
      const r = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', file, '--data-dir', dataDir, '--backend', to], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      const again = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', file, '--data-dir', dataDir], { encoding: 'utf8', timeout: 30_000 });
      expect(again.status).toBe(1);
      expect(again.stderr).toContain('exists');
      const t = await startPlinth({ backend: to, dataDir });
      try {
        const got = etcdctl(t.endpoint, ['get', 's', '--prefix', '-w', 'json']).stdout;
        const strip = (j: string) => JSON.stringify({ ...JSON.parse(j), header: undefined });
        expect(strip(got)).toBe(strip(want));
        expect(JSON.parse(got).header.revision).toBe(JSON.parse(want).header.revision);
        expect(etcdctl(t.endpoint, ['get', 's1', '--rev', '9']).stderr).toContain('required revision has been compacted');
      } finally {
        await t.stop({ keepData: false });
      }
    });
  });

  it('refuses a damaged snapshot', () => {
    const file = join(parent, 'bad.db');
    require('node:fs').writeFileSync(file, Buffer.alloc(512 + 32, 1));
    const r = spawnSync(process.execPath, [BIN, 'snapshot', 'restore', file, '--data-dir', join(parent, 'never')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('integrity check failed');
  });
});
