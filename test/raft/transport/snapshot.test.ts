import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import { join } from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType } from '../../../src/raft/core/types';
import { ConnectionKind, HELLO_BYTES } from '../../../src/raft/transport/handshake';
import { hasLog, hello, mesh, msgSnap, sleep, startNode, waitFor, waitForAsync, type TestNode } from './harness';

v8.setFlagsFromString('--expose-gc');
const gcNow = vm.runInNewContext('gc') as () => void;

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


/** A file of `mib` MiB, each MiB different (so reordered or repeated chunks change the hash). */
async function makeFile(dir: string, mib: number): Promise<string> {
  const file = join(dir, `src-${mib}.snap`);
  const h = await fs.open(file, 'w');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < mib; i++) {
    block.writeUInt32BE(i, 0);
    await h.write(block);
  }
  await h.close();
  return file;
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

async function srcDir(): Promise<string> {
  const d = await fs.mkdtemp('/tmp/plinth-snap-src-');
  cleanup.push(() => fs.rm(d, { recursive: true, force: true }));
  return d;
}

/** Forwards connections to target; on snapshot connections, alters the client's byte stream. */
async function proxy(target: string, mode: { flipAt?: number; cutAt?: number }): Promise<string> {
  const t = new URL(target);
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    const upstream = net.connect({ host: t.hostname, port: Number(t.port) });
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on('data', (d) => client.write(d));
    let seen = 0;
    let kind = 0;
    client.on('data', (d: Buffer) => {
      // The handshake is fixed: byte 5 says which kind of connection this is.
      if (seen <= 5 && seen + d.length > 5) kind = d[5 - seen];
      const start = seen;
      seen += d.length;
      if (kind === ConnectionKind.SNAPSHOT && mode.flipAt !== undefined && start <= mode.flipAt && mode.flipAt < seen) d[mode.flipAt - start] ^= 0x40;
      if (kind === ConnectionKind.SNAPSHOT && mode.cutAt !== undefined && seen > mode.cutAt) {
        upstream.write(d.subarray(0, mode.cutAt - start), () => {
          client.destroy();
          upstream.destroy();
        });
        return;
      }
      upstream.write(d);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(
    () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}

async function filesIn(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

describe('snapshots', () => {
  it('streams a 64 MiB file intact with bounded memory, from the larger id to the smaller', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 64);
    const want = await sha256(file);
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    gcNow();
    await sleep(20);
    gcNow();
    const base = process.memoryUsage();
    let peakRss = 0;
    let peakBuffers = 0;
    // Collect before each sample: what is measured is what the transfer keeps alive, not garbage
    // (each socket read is a fresh 64 KiB buffer) the collector has not got to yet.
    const sampler = setInterval(() => {
      gcNow();
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss - base.rss);
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
    }, 50);
    const t0 = Date.now();
    b.t.sendSnapshot(msgSnap(2n, 1n), file);
    await waitFor(() => b.snapshotStatus.length === 1, 20_000, 'snapshot status');
    clearInterval(sampler);
    const ms = Date.now() - t0;
    expect(b.snapshotStatus).toEqual([{ id: 1n, ok: true }]);
    expect(a.snapshots.length).toBe(1);
    const got = a.snapshots[0];
    expect(got.msg).toEqual(msgSnap(2n, 1n));
    expect(got.file.startsWith(a.dir)).toBe(true);
    expect((await fs.stat(got.file)).size).toBe(64 * 1024 * 1024);
    expect(await sha256(got.file)).toBe(want);
    expect(await filesIn(a.dir)).toEqual([got.file.slice(a.dir.length + 1)]); // no temp file left
    // Both ends in this process: 256 KiB chunks, at most 4 MiB waiting for the disk, the sockets'
    // buffers, and buffers freed by the last collection but not yet released: V8 frees array buffers'
    // memory on a background thread after gc() returns, so on a loaded machine a sample can still count
    // them. Measured ≈ 14 MB alone, the same for a 256 MiB file; 31 MB once in CI beside other test
    // files. Holding the file would be 64 MiB, so the bound sits under that.
    if (process.env.TRANSPORT_TEST_LOG) console.log({ ms, peakRss, peakBuffers });
    expect(peakBuffers).toBeLessThan(48 * 1024 * 1024);
    expect(peakRss).toBeLessThan(56 * 1024 * 1024);
    expect(hasLog(a, 'info', 'received snapshot from peer 2')).toBe(true);
  });

  it('refuses a snapshot corrupted in transit, deletes it, and the sender reports failure', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 2);
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    a.t.updatePeer(2n, [await proxy(b.url, { flipAt: HELLO_BYTES + 5000 })]);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    await waitFor(() => a.snapshotStatus.length === 1, 5000);
    expect(a.snapshotStatus).toEqual([{ id: 2n, ok: false }]);
    expect(b.snapshots).toEqual([]);
    expect(hasLog(b, 'warn', 'refused snapshot from peer 1: SHA-256 mismatch: the snapshot was corrupted in transit')).toBe(true);
    expect(hasLog(a, 'warn', 'failed to send snapshot to peer 2: the peer refused it: SHA-256 mismatch')).toBe(true);
    await waitForAsync(async () => (await filesIn(b.dir)).length === 0, 2000, 'the refused file deleted');
  });

  it('discards a truncated snapshot (the connection cut mid-file); the sender reports failure', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 4);
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    a.t.updatePeer(2n, [await proxy(b.url, { cutAt: 1024 * 1024 })]);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    await waitFor(() => a.snapshotStatus.length === 1, 5000);
    expect(a.snapshotStatus).toEqual([{ id: 2n, ok: false }]);
    await waitFor(() => hasLog(b, 'warn', /snapshot from peer 1 incomplete: connection closed by the peer/));
    expect(b.snapshots).toEqual([]);
    await sleep(50);
    expect(await filesIn(b.dir)).toEqual([]);
  });

  it('enforces maxSnapshotBytes on the receiver', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 2);
    const [a, b] = [await node(1n), await node(2n, { limits: { maxSnapshotBytes: 1024 * 1024 } })];
    await mesh([a, b]);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    await waitFor(() => a.snapshotStatus.length === 1, 5000);
    expect(a.snapshotStatus).toEqual([{ id: 2n, ok: false }]);
    expect(hasLog(b, 'warn', 'refused snapshot from peer 1: snapshot of 2097152 bytes exceeds the limit of 1048576 bytes')).toBe(true);
    expect(await filesIn(b.dir)).toEqual([]);
  });

  it('one snapshot in flight per peer each way; a missing file or non-MsgSnap fails; never inside the call', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 8);
    const [a, b] = [await node(1n), await node(2n)];
    await mesh([a, b]);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    a.t.sendSnapshot(msgSnap(1n, 2n, 2000), file);
    expect(a.snapshotStatus).toEqual([]); // reported after the call, not inside it
    await waitFor(() => a.snapshotStatus.length === 2, 5000);
    expect(a.snapshotStatus).toEqual([
      { id: 2n, ok: false },
      { id: 2n, ok: true },
    ]);
    expect(b.snapshots.map((s) => s.msg.snapshot!.metadata.index)).toEqual([1000]);
    a.t.sendSnapshot(msgSnap(1n, 2n), join(dir, 'missing'));
    a.t.sendSnapshot({ ...msgSnap(1n, 2n), type: MessageType.MsgApp }, file);
    await waitFor(() => a.snapshotStatus.length === 4, 2000);
    expect(a.snapshotStatus.slice(2).map((s) => s.ok)).toEqual([false, false]);
    // The receiver side: a second snapshot connection from the same member while one is open is refused.
    const u = new URL(b.url);
    const holder = net.connect({ host: u.hostname, port: Number(u.port) });
    holder.on('error', () => {});
    await new Promise((r) => holder.on('connect', r));
    holder.write(hello(ConnectionKind.SNAPSHOT, 1n, 2n));
    await sleep(50);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    await waitFor(() => a.snapshotStatus.length === 5, 2000);
    expect(a.snapshotStatus[4]).toEqual({ id: 2n, ok: false });
    expect(hasLog(a, 'warn', 'failed to send snapshot to peer 2: refused (status 7): a snapshot from this member is already being received')).toBe(true);
    holder.destroy();
  });

  it('close() during a transfer aborts it, deletes the partial file, reports nothing afterwards', async () => {
    const dir = await srcDir();
    const file = await makeFile(dir, 32);
    const [a, b] = [await node(1n), await startNode(2n)];
    await mesh([a, b]);
    a.t.sendSnapshot(msgSnap(1n, 2n), file);
    await waitFor(() => (a.t.stats().get(2n)?.sentBytes ?? 0) > 4 * 1024 * 1024, 5000, 'transfer under way');
    const bDir = b.dir;
    await b.t.close(); // keep its dir to look at
    expect((await filesIn(bDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await fs.rm(bDir, { recursive: true, force: true });
    await waitFor(() => a.snapshotStatus.length === 1, 5000);
    expect(a.snapshotStatus).toEqual([{ id: 2n, ok: false }]);
    expect(b.snapshots).toEqual([]);
    expect(b.snapshotStatus).toEqual([]);
  });
});
