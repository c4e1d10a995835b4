import { afterEach, describe, expect, it } from 'vitest';
import { EventType, WatchHub, type WatchBatch, type Watcher } from '../../src/watch/hub';
import { b, ENGINE_KINDS, putReq, TestStore } from '../helpers/stores';

// Watchers catching up from the backend while a compaction deletes old revisions under them: those
// that start at or after the compaction revision get every event, in order, once; those that start
// before it (or are overtaken by it while catching up) are told the compaction revision and end.

interface Ev {
  rev: number;
  key: string;
  type: number;
  value: string;
}

class Recorder {
  events: Ev[] = [];
  compacted: number | undefined;
  send(batch: WatchBatch): boolean {
    if (batch.compactRevision !== undefined) this.compacted = batch.compactRevision;
    for (const e of batch.events) {
      this.events.push({ rev: e.kv.modRevision, key: e.kv.key.toString(), type: e.type, value: e.type === EventType.PUT ? e.kv.value.toString() : '' });
    }
    return true;
  }
}

const prng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

describe.each(ENGINE_KINDS)('watchers catching up during a compaction (%s)', (kind) => {
  let t: TestStore;
  let hub: WatchHub;
  afterEach(async () => {
    hub?.close();
    await t?.store.close();
    await t?.close();
  });

  it('every event from their start revision, or the compacted response', async () => {
    t = await new TestStore(kind, { compaction: { batchLimit: 25, sleepMs: 1 } }).open();
    // A small ring and small responses: catching up reads the backend, 40 revisions a round.
    hub = new WatchHub(t.store, { ringEvents: 20, maxRevsPerResponse: 40, syncIntervalMs: 2 });
    const all: Ev[] = [];
    const rnd = prng(3);
    const live = new Set<string>();
    const write = (i: number) => {
      const key = `w${Math.floor(rnd() * 60)}`;
      if (live.has(key) && rnd() < 0.2) {
        const rev = t.kv.deleteRange({ key: b(key), rangeEnd: Buffer.alloc(0), prevKv: false }).revision;
        live.delete(key);
        all.push({ rev, key, type: EventType.DELETE, value: '' });
      } else {
        const rev = t.kv.put(putReq(key, `v${i}`)).revision;
        live.add(key);
        all.push({ rev, key, type: EventType.PUT, value: `v${i}` });
      }
    };
    for (let i = 0; i < 2000; i++) write(i);
    // Compact at a put (a delete at the compaction revision itself is compacted away).
    const at = all.filter((e) => e.type === EventType.PUT && e.rev > 1000)[0].rev;

    const watch = (id: number, start: number) => {
      const r = new Recorder();
      const w = hub.watch(BigInt(id), '', '', start, {}, r);
      return { r, w, start };
    };
    // One that starts before the compaction and is still catching up when it comes.
    const early = watch(1, 2);
    await until(() => early.r.events.length > 0, 5000);
    expect(early.r.events.length).toBeGreaterThan(0);

    const compaction = t.store.compact(at);
    let done = false;
    void compaction.then(() => (done = true));
    const ws = [watch(2, at), watch(3, at + 1), watch(4, at + 500), watch(5, 1900)];
    const below = [watch(6, at - 1), watch(7, 1)];
    // Writes go on while the compaction runs and the watchers catch up.
    for (let i = 0; !done && i < 10_000; i++) {
      await new Promise<void>((r) => setImmediate(r));
      if (i % 3 === 0) write(5000 + i);
    }
    await compaction;
    for (let i = 0; i < 20; i++) write(9000 + i);
    const synced = (w: Watcher) => hub.isSynced(w);
    expect(await until(() => ws.every((x) => synced(x.w)), 20_000)).toBe(true);

    for (const x of ws) {
      expect(x.r.compacted).toBeUndefined();
      expect(x.r.events, `watcher from ${x.start}`).toEqual(all.filter((e) => e.rev >= x.start));
    }
    for (const x of below) {
      expect(x.r.compacted).toBe(at);
      expect(x.r.events).toEqual([]);
    }
    // The early one got a true prefix of the history, then the compaction revision.
    expect(early.r.compacted).toBe(at);
    expect(early.r.events).toEqual(all.slice(0, early.r.events.length));
    expect(early.r.events[early.r.events.length - 1].rev).toBeLessThan(at);
  });
});
