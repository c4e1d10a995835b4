// A revision is (main, sub): main is the store revision of a write request, sub orders the changes
// inside it (a txn or a multi-key delete). In the key bucket it is 17 bytes, as etcd lays it out:
// 8-byte big-endian main, '_', 8-byte big-endian sub; a tombstone appends 't'.

export const REV_BYTES = 17;
export const MARKED_REV_BYTES = 18;
const TOMBSTONE = 0x74; // 't'

/** Writes n (an integer below 2^53) as 8 big-endian bytes, without going through a BigInt. */
function writeU64(out: Buffer, n: number, at: number): void {
  out.writeUInt32BE(Math.floor(n / 0x100000000), at);
  out.writeUInt32BE(n >>> 0, at + 4);
}

export function writeRevision(out: Buffer, main: number, sub: number): Buffer {
  writeU64(out, main, 0);
  out[8] = 0x5f; // '_'
  writeU64(out, sub, 9);
  return out;
}

export function revisionBytes(main: number, sub: number, tombstone = false): Buffer {
  const out = Buffer.allocUnsafe(tombstone ? MARKED_REV_BYTES : REV_BYTES);
  writeRevision(out, main, sub);
  if (tombstone) out[REV_BYTES] = TOMBSTONE;
  return out;
}

export function readRevision(b: Buffer): { main: number; sub: number } {
  return { main: b.readUInt32BE(0) * 0x100000000 + b.readUInt32BE(4), sub: b.readUInt32BE(9) * 0x100000000 + b.readUInt32BE(13) };
}

export function isTombstone(b: Buffer): boolean {
  return b.length === MARKED_REV_BYTES && b[REV_BYTES] === TOMBSTONE;
}
