import { spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodePeerHandshake, FaultProxy, parsePeerHandshake, PEER_HANDSHAKE_BYTES, type PeerHandshake } from './fault-proxy';
import { SOCKET_OWNERS_KNOWN, socketOwner } from './socket-owner';
import { ConnectionKind, encodeHello } from '../../src/raft/transport/handshake';

// ---- a target server and a client that record what they see ------------------------------------

interface Target {
  server: Server;
  port: number;
  /** Sockets accepted, with what each received. */
  accepted: { socket: Socket; received: () => Buffer; ended: () => boolean }[];
  close(): Promise<void>;
}

/** A target that records what it receives and, when echo is set, sends it back. */
async function startTarget(echo = true): Promise<Target> {
  const accepted: Target['accepted'] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    let ended = false;
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (echo) socket.write(d);
    });
    socket.on('end', () => {
      ended = true;
      socket.end();
    });
    accepted.push({ socket, received: () => Buffer.concat(chunks), ended: () => ended });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const a of accepted) a.socket.destroy();
        server.close(() => r());
      }),
  };
}

interface Client {
  socket: Socket;
  received: () => Buffer;
  closed: () => boolean;
  /** Resolves with the bytes received once at least n have arrived. */
  waitBytes(n: number, timeoutMs?: number): Promise<Buffer>;
  waitClosed(timeoutMs?: number): Promise<void>;
}

/** Connects; with `refusable`, a connection reset before it completes resolves too (closed). */
function dial(port: number, refusable = false): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let closed = false;
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    const received = () => Buffer.concat(chunks);
    const c: Client = {
      socket,
      received,
      closed: () => closed,
      waitBytes: (n, timeoutMs = 3000) => until(() => received().length >= n, timeoutMs, `${n} bytes`).then(received),
      waitClosed: (timeoutMs = 3000) => until(() => closed, timeoutMs, 'close'),
    };
    socket.once('connect', () => resolve(c));
    socket.once('error', (err) => (refusable ? resolve(c) : reject(err)));
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function setup(opts: { echo?: boolean; proxy?: Partial<Parameters<typeof FaultProxy.start>[0]> } = {}) {
  const target = await startTarget(opts.echo ?? true);
  cleanups.push(() => target.close());
  const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: target.port }, ...opts.proxy });
  cleanups.push(() => proxy.close());
  const clients: Client[] = [];
  cleanups.push(() => clients.forEach((c) => c.socket.destroy()));
  const client = async (refusable = false) => {
    const c = await dial(proxy.port, refusable);
    clients.push(c);
    return c;
  };
  return { target, proxy, client };
}

// ---- tests ------------------------------------------------------------------------------------

describe('FaultProxy', () => {
  it('forwards both ways, large payloads intact, and passes half-closes on', async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    c.socket.write('hello');
    expect((await c.waitBytes(5)).toString()).toBe('hello');
    // 4 MiB through a 1 MiB queue bound: flow control, not loss.
    const big = Buffer.alloc(4 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
    c.socket.write(big);
    const got = await c.waitBytes(5 + big.length, 10_000);
    expect(got.subarray(5).equals(big)).toBe(true);
    c.socket.end();
    await until(() => target.accepted[0].ended(), 3000, 'target to see the end');
    await c.waitClosed();
    const s = proxy.stats();
    expect(s.accepted).toBe(1);
    expect(s.bytesToTarget).toBe(5 + big.length);
    expect(s.bytesToClient).toBe(5 + big.length);
    await until(() => proxy.stats().active === 0, 3000, 'the connection to be gone');
  });

  it('bounds what one direction holds while delayed (reading stops instead)', async () => {
    const { proxy, client } = await setup({ echo: false, proxy: { maxQueuedBytes: 256 << 10 } });
    proxy.delay(300);
    const c = await client();
    c.socket.write(Buffer.alloc(8 << 20));
    let maxQueued = 0;
    for (let i = 0; i < 40; i++) {
      await sleep(10);
      for (const conn of proxy.stats().connections) maxQueued = Math.max(maxQueued, conn.queuedToTarget);
    }
    expect(maxQueued).toBeGreaterThan(0);
    // The bound plus at most one chunk read before reading stopped.
    expect(maxQueued).toBeLessThanOrEqual((256 << 10) + (64 << 10));
  });

  it('cut resets open connections and refuses new ones until heal', async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    c.socket.write('x');
    await c.waitBytes(1);
    proxy.cut();
    await c.waitClosed();
    // A new connection is accepted by the kernel, then reset before a byte reaches the target.
    const refused = await client(true);
    refused.socket.write('lost');
    await refused.waitClosed();
    expect(target.accepted).toHaveLength(1);
    expect(proxy.stats().reset).toBeGreaterThanOrEqual(2);
    proxy.heal();
    const after = await client();
    after.socket.write('again');
    expect((await after.waitBytes(5)).toString()).toBe('again');
    expect(target.accepted).toHaveLength(2);
  });

  it('resets connections beyond maxConnections', async () => {
    const { proxy, client } = await setup({ proxy: { maxConnections: 2 } });
    const a = await client();
    const b = await client();
    const over = await client(true);
    await over.waitClosed();
    expect(proxy.stats()).toMatchObject({ active: 2, reset: 1, accepted: 3 });
    a.socket.destroy();
    await until(() => proxy.stats().active === 1, 3000, 'a slot');
    const c = await client();
    c.socket.write('ok');
    expect((await c.waitBytes(2)).toString()).toBe('ok');
    expect(b.closed()).toBe(false);
  });

  it('blackhole keeps connections open and passes nothing, then heal resumes the stream', async () => {
    const { target, proxy, client } = await setup();
    const c = await client();
    c.socket.write('one');
    await c.waitBytes(3);
    proxy.blackhole();
    c.socket.write('dropped');
    await sleep(200);
    expect(c.received().toString()).toBe('one');
    expect(target.accepted[0].received().toString()).toBe('one');
    expect(c.closed()).toBe(false);
    expect(proxy.stats().droppedToTarget).toBe(7);
    // New connections are black-holed too: open, silent.
    const fresh = await client();
    fresh.socket.write('q');
    await sleep(100);
    expect(fresh.received().length).toBe(0);
    expect(fresh.closed()).toBe(false);
    proxy.heal();
    c.socket.write('two');
    expect((await c.waitBytes(6)).toString()).toBe('onetwo');
    expect(target.accepted[0].received().toString()).toBe('onetwo');
    fresh.socket.write('r');
    expect((await fresh.waitBytes(1)).toString()).toBe('r');
  });

  it("blackhole('stall') holds the stream and delivers it intact after heal", async () => {
    const { proxy, client } = await setup();
    const c = await client();
    proxy.blackhole('stall');
    c.socket.write('held-');
    c.socket.write('in-order');
    await sleep(200);
    expect(c.received().length).toBe(0);
    expect(proxy.stats().droppedToTarget).toBe(0);
    proxy.heal();
    expect((await c.waitBytes(13)).toString()).toBe('held-in-order');
  });

  it('delay adds measurable latency each way and keeps chunk order under jitter', async () => {
    const { proxy, client } = await setup();
    const c = await client();
    const rtt = async (tag: string) => {
      const before = c.received().length;
      const t0 = performance.now();
      c.socket.write(tag);
      await c.waitBytes(before + tag.length, 5000);
      return performance.now() - t0;
    };
    const base = await rtt('a');
    proxy.delay(100);
    const delayed = await rtt('b');
    expect(base).toBeLessThan(100);
    expect(delayed).toBeGreaterThanOrEqual(195); // 100 ms to the target, 100 ms back
    proxy.delay(20, 40);
    const before = c.received().length;
    const parts: string[] = [];
    for (let i = 0; i < 50; i++) {
      parts.push(`<${i}>`);
      c.socket.write(`<${i}>`);
      await sleep(1);
    }
    const want = parts.join('');
    const got = await c.waitBytes(before + want.length, 5000);
    expect(got.subarray(before).toString()).toBe(want);
    proxy.delay(0);
    expect(await rtt('c')).toBeLessThan(100);
  });

  it('passes any protocol through untouched, even one that starts like the handshake', async () => {
    const { target, client } = await setup();
    const c = await client();
    c.socket.write('PL');
    await sleep(30);
    c.socket.write('AIN text');
    expect((await c.waitBytes(10)).toString()).toBe('PLAIN text');
    // A short start that could be a handshake is released when the client ends its side.
    const d = await client();
    d.socket.end('PLN');
    await until(() => target.accepted[1]?.ended(), 3000, 'the end');
    expect(target.accepted[1].received().toString()).toBe('PLN');
  });
});

describe('FaultProxy with Plinth peer handshakes', () => {
  const hs = (from: bigint, to: bigint): PeerHandshake => ({ version: 1, kind: 2, clusterId: 0xabcdn, from, to });

  it('encodes and parses the 30-byte header', () => {
    const h: PeerHandshake = { version: 1, kind: 3, clusterId: 0xfedcba9876543210n, from: 0x8e9e05c52164694dn, to: 7n };
    const b = encodePeerHandshake(h);
    expect(b.length).toBe(PEER_HANDSHAKE_BYTES);
    expect(b.subarray(0, 4).toString()).toBe('PLNT');
    expect(b.readBigUInt64BE(14)).toBe(0x8e9e05c52164694dn);
    expect(parsePeerHandshake(b)).toEqual(h);
    expect(parsePeerHandshake(b.subarray(0, 29))).toBeUndefined();
    // The same bytes as Plinth's own transport sends.
    expect(encodeHello(ConnectionKind.SNAPSHOT, h.clusterId, h.from, h.to)).toEqual(encodePeerHandshake({ ...h, kind: 2 }));
    expect(parsePeerHandshake(encodeHello(ConnectionKind.STREAM, 5n, 6n, 7n))).toEqual({ version: 1, kind: 1, clusterId: 5n, from: 6n, to: 7n });
    expect(parsePeerHandshake(Buffer.concat([Buffer.from('HTTP'), b.subarray(4)]))).toBeUndefined();
  });

  it('isolates one member: its connections go silent, the others keep flowing; rejoin restores them', async () => {
    const { target, proxy, client } = await setup();
    // Member 3 is behind this proxy; members 1 and 2 dial it. The header may arrive in pieces.
    const from1 = await client();
    const h1 = encodePeerHandshake(hs(1n, 3n));
    from1.socket.write(h1.subarray(0, 7));
    await sleep(20);
    from1.socket.write(Buffer.concat([h1.subarray(7), Buffer.from('m1')]));
    const from2 = await client();
    from2.socket.write(Buffer.concat([encodePeerHandshake(hs(2n, 3n)), Buffer.from('m2')]));
    await from1.waitBytes(32);
    await from2.waitBytes(32);
    // The target got the header intact.
    expect(parsePeerHandshake(target.accepted[0].received())).toEqual(hs(1n, 3n));
    const info = proxy.stats().connections.map((c) => [c.from, c.to, c.handshake?.kind]);
    expect(info).toEqual(expect.arrayContaining([[1n, 3n, 2], [2n, 3n, 2]]));

    proxy.isolate(1n);
    from1.socket.write('lost');
    from2.socket.write('kept');
    await from2.waitBytes(36);
    await sleep(100);
    expect(from1.received().length).toBe(32);
    expect(from1.closed()).toBe(false);
    expect(proxy.stats().connections.find((c) => c.from === 1n)?.fault).toBe('discard');

    // A new connection from the isolated member is matched by its header and silenced too.
    const again1 = await client();
    again1.socket.write(Buffer.concat([encodePeerHandshake(hs(1n, 3n)), Buffer.from('x')]));
    await sleep(100);
    expect(again1.received().length).toBe(0);

    proxy.rejoin(1n);
    from1.socket.write('back');
    await from1.waitBytes(36);
    expect(from1.received().subarray(32).toString()).toBe('back');
  });

  it("isolate(id, 'cut') and cutBetween reset matching connections at their header", async () => {
    const { target, proxy, client } = await setup();
    proxy.cutBetween(1n, 3n);
    const a = await client(true);
    a.socket.write(Buffer.concat([encodePeerHandshake(hs(1n, 3n)), Buffer.from('nope')]));
    await a.waitClosed();
    const b = await client();
    b.socket.write(Buffer.concat([encodePeerHandshake(hs(2n, 3n)), Buffer.from('ok')]));
    await b.waitBytes(32);
    // The cut connection reached the target (the proxy dials it at once) but none of its bytes did.
    await sleep(50);
    expect(target.accepted.map((t) => t.received().length)).toEqual([0, 32]);
    expect(parsePeerHandshake(target.accepted[1].received())?.from).toBe(2n);
    proxy.healBetween(3n, 1n); // either order names the pair
    const c = await client();
    c.socket.write(encodePeerHandshake(hs(1n, 3n)));
    await c.waitBytes(30);

    proxy.isolate(3n, 'cut'); // every connection to member 3: all of them here
    await b.waitClosed();
    await c.waitClosed();
    proxy.heal();
    const d = await client();
    d.socket.write(encodePeerHandshake(hs(2n, 3n)));
    await d.waitBytes(30);
  });

  it('attributes connections without a header through targetId and identify', async () => {
    // The dialer is named by the kernel: the owner of the dialing socket among given pids.
    const pids: number[] = [];
    const identify = async ({ remotePort, localPort }: { remotePort: number; localPort: number }) =>
      (await socketOwner(remotePort, localPort, pids)) === process.pid ? 5n : undefined;
    const { proxy, client } = await setup({ proxy: { targetId: 9n, identify } });
    pids.push(process.pid);
    const c = await client();
    c.socket.write('hi');
    await c.waitBytes(2);
    const [conn] = proxy.stats().connections;
    expect(conn.to).toBe(9n);
    expect(conn.from).toBe(SOCKET_OWNERS_KNOWN ? 5n : undefined);
    if (SOCKET_OWNERS_KNOWN) {
      proxy.isolate(5n, 'cut');
      await c.waitClosed();
      proxy.heal();
    }
    proxy.isolate(9n, 'cut');
    const d = await client(true);
    await d.waitClosed();
  });
});

describe.skipIf(!SOCKET_OWNERS_KNOWN)('socketOwner', () => {
  it("finds the child process that dialed a connection, not the test's own", async () => {
    const server = createServer();
    const accepted: Socket[] = [];
    server.on('connection', (s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const child = spawn(process.execPath, ['-e', `require('net').connect(${port}, '127.0.0.1'); setTimeout(() => {}, 10000)`], {
      stdio: 'ignore',
    });
    try {
      await until(() => accepted.length === 1, 5000, 'the child to connect');
      const s = accepted[0];
      expect(await socketOwner(s.remotePort!, port, [process.pid, child.pid!])).toBe(child.pid);
      expect(await socketOwner(s.remotePort!, port, [process.pid])).toBeUndefined();
      expect(await socketOwner(1, port, [child.pid!])).toBeUndefined();
    } finally {
      child.kill('SIGKILL');
      for (const s of accepted) s.destroy();
      server.close();
    }
  });
});
