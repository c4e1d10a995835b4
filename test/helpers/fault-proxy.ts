// A fault-injecting TCP proxy that runs inside the test process, for cluster fault tests: it sits in
// front of a member's peer port and forwards bytes both ways, until a test tells it to cut, black-hole,
// stall or delay them.
//
// It works for any protocol (real etcd's peer HTTP included). When a connection starts with Plinth's
// 30-byte peer handshake (ASCII "PLNT", u8 version, u8 connection kind, u64 BE cluster id, u64 BE from
// id, u64 BE to id), it learns which members the connection joins, so faults can target pairs of
// members or one member's every link (isolate) even though the connections to a member run through the
// other members' proxies. For protocols without such a header, an `identify` hook can name the dialing
// member another way (the cluster harness asks the kernel which process owns the dialing socket).
//
// Bounded: while forwarding is slow (delay, a slow reader), a direction holds at most maxQueuedBytes
// before it stops reading its source (TCP flow control does the rest, nothing is lost); while black-holed
// ('discard'), bytes are read and dropped, never kept; while stalled ('stall'), nothing is read.
import { createServer, connect, type Server, type Socket } from 'node:net';

/** A member id as the peer handshake carries it. */
export type MemberId = bigint;

/**
 * What happens to a connection under a fault:
 * - 'cut': it is reset at once, and new ones are reset as soon as they are matched;
 * - 'discard' (a black hole): it stays open, bytes both ways are read and dropped (a partition that
 *   no side notices, except by silence; after heal the stream resumes with a gap, which a framed
 *   protocol sees as garbage);
 * - 'stall': it stays open and nothing is read (the senders' buffers fill, as when packets are lost
 *   and TCP keeps retransmitting); after heal the stream resumes intact.
 */
export type Fault = 'cut' | 'discard' | 'stall';

export interface PeerHandshake {
  version: number;
  kind: number;
  clusterId: bigint;
  from: MemberId;
  to: MemberId;
}

export const PEER_HANDSHAKE_MAGIC = Buffer.from('PLNT', 'ascii');
export const PEER_HANDSHAKE_BYTES = 30;

export function encodePeerHandshake(h: PeerHandshake): Buffer {
  const b = Buffer.alloc(PEER_HANDSHAKE_BYTES);
  PEER_HANDSHAKE_MAGIC.copy(b, 0);
  b.writeUInt8(h.version, 4);
  b.writeUInt8(h.kind, 5);
  b.writeBigUInt64BE(h.clusterId, 6);
  b.writeBigUInt64BE(h.from, 14);
  b.writeBigUInt64BE(h.to, 22);
  return b;
}

/** The handshake at the start of `b`, or undefined when `b` does not start with one. */
export function parsePeerHandshake(b: Buffer): PeerHandshake | undefined {
  if (b.length < PEER_HANDSHAKE_BYTES || !b.subarray(0, 4).equals(PEER_HANDSHAKE_MAGIC)) return undefined;
  return {
    version: b.readUInt8(4),
    kind: b.readUInt8(5),
    clusterId: b.readBigUInt64BE(6),
    from: b.readBigUInt64BE(14),
    to: b.readBigUInt64BE(22),
  };
}

/** Where an accepted connection comes from, for `identify`. */
export interface AcceptedConnection {
  remoteAddress: string;
  /** The dialer's port. */
  remotePort: number;
  /** The proxy's own port (the one dialed). */
  localPort: number;
}

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** Port to listen on; a free one when 0 or absent. */
  listenPort?: number;
  listenHost?: string;
  /** The member behind this proxy: the `to` of connections that carry no handshake. */
  targetId?: MemberId;
  /**
   * Names the member that dialed a connection without a handshake (undefined: unknown). Connections
   * wait for its answer (at most identifyTimeoutMs) before any byte is forwarded.
   */
  identify?: (conn: AcceptedConnection) => Promise<MemberId | undefined>;
  identifyTimeoutMs?: number;
  /** Bytes one direction of one connection may hold while it waits to be forwarded (default 1 MiB). */
  maxQueuedBytes?: number;
  /** Connections open at once (default 1024); more are reset at accept and counted in stats().reset. */
  maxConnections?: number;
}

export interface ConnectionInfo {
  id: number;
  from?: MemberId;
  to?: MemberId;
  handshake?: PeerHandshake;
  fault: Fault | 'none';
  bytesToTarget: number;
  bytesToClient: number;
  /** Bytes read but not yet forwarded (delay, a slow reader, a stall), per direction. */
  queuedToTarget: number;
  queuedToClient: number;
}

export interface ProxyStats {
  /** Connections accepted since start. */
  accepted: number;
  /** Connections reset by a cut, at accept or later. */
  reset: number;
  /** Connections open now. */
  active: number;
  bytesToTarget: number;
  bytesToClient: number;
  /** Bytes read and dropped by 'discard'. */
  droppedToTarget: number;
  droppedToClient: number;
  connections: ConnectionInfo[];
}

interface Rule {
  match: (c: Connection) => boolean;
  fault: Fault;
  /** What heals it: the member (isolate) or the pair (between). */
  member?: MemberId;
  pair?: [MemberId, MemberId];
}

const SEVERITY: Record<Fault | 'none', number> = { none: 0, stall: 1, discard: 2, cut: 3 };

export class FaultProxy {
  readonly port: number;
  readonly host: string;
  readonly target: { host: string; port: number };
  targetId?: MemberId;

  private readonly server: Server;
  private readonly opts: FaultProxyOptions;
  private readonly conns = new Set<Connection>();
  private proxyFault: Fault | 'none' = 'none';
  private rules: Rule[] = [];
  private delayMs = 0;
  private jitterMs = 0;
  private nextId = 1;
  private closed = false;
  private readonly totals = { accepted: 0, reset: 0, bytesToTarget: 0, bytesToClient: 0, droppedToTarget: 0, droppedToClient: 0 };

  private constructor(server: Server, port: number, opts: FaultProxyOptions) {
    this.server = server;
    this.port = port;
    this.host = opts.listenHost ?? '127.0.0.1';
    this.target = { ...opts.target };
    this.targetId = opts.targetId;
    this.opts = opts;
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    // allowHalfOpen: a client's FIN is passed on as a FIN, not turned into a close of both ways.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const host = opts.listenHost ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listenPort ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const proxy = new FaultProxy(server, port, opts);
    server.on('connection', (s) => proxy.accept(s));
    // A listening socket error after start (rare: EMFILE) must not crash the test process.
    server.on('error', () => undefined);
    return proxy;
  }

  /** `http://host:port`, for an advertised peer URL. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  // ---- faults on the whole proxy ----------------------------------------------------------------

  /** Resets every connection and every new one until heal(). */
  cut(): void {
    this.proxyFault = 'cut';
    this.reapply();
  }

  /** Keeps connections open but forwards nothing until heal(): 'discard' drops bytes, 'stall' stops reading. */
  blackhole(mode: Exclude<Fault, 'cut'> = 'discard'): void {
    this.proxyFault = mode;
    this.reapply();
  }

  /** Ends every partition fault (whole-proxy, member and pair rules); delay stays as set. */
  heal(): void {
    this.proxyFault = 'none';
    this.rules = [];
    this.reapply();
  }

  /**
   * Holds every chunk for ms (plus up to jitterMs at random) before forwarding it, in order; applies to
   * chunks read from now on. delay(0) ends it.
   */
  delay(ms: number, jitterMs = 0): void {
    if (!(ms >= 0 && jitterMs >= 0)) throw new RangeError(`delay: ms and jitterMs must be >= 0 (got ${ms}, ${jitterMs})`);
    this.delayMs = ms;
    this.jitterMs = jitterMs;
  }

  // ---- faults by member (from handshakes, targetId and identify) ------------------------------------

  /** Applies `fault` to every connection from or to `id`, now and later, until rejoin(id) or heal(). */
  isolate(id: MemberId, fault: Fault = 'discard'): void {
    this.rules = this.rules.filter((r) => r.member !== id);
    this.rules.push({ member: id, fault, match: (c) => c.from === id || c.to === id });
    this.reapply();
  }

  rejoin(id: MemberId): void {
    this.rules = this.rules.filter((r) => r.member !== id);
    this.reapply();
  }

  /** Applies `fault` to connections between a and b (either direction), until healBetween or heal(). */
  cutBetween(a: MemberId, b: MemberId, fault: Fault = 'cut'): void {
    this.healBetweenRules(a, b);
    this.rules.push({
      pair: [a, b],
      fault,
      match: (c) => (c.from === a && c.to === b) || (c.from === b && c.to === a),
    });
    this.reapply();
  }

  healBetween(a: MemberId, b: MemberId): void {
    this.healBetweenRules(a, b);
    this.reapply();
  }

  // ---- observation and shutdown -----------------------------------------------------------------

  stats(): ProxyStats {
    return {
      ...this.totals,
      active: this.conns.size,
      connections: [...this.conns].map((c) => c.info()),
    };
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.conns) c.destroy(false);
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- internals --------------------------------------------------------------------------------

  private healBetweenRules(a: MemberId, b: MemberId): void {
    this.rules = this.rules.filter((r) => !r.pair || !((r.pair[0] === a && r.pair[1] === b) || (r.pair[0] === b && r.pair[1] === a)));
  }

  /** @internal the fault that applies to a connection now. */
  faultFor(c: Connection): Fault | 'none' {
    let f = this.proxyFault;
    for (const r of this.rules) if (SEVERITY[r.fault] > SEVERITY[f] && r.match(c)) f = r.fault;
    return f;
  }

  /** @internal the due time of a chunk read now. */
  chunkDelay(): number {
    return this.delayMs + (this.jitterMs ? Math.random() * this.jitterMs : 0);
  }

  /** @internal */
  count(what: 'toTarget' | 'toClient' | 'droppedToTarget' | 'droppedToClient' | 'reset', n = 1): void {
    if (what === 'toTarget') this.totals.bytesToTarget += n;
    else if (what === 'toClient') this.totals.bytesToClient += n;
    else if (what === 'reset') this.totals.reset += n;
    else this.totals[what] += n;
  }

  /** @internal */
  forget(c: Connection): void {
    this.conns.delete(c);
  }

  private reapply(): void {
    for (const c of [...this.conns]) c.update();
  }

  private accept(client: Socket): void {
    this.totals.accepted++;
    client.on('error', () => undefined);
    if (this.closed || this.proxyFault === 'cut' || this.conns.size >= (this.opts.maxConnections ?? 1024)) {
      this.totals.reset++;
      resetSocket(client);
      return;
    }
    const c = new Connection(this, this.nextId++, client, this.opts.maxQueuedBytes ?? 1 << 20);
    c.to = this.targetId;
    this.conns.add(c);
    const identified = this.opts.identify
      ? withTimeout(
          this.opts.identify({ remoteAddress: client.remoteAddress ?? '', remotePort: client.remotePort ?? 0, localPort: client.localPort ?? 0 }),
          this.opts.identifyTimeoutMs ?? 1000,
        ).catch(() => undefined)
      : Promise.resolve(undefined);
    void identified.then((from) => {
      if (from !== undefined) c.from = from;
      c.start(this.target);
    });
  }
}

function resetSocket(s: Socket): void {
  // An RST rather than a FIN: the peer sees the connection fail, not end.
  if (typeof s.resetAndDestroy === 'function' && !s.destroyed && s.readyState !== 'opening') s.resetAndDestroy();
  else s.destroy();
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** One proxied connection: the accepted client socket, the socket to the target, a pipe each way. */
class Connection {
  from?: MemberId;
  to?: MemberId;
  handshake?: PeerHandshake;
  fault: Fault | 'none' = 'none';
  private upstream?: Socket;
  private toTarget?: Pipe;
  private toClient?: Pipe;
  /** Client bytes held while they may still be the start of a peer handshake. */
  private sniffed: Buffer | null = Buffer.alloc(0);
  private dead = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly id: number,
    private readonly client: Socket,
    private readonly maxQueued: number,
  ) {
    // From the start: the client may go away while its dialer is being identified.
    client.on('error', () => this.destroy(true));
    client.on('close', () => this.destroy(false));
  }

  start(target: { host: string; port: number }): void {
    if (this.client.destroyed) this.destroy(false);
    // A connection already matched by a cut (by its target or identified dialer) never reaches the target.
    this.update();
    if (this.dead) return;
    const up = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.upstream = up;
    up.on('error', () => this.destroy(true));
    up.on('close', () => this.destroy(false));
    this.toTarget = new Pipe(this.proxy, this.client, up, 'toTarget', this.maxQueued);
    this.toClient = new Pipe(this.proxy, up, this.client, 'toClient', this.maxQueued);
    this.toTarget.sniff = (chunk, final) => this.sniff(chunk, final);
    this.update();
    if (this.dead) return;
    up.once('connect', () => {
      this.toTarget?.open();
      this.toClient?.open();
    });
  }

  /**
   * Holds the first client bytes while they could be a handshake; returns what to forward now (null:
   * hold). A connection whose first bytes are not "PLNT" is passed through untouched, as is a short
   * start that the client ends (final).
   */
  private sniff(chunk: Buffer, final: boolean): Buffer | null {
    if (!this.sniffed) return chunk;
    const buf = Buffer.concat([this.sniffed, chunk]);
    if (final) {
      this.sniffed = null;
      return buf;
    }
    const prefix = buf.subarray(0, Math.min(4, buf.length));
    if (!prefix.equals(PEER_HANDSHAKE_MAGIC.subarray(0, prefix.length))) {
      this.sniffed = null;
      return buf;
    }
    if (buf.length < PEER_HANDSHAKE_BYTES) {
      this.sniffed = buf;
      return null;
    }
    this.sniffed = null;
    const h = parsePeerHandshake(buf)!;
    this.handshake = h;
    this.from = h.from;
    this.to = h.to;
    this.update();
    return buf;
  }

  /** Applies the proxy's current faults to this connection. */
  update(): void {
    if (this.dead) return;
    const f = this.proxy.faultFor(this);
    this.fault = f;
    if (f === 'cut') {
      this.proxy.count('reset');
      this.destroy(true);
      return;
    }
    this.toTarget?.setFault(f);
    this.toClient?.setFault(f);
  }

  info(): ConnectionInfo {
    return {
      id: this.id,
      from: this.from,
      to: this.to,
      handshake: this.handshake,
      fault: this.fault,
      bytesToTarget: this.toTarget?.forwarded ?? 0,
      bytesToClient: this.toClient?.forwarded ?? 0,
      queuedToTarget: this.toTarget?.queuedBytes ?? 0,
      queuedToClient: this.toClient?.queuedBytes ?? 0,
    };
  }

  destroy(reset: boolean): void {
    if (this.dead) return;
    this.dead = true;
    this.toTarget?.dispose();
    this.toClient?.dispose();
    if (reset) {
      resetSocket(this.client);
      if (this.upstream) resetSocket(this.upstream);
    } else {
      this.client.destroy();
      this.upstream?.destroy();
    }
    this.proxy.forget(this);
  }
}

const END = null;

/**
 * One direction of a connection: reads the source, queues chunks until their due time, writes them to
 * the destination in order, and applies the connection's fault.
 */
class Pipe {
  forwarded = 0;
  /** Inspects (and may hold back) data before it is queued: the handshake sniffer. */
  sniff?: (chunk: Buffer, final: boolean) => Buffer | null;
  private readonly queue: { due: number; chunk: Buffer | typeof END }[] = [];
  private queued = 0;
  private timer?: NodeJS.Timeout;
  private lastDue = 0;
  private fault: Fault | 'none' = 'none';
  private opened = false;
  private waitingDrain = false;
  private ended = false;
  private disposed = false;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly direction: 'toTarget' | 'toClient',
    private readonly maxQueued: number,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.on('end', () => this.onEnd());
    dst.on('drain', () => {
      this.waitingDrain = false;
      this.flush();
    });
    // The client socket was accepted paused; nothing is read until the target's socket is connected.
    src.pause();
  }

  /** The destination is connected: start moving bytes. */
  open(): void {
    this.opened = true;
    this.adjustReading();
    this.flush();
  }

  setFault(f: Fault | 'none'): void {
    this.fault = f;
    if (f === 'discard') {
      // Nothing held: what waited is dropped like what arrives.
      for (const q of this.queue) if (q.chunk) this.drop(q.chunk.length);
      const endQueued = this.queue.some((q) => q.chunk === END);
      this.queue.length = 0;
      this.queued = 0;
      if (endQueued) this.queue.push({ due: 0, chunk: END });
    }
    this.adjustReading();
    this.flush();
  }

  get queuedBytes(): number {
    return this.queued;
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queued = 0;
  }

  private onData(chunk: Buffer): void {
    if (this.disposed) return;
    if (this.fault === 'discard') {
      this.drop(chunk.length);
      return;
    }
    if (this.sniff) {
      const pass = this.sniff(chunk, false);
      if (pass === null) return;
      this.sniff = undefined;
      chunk = pass;
      // The handshake may have changed the fault (sniff applies it).
      if ((this.fault as Fault | 'none') === 'discard') {
        this.drop(chunk.length);
        return;
      }
    }
    this.enqueue(chunk);
  }

  private enqueue(chunk: Buffer | typeof END): void {
    if (this.disposed) return;
    const due = Math.max(performance.now() + this.proxy.chunkDelay(), this.lastDue);
    this.lastDue = due;
    this.queue.push({ due, chunk });
    if (chunk) this.queued += chunk.length;
    this.adjustReading();
    this.flush();
  }

  private onEnd(): void {
    if (this.sniff) {
      const held = this.sniff(Buffer.alloc(0), true);
      this.sniff = undefined;
      if (held?.length) {
        if (this.fault === 'discard') this.drop(held.length);
        else this.enqueue(held);
      }
    }
    this.enqueue(END);
  }

  private drop(n: number): void {
    this.proxy.count(this.direction === 'toTarget' ? 'droppedToTarget' : 'droppedToClient', n);
  }

  /** Reads while forwarding keeps up; stops when stalled, not yet open, or too much is queued. */
  private adjustReading(): void {
    if (this.src.destroyed) return;
    const read =
      this.opened &&
      (this.fault === 'discard' || (this.fault === 'none' && this.queued < this.maxQueued && !this.waitingDrain));
    if (read) this.src.resume();
    else this.src.pause();
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Nothing moves under a fault, not even an end of stream (a partition passes no FIN).
    if (!this.opened || this.fault !== 'none' || this.dst.destroyed) return;
    const now = performance.now();
    while (this.queue.length && !this.waitingDrain) {
      const head = this.queue[0];
      if (head.due > now) {
        this.timer = setTimeout(() => this.flush(), Math.max(1, Math.ceil(head.due - now)));
        break;
      }
      this.queue.shift();
      if (head.chunk === END) {
        if (!this.ended) {
          this.ended = true;
          this.dst.end();
        }
        continue;
      }
      this.queued -= head.chunk.length;
      this.forwarded += head.chunk.length;
      this.proxy.count(this.direction, head.chunk.length);
      if (!this.dst.write(head.chunk)) this.waitingDrain = true;
    }
    this.adjustReading();
  }
}
