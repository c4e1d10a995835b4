import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameType } from '../../../src/raft/transport/framing';
import { ConnectionKind, encodeReply, HandshakeRefused, HandshakeStatus } from '../../../src/raft/transport/handshake';
import { MAX_MEMBERS_BYTES, queryMembers } from '../../../src/raft/transport/peer-transport';
import { hasLog, hello, msgSnap, parseReply, rawExchange, rawServer, sleep, startNode, waitFor, type TestNode } from './harness';

const open: TestNode[] = [];
const cleanup: (() => Promise<void>)[] = [];
async function node(id: bigint, o: Parameters<typeof startNode>[1] = {}): Promise<TestNode> {
  const n = await startNode(id, o);
  open.push(n);
  return n;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.close()));
  for (const c of cleanup.splice(0)) await c();
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

const MEMBERS_JSON = Buffer.from(JSON.stringify({ clusterId: 'c1a57e1200000001', members: [{ id: '1', name: 'a', peerURLs: ['http://127.0.0.1:2380'] }] }));

describe('members query (kind 4)', () => {
  it('returns the bytes membersInfo gives, once per query, from a string or a URL; a list of exactly 1 MiB too', async () => {
    let calls = 0;
    let answer = MEMBERS_JSON;
    const b = await node(0x20n, {
      membersInfo: () => {
        calls++;
        return answer;
      },
    });
    expect(await queryMembers(b.url, { timeoutMs: 1000 })).toEqual(MEMBERS_JSON);
    expect(await queryMembers(new URL(b.url), { timeoutMs: 1000 })).toEqual(MEMBERS_JSON);
    expect(calls).toBe(2);
    answer = randomBytes(MAX_MEMBERS_BYTES);
    expect((await queryMembers(b.url, { timeoutMs: 2000 })).equals(answer)).toBe(true);
    answer = Buffer.alloc(0);
    expect((await queryMembers(b.url, { timeoutMs: 1000 })).length).toBe(0);
    expect(b.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('is not judged: any cluster and member ids get ok, one MEMBERS frame, and the end of the connection', async () => {
    const b = await node(0x20n, { membersInfo: () => MEMBERS_JSON });
    const expected = Buffer.concat([encodeReply(HandshakeStatus.OK), encodeFrame(FrameType.MEMBERS, MEMBERS_JSON)]);
    for (const h of [hello(ConnectionKind.MEMBERS, 0n, 0n, 0n), hello(ConnectionKind.MEMBERS, 0x5n, 0x6n, 0xdeadbeefn)]) {
      const { reply, closed } = await rawExchange(b.url, h, { keepOpenMs: 1500 });
      expect(closed).toBe(true);
      expect(reply).toEqual(expected);
    }
    expect(FrameType.MEMBERS).toBe(6);
    expect(ConnectionKind.MEMBERS).toBe(4);
  });

  it('a member without membersInfo refuses it with bad protocol and a reason; the rejection names the URL', async () => {
    const b = await node(0x20n);
    const err = await rejection(queryMembers(b.url, { timeoutMs: 1000 }));
    expect(err).toBeInstanceOf(HandshakeRefused);
    expect((err as HandshakeRefused).status).toBe(HandshakeStatus.BAD_PROTOCOL);
    expect((err as HandshakeRefused).reason).toBe('this member does not answer members queries');
    expect(err.message).toBe(`${b.url} refused the connection (status 1): this member does not answer members queries`);
    expect(hasLog(b, 'warn', /refused a peer connection from 127\.0\.0\.1:\d+: this member does not answer members queries$/)).toBe(true);
    const raw = await rawExchange(b.url, hello(ConnectionKind.MEMBERS, 0n, 0n, 0n));
    expect(raw.closed).toBe(true);
    expect(parseReply(raw.reply)).toEqual({ status: HandshakeStatus.BAD_PROTOCOL, reason: 'this member does not answer members queries' });
  });

  it('rejects an answer above maxBytes; the acceptor sends none above 1 MiB, nor when membersInfo throws', async () => {
    let answer: () => Buffer = () => Buffer.alloc(2000, 0x61);
    const b = await node(0x20n, { membersInfo: () => answer() });
    const err = await rejection(queryMembers(b.url, { timeoutMs: 1000, maxBytes: 1000 }));
    expect(err.message).toBe(`cannot get the members from ${b.url}: the members list is 2000 bytes, more than the limit of 1000`);
    expect((await queryMembers(b.url, { timeoutMs: 1000, maxBytes: 2000 })).length).toBe(2000);

    answer = () => Buffer.alloc(MAX_MEMBERS_BYTES + 1);
    const big = await rejection(queryMembers(b.url, { timeoutMs: 1000, maxBytes: 4 * MAX_MEMBERS_BYTES }));
    expect(big).not.toBeInstanceOf(HandshakeRefused);
    expect(big.message).toContain(`cannot get the members from ${b.url}: `);
    expect(hasLog(b, 'error', /cannot answer a members query from 127\.0\.0\.1:\d+: the members list is 1048577 bytes, more than the limit of 1048576; closed without an answer$/)).toBe(true);

    answer = () => {
      throw new Error('no members yet');
    };
    const thrown = await rejection(queryMembers(b.url, { timeoutMs: 1000 }));
    expect(thrown.message).toContain(b.url);
    expect(hasLog(b, 'error', 'the membersInfo callback failed: Error: no members yet')).toBe(true);
    // Still serving.
    answer = () => MEMBERS_JSON;
    expect(await queryMembers(b.url, { timeoutMs: 1000 })).toEqual(MEMBERS_JSON);
  });

  it('rejects after timeoutMs when nothing (or no frame) comes, and destroys its socket', async () => {
    const closedAt: number[] = [];
    const silent = await rawServer((s) => {
      s.on('close', () => closedAt.push(Date.now()));
      s.resume(); // reads the hello, and so sees the dialer's close
    });
    cleanup.push(() => silent.close());
    let t0 = Date.now();
    const err = await rejection(queryMembers(silent.url, { timeoutMs: 200 }));
    const took = Date.now() - t0;
    expect(err.message).toBe(`cannot get the members from ${silent.url}/: no answer within 200 ms`);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1000);
    await waitFor(() => closedAt.length === 1, 1000, 'the server saw the close');

    // An ok and then nothing.
    const okOnly = await rawServer((s) => s.once('data', () => s.write(encodeReply(HandshakeStatus.OK))));
    cleanup.push(() => okOnly.close());
    t0 = Date.now();
    const err2 = await rejection(queryMembers(okOnly.url, { timeoutMs: 200 }));
    expect(err2.message).toBe(`cannot get the members from ${okOnly.url}/: no answer within 200 ms`);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('rejects any other frame, a connection that closes early, a port nobody listens on, and a bad URL', async () => {
    const other = await rawServer((s) => s.once('data', () => s.end(Buffer.concat([encodeReply(HandshakeStatus.OK), encodeFrame(FrameType.PING, Buffer.alloc(8))]))));
    cleanup.push(() => other.close());
    expect((await rejection(queryMembers(other.url, { timeoutMs: 1000 }))).message).toBe(`cannot get the members from ${other.url}/: unexpected frame type 4 (expected MEMBERS, 6)`);

    const short = await rawServer((s) => {
      s.once('data', () => {
        const f = encodeFrame(FrameType.MEMBERS, MEMBERS_JSON);
        s.end(Buffer.concat([encodeReply(HandshakeStatus.OK), f.subarray(0, 10)]));
      });
    });
    cleanup.push(() => short.close());
    expect((await rejection(queryMembers(short.url, { timeoutMs: 1000 }))).message).toBe(`cannot get the members from ${short.url}/: the connection closed after 10 bytes of the members frame`);

    const none = await rawServer(() => {});
    const url = none.url;
    await none.close();
    expect((await rejection(queryMembers(url, { timeoutMs: 1000 }))).message).toMatch(new RegExp(`^cannot get the members from ${url.replace(/\./g, '\\.')}/: .*ECONNREFUSED`));

    expect((await rejection(queryMembers('unixs://127.0.0.1:1', { timeoutMs: 1000 }))).message).toContain('invalid peer URL unixs://127.0.0.1:1');
    expect(await rejection(queryMembers(url, { timeoutMs: 0 }))).toBeInstanceOf(RangeError);
  });
});


describe('removed member', () => {
  const refusals = (n: TestNode): number => n.logs.filter((l) => /refused the connection: member removed$/.test(l.msg)).length;

  it('the dialer of the stream (smaller id) gets onRemoved once, however many peers refuse it how often', async () => {
    const a = await node(1n);
    const b = await node(2n);
    const c = await node(3n);
    b.removed.add(1n);
    c.removed.add(1n);
    a.t.addPeer(2n, [b.url]);
    a.t.addPeer(3n, [c.url]);
    await waitFor(() => a.removedBy.length > 0, 2000, 'onRemoved');
    expect([2n, 3n]).toContain(a.removedBy[0]);
    await waitFor(() => refusals(a) >= 4, 3000, 'repeated refusals');
    await sleep(50);
    expect(a.removedBy.length).toBe(1);
    // Logged as before: the first refusal at error, repeats at debug.
    expect(hasLog(a, 'error', /peer 2 at 127\.0\.0\.1:\d+ refused the connection: member removed$/)).toBe(true);
    expect(a.t.isConnected(2n) || a.t.isConnected(3n)).toBe(false);
  });

  it('the prober (larger id) gets onRemoved once', async () => {
    const a = await node(1n);
    const b = await node(2n, { backoffMinMs: 20, backoffMaxMs: 50 });
    a.removed.add(2n);
    b.t.addPeer(1n, [a.url]);
    await waitFor(() => b.removedBy.length > 0, 2000, 'onRemoved');
    expect(b.removedBy).toEqual([1n]);
    await waitFor(() => refusals(b) >= 3, 3000, 'repeated probe refusals');
    expect(b.removedBy).toEqual([1n]);
    expect(hasLog(b, 'error', /peer 1 at 127\.0\.0\.1:\d+ refused the connection: member removed$/)).toBe(true);
  });

  it('a refused snapshot reports it too (not inside sendSnapshot), along with the failed snapshot status', async () => {
    const a = await node(1n);
    // Probes would come only after 20-40 s: the snapshot is the first connection b makes.
    const b = await node(2n, { backoffMinMs: 10_000, backoffMaxMs: 20_000 });
    a.removed.add(2n);
    b.t.addPeer(1n, [a.url]);
    const file = join(b.dir, 'src.snap');
    await fs.writeFile(file, randomBytes(1000));
    b.t.sendSnapshot(msgSnap(2n, 1n), file);
    expect(b.removedBy).toEqual([]);
    await waitFor(() => b.snapshotStatus.length === 1, 2000, 'snapshot status');
    expect(b.snapshotStatus).toEqual([{ id: 1n, ok: false }]);
    await waitFor(() => b.removedBy.length === 1, 1000, 'onRemoved');
    expect(b.removedBy).toEqual([1n]);
  });

  it('other refusals do not report it', async () => {
    const a = await node(1n, { clusterId: 0xaaaan });
    const b = await node(2n);
    a.t.addPeer(2n, [b.url]);
    await waitFor(() => hasLog(a, 'error', 'cluster ID mismatch'), 2000, 'mismatch');
    const c = await node(3n);
    c.t.addPeer(2n, [b.url]); // c probes b, which does not know 3
    await waitFor(() => hasLog(c, 'error', 'unknown member 3'), 2000, 'unknown member');
    await sleep(100);
    expect(a.removedBy).toEqual([]);
    expect(c.removedBy).toEqual([]);
  });
});
