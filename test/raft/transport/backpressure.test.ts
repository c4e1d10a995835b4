import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../../src/raft/core/types';
import { MessageType } from '../../../src/raft/core/types';
import { rawServer, sleep, startNode, waitFor, type TestNode } from './harness';

v8.setFlagsFromString('--expose-gc');
const gcNow = vm.runInNewContext('gc') as () => void;
/** Collects twice, with a pause: array buffers' memory is released after the collection that frees them. */
async function gc(): Promise<void> {
  gcNow();
  await sleep(30);
  gcNow();
  await sleep(30);
}

const open: TestNode[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.close()));
});

function bigApp(to: bigint, i: number): Message {
  // Each entry has its own buffer, as raft's would: queued messages really hold this memory.
  return { type: MessageType.MsgApp, to, from: 1n, term: 1, logTerm: 1, index: i, entries: [{ index: i + 1, term: 1, type: 0, data: Buffer.alloc(10_000, i & 0xff) }], commit: 0, reject: false, rejectHint: 0 };
}

describe('a peer that stops reading', () => {
  it('queues up to the limits, then drops and reports; the sender memory stays bounded', async () => {
    // Completes the handshake, then never reads again.
    const stuck = await rawServer((s) => {
      s.once('data', () => {
        s.write(Buffer.from([0, 0, 0]));
        s.pause();
      });
    });
    const queueBytes = 2 * 1024 * 1024;
    const a = await startNode(1n, { limits: { queueBytes, queueMessages: 1000, writeHighWaterBytes: 256 * 1024 }, idleTimeoutMs: 60_000 });
    open.push(a);
    a.t.addPeer(2n, [stuck.url]);
    await waitFor(() => a.t.isConnected(2n));
    await gc();
    const base = process.memoryUsage();
    let maxQueued = 0;
    const TURNS = 100;
    for (let turn = 0; turn < TURNS; turn++) {
      const msgs: Message[] = [];
      for (let i = 0; i < 50; i++) msgs.push(bigApp(2n, turn * 50 + i));
      a.t.send(msgs); // 500 KB a turn, 50 MB in all
      const s = a.t.stats().get(2n)!;
      maxQueued = Math.max(maxQueued, s.queuedBytes);
      expect(s.queuedMessages).toBeLessThanOrEqual(1000);
      await sleep(1);
    }
    const s = a.t.stats().get(2n)!;
    expect(maxQueued).toBeLessThanOrEqual(queueBytes);
    expect(maxQueued).toBeGreaterThan(queueBytes / 2); // it did fill up
    expect(s.connected).toBe(true);
    expect(s.droppedMessages).toBeGreaterThan(TURNS * 50 * 0.5);
    expect(a.unreachable.length).toBeGreaterThan(0);
    expect(a.unreachable.every((id) => id === 2n)).toBe(true);
    // What was accepted: the kernel's socket buffers (not ours) plus our queue and socket buffer.
    expect(s.sentBytes).toBeLessThan(20 * 1024 * 1024);
    await gc();
    const now = process.memoryUsage();
    const grown = now.heapUsed + now.arrayBuffers - (base.heapUsed + base.arrayBuffers);
    // Measured ≈ 4 MB: the 2 MiB queue, ≈ 0.5 MB in the socket (high-water 256 KiB + one write), the
    // test's last batch. Unbounded it would be ≈ 40 MB (50 MB sent, ≈ 4 MB taken by the kernel).
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    await stuck.close();
    await waitFor(() => !a.t.isConnected(2n), 2000);
    expect(a.t.stats().get(2n)!.queuedBytes).toBe(0);
  });
});
