// One remote member as the transport sees it: its URLs, its stream link (dialed by the member with
// the smaller id, accepted by the other), the bounded queue of output waiting for that link's
// socket, requests in flight both ways, and the redial loop.

import { MessageType, type Message, type NodeId } from '../core/types';
import type { TransportContext } from './context';
import { ProtocolError, RemoteError, TransportError, type TransportErrorCode } from './errors';
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from './framing';
import { ConnectionKind, dialPeer, encodeHello, HandshakeRefused, HandshakeStatus, hex } from './handshake';
import { Link, type LinkCounters } from './link';
import { decodeMessages, writeMessage } from './message-codec';

export interface PeerStats {
  /** Bytes handed to this peer's sockets (stream and snapshot links). */
  sentBytes: number;
  receivedBytes: number;
  /** Writes to the stream socket (one per event-loop turn with output, when the peer keeps up). */
  writes: number;
  /** Failed dials and handshakes. */
  sentFailures: number;
  /** Messages dropped: not connected, queue full, too large, or queued when the link was lost. */
  droppedMessages: number;
  connected: boolean;
  /** Stream connections made after the first one. */
  reconnects: number;
  /** Round trip of the last PING on the stream link, ms. */
  rttMs: number | undefined;
  /** Output waiting in the queue (not yet handed to the socket). */
  queuedMessages: number;
  queuedBytes: number;
}

export type EnqueueResult = 'queued' | 'not-connected' | 'too-large' | 'queue-full';

interface PendingRequest {
  resolve(b: Buffer): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const MESSAGES_FRAME_OVERHEAD = FRAME_HEADER_BYTES + 4;
/** A write is at least this big when there is that much queued (a tiny high-water mark still batches). */
const MIN_WRITE_BYTES = 64 * 1024;
const REQUEST_HEADER_BYTES = 4 + 2;
const RESPONSE_HEADER_BYTES = 4 + 1;
export const MAX_REQUEST_KIND_BYTES = 1024;

export class Peer {
  readonly id: NodeId;
  urls: URL[];
  /** The member with the smaller id dials; the other only accepts. */
  readonly dialer: boolean;
  /** The stream link's counters (writes: one per flush). */
  readonly counters: LinkCounters = { sentBytes: 0, receivedBytes: 0, writes: 0 };
  /** Snapshot links' counters (their bytes count in stats too; their writes do not). */
  readonly snapshotCounters: LinkCounters = { sentBytes: 0, receivedBytes: 0, writes: 0 };
  sentFailures = 0;
  droppedMessages = 0;
  private connections = 0;
  link: Link | undefined;
  connectedSince: number | undefined;
  removed = false;
  /** The snapshot being sent to / received from this peer (at most one each way). */
  snapshotOut: { abort(reason: string): void } | undefined;
  snapshotIn: { abort(reason: string): Promise<void> } | undefined;

  // Output waiting for the stream socket: raft messages (encoded at flush, sizes known) and
  // pre-encoded frames (requests, responses). Both count against the queue's byte limit.
  private msgs: Message[] = [];
  private msgSizes: number[] = [];
  private frames: Buffer[] = [];
  private queuedBytes = 0;

  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId = 1;

  private dialing = false;
  private abortDial: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private urlIndex = 0;

  constructor(
    private readonly ctx: TransportContext,
    id: NodeId,
    urls: URL[],
  ) {
    this.id = id;
    this.urls = urls;
    this.dialer = ctx.selfId < id;
  }

  stats(): PeerStats {
    return {
      sentBytes: this.counters.sentBytes + this.snapshotCounters.sentBytes,
      receivedBytes: this.counters.receivedBytes + this.snapshotCounters.receivedBytes,
      writes: this.counters.writes,
      sentFailures: this.sentFailures,
      droppedMessages: this.droppedMessages,
      connected: this.link !== undefined,
      reconnects: Math.max(0, this.connections - 1),
      rttMs: this.link?.rttMs,
      queuedMessages: this.msgs.length,
      queuedBytes: this.queuedBytes,
    };
  }

  get queuedMessageCount(): number {
    return this.msgs.length;
  }

  get queuedByteCount(): number {
    return this.queuedBytes;
  }

  // ---- output -------------------------------------------------------------------------------

  /** Queues m (size = its encoded size) for the next flush, or says why it cannot. */
  enqueueMessage(m: Message, size: number): EnqueueResult {
    if (this.link === undefined) return 'not-connected';
    const { maxFrameBytes, queueMessages, queueBytes } = this.ctx.opts.limits;
    if (4 + size > maxFrameBytes) return 'too-large';
    if (this.msgs.length >= queueMessages || this.queuedBytes + size > queueBytes) return 'queue-full';
    this.msgs.push(m);
    this.msgSizes.push(size);
    this.queuedBytes += size;
    this.ctx.markDirty(this.id);
    return 'queued';
  }

  private enqueueFrame(frame: Buffer): boolean {
    if (this.link === undefined || this.queuedBytes + frame.length > this.ctx.opts.limits.queueBytes) return false;
    this.frames.push(frame);
    this.queuedBytes += frame.length;
    this.ctx.markDirty(this.id);
    return true;
  }

  /**
   * Writes what is queued to the stream socket in one write, unless the socket already holds more
   * than writeHighWaterBytes (then the queue waits: the write callback of the data ahead of it calls
   * flush again). One write carries at most max(writeHighWaterBytes, 64 KiB) (or one item).
   */
  flush(): void {
    const link = this.link;
    if (link === undefined || link.closed || (this.msgs.length === 0 && this.frames.length === 0)) return;
    const { writeHighWaterBytes, maxFrameBytes } = this.ctx.opts.limits;
    if (link.pendingWriteBytes > writeHighWaterBytes) return;
    const budget = Math.max(writeHighWaterBytes, MIN_WRITE_BYTES);

    let size = 0;
    let nFrames = 0;
    while (nFrames < this.frames.length && (size === 0 || size + this.frames[nFrames].length <= budget)) size += this.frames[nFrames++].length;
    // Messages go in MESSAGES frames of at most maxFrameBytes payload each.
    const batchCounts: number[] = [];
    let nMsgs = 0;
    let payload = -1;
    while (nMsgs < this.msgs.length) {
      const s = this.msgSizes[nMsgs];
      const newFrame = payload < 0 || payload + s > maxFrameBytes;
      const add = s + (newFrame ? MESSAGES_FRAME_OVERHEAD : 0);
      if (size > 0 && size + add > budget) break;
      if (newFrame) {
        batchCounts.push(0);
        payload = 4;
      }
      payload += s;
      size += add;
      batchCounts[batchCounts.length - 1]++;
      nMsgs++;
    }

    const out = Buffer.allocUnsafe(size);
    let pos = 0;
    for (let i = 0; i < nFrames; i++) {
      out.set(this.frames[i], pos);
      pos += this.frames[i].length;
    }
    let m = 0;
    for (const count of batchCounts) {
      let p = 4;
      for (let i = 0; i < count; i++) p += this.msgSizes[m + i];
      pos = writeFrameHeader(out, pos, FrameType.MESSAGES, p);
      out.writeUInt32BE(count, pos);
      pos += 4;
      for (let i = 0; i < count; i++, m++) pos = writeMessage(out, pos, this.msgs[m]);
    }

    let taken = 0;
    for (let i = 0; i < nFrames; i++) taken += this.frames[i].length;
    for (let i = 0; i < nMsgs; i++) taken += this.msgSizes[i];
    this.queuedBytes -= taken;
    if (nFrames === this.frames.length) this.frames = [];
    else this.frames.splice(0, nFrames);
    if (nMsgs === this.msgs.length) {
      this.msgs = [];
      this.msgSizes = [];
    } else {
      this.msgs.splice(0, nMsgs);
      this.msgSizes.splice(0, nMsgs);
    }
    link.write(out);
  }

  private dropQueue(): void {
    if (this.msgs.length > 0) {
      this.droppedMessages += this.msgs.length;
      this.ctx.reportUnreachable(this.id);
    }
    this.msgs = [];
    this.msgSizes = [];
    this.frames = [];
    this.queuedBytes = 0;
  }

  // ---- the stream link ----------------------------------------------------------------------

  /** A stream link to this peer is up (dialed or accepted); a previous one is replaced. */
  attach(link: Link, how: string): void {
    if (this.link !== undefined) this.link.close('replaced by a new connection from the peer', 'info');
    this.link = link;
    this.connectedSince = Date.now();
    this.connections++;
    link.onFrame = (type, payload) => this.onStreamFrame(link, type, payload);
    link.onClose = (reason) => this.detach(link, reason);
    // A write reached the kernel: if output waits and the socket has room again, go on.
    link.onWritten = () => {
      if (this.msgs.length > 0 || this.frames.length > 0) this.flush();
    };
    this.ctx.registerLink(link);
    this.ctx.log('info', `connected to peer ${hex(this.id)} (${how})`, { peer: hex(this.id), reconnects: this.connections - 1 });
  }

  private detach(link: Link, reason: string): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.connectedSince = undefined;
    this.dropQueue();
    this.rejectPending('CONNECTION_LOST', `connection to peer ${hex(this.id)} lost: ${reason}`);
    this.attempts = 0;
    this.scheduleDial();
  }

  private onStreamFrame(link: Link, type: number, payload: Buffer): void {
    switch (type) {
      case FrameType.MESSAGES:
        this.onMessagesFrame(payload);
        return;
      case FrameType.REQUEST:
        this.onRequestFrame(link, payload);
        return;
      case FrameType.RESPONSE:
        this.onResponseFrame(payload);
        return;
      default:
        throw new ProtocolError(`unexpected frame type ${type} on a stream connection`);
    }
  }

  private onMessagesFrame(payload: Buffer): void {
    let msgs = decodeMessages(payload);
    // Raft never addresses another member through us, and snapshots come on their own connection
    // with their data: anything else is dropped rather than handed to raft.
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (m.to !== this.ctx.selfId || m.type === MessageType.MsgSnap) {
        this.ctx.logLimited(`misaddressed:${this.id}`, 'warn', `dropped a message from peer ${hex(this.id)}: ${m.to !== this.ctx.selfId ? `addressed to ${hex(m.to)}, not this member` : 'MsgSnap without its snapshot connection'}`, { peer: hex(this.id), type: m.type });
        msgs = msgs.filter((x) => x.to === this.ctx.selfId && x.type !== MessageType.MsgSnap);
        break;
      }
    }
    if (msgs.length === 0) return;
    this.ctx.safeCall('onMessages', () => this.ctx.callbacks.onMessages(this.id, msgs));
  }

  // ---- requests -----------------------------------------------------------------------------

  request(kind: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
    const fail = (code: TransportErrorCode, msg: string): Promise<Buffer> => Promise.reject(new TransportError(code, msg));
    const { maxInflightRequests, maxFrameBytes } = this.ctx.opts.limits;
    if (this.link === undefined) return fail('NOT_CONNECTED', `not connected to peer ${hex(this.id)}`);
    if (this.pending.size >= maxInflightRequests) return fail('TOO_MANY_REQUESTS', `${this.pending.size} requests to peer ${hex(this.id)} already in flight (limit ${maxInflightRequests})`);
    const kindBytes = Buffer.from(kind, 'utf8');
    if (kindBytes.length > MAX_REQUEST_KIND_BYTES) return fail('TOO_LARGE', `request kind longer than ${MAX_REQUEST_KIND_BYTES} bytes`);
    const payloadBytes = REQUEST_HEADER_BYTES + kindBytes.length + body.length;
    if (payloadBytes > maxFrameBytes) return fail('TOO_LARGE', `request of ${payloadBytes} bytes exceeds maxFrameBytes ${maxFrameBytes}`);
    let id = this.nextRequestId;
    while (this.pending.has(id)) id = (id + 1) >>> 0;
    this.nextRequestId = (id + 1) >>> 0;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
    let pos = writeFrameHeader(frame, 0, FrameType.REQUEST, payloadBytes);
    frame.writeUInt32BE(id, pos);
    frame.writeUInt16BE(kindBytes.length, pos + 4);
    pos += REQUEST_HEADER_BYTES;
    kindBytes.copy(frame, pos);
    body.copy(frame, pos + kindBytes.length);
    if (!this.enqueueFrame(frame)) return fail('QUEUE_FULL', `output queue to peer ${hex(this.id)} is full`);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TransportError('TIMEOUT', `request ${JSON.stringify(kind)} to peer ${hex(this.id)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  private onResponseFrame(payload: Buffer): void {
    if (payload.length < RESPONSE_HEADER_BYTES) throw new ProtocolError(`RESPONSE of ${payload.length} bytes`);
    const id = payload.readUInt32BE(0);
    const status = payload[4];
    if (status > 1) throw new ProtocolError(`RESPONSE status ${status}`);
    const p = this.pending.get(id);
    if (p === undefined) return; // timed out already
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (status === 0) p.resolve(Buffer.from(payload.subarray(RESPONSE_HEADER_BYTES)));
    else p.reject(new RemoteError(payload.toString('utf8', RESPONSE_HEADER_BYTES)));
  }

  private onRequestFrame(link: Link, payload: Buffer): void {
    if (payload.length < REQUEST_HEADER_BYTES) throw new ProtocolError(`REQUEST of ${payload.length} bytes`);
    const id = payload.readUInt32BE(0);
    const kindLen = payload.readUInt16BE(4);
    if (REQUEST_HEADER_BYTES + kindLen > payload.length) throw new ProtocolError('REQUEST kind runs past the frame');
    const kind = payload.toString('utf8', REQUEST_HEADER_BYTES, REQUEST_HEADER_BYTES + kindLen);
    const body = Buffer.from(payload.subarray(REQUEST_HEADER_BYTES + kindLen));
    const max = this.ctx.opts.limits.maxInflightRequests;
    // Reading stops while the handlers are behind, so a peer cannot pile up work here (the requests
    // already in the socket read being parsed still run: at most one read's worth over the limit).
    if (++link.inflightRequests >= max) link.pauseReading();
    let answer: Promise<Buffer>;
    try {
      answer = Promise.resolve(this.ctx.callbacks.onRequest(this.id, kind, body));
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (res) => this.respond(link, id, res, undefined),
      (err: unknown) => this.respond(link, id, undefined, err instanceof Error ? err.message : String(err)),
    );
  }

  private respond(link: Link, id: number, res: unknown, error: string | undefined): void {
    if (--link.inflightRequests < this.ctx.opts.limits.maxInflightRequests) link.resumeReading();
    if (this.link !== link || link.closed) return; // the asker's connection is gone; so is its wait
    let status = 0;
    let body: Buffer;
    if (error !== undefined) {
      status = 1;
      body = Buffer.from(error, 'utf8');
    } else if (!Buffer.isBuffer(res)) {
      status = 1;
      body = Buffer.from('request handler returned no Buffer', 'utf8');
    } else {
      body = res;
    }
    if (RESPONSE_HEADER_BYTES + body.length > this.ctx.opts.limits.maxFrameBytes) {
      status = 1;
      body = Buffer.from(`response of ${body.length} bytes exceeds maxFrameBytes`, 'utf8');
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + RESPONSE_HEADER_BYTES + body.length);
    const pos = writeFrameHeader(frame, 0, FrameType.RESPONSE, RESPONSE_HEADER_BYTES + body.length);
    frame.writeUInt32BE(id, pos);
    frame[pos + 4] = status;
    body.copy(frame, pos + RESPONSE_HEADER_BYTES);
    if (!this.enqueueFrame(frame)) this.ctx.logLimited(`response-dropped:${this.id}`, 'warn', `dropped a response to peer ${hex(this.id)}: output queue full`);
  }

  private rejectPending(code: TransportErrorCode, msg: string): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new TransportError(code, msg));
    }
  }

  // ---- dialing ------------------------------------------------------------------------------

  /** Dials now if this side dials and nothing is connected or under way; the other side schedules a probe. */
  dial(): void {
    if (this.removed || this.ctx.isClosed() || this.link !== undefined || this.dialing) return;
    if (!this.dialer) return this.scheduleDial();
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.urls.length === 0) {
      this.ctx.logLimited(`no-urls:${this.id}`, 'warn', `peer ${hex(this.id)} has no URLs to dial`);
      return;
    }
    const url = this.urls[this.urlIndex % this.urls.length];
    this.dialing = true;
    const hello = encodeHello(ConnectionKind.STREAM, this.ctx.clusterId, this.ctx.selfId, this.id);
    dialPeer(this.ctx.sockets, url, hello, this.ctx.opts.dialTimeoutMs, (abort) => (this.abortDial = abort)).then(
      ({ socket, rest }) => {
        this.dialing = false;
        this.abortDial = undefined;
        if (this.removed || this.ctx.isClosed() || this.link !== undefined) {
          socket.destroy();
          return;
        }
        this.attempts = 0;
        const { maxFrameBytes, writeHighWaterBytes } = this.ctx.opts.limits;
        const link = new Link(socket, rest, { peerId: this.id, kind: ConnectionKind.STREAM, maxFrameBytes, writeHighWaterBytes, counters: this.counters, log: this.ctx.log });
        this.attach(link, `dialed ${url.host}`);
      },
      (err: Error) => {
        this.dialing = false;
        this.abortDial = undefined;
        if (this.removed || this.ctx.isClosed()) return;
        this.sentFailures++;
        this.urlIndex++;
        this.logDialFailure(url, err);
        this.checkRemoved(err);
        this.scheduleDial();
      },
    );
  }

  /**
   * The member with the larger id never dials a stream; while none has come for a while it checks
   * the peer with a probe hello, which the peer judges (cluster, member, known) and closes. A peer
   * that is down is only a debug line here (its dialer side warns); a refusal is logged as a
   * dialer's is, so a member started on another cluster's data dir is named on both sides.
   */
  private probe(): void {
    if (this.dialer || this.removed || this.ctx.isClosed() || this.link !== undefined || this.dialing || this.urls.length === 0) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    this.dialing = true;
    const hello = encodeHello(ConnectionKind.PROBE, this.ctx.clusterId, this.ctx.selfId, this.id);
    const settle = (): boolean => {
      this.dialing = false;
      this.abortDial = undefined;
      return !this.removed && !this.ctx.isClosed();
    };
    dialPeer(this.ctx.sockets, url, hello, this.ctx.opts.dialTimeoutMs, (abort) => (this.abortDial = abort)).then(
      ({ socket }) => {
        socket.destroy();
        if (settle()) this.scheduleDial();
      },
      (err: Error) => {
        if (!settle()) return;
        this.urlIndex++;
        if (err instanceof HandshakeRefused) {
          this.logDialFailure(url, err);
          this.checkRemoved(err);
        } else this.ctx.logLimited(`probe:${this.id}:${err.message}`, 'debug', `cannot probe peer ${hex(this.id)} at ${url.host}: ${err.message}`, { peer: hex(this.id), url: url.href });
        this.scheduleDial();
      },
    );
  }

  /** A refusal with "member removed": this member was removed from the cluster (onRemoved, once per transport). */
  checkRemoved(err: unknown): void {
    if (err instanceof HandshakeRefused && err.status === HandshakeStatus.MEMBER_REMOVED) this.ctx.reportRemoved(this.id);
  }

  private logDialFailure(url: URL, err: Error): void {
    const fields = { peer: hex(this.id), url: url.href, localClusterId: hex(this.ctx.clusterId) };
    if (err instanceof HandshakeRefused) {
      const level = err.status === HandshakeStatus.CLOSING ? 'info' : 'error';
      const ours = err.status === HandshakeStatus.CLUSTER_MISMATCH ? ` (this member's cluster ID is ${hex(this.ctx.clusterId)})` : '';
      this.ctx.logLimited(`refused:${this.id}:${err.reason}`, level, `peer ${hex(this.id)} at ${url.host} refused the connection: ${err.reason}${ours}`, { ...fields, status: err.status });
    } else {
      this.ctx.logLimited(`dial:${this.id}:${err.message}`, 'warn', `cannot connect to peer ${hex(this.id)} at ${url.host}: ${err.message}`, fields);
    }
  }

  /**
   * Next dial after a backoff: backoffMin doubling to backoffMax, each wait jittered to [½, 1]. The
   * non-dialing side's next probe waits 2 × backoffMax (jittered): longer than the dialer's longest
   * backoff, so a peer that is up has dialed before it is probed.
   */
  private scheduleDial(): void {
    if (this.removed || this.ctx.isClosed() || this.retryTimer !== undefined) return;
    const { backoffMinMs, backoffMaxMs } = this.ctx.opts;
    const base = this.dialer ? Math.min(backoffMaxMs, backoffMinMs * 2 ** this.attempts) : 2 * backoffMaxMs;
    this.attempts = Math.min(this.attempts + 1, 30);
    const delay = base / 2 + (Math.random() * base) / 2;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.dialer) this.dial();
      else this.probe();
    }, delay);
    this.retryTimer.unref();
  }

  /** New URLs: used from the next dial on; a dialer that is not connected dials at once. */
  setUrls(urls: URL[]): void {
    if (urls.length === this.urls.length && urls.every((u, i) => u.href === this.urls[i].href)) return;
    this.urls = urls;
    this.urlIndex = 0;
    if (this.dialer && this.link === undefined && !this.dialing) {
      this.attempts = 0;
      this.dial();
    }
  }

  /** removePeer / close: stop dialing, close links, fail what waits. */
  shutdown(code: 'PEER_REMOVED' | 'CLOSED', why: string): Promise<void> {
    this.removed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.abortDial?.();
    this.rejectPending(code, `request to peer ${hex(this.id)} failed: ${why}`);
    this.msgs = [];
    this.msgSizes = [];
    this.frames = [];
    this.queuedBytes = 0;
    this.link?.close(why, 'info');
    this.snapshotOut?.abort(why);
    return this.snapshotIn?.abort(why) ?? Promise.resolve();
  }
}
