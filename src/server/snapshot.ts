import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BUCKETS, type Bucket } from '../storage/engine';
import { openBackend, type Backend, type EngineKind } from '../storage';
import { MAGIC as BOLT_MAGIC } from '../storage/bolt/page';
import { readBoltSnapshot, writeBoltSnapshot } from '../storage/bolt/snapshot-writer';

// A snapshot is etcd's: a bbolt database file with etcd 3.4's buckets (from any engine: see
// storage/bolt/snapshot-writer.ts), sent followed by its sha256, as etcd's Maintenance.Snapshot does,
// so `etcdctl snapshot save/status/restore` work on it and real etcd serves what it restores.
//
// Restore also reads Plinth's earlier dump format:
//   "PLINTH-SNAPSHOT-1\n", then records [u8 bucket+1][u32 key length][u32 value length][key][value],
//   then a 0 byte, zero padding to a multiple of 512 bytes, then the sha256 of all that (32 bytes).

const LEGACY_MAGIC = Buffer.from('PLINTH-SNAPSHOT-1\n');
const READ_CHUNK = 1 << 20;
/** Records per backend commit while restoring. */
const RESTORE_BATCH = 10_000;

export interface SnapshotData {
  /** Bytes of the database file (the sha256 is sent after them). */
  size: number;
  /** The file in chunks, read from disk as the caller asks for them. */
  chunks(): AsyncIterable<Buffer>;
  /** The sha256 of every chunk, once chunks() has been read to the end. */
  sha256(): Buffer;
  /** Removes the temporary file; call when done or abandoned. */
  close(): Promise<void>;
}

let snapshotSeq = 0;

/** Writes the backend's state as a bbolt file in dir (removed by close()) and returns it for sending. */
export async function takeSnapshot(backend: Backend, dir: string): Promise<SnapshotData> {
  await mkdir(dir, { recursive: true });
  // A process that died while sending a snapshot left its file: remove those of other processes.
  for (const f of await readdir(dir)) {
    const m = /^snapshot\.(\d+)\.\d+\.tmp$/.exec(f);
    if (m && Number(m[1]) !== process.pid) await rm(join(dir, f), { force: true });
  }
  const file = join(dir, `snapshot.${process.pid}.${++snapshotSeq}.tmp`);
  const { size } = await writeBoltSnapshot(backend, file);
  const hash = createHash('sha256');
  let digest: Buffer | undefined;
  return {
    size,
    async *chunks() {
      const fh = await open(file, 'r');
      try {
        for (let pos = 0; pos < size; ) {
          const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) throw new Error(`snapshot file ${file} ended at ${pos} of ${size} bytes`);
          const chunk = buf.subarray(0, bytesRead);
          hash.update(chunk);
          pos += bytesRead;
          yield chunk;
        }
        digest = hash.digest();
      } finally {
        await fh.close();
      }
    },
    sha256() {
      if (!digest) throw new Error('snapshot not read to the end');
      return digest;
    },
    close: () => rm(file, { force: true }),
  };
}

export class SnapshotError extends Error {}

/** etcd's check for a trailing sha256 (clientv3/snapshot hasChecksum). */
const hasChecksum = (size: number) => size % 512 === 32;

/**
 * Turns a snapshot file into a new data dir for the given engine: a bbolt snapshot (from etcd or from
 * Plinth) or Plinth's earlier dump format.
 */
export async function restoreSnapshot(file: string, dataDir: string, kind: EngineKind, opts: { skipHashCheck?: boolean } = {}): Promise<{ entries: number }> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new SnapshotError(`data-dir "${dataDir}" exists`);
  const head = Buffer.alloc(32);
  const fh = await open(file, 'r');
  let size: number;
  try {
    size = (await fh.stat()).size;
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  if (head.readUInt32LE(16) === BOLT_MAGIC) return restoreBolt(file, size, dataDir, kind, opts);
  return restoreLegacy(file, dataDir, kind, opts);
}

async function restoreBolt(file: string, size: number, dataDir: string, kind: EngineKind, opts: { skipHashCheck?: boolean }): Promise<{ entries: number }> {
  if (!hasChecksum(size)) {
    if (!opts.skipHashCheck) throw new SnapshotError(`${file}: snapshot missing hash but --skip-hash-check=false`);
  } else if (!opts.skipHashCheck) {
    const h = createHash('sha256');
    const fh = await open(file, 'r');
    const want = Buffer.alloc(32);
    try {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      for (let pos = 0; pos < size - 32; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - 32 - pos), pos);
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      await fh.read(want, 0, 32, size - 32);
    } finally {
      await fh.close();
    }
    if (!h.digest().equals(want)) throw new SnapshotError(`${file}: snapshot file integrity check failed (sha256 mismatch)`);
  }
  const backend = await openBackend(kind, { dir: join(dataDir, 'member', 'snap') });
  try {
    const r = await readBoltSnapshot(file, async (bucket, records) => {
      for (const [k, v] of records) backend.put(bucket, k, v);
      if (backend.pendingWrites >= RESTORE_BATCH) await backend.commit();
    });
    await backend.commit();
    return r;
  } catch (err) {
    throw err instanceof SnapshotError ? err : new SnapshotError(`${file}: not a readable bbolt snapshot: ${(err as Error).message}`);
  } finally {
    await backend.close();
  }
}

async function restoreLegacy(file: string, dataDir: string, kind: EngineKind, opts: { skipHashCheck?: boolean }): Promise<{ entries: number }> {
  const buf = await readFile(file);
  if (buf.length % 512 !== 32) throw new SnapshotError(`${file}: not a snapshot (size ${buf.length} is not 512·n + 32)`);
  const data = buf.subarray(0, buf.length - 32);
  if (!opts.skipHashCheck && !createHash('sha256').update(data).digest().equals(buf.subarray(buf.length - 32))) {
    throw new SnapshotError(`${file}: snapshot file integrity check failed (sha256 mismatch)`);
  }
  if (!data.subarray(0, LEGACY_MAGIC.length).equals(LEGACY_MAGIC)) throw new SnapshotError(`${file}: not a Plinth snapshot`);
  const backend = await openBackend(kind, { dir: join(dataDir, 'member', 'snap') });
  let pos = LEGACY_MAGIC.length;
  let entries = 0;
  try {
    for (;;) {
      const id = data[pos];
      if (id === 0) break;
      const bucket: Bucket | undefined = BUCKETS[id - 1];
      if (!bucket || pos + 9 > data.length) throw new SnapshotError(`${file}: corrupt record at offset ${pos}`);
      const kl = data.readUInt32BE(pos + 1);
      const vl = data.readUInt32BE(pos + 5);
      const k = pos + 9;
      if (k + kl + vl > data.length) throw new SnapshotError(`${file}: corrupt record at offset ${pos}`);
      backend.put(bucket, Buffer.from(data.subarray(k, k + kl)), Buffer.from(data.subarray(k + kl, k + kl + vl)));
      pos = k + kl + vl;
      if (++entries % RESTORE_BATCH === 0) await backend.commit();
    }
    await backend.commit();
  } finally {
    await backend.close();
  }
  return { entries };
}
