import type * as net from 'node:net';
import { HpackDecoder, HpackError } from './hpack';

// The server side of one HTTP/2 connection (RFC 9113), as much as gRPC uses: streams, flow control both
// ways, SETTINGS, PING, GOAWAY, RST_STREAM, HEADERS + CONTINUATION, padding. It replaces node's http2
// module + grpc-js on the hot path: frames are parsed straight off the socket, and everything a turn of
// the event loop produces (answers to many streams) leaves in one socket write.

const T_DATA = 0;
const T_HEADERS = 1;
const T_PRIORITY = 2;
const T_RST_STREAM = 3;
const T_SETTINGS = 4;
const T_PUSH_PROMISE = 5;
const T_PING = 6;
const T_GOAWAY = 7;
const T_WINDOW_UPDATE = 8;
const T_CONTINUATION = 9;

const F_END_STREAM = 0x1;
const F_ACK = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;

export const H2_NO_ERROR = 0;
const H2_PROTOCOL_ERROR = 1;
const H2_FLOW_CONTROL_ERROR = 3;
const H2_STREAM_CLOSED = 5;
const H2_FRAME_SIZE_ERROR = 6;
const H2_REFUSED_STREAM = 7;
const H2_CANCEL = 8;
const H2_COMPRESSION_ERROR = 9;
const H2_ENHANCE_YOUR_CALM = 0xb;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const DEFAULT_WINDOW = 65535;
/** Our default SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on a stream before we open it further. */
const STREAM_WINDOW = 1 << 20;
/** The connection's receive window, opened once at the start and topped up as data is read. */
const CONN_WINDOW = 1 << 24;
/** Frames we accept (SETTINGS_MAX_FRAME_SIZE left at its default). */
const MAX_FRAME = 16384;
/** Bytes a stream may hold unsent before write() says "wait for drain". */
export const STREAM_HIGH_WATER = 64 * 1024;
/**
 * Bytes handed to the socket and not yet taken by the kernel (socket.writableLength) past which this
 * connection stops reading until 'drain' (what grpc-go's controlbuf throttle does): a peer that sends but
 * never reads cannot make its answers (PING/SETTINGS ACKs, responses) pile up here. DATA stops being
 * sent too (the streams wait as for flow-control window), so responses cannot pile up either.
 */
const OUT_HIGH_WATER = 1 << 20;
/**
 * Control frames (ACKs, RST_STREAM, WINDOW_UPDATE) queued while the socket is congested, past which the
 * connection is closed: x/net/http2's maxQueuedControlFrames. The read pause above keeps far below it;
 * this is the backstop.
 */
const MAX_QUEUED_CONTROL = 10000;
/**
 * Frames handled per socket read before yielding to the event loop (setImmediate) with the socket
 * paused: one connection's burst of small frames (20k HEADERS + RST_STREAM in a few reads) cannot hold
 * the loop for long and starve the other connections. A 64 KB read of typical requests is ~300-600
 * frames, so ordinary traffic is handled in one go.
 */
const FRAMES_PER_TURN = 1000;
/**
 * Client resets of streams still being served (rapid reset, CVE-2023-44487): a token bucket of this
 * many, refilled at RESET_RATE per second (nghttp2's defaults for its rapid-reset mitigation); when it
 * runs out the connection is closed with GOAWAY ENHANCE_YOUR_CALM.
 */
const RESET_BURST = 1000;
const RESET_RATE = 33;
/** grpc-go's maxPingStrikes: the client's pings beyond the enforcement policy tolerated before GOAWAY. */
const MAX_PING_STRIKES = 2;
/** With no stream open (and PermitWithoutStream false) any ping within this of the last one is a strike (grpc-go). */
const PING_WITHOUT_STREAM_MS = 2 * 60 * 60 * 1000;
const TOO_MANY_PINGS = Buffer.from('too_many_pings');

/** What the gRPC layer gets from a stream. */
export interface StreamListener {
  /** A whole length-prefixed message and its flag byte (0 plain, 1 compressed; others are the listener's to refuse). */
  onMessage(payload: Buffer, flag: number): void;
  /** The client closed its side (END_STREAM). */
  onHalfClose(): void;
  /** The client reset the stream or the connection went away. */
  onCancel(): void;
  /** Unsent bytes fell below STREAM_HIGH_WATER. */
  onDrain(): void;
  /** A message longer than the connection's limit was announced (the stream is answered and closed here). */
  onTooLarge(length: number): void;
}

/** The request headers the gRPC layer needs. */
export interface RequestHeaders {
  path: string;
  contentType: string;
  encoding: string;
  /** etcd's "hasleader" metadata (clientv3.WithRequireLeader): answer only while a leader is known. */
  requireLeader: boolean;
  /** The grpc-timeout header as sent ('' when none): the call's deadline, parsed by the gRPC layer. */
  timeout: string;
  /**
   * The auth token (etcd's "token" metadata; "authorization" as the gateway forwards it; '' when none).
   * The first one counts, as etcd reads md[key][0]; its length is bounded by the header list limit.
   */
  token: string;
  /**
   * The request came through the JSON gateway (grpc-gateway's "grpcgateway-accept" metadata): etcd then
   * ignores the connection's client certificate for auth (the gateway dials with the server's own).
   */
  viaGateway: boolean;
}

/** What a connection allows a client: limits and keepalive settings (etcd's transport flags). */
export interface H2Options {
  /** A gRPC message longer than this is refused (--max-request-bytes + gRPC's overhead). */
  maxMessageBytes: number;
  /**
   * --max-concurrent-streams: announced as SETTINGS_MAX_CONCURRENT_STREAMS; a stream opened beyond it is
   * refused with RST_STREAM REFUSED_STREAM (as grpc-go). Default 2^32-1 (etcd's): unlimited, not announced.
   */
  maxConcurrentStreams?: number;
  /**
   * SETTINGS_MAX_HEADER_LIST_SIZE, announced. A request whose decoded headers exceed it is refused with
   * RST_STREAM FRAME_SIZE_ERROR (grpc-go); a header block whose encoded size passes twice the limit closes
   * the connection with GOAWAY PROTOCOL_ERROR (x/net/http2 since CVE-2023-45288). Default 1 MiB: etcd's
   * clients send well under 1 KB of headers (path, token, hasleader, timeout); grpc-go's 16 MiB would let
   * every connection hold 32 MiB of CONTINUATION frames.
   */
  maxHeaderListBytes?: number;
  /** --grpc-keepalive-min-time in ms: clients pinging more often earn strikes (default 5000). */
  keepaliveMinTimeMs?: number;
  /** The enforcement policy's PermitWithoutStream (etcd: false): pings with no stream open earn strikes. */
  keepalivePermitWithoutStream?: boolean;
  /** --grpc-keepalive-interval in ms: an idle connection is pinged after this (default 2 h; 0: default). */
  keepaliveIntervalMs?: number;
  /** --grpc-keepalive-timeout in ms: closed when the ping's answer (or anything) has not come by then (default 20 s). */
  keepaliveTimeoutMs?: number;
  /**
   * Bytes a stream may hold unsent once it is past STREAM_HIGH_WATER (its writer was told to wait for
   * 'drain'): a writer that goes on regardless gets its stream reset (RST_STREAM CANCEL, the call
   * cancelled). One message is always taken whole, however large. Default 16 MiB.
   */
  maxStreamQueuedBytes?: number;
  /**
   * Bytes all of a connection's streams may hold unsent together (what their flow-control windows do not
   * let out yet): a message that would take the connection past it resets its stream (RST_STREAM CANCEL).
   * Bounds a client that opens many streams and reads none. Default 64 MiB.
   */
  maxConnectionQueuedBytes?: number;
  /** Our SETTINGS_INITIAL_WINDOW_SIZE (grpc-go's InitialWindowSize). Default 1 MiB. */
  streamWindowBytes?: number;
}

export interface StreamAcceptor {
  onStream(stream: H2Stream, headers: RequestHeaders): void;
}

function frameHeader(len: number, type: number, flags: number, id: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return h;
}

export class H2Stream {
  listener: StreamListener | undefined;
  sendWindow: number;
  headersSent = false;
  localClosed = false;
  remoteClosed = false;
  /** Bytes queued and not yet handed to the socket (waiting for flow-control window). */
  pendingBytes = 0;
  private pending: Buffer[] = [];
  private pendingHead = 0;
  private pendingOffset = 0;
  private trailers: Buffer | undefined;
  private recvUnacked = 0;
  /** The reader asked the client to stop sending (holdWindow): no WINDOW_UPDATE for this stream until it lets go. */
  private windowHeld = false;
  // A message arriving in several DATA frames.
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private want = -1;

  constructor(
    readonly conn: H2Connection,
    readonly id: number,
  ) {
    this.sendWindow = conn.peerInitialWindow;
  }

  /** Sends the response headers (once), then the message, length-prefixed. */
  sendMessage(payload: Buffer, headerBlock: Buffer): void {
    if (this.localClosed) return;
    const conn = this.conn;
    if (!this.headersSent) {
      this.headersSent = true;
      conn.push(frameHeader(headerBlock.length, T_HEADERS, F_END_HEADERS, this.id));
      conn.push(headerBlock);
    }
    conn.sentSinceLastPing = true;
    const len = payload.length + 5;
    if (this.pendingBytes === 0 && len <= this.sendWindow && len <= conn.sendWindow && len <= conn.peerMaxFrame && !conn.congested) {
      // One DATA frame: its header and the gRPC prefix in one small buffer, the payload as it is.
      const h = Buffer.allocUnsafe(14);
      h.writeUIntBE(len, 0, 3);
      h[3] = T_DATA;
      h[4] = 0;
      h.writeUInt32BE(this.id, 5);
      h[9] = 0;
      h.writeUInt32BE(payload.length, 10);
      conn.push(h);
      if (payload.length) conn.push(payload);
      this.sendWindow -= len;
      conn.sendWindow -= len;
      return;
    }
    if (this.pendingBytes >= STREAM_HIGH_WATER && this.pendingBytes + len > conn.maxStreamQueued) {
      // The writer was told to wait (write() returned false) and went on: cut it off here.
      this.abort(H2_CANCEL);
      return;
    }
    if (conn.unsentBytes + len > conn.maxConnectionQueued) {
      // The client's streams hold too much it does not read, together: this one ends here.
      this.abort(H2_CANCEL);
      return;
    }
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(payload.length, 1);
    this.queue(prefix);
    if (payload.length) this.queue(payload);
    this.pump();
  }

  /** Ends the stream with a gRPC status: trailers after what is queued, or trailers only. */
  finish(headerBlock: Buffer, statusBlock: Buffer): void {
    if (this.localClosed || this.trailers) return;
    this.conn.sentSinceLastPing = true;
    if (!this.headersSent) {
      this.headersSent = true;
      const block = Buffer.concat([headerBlock, statusBlock]);
      this.conn.push(frameHeader(block.length, T_HEADERS, F_END_STREAM | F_END_HEADERS, this.id));
      this.conn.push(block);
      this.closeLocal();
      return;
    }
    this.trailers = statusBlock;
    this.pump();
  }

  private queue(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.conn.unsentBytes += b.length;
  }

  /** Drops what is queued (the stream is over), and its share of the connection's unsent bytes. */
  private dropPending(): void {
    this.conn.unsentBytes -= this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Sends what the windows allow; then the trailers once everything is out. */
  pump(): void {
    const conn = this.conn;
    while (this.pendingBytes > 0) {
      const win = Math.min(this.sendWindow, conn.sendWindow);
      if (win <= 0 || conn.congested) {
        conn.blocked.add(this);
        return;
      }
      const n = Math.min(win, conn.peerMaxFrame, this.pendingBytes);
      conn.push(frameHeader(n, T_DATA, 0, this.id));
      let left = n;
      while (left > 0) {
        const b = this.pending[this.pendingHead];
        const avail = b.length - this.pendingOffset;
        if (avail <= left) {
          conn.push(this.pendingOffset ? b.subarray(this.pendingOffset) : b);
          left -= avail;
          this.pending[this.pendingHead++] = undefined as unknown as Buffer;
          this.pendingOffset = 0;
        } else {
          conn.push(b.subarray(this.pendingOffset, this.pendingOffset + left));
          this.pendingOffset += left;
          left = 0;
        }
      }
      this.pendingBytes -= n;
      conn.unsentBytes -= n;
      this.sendWindow -= n;
      conn.sendWindow -= n;
      if (this.pendingBytes < STREAM_HIGH_WATER) this.listener?.onDrain();
    }
    if (this.pendingHead > 0) {
      this.pending = [];
      this.pendingHead = 0;
    }
    if (this.trailers) {
      conn.push(frameHeader(this.trailers.length, T_HEADERS, F_END_STREAM | F_END_HEADERS, this.id));
      conn.push(this.trailers);
      this.trailers = undefined;
      this.closeLocal();
    }
  }

  private closeLocal(): void {
    this.localClosed = true;
    this.dropPending();
    if (!this.remoteClosed) {
      // As grpc-go: the answer is complete, the rest of the request is not wanted.
      this.remoteClosed = true;
      this.conn.rst(this.id, H2_NO_ERROR);
    }
    this.conn.forget(this);
  }

  /** Our stream error: RST_STREAM with the code, and the call cancelled. */
  abort(code: number): void {
    if (this.localClosed) return;
    this.conn.rst(this.id, code);
    this.reset();
  }

  /** Resets the stream without an answer (RST_STREAM code); what the client sends on it after is dropped. */
  refuse(code: number): void {
    if (this.localClosed) return;
    this.localClosed = this.remoteClosed = true;
    this.dropPending();
    this.conn.rst(this.id, code);
    this.conn.forget(this);
  }

  /** The client reset the stream, or the connection is gone. */
  reset(): void {
    if (this.localClosed) return;
    this.localClosed = this.remoteClosed = true;
    this.dropPending();
    this.trailers = undefined;
    this.conn.forget(this);
    this.listener?.onCancel();
  }

  // --- receiving ---

  /** DATA for this stream (padding removed; size: the frame's, padding included); whole messages go to the listener. */
  receive(data: Buffer, size: number, endStream: boolean): void {
    if (size) {
      // Flow control counts padding too; a peer sending past the window we gave it is cut off.
      const window = this.conn.streamWindow;
      if (this.recvUnacked + size > window) return this.abort(H2_FLOW_CONTROL_ERROR);
      this.recvUnacked += size;
      if (!endStream && !this.windowHeld && this.recvUnacked >= window / 2) {
        this.conn.windowUpdate(this.id, this.recvUnacked);
        this.recvUnacked = 0;
      }
      if (data.length) this.feed(data);
    }
    if (endStream) this.halfClose();
  }

  /**
   * Flow control toward the client on this stream only: while held, its window is not reopened, so it
   * can send at most one window more (what a handler does when the answers to its requests pile up
   * unread, as etcd's watch stream stops receiving when its control channel is full).
   */
  holdWindow(hold: boolean): void {
    if (this.windowHeld === hold) return;
    this.windowHeld = hold;
    if (!hold && !this.remoteClosed && !this.localClosed && this.recvUnacked >= this.conn.streamWindow / 2) {
      this.conn.windowUpdate(this.id, this.recvUnacked);
      this.recvUnacked = 0;
    }
  }

  halfClose(): void {
    if (this.remoteClosed) return;
    this.remoteClosed = true;
    this.listener?.onHalfClose();
    if (this.localClosed) this.conn.forget(this);
  }

  private feed(data: Buffer): void {
    if (this.partsBytes === 0) return this.keep(this.parse(data));
    this.parts.push(data);
    this.partsBytes += data.length;
    if (this.want < 0 && this.partsBytes >= 5) {
      const head = Buffer.concat(this.parts, this.partsBytes);
      this.parts = [head];
      if (!this.announce(head.readUInt32BE(1))) return;
    }
    if (this.want >= 0 && this.partsBytes >= this.want) {
      const all = Buffer.concat(this.parts, this.partsBytes);
      this.parts = [];
      this.partsBytes = 0;
      this.want = -1;
      this.keep(this.parse(all));
    }
  }

  /** Keeps an incomplete message's start. */
  private keep(rest: Buffer | undefined): void {
    if (!rest || rest.length === 0 || this.localClosed) return;
    this.parts = [rest];
    this.partsBytes = rest.length;
    if (rest.length >= 5) this.announce(rest.readUInt32BE(1));
  }

  /** A message of length len is coming: refuse it now if it is too long. */
  private announce(len: number): boolean {
    if (len > this.conn.maxMessageBytes) {
      this.parts = [];
      this.partsBytes = 0;
      this.want = -1;
      this.listener?.onTooLarge(len);
      return false;
    }
    this.want = 5 + len;
    return true;
  }

  /** Delivers the whole messages at the start of buf; returns what is left (an incomplete message). */
  private parse(buf: Buffer): Buffer | undefined {
    let off = 0;
    while (buf.length - off >= 5 && !this.localClosed) {
      const len = buf.readUInt32BE(off + 1);
      if (len > this.conn.maxMessageBytes) {
        this.listener?.onTooLarge(len);
        return undefined;
      }
      if (buf.length - off - 5 < len) break;
      const flag = buf[off];
      // A copy: the message must not keep the socket's read buffer alive.
      this.listener?.onMessage(Buffer.from(buf.subarray(off + 5, off + 5 + len)), flag);
      off += 5 + len;
    }
    return off === buf.length || this.localClosed ? undefined : buf.subarray(off);
  }
}

export class H2Connection {
  readonly streams = new Map<number, H2Stream>();
  readonly blocked = new Set<H2Stream>();
  sendWindow = DEFAULT_WINDOW;
  peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrame = 16384;
  /** The socket holds more than OUT_HIGH_WATER unsent: no reading, no DATA until 'drain'. */
  congested = false;
  /** HEADERS or DATA sent since the client's last PING (grpc-go's resetPingStrikes). */
  sentSinceLastPing = false;
  private lastStreamId = 0;
  private readonly decoder = new HpackDecoder();
  private prefaceSeen = false;
  /** The client's preface is followed by its SETTINGS (RFC 9113 §3.4). */
  private settingsSeen = false;
  private leftover: Buffer | undefined;
  private recvUnacked = 0;
  // A header block continued in CONTINUATION frames.
  private blockStream = 0;
  private blockEnd = false;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockFrames = 0;
  // Output of this turn of the event loop.
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private goingAway = false;
  private closed = false;
  // Why reading is paused: congestion (1) and/or a yield after FRAMES_PER_TURN frames (2).
  private pauses = 0;
  private controlQueued = 0;
  private resetTokens = RESET_BURST;
  private resetRefilledAt = 0;
  // Keepalive enforcement (grpc-go's): the client's pings.
  private pingStrikes = 0;
  private lastPingAt = -Infinity;
  // Keepalive (grpc-go's ServerParameters Time/Timeout): one timer per connection, re-armed with refresh().
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readActivity = false;
  private keepalivePingSent = false;
  // Headers of the request being decoded.
  private hPath = '';
  private hType = '';
  private hEncoding = '';
  private hRequireLeader = false;
  private hTimeout = '';
  private hToken = '';
  private hAuthorization = '';
  private hViaGateway = false;
  readonly maxMessageBytes: number;
  readonly maxStreamQueued: number;
  readonly maxConnectionQueued: number;
  /** Bytes every stream holds unsent, together (bounded by maxConnectionQueued). */
  unsentBytes = 0;
  readonly streamWindow: number;
  private readonly maxStreams: number;
  private readonly maxHeaderList: number;
  private readonly maxBlockFrames: number;
  private readonly pingMinTime: number;
  private readonly pingWithoutStream: boolean;
  private readonly keepaliveInterval: number;
  private readonly keepaliveTimeout: number;

  constructor(
    readonly socket: net.Socket,
    private readonly acceptor: StreamAcceptor,
    private readonly opts: H2Options,
    private readonly onClose: (c: H2Connection) => void,
  ) {
    this.maxMessageBytes = opts.maxMessageBytes;
    this.maxStreamQueued = opts.maxStreamQueuedBytes ?? 16 * 1024 * 1024;
    this.maxConnectionQueued = opts.maxConnectionQueuedBytes ?? 64 * 1024 * 1024;
    this.streamWindow = opts.streamWindowBytes ?? STREAM_WINDOW;
    this.maxStreams = opts.maxConcurrentStreams ?? 0xffffffff;
    this.maxHeaderList = opts.maxHeaderListBytes ?? 1024 * 1024;
    // A legitimate sender fills its frames; twice the limit in frames of 1 KB on average is generous.
    this.maxBlockFrames = Math.max(64, Math.ceil((2 * this.maxHeaderList) / 1024));
    this.pingMinTime = opts.keepaliveMinTimeMs ?? 5000;
    this.pingWithoutStream = opts.keepalivePermitWithoutStream ?? false;
    this.keepaliveInterval = opts.keepaliveIntervalMs || 2 * 60 * 60 * 1000;
    this.keepaliveTimeout = opts.keepaliveTimeoutMs || 20_000;
    socket.setNoDelay(true);
    // Our preface: SETTINGS (stream window, header list size, stream limit), then the connection window opened wide.
    const settings = Buffer.allocUnsafe(this.maxStreams < 0xffffffff ? 18 : 12);
    settings.writeUInt16BE(0x4, 0);
    settings.writeUInt32BE(this.streamWindow, 2);
    settings.writeUInt16BE(0x6, 6);
    settings.writeUInt32BE(this.maxHeaderList, 8);
    if (settings.length > 12) {
      settings.writeUInt16BE(0x3, 12);
      settings.writeUInt32BE(this.maxStreams, 14);
    }
    this.frame(T_SETTINGS, 0, 0, settings);
    const wu = Buffer.allocUnsafe(4);
    wu.writeUInt32BE(CONN_WINDOW - DEFAULT_WINDOW, 0);
    this.frame(T_WINDOW_UPDATE, 0, 0, wu);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onSocketClose());
    this.armKeepalive(this.keepaliveInterval);
  }

  /** Queues bytes for this turn's socket write. */
  push(b: Buffer): void {
    if (this.closed) return;
    this.out.push(b);
    // A turn's output past the bound (a writer with wide-open windows): DATA waits for the next turns.
    if ((this.outBytes += b.length) > OUT_HIGH_WATER && !this.congested) {
      this.congested = true;
      this.pauseReading(1);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.closed) return;
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
    if (this.socket.writableLength > OUT_HIGH_WATER) {
      // The peer is not taking what we send: stop reading it (no more ACKs to queue) and stop sending DATA
      // until 'drain'.
      if (!this.congested) {
        this.congested = true;
        this.pauseReading(1);
      }
    } else {
      this.controlQueued = 0;
      // Congested by this turn's output alone, which the socket took: go on.
      if (this.congested) this.onDrain();
    }
    if (this.goingAway && this.streams.size === 0) this.socket.end();
  }

  private onDrain(): void {
    if (!this.congested || this.closed) return;
    this.congested = false;
    this.controlQueued = 0;
    this.resumeReading(1);
    const waiting = [...this.blocked];
    this.blocked.clear();
    for (const s of waiting) s.pump();
  }

  /**
   * Stops reading the connection for a reason (a bit: 1 congestion and 2 yielding are this file's, others
   * the gRPC layer's); reading resumes when every reason is gone.
   */
  pauseReading(reason: number): void {
    if (this.pauses === 0) this.socket.pause();
    this.pauses |= reason;
  }

  resumeReading(reason: number): void {
    if (!(this.pauses & reason)) return;
    this.pauses &= ~reason;
    if (this.pauses !== 0) return;
    // Frames read before the pause and not handled yet go first.
    if (this.leftover) this.onData(Buffer.alloc(0));
    if (this.pauses === 0 && !this.closed) this.socket.resume();
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (++this.controlQueued > MAX_QUEUED_CONTROL && this.congested) {
      // x/net/http2: "too many control frames in send queue, closing connection".
      this.closed = true;
      this.socket.destroy();
      return;
    }
    this.push(frameHeader(payload.length, type, flags, id));
    if (payload.length) this.push(payload);
  }

  rst(id: number, code: number): void {
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(code, 0);
    this.frame(T_RST_STREAM, 0, id, p);
  }

  windowUpdate(id: number, n: number): void {
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(n, 0);
    this.frame(T_WINDOW_UPDATE, 0, id, p);
  }

  forget(s: H2Stream): void {
    this.streams.delete(s.id);
    this.blocked.delete(s);
    if (this.goingAway && this.streams.size === 0 && !this.flushScheduled) this.socket.end();
  }

  /** Graceful close: no new streams; the connection ends when its streams have. */
  goAway(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.sendGoAway(H2_NO_ERROR);
    if (this.streams.size === 0) this.push(Buffer.alloc(0)); // flush, then end
  }

  destroy(): void {
    this.socket.destroy();
  }

  private sendGoAway(code: number, debug?: Buffer): void {
    const p = Buffer.allocUnsafe(8 + (debug ? debug.length : 0));
    p.writeUInt32BE(this.lastStreamId, 0);
    p.writeUInt32BE(code, 4);
    if (debug) debug.copy(p, 8);
    this.frame(T_GOAWAY, 0, 0, p);
  }

  /** A connection error: GOAWAY with the code, then the socket is closed. */
  private fail(code: number, debug?: Buffer): void {
    if (this.closed) return;
    this.sendGoAway(code, debug);
    this.flush();
    this.closed = true;
    this.leftover = undefined;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.leftover = undefined;
    clearTimeout(this.keepaliveTimer);
    for (const s of [...this.streams.values()]) s.reset();
    this.onClose(this);
  }

  /** (Re)starts the keepalive timer for a new period; the same period again is timer.refresh(). */
  private armKeepalive(ms: number): void {
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(this.onKeepalive, ms);
    this.keepaliveTimer.unref();
  }

  /**
   * grpc-go's keepalive: every interval, a connection that read nothing since the last look is pinged;
   * one that then reads nothing (the PING ACK included) within the timeout is closed.
   */
  private readonly onKeepalive = (): void => {
    if (this.closed) return;
    if (this.readActivity) {
      this.readActivity = false;
      if (this.keepalivePingSent) {
        this.keepalivePingSent = false;
        this.armKeepalive(this.keepaliveInterval);
      } else {
        this.keepaliveTimer!.refresh();
      }
      return;
    }
    if (this.keepalivePingSent) {
      this.closed = true;
      this.socket.destroy();
      return;
    }
    this.keepalivePingSent = true;
    this.frame(T_PING, 0, 0, Buffer.alloc(8));
    this.armKeepalive(this.keepaliveTimeout);
  };

  private onData(chunk: Buffer): void {
    this.readActivity = true;
    let buf = this.leftover ? (chunk.length ? Buffer.concat([this.leftover, chunk]) : this.leftover) : chunk;
    this.leftover = undefined;
    let off = 0;
    if (!this.prefaceSeen) {
      if (buf.length < PREFACE.length) {
        this.leftover = buf;
        return;
      }
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) return this.fail(H2_PROTOCOL_ERROR);
      this.prefaceSeen = true;
      off = PREFACE.length;
    }
    let frames = 0;
    while (buf.length - off >= 9 && !this.closed && this.pauses === 0) {
      const len = buf.readUIntBE(off, 3);
      if (len > MAX_FRAME) return this.fail(H2_FRAME_SIZE_ERROR);
      if (buf.length - off - 9 < len) break;
      if (++frames > FRAMES_PER_TURN) {
        // Let the other connections in before the rest of this read.
        this.pauseReading(2);
        setImmediate(() => this.resumeReading(2));
        break;
      }
      const type = buf[off + 3];
      const flags = buf[off + 4];
      const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
      this.onFrame(type, flags, id, buf.subarray(off + 9, off + 9 + len));
      off += 9 + len;
    }
    if (off < buf.length && !this.closed) this.leftover = buf.subarray(off);
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.blockStream !== 0 && type !== T_CONTINUATION) return this.fail(H2_PROTOCOL_ERROR);
    if (!this.settingsSeen) {
      if (type !== T_SETTINGS || flags & F_ACK) return this.fail(H2_PROTOCOL_ERROR);
      this.settingsSeen = true;
    }
    switch (type) {
      case T_DATA:
        return this.onDataFrame(flags, id, p);
      case T_HEADERS:
        return this.onHeadersFrame(flags, id, p);
      case T_CONTINUATION:
        if (id === 0 || id !== this.blockStream) return this.fail(H2_PROTOCOL_ERROR);
        this.blockBytes += p.length;
        // x/net/http2 (CVE-2023-45288): a block far past the header list limit is not buffered to the end.
        if (this.blockBytes > 2 * this.maxHeaderList || ++this.blockFrames > this.maxBlockFrames) return this.fail(H2_PROTOCOL_ERROR);
        this.blockParts.push(p);
        if (flags & F_END_HEADERS) {
          const block = Buffer.concat(this.blockParts);
          this.blockParts = [];
          this.blockStream = 0;
          this.onHeaderBlock(id, block, this.blockEnd);
        }
        return;
      case T_RST_STREAM: {
        if (id === 0) return this.fail(H2_PROTOCOL_ERROR);
        if (p.length !== 4) return this.fail(H2_FRAME_SIZE_ERROR);
        const s = this.streams.get(id);
        if (!s) {
          if (id > this.lastStreamId) return this.fail(H2_PROTOCOL_ERROR); // an idle stream (§6.4)
          return;
        }
        if (!s.localClosed && !this.takeResetToken()) return this.fail(H2_ENHANCE_YOUR_CALM);
        s.reset();
        return;
      }
      case T_SETTINGS:
        if (id !== 0) return this.fail(H2_PROTOCOL_ERROR);
        if (flags & F_ACK) return p.length === 0 ? undefined : this.fail(H2_FRAME_SIZE_ERROR);
        if (p.length % 6 !== 0) return this.fail(H2_FRAME_SIZE_ERROR);
        for (let i = 0; i < p.length; i += 6) this.setting(p.readUInt16BE(i), p.readUInt32BE(i + 2));
        if (this.closed) return;
        this.frame(T_SETTINGS, F_ACK, 0, Buffer.alloc(0));
        return;
      case T_PING:
        if (id !== 0) return this.fail(H2_PROTOCOL_ERROR);
        if (p.length !== 8) return this.fail(H2_FRAME_SIZE_ERROR);
        if (!(flags & F_ACK)) this.onPing(p);
        return;
      case T_WINDOW_UPDATE: {
        if (p.length !== 4) return this.fail(H2_FRAME_SIZE_ERROR);
        const inc = p.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          // RFC 9113 §6.9: an increment of 0 is a PROTOCOL_ERROR, a connection error on stream 0.
          if (inc === 0) return this.fail(H2_PROTOCOL_ERROR);
          this.sendWindow += inc;
          if (this.sendWindow > 0x7fffffff) return this.fail(H2_FLOW_CONTROL_ERROR);
          if (this.congested) return; // 'drain' pumps them
          const waiting = [...this.blocked];
          this.blocked.clear();
          for (const s of waiting) s.pump();
        } else {
          const s = this.streams.get(id);
          if (!s) {
            if (id > this.lastStreamId) return this.fail(H2_PROTOCOL_ERROR); // an idle stream
            return;
          }
          // ... and a stream error on a stream; as is a window above 2^31-1 (§6.9.1).
          if (inc === 0) return s.abort(H2_PROTOCOL_ERROR);
          s.sendWindow += inc;
          if (s.sendWindow > 0x7fffffff) return s.abort(H2_FLOW_CONTROL_ERROR);
          s.pump();
        }
        return;
      }
      case T_GOAWAY:
        // The client's goodbye: its streams end as they will.
        return id === 0 ? undefined : this.fail(H2_PROTOCOL_ERROR);
      case T_PRIORITY:
        // Advisory, and ignored; only its form is checked (§6.3).
        if (id === 0) return this.fail(H2_PROTOCOL_ERROR);
        if (p.length !== 5) {
          const s = this.streams.get(id);
          return s ? s.abort(H2_FRAME_SIZE_ERROR) : this.rst(id, H2_FRAME_SIZE_ERROR);
        }
        return;
      case T_PUSH_PROMISE:
        return this.fail(H2_PROTOCOL_ERROR);
      default:
        return; // unknown frame types are ignored
    }
  }

  /** The rapid-reset token bucket: false once the client has reset too many live streams too fast. */
  private takeResetToken(): boolean {
    const now = Date.now();
    this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetRefilledAt) * RESET_RATE) / 1000);
    this.resetRefilledAt = now;
    if (this.resetTokens < 1) return false;
    this.resetTokens--;
    return true;
  }

  /** A PING from the client: answered, and held to grpc-go's keepalive enforcement policy. */
  private onPing(p: Buffer): void {
    this.frame(T_PING, F_ACK, 0, Buffer.from(p));
    const now = Date.now();
    const last = this.lastPingAt;
    this.lastPingAt = now;
    if (this.sentSinceLastPing) {
      // We sent headers or data since its last ping: the client has reason to check the connection.
      this.sentSinceLastPing = false;
      this.pingStrikes = 0;
      return;
    }
    const minGap = this.streams.size === 0 && !this.pingWithoutStream ? PING_WITHOUT_STREAM_MS : this.pingMinTime;
    if (now - last < minGap && ++this.pingStrikes > MAX_PING_STRIKES) this.fail(H2_ENHANCE_YOUR_CALM, TOO_MANY_PINGS);
  }

  private setting(key: number, value: number): void {
    if (key === 0x4) {
      if (value > 0x7fffffff) return this.fail(H2_FLOW_CONTROL_ERROR);
      const delta = value - this.peerInitialWindow;
      this.peerInitialWindow = value;
      for (const s of this.streams.values()) {
        s.sendWindow += delta;
        // RFC 9113 §6.9.2: a change that takes a window above 2^31-1 is a connection error.
        if (s.sendWindow > 0x7fffffff) return this.fail(H2_FLOW_CONTROL_ERROR);
      }
      if (delta > 0) for (const s of [...this.streams.values()]) s.pump();
    } else if (key === 0x2) {
      if (value > 1) return this.fail(H2_PROTOCOL_ERROR);
    } else if (key === 0x5) {
      if (value < 16384 || value > 16777215) return this.fail(H2_PROTOCOL_ERROR);
      this.peerMaxFrame = value;
    }
    // HEADER_TABLE_SIZE: our encoder never indexes. ENABLE_PUSH, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE:
    // nothing for a server that never pushes and answers every stream.
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.fail(H2_PROTOCOL_ERROR);
    // Every DATA byte counts against the connection window, whatever became of its stream; more than the
    // window we opened is a connection error.
    if (this.recvUnacked + p.length > CONN_WINDOW) return this.fail(H2_FLOW_CONTROL_ERROR);
    this.recvUnacked += p.length;
    if (this.recvUnacked >= CONN_WINDOW / 2) {
      this.windowUpdate(0, this.recvUnacked);
      this.recvUnacked = 0;
    }
    let data = p;
    if (flags & F_PADDED) {
      if (p.length < 1 || p[0] >= p.length) return this.fail(H2_PROTOCOL_ERROR);
      data = p.subarray(1, p.length - p[0]);
    }
    const s = this.streams.get(id);
    if (!s) {
      if (id > this.lastStreamId) return this.fail(H2_PROTOCOL_ERROR);
      return; // a stream we closed: its late data is dropped
    }
    // DATA after the client's END_STREAM (half-closed remote, §5.1): as x/net/http2, RST_STREAM STREAM_CLOSED.
    if (s.remoteClosed) return s.abort(H2_STREAM_CLOSED);
    s.receive(data, p.length, (flags & F_END_STREAM) !== 0);
  }

  private onHeadersFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.fail(H2_PROTOCOL_ERROR);
    let start = 0;
    let end = p.length;
    if (flags & F_PADDED) {
      if (p.length < 1) return this.fail(H2_PROTOCOL_ERROR);
      end -= p[0];
      start = 1;
    }
    if (flags & F_PRIORITY) start += 5;
    if (start > end) return this.fail(H2_PROTOCOL_ERROR);
    const block = p.subarray(start, end);
    const endStream = (flags & F_END_STREAM) !== 0;
    if (flags & F_END_HEADERS) return this.onHeaderBlock(id, block, endStream);
    this.blockStream = id;
    this.blockEnd = endStream;
    this.blockParts = [Buffer.from(block)];
    this.blockBytes = block.length;
    this.blockFrames = 0;
  }

  private onHeaderBlock(id: number, block: Buffer, endStream: boolean): void {
    this.hPath = this.hType = this.hEncoding = '';
    this.hRequireLeader = false;
    this.hTimeout = '';
    this.hToken = this.hAuthorization = '';
    this.hViaGateway = false;
    let fits: boolean;
    try {
      fits = this.decoder.decode(block, this.onHeader, this.maxHeaderList);
    } catch (err) {
      if (err instanceof HpackError) return this.fail(H2_COMPRESSION_ERROR);
      throw err;
    }
    const existing = this.streams.get(id);
    if (existing) {
      // Trailers from the client: only the end of its side matters.
      if (!fits) return existing.abort(H2_FRAME_SIZE_ERROR);
      if (endStream) existing.halfClose();
      return;
    }
    if (id <= this.lastStreamId || id % 2 === 0) {
      if (id > this.lastStreamId) return this.fail(H2_PROTOCOL_ERROR);
      return; // headers for a stream already closed
    }
    this.lastStreamId = id;
    if (this.goingAway) return this.rst(id, H2_REFUSED_STREAM);
    // grpc-go: headers over the announced limit are refused on their stream (RST_STREAM FRAME_SIZE_ERROR).
    if (!fits) return this.rst(id, H2_FRAME_SIZE_ERROR);
    // grpc-go refuses streams beyond SETTINGS_MAX_CONCURRENT_STREAMS with REFUSED_STREAM (safe to retry).
    if (this.streams.size >= this.maxStreams) return this.rst(id, H2_REFUSED_STREAM);
    const s = new H2Stream(this, id);
    this.streams.set(id, s);
    this.acceptor.onStream(s, { path: this.hPath, contentType: this.hType, encoding: this.hEncoding, requireLeader: this.hRequireLeader, timeout: this.hTimeout, token: this.hToken || this.hAuthorization, viaGateway: this.hViaGateway });
    if (endStream) s.halfClose();
  }

  private readonly onHeader = (name: string, value: string): void => {
    if (name === ':path') this.hPath = value;
    else if (name === 'content-type') this.hType = value;
    else if (name === 'grpc-encoding') this.hEncoding = value;
    else if (name === 'hasleader') this.hRequireLeader = value === 'true';
    else if (name === 'grpc-timeout') this.hTimeout = value;
    else if (name === 'token') this.hToken ||= value;
    else if (name === 'authorization') this.hAuthorization ||= value;
    else if (name === 'grpcgateway-accept') this.hViaGateway = true;
  };
}
