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

  /**
   * InternalRaftRequest.header (field 100) holding RequestHeader.ID (field 1) = this member's id for seq;
   * with auth, also username (field 2) and auth_revision (field 3), as etcd stamps a request with the
   * user its token stands for (checked again when the entry is applied).
   */
  header(seq: number, auth?: { username: string; revision: number }): Buffer {
    const hi = this.prefix * 65536 + Math.floor(seq / TWO32);
    const lo = seq % TWO32;
    const idBytes = varint64Size(hi, lo);
    if (!auth) {
      const inner = 1 + idBytes;
      const out = Buffer.allocUnsafe(2 + 1 + inner);
      out[0] = 0xa2; // (100 << 3) | 2, as a two-byte varint
      out[1] = 0x06;
      out[2] = inner;
      out[3] = 0x08; // (1 << 3) | 0
      writeVarint64(out, 4, hi, lo);
      return out;
    }
    const user = Buffer.from(auth.username, 'utf8');
    const revHi = Math.floor(auth.revision / TWO32);
    const revLo = auth.revision % TWO32;
    const inner = 1 + idBytes
      + (user.length ? 1 + varint64Size(0, user.length) + user.length : 0)
      + (auth.revision ? 1 + varint64Size(revHi, revLo) : 0);
    const out = Buffer.allocUnsafe(2 + varint64Size(0, inner) + inner);
    out[0] = 0xa2;
    out[1] = 0x06;
    let pos = writeVarint64(out, 2, 0, inner);
    out[pos++] = 0x08;
    pos = writeVarint64(out, pos, hi, lo);
    if (user.length) {
      out[pos++] = 0x12; // (2 << 3) | 2
      pos = writeVarint64(out, pos, 0, user.length);
      pos += user.copy(out, pos);
    }
    if (auth.revision) {
      out[pos++] = 0x18; // (3 << 3) | 0
      writeVarint64(out, pos, revHi, revLo);
    }
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
  const h = headerBounds(buf);
  if (!h || buf[h.start] !== 0x08) return undefined;
  const id = readVarint64(buf, h.start + 1, h.end);
  return id && { prefix: Math.floor(id.hi / 65536), seq: (id.hi % 65536) * TWO32 + id.lo };
}

/**
 * The user and auth revision an entry's header carries (etcd's RequestHeader username / auth_revision):
 * '' and 0 where the request came without a token or from the server itself.
 */
export function readRequestAuth(buf: Buffer): { username: string; revision: number } {
  const out = { username: '', revision: 0 };
  const h = headerBounds(buf);
  if (!h) return out;
  let pos = h.start;
  while (pos < h.end) {
    const tag = buf[pos++];
    const v = readVarint64(buf, pos, h.end);
    if (!v) break;
    pos = v.pos;
    if (tag === 0x12) {
      out.username = buf.toString('utf8', pos, Math.min(h.end, pos + v.lo));
      pos += v.lo;
    } else if (tag === 0x18) out.revision = v.hi * TWO32 + v.lo;
    else if ((tag & 7) === 2) pos += v.lo;
    else if ((tag & 7) !== 0) break;
  }
  return out;
}

/** Where the header's fields are (the header first, as written by RequestIdGenerator.header). */
function headerBounds(buf: Buffer): { start: number; end: number } | undefined {
  if (buf.length < 5 || buf[0] !== 0xa2 || buf[1] !== 0x06) return undefined;
  const len = readVarint64(buf, 2, Math.min(buf.length, 5));
  if (!len) return undefined;
  return { start: len.pos, end: Math.min(buf.length, len.pos + len.lo) };
}

/** A varint of up to 64 bits as two numbers, and the position after it; undefined if cut short. */
function readVarint64(buf: Buffer, pos: number, end: number): { hi: number; lo: number; pos: number } | undefined {
  let lo = 0;
  let hi = 0;
  let shift = 0;
  for (; pos < end && shift < 70; pos++) {
    const b = buf[pos];
    const bits = b & 0x7f;
    if (shift < 28) lo += bits * 2 ** shift;
    else if (shift === 28) {
      lo += (bits & 0x0f) * 2 ** 28;
      hi += bits >>> 4;
    } else hi += bits * 2 ** (shift - 32);
    shift += 7;
    if ((b & 0x80) === 0) return { hi, lo, pos: pos + 1 };
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
