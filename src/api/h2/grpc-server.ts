import { EventEmitter } from 'node:events';
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

/**
 * One call. Emits 'data' (client/bidi streams), 'end' (the client closed its side), 'cancelled' (the
 * client went away), 'drain', 'close' (the call is over); emitting 'error' with a status ends the call
 * with it, as on grpc-js's server streams.
 */
export class ServerCall extends EventEmitter implements StreamListener {
  request: any = undefined;
  cancelled = false;
  /** The client asked to be answered only while the cluster has a leader (etcd's "hasleader" metadata). */
  requireLeader = false;
  /** The server's admission check (GrpcServerOptions.admit). */
  admit: ((call: ServerCall) => Status | undefined) | undefined;
  private finished = false;
  private wantDrain = false;
  private received = false;

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

  /** Ends the call with status OK (after the messages written). */
  end(): void {
    this.sendStatus({ code: 0 });
  }

  sendStatus(st: Status): void {
    if (this.finished) return;
    this.finished = true;
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

  // --- StreamListener ---

  onMessage(payload: Buffer, compressed: boolean): void {
    if (this.finished) return;
    let msg = payload;
    if (compressed) {
      const enc = this.encoding;
      // The limit applies after decompression too (as grpc-go's): a small gzip bomb stops at it.
      const maxOutputLength = this.stream.conn.maxMessageBytes;
      try {
        if (enc === 'gzip') msg = zlib.gunzipSync(payload, { maxOutputLength });
        else if (enc === 'deflate') msg = zlib.inflateSync(payload, { maxOutputLength });
        else if (enc === '' || enc === 'identity') return this.sendStatus({ code: GrpcCode.INTERNAL, details: 'grpc: compressed flag set with identity or empty encoding' });
        else return this.sendStatus({ code: GrpcCode.UNIMPLEMENTED, details: `grpc: Decompressor is not installed for grpc-encoding "${enc}"` });
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
          return this.sendStatus({ code: GrpcCode.RESOURCE_EXHAUSTED, details: `grpc: received message after decompression larger than max (${maxOutputLength})` });
        }
        return this.sendStatus({ code: GrpcCode.INTERNAL, details: `grpc: failed to decompress the received message: ${(err as Error).message}` });
      }
    }
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
    call.admit = this.opts.admit;
    stream.listener = call;
    if (method.def.requestStream) call.start();
  }

  private readonly shutdownHooks: (() => void)[] = [];

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
