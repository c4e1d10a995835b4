import { crc32 } from 'node:zlib';

// One WAL record:  [u32 body length][u32 crc32(body)][body],  body = [u8 kind][u64 index][u64 term][data].
// Little-endian. A zero length marks the end of the written log (segments are preallocated with zeros).

export const RecordKind = {
  /** A log entry of type NORMAL (data = etcd InternalRaftRequest bytes). */
  ENTRY: 1,
  /** A NORMAL log entry without data (a new leader's no-op). */
  EMPTY_ENTRY: 2,
  /** Raft hard state: index = commit, term = term, data = 8-byte vote. Written at each segment start. */
  HARD_STATE: 3,
  /** A log entry of type CONF_CHANGE (data = raftpb.ConfChange bytes). */
  CONF_CHANGE_ENTRY: 4,
  /**
   * A raft snapshot point: index, term, data = [u8 flags][conf state]. The backend holds the state
   * at (at least) index durably; the log before it is no longer needed to restart. Flag 1 (reset): the
   * snapshot came from the leader and replaced this member's whole log, so entries written before
   * this record do not survive it. Written at each segment start (the latest one).
   */
  SNAPSHOT: 5,
  /** Who wrote this log: index = 0, term = 0, data = [u64 member id][u64 cluster id]. At each segment start. */
  METADATA: 6,
} as const;

export const FRAME_BYTES = 8;
export const BODY_HEADER_BYTES = 17;

export interface WalRecord {
  kind: number;
  index: number;
  term: number;
  data: Buffer;
}

export function recordSize(dataLength: number): number {
  return FRAME_BYTES + BODY_HEADER_BYTES + dataLength;
}

/** Writes a record into out at pos; returns the position after it. */
export function writeRecord(out: Buffer, pos: number, kind: number, index: number, term: number, data: Buffer): number {
  const bodyLen = BODY_HEADER_BYTES + data.length;
  const body = pos + FRAME_BYTES;
  out[body] = kind;
  out.writeBigUInt64LE(BigInt(index), body + 1);
  out.writeBigUInt64LE(BigInt(term), body + 9);
  data.copy(out, body + BODY_HEADER_BYTES);
  out.writeUInt32LE(bodyLen, pos);
  out.writeUInt32LE(crc32(out.subarray(body, body + bodyLen)), pos + 4);
  return body + bodyLen;
}

export type ReadResult =
  | { ok: true; record: WalRecord; next: number }
  /** Zero length: the end of what was written. */
  | { ok: false; reason: 'end' }
  | { ok: false; reason: 'truncated' | 'crc' | 'bad-length' };

const KINDS = new Set<number>(Object.values(RecordKind));

/** Reads the record at pos of buf[0, end). */
export function readRecord(buf: Buffer, pos: number, end: number): ReadResult {
  if (pos + FRAME_BYTES > end) return end - pos === 0 || isZero(buf, pos, end) ? { ok: false, reason: 'end' } : { ok: false, reason: 'truncated' };
  const len = buf.readUInt32LE(pos);
  if (len === 0) return { ok: false, reason: 'end' };
  if (len < BODY_HEADER_BYTES) return { ok: false, reason: 'bad-length' };
  const body = pos + FRAME_BYTES;
  if (body + len > end) return { ok: false, reason: 'truncated' };
  if (crc32(buf.subarray(body, body + len)) !== buf.readUInt32LE(pos + 4)) return { ok: false, reason: 'crc' };
  const kind = buf[body];
  if (!KINDS.has(kind)) return { ok: false, reason: 'crc' };
  return {
    ok: true,
    record: {
      kind,
      index: Number(buf.readBigUInt64LE(body + 1)),
      term: Number(buf.readBigUInt64LE(body + 9)),
      data: buf.subarray(body + BODY_HEADER_BYTES, body + len),
    },
    next: body + len,
  };
}

function isZero(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * After a bad record at pos: is there a valid record further on? That tells corruption in the middle
 * of the log (refuse to start) from a torn or corrupt tail (truncate). Only offsets whose header looks
 * like the next entries (kind known, index just after lastIndex) are CRC-checked, so this stays cheap.
 */
export function validRecordAfter(buf: Buffer, pos: number, end: number, lastIndex: number): boolean {
  for (let p = pos + 1; p + FRAME_BYTES + BODY_HEADER_BYTES <= end; p++) {
    const len = buf.readUInt32LE(p);
    if (len < BODY_HEADER_BYTES || p + FRAME_BYTES + len > end) continue;
    const body = p + FRAME_BYTES;
    if (!KINDS.has(buf[body])) continue;
    const index = Number(buf.readBigUInt64LE(body + 1));
    if (index <= lastIndex || index > lastIndex + 1_000_000) continue;
    if (crc32(buf.subarray(body, body + len)) === buf.readUInt32LE(p + 4)) return true;
  }
  return false;
}
