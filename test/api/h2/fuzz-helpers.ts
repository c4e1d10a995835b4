import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import fc from 'fast-check';
import { GrpcServer, type MethodDefinition, type ServerCall } from '../../../src/api/h2/grpc-server';
import type { H2Connection } from '../../../src/api/h2/connection';
import { HpackDecoder, literalField } from '../../../src/api/h2/hpack';

// Shared by the fuzz-*.test.ts files (issue #16): fast-check parameters, frame writing/reading, an in-process
// H2Connection behind a fake socket with a small test gRPC service, and byte-stream mutators.
//
// Runs are small by default so CI stays fast. Longer local runs / replays:
//   FC_RUNS=100000 npx vitest run test/api/h2/fuzz-
//   FC_SEED=-123456 FC_PATH='12:0:3' npx vitest run test/api/h2/fuzz-frames.test.ts   (seed and path fast-check printed)

/** fast-check parameters: numRuns scaled by FC_RUNS (the number for the cheapest properties), seed/path from FC_SEED/FC_PATH. */
export function fcParams(defaultRuns: number, scale = 1): fc.Parameters<unknown> {
  const base = process.env.FC_RUNS ? Number(process.env.FC_RUNS) : undefined;
  const numRuns = base !== undefined ? Math.max(1, Math.round(base * scale)) : defaultRuns;
  const p: fc.Parameters<unknown> = { numRuns, endOnFailure: false };
  if (process.env.FC_SEED) p.seed = Number(process.env.FC_SEED);
  if (process.env.FC_PATH) p.path = process.env.FC_PATH;
  return p;
}

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
export const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4, STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9 } as const;

export function frame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id >>> 0, 5);
  return Buffer.concat([h, payload]);
}

export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
};

export function settingsPayload(entries: [number, number][]): Buffer {
  const b = Buffer.alloc(entries.length * 6);
  entries.forEach(([k, v], i) => {
    b.writeUInt16BE(k, i * 6);
    b.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return b;
}

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/** Splits bytes into frames; rest: an incomplete frame at the end. */
export function parseFrames(buf: Buffer): { frames: Frame[]; rest: number } {
  const frames: Frame[] = [];
  let off = 0;
  while (buf.length - off >= 9) {
    const len = buf.readUIntBE(off, 3);
    if (buf.length - off - 9 < len) break;
    frames.push({ type: buf[off + 3], flags: buf[off + 4], id: buf.readUInt32BE(off + 5) & 0x7fffffff, payload: buf.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return { frames, rest: buf.length - off };
}

/** A length-prefixed gRPC message. */
export function grpcMessage(payload: Buffer, flag = 0): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = flag;
  b.writeUInt32BE(payload.length, 1);
  payload.copy(b, 5);
  return b;
}

/** A request header block (literals only, as the existing encoder writes them). */
export function requestBlock(path: string, extra: [string, string][] = []): Buffer {
  return Buffer.concat([
    literalField(':method', 'POST'),
    literalField(':scheme', 'http'),
    literalField(':path', path),
    literalField(':authority', 'localhost'),
    literalField('content-type', 'application/grpc'),
    literalField('te', 'trailers'),
    ...extra.map(([n, v]) => literalField(n, v)),
  ]);
}

// --- the fake socket and the test service ---

/**
 * What H2Connection / GrpcServer use of a net.Socket: 'data' in (held back while paused, as a real socket
 * does), write/end/destroy/pause/resume/setNoDelay/writableLength out.
 */
export class FakeSocket extends EventEmitter {
  readonly writes: Buffer[] = [];
  /** Bytes written after end() or destroy() (must stay empty). */
  writesAfterEnd = 0;
  ended = false;
  destroyed = false;
  paused = false;
  pauseCount = 0;
  writableLength = 0;
  remoteAddress = '127.0.0.1';
  remotePort = 1;
  /** Exceptions thrown by 'data' handlers when delivered after a resume (must stay empty). */
  readonly asyncErrors: unknown[] = [];
  private readonly incoming: Buffer[] = [];
  setNoDelay(): this {
    return this;
  }
  write(b: Buffer): boolean {
    if (this.ended || this.destroyed) this.writesAfterEnd += b.length;
    this.writes.push(Buffer.from(b));
    return true;
  }
  end(): this {
    this.ended = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  pause(): this {
    if (!this.paused) this.pauseCount++;
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    process.nextTick(() => {
      try {
        this.deliver();
      } catch (err) {
        this.asyncErrors.push(err);
      }
    });
    return this;
  }
  /** Bytes from the peer: delivered now unless paused (an exception of a handler propagates). */
  receive(b: Buffer): void {
    this.incoming.push(b);
    this.deliver();
  }
  private deliver(): void {
    while (!this.paused && !this.destroyed && this.incoming.length) this.emit('data', this.incoming.shift());
  }
  get pending(): number {
    return this.incoming.length;
  }
  output(): Buffer {
    return Buffer.concat(this.writes);
  }
}

const ident = (b: Buffer) => b;
const method = (path: string, requestStream: boolean, responseStream: boolean): MethodDefinition => ({
  path,
  requestStream,
  responseStream,
  requestDeserialize: ident,
  responseSerialize: ident,
});

export const PATHS = {
  unary: '/fuzz.Test/Unary',
  bidi: '/fuzz.Test/Bidi',
  collect: '/fuzz.Test/Collect',
  hang: '/fuzz.Test/Hang',
} as const;

/** The test service: Unary echoes; Bidi echoes each message and ends on the client's end; Collect answers OK on end; Hang never answers. */
export const TEST_SERVICE = {
  Unary: method(PATHS.unary, false, false),
  Bidi: method(PATHS.bidi, true, true),
  Collect: method(PATHS.collect, true, false),
  Hang: method(PATHS.hang, false, true),
};

export interface Harness {
  server: GrpcServer;
  socket: FakeSocket;
  conn: H2Connection;
  /** Messages the handlers received, per stream id, in order. */
  received: Map<number, Buffer[]>;
  /** Feeds chunks (synchronously unless the connection paused the socket; an exception escaping a 'data' handler propagates). */
  feed(chunks: Buffer[]): void;
  /** Lets the connection's setImmediate flushes run. */
  settle(): Promise<void>;
  /**
   * For work off the event loop (compressed messages are inflated in zlib's threadpool): waits until done()
   * holds (default: always) and nothing has been written for quietMs, at most maxMs.
   */
  settleQuiet(done?: () => boolean, quietMs?: number, maxMs?: number): Promise<void>;
}

/** Keepalive enforcement off (no ping strikes), for runs that must see no connection error. */
export const NO_PING_POLICY: H2Extra = { keepaliveMinTimeMs: 0, keepalivePermitWithoutStream: true };
export type H2Extra = NonNullable<ConstructorParameters<typeof GrpcServer>[0]['h2']>;

export function harness(maxReceiveMessageBytes = 4 * 1024 * 1024, h2: H2Extra = {}): Harness {
  const received = new Map<number, Buffer[]>();
  const rec = (call: ServerCall, m: Buffer) => {
    const id = (call as unknown as { stream: { id: number } }).stream.id;
    let l = received.get(id);
    if (!l) received.set(id, (l = []));
    l.push(m);
  };
  const server = new GrpcServer({ maxReceiveMessageBytes, h2 });
  server.addService(TEST_SERVICE, {
    Unary: (call: ServerCall, cb: (e: unknown, v?: unknown) => void) => {
      rec(call, call.request);
      cb(null, call.request);
    },
    Bidi: (call: ServerCall) => {
      call.on('data', (m: Buffer) => {
        rec(call, m);
        call.write(m);
      });
      call.on('end', () => call.end());
    },
    Collect: (call: ServerCall) => {
      let n = 0;
      call.on('data', (m: Buffer) => {
        rec(call, m);
        n++;
      });
      call.on('end', () => call.callback(null, Buffer.from(String(n))));
    },
    Hang: () => {},
  });
  const socket = new FakeSocket();
  server.injectConnection(socket as unknown as net.Socket);
  const conn = [...(server as unknown as { conns: Set<H2Connection> }).conns][0];
  return {
    server,
    socket,
    conn,
    received,
    feed(chunks) {
      for (const c of chunks) socket.receive(c);
    },
    async settle() {
      // Flushes (setImmediate), yields after many frames (setImmediate + resume on nextTick): until quiet.
      for (let i = 0; i < 3 || ((socket.pending > 0 || socket.paused) && !socket.destroyed && !socket.ended && i < 10_000); i++) await new Promise((r) => setImmediate(r));
    },
    async settleQuiet(done = () => true, quietMs = 5, maxMs = 5000) {
      const start = Date.now();
      let seen = -1;
      let since = Date.now();
      for (;;) {
        await this.settle();
        const n = socket.writes.length;
        if (n !== seen) {
          seen = n;
          since = Date.now();
        }
        if ((done() && Date.now() - since >= quietMs) || Date.now() - start > maxMs) return;
        await new Promise((r) => setTimeout(r, 1));
      }
    },
  };
}

/** Bytes the connection holds for the peer's input: the unparsed frame, the header block being continued, the streams' partial messages. */
export function bufferedBytes(conn: H2Connection): number {
  const c = conn as unknown as { leftover?: Buffer; blockParts: Buffer[]; streams: Map<number, { partsBytes?: number }> };
  let n = c.leftover?.length ?? 0;
  for (const p of c.blockParts ?? []) n += p.length;
  for (const s of c.streams.values()) n += s.partsBytes ?? 0;
  return n;
}

/** The gRPC status of each answered stream (from response HEADERS carrying grpc-status), decoded with our decoder. */
export function grpcStatuses(frames: Frame[]): Map<number, { code: number; message: string }> {
  const dec = new HpackDecoder();
  const out = new Map<number, { code: number; message: string }>();
  for (const f of frames) {
    if (f.type !== T.HEADERS) continue;
    let code = -1;
    let message = '';
    dec.decode(f.payload, (n, v) => {
      if (n === 'grpc-status') code = Number(v);
      if (n === 'grpc-message') message = decodeURIComponent(v);
    });
    if (code >= 0) out.set(f.id, { code, message });
  }
  return out;
}

/** The gRPC messages in the response DATA of one stream. */
export function responseMessages(frames: Frame[], id: number): Buffer[] {
  const data = Buffer.concat(frames.filter((f) => f.type === T.DATA && f.id === id).map((f) => f.payload));
  const out: Buffer[] = [];
  let off = 0;
  while (data.length - off >= 5) {
    const len = data.readUInt32BE(off + 1);
    out.push(data.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

export function goAway(frames: Frame[]): { last: number; code: number } | undefined {
  const g = frames.find((f) => f.type === T.GOAWAY);
  return g && g.payload.length >= 8 ? { last: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) } : undefined;
}

export function rstCodes(frames: Frame[], id?: number): number[] {
  return frames.filter((f) => f.type === T.RST_STREAM && (id === undefined || f.id === id)).map((f) => f.payload.readUInt32BE(0));
}

// --- arbitraries on byte streams ---

/** Cut points for splitting a buffer of length n into chunks (sorted, distinct, inside 1..n-1). */
export const cutsArb = fc.array(fc.nat(), { maxLength: 24 });

export function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  if (buf.length < 2) return [buf];
  const pts = [...new Set(cuts.map((c) => 1 + (c % (buf.length - 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** One edit of a byte stream: flip, set, truncate, insert random bytes, duplicate or delete a range, splice in another stream. */
export type Mutation =
  | { k: 'flip'; at: number; mask: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'truncate'; at: number }
  | { k: 'insert'; at: number; bytes: Uint8Array }
  | { k: 'dup'; at: number; len: number; to: number }
  | { k: 'del'; at: number; len: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('set' as const), at: fc.nat(), v: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 4, 9) }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ k: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }), to: fc.nat() }),
  fc.record({ k: fc.constant('del' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 32 }) }),
);

/** Applies mutations to buf, leaving the first `keep` bytes (e.g. the preface) alone. */
export function mutate(buf: Buffer, muts: Mutation[], keep = 0): Buffer {
  let b = Buffer.from(buf);
  for (const m of muts) {
    const n = b.length - keep;
    if (n <= 0 && m.k !== 'insert') continue;
    const at = keep + (n > 0 ? m.at % n : 0);
    switch (m.k) {
      case 'flip':
        b[at] ^= m.mask;
        break;
      case 'set':
        b[at] = m.v;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case 'dup': {
        const piece = Buffer.from(b.subarray(at, at + m.len));
        const to = keep + (m.to % (b.length - keep + 1));
        b = Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
        break;
      }
      case 'del':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
    }
  }
  return b;
}

export const hex = (b: Buffer) => b.toString('hex');
