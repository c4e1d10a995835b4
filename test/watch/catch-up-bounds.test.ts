import { afterEach, describe, expect, it } from 'vitest';
import { WatchHub, type WatchBatch } from '../../src/watch/hub';
import { putReq, TestStore } from '../helpers/stores';

// Issue #16: what a watcher catching up is sent at once, and what the hub keeps in memory, are bounded
// in bytes, not only in revisions: with 100 KB values, 1000 revisions would be one 100 MB response.
// Every event still arrives, in order, once.

const VALUE = 'x'.repeat(100 * 1024);

class Recorder {
  revs: number[] = [];
  batchBytes: number[] = [];
  batchRevs: number[] = [];
  send(batch: WatchBatch): boolean {
    let bytes = 0;
    const revs = new Set<number>();
    for (const e of batch.events) {
      this.revs.push(e.kv.modRevision);
      bytes += e.kv.key.length + e.kv.value.length;
      revs.add(e.kv.modRevision);
    }
    if (batch.events.length) {
      this.batchBytes.push(bytes);
      this.batchRevs.push(revs.size);
    }
    return true;
  }
}

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

describe('catch-up bounded in bytes (issue #16)', () => {
  let t: TestStore;
  let hub: WatchHub;
  afterEach(async () => {
    hub?.close();
    await t?.store.close();
    await t?.close();
  });

  for (const from of ['ring', 'backend'] as const) {
    it(`from the ${from}: responses of at most ~1 MiB, every event once and in order`, async () => {
      t = await new TestStore('memory').open();
      // The ring holds everything, or (2 MiB) only the newest ~20 revisions: the rest comes from the backend.
      const ringBytes = from === 'ring' ? 64 * 1024 * 1024 : 2 * 1024 * 1024;
      hub = new WatchHub(t.store, { ringBytes, maxBytesPerResponse: 1024 * 1024, maxBytesPerBackendRead: 3 * 1024 * 1024, syncIntervalMs: 1 });
      const first = t.store.currentRev + 1;
      for (let i = 0; i < 200; i++) t.kv.put(putReq(`k${i % 7}`, VALUE));
      const r = new Recorder();
      hub.watch(1n, 'k', '', first, {}, r);
      expect(await until(() => r.revs.length === 200, 10_000)).toBe(true);
      expect(r.revs).toEqual(Array.from({ length: 200 }, (_, i) => first + i));
      // 1 MiB is ten 100 KB values and a bit: each response stops at the first revision past the bound.
      for (const bytes of r.batchBytes) expect(bytes).toBeLessThanOrEqual(1024 * 1024 + VALUE.length + 10);
      expect(r.batchBytes.length).toBeGreaterThanOrEqual(18);
    });
  }

  it('the history ring keeps at most its byte budget of recent events', async () => {
    t = await new TestStore('memory').open();
    hub = new WatchHub(t.store, { ringBytes: 1024 * 1024 });
    for (let i = 0; i < 100; i++) t.kv.put(putReq(`k${i}`, VALUE));
    const ring = (hub as unknown as { ring: { bytes: number; length: number } }).ring;
    expect(ring.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(ring.length).toBe(Math.floor((1024 * 1024) / (VALUE.length + 3)));
  });
});
