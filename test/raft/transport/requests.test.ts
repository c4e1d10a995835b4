import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RemoteError, TransportError } from '../../../src/raft/transport/errors';
import { encodeFrame, FrameType } from '../../../src/raft/transport/framing';
import { ConnectionKind } from '../../../src/raft/transport/handshake';
import { hello, mesh, sleep, startNode, waitFor, type TestNode } from './harness';

const open: TestNode[] = [];
async function node(id: bigint, o: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
  const n = await startNode(id, o);
  open.push(n);
  return n;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.close()));
});

describe('requests', () => {
  it('answers in both directions, many in flight at once', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    b.onRequest = async (from, kind, body) => {
      await sleep(Number(body.toString()) % 7);
      return Buffer.from(`${from}/${kind}/${body}`);
    };
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => a.t.request(2n, 'lease-keepalive', Buffer.from(String(i)), 2000)));
    expect(answers.map(String)).toEqual(Array.from({ length: 200 }, (_, i) => `1/lease-keepalive/${i}`));
    // The acceptor asks the dialer on the same connection.
    expect(String(await b.t.request(1n, 'ttl', Buffer.from('x'), 1000))).toBe('ttl:x');
    expect(String(await a.t.request(2n, '', Buffer.alloc(0), 1000))).toBe('1//');
  });

  it("hands back the handler's error as RemoteError, and a sync throw too", async () => {
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    b.onRequest = async (_f, kind) => {
      if (kind === 'sync') throw new Error('sync boom');
      throw new Error('lease not found');
    };
    const err = await a.t.request(2n, 'k', Buffer.alloc(0), 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toBe('lease not found');
    b.onRequest = (() => {
      throw new Error('sync boom');
    }) as never;
    await expect(a.t.request(2n, 'sync', Buffer.alloc(0), 1000)).rejects.toThrow(new RemoteError('sync boom'));
  });

  it('rejects with TransportError: not connected, timeout, too many in flight, too large, connection lost', async () => {
    const a = await node(1n, { limits: { maxInflightRequests: 3, maxFrameBytes: 64 * 1024 } });
    await expect(a.t.request(9n, 'x', Buffer.alloc(0), 100)).rejects.toMatchObject({ name: 'TransportError', code: 'NOT_CONNECTED' });
    const b = await node(2n);
    await mesh([a, b]);
    const never = new Promise<Buffer>(() => {});
    b.onRequest = () => never;
    const t0 = Date.now();
    const p1 = a.t.request(2n, 'slow', Buffer.alloc(0), 150);
    const p2 = a.t.request(2n, 'slow', Buffer.alloc(0), 5000);
    const p3 = a.t.request(2n, 'slow', Buffer.alloc(0), 5000);
    await expect(a.t.request(2n, 'slow', Buffer.alloc(0), 5000)).rejects.toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    await expect(p1).rejects.toMatchObject({ code: 'TIMEOUT', message: 'request "slow" to peer 2 timed out after 150 ms' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    await expect(a.t.request(2n, 'big', Buffer.alloc(64 * 1024), 100)).rejects.toMatchObject({ code: 'TOO_LARGE' });
    // A slot came free with the timeout.
    const p4 = a.t.request(2n, 'slow', Buffer.alloc(0), 5000);
    await b.close();
    for (const p of [p2, p3, p4]) await expect(p).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(new TransportError('TIMEOUT', 'x')).toBeInstanceOf(Error);
  });

  it('fails the requests of a removed peer with PEER_REMOVED', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    b.onRequest = () => new Promise(() => {});
    const p = a.t.request(2n, 'x', Buffer.alloc(0), 5000);
    await sleep(10);
    a.t.removePeer(2n);
    await expect(p).rejects.toMatchObject({ code: 'PEER_REMOVED' });
  });

  it('stops reading a connection while its handlers are at the in-flight limit, and resumes', async () => {
    const b = await node(2n, { limits: { maxInflightRequests: 4 } });
    b.t.addPeer(1n, ['http://127.0.0.1:1']);
    const release: (() => void)[] = [];
    let calls = 0;
    b.onRequest = () => {
      calls++;
      return new Promise((r) => release.push(() => r(Buffer.from('ok'))));
    };
    const u = new URL(b.url);
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    s.on('error', () => {});
    const answers: Buffer[] = [];
    s.on('data', (d) => answers.push(d));
    await new Promise((r) => s.on('connect', r));
    s.write(hello(ConnectionKind.STREAM, 1n, 2n));
    await waitFor(() => Buffer.concat(answers).length >= 3);
    // All ten in one write: the transport stops after the fourth even within one read.
    const frames = Array.from({ length: 10 }, (_, i) => encodeFrame(FrameType.REQUEST, Buffer.concat([Buffer.from([0, 0, 0, i + 1, 0, 1]), Buffer.from('k')])));
    s.write(Buffer.concat(frames));
    await sleep(100);
    expect(calls).toBe(4);
    release.splice(0).forEach((f) => f());
    await waitFor(() => calls === 8, 1000, 'reading resumed');
    release.splice(0).forEach((f) => f());
    await waitFor(() => calls === 10, 1000, 'the rest');
    release.splice(0).forEach((f) => f());
    s.destroy();
  });
});
