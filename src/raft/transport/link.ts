// One established (post-handshake) peer connection, of either kind: frame parsing, byte counters,
// liveness (PING when we have been quiet, close when the peer has been silent for idleTimeoutMs),
// read pausing, and a single close path. What the frames mean is the owner's business (onFrame).

import type * as net from 'node:net';
import type { NodeId } from '../core/types';
import { CodecError, ProtocolError } from './errors';
import { FrameParser, FrameType, FRAME_HEADER_BYTES, writeFrameHeader, encodeFrame } from './framing';
import { hex, type ConnectionKind } from './handshake';
import type { Logger } from './options';

export interface LinkCounters {
  sentBytes: number;
  receivedBytes: number;
  writes: number;
}

export interface LinkConfig {
  peerId: NodeId;
  kind: ConnectionKind;
  maxFrameBytes: number;
  /** Above this many unflushed bytes the link sends no PING/PONG (a stuck peer gets nothing more). */
  writeHighWaterBytes: number;
  counters: LinkCounters;
  log: Logger;
}

const PING_PAYLOAD_BYTES = 8;

export class Link {
  readonly socket: net.Socket;
  readonly peerId: NodeId;
  readonly kind: ConnectionKind;
  readonly openedAt = Date.now();
  lastReceivedAt = Date.now();
  lastSentAt = Date.now();
  /** Round-trip time of the last PING, in ms. */
  rttMs: number | undefined;
  closed = false;
  /** Requests from the peer whose handlers have not answered yet (stream links). */
  inflightRequests = 0;
  private readPaused = false;
  /** We half-closed after a last answer: the peer closing now is the expected end. */
  private ending = false;
  private readonly parser: FrameParser;
  private readonly cfg: LinkConfig;
  /** Set by the owner: every frame other than PING/PONG. Throwing ProtocolError/CodecError closes the link. */
  onFrame: (type: number, payload: Buffer) => void = () => {
    throw new ProtocolError('no frames expected');
  };
  /** Set by the owner: called once, when the link has closed for any reason. */
  onClose: (reason: string) => void = () => {};
  /** Set by the owner: a write reached the kernel (the socket may have room for queued output). */
  onWritten: () => void = () => {};
  private readonly afterWrite = (err?: Error | null): void => {
    if (!err && !this.closed) this.onWritten();
  };

  constructor(socket: net.Socket, rest: Buffer, cfg: LinkConfig) {
    this.socket = socket;
    this.peerId = cfg.peerId;
    this.kind = cfg.kind;
    this.cfg = cfg;
    this.parser = new FrameParser(cfg.maxFrameBytes, (type, payload) => this.dispatch(type, payload));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`connection error: ${err.message}`, 'warn'));
    socket.on('close', () => (this.ending ? this.close('done', 'debug') : this.close('connection closed by the peer', 'info')));
    if (rest.length > 0) {
      // Bytes that came in the same read as the handshake: they are the first frames. Handled after
      // the owner has set its callbacks.
      process.nextTick(() => this.onData(rest));
    }
    process.nextTick(() => {
      if (!this.closed && !this.readPaused) socket.resume();
    });
  }

  get name(): string {
    return `${this.kind === 1 ? 'stream' : 'snapshot'} link to peer ${hex(this.peerId)}`;
  }

  /**
   * Hands bytes to the socket (onWritten follows once they reach the kernel). Returns false when the
   * socket's buffer is full (see 'drain').
   */
  write(buf: Buffer): boolean {
    if (this.closed) return false;
    this.cfg.counters.sentBytes += buf.length;
    this.cfg.counters.writes++;
    this.lastSentAt = Date.now();
    return this.socket.write(buf, this.afterWrite);
  }

  /** Unflushed bytes in the socket. */
  get pendingWriteBytes(): number {
    return this.socket.writableLength;
  }

  /** Stops reading (the owner's consumer is behind); the link is not idle-closed meanwhile. */
  pauseReading(): void {
    if (this.readPaused || this.closed) return;
    this.readPaused = true;
    this.parser.pause();
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.lastReceivedAt = Date.now();
    // Frames left in the last read go first; handling them may pause reading again.
    this.guarded(() => this.parser.resume());
    if (!this.readPaused && !this.closed) this.socket.resume();
  }

  get isReadPaused(): boolean {
    return this.readPaused;
  }

  /** Periodic liveness check (the transport's one timer calls it for every link). */
  tick(now: number, idleTimeoutMs: number, pingIntervalMs: number): void {
    if (this.closed) return;
    if (!this.readPaused && now - this.lastReceivedAt > idleTimeoutMs) {
      this.close(`nothing received for ${now - this.lastReceivedAt} ms (idle timeout ${idleTimeoutMs} ms)`, 'warn');
      return;
    }
    if (now - this.lastSentAt >= pingIntervalMs && this.pendingWriteBytes <= this.cfg.writeHighWaterBytes) {
      const ping = Buffer.allocUnsafe(FRAME_HEADER_BYTES + PING_PAYLOAD_BYTES);
      writeFrameHeader(ping, 0, FrameType.PING, PING_PAYLOAD_BYTES);
      ping.writeDoubleBE(performance.now(), FRAME_HEADER_BYTES);
      this.write(ping);
    }
  }

  /** Closes the link (idempotent): destroys the socket, stops parsing, tells the owner once. */
  close(reason: string, level: 'debug' | 'info' | 'warn' | 'error' = 'info'): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.stop();
    this.socket.destroy();
    this.cfg.log(level, `closed ${this.name}: ${reason}`, { peer: hex(this.peerId), kind: this.kind });
    this.onClose(reason);
  }

  /** Writes buf, then half-closes and lets the socket finish (used to send a last answer). */
  end(buf?: Buffer): void {
    if (this.closed) return;
    if (buf) this.write(buf);
    this.ending = true;
    this.socket.end();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.cfg.counters.receivedBytes += chunk.length;
    this.lastReceivedAt = Date.now();
    this.guarded(() => this.parser.push(chunk));
  }

  /** Runs parsing; a bad frame closes the link with a log line, never escapes. */
  private guarded(parse: () => void): void {
    try {
      parse();
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof CodecError) this.close(`protocol error: ${err.message}`, 'warn');
      else this.close(`internal error handling a frame: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 'error');
    }
  }

  private dispatch(type: number, payload: Buffer): void {
    if (this.closed) return;
    if (type === FrameType.PING) {
      if (payload.length !== PING_PAYLOAD_BYTES) throw new ProtocolError(`PING of ${payload.length} bytes`);
      // A peer that pings but never reads gets no more PONGs once our buffer to it is full.
      if (this.pendingWriteBytes <= this.cfg.writeHighWaterBytes) this.write(encodeFrame(FrameType.PONG, payload));
      return;
    }
    if (type === FrameType.PONG) {
      if (payload.length !== PING_PAYLOAD_BYTES) throw new ProtocolError(`PONG of ${payload.length} bytes`);
      const sent = payload.readDoubleBE(0);
      const rtt = performance.now() - sent;
      if (rtt >= 0 && rtt < 3_600_000) this.rttMs = rtt;
      return;
    }
    this.onFrame(type, payload);
  }
}
