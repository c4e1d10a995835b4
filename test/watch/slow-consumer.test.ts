import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageDefinition, RawKv } from '../api/grpc-client';
import { startPlinth, type RunningServer } from '../helpers/servers';

// A watcher that stops reading while 10k events are written: the writers do not slow down (the hub
// sets the watcher aside instead of waiting for it), and once it reads again it gets every event,
// in order, none twice.
const b = (s: string) => Buffer.from(s);
const EVENTS = 10_000;
const WRITERS = 16;

async function putLoad(kv: RawKv, prefix: string, total: number): Promise<number[]> {
  const lat: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await kv.put({ key: b(`${prefix}${i % 500}`), value: b(`v${i}`) });
        lat.push(performance.now() - t0);
      }
    }),
  );
  return lat.sort((x, y) => x - y);
}
const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];

describe('slow watch consumer', () => {
  let server: RunningServer;
  let kv: RawKv;
  beforeAll(async () => {
    server = await startPlinth({ backend: 'lmdb' });
    kv = new RawKv(server.endpoint);
  });
  afterAll(async () => {
    kv?.close();
    await server?.stop();
  });

  it('does not slow writers down, and later receives every event in order', async () => {
    const baseline = await putLoad(kv, 'base/', EVENTS);

    const Watch = grpc.loadPackageDefinition(packageDefinition).etcdserverpb as any;
    const client = new Watch.Watch(server.endpoint, grpc.credentials.createInsecure());
    const stream = client.Watch();
    const received: { rev: number; key: string }[] = [];
    let created = false;
    stream.on('data', (r: any) => {
      if (r.created) created = true;
      for (const e of r.events) received.push({ rev: Number(e.kv.mod_revision), key: e.kv.key.toString() });
    });
    stream.on('error', () => {});
    stream.write({ create_request: { key: b('slow/'), range_end: b('slow0') } });
    for (let i = 0; i < 100 && !created; i++) await new Promise((r) => setTimeout(r, 20));
    expect(created).toBe(true);
    const startRev = await kv.revision();

    // Stop reading: grpc-js stops pulling, HTTP/2 flow control fills up, the server's writes block.
    stream.pause();
    const slow = await putLoad(kv, 'slow/', EVENTS);
    if (process.env.DEBUG_SLOW) console.log('during pause received', received.length, 'baseline p50/p99', pct(baseline, 50), pct(baseline, 99), 'slow p50/p99', pct(slow, 50), pct(slow, 99));
    expect(received.length, 'the paused watcher cannot have read everything').toBeLessThan(EVENTS);
    // Writers are not held back by the watcher: same order of latency as without it (noisy machine:
    // a generous bound, far below what waiting on the watcher would cost).
    expect(pct(slow, 99)).toBeLessThan(Math.max(3 * pct(baseline, 99), pct(baseline, 99) + 50));
    expect(pct(slow, 50)).toBeLessThan(Math.max(3 * pct(baseline, 50), pct(baseline, 50) + 10));

    stream.resume();
    const deadline = Date.now() + 30_000;
    while (received.length < EVENTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(received.length).toBe(EVENTS);
    const revs = received.map((e) => e.rev);
    expect(revs[0]).toBe(startRev + 1);
    for (let i = 1; i < revs.length; i++) if (revs[i] !== revs[i - 1] + 1) expect.fail(`gap or repeat at ${i}: ${revs[i - 1]} then ${revs[i]}`);
    stream.end();
    client.close();
  }, 90_000);
});
