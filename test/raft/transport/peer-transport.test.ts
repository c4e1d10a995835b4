import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, type Message } from '../../../src/raft/core/types';
import { CodecError } from '../../../src/raft/transport/errors';
import { PeerTransport } from '../../../src/raft/transport/peer-transport';
import { ConnectionKind } from '../../../src/raft/transport/handshake';
import { msgApp, msgAppResp } from './random-messages';
import { hasLog, mesh, rawServer, sleep, startNode, waitFor, type TestNode } from './harness';

const open: TestNode[] = [];
async function node(id: bigint, o: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
  const n = await startNode(id, o);
  open.push(n);
  return n;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.close()));
});

function heartbeat(from: bigint, to: bigint, seq: number): Message {
  return { type: MessageType.MsgHeartbeat, to, from, term: 1, logTerm: 0, index: 0, entries: [], commit: seq, reject: false, rejectHint: 0 };
}

describe('peer transport: messages', () => {
  it('three members exchange messages in order, both directions of each connection', async () => {
    const ns = [await node(1n), await node(2n), await node(3n)];
    await mesh(ns);
    const N = 300;
    for (let turn = 0; turn < 30; turn++) {
      for (const a of ns) {
        const out: Message[] = [];
        for (const b of ns) if (a !== b) for (let i = 0; i < N / 30; i++) out.push(msgApp(a.id, b.id, turn * (N / 30) + i, 2, 50));
        a.t.send(out);
      }
      await sleep(turn % 5 === 0 ? 1 : 0);
    }
    await waitFor(() => ns.every((n) => n.received.length === 2 * N), 5000, 'all delivered');
    for (const n of ns) {
      for (const other of ns) {
        if (other === n) continue;
        const seq = n.received.filter((r) => r.from === other.id).map((r) => r.m.index);
        expect(seq).toEqual(Array.from({ length: N }, (_, i) => i));
        const one = n.received.find((r) => r.from === other.id)!.m;
        expect(one).toEqual(msgApp(other.id, n.id, 0, 2, 50));
      }
      expect(n.unreachable).toEqual([]);
    }
  });

  it('writes everything sent to a peer within one turn in one socket write', async () => {
    const [a, b, c] = [await node(1n), await node(2n), await node(3n)];
    await mesh([a, b, c]);
    await sleep(20); // let handshake-time traffic settle
    const before = a.t.stats();
    const batchesB = b.batches;
    for (let i = 0; i < 1000; i++) a.t.send([msgApp(1n, 2n, i), msgAppResp(1n, 3n, i)]);
    await waitFor(() => b.received.length === 1000 && c.received.length === 1000, 3000, 'delivery');
    const after = a.t.stats();
    expect(after.get(2n)!.writes - before.get(2n)!.writes).toBe(1);
    expect(after.get(3n)!.writes - before.get(3n)!.writes).toBe(1);
    expect(b.batches - batchesB).toBe(1);
    // The next turn is a new write (no timer holds messages back).
    a.t.send([msgApp(1n, 2n, 1000)]);
    await waitFor(() => b.received.length === 1001);
    expect(a.t.stats().get(2n)!.writes - after.get(2n)!.writes).toBe(1);
  });

  it('splits a turn larger than one frame into several frames (still delivered in order)', async () => {
    const [a, b] = [await node(1n, { limits: { maxFrameBytes: 64 * 1024, writeHighWaterBytes: 8 * 1024 * 1024 } }), await node(2n, { limits: { maxFrameBytes: 64 * 1024 } })];
    await mesh([a, b]);
    const msgs = Array.from({ length: 400 }, (_, i) => msgApp(1n, 2n, i, 1, 1000)); // ~400 KB
    a.t.send(msgs);
    await waitFor(() => b.received.length === 400);
    expect(b.received.map((r) => r.m.index)).toEqual(msgs.map((m) => m.index));
    expect(b.batches).toBeGreaterThanOrEqual(7);
  });

  it('redials with backoff after the accepting member restarts on the same port', async () => {
    const a = await node(1n);
    let b = await startNode(2n);
    const port = Number(new URL(b.url).port);
    await mesh([a, b]);
    const since = a.t.connectedSince(2n)!;
    expect(since).toBeGreaterThan(0);
    await b.close();
    await waitFor(() => !a.t.isConnected(2n), 2000, 'disconnect seen');
    a.t.send([heartbeat(1n, 2n, 1)]);
    await waitFor(() => a.unreachable.includes(2n), 1000, 'unreachable reported');
    await sleep(300); // a few failed dials
    expect(a.t.stats().get(2n)!.sentFailures).toBeGreaterThan(0);
    b = await startNode(2n, { port });
    open.push(b);
    b.t.addPeer(1n, [a.url]);
    await waitFor(() => a.t.isConnected(2n) && b.t.isConnected(1n), 3000, 'reconnect');
    expect(a.t.stats().get(2n)!.reconnects).toBe(1);
    expect(a.t.connectedSince(2n)!).toBeGreaterThan(since);
    a.t.send([heartbeat(1n, 2n, 7)]);
    b.t.send([heartbeat(2n, 1n, 8)]);
    await waitFor(() => b.received.length === 1 && a.received.length === 1);
    expect(b.received[0].m.commit).toBe(7);
    expect(a.received[0].m.commit).toBe(8);
  });

  it('the member with the larger id never dials a stream (only probes); it drops and reports until dialed', async () => {
    const kinds: number[] = [];
    const srv = await rawServer((s) => s.once('data', (d) => kinds.push(d[5])));
    const high = await node(9n);
    high.t.addPeer(4n, [srv.url]);
    await sleep(400);
    expect(kinds.every((k) => k === ConnectionKind.PROBE)).toBe(true);
    high.t.send([heartbeat(9n, 4n, 1)]);
    await waitFor(() => high.unreachable.length === 1);
    expect(high.unreachable).toEqual([4n]);
    expect(high.t.stats().get(4n)).toMatchObject({ connected: false, droppedMessages: 1 });
    // The smaller id does dial the same kind of address.
    const low = await node(3n);
    low.t.addPeer(4n, [srv.url]);
    await waitFor(() => srv.connections > 0, 1000, 'dial');
    await srv.close();
  });

  it('keeps an idle connection alive with pings, and closes and redials one that goes silent', async () => {
    // Pings every 125 ms; a loaded machine may stall the event loop for a while without a false close.
    const [a, b] = [await node(1n, { idleTimeoutMs: 500 }), await node(2n, { idleTimeoutMs: 500 })];
    await mesh([a, b]);
    await sleep(1500);
    expect(a.t.stats().get(2n)).toMatchObject({ connected: true, reconnects: 0 });
    // A PONG has come back (waited for: on a loaded machine the first round may take longer than 1.5 s).
    await waitFor(() => a.t.stats().get(2n)?.rttMs !== undefined, 10_000, 'a PONG');
    expect(a.t.stats().get(2n)!.rttMs).toBeGreaterThanOrEqual(0);

    // A peer that completes the handshake and then never says anything again.
    const silent = await rawServer((s) => {
      s.once('data', () => s.write(Buffer.from([0, 0, 0])));
    });
    const c = await node(1n, { idleTimeoutMs: 300 });
    c.t.addPeer(5n, [silent.url]);
    await waitFor(() => c.t.isConnected(5n), 1000, 'connected to the silent peer');
    await waitFor(() => hasLog(c, 'warn', /closed stream link to peer 5: nothing received for \d+ ms \(idle timeout 300 ms\)/), 2000, 'idle close');
    await waitFor(() => silent.connections >= 2, 2000, 'redial');
    await silent.close();
  });

  it('drops what it cannot send and says so: unknown peer, MsgSnap, self; malformed messages throw before anything is queued', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    a.t.send([heartbeat(1n, 77n, 1), heartbeat(1n, 77n, 2)]);
    const snap: Message = { ...heartbeat(1n, 2n, 0), type: MessageType.MsgSnap, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1n, 2n], learners: [] } } } };
    a.t.send([snap]);
    a.t.send([heartbeat(1n, 1n, 3)]);
    await sleep(20);
    expect(a.unreachable).toEqual([77n]); // once per peer per turn
    expect(a.snapshotStatus).toEqual([{ id: 2n, ok: false }]);
    expect(hasLog(a, 'error', 'MsgSnap to 2 given to send()')).toBe(true);
    expect(hasLog(a, 'warn', 'dropped a message to this member itself')).toBe(true);
    expect(() => a.t.send([heartbeat(1n, 2n, 1), { ...heartbeat(1n, 2n, 2), term: -1 }])).toThrow(CodecError);
    a.t.send([heartbeat(1n, 2n, 3)]);
    await waitFor(() => b.received.length === 1);
    await sleep(20);
    expect(b.received.map((r) => r.m.commit)).toEqual([3]);
  });

  it('refuses a busy port with a clear Error, and a URL that is neither http nor https', async () => {
    const a = await node(1n);
    const port = new URL(a.url).port;
    const attempt = PeerTransport.listen({
      selfId: 2n,
      clusterId: 1n,
      listenUrls: [new URL(`http://127.0.0.1:${port}`)],
      snapshotDir: a.dir,
      onMessages() {},
      onSnapshot() {},
      onRequest: async () => Buffer.alloc(0),
      onUnreachable() {},
      onSnapshotStatus() {},
      log() {},
    });
    await expect(attempt).rejects.toThrow(`cannot listen for peers on http://127.0.0.1:${port}/: address already in use`);
    expect(() => a.t.addPeer(2n, ['unix://127.0.0.1:1'])).toThrow('only http:// and https:// are supported');
    expect(() => a.t.addPeer(1n, ['http://127.0.0.1:1'])).toThrow('as its own peer');
  });

  it('removePeer closes the connection and refuses the removed member', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    b.removed.add(1n);
    b.t.removePeer(1n);
    await waitFor(() => !a.t.isConnected(2n));
    await waitFor(() => hasLog(a, 'error', 'peer 2 at 127.0.0.1:') && hasLog(a, 'error', 'refused the connection: member removed'), 2000, 'refusal logged');
    expect(hasLog(b, 'warn', /refused a peer connection from 127\.0\.0\.1:\d+: member removed/)).toBe(true);
    expect(b.t.stats().has(1n)).toBe(false);
  });

  it('close() leaves no sockets, servers or timers behind', async () => {
    await sleep(50); // handles of earlier tests' closed servers go away asynchronously
    const before = countHandles();
    expect(before.tcp).toBe(0);
    const ns = [await startNode(1n), await startNode(2n), await startNode(3n)];
    await mesh(ns);
    ns[0].t.send([heartbeat(1n, 2n, 1)]);
    const pending = ns[0].t.request(2n, 'never', Buffer.alloc(0), 10_000);
    ns[1].onRequest = () => new Promise(() => {});
    await sleep(20);
    await Promise.all(ns.map((n) => n.close()));
    await expect(pending).rejects.toMatchObject({ name: 'TransportError', code: 'CLOSED' });
    const settled = (): boolean => countHandles().tcp === 0 && countHandles().timers <= before.timers;
    await waitFor(settled, 1000, 'handles back to their count before').catch(() => {
      expect(countHandles()).toEqual(before);
    });
    // Closed transports are inert.
    ns[0].t.send([heartbeat(1n, 2n, 1)]);
    await expect(ns[0].t.request(2n, 'x', Buffer.alloc(0), 100)).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

/** Sockets and servers (none of this test file's own), and timers (vitest has one of its own). */
function countHandles(): { tcp: number; timers: number } {
  const r = process.getActiveResourcesInfo();
  return { tcp: r.filter((x) => x.startsWith('TCP')).length, timers: r.filter((x) => x === 'Timeout').length };
}
