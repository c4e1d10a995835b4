import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RawKv } from '../api/grpc-client';
import { ETCD_AVAILABLE, ETCDCTL_AVAILABLE, etcdctl, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';
import { openBackend } from '../../src/storage';
import { readRevision } from '../../src/mvcc/revision';

// A real member killed with SIGKILL in the middle of a long physical compaction: the next start
// resumes it (etcd's scheduled vs finished compaction revision), finishes it, and reads, HashKV and
// the compaction revision are what they were. Also auto-compaction in a real member, against etcd.

const b = (s: string) => Buffer.from(s);
const KEYS = 2000;
const VERSIONS = 10;
const SLOW = ['--experimental-compaction-batch-limit', '100', '--experimental-compaction-sleep-interval', '25ms', '--backend-batch-interval', '10ms'];

async function metric(s: RunningServer, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

function hashkv(s: RunningServer): { hash: number; compact: number } {
  const r = etcdctl(s.endpoint, ['endpoint', 'hashkv', '-w', 'json']);
  expect(r.code, r.stderr).toBe(0);
  const h = JSON.parse(r.stdout)[0].HashKV;
  return { hash: h.hash, compact: Number(h.compact_revision) };
}

const until = async (cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

describe.skipIf(!ETCDCTL_AVAILABLE).each(['lmdb', 'leveldb', 'bolt'] as const)('kill -9 during a long physical compaction (%s)', (backend) => {
  const running: RunningServer[] = [];
  afterAll(async () => {
    for (const s of running.reverse()) await s.stop();
  });

  it('the restarted member finishes it; reads, HashKV and the compaction revision are kept', async () => {
    let s = await startPlinth({ backend, extraArgs: SLOW });
    running.push(s);
    const dataDir = s.dataDir;
    let kv = new RawKv(s.endpoint);
    // 2000 keys x 10 versions, 100 puts a txn: 20000 revisions (200 main revisions).
    for (let t = 0; t < (KEYS * VERSIONS) / 100; t++) {
      await kv.txn({ success: Array.from({ length: 100 }, (_, j) => ({ request_put: { key: b(`key/${(t * 100 + j) % KEYS}`), value: b(`v${t}`) } })) });
    }
    const at = await kv.revision();
    await kv.compact({ revision: at, physical: false });
    // Revisions are gone from HashKV's view as soon as the compaction is scheduled.
    const want = hashkv(s);
    expect(want.compact).toBe(at);
    const wantValue = etcdctl(s.endpoint, ['get', 'key/7', '--rev', String(at), '--print-value-only']).stdout;
    // ~180 batches of 100, 25 ms apart: kill it once 20 batches are done.
    // (etcd's keys counter is added to at the end; its pause histogram counts each batch.)
    expect(await until(async () => (await metric(s, 'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_count')) >= 20, 20_000)).toBe(true);
    expect(s.logs()).not.toContain('finished scheduled compaction');
    kv.close();
    await s.stop({ signal: 'SIGKILL', keepData: true });

    s = await startPlinth({ backend, dataDir, extraArgs: SLOW });
    running.push(s);
    kv = new RawKv(s.endpoint);
    expect(s.logs()).toContain(`"msg":"resume scheduled compaction","scheduled-compact-revision":${at}}`);
    // While it finishes: the compaction revision is the scheduled one, HashKV and reads as before.
    expect(hashkv(s)).toEqual(want);
    expect(etcdctl(s.endpoint, ['get', 'key/7', '--rev', String(at - 1)]).stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    expect(etcdctl(s.endpoint, ['compaction', String(at)]).stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    expect(etcdctl(s.endpoint, ['compaction', String(at + 1000)]).stderr).toContain('etcdserver: mvcc: required revision is a future revision');
    expect(etcdctl(s.endpoint, ['get', 'key/7', '--rev', String(at), '--print-value-only']).stdout).toBe(wantValue);
    expect(await until(() => s.logs().includes('finished scheduled compaction'), 30_000)).toBe(true);
    expect(s.logs()).toMatch(new RegExp(`"msg":"finished scheduled compaction","compact-revision":${at},"took":"[^"]+"`));
    expect(hashkv(s)).toEqual(want);
    expect(etcdctl(s.endpoint, ['put', 'after', 'restart']).code).toBe(0);
    const h = hashkv(s);
    kv.close();
    await s.stop({ keepData: true });

    // On disk: one revision per key at or below the compaction revision, and finished = scheduled.
    const be = await openBackend(backend, { dir: join(dataDir, 'member', 'snap') });
    let below = 0;
    await be.scan('key', Buffer.alloc(0), undefined, (k) => void (readRevision(k).main <= at && below++));
    const finished = readRevision(be.get('meta', b('finishedCompactRev'))!).main;
    const scheduled = readRevision(be.get('meta', b('scheduledCompactRev'))!).main;
    await be.close();
    expect([below, finished, scheduled]).toEqual([KEYS, at, at]);

    // A third start has nothing to resume and keeps the compaction revision.
    s = await startPlinth({ backend, dataDir, extraArgs: SLOW });
    running.push(s);
    expect(s.logs()).not.toContain('resume scheduled compaction');
    expect(hashkv(s)).toEqual(h);
    expect(etcdctl(s.endpoint, ['get', 'key/7', '--rev', String(at - 1)]).stderr).toContain('required revision has been compacted');
  }, 90_000);
});

describe.skipIf(!ETCDCTL_AVAILABLE)('auto-compaction in a real member', () => {
  const running: RunningServer[] = [];
  afterAll(async () => {
    for (const s of running.reverse()) await s.stop();
  });

  const targets = ETCD_AVAILABLE ? (['plinth', 'etcd'] as const) : (['plinth'] as const);
  it.each(targets)('periodic with a 1s retention (%s): the revision of a second ago is compacted', async (kind) => {
    const args = ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '1s'];
    const s = kind === 'etcd' ? await startEtcd(args) : await startPlinth({ extraArgs: args });
    running.push(s);
    expect(etcdctl(s.endpoint, ['put', 'a', '1']).code).toBe(0); // 2
    expect(etcdctl(s.endpoint, ['put', 'a', '2']).code).toBe(0); // 3
    // Within a few seconds (every 100 ms it records, each second it compacts what it saw 1 s before).
    const compacted = () => etcdctl(s.endpoint, ['get', 'a', '--rev', '2']).stderr.includes('required revision has been compacted');
    expect(await until(compacted, 8000)).toBe(true);
    expect(etcdctl(s.endpoint, ['get', 'a', '--print-value-only']).stdout.trim()).toBe('2');
    expect(s.logs()).toContain('completed auto periodic compaction');
  });

  it('revision mode (Plinth, check every 200ms): keeps the last N revisions', async () => {
    const s = await startPlinth({ extraArgs: ['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '5', '--auto-compaction-revision-interval', '200ms'] });
    running.push(s);
    const kv = new RawKv(s.endpoint);
    for (let i = 0; i < 12; i++) await kv.put({ key: b('r'), value: b(String(i)) });
    kv.close();
    // Revision 13 now: the next check compacts at 13 - 5 = 8.
    expect(await until(() => s.logs().includes('"msg":"completed auto revision compaction","revision":8,"revision-compaction-retention":5'), 5000)).toBe(true);
    expect(etcdctl(s.endpoint, ['get', 'r', '--rev', '7']).stderr).toContain('required revision has been compacted');
    expect(etcdctl(s.endpoint, ['get', 'r', '--rev', '8', '--print-value-only']).stdout.trim()).toBe('6');
    // Nothing written since: the same revision is not compacted again.
    await new Promise((r) => setTimeout(r, 500));
    expect(s.logs().split('"msg":"completed auto revision compaction","revision":8,').length).toBe(2);
  });
});
