import { EventEmitter } from 'node:events';
import { verifiedCommonName } from '../../tls';
import type * as net from 'node:net';
import * as zlib from 'node:zlib';
import { GrpcCode } from '../../errors';
import { H2Connection, STREAM_HIGH_WATER, type H2Options, type H2Stream, type RequestHeaders, type StreamAcceptor, type StreamListener } from './connection';
import { indexedField, literalField } from './hpack';

// gRPC over our HTTP/2 connections (connection.ts): the services' handlers are called as grpc-js calls
// them — unary (call, callback), server streaming (call), client/bidi streaming (call with 'data'/'end') —
// so the service modules do not care which transport runs them.

/** A method as grpc-js's service definitions describe it. */
export interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(buf: Buffer): any;
  responseSerialize(value: any): Buffer;
}

export interface Status {
  code: number;
  details?: string;
}

/** Per-method counters (go-grpc-prometheus's), bumped by the transport. */
export interface MethodSeries {
  started: { v: number };
  received: { v: number };
  sent: { v: number };
  handled: { v: number }[];
}

export interface Method {
  def: MethodDefinition;
  handler: ((call: ServerCall, cb?: (err: unknown, value?: unknown) => void) => void) | undefined;
  series: MethodSeries | undefined;
  name: string;
  service: string;
}

/** :status 200 and content-type application/grpc: the response headers of every call. */
const RESPONSE_HEADERS = Buffer.concat([indexedField(':status', '200'), literalField('content-type', 'application/grpc')]);
const OK_TRAILERS = literalField('grpc-status', '0');

/** grpc's percent-encoding of grpc-message: bytes outside printable ASCII, and '%'. */
function percentEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function statusBlock(code: number, details: string | undefined): Buffer {
  if (code === 0 && !details) return OK_TRAILERS;
  const parts = [literalField('grpc-status', String(code))];
  if (details) parts.push(literalField('grpc-message', percentEncode(details)));
  return Buffer.concat(parts);
}

/** A thrown or emitted error as a gRPC status (etcd errors carry code and details already). */
function statusOf(err: unknown): Status {
  const e = err as { code?: unknown; details?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'number' && e.code >= 0 && e.code <= 16 ? e.code : GrpcCode.UNKNOWN;
  const details = typeof e?.details === 'string' ? e.details : typeof e?.message === 'string' ? e.message : '';
  return { code, details };
}

/** grpc-timeout's units (gRPC over HTTP/2: "Timeout → TimeoutValue TimeoutUnit"), in milliseconds. */
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
/** setTimeout's longest delay: a deadline further away than this (24.8 days) is treated as none. */
const MAX_TIMER_MS = 0x7fffffff;

/**
 * A grpc-timeout value in milliseconds, NaN when malformed: as grpc-go's decodeTimeout, up to 8 digits
 * (strconv.ParseInt's optional sign included) and one unit. Zero or negative means already expired.
 */
export function parseGrpcTimeout(v: string): number {
  if (v.length < 2 || v.length > 9) return NaN;
  const unit = TIMEOUT_UNIT_MS[v[v.length - 1]];
  if (unit === undefined || !/^[+-]?[0-9]+$/.test(v.slice(0, -1))) return NaN;
  return Number(v.slice(0, -1)) * unit;
}

/** grpc-go's ContentSubtype check: "application/grpc", or it followed by '+' or ';' and anything. */
function isGrpcContentType(ct: string): boolean {
  if (ct === 'application/grpc') return true;
  return ct.startsWith('application/grpc') && (ct[16] === '+' || ct[16] === ';');
}

const H2_PROTOCOL_ERROR = 1;

/**
 * Refuses a stream with RST_STREAM PROTOCOL_ERROR and no answer: grpc-go's (1.33, etcd 3.4's) answer to
 * request headers it cannot take as gRPC (a content-type that is not gRPC's, a malformed grpc-timeout).
 */
function refuseStream(stream: H2Stream): void {
  stream.refuse(H2_PROTOCOL_ERROR);
}

function unexpectedFormat(flag: number): Status {
  return { code: GrpcCode.INTERNAL, details: `grpc: received unexpected payload format ${flag}` };
}

/** Our reason for pausing a connection's reads (connection.ts uses 1 and 2 for its own). */
const READ_PAUSE_INFLATING = 4;

/**
 * Bytes of a connection's messages waiting behind inflations (their wire size) past which it stops
 * reading. A fixed amount, not the message limit: with --max-request-bytes large, that would let a client
 * queue that much per connection. One message past it is still taken whole (it has been read already).
 */
const INFLATE_BACKLOG = 4 * 1024 * 1024;

/** Output chunks of an inflation: fewer trips through zlib's threadpool than its 16 KB default. */
const INFLATE_CHUNK = 64 * 1024;

/**
 * Compressed messages of one connection are inflated one at a time, off the event loop (zlib's
 * threadpool): the memory a connection holds in inflation is one message's (bounded by the message limit).
 * Messages waiting behind an inflation (compressed or not: a stream's messages are delivered in order)
 * are counted; past INFLATE_BACKLOG the connection stops reading until half of them have gone through, so
 * that a client cannot pile up work faster than it is done (HTTP/2 flow control does not stop it:
 * connection.ts opens the windows as data arrives, not as it is consumed).
 */
class InflateGate {
  private busy = false;
  private readonly waiting: ServerCall[] = [];
  private queuedBytes = 0;
  private paused = false;

  constructor(private readonly conn: H2Connection) {}

  hold(n: number): void {
    this.queuedBytes += n;
    if (!this.paused && this.queuedBytes > INFLATE_BACKLOG) {
      this.paused = true;
      // connection.ts's read pause, with a reason bit of our own: it composes with the connection's own
      // pauses (congestion, yielding), which a bare socket.pause()/resume() here would undo.
      this.conn.pauseReading(READ_PAUSE_INFLATING);
    }
  }

  release(n: number): void {
    this.queuedBytes -= n;
    if (this.paused && this.queuedBytes <= INFLATE_BACKLOG / 2) {
      this.paused = false;
      this.conn.resumeReading(READ_PAUSE_INFLATING);
    }
  }

  /** The call's next message needs inflating: now if the connection has no inflation under way, else in turn. */
  request(call: ServerCall): void {
    if (this.busy) this.waiting.push(call);
    else {
      this.busy = true;
      call.inflateHead(this);
    }
  }

  /** An inflation ended: the next waiting call's turn. */
  done(): void {
    const next = this.waiting.shift();
    if (next) next.inflateHead(this);
    else this.busy = false;
  }
}

const gates = new WeakMap<H2Connection, InflateGate>();

function gateOf(conn: H2Connection): InflateGate {
  let g = gates.get(conn);
  if (!g) gates.set(conn, (g = new InflateGate(conn)));
  return g;
}

/** A message waiting on its stream behind an inflation. */
interface Queued {
  payload: Buffer;
  compressed: boolean;
  /** The message's flag byte (0 or 1; anything else is refused in its turn). */
  flag: number;
}

/** What a stream gets when the server stops under it: grpc-go's words for a closed transport. */
const TRANSPORT_CLOSING: Status = { code: GrpcCode.UNAVAILABLE, details: 'transport is closing' };

function onDeadline(call: ServerCall): void {
  call.expire();
}

/**
 * One call. Emits 'data' (client/bidi streams), 'end' (the client closed its side), 'cancelled' (the
 * client went away, or the call's deadline passed), 'drain', 'close' (the call is over); emitting 'error'
 * with a status ends the call with it, as on grpc-js's server streams.
 */
export class ServerCall extends EventEmitter implements StreamListener {
  request: any = undefined;
  cancelled = false;
  /** The client asked to be answered only while the cluster has a leader (etcd's "hasleader" metadata). */
  requireLeader = false;
  /** The auth token the client sent ('' when none; see RequestHeaders.token). */
  token = '';
  /** Sent by the JSON gateway (RequestHeaders.viaGateway). */
  viaGateway = false;
  /** The server's admission check (GrpcServerOptions.admit). */
  admit: ((call: ServerCall) => Status | undefined) | undefined;
  private finished = false;
  private wantDrain = false;
  private received = false;
  /** The grpc-timeout timer (calls without one have none). */
  private deadline: NodeJS.Timeout | undefined;
  /**
   * Messages not yet delivered because one before them is being inflated (undefined when none: then
   * uncompressed messages go straight through, as on the hot path).
   */
  private queue: Queued[] | undefined;
  private queueBytes = 0;
  /** The client's half-close, held until the queued messages have been delivered. */
  private halfClosePending = false;
  private gate: InflateGate | undefined;

  constructor(
    private readonly stream: H2Stream,
    readonly method: Method,
    private readonly encoding: string,
  ) {
    super();
  }

  /** 'error' ends the call with that status (as grpc-js's streams), then reaches listeners if there are any. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'error') return super.emit(event, ...args);
    this.sendStatus(statusOf(args[0]));
    return this.listenerCount('error') > 0 ? super.emit(event, ...args) : false;
  }

  /**
   * The common name of the client certificate the connection's TLS handshake verified (etcd's
   * AuthInfoFromTLS: the first verified chain's leaf); undefined on a plain connection or without one.
   */
  peerCommonName(): string | undefined {
    return verifiedCommonName(this.stream.conn.socket);
  }

  getPeer(): string {
    const sk = this.stream.conn.socket;
    return `${sk.remoteAddress}:${sk.remotePort}`;
  }

  /** Sends a message; false when the client is not taking them (wait for 'drain'). */
  write(value: unknown): boolean {
    if (this.finished) return false;
    const bytes = this.method.def.responseSerialize(value);
    if (this.method.series) this.method.series.sent.v++;
    this.stream.sendMessage(bytes, RESPONSE_HEADERS);
    if (this.stream.pendingBytes >= STREAM_HIGH_WATER) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Stops (true) or restarts (false) taking requests on a client stream: flow control holds the client
   * back after at most one stream window more. For a handler whose answers pile up unread.
   */
  holdRequests(hold: boolean): void {
    this.stream.holdWindow(hold);
  }

  /** Ends the call with status OK (after the messages written). */
  end(): void {
    this.sendStatus({ code: 0 });
  }

  sendStatus(st: Status): void {
    if (this.finished) return;
    this.finished = true;
    this.over();
    if (this.method.series) (this.method.series.handled[st.code] ?? this.method.series.handled[GrpcCode.UNKNOWN]).v++;
    this.stream.finish(RESPONSE_HEADERS, statusBlock(st.code, st.details));
    this.emit('close');
  }

  /** Unary answer: grpc-js's sendUnaryData. */
  readonly callback = (err: unknown, value?: unknown): void => {
    if (err) return this.sendStatus(statusOf(err));
    this.write(value);
    this.end(); // the trailers follow the message, whatever the window
  };

  /** Arms the grpc-timeout deadline: false when it has already passed (the call is answered then). */
  setDeadline(ms: number): boolean {
    // Under a millisecond is gone before a timer could fire (grpc-go answers "10n" at once too).
    if (ms < 1) {
      this.sendStatus({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'context deadline exceeded' });
      return false;
    }
    if (ms <= MAX_TIMER_MS) this.deadline = setTimeout(onDeadline, ms, this).unref();
    return true;
  }

  /**
   * The deadline passed: DEADLINE_EXCEEDED in grpc-go's words (etcd's stream handlers answer with that,
   * or with UNKNOWN and the same words, as a race in them goes), then the handler sees the call cancelled
   * as when the client goes away, so that watches and keepalive streams are let go.
   */
  expire(): void {
    this.deadline = undefined;
    if (this.finished) return;
    this.sendStatus({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'context deadline exceeded' });
    this.cancelled = true;
    this.emit('cancelled');
    if (this.wantDrain) this.emit('drain'); // writers waiting for drain look at cancelled
  }

  /**
   * The server ends the call (it is stopping): the status goes to the client, then the handler sees the
   * call cancelled, as when the client goes away.
   */
  abort(st: Status): void {
    if (this.finished) return;
    this.sendStatus(st);
    this.cancelled = true;
    this.emit('cancelled');
    if (this.wantDrain) this.emit('drain');
  }

  /** The call is over: its timer and its undelivered messages go. */
  private over(): void {
    if (this.deadline) {
      clearTimeout(this.deadline);
      this.deadline = undefined;
    }
    if (this.queue) {
      this.queue = undefined;
      this.gate!.release(this.queueBytes);
      this.queueBytes = 0;
    }
  }

  // --- StreamListener ---

  onMessage(payload: Buffer, flag: number): void {
    if (this.finished) return;
    // Straight through unless the message must be inflated or waits behind one that is.
    if (flag === 0 && this.queue === undefined) return this.deliver(payload);
    const compressed = flag !== 0;
    // grpc-go's checkRecvPayload: the flag is 0 or 1, whatever the encoding.
    if (flag > 1 && this.queue === undefined) return this.sendStatus(unexpectedFormat(flag));
    this.gate ??= gateOf(this.stream.conn);
    this.gate.hold(payload.length);
    this.queueBytes += payload.length;
    if (this.queue) {
      this.queue.push({ payload, compressed, flag });
      return;
    }
    this.queue = [{ payload, compressed, flag }];
    this.pump();
  }

  /** Delivers the queued messages in order, up to the next one to inflate (which is then asked for). */
  private pump(): void {
    const q = this.queue!;
    while (q.length > 0 && !this.finished) {
      const head = q[0];
      if (head.flag > 1) return this.sendStatus(unexpectedFormat(head.flag));
      if (head.compressed) {
        const refused = this.checkCompressed(head.payload);
        if (refused) return this.sendStatus(refused);
        this.gate!.request(this);
        return;
      }
      q.shift();
      this.unqueue(head.payload.length);
      this.deliver(head.payload);
    }
    if (this.finished) return;
    this.queue = undefined;
    if (this.halfClosePending) {
      this.halfClosePending = false;
      this.onHalfClose();
    }
  }

  private unqueue(n: number): void {
    this.queueBytes -= n;
    this.gate!.release(n);
  }

  /** What grpc-go refuses before inflating: no decompressor for the encoding, or a size already too large. */
  private checkCompressed(payload: Buffer): Status | undefined {
    const enc = this.encoding;
    if (enc === 'gzip') {
      // As grpc-go's gzip DecompressedSize: the size the gzip trailer (ISIZE) announces, refused unread.
      const max = this.stream.conn.maxMessageBytes;
      const size = payload.length >= 4 ? payload.readUInt32LE(payload.length - 4) : 0;
      if (size > max) return tooLargeInflated(size, max);
      return undefined;
    }
    if (enc === 'deflate') return undefined;
    if (enc === '' || enc === 'identity') return { code: GrpcCode.INTERNAL, details: 'grpc: compressed flag set with identity or empty encoding' };
    return { code: GrpcCode.UNIMPLEMENTED, details: `grpc: Decompressor is not installed for grpc-encoding "${enc}"` };
  }

  /** The connection's turn for this call's head message: inflate it (bounded by the message limit). */
  inflateHead(gate: InflateGate): void {
    const head = this.queue?.[0];
    if (this.finished || !head) return gate.done(); // cancelled or ended while waiting its turn
    // The limit applies after decompression too (as grpc-go's): a bomb stops at it, inflated that far only.
    const max = this.stream.conn.maxMessageBytes;
    const opts = { maxOutputLength: max, chunkSize: INFLATE_CHUNK };
    const done = (err: Error | null, msg: Buffer): void => {
      gate.done();
      if (this.finished) return; // cancelled, ended or past its deadline meanwhile: nothing is delivered
      this.queue!.shift();
      this.unqueue(head.payload.length);
      if (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return this.sendStatus(tooLargeInflated(max + 1, max));
        return this.sendStatus({ code: GrpcCode.INTERNAL, details: `grpc: failed to decompress the received message: ${err.message}` });
      }
      try {
        this.deliver(msg);
        this.pump();
      } catch (e) {
        // Not under the socket's 'data' handler here: a throwing handler ends its call, not the process.
        this.sendStatus(statusOf(e));
      }
    };
    if (this.encoding === 'gzip') zlib.gunzip(head.payload, opts, done);
    else zlib.inflate(head.payload, opts, done);
  }

  /** A whole (inflated) message: to the handler, or kept as the unary request. */
  private deliver(msg: Buffer): void {
    let req: unknown;
    try {
      req = this.method.def.requestDeserialize(msg);
    } catch (err) {
      return this.sendStatus({ code: GrpcCode.INTERNAL, details: `grpc: error unmarshalling request: ${(err as Error).message}` });
    }
    if (this.method.series) this.method.series.received.v++;
    if (this.method.def.requestStream) {
      this.emit('data', req);
      return;
    }
    if (this.received) return this.sendStatus({ code: GrpcCode.INTERNAL, details: 'grpc: too many messages for a unary request' });
    this.received = true;
    this.request = req;
  }

  onHalfClose(): void {
    if (this.finished) return;
    if (this.queue) {
      // After the messages still being inflated: a unary call starts once its request is ready.
      this.halfClosePending = true;
      return;
    }
    if (this.method.def.requestStream) {
      this.emit('end');
      return;
    }
    if (!this.received) return this.sendStatus({ code: GrpcCode.INTERNAL, details: 'grpc: error while receiving the request: EOF' });
    this.start();
  }

  onCancel(): void {
    this.cancelled = true;
    if (!this.finished) {
      this.finished = true;
      this.over();
      if (this.method.series) this.method.series.handled[GrpcCode.CANCELLED].v++;
    }
    this.emit('cancelled');
    if (this.wantDrain) this.emit('drain'); // writers waiting for drain look at cancelled
    this.emit('close');
  }

  onDrain(): void {
    if (!this.wantDrain) return;
    this.wantDrain = false;
    this.emit('drain');
  }

  onTooLarge(length: number): void {
    this.sendStatus({ code: GrpcCode.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${length} vs. ${this.stream.conn.maxMessageBytes})` });
  }

  /** Runs the handler (at once for client/bidi streams, after the request for the others). */
  start(): void {
    const refused = this.admit?.(this);
    if (refused) return this.sendStatus(refused);
    const h = this.method.handler!;
    try {
      if (this.method.def.responseStream || this.method.def.requestStream) h(this);
      else h(this, this.callback);
    } catch (err) {
      this.sendStatus(statusOf(err));
    }
  }
}

/** grpc-go's words for a message that inflates past the limit (size: what it got to, or what gzip announced). */
function tooLargeInflated(size: number, max: number): Status {
  return { code: GrpcCode.RESOURCE_EXHAUSTED, details: `grpc: received message after decompression larger than max (${size} vs. ${max})` };
}

export interface GrpcServerOptions {
  /** Messages longer than this are refused with RESOURCE_EXHAUSTED, in grpc-go's words. */
  maxReceiveMessageBytes: number;
  /** The connections' limits and keepalive settings besides the message size. */
  h2?: Omit<H2Options, 'maxMessageBytes'>;
  /** Counters per method, looked up once when a service is added. */
  seriesFor?: (def: MethodDefinition) => MethodSeries;
  /** Runs before a call's handler: a status to refuse the call with (etcd's interceptors), or undefined. */
  admit?: (call: ServerCall) => Status | undefined;
}

/** The gRPC server: services added as grpc-js service definitions, connections handed over by the listener. */
export class GrpcServer implements StreamAcceptor {
  private readonly methods = new Map<string, Method>();
  private readonly conns = new Set<H2Connection>();
  private shuttingDown = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly opts: GrpcServerOptions) {}

  addService(def: Record<string, MethodDefinition>, impl: Record<string, unknown>): void {
    for (const [name, m] of Object.entries(def)) {
      const slash = m.path.lastIndexOf('/');
      this.methods.set(m.path, {
        def: m,
        handler: impl[name] as Method['handler'],
        series: this.opts.seriesFor?.(m),
        name: m.path.slice(slash + 1),
        service: m.path.slice(1, slash),
      });
    }
  }

  /** Serves HTTP/2 on a socket whose first bytes (the preface, maybe more) were already read. */
  injectConnection(socket: net.Socket, head?: Buffer): void {
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    const c = new H2Connection(socket, this, { ...this.opts.h2, maxMessageBytes: this.opts.maxReceiveMessageBytes }, (done) => {
      this.conns.delete(done);
      if (this.conns.size === 0) this.onIdle?.();
    });
    this.conns.add(c);
    if (head?.length) socket.emit('data', head);
  }

  onStream(stream: H2Stream, headers: RequestHeaders): void {
    // As grpc-go's transport, before the method is looked at: a request that is not gRPC is refused.
    if (!isGrpcContentType(headers.contentType)) return refuseStream(stream);
    let timeoutMs = 0;
    if (headers.timeout !== '') {
      timeoutMs = parseGrpcTimeout(headers.timeout);
      if (Number.isNaN(timeoutMs)) return refuseStream(stream);
    }
    const method = this.methods.get(headers.path);
    if (!method?.handler) {
      const slash = headers.path.lastIndexOf('/');
      const svc = headers.path.slice(1, slash);
      const known = [...this.methods.values()].some((m) => m.service === svc);
      const details = known ? `unknown method ${headers.path.slice(slash + 1)} for service ${svc}` : `unknown service ${svc}`;
      if (method?.series) method.series.handled[GrpcCode.UNIMPLEMENTED].v++;
      stream.finish(RESPONSE_HEADERS, statusBlock(GrpcCode.UNIMPLEMENTED, details));
      return;
    }
    if (method.series) method.series.started.v++;
    const call = new ServerCall(stream, method, headers.encoding);
    call.requireLeader = headers.requireLeader;
    call.token = headers.token;
    call.viaGateway = headers.viaGateway;
    call.admit = this.opts.admit;
    stream.listener = call;
    if (method.def.requestStream || method.def.responseStream) {
      this.streams.add(call);
      call.once('close', () => this.streams.delete(call));
    }
    if (headers.timeout !== '' && !call.setDeadline(timeoutMs)) return;
    if (method.def.requestStream) call.start();
  }

  private readonly shutdownHooks: (() => void)[] = [];
  /** Streaming calls under way: a graceful stop ends them (they would otherwise last forever). */
  private readonly streams = new Set<ServerCall>();

  /** Called once when the server starts shutting down. */
  onShutdown(fn: () => void): void {
    this.shutdownHooks.push(fn);
  }

  private runShutdownHooks(): void {
    for (const fn of this.shutdownHooks.splice(0)) fn();
  }

  /** Graceful stop: GOAWAY on every connection; cb once they have all closed. */
  tryShutdown(cb: () => void): void {
    this.runShutdownHooks();
    this.shuttingDown = true;
    // Unary calls finish; streams (lease keep-alives, election observers, lock waits; watches end in
    // their own hook) end as etcd's do when its transports close under them, so that the stop does not
    // wait for clients that would hold them open forever.
    for (const call of [...this.streams]) call.abort(TRANSPORT_CLOSING);
    if (this.conns.size === 0) return cb();
    this.onIdle = cb;
    for (const c of this.conns) c.goAway();
  }

  forceShutdown(): void {
    this.runShutdownHooks();
    this.shuttingDown = true;
    for (const c of [...this.conns]) c.destroy();
  }
}
