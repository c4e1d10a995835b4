// Plinth's peer transport: raft messages, snapshots and small requests between members, over its own
// protocol (docs/peer-protocol.md). One long-lived stream connection per pair of members (the smaller
// id dials), snapshot files on connections of their own. send() never blocks and never throws for a
// peer problem: what cannot go out is dropped and reported (onUnreachable), as raft expects.

import * as fs from 'node:fs/promises';
import type * as net from 'node:net';
import { MessageType, type Message, type NodeId } from '../core/types';
import type { TransportContext } from './context';
import { CodecError, TransportError } from './errors';
import { encodeFrame, FrameType } from './framing';
import { ConnectionKind, encodeReply, HandshakeStatus, hex, parseHello, readHello, type Hello } from './handshake';
import { Link } from './link';
import { MAX_MEMBERS_BYTES } from './members-query';
import { encodedMessageSize } from './message-codec';
import { resolveOptions, type LogLevel, type PeerTransportOptions, type ResolvedOptions } from './options';
import { Peer, type PeerStats } from './peer';
import { hostOf, parsePeerUrl, peerSockets, plainTcp, portOf, type SocketFactory } from './sockets';
import { SnapshotReceive, TEMP_PREFIX, TEMP_SUFFIX } from './snapshot-receiver';
import { startSnapshotSend } from './snapshot-sender';

export type { PeerTransportOptions, TransportLimits, Logger, LogLevel } from './options';
export type { PeerStats } from './peer';
export { TransportError, RemoteError, CodecError, ProtocolError } from './errors';
export { parsePeerUrl };
export { HandshakeRefused, HandshakeStatus } from './handshake';
export { queryMembers, MAX_MEMBERS_BYTES, type QueryMembersOptions } from './members-query';

/** Connections still in their handshake; more are refused at once (a flood costs nothing). */
const MAX_PENDING_HANDSHAKES = 64;
/** How long a refused dialer gets to read the refusal before the socket is destroyed. */
const REFUSAL_LINGER_MS = 1000;
const LOG_REPEAT_MS = 30_000;
/** Most keys the log limiter remembers (oldest dropped). */
const LOG_LIMITER_KEYS = 1024;

export class PeerTransport {
  private readonly opts: PeerTransportOptions;
  private readonly resolved: ResolvedOptions;
  private readonly ctx: TransportContext;
  private readonly sockets: SocketFactory;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly servers: net.Server[] = [];
  private readonly bound: URL[] = [];
  /** Accepted sockets not yet closed (handshaking, refused, or carrying a link). */
  private readonly accepted = new Set<net.Socket>();
  private pendingHandshakes = 0;
  private readonly links = new Set<Link>();
  private livenessTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** onRemoved was reported (it is called once per transport). */
  private removedReported = false;
  /** Snapshot receptions being aborted (temp files being deleted), awaited by close(). */
  private readonly cleanups = new Set<Promise<void>>();

  // End-of-turn work: flush dirty peers, then the deferred callbacks.
  private turnScheduled = false;
  private dirty = new Set<NodeId>();
  private unreachable = new Set<NodeId>();
  private deferred: (() => void)[] = [];
  private readonly logTimes = new Map<string, number>();

  private constructor(opts: PeerTransportOptions) {
    this.opts = opts;
    this.resolved = resolveOptions(opts);
    this.sockets = opts.tls ? peerSockets(opts.tls, (level, msg, fields) => opts.log(level, msg, fields)) : plainTcp;
    const self = this;
    this.ctx = {
      selfId: opts.selfId,
      clusterId: opts.clusterId,
      opts: this.resolved,
      callbacks: opts,
      sockets: this.sockets,
      log: opts.log,
      isClosed: () => self.closed,
      markDirty: (id) => {
        self.dirty.add(id);
        self.scheduleTurnEnd();
      },
      reportUnreachable: (id) => {
        self.unreachable.add(id);
        self.scheduleTurnEnd();
      },
      defer: (fn) => {
        self.deferred.push(fn);
        self.scheduleTurnEnd();
      },
      reportRemoved: (by) => {
        if (self.removedReported || self.closed) return;
        self.removedReported = true;
        const onRemoved = opts.onRemoved;
        if (onRemoved !== undefined) self.ctx.defer(() => self.safeCall('onRemoved', () => onRemoved.call(opts, by)));
      },
      registerLink: (link) => self.links.add(link),
      logLimited: (key, level, msg, fields) => self.logLimited(key, level, msg, fields),
      safeCall: (what, fn) => self.safeCall(what, fn),
    };
  }

  /** Binds every listen URL (a busy port is an Error naming it) and starts the liveness timer. */
  static async listen(opts: PeerTransportOptions): Promise<PeerTransport> {
    const t = new PeerTransport(opts);
    try {
      await t.start();
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  /** The URLs actually bound (port 0 replaced by the chosen port). */
  get listenUrls(): URL[] {
    return this.bound.map((u) => new URL(u.href));
  }

  private async start(): Promise<void> {
    await fs.mkdir(this.opts.snapshotDir, { recursive: true });
    await this.removeStaleTempFiles();
    if (this.opts.listeners) {
      for (const l of this.opts.listeners) {
        parsePeerUrl(l.url);
        this.servers.push(l.server);
        l.server.on('error', (err) => this.opts.log('error', `peer listener on ${l.url.href} failed: ${err.message}`));
        const bound = new URL(l.url.href);
        bound.port = String(l.port);
        this.bound.push(bound);
        const accept = this.sockets.accepting(l.url, (s) => this.accept(s));
        l.serve((s) => {
          s.setNoDelay(true);
          accept(s);
        });
        this.opts.log('info', `listening for peers on ${bound.href}`, { memberId: hex(this.opts.selfId), clusterId: hex(this.opts.clusterId) });
      }
    }
    for (const raw of this.opts.listeners ? [] : this.opts.listenUrls) {
      const url = parsePeerUrl(raw);
      const server = this.sockets.createServer(url, (s) => this.accept(s));
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void => {
          const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EADDRNOTAVAIL' ? 'address not available on this host' : err.code === 'EACCES' ? 'permission denied' : err.message;
          reject(new Error(`cannot listen for peers on ${url.href}: ${why}`));
        };
        server.once('error', onError);
        server.listen({ host: hostOf(url), port: portOf(url) }, () => {
          server.off('error', onError);
          resolve();
        });
      });
      server.on('error', (err) => this.opts.log('error', `peer listener on ${url.href} failed: ${err.message}`));
      const addr = server.address();
      const bound = new URL(url.href);
      if (addr !== null && typeof addr === 'object') bound.port = String(addr.port);
      this.bound.push(bound);
      this.opts.log('info', `listening for peers on ${bound.href}`, { memberId: hex(this.opts.selfId), clusterId: hex(this.opts.clusterId) });
    }
    const idle = this.resolved.idleTimeoutMs;
    this.livenessTimer = setInterval(() => this.checkLiveness(), Math.max(25, Math.floor(idle / 4)));
    this.livenessTimer.unref();
  }

  /** Temp files of receptions cut short by a crash. */
  private async removeStaleTempFiles(): Promise<void> {
    const names = await fs.readdir(this.opts.snapshotDir);
    for (const n of names) {
      if (n.startsWith(TEMP_PREFIX) && n.endsWith(TEMP_SUFFIX)) await fs.rm(`${this.opts.snapshotDir}/${n}`, { force: true });
    }
  }

  // ---- peers --------------------------------------------------------------------------------

  /** Adds (or updates) a peer; the member with the smaller id dials at once, the other probes later. Throws on a bad URL. */
  addPeer(id: NodeId, urls: string[]): void {
    if (id === this.opts.selfId) throw new Error(`peer transport: cannot add this member (${hex(id)}) as its own peer`);
    if (id === 0n) throw new Error('peer transport: peer id must not be 0');
    const parsed = urls.map((u) => parsePeerUrl(u));
    if (this.closed) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      existing.setUrls(parsed);
      return;
    }
    const peer = new Peer(this.ctx, id, parsed);
    this.peers.set(id, peer);
    peer.dial();
  }

  /** New URLs for a peer (used from its next dial on; the live connection stays). */
  updatePeer(id: NodeId, urls: string[]): void {
    this.addPeer(id, urls);
  }

  /** Forgets a peer: closes its connections, drops its queue, fails its requests (PEER_REMOVED). */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    this.track(peer.shutdown('PEER_REMOVED', 'peer removed'));
  }

  isConnected(id: NodeId): boolean {
    return this.peers.get(id)?.link !== undefined;
  }

  connectedSince(id: NodeId): number | undefined {
    return this.peers.get(id)?.connectedSince;
  }

  stats(): Map<NodeId, PeerStats> {
    const out = new Map<NodeId, PeerStats>();
    for (const [id, p] of this.peers) out.set(id, p.stats());
    return out;
  }

  // ---- sending ------------------------------------------------------------------------------

  /**
   * Queues each message for its peer (msg.to); everything given within one event-loop turn goes to
   * a peer's socket in one write at the end of the turn. A message that cannot go (no connection,
   * queue full, larger than a frame) is dropped and onUnreachable(to) is called once per peer, after
   * this turn. Throws CodecError (before queueing any of msgs) only for a malformed Message.
   */
  send(msgs: Message[]): void {
    if (this.closed) return;
    const sizes: number[] = new Array(msgs.length);
    for (let i = 0; i < msgs.length; i++) sizes[i] = encodedMessageSize(msgs[i]);
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      const to = m.to;
      if (m.type === MessageType.MsgSnap) {
        this.opts.log('error', `MsgSnap to ${hex(to)} given to send(): snapshots go through sendSnapshot(); reported as failed`);
        this.ctx.defer(() => this.safeCall('onSnapshotStatus', () => this.opts.onSnapshotStatus(to, false)));
        continue;
      }
      const peer = this.peers.get(to);
      if (peer === undefined) {
        this.logLimited(`unknown-peer:${to}`, to === this.opts.selfId ? 'warn' : 'debug', `dropped a message to ${to === this.opts.selfId ? 'this member itself' : `unknown peer ${hex(to)}`}`, { type: m.type });
        if (to !== this.opts.selfId) this.ctx.reportUnreachable(to);
        continue;
      }
      const r = peer.enqueueMessage(m, sizes[i]);
      if (r === 'queued') continue;
      peer.droppedMessages++;
      if (r === 'too-large') this.opts.log('error', `dropped a message of ${sizes[i]} bytes to peer ${hex(to)}: larger than limits.maxFrameBytes (${this.resolved.limits.maxFrameBytes})`, { type: m.type });
      else if (r === 'queue-full') this.logLimited(`queue-full:${to}`, 'warn', `output queue to peer ${hex(to)} is full: dropping messages`, { queuedMessages: peer.queuedMessageCount, queuedBytes: peer.queuedByteCount });
      this.ctx.reportUnreachable(to);
    }
  }

  /**
   * Streams file to msg.to beside the MsgSnap, on a connection of its own. At most one per peer at a
   * time (a second one fails at once). The outcome goes to onSnapshotStatus(to, ok), never inside
   * this call. The file stays the caller's.
   */
  sendSnapshot(msg: Message, file: string): void {
    if (this.closed) return;
    const to = msg.to;
    const failNow = (why: string): void => {
      this.opts.log('warn', `cannot send snapshot to peer ${hex(to)}: ${why}`);
      this.ctx.defer(() => this.safeCall('onSnapshotStatus', () => this.opts.onSnapshotStatus(to, false)));
    };
    if (msg.type !== MessageType.MsgSnap || msg.snapshot === undefined) return failNow(`message type ${msg.type} is not a MsgSnap with metadata`);
    try {
      if (encodedMessageSize(msg) + 8 > this.resolved.limits.maxFrameBytes) return failNow('the MsgSnap is larger than limits.maxFrameBytes');
    } catch (err) {
      if (err instanceof CodecError) return failNow(`malformed MsgSnap: ${err.message}`);
      throw err;
    }
    const peer = this.peers.get(to);
    if (peer === undefined) return failNow('unknown peer');
    if (peer.snapshotOut !== undefined) return failNow('a snapshot to this peer is already being sent');
    startSnapshotSend(this.ctx, peer, msg, file);
  }

  /**
   * Sends a request on the stream connection; resolves with the peer's answer. Rejects with
   * TransportError (NOT_CONNECTED, TIMEOUT, TOO_MANY_REQUESTS, QUEUE_FULL, TOO_LARGE,
   * CONNECTION_LOST, PEER_REMOVED, CLOSED) or RemoteError (the peer's handler failed).
   */
  request(to: NodeId, kind: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new TransportError('CLOSED', 'peer transport closed'));
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return Promise.reject(new RangeError(`request timeout must be > 0, got ${timeoutMs}`));
    const peer = this.peers.get(to);
    if (peer === undefined) return Promise.reject(new TransportError('NOT_CONNECTED', `unknown peer ${hex(to)}`));
    return peer.request(kind, body, timeoutMs);
  }

  // ---- accepting ----------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.closed || this.pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      if (!this.closed) this.logLimited('handshake-flood', 'warn', `refusing peer connections: ${this.pendingHandshakes} handshakes already pending`);
      socket.destroy();
      return;
    }
    this.accepted.add(socket);
    socket.once('close', () => this.accepted.delete(socket));
    socket.on('error', () => {}); // errors end in 'close'; a link logs its own
    socket.setNoDelay(true);
    this.pendingHandshakes++;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const timer = setTimeout(() => socket.destroy(), this.resolved.dialTimeoutMs);
    readHello(socket).then(
      ({ head, rest }) => {
        clearTimeout(timer);
        this.pendingHandshakes--;
        this.onHello(socket, remote, head, rest);
      },
      (err: Error) => {
        clearTimeout(timer);
        this.pendingHandshakes--;
        socket.destroy();
        this.logLimited(`handshake:${remote}`, 'debug', `peer connection from ${remote} ended before its handshake: ${err.message}`);
      },
    );
  }

  private onHello(socket: net.Socket, remote: string, head: Buffer, rest: Buffer): void {
    if (this.closed) return this.refuse(socket, remote, HandshakeStatus.CLOSING, 'member shutting down', 'debug');
    const hello = parseHello(head);
    if (typeof hello === 'string') return this.refuse(socket, remote, HandshakeStatus.BAD_PROTOCOL, hello, 'warn');
    // Not judged: a joining member knows neither the cluster id nor any member id yet.
    if (hello.kind === ConnectionKind.MEMBERS) return this.answerMembers(socket, remote);
    const verdict = this.judge(hello);
    if (verdict !== undefined) return this.refuse(socket, remote, verdict.status, verdict.reason, verdict.level, hello);
    const peer = this.peers.get(hello.from)!;
    if (hello.kind === ConnectionKind.PROBE) {
      // Judged and found well: nothing more to say on this connection.
      socket.end(encodeReply(HandshakeStatus.OK));
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
      return;
    }
    socket.write(encodeReply(HandshakeStatus.OK));
    const { maxFrameBytes, writeHighWaterBytes } = this.resolved.limits;
    const kind = hello.kind as ConnectionKind;
    const counters = kind === ConnectionKind.STREAM ? peer.counters : peer.snapshotCounters;
    const link = new Link(socket, rest, { peerId: peer.id, kind, maxFrameBytes, writeHighWaterBytes, counters, log: this.opts.log });
    if (hello.kind === ConnectionKind.STREAM) peer.attach(link, `accepted from ${remote}`);
    else new SnapshotReceive(this.ctx, peer, link, this.opts.snapshotDir);
  }

  /**
   * A MEMBERS query: ok, one MEMBERS frame with membersInfo()'s bytes, end. Without membersInfo it is
   * refused (bad protocol); a list over MAX_MEMBERS_BYTES, or a membersInfo that throws, is logged
   * at error and the connection closed without a reply.
   */
  private answerMembers(socket: net.Socket, remote: string): void {
    if (this.opts.membersInfo === undefined) {
      return this.refuse(socket, remote, HandshakeStatus.BAD_PROTOCOL, 'this member does not answer members queries', 'warn');
    }
    let payload: Buffer;
    try {
      const info: unknown = this.opts.membersInfo();
      if (!(info instanceof Uint8Array)) throw new Error('it returned no Buffer');
      payload = Buffer.isBuffer(info) ? info : Buffer.from(info.buffer, info.byteOffset, info.byteLength);
    } catch (err) {
      this.logLimited(`members-info:${err instanceof Error ? err.message : String(err)}`, 'error', `cannot answer a members query from ${remote}: the membersInfo callback failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, { remote });
      socket.destroy();
      return;
    }
    if (payload.length > MAX_MEMBERS_BYTES) {
      this.logLimited('members-too-large', 'error', `cannot answer a members query from ${remote}: the members list is ${payload.length} bytes, more than the limit of ${MAX_MEMBERS_BYTES}; closed without an answer`, { remote, bytes: payload.length });
      socket.destroy();
      return;
    }
    socket.end(Buffer.concat([encodeReply(HandshakeStatus.OK), encodeFrame(FrameType.MEMBERS, payload)]));
    socket.resume(); // whatever the dialer sends is discarded; its close ends ours
    setTimeout(() => socket.destroy(), Math.max(REFUSAL_LINGER_MS, this.resolved.dialTimeoutMs)).unref();
    this.opts.log('debug', `answered a members query from ${remote}`, { remote, bytes: payload.length });
  }

  /** Why a hello is refused, or undefined to accept. Never merges two clusters. */
  private judge(h: Hello): { status: HandshakeStatus; reason: string; level: LogLevel } | undefined {
    const self = this.opts.selfId;
    if (h.clusterId !== this.opts.clusterId) {
      return { status: HandshakeStatus.CLUSTER_MISMATCH, reason: `cluster ID mismatch: local ${hex(this.opts.clusterId)}, remote ${hex(h.clusterId)}`, level: 'error' };
    }
    if (h.to !== self) return { status: HandshakeStatus.WRONG_MEMBER, reason: `member ID mismatch: this member is ${hex(self)}, the dialer asked for ${hex(h.to)}`, level: 'error' };
    if (this.opts.isRemoved?.(h.from) === true) return { status: HandshakeStatus.MEMBER_REMOVED, reason: 'member removed', level: 'warn' };
    const peer = this.peers.get(h.from);
    if (peer === undefined) return { status: HandshakeStatus.UNKNOWN_MEMBER, reason: `unknown member ${hex(h.from)}`, level: 'warn' };
    if (h.kind === ConnectionKind.STREAM && h.from > self) {
      return { status: HandshakeStatus.WRONG_DIALER, reason: `member ${hex(h.from)} must not dial ${hex(self)}: the member with the smaller ID dials`, level: 'error' };
    }
    if (h.kind === ConnectionKind.SNAPSHOT && peer.snapshotIn !== undefined) {
      return { status: HandshakeStatus.BUSY, reason: 'a snapshot from this member is already being received', level: 'warn' };
    }
    return undefined;
  }

  private refuse(socket: net.Socket, remote: string, status: HandshakeStatus, reason: string, level: LogLevel, hello?: Hello): void {
    const fields: Record<string, unknown> = { remote, status };
    if (hello !== undefined) Object.assign(fields, { from: hex(hello.from), to: hex(hello.to), localClusterId: hex(this.opts.clusterId), remoteClusterId: hex(hello.clusterId) });
    this.logLimited(`refuse:${remote.replace(/:\d+$/, '')}:${reason}`, level, `refused a peer connection from ${remote}: ${reason}`, fields);
    socket.end(encodeReply(status, reason));
    setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
  }

  // ---- housekeeping -------------------------------------------------------------------------

  private checkLiveness(): void {
    const now = Date.now();
    const idle = this.resolved.idleTimeoutMs;
    for (const link of this.links) {
      if (link.closed) this.links.delete(link);
      else link.tick(now, idle, Math.floor(idle / 4));
    }
  }

  private scheduleTurnEnd(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    process.nextTick(() => this.endTurn());
  }

  /** Once per turn with work: one write per dirty peer, then the callbacks the turn produced. */
  private endTurn(): void {
    this.turnScheduled = false;
    if (this.dirty.size > 0) {
      const dirty = this.dirty;
      this.dirty = new Set();
      for (const id of dirty) this.peers.get(id)?.flush();
    }
    if (this.closed) {
      this.unreachable.clear();
      this.deferred = [];
      return;
    }
    if (this.unreachable.size > 0) {
      const ids = this.unreachable;
      this.unreachable = new Set();
      for (const id of ids) this.safeCall('onUnreachable', () => this.opts.onUnreachable(id));
    }
    if (this.deferred.length > 0) {
      const fns = this.deferred;
      this.deferred = [];
      for (const fn of fns) fn();
    }
  }

  private safeCall(what: string, fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.opts.log('error', `peer transport: the ${what} callback threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  private logLimited(key: string, level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.logTimes.get(key);
    if (last !== undefined && now - last < LOG_REPEAT_MS) {
      this.opts.log('debug', msg, fields);
      return;
    }
    if (last === undefined && this.logTimes.size >= LOG_LIMITER_KEYS) {
      const oldest = this.logTimes.keys().next().value;
      if (oldest !== undefined) this.logTimes.delete(oldest);
    }
    this.logTimes.delete(key);
    this.logTimes.set(key, now);
    this.opts.log(level, msg, fields);
  }

  private track(p: Promise<void>): void {
    this.cleanups.add(p);
    p.finally(() => this.cleanups.delete(p)).catch(() => {});
  }

  /** Stops listening, closes every connection, fails pending requests (CLOSED). No callback runs after it. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    if (this.livenessTimer !== undefined) clearInterval(this.livenessTimer);
    const serversClosed = this.servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())));
    for (const peer of this.peers.values()) this.track(peer.shutdown('CLOSED', 'transport closed'));
    this.peers.clear();
    for (const link of this.links) link.close('transport closed', 'debug');
    this.links.clear();
    for (const s of this.accepted) s.destroy();
    this.accepted.clear();
    this.closing = Promise.all([...serversClosed, ...this.cleanups]).then(() => undefined);
    return this.closing;
  }
}
