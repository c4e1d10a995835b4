// Request IDs as etcd's idutil makes them: the member's low 16 bits on top (so members never collide),
// then a 48-bit counter seeded from the clock (so a restart does not reuse recent IDs). Every write
// carries its ID in InternalRaftRequest.header.ID; the member that proposed it recognises the entry
// when it is applied, whichever member's log it came through.
//
// The ID is kept as two numbers (16-bit prefix, 48-bit sequence) so the hot path needs no BigInt.

const SEQ_MOD = 2 ** 48;
const TWO32 = 2 ** 32;

export interface RequestId {
  prefix: number;
  seq: number;
}

export class RequestIdGenerator {
  readonly prefix: number;
  private seq: number;

  constructor(memberId: bigint, nowMs: number) {
    this.prefix = Number(BigInt.asUintN(64, memberId) & 0xffffn);
    // etcd: the low 40 bits of the time in ms, shifted left by 8 (the count).
    this.seq = (nowMs % 2 ** 40) * 256;
  }

  next(): number {
    this.seq = (this.seq + 1) % SEQ_MOD;
    return this.seq;
  }

  /** InternalRaftRequest.header (field 100) holding RequestHeader.ID (field 1) = this member's id for seq. */
  header(seq: number): Buffer {
    const hi = this.prefix * 65536 + Math.floor(seq / TWO32);
    const lo = seq % TWO32;
    const idBytes = varint64Size(hi, lo);
    const inner = 1 + idBytes;
    const out = Buffer.allocUnsafe(2 + 1 + inner);
    out[0] = 0xa2; // (100 << 3) | 2, as a two-byte varint
    out[1] = 0x06;
    out[2] = inner;
    out[3] = 0x08; // (1 << 3) | 0
    writeVarint64(out, 4, hi, lo);
    return out;
  }

  static toBigInt(id: RequestId): bigint {
    return (BigInt(id.prefix) << 48n) | BigInt(id.seq);
  }
}

/**
 * The request ID of an entry written with RequestIdGenerator.header (the header first), or undefined.
 * Reads a few bytes; does not decode the request.
 */
export function readRequestId(buf: Buffer): RequestId | undefined {
  if (buf.length < 5 || buf[0] !== 0xa2 || buf[1] !== 0x06 || buf[3] !== 0x08) return undefined;
  let lo = 0;
  let hi = 0;
  let shift = 0;
  let pos = 4;
  const end = Math.min(buf.length, 3 + buf[2]);
  for (; pos < end; pos++) {
    const b = buf[pos];
    const bits = b & 0x7f;
    if (shift < 28) lo += bits * 2 ** shift;
    else if (shift === 28) {
      lo += (bits & 0x0f) * 2 ** 28;
      hi += bits >>> 4;
    } else hi += bits * 2 ** (shift - 32);
    shift += 7;
    if ((b & 0x80) === 0) return { prefix: Math.floor(hi / 65536), seq: (hi % 65536) * TWO32 + lo };
  }
  return undefined;
}

function varint64Size(hi: number, lo: number): number {
  let n = 1;
  while (hi > 0 || lo >= 128) {
    lo = Math.floor(lo / 128) + (hi % 128) * 2 ** 25;
    hi = Math.floor(hi / 128);
    n++;
  }
  return n;
}

function writeVarint64(out: Buffer, pos: number, hi: number, lo: number): number {
  while (hi > 0 || lo >= 128) {
    out[pos++] = (lo % 128) | 0x80;
    lo = Math.floor(lo / 128) + (hi % 128) * 2 ** 25;
    hi = Math.floor(hi / 128);
  }
  out[pos++] = lo;
  return pos;
}
