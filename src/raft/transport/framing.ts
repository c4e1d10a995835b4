// Frames on an established peer connection: [u32 BE payload length][u8 frame type][payload].
// The parser holds at most one incomplete frame (its header and up to maxFrameBytes of payload, plus
// the rest of the socket read it arrived in), so a peer cannot make us buffer more than that.

import { ProtocolError } from './errors';

export const FrameType = {
  /** A batch of raft messages (message-codec's batch encoding). */
  MESSAGES: 1,
  /** u32 request id | u16 kind length | kind (UTF-8) | body. */
  REQUEST: 2,
  /** u32 request id | u8 status (0 ok: body follows; 1 the handler failed: UTF-8 message follows). */
  RESPONSE: 3,
  /** 8 opaque bytes the receiver echoes in a PONG (keeps an idle link alive, measures RTT). */
  PING: 4,
  PONG: 5,
  /**
   * MEMBERS connection, acceptor to dialer, the only frame on it: the acceptor's membersInfo() bytes
   * (opaque to the transport; the server sends JSON), at most MAX_MEMBERS_BYTES.
   */
  MEMBERS: 6,
  /** Snapshot connection: u64 file size | the MsgSnap (message-codec's single-message encoding). */
  SNAP_HEADER: 16,
  /** Snapshot connection: the next bytes of the file. */
  SNAP_CHUNK: 17,
  /** Snapshot connection: u64 total length | 32-byte SHA-256 of the file. */
  SNAP_END: 18,
  /** Snapshot connection, receiver to sender: u8 status (0 stored, 1 refused) | UTF-8 reason. */
  SNAP_RESULT: 19,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_BYTES = 5;

export function writeFrameHeader(buf: Buffer, pos: number, type: number, payloadLength: number): number {
  buf.writeUInt32BE(payloadLength, pos);
  buf[pos + 4] = type;
  return pos + FRAME_HEADER_BYTES;
}

/** A whole frame around payload (for small control frames; the hot path writes in place). */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, type, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frames. push() calls onFrame for each complete frame, in order; a frame
 * whose declared length exceeds maxFrameBytes throws a ProtocolError before anything is buffered for
 * it. Payloads are views of the pushed chunks (valid as long as the caller keeps them). pause() stops
 * delivery after the current frame (the rest of the chunk waits, to be delivered by resume()); after
 * stop(), nothing more is delivered (the connection is being closed).
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private stopped = false;
  private paused = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (type: number, payload: Buffer) => void,
  ) {}

  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.buffered = 0;
  }

  pause(): void {
    this.paused = true;
  }

  /** Delivers what waited while paused (may throw as push() does). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.deliver();
  }

  /** Bytes held: an incomplete frame, or what a pause left of the last chunk. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.deliver();
  }

  private deliver(): void {
    while (!this.stopped && !this.paused && this.buffered >= FRAME_HEADER_BYTES) {
      let first = this.chunks[0];
      if (first.length < FRAME_HEADER_BYTES) {
        // A header split across reads: join the chunks (rare and small).
        first = Buffer.concat(this.chunks, this.buffered);
        this.chunks = [first];
      }
      const len = first.readUInt32BE(0);
      if (len > this.maxFrameBytes) {
        this.stop();
        throw new ProtocolError(`frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`);
      }
      const total = FRAME_HEADER_BYTES + len;
      if (this.buffered < total) return;
      let frame: Buffer;
      if (first.length >= total) {
        // The common case: the frame lies in one read; no copy.
        frame = first.subarray(0, total);
        if (first.length === total) this.chunks.shift();
        else this.chunks[0] = first.subarray(total);
      } else {
        // A frame spanning reads is copied once, when all of it is in.
        frame = Buffer.allocUnsafe(total);
        let at = 0;
        while (at < total) {
          const c = this.chunks[0];
          const n = Math.min(c.length, total - at);
          c.copy(frame, at, 0, n);
          at += n;
          if (n === c.length) this.chunks.shift();
          else this.chunks[0] = c.subarray(n);
        }
      }
      this.buffered -= total;
      this.onFrame(frame[4], frame.subarray(FRAME_HEADER_BYTES));
    }
  }
}
