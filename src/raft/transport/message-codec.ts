// The peer transport's encoding of raft Messages: fixed-width big-endian fields, no tags, so the hot
// pair (MsgApp with a few entries, MsgAppResp) encodes with one size pass and one write pass into a
// buffer the caller allocates once per batch, and decodes with bounds checks only.
//
// Message:
//   u8 type | u8 flags (1 reject, 2 snapshot follows, 4 context follows)
//   u64 to | u64 from | u64 term | u64 logTerm | u64 index | u64 commit | u64 rejectHint
//   u32 entryCount, then per entry: u64 index | u64 term | u8 type | u32 dataLength | data
//   [snapshot: u64 index | u64 term | u32 voterCount | u64 voter… | u32 learnerCount | u64 learner…]
//   [context: u32 length | bytes]
// Batch: u32 count | Message…
//
// Numbers (term, index, …) are JS numbers, so on the wire they are u64 limited to 2^53 - 1; a larger
// value is a CodecError on both sides. Member ids are full u64 bigints.

import { MessageType, type Entry, type Message, type Snapshot } from '../core/types';
import { CodecError } from './errors';

export const MESSAGE_HEADER_BYTES = 2 + 7 * 8 + 4;
export const ENTRY_HEADER_BYTES = 8 + 8 + 1 + 4;
const SNAPSHOT_FIXED_BYTES = 8 + 8 + 4 + 4;

const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const FLAG_CONTEXT = 4;
const KNOWN_FLAGS = FLAG_REJECT | FLAG_SNAPSHOT | FLAG_CONTEXT;

const MAX_MESSAGE_TYPE = MessageType.MsgPreVoteResp;
const MAX_ENTRY_TYPE = 1;
/** More members than any raft group has; bounds what a decoder allocates for a conf state. */
export const MAX_CONF_MEMBERS = 65_536;
const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const TWO_32 = 4_294_967_296;
/** The high word of Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH = 0x1f_ffff;

// ---- encoding -------------------------------------------------------------------------------

function checkNumber(n: unknown, what: string): void {
  if (!Number.isSafeInteger(n) || (n as number) < 0) throw new CodecError(`${what} must be an integer in [0, 2^53), got ${String(n)}`);
}

function checkId(id: unknown, what: string): void {
  if (typeof id !== 'bigint' || id < 0n || id > U64_MAX) throw new CodecError(`${what} must be a u64 bigint, got ${String(id)}`);
}

function checkBytes(b: unknown, what: string): number {
  if (!(b instanceof Uint8Array)) throw new CodecError(`${what} must be a Buffer`);
  if (b.length > U32_MAX) throw new CodecError(`${what} is longer than 2^32 - 1 bytes`);
  return b.length;
}

/**
 * The exact number of bytes writeMessage() will write for m. Validates every field on the way
 * (types in range, numbers safe, ids u64, buffers), so that writeMessage cannot fail halfway.
 */
export function encodedMessageSize(m: Message): number {
  if (!Number.isInteger(m.type) || m.type < 0 || m.type > MAX_MESSAGE_TYPE) throw new CodecError(`unknown message type ${String(m.type)}`);
  checkId(m.to, 'to');
  checkId(m.from, 'from');
  checkNumber(m.term, 'term');
  checkNumber(m.logTerm, 'logTerm');
  checkNumber(m.index, 'index');
  checkNumber(m.commit, 'commit');
  checkNumber(m.rejectHint, 'rejectHint');
  let size = MESSAGE_HEADER_BYTES;
  const entries = m.entries;
  if (!Array.isArray(entries)) throw new CodecError('entries must be an array');
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    checkNumber(e.index, 'entry index');
    checkNumber(e.term, 'entry term');
    if (e.type !== 0 && e.type !== 1) throw new CodecError(`unknown entry type ${String(e.type)}`);
    size += ENTRY_HEADER_BYTES + checkBytes(e.data, 'entry data');
  }
  if (m.snapshot !== undefined) {
    const md = m.snapshot?.metadata;
    if (typeof md !== 'object' || md === null || typeof md.confState !== 'object' || md.confState === null) throw new CodecError('snapshot must have metadata with a conf state');
    if (!Array.isArray(md.confState.voters) || !Array.isArray(md.confState.learners)) throw new CodecError('conf state voters and learners must be arrays');
    checkNumber(md.index, 'snapshot index');
    checkNumber(md.term, 'snapshot term');
    const { voters, learners } = md.confState;
    if (voters.length > MAX_CONF_MEMBERS || learners.length > MAX_CONF_MEMBERS) throw new CodecError('conf state has too many members');
    for (const v of voters) checkId(v, 'voter');
    for (const l of learners) checkId(l, 'learner');
    size += SNAPSHOT_FIXED_BYTES + 8 * (voters.length + learners.length);
  }
  if (m.context !== undefined) size += 4 + checkBytes(m.context, 'context');
  return size;
}

function writeU64(buf: Buffer, pos: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_32), pos);
  buf.writeUInt32BE(n >>> 0, pos + 4);
}

/** Writes m at pos (m must have passed encodedMessageSize); returns the position after it. */
export function writeMessage(buf: Buffer, pos: number, m: Message): number {
  buf[pos] = m.type;
  buf[pos + 1] = (m.reject ? FLAG_REJECT : 0) | (m.snapshot !== undefined ? FLAG_SNAPSHOT : 0) | (m.context !== undefined ? FLAG_CONTEXT : 0);
  buf.writeBigUInt64BE(m.to, pos + 2);
  buf.writeBigUInt64BE(m.from, pos + 10);
  writeU64(buf, pos + 18, m.term);
  writeU64(buf, pos + 26, m.logTerm);
  writeU64(buf, pos + 34, m.index);
  writeU64(buf, pos + 42, m.commit);
  writeU64(buf, pos + 50, m.rejectHint);
  const entries = m.entries;
  buf.writeUInt32BE(entries.length, pos + 58);
  pos += MESSAGE_HEADER_BYTES;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    writeU64(buf, pos, e.index);
    writeU64(buf, pos + 8, e.term);
    buf[pos + 16] = e.type;
    const data = e.data;
    buf.writeUInt32BE(data.length, pos + 17);
    pos += ENTRY_HEADER_BYTES;
    if (data.length > 0) {
      buf.set(data, pos);
      pos += data.length;
    }
  }
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    writeU64(buf, pos, md.index);
    writeU64(buf, pos + 8, md.term);
    pos += 16;
    for (const ids of [md.confState.voters, md.confState.learners]) {
      buf.writeUInt32BE(ids.length, pos);
      pos += 4;
      for (const id of ids) {
        buf.writeBigUInt64BE(id, pos);
        pos += 8;
      }
    }
  }
  if (m.context !== undefined) {
    buf.writeUInt32BE(m.context.length, pos);
    buf.set(m.context, pos + 4);
    pos += 4 + m.context.length;
  }
  return pos;
}

export function encodeMessage(m: Message): Buffer {
  const out = Buffer.allocUnsafe(encodedMessageSize(m));
  writeMessage(out, 0, m);
  return out;
}

export function encodeMessages(msgs: readonly Message[]): Buffer {
  let size = 4;
  for (const m of msgs) size += encodedMessageSize(m);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(msgs.length, 0);
  let pos = 4;
  for (const m of msgs) pos = writeMessage(out, pos, m);
  return out;
}

// ---- decoding -------------------------------------------------------------------------------

/** A bounds-checked reader over buf[pos, end). Every read past end is a CodecError. */
class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  need(n: number, what: string): void {
    if (this.end - this.pos < n) throw new CodecError(`truncated message: ${what} needs ${n} bytes, ${this.end - this.pos} left`);
  }

  u8(): number {
    return this.buf[this.pos++];
  }

  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** u64 as a JS number; values past 2^53 - 1 are refused rather than rounded. */
  num(what: string): number {
    const hi = this.buf.readUInt32BE(this.pos);
    if (hi > MAX_SAFE_HIGH) throw new CodecError(`${what} exceeds 2^53 - 1`);
    const v = hi * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return v;
  }

  id(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  ids(what: string): bigint[] {
    this.need(4, what);
    const n = this.u32();
    if (n > MAX_CONF_MEMBERS) throw new CodecError(`${what}: ${n} members exceeds ${MAX_CONF_MEMBERS}`);
    this.need(8 * n, what);
    const out: bigint[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.id();
    return out;
  }
}

function readMessage(r: Reader): Message {
  r.need(MESSAGE_HEADER_BYTES, 'message header');
  const type = r.u8();
  if (type > MAX_MESSAGE_TYPE) throw new CodecError(`unknown message type ${type}`);
  const flags = r.u8();
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new CodecError(`unknown message flags 0x${flags.toString(16)}`);
  const to = r.id();
  const from = r.id();
  const term = r.num('term');
  const logTerm = r.num('logTerm');
  const index = r.num('index');
  const commit = r.num('commit');
  const rejectHint = r.num('rejectHint');
  const entryCount = r.u32();
  // Each entry takes at least its header: a count the remaining bytes cannot hold is refused before
  // anything is allocated for it.
  if (entryCount > Math.floor((r.end - r.pos) / ENTRY_HEADER_BYTES)) {
    throw new CodecError(`entry count ${entryCount} exceeds what ${r.end - r.pos} bytes can hold`);
  }
  const entries: Entry[] = new Array(entryCount);
  let dataBytes = 0;
  for (let i = 0; i < entryCount; i++) {
    r.need(ENTRY_HEADER_BYTES, 'entry header');
    const eIndex = r.num('entry index');
    const eTerm = r.num('entry term');
    const eType = r.u8();
    if (eType > MAX_ENTRY_TYPE) throw new CodecError(`unknown entry type ${eType}`);
    const len = r.u32();
    r.need(len, 'entry data');
    entries[i] = { index: eIndex, term: eTerm, type: eType as Entry['type'], data: r.buf.subarray(r.pos, r.pos + len) };
    r.pos += len;
    dataBytes += len;
  }
  // Entry data is copied out of the frame, into one buffer per message: raft keeps entries for a
  // long time, and a view would pin the whole frame (up to maxFrameBytes) per entry.
  if (dataBytes > 0) {
    const copy = Buffer.allocUnsafe(dataBytes);
    let at = 0;
    for (let i = 0; i < entryCount; i++) {
      const d = entries[i].data;
      copy.set(d, at);
      entries[i].data = copy.subarray(at, at + d.length);
      at += d.length;
    }
  }
  const msg: Message = { type: type as MessageType, to, from, term, logTerm, index, entries, commit, reject: (flags & FLAG_REJECT) !== 0, rejectHint };
  if ((flags & FLAG_SNAPSHOT) !== 0) {
    r.need(16, 'snapshot metadata');
    const sIndex = r.num('snapshot index');
    const sTerm = r.num('snapshot term');
    const voters = r.ids('snapshot voters');
    const learners = r.ids('snapshot learners');
    const snapshot: Snapshot = { metadata: { index: sIndex, term: sTerm, confState: { voters, learners } } };
    msg.snapshot = snapshot;
  }
  if ((flags & FLAG_CONTEXT) !== 0) {
    r.need(4, 'context length');
    const len = r.u32();
    r.need(len, 'context');
    msg.context = Buffer.from(r.buf.subarray(r.pos, r.pos + len));
    r.pos += len;
  }
  return msg;
}

/** Decodes exactly one message filling buf. Throws CodecError on anything invalid. */
export function decodeMessage(buf: Buffer): Message {
  const r = new Reader(buf, 0, buf.length);
  const m = readMessage(r);
  if (r.pos !== r.end) throw new CodecError(`${r.end - r.pos} bytes after the message`);
  return m;
}

/**
 * Decodes a batch (u32 count, then the messages) filling buf. Throws CodecError on anything invalid;
 * buffers in the result never alias buf.
 */
export function decodeMessages(buf: Buffer): Message[] {
  const r = new Reader(buf, 0, buf.length);
  r.need(4, 'batch count');
  const n = r.u32();
  if (n > Math.floor((r.end - r.pos) / MESSAGE_HEADER_BYTES)) throw new CodecError(`batch count ${n} exceeds what ${r.end - r.pos} bytes can hold`);
  const out: Message[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readMessage(r);
  if (r.pos !== r.end) throw new CodecError(`${r.end - r.pos} bytes after the batch`);
  return out;
}
