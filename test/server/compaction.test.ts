import { memoryLogger } from '../../src/log';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { hashKV } from '../../src/mvcc/hash';
import { registry } from '../../src/metrics';
import type { Clock } from '../../src/server/auto-compactor';
import { defaultConfig, type ServerConfig } from '../../src/server/config';
import { EtcdServer } from '../../src/server/etcd-server';
import { putReq, rangeReq } from '../helpers/stores';

// Compaction in a running member (in process): leases expiring while a long compaction runs,
// auto-compaction in both modes through the log, etcd's metrics and log line.

const dirs: string[] = [];
const servers: EtcdServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function open(over: Partial<ServerConfig>, hooks: Parameters<typeof EtcdServer.open>[1] = {}, dir?: string): Promise<{ s: EtcdServer; dir: string }> {
  if (!dir) dirs.push((dir = mkdtempSync(join(tmpdir(), 'plinth-compaction-'))));
  const s = await EtcdServer.open({ ...defaultConfig(), dataDir: dir, backend: 'lmdb', unsafeNoFsync: true, backendBatchIntervalMs: 10, ...over }, hooks);
  servers.push(s);
  return { s, dir };
}

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

async function fill(s: EtcdServer, n: number, keys: number, prefix = 'k'): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, j) => s.put(putReq(`${prefix}${(i + j) % keys}`, `v${i + j}`))));
  }
}

describe('compaction in a running member', () => {
  it('leases expire and are revoked while a long compaction runs; the state is the same after a restart', async () => {
    const { s, dir } = await open({ compactionBatchLimit: 10, compactionSleepIntervalMs: 20 });
    const leases: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const { leaseId } = await s.leaseGrant(2, 0n);
      leases.push(leaseId);
      await s.put(putReq(`lease/${i}`, 'held', { lease: leaseId }));
    }
    await fill(s, 3000, 100);
    const at = s.store.currentRev;
    // Non-physical: answers once applied; the deletes go on, 10 per batch, 20 ms apart (> 5 s).
    await s.compact(at, false);
    expect(s.store.compactMainRev).toBe(at);
    const count = (prefix: string) => s.range(rangeReq(prefix, { end: `${prefix}\xff` })) as { count: number };
    expect(await until(() => count('lease/').count === 0, 10_000), 'leases expired').toBe(true);
    expect(s.store.finishedCompactRev, 'the compaction was still running').toBeLessThan(at);
    expect([...s.lessor.leases.keys()].filter((id) => leases.includes(id))).toEqual([]);
    // Reads and writes meanwhile.
    await s.put(putReq('during', 'yes'));
    expect((s.range(rangeReq('lease/0', { revision: at })) as { count: number }).count).toBe(1);
    expect(() => s.range(rangeReq('lease/0', { revision: at - 1 }))).toThrow(Errors.compacted);
    await s.store.compactionsDone();
    expect(s.store.finishedCompactRev).toBe(at);
    const hash = await hashKV(s.store, 0);
    const rev = s.store.currentRev;

    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const { s: again } = await open({}, {}, dir);
    expect(again.store.currentRev).toBe(rev);
    expect(again.store.compactMainRev).toBe(at);
    expect(await hashKV(again.store, 0)).toEqual(hash);
    expect((again.range(rangeReq('lease/', { end: 'lease0' })) as { count: number }).count).toBe(0);
    expect(again.lessor.leases.size).toBe(0);
  });

  it('etcd metrics and the "finished scheduled compaction" log line', async () => {
    const logger = memoryLogger();
    const { s } = await open({ compactionBatchLimit: 50, compactionSleepIntervalMs: 0 }, { logger });
    await fill(s, 400, 40);
    const before = registry.render();
    const value = (text: string, name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
    const at = s.store.currentRev - 40;
    await s.compact(at, true);
    const after = registry.render();
    for (const [name, type] of [
      ['etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds', 'histogram'],
      ['etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'histogram'],
      ['etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds', 'histogram'],
      ['etcd_debugging_mvcc_db_compaction_keys_total', 'counter'],
    ]) {
      expect(after).toContain(`# TYPE ${name} ${type}`);
    }
    // Revisions 2..at-1 hold versions superseded by at: 40 keys x 10 versions, the last 1 or 2 kept.
    const removed = value(after, 'etcd_debugging_mvcc_db_compaction_keys_total') - value(before, 'etcd_debugging_mvcc_db_compaction_keys_total');
    expect(removed).toBe(at - 1 - 40);
    // 321 revisions in the range at 50 a batch: 6 full batches with a pause each, then the last.
    const pauses = (t: string) => value(t, 'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_count');
    expect(pauses(after) - pauses(before)).toBe(Math.floor((at - 1) / 50));
    const totals = (t: string) => value(t, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count');
    expect(totals(after) - totals(before)).toBe(1);
    expect(after).toContain('etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_bucket{le="100"}');
    expect(after).toContain('etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds_bucket{le="4096"}');
    expect(after).toContain('etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds_bucket{le="4096"}');
    const line = logger.records.find((l) => l.msg === 'finished scheduled compaction');
    expect(line).toMatchObject({ level: 'info', caller: 'mvcc/kv-store.ts' });
    const fields = line!.fields;
    expect(fields['compact-revision']).toBe(at);
    expect(fields.took).toMatch(/^[0-9.]+(ns|µs|ms|s)$/);
    expect(fields['keys-removed']).toBe(removed);
  });
});

class FakeClock implements Clock {
  t = 0;
  private sleepers: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number) {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    this.sleepers.push({ at: this.t + ms, resolve });
    return { done, cancel: () => resolve() };
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.resolve();
  }
}

describe('auto-compaction in a running member', () => {
  it('periodic, 1h retention: compacts at the revision of an hour ago, through the log', async () => {
    const clock = new FakeClock();
    const logger = memoryLogger();
    const lines = logger.records;
    const { s } = await open({ autoCompactionMode: 'periodic', autoCompactionRetention: '1' }, { autoCompactionClock: clock, logger });
    // Every 6 minutes of the clock: 10 puts, then the clock moves.
    const revAt: number[] = [];
    for (let step = 0; step < 10; step++) {
      revAt.push(s.store.currentRev);
      await fill(s, 10, 5);
      await new Promise((r) => setImmediate(r));
      clock.advance(6 * 60_000);
      await new Promise((r) => setTimeout(r, 5));
    }
    // One hour has passed: it compacts at the revision it recorded first (at start).
    expect(await until(() => s.store.compactMainRev === revAt[0], 5000)).toBe(true);
    for (let step = 10; step < 20; step++) {
      revAt.push(s.store.currentRev);
      await fill(s, 10, 5);
      await new Promise((r) => setImmediate(r));
      clock.advance(6 * 60_000);
      await new Promise((r) => setTimeout(r, 5));
    }
    // An hour later: the revision recorded an hour before (the window of 11 records moved by 10).
    expect(await until(() => s.store.compactMainRev === revAt[9], 5000)).toBe(true);
    expect(lines.some((l) => l.msg === 'starting auto periodic compaction' && typeof l.fields.revision === 'number' && l.fields['compact-period'] === '1h0m0s')).toBe(true);
    expect(lines.some((l) => l.msg === 'completed auto periodic compaction')).toBe(true);
    await s.store.compactionsDone();
    expect(s.store.finishedCompactRev).toBe(revAt[9]);
  });

  it('revision mode: every check compacts at current - retention (short check interval)', async () => {
    const { s } = await open({ autoCompactionMode: 'revision', autoCompactionRetention: '25', autoCompactionRevisionIntervalMs: 50 });
    await fill(s, 200, 10);
    expect(await until(() => s.store.compactMainRev === s.store.currentRev - 25, 5000)).toBe(true);
    await fill(s, 100, 10);
    expect(await until(() => s.store.compactMainRev === s.store.currentRev - 25, 5000)).toBe(true);
    expect(() => s.range(rangeReq('k1', { revision: s.store.currentRev - 26 }))).toThrow(Errors.compacted);
  });
});
