import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawKv } from '../api/grpc-client';
import { etcdctl, ETCDCTL_AVAILABLE, startPlinth } from '../helpers/servers';

// The data dir on a small tmpfs that fills up: the server raises NOSPACE and refuses writes cleanly
// (it stays up, serves reads, loses nothing acknowledged) and takes writes again once space is freed.
// Mounting a tmpfs needs root, as CI and developers have here.
function canMount(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-mount-probe-'));
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status === 0;
  if (ok) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  return ok;
}

const b = (s: string) => Buffer.from(s);
// Random bytes: LevelDB compresses, and a repeated value would never fill the disk.
const values = new Map<string, Buffer>();
const valueFor = (key: string) => values.get(key) ?? values.set(key, randomBytes(8000)).get(key)!;

describe.skipIf(!canMount() || !ETCDCTL_AVAILABLE).each(['lmdb', 'leveldb', 'memory', 'bolt'] as const)('disk full (%s)', (backend) => {
  const mnt = mkdtempSync(join(tmpdir(), `plinth-diskfull-${backend}-`));
  afterAll(() => {
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it('raises NOSPACE, keeps serving reads, loses nothing, and recovers after space is freed', async () => {
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]).status).toBe(0);
    const filler = join(mnt, 'filler');
    writeFileSync(filler, Buffer.alloc(12 * 1024 * 1024, 1));
    const dataDir = join(mnt, 'data');
    const args = ['--wal-segment-bytes', String(1024 * 1024), '--quota-backend-bytes', '-1', '--backend-batch-interval', '20ms'];
    let server = await startPlinth({ backend, dataDir, extraArgs: args });
    let kv = new RawKv(server.endpoint);
    // Whatever fails below, the server is stopped (afterAll then unmounts the tmpfs).
    const servers = [server];
    try {
      const acked: string[] = [];
      const errors: string[] = [];
      const deadline = Date.now() + 40_000;
      await Promise.all(
        Array.from({ length: 4 }, async (_, w) => {
          for (let i = 0; i < 2000 && Date.now() < deadline && errors.length < 20; i++) {
            const key = `k/${w}/${i}`;
            try {
              await kv.put({ key: b(key), value: valueFor(key) });
              acked.push(key);
            } catch (err) {
              errors.push((err as Error).message);
              await new Promise((r) => setTimeout(r, 20));
            }
          }
        }),
      );
      expect(errors.length, 'the disk must fill up within the bound').toBeGreaterThan(0);
      expect(server.proc.exitCode, `the server stays up; its log:\n${server.logs()}`).toBeNull();
      expect(errors.at(-1)).toContain('etcdserver: mvcc: database space exceeded');
      const alarms = etcdctl(server.endpoint, ['alarm', 'list']);
      expect(alarms.stdout, `${alarms.stderr}\nserver log:\n${server.logs()}`).toMatch(/alarm:NOSPACE/);
      // Reads go on.
      const sample = acked.filter((_, i) => i % 25 === 0);
      const wrong: string[] = [];
      for (const key of sample) if (!(await kv.range({ key: b(key) })).kvs[0]?.value.equals(valueFor(key))) wrong.push(key);
      expect(wrong).toEqual([]);

      // Free space; the backend's commits go through again; disarm; writes work.
      rmSync(filler);
      await new Promise((r) => setTimeout(r, 3000));
      expect(etcdctl(server.endpoint, ['alarm', 'disarm']).code).toBe(0);
      const after = await kv.put({ key: b('after'), value: b('space freed') });
      expect(Number(after.header.revision)).toBeGreaterThan(acked.length);
      kv.close();
      await server.stop({ keepData: true });

      // Nothing acknowledged was lost, nothing is corrupt.
      server = await startPlinth({ backend, dataDir, extraArgs: args });
      servers.push(server);
      kv = new RawKv(server.endpoint);
      const all = await kv.range({ key: b('k/'), range_end: b('k0') });
      const present = new Map(all.kvs.map((x) => [x.key.toString(), x.value]));
      expect(acked.filter((k) => !present.has(k))).toEqual([]);
      // (Buffer.equals: a deep toEqual on thousands of 8 KB buffers takes tens of seconds.)
      expect(acked.filter((k) => !present.get(k)!.equals(valueFor(k)))).toEqual([]);
      expect((await kv.range({ key: b('after') })).kvs[0]?.value.toString()).toBe('space freed');
      kv.close();
    } finally {
      for (const srv of servers) await srv.stop({ keepData: true });
    }
  }, 90_000);
});
