import { afterEach, describe, expect, it } from 'vitest';
import type { Change } from '../../src/mvcc/kv-store';
import { EventType, WatchHub, type WatchBatch, type Watcher } from '../../src/watch/hub';
import { b, putReq, TestStore } from '../helpers/stores';

// Random writes (puts, deletes, txns, compactions) while watchers start at random revisions over
// random ranges, some with filters, and consumers that sometimes refuse (slow). In the end every
// watcher has received exactly what the store's history holds for its range from its start revision:
// in order, no gap, no repeat, each revision's events in one response — or, if its start was
// compacted away, etcd's compacted response.

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface HistEvent {
  rev: number;
  type: number;
  key: string;
  value: string;
}

interface Probe {
  w: Watcher;
  start: number;
  range: [string, string | undefined];
  noPut: boolean;
  noDelete: boolean;
  batches: WatchBatch[];
  compacted?: number;
  refuse: () => boolean;
}

const RANGES: [string, string | undefined][] = [
  ['k03', undefined],
  ['k0', 'k1'],
  ['k05', 'k12'],
  ['k1', ''],
  ['\0', ''],
  ['k19', undefined],
];

async function settle(hub: WatchHub, probes: Probe[], isSynced: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    for (const p of probes) p.refuse = () => false;
    hub.resume(probes.map((p) => p.w));
    await new Promise((r) => setTimeout(r, 5));
    if (isSynced()) return;
  }
  throw new Error('watchers did not catch up');
}

describe.each([1, 2, 3, 4, 5, 6, 7, 8])('watch hub property (seed %i)', (seed) => {
  let t: TestStore;
  afterEach(async () => t?.close());

  it('delivers exactly the history of each watcher range, in order', async () => {
    const rand = rng(seed * 7919);
    t = await new TestStore(seed % 2 ? 'memory' : 'lmdb').open();
    // A tiny ring: most catch-ups read the backend.
    // Odd seeds: a tiny ring, so catch-up mostly reads the backend; even seeds: mostly the ring.
    const hub = new WatchHub(t.store, { ringEvents: seed % 2 ? 15 : 600, maxRevsPerResponse: 7, syncIntervalMs: 1 });
    const history: HistEvent[] = [];
    t.store.onChanges((changes: readonly Change[], rev) => {
      for (const c of changes) history.push({ rev, type: c.deleted ? EventType.DELETE : EventType.PUT, key: c.kv.key.toString('latin1'), value: c.kv.value.toString() });
    });
    const probes: Probe[] = [];
    const key = () => `k${String(Math.floor(rand() * 20)).padStart(2, '0')}`;
    let compactRev = 0;

    for (let step = 0; step < 900; step++) {
      const r = rand();
      if (r < 0.45) t.kv.put(putReq(key(), `v${step}`));
      else if (r < 0.55) t.kv.deleteRange({ key: b(key()), rangeEnd: Buffer.alloc(0), prevKv: false });
      else if (r < 0.6) t.kv.deleteRange({ key: b('k1'), rangeEnd: b('k15'), prevKv: false });
      else if (r < 0.7) {
        // A txn: two puts and a delete in one revision (distinct keys: etcd refuses duplicates).
        const k1 = key();
        const k3 = key();
        const ops: any[] = [{ put: putReq(k1, `t${step}a`) }, { put: putReq(`x${step % 3}`, 'x') }, { put: putReq(`y${step % 2}`, `y${step}`) }, { put: putReq('z', `z${step}`) }];
        if (k3 !== k1) ops.push({ deleteRange: { key: b(k3), rangeEnd: Buffer.alloc(0), prevKv: false } });
        t.kv.txn({ compare: [], success: ops, failure: [] });
      } else if (r < 0.71 && t.store.currentRev > compactRev + 10) {
        compactRev = t.store.currentRev - Math.floor(rand() * 10);
        await t.kv.compact(compactRev).done;
      } else if (r < 0.88) {
        const cur = t.store.currentRev;
        const pick = rand();
        // Mostly in the past above the compaction (history to replay), some compacted, some live or future.
        const floor = Math.max(1, compactRev);
        const start = pick < 0.2 ? 0 : pick < 0.75 ? floor + Math.floor(rand() * (cur - floor + 1)) : pick < 0.85 ? 1 + Math.floor(rand() * cur) : cur + 1 + Math.floor(rand() * 5);
        const range = RANGES[Math.floor(rand() * RANGES.length)];
        const p = { start: start === 0 ? cur + 1 : start, range, noPut: rand() < 0.15, noDelete: rand() < 0.15, batches: [], refuse: () => rand() < 0.15 } as unknown as Probe;
        const sink = {
          send: (batch: WatchBatch) => {
            if (batch.compactRevision) {
              p.compacted = batch.compactRevision;
              return true;
            }
            if (p.refuse()) return false;
            p.batches.push({ ...batch, events: [...batch.events] });
            return true;
          },
        };
        p.w = hub.watch(BigInt(probes.length), range[0], range[1], start, { noPut: p.noPut, noDelete: p.noDelete }, sink);
        probes.push(p);
      } else if (r < 0.9) {
        await new Promise((res) => setTimeout(res, 1)); // let catch-up rounds run between writes
      }
    }
    await settle(hub, probes, () => probes.every((p) => p.compacted !== undefined || hub.isSynced(p.w)));

    expect(probes.length).toBeGreaterThan(20);
    let checked = 0;
    for (const p of probes) {
      if (p.compacted !== undefined) {
        // Only a watcher whose start fell below a compaction may be told so.
        expect(p.start).toBeLessThan(p.compacted);
        continue;
      }
      const [lo, hi] = p.range;
      const inRange = (k: string) => (hi === undefined ? k === lo : k >= lo && (hi === '' || k < hi));
      const want = history.filter((e) => e.rev >= p.start && inRange(e.key) && !(p.noPut && e.type === EventType.PUT) && !(p.noDelete && e.type === EventType.DELETE));
      const got = p.batches.flatMap((bt) => bt.events.map((e) => ({ rev: e.kv.modRevision, type: e.type, key: e.kv.key.toString('latin1'), value: e.type === EventType.PUT ? e.kv.value.toString() : '' })));
      expect(got, `watcher ${p.w.id} range ${JSON.stringify(p.range)} from ${p.start}`).toEqual(want.map((e) => ({ ...e, value: e.type === EventType.PUT ? e.value : '' })));
      // All events of one revision in one response.
      const seen = new Map<number, number>();
      p.batches.forEach((bt, i) => bt.events.forEach((e) => {
        const prev = seen.get(e.kv.modRevision);
        expect(prev === undefined || prev === i, `revision ${e.kv.modRevision} split across responses`).toBe(true);
        seen.set(e.kv.modRevision, i);
      }));
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
    hub.close();
  });
});
