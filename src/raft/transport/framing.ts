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
 * it. Payloads are views of the pushed chunks (valid as long as the caller keeps them). After stop(),
 * push() ignores the rest (the connection is being closed).
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Total bytes (header + payload) of the frame being assembled; -1 until its header is in. */
  private frameBytes = -1;
  private stopped = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (type: number, payload: Buffer) => void,
  ) {}

  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.buffered = 0;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    let buf = chunk;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.frameBytes < 0 && this.buffered >= FRAME_HEADER_BYTES) this.frameBytes = this.frameLength(Buffer.concat(this.chunks, FRAME_HEADER_BYTES), 0);
      // Assemble only once the whole frame is in: a large frame arriving in many reads is copied once.
      if (this.frameBytes < 0 || this.buffered < this.frameBytes) return;
      buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let off = 0;
    const end = buf.length;
    while (off < end) {
      if (end - off < FRAME_HEADER_BYTES) break;
      const total = this.frameLength(buf, off);
      if (end - off < total) break;
      const type = buf[off + 4];
      const payload = buf.subarray(off + FRAME_HEADER_BYTES, off + total);
      off += total;
      this.frameBytes = -1;
      this.onFrame(type, payload);
      if (this.stopped) return;
    }
    if (off < end) {
      const rest = buf.subarray(off);
      this.chunks = [rest];
      this.buffered = rest.length;
      this.frameBytes = rest.length >= FRAME_HEADER_BYTES ? this.frameLength(rest, 0) : -1;
    } else {
      this.frameBytes = -1;
    }
  }

  private frameLength(buf: Buffer, off: number): number {
    const len = buf.readUInt32BE(off);
    if (len > this.maxFrameBytes) {
      this.stop();
      throw new ProtocolError(`frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`);
    }
    return FRAME_HEADER_BYTES + len;
  }
}
