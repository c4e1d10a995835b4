import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { BUCKETS, type Bucket } from '../storage/engine';
import type { Backend } from '../storage';

// The whole backend as one file, streamed both ways with bounded memory: what a leader sends a follower
// that is too far behind (a raft snapshot's data), and what the follower installs. The format is
// Plinth's snapshot format (snapshot.ts): "PLINTH-SNAPSHOT-1\n", records
// [u8 bucket+1][u32 BE key length][u32 BE value length][key][value], a 0 byte, zero padding to a multiple
// of 512 bytes, then the sha256 of all that — so `plinth snapshot restore` reads these files too.

const MAGIC = Buffer.from('PLINTH-SNAPSHOT-1\n');
const BUCKET_ID = new Map<Bucket, number>(BUCKETS.map((b, i) => [b, i + 1]));
const META_CONSISTENT_INDEX = Buffer.from('consistent_index');

export class DumpError extends Error {}

/** Writes the backend's committed state (one consistent view) into file; returns its size. */
/** Writes the backend to file; returns the file's size and the consistent index the dump holds. */
export async function writeBackendDump(backend: Backend, file: string): Promise<{ bytes: number; consistentIndex: number | undefined }> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  const hash = createHash('sha256');
  let size = 0;
  let consistentIndex: number | undefined;
  const write = async (b: Buffer) => {
    hash.update(b);
    await fh.write(b, 0, b.length, size);
    size += b.length;
  };
  try {
    await write(MAGIC);
    await backend.dumpInSlices(async (bucket, records) => {
      let n = 0;
      for (const [k, v] of records) n += 9 + k.length + v.length;
      if (bucket === 'meta') {
        for (const [k, v] of records) if (k.equals(META_CONSISTENT_INDEX)) consistentIndex = Number(v.readBigUInt64BE(0));
      }
      const buf = Buffer.allocUnsafe(n);
      let p = 0;
      for (const [k, v] of records) {
        buf[p] = BUCKET_ID.get(bucket)!;
        buf.writeUInt32BE(k.length, p + 1);
        buf.writeUInt32BE(v.length, p + 5);
        p += 9;
        p += k.copy(buf, p);
        p += v.copy(buf, p);
      }
      await write(buf);
    });
    await write(Buffer.from([0]));
    const pad = (512 - (size % 512)) % 512;
    if (pad) await write(Buffer.alloc(pad));
    const digest = hash.digest();
    await fh.write(digest, 0, digest.length, size);
    size += digest.length;
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  return { bytes: size, consistentIndex };
}

/**
 * Reads a dump file record by record (the file's sha256 is checked first, in a streaming pass), calling
 * onRecord for each; awaits onChunk between chunks so the caller can commit as it goes.
 */
export async function readBackendDump(
  file: string,
  onRecord: (bucket: Bucket, key: Buffer, value: Buffer) => void,
  onChunk: () => Promise<void>,
  chunkBytes = 1 << 20,
): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size % 512 !== 32 || size < 512 + 32) throw new DumpError(`${file}: not a snapshot (size ${size} is not 512·n + 32)`);
    const dataEnd = size - 32;
    // Pass 1: the checksum, so nothing is installed from a damaged file.
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(chunkBytes);
    for (let pos = 0; pos < dataEnd; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, dataEnd - pos), pos);
      if (bytesRead === 0) throw new DumpError(`${file}: short read`);
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    const want = Buffer.allocUnsafe(32);
    await fh.read(want, 0, 32, dataEnd);
    if (!hash.digest().equals(want)) throw new DumpError(`${file}: snapshot file integrity check failed (sha256 mismatch)`);
    // Pass 2: the records. A record may straddle chunks: carry the unparsed tail over.
    let carry = Buffer.alloc(0);
    let pos = 0;
    let first = true;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, dataEnd - pos), pos);
      pos += bytesRead;
      let data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let p = 0;
      if (first) {
        if (data.length < MAGIC.length || !data.subarray(0, MAGIC.length).equals(MAGIC)) throw new DumpError(`${file}: not a Plinth snapshot`);
        p = MAGIC.length;
        first = false;
      }
      for (;;) {
        if (p >= data.length) break;
        const id = data[p];
        if (id === 0) return; // the end marker
        const bucket = BUCKETS[id - 1];
        if (!bucket) throw new DumpError(`${file}: corrupt record at offset ${pos - data.length + p}`);
        if (p + 9 > data.length) break;
        const kl = data.readUInt32BE(p + 1);
        const vl = data.readUInt32BE(p + 5);
        if (kl + vl > dataEnd) throw new DumpError(`${file}: corrupt record at offset ${pos - data.length + p}`);
        if (p + 9 + kl + vl > data.length) break;
        const k = p + 9;
        onRecord(bucket, Buffer.from(data.subarray(k, k + kl)), Buffer.from(data.subarray(k + kl, k + kl + vl)));
        p = k + kl + vl;
      }
      carry = Buffer.from(data.subarray(p));
      data = Buffer.alloc(0);
      await onChunk();
      if (bytesRead === 0) {
        if (carry.length) throw new DumpError(`${file}: truncated record at the end`);
        throw new DumpError(`${file}: no end marker`);
      }
    }
  } finally {
    await fh.close();
  }
}

/**
 * Replaces everything in the backend with the dump's contents, durably. Commits as it goes (memory
 * stays bounded); the consistent index is written in the last commit only, so a crash halfway leaves a
 * backend whose consistent index is still the old one, and the next start installs the dump again.
 * The caller keeps every reader and writer away meanwhile.
 */
export async function installBackendDump(backend: Backend, file: string): Promise<void> {
  // Clear the old consistent index first: a crash after this point must not look complete.
  backend.delete('meta', META_CONSISTENT_INDEX);
  await backend.commit();
  // Delete what is there, a slice at a time (each slice committed, so the next scan starts after it).
  for (const bucket of BUCKETS) {
    for (;;) {
      const keys: Buffer[] = [];
      await backend.scanCommittedKeys(bucket, Buffer.alloc(0), undefined, (k) => keys.push(k) < 10_000);
      for (const k of keys) backend.delete(bucket, k);
      await backend.commit();
      if (keys.length < 10_000) break;
    }
  }
  let consistentIndex: Buffer | undefined;
  let pendingBytes = 0;
  await readBackendDump(
    file,
    (bucket, key, value) => {
      if (bucket === 'meta' && key.equals(META_CONSISTENT_INDEX)) consistentIndex = value;
      else {
        backend.put(bucket, key, value);
        pendingBytes += key.length + value.length;
      }
    },
    async () => {
      if (pendingBytes >= 8 << 20) {
        pendingBytes = 0;
        await backend.commit();
      }
    },
  );
  if (consistentIndex) backend.put('meta', META_CONSISTENT_INDEX, consistentIndex);
  await backend.commit();
}

/** The consistent index a dump file holds (its meta record), or undefined. */
export async function dumpConsistentIndex(file: string): Promise<number | undefined> {
  let ci: number | undefined;
  await readBackendDump(
    file,
    (bucket, key, value) => {
      if (bucket === 'meta' && key.equals(META_CONSISTENT_INDEX)) ci = Number(value.readBigUInt64BE(0));
    },
    async () => {},
  );
  return ci;
}
