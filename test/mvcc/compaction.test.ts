import { afterEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { hashKV } from '../../src/mvcc/hash';
import { KVStore, type StoreOptions } from '../../src/mvcc/kv-store';
import { readRevision } from '../../src/mvcc/revision';
import { registry } from '../../src/metrics';
import { b, ENGINE_KINDS, putReq, rangeReq, TestStore } from '../helpers/stores';
import { openBackend } from '../../src/storage';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Compaction while the store is in use: the key index is compacted a slice at a time and the backend a
// batch at a time, with reads and writes in between; a stop halfway is finished at the next open.

const del = (key: string) => ({ key: b(key), rangeEnd: Buffer.alloc(0), prevKv: false });

/** What every key was at every revision: the reference the store is checked against. */
class Model {
  private readonly hist = new Map<string, { rev: number; value: string | undefined }[]>();
  rev = 1;
  put(key: string, value: string): void {
    this.rev++;
    let h = this.hist.get(key);
    if (!h) this.hist.set(key, (h = []));
    h.push({ rev: this.rev, value });
  }
  del(key: string): boolean {
    const h = this.hist.get(key);
    if (!h || h[h.length - 1].value === undefined) return false;
    this.rev++;
    h.push({ rev: this.rev, value: undefined });
    return true;
  }
  at(key: string, rev: number): { rev: number; value: string } | undefined {
    const h = this.hist.get(key) ?? [];
    let found: { rev: number; value: string | undefined } | undefined;
    for (const e of h) if (e.rev <= rev) found = e;
    return found && found.value !== undefined ? (found as { rev: number; value: string }) : undefined;
  }
  /** The revisions a compaction at rev keeps at or below rev: each key's value at rev, if live. */
  kept(rev: number): number[] {
    const out: number[] = [];
    for (const k of this.hist.keys()) {
      const e = this.at(k, rev);
      if (e) out.push(e.rev);
    }
    return out.sort((x, y) => x - y);
  }
  get keys(): string[] {
    return [...this.hist.keys()];
  }
}

const prng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

/** Main revisions <= rev still in the key bucket. */
async function revisionsUpTo(t: TestStore, rev: number): Promise<number[]> {
  const out: number[] = [];
  await t.backend.scan('key', Buffer.alloc(0), undefined, (k) => {
    const { main } = readRevision(k);
    if (main <= rev) out.push(main);
  });
  return out.sort((x, y) => x - y);
}

function write(t: TestStore, m: Model, rnd: () => number, keys: string[], i: number): void {
  const key = keys[Math.floor(rnd() * keys.length)];
  if (rnd() < 0.2 && m.del(key)) t.kv.deleteRange(del(key));
  else {
    m.put(key, `v${i}`);
    t.kv.put(putReq(key, `v${i}`));
  }
}

function checkRead(t: TestStore, m: Model, key: string, rev: number): void {
  const want = m.at(key, rev);
  const got = t.kv.range(rangeReq(key, { revision: rev })).kvs[0];
  if (!want) expect(got, `${key}@${rev}`).toBeUndefined();
  else expect({ rev: got?.modRevision, value: got?.value.toString() }, `${key}@${rev}`).toEqual(want);
}

const metric = (name: string) => {
  const line = registry.render().split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
};

describe.each(ENGINE_KINDS)('compaction in use (%s)', (kind) => {
  let t: TestStore;
  afterEach(async () => {
    await t?.store.close();
    await t?.close();
  });

  it('reads at or after the compaction revision stay right while it runs, reads before fail at once, writes go on', async () => {
    const lines: string[] = [];
    const opts: StoreOptions = { compaction: { batchLimit: 40, sleepMs: 1, indexStepMs: 0 }, log: (msg, f) => lines.push(`${msg} ${JSON.stringify(f)}`) };
    t = await new TestStore(kind, opts).open();
    const m = new Model();
    const rnd = prng(7);
    // 1500 keys with a few versions each, some deleted, some deleted and created again.
    const keys = Array.from({ length: 1500 }, (_, i) => `key/${String(i).padStart(5, '0')}`);
    for (const k of keys) {
      m.put(k, 'first');
      t.kv.put(putReq(k, 'first'));
    }
    for (let i = 0; i < 3000; i++) write(t, m, rnd, keys, i);
    const at = m.rev - 500;
    const keysBefore = metric('etcd_debugging_mvcc_db_compaction_keys_total');
    const indexSteps = metric('etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds_count');

    let done = false;
    const compaction = t.store.compact(at).then(() => (done = true));
    // At once: below fails, at and after reads as before.
    expect(() => t.kv.range(rangeReq(keys[0], { revision: at - 1 }))).toThrow(Errors.compacted);
    expect(() => t.kv.compact(at)).toThrow(Errors.compacted);
    expect(() => t.kv.compact(m.rev + 1)).toThrow(Errors.futureRev);
    let rounds = 0;
    for (let i = 0; !done && i < 20_000; i++) {
      // A turn of the event loop: the compaction does a slice or a batch, then reads and writes run.
      await new Promise<void>((r) => setImmediate(r));
      for (let j = 0; j < 5; j++) write(t, m, rnd, keys, 10_000 + i * 5 + j);
      for (let j = 0; j < 5; j++) checkRead(t, m, keys[Math.floor(rnd() * keys.length)], at + Math.floor(rnd() * (m.rev - at + 1)));
      rounds++;
    }
    await compaction;
    expect(rounds, 'reads and writes ran while the compaction did').toBeGreaterThan(20);
    expect(metric('etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds_count') - indexSteps).toBeGreaterThan(3);

    // Everything reads as the model says, at every revision from the compacted one on.
    for (const k of keys) for (const r of [at, at + 1, Math.floor((at + m.rev) / 2), m.rev]) checkRead(t, m, k, r);
    // The backend holds, at or below the compaction revision, exactly what etcd keeps.
    expect(await revisionsUpTo(t, at)).toEqual(m.kept(at));
    expect(metric('etcd_debugging_mvcc_db_compaction_keys_total') - keysBefore).toBe(at - 1 - m.kept(at).length);
    const finished = lines.filter((l) => l.startsWith('finished scheduled compaction'));
    expect(finished).toHaveLength(1);
    expect(finished[0]).toMatch(new RegExp(`^finished scheduled compaction \\{"compact-revision":${at},"took":"[0-9.]+(ms|s|µs)"`));

    // The same history compacted in one go, after all those writes, hashes the same.
    const twin = await new TestStore('memory').open();
    try {
      const m2 = new Model();
      const rnd2 = prng(7);
      for (const k of keys) {
        m2.put(k, 'first');
        twin.kv.put(putReq(k, 'first'));
      }
      for (let i = 0; i < 3000; i++) write(twin, m2, rnd2, keys, i);
      for (let i = 0; i < rounds; i++) {
        for (let j = 0; j < 5; j++) write(twin, m2, rnd2, keys, 10_000 + i * 5 + j);
        for (let j = 0; j < 5; j++) rnd2(), rnd2();
      }
      await twin.store.compact(at);
      expect(m2.rev).toBe(m.rev);
      expect((await hashKV(t.store, 0)).hash).toBe((await hashKV(twin.store, 0)).hash);
    } finally {
      await twin.close();
    }
  });

  it('a stop halfway leaves it scheduled; the next open finishes it in the background', async () => {
    const lines: string[] = [];
    const opts: StoreOptions = { compaction: { batchLimit: 20, sleepMs: 2 }, log: (msg) => lines.push(msg) };
    t = await new TestStore(kind, opts).open();
    const m = new Model();
    for (let i = 0; i < 600; i++) {
      const k = `k${i % 50}`;
      m.put(k, `v${i}`);
      t.kv.put(putReq(k, `v${i}`));
    }
    for (let i = 0; i < 10; i++) if (m.del(`k${i}`)) t.kv.deleteRange(del(`k${i}`));
    const at = m.rev;
    let deletes = 0;
    const realDelete = t.backend.delete.bind(t.backend);
    t.backend.delete = (bucket, key) => {
      if (bucket === 'key') deletes++;
      realDelete(bucket, key);
    };
    const compaction = t.store.compact(at);
    compaction.catch(() => {});
    for (let i = 0; i < 2000 && deletes < 100; i++) await new Promise((r) => setTimeout(r, 1));
    await t.store.close();
    await expect(compaction).rejects.toBe(Errors.stopped);
    const left = (await revisionsUpTo(t, at)).length;
    expect(deletes).toBeGreaterThanOrEqual(100);
    expect(left, 'stopped halfway').toBeGreaterThan(m.kept(at).length);
    expect(lines).not.toContain('finished scheduled compaction');
    expect(readRevision(t.backend.get('meta', b('scheduledCompactRev'))!).main).toBe(at);
    expect(t.backend.get('meta', b('finishedCompactRev'))).toBeUndefined();

    await t.reopen();
    // As etcd: the scheduled revision is the compaction revision at once, and the work goes on.
    expect(t.store.compactMainRev).toBe(at);
    expect(lines).toContain('resume scheduled compaction');
    expect(() => t.kv.range(rangeReq('k20', { revision: at - 1 }))).toThrow(Errors.compacted);
    m.put('k20', 'during');
    expect(t.kv.put(putReq('k20', 'during')).revision).toBe(m.rev);
    await t.store.compactionsDone();
    expect(lines.filter((l) => l === 'finished scheduled compaction')).toHaveLength(1);
    expect(await revisionsUpTo(t, at)).toEqual(m.kept(at));
    expect(readRevision(t.backend.get('meta', b('finishedCompactRev'))!).main).toBe(at);
    for (const k of m.keys) checkRead(t, m, k, at);

    // Finished: the next open keeps the revision and resumes nothing.
    await t.reopen();
    expect(t.store.compactMainRev).toBe(at);
    expect(lines.filter((l) => l === 'resume scheduled compaction')).toHaveLength(1);
    expect(t.kv.rev).toBe(m.rev);
  });

  it('compactions queue in order; each waits for the one before', async () => {
    t = await new TestStore(kind, { compaction: { batchLimit: 5, sleepMs: 1 } }).open();
    for (let i = 0; i < 100; i++) t.kv.put(putReq(`q${i % 10}`, `v${i}`));
    const order: number[] = [];
    const a = t.store.compact(40).then(() => order.push(40));
    const c = t.store.compact(80).then(() => order.push(80));
    expect(t.store.compactMainRev).toBe(80);
    await Promise.all([a, c]);
    expect(order).toEqual([40, 80]);
    expect((await revisionsUpTo(t, 101)).filter((r) => r <= 80)).toEqual([71, 72, 73, 74, 75, 76, 77, 78, 79, 80]);
  });
});

describe.each(ENGINE_KINDS)('defragment after compaction gives the space back (%s)', (kind) => {
  it('the engine is much smaller after compaction and defragment', async () => {
    const dir = mkdtempSync(join(tmpdir(), `plinth-defrag-${kind}-`));
    const backend = await openBackend(kind, { dir });
    try {
      const store = await KVStore.open(backend, { compaction: { batchLimit: 1000, sleepMs: 0 } });
      // 200 keys x 20 versions of 2 KB (random bytes: LevelDB compresses): 8 MB of history, 400 KB live.
      const values = Array.from({ length: 20 }, () => randomBytes(2000));
      for (let v = 0; v < 20; v++) {
        for (let k = 0; k < 200; k++) {
          const txn = store.write();
          txn.put(b(`key${k}`), values[v], 0n);
          txn.end();
        }
        await backend.commit();
      }
      const full = backend.engine.sizeBytes();
      expect(full).toBeGreaterThan(5_000_000);
      await store.compact(store.currentRev);
      await backend.defragment();
      const after = backend.engine.sizeBytes();
      expect(after, `${kind}: ${full} -> ${after} bytes`).toBeLessThan(full * 0.25);
      // The data is still all there.
      const r = store.rangeKeys(b('key'), b('kez'), store.currentRev, { limit: 0, rev: 0, countOnly: false });
      expect(r.kvs.every((kv) => kv.value.equals(values[19]))).toBe(true);
      expect(r.count).toBe(200);
      await store.close();
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
