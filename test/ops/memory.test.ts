import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { OpsTracker } from '../../src/ops/tracker';
import type { LiveKeySource } from '../../src/ops/tracker';
import { mulberry32 } from './helpers';

// The tracker's memory does not grow with the number of keys or requests. A million keys go through the
// data path (keyPut: namespace counters) and OPS_MEM_REQUESTS requests (default 500k, a few seconds; the issue's
// figure is 10M: OPS_MEM_REQUESTS=10000000) through the request path, over a million distinct keys, 1000
// namespaces, 20 resources and 5000 client addresses. Then a report walks the million keys. Measured: the
// V8 heap plus array buffers the tracker holds after a full GC, beside the baseline taken before it existed.
//
// Stated bound, default options (hotCapacity 4096, maxResources 256, maxClients 4096): under 8 MB whatever
// the key count and traffic. The per-key state the caller keeps in its key index (size and access epoch, two
// small integers) is not the tracker's: bench/ops-tracker.ts measures it (16 bytes per key on Node 20).

const KEYS = Number(process.env.OPS_MEM_KEYS ?? 1_000_000);
const REQUESTS = Number(process.env.OPS_MEM_REQUESTS ?? 500_000);
const BOUND = 8 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function held(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

const RES = Array.from({ length: 20 }, (_, i) => (i === 19 ? 'cilium.io/ciliumendpoints' : `resource${i}`));
const pad = (i: number, w: number) => String(i).padStart(w, '0');
/** Key i; keys in index order are in key order (fixed-width fields, resources sorted by their index). */
const keyAt = (i: number) => `/registry/${RES[i % 20]}/ns-${pad((i >> 5) % 1000, 4)}/object-${pad(i, 8)}`;

describe('OpsTracker memory', () => {
  it(`stays under ${BOUND / 1048576} MB with ${KEYS} keys and ${REQUESTS} requests`, () => {
    const rnd = mulberry32(5);
    const before = held();
    const tracker = new OpsTracker();
    const t0 = Date.now();
    for (let i = 0; i < KEYS; i++) tracker.keyPut(keyAt(i), 200 + (i % 100), -1);
    const tKeys = Date.now() - t0;
    const handles: number[] = [];
    for (let a = 0; a < 5000; a++) handles.push(tracker.clientConnected(`10.${a >> 8}.${a & 255}.1`));
    const afterKeys = held();

    const t1 = Date.now();
    let half = afterKeys;
    for (let r = 0; r < REQUESTS; r++) {
      // Skewed and wide: half the requests on 1% of the keys, the rest on any key.
      const i = rnd() < 0.5 ? Math.floor(rnd() * (KEYS / 100)) * 97 : Math.floor(rnd() * KEYS);
      const c = handles[r % handles.length];
      const u = r % 20;
      if (u < 12) tracker.onRange(keyAt(i), false, false, c);
      else if (u < 13) tracker.onRange(`/registry/${RES[i % 20]}/`, true, u === 12 && (r & 1) === 0, c);
      else if (u < 19) {
        const k = keyAt(i);
        tracker.onPut(k, c);
        tracker.keyPut(k, 250, 200 + (i % 100));
        tracker.keyPut(k, 200 + (i % 100), 250);
      } else tracker.onWatchCreate(keyAt(i), false, c);
      if (r === REQUESTS >> 1) half = held();
    }
    const tReq = Date.now() - t1;
    const afterRequests = held();

    // A report walking every live key.
    const order: LiveKeySource = {
      // The live keys in key order (walk: key indexes sorted by key, made once below).
      scan(after, max, fn) {
        let pos = after === undefined ? 0 : walkPos;
        let last: string | undefined;
        for (let n = 0; n < max && pos < walk.length; n++, pos++) {
          last = keyAt(walk[pos]);
          fn(last, last.length + 200 + (walk[pos] % 100), walk[pos] % 7);
        }
        walkPos = pos;
        return last;
      },
    };
    let walkPos = 0;
    // Key order: resources by name, then namespace, then object (fixed-width): bucket the indexes.
    const rank = RES.map((_, r) => r).sort((a, b) => (RES[a] < RES[b] ? -1 : 1));
    const rankOf = new Int32Array(20);
    rank.forEach((r, k) => (rankOf[r] = k));
    const walk = ((): Int32Array => {
      const buckets: number[][] = Array.from({ length: 20 * 1000 }, () => []);
      for (let i = 0; i < KEYS; i++) buckets[rankOf[i % 20] * 1000 + ((i >> 5) % 1000)].push(i);
      return Int32Array.from(buckets.flat());
    })();
    const beforeReport = held();
    const t2 = Date.now();
    const report = tracker.report({ top: 10, coldAfterSeconds: 0 }, order);
    const tReport = Date.now() - t2;
    const afterReport = held();

    const mb = (n: number) => `${(n / 1048576).toFixed(2)} MB`;
    console.log(
      [
        `ops memory: ${KEYS} keys (keyPut ${tKeys} ms), ${REQUESTS} requests (${tReq} ms, ${((tReq * 1e6) / REQUESTS).toFixed(0)} ns each incl. making the key)`,
        `  held by the tracker: after keys ${mb(afterKeys.heap - before.heap)}, after half the requests ${mb(half.heap - before.heap)}, after all ${mb(afterRequests.heap - before.heap)}`,
        `  RSS added (includes the test's garbage): ${mb(afterRequests.rss - before.rss)}`,
        `  report over ${report.scannedKeys} keys: ${tReport} ms; heap after it ${mb(afterReport.heap - beforeReport.heap)} more`,
      ].join('\n'),
    );
    expect(report.scannedKeys).toBe(KEYS);
    expect(report.namespaces.length).toBe(10);
    // 1000 namespaces of KEYS/1000 keys each (keys i with (i >> 5) % 1000 = ns).
    expect(report.namespaces.every((n) => Math.abs(n.keys - KEYS / 1000) <= 32)).toBe(true);
    expect(report.clients.some((c) => c.address === '(other)')).toBe(true);
    expect(afterKeys.heap - before.heap).toBeLessThan(BOUND);
    expect(afterRequests.heap - before.heap).toBeLessThan(BOUND);
    // Bounded, not growing with traffic: the second half of the requests added (almost) nothing.
    expect(afterRequests.heap - half.heap).toBeLessThan(1024 * 1024);
    expect(afterReport.heap - beforeReport.heap).toBeLessThan(1024 * 1024);
    expect(tracker.hotSketch.size).toBe(4096);
  }, 120_000);
});
