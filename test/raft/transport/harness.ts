// Transports on 127.0.0.1 (OS-chosen ports) with everything they report recorded, for the tests.

import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType, type Message } from '../../../src/raft/core/types';
import { encodeHello, HELLO_BYTES, type ConnectionKind } from '../../../src/raft/transport/handshake';
import { PeerTransport, type PeerTransportOptions } from '../../../src/raft/transport/peer-transport';

export const CLUSTER = 0xc1a5_7e12_0000_0001n;

export interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

export interface TestNode {
  id: bigint;
  t: PeerTransport;
  url: string;
  dir: string;
  /** Every message delivered, with its sender, in delivery order. */
  received: { from: bigint; m: Message }[];
  /** How many onMessages calls (one per received batch). */
  batches: number;
  unreachable: bigint[];
  snapshotStatus: { id: bigint; ok: boolean }[];
  snapshots: { msg: Message; file: string }[];
  logs: LogLine[];
  onRequest: (from: bigint, kind: string, body: Buffer) => Promise<Buffer>;
  /** When set, receives batches instead of `received` (benchmarks). */
  onMessages?: (from: bigint, msgs: Message[]) => void;
  removed: Set<bigint>;
  /** Every onRemoved call (the peer that said this member was removed). */
  removedBy: bigint[];
  close(): Promise<void>;
}

export type NodeOptions = Partial<Omit<PeerTransportOptions, 'onMessages' | 'onSnapshot' | 'onRequest' | 'onUnreachable' | 'onSnapshotStatus' | 'log'>> & {
  port?: number;
  quiet?: boolean;
};

export async function startNode(id: bigint, o: NodeOptions = {}): Promise<TestNode> {
  const dir = o.snapshotDir ?? mkdtempSync(join(tmpdir(), 'plinth-transport-'));
  const node: TestNode = {
    id,
    t: undefined as unknown as PeerTransport,
    url: '',
    dir,
    received: [],
    batches: 0,
    unreachable: [],
    snapshotStatus: [],
    snapshots: [],
    logs: [],
    onRequest: async (_from, kind, body) => Buffer.concat([Buffer.from(`${kind}:`), body]),
    removed: new Set(),
    removedBy: [],
    close: async () => {
      await node.t.close();
      if (o.snapshotDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
  const { port, quiet, ...rest } = o;
  node.t = await PeerTransport.listen({
    selfId: id,
    clusterId: CLUSTER,
    listenUrls: [new URL(`http://127.0.0.1:${port ?? 0}`)],
    snapshotDir: dir,
    backoffMinMs: 20,
    backoffMaxMs: 200,
    dialTimeoutMs: 1000,
    isRemoved: (x) => node.removed.has(x),
    onRemoved: (by) => node.removedBy.push(by),
    ...rest,
    onMessages: (from, msgs) => {
      if (node.onMessages) return node.onMessages(from, msgs);
      node.batches++;
      for (const m of msgs) node.received.push({ from, m });
    },
    onSnapshot: (msg, file) => node.snapshots.push({ msg, file }),
    onRequest: (from, kind, body) => node.onRequest(from, kind, body),
    onUnreachable: (x) => node.unreachable.push(x),
    onSnapshotStatus: (x, ok) => node.snapshotStatus.push({ id: x, ok }),
    log: (level, msg, fields) => {
      node.logs.push({ level, msg, fields });
      if (!quiet && process.env.TRANSPORT_TEST_LOG) console.log(`[${id}] ${level} ${msg}`);
    },
  });
  node.url = node.t.listenUrls[0].href;
  return node;
}

/** Every node learns every other; resolves when all pairs are connected. */
export async function mesh(nodes: TestNode[], timeoutMs = 3000): Promise<void> {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.t.addPeer(b.id, [b.url]);
  await waitFor(() => nodes.every((a) => nodes.every((b) => a === b || a.t.isConnected(b.id))), timeoutMs, 'mesh connected');
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

export async function waitForAsync(cond: () => Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function hasLog(n: TestNode, level: string, text: string | RegExp): boolean {
  return n.logs.some((l) => l.level === level && (typeof text === 'string' ? l.msg.includes(text) : text.test(l.msg)));
}

/** A raw client: connects, sends the bytes, collects what comes back until the socket closes. */
export function rawExchange(url: string, bytes: Buffer, opts: { keepOpenMs?: number } = {}): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ reply: Buffer.concat(chunks), closed });
    };
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => finish(true));
    s.on('connect', () => s.write(bytes));
    setTimeout(() => finish(false), opts.keepOpenMs ?? 2000);
  });
}

export function hello(kind: ConnectionKind, from: bigint, to: bigint, cluster = CLUSTER): Buffer {
  const h = encodeHello(kind, cluster, from, to);
  expectLength(h);
  return h;
}

function expectLength(h: Buffer): void {
  if (h.length !== HELLO_BYTES) throw new Error('hello must be 30 bytes');
}

/** Splits a handshake reply: status, reason. */
export function parseReply(b: Buffer): { status: number; reason: string } {
  const len = b.readUInt16BE(1);
  return { status: b[0], reason: b.subarray(3, 3 + len).toString('utf8') };
}

/** Listens on a free 127.0.0.1 port with a raw handler; close() ends its sockets too. */
export async function rawServer(onSocket: (s: net.Socket) => void): Promise<{ url: string; port: number; connections: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const srv = net.createServer((s) => {
    state.connections++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A MsgSnap from one member to another (the metadata of a snapshot at index). */
export function msgSnap(from: bigint, to: bigint, index = 1000): Message {
  return {
    type: MessageType.MsgSnap,
    to,
    from,
    term: 3,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: { metadata: { index, term: 3, confState: { voters: [1n, 2n, 3n], learners: [4n] } } },
  };
}
