// A raw HTTP/2 client for transport tests: frames written and read by hand on a plain socket, so that a
// test can behave as no real client would (never read, never stop sending, break the rules) and see
// exactly which frames the server answers with.
import * as net from 'node:net';
import { literalField } from '../../src/api/h2/hpack';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
export const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 0xb } as const;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

/** SETTINGS payload from [id, value] pairs. */
export function settings(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([k, v], i) => {
    b.writeUInt16BE(k, 6 * i);
    b.writeUInt32BE(v >>> 0, 6 * i + 2);
  });
  return b;
}

/** A gRPC request's header block (literals only): POST path, content-type application/grpc. */
export function requestBlock(path: string, extra: [string, string][] = []): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table)
    literalField(':path', path),
    literalField(':authority', 'localhost'),
    literalField('content-type', 'application/grpc'),
    literalField('te', 'trailers'),
    ...extra.map(([n, v]) => literalField(n, v)),
  ]);
}

/** One length-prefixed gRPC message. */
export function grpcMessage(body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(body.length, 1);
  return Buffer.concat([h, body]);
}

/** The value of a SETTINGS parameter in a frame's payload, or undefined. */
export function settingOf(f: Frame, id: number): number | undefined {
  for (let i = 0; i + 6 <= f.payload.length; i += 6) if (f.payload.readUInt16BE(i) === id) return f.payload.readUInt32BE(i + 2);
  return undefined;
}

/** A raw connection: the preface and an empty SETTINGS sent on connect; the server's frames collected as they come. */
export class RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[] = [];
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  readonly connected: Promise<void>;

  constructor(port: number, opts: { read?: boolean } = {}) {
    this.socket = net.connect(port, '127.0.0.1');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    // Not reading: the kernel's buffers fill and the server's writes back up.
    if (opts.read === false) this.socket.pause();
  }

  send(b: Buffer): boolean {
    return this.socket.write(b);
  }

  /** Starts reading (after a test held the socket paused). */
  read(): void {
    this.socket.resume();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 9 && this.buf.length >= 9 + this.buf.readUIntBE(0, 3)) {
      const len = this.buf.readUIntBE(0, 3);
      this.frames.push({ type: this.buf[3], flags: this.buf[4], id: this.buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(this.buf.subarray(9, 9 + len)) });
      this.buf = this.buf.subarray(9 + len);
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves with the first frame matching, or undefined after ms (or once the connection closed). */
  async waitFor(pred: (f: Frame) => boolean, ms: number): Promise<Frame | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f || this.closed || Date.now() >= deadline) return f;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves true once the server closed the connection, false after ms. */
  async waitClosed(ms: number): Promise<boolean> {
    await this.waitFor(() => false, ms);
    return this.closed;
  }

  goAway(): { code: number; debug: string } | undefined {
    const g = this.frames.find((f) => f.type === T.GOAWAY);
    return g && { code: g.payload.readUInt32BE(4), debug: g.payload.subarray(8).toString() };
  }

  rstCode(id: number): number | undefined {
    const r = this.frames.find((f) => f.type === T.RST_STREAM && f.id === id);
    return r?.payload.readUInt32BE(0);
  }

  close(): void {
    this.socket.destroy();
  }
}
