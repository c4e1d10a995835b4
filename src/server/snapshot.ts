import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUCKETS, type Bucket } from '../storage/engine';
import { openBackend, type Backend, type EngineKind } from '../storage';

// A snapshot is Plinth's own logical dump of every bucket, engine-independent (a snapshot of an lmdb
// member restores onto leveldb as well):
//   "PLINTH-SNAPSHOT-1\n", then records [u8 bucket+1][u32 key length][u32 value length][key][value],
//   then a 0 byte, zero padding to a multiple of 512 bytes, then the sha256 of all that (32 bytes).
// The padding and trailing sha256 are what etcdctl snapshot save checks (size % 512 == 32).

const MAGIC = Buffer.from('PLINTH-SNAPSHOT-1\n');
const CHUNK = 1 << 20;
const BUCKET_ID = new Map<Bucket, number>(BUCKETS.map((b, i) => [b, i + 1]));

export interface SnapshotData {
  /** The dump, padded to 512 bytes, in chunks. */
  chunks: Buffer[];
  size: number;
  sha256: Buffer;
}

/** Dumps the backend (committed state, one consistent view) into memory. */
export async function takeSnapshot(backend: Backend): Promise<SnapshotData> {
  const chunks: Buffer[] = [];
  let cur = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  const push = (b: Buffer) => {
    if (pos + b.length > cur.length) {
      chunks.push(cur.subarray(0, pos));
      cur = Buffer.allocUnsafe(Math.max(CHUNK, b.length));
      pos = 0;
    }
    pos += b.copy(cur, pos);
  };
  push(MAGIC);
  const head = Buffer.allocUnsafe(9);
  await backend.dump((bucket, key, value) => {
    head[0] = BUCKET_ID.get(bucket)!;
    head.writeUInt32BE(key.length, 1);
    head.writeUInt32BE(value.length, 5);
    push(head);
    push(key);
    push(value);
  });
  push(Buffer.from([0]));
  let size = chunks.reduce((n, c) => n + c.length, 0) + pos;
  const pad = (512 - (size % 512)) % 512;
  push(Buffer.alloc(pad));
  size += pad;
  chunks.push(cur.subarray(0, pos));
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return { chunks, size, sha256: h.digest() };
}

export class SnapshotError extends Error {}

/** Turns a snapshot file into a new data dir for the given engine. */
export async function restoreSnapshot(file: string, dataDir: string, kind: EngineKind, opts: { skipHashCheck?: boolean } = {}): Promise<{ entries: number }> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new SnapshotError(`data-dir "${dataDir}" exists`);
  const buf = await readFile(file);
  if (buf.length % 512 !== 32) throw new SnapshotError(`${file}: not a snapshot (size ${buf.length} is not 512·n + 32)`);
  const data = buf.subarray(0, buf.length - 32);
  if (!opts.skipHashCheck && !createHash('sha256').update(data).digest().equals(buf.subarray(buf.length - 32))) {
    throw new SnapshotError(`${file}: snapshot file integrity check failed (sha256 mismatch)`);
  }
  if (!data.subarray(0, MAGIC.length).equals(MAGIC)) throw new SnapshotError(`${file}: not a Plinth snapshot`);
  const backend = await openBackend(kind, { dir: join(dataDir, 'member', 'snap') });
  let pos = MAGIC.length;
  let entries = 0;
  try {
    for (;;) {
      const id = data[pos];
      if (id === 0) break;
      const bucket = BUCKETS[id - 1];
      if (!bucket || pos + 9 > data.length) throw new SnapshotError(`${file}: corrupt record at offset ${pos}`);
      const kl = data.readUInt32BE(pos + 1);
      const vl = data.readUInt32BE(pos + 5);
      const k = pos + 9;
      if (k + kl + vl > data.length) throw new SnapshotError(`${file}: corrupt record at offset ${pos}`);
      backend.put(bucket, Buffer.from(data.subarray(k, k + kl)), Buffer.from(data.subarray(k + kl, k + kl + vl)));
      pos = k + kl + vl;
      if (++entries % 10_000 === 0) await backend.commit();
    }
    await backend.commit();
  } finally {
    await backend.close();
  }
  return { entries };
}
