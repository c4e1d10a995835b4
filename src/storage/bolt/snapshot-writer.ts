// Snapshots in etcd's format, from any engine: a bbolt file with etcd 3.4's buckets, so that
// `etcdctl snapshot status` reads it and `etcdctl snapshot restore` makes a data dir etcd serves.
// The backend's state is copied through the Engine API in batches (bounded memory: one batch of
// records and the bolt engine's pages of the file being written); lease and alarm records an earlier
// Plinth wrote in its fixed-width form are converted to etcd's (etcd-layout.ts).
import { rm } from 'node:fs/promises';
import type { Backend } from '../backend';
import { BUCKETS, type Bucket as BucketName } from '../engine';
import { entryToEtcd, ETCD_BUCKETS } from '../etcd-layout';
import { BoltEngine } from './bolt-engine';
import { BoltDb } from './db';

/** Records per write transaction of the snapshot file, and per scan of the source. */
const BATCH = 10_000;
/** As etcd's defrag, pages of a sequentially written file are filled to 90%. */
const FILL = 0.9;

export interface BoltSnapshotInfo {
  /** Bytes of the bbolt file (its high-water mark: the file is cut there). */
  size: number;
  /** Records written, all buckets. */
  entries: number;
}

/** Reads one batch of a bucket's committed records from start (inclusive), at most BATCH. */
type BatchReader = (bucket: BucketName, start: Buffer) => Promise<[Buffer, Buffer][]>;

/**
 * Writes the backend's committed state, one consistent state, as a bbolt file at path. On the bolt
 * engine that state is a read transaction: commits go on meanwhile (its pages stay until it closes).
 * On the others, backend commits wait while the file is written; applies go on into the buffer.
 */
export async function writeBoltSnapshot(backend: Backend, path: string): Promise<BoltSnapshotInfo> {
  if (backend.engine instanceof BoltEngine) {
    await backend.commit();
    const tx = backend.engine.database.beginRead();
    try {
      return await writeFrom(path, async (bucket, start) => {
        const batch: [Buffer, Buffer][] = [];
        const b = tx.bucket(Buffer.from(bucket));
        if (!b) return batch;
        const c = b.cursor();
        for (let e = c.seek(start); e && batch.length < BATCH; e = c.next()) if (e.value !== undefined) batch.push([e.key, e.value]);
        return batch;
      });
    } finally {
      tx.close();
    }
  }
  return backend.whileCommitsHeld(() =>
    writeFrom(path, async (bucket, start) => {
      const batch: [Buffer, Buffer][] = [];
      await backend.engine.scan(bucket, start, undefined, (k, v) => {
        batch.push([Buffer.from(k), Buffer.from(v)]);
        return batch.length < BATCH;
      });
      return batch;
    }),
  );
}

async function writeFrom(path: string, read: BatchReader): Promise<BoltSnapshotInfo> {
  await rm(path, { force: true });
  const out = await BoltDb.open(path, { noSync: true });
  let entries = 0;
  try {
    let tx = await out.beginWrite();
    for (const name of ETCD_BUCKETS) tx.createBucketIfNotExists(Buffer.from(name));
    let inTx = 0;
    for (const bucket of BUCKETS) {
      let start = Buffer.alloc(0);
      for (;;) {
        const batch = await read(bucket, start);
        const b = tx.createBucketIfNotExists(Buffer.from(bucket));
        b.fillPercent = FILL;
        for (const [k, v] of batch) {
          const [ek, ev] = entryToEtcd(bucket, k, v);
          b.put(ek, ev);
        }
        entries += batch.length;
        inTx += batch.length;
        if (inTx >= BATCH) {
          await tx.commit();
          tx = await out.beginWrite();
          inTx = 0;
        }
        if (batch.length < BATCH) break;
        // Next batch: from just after the last key.
        start = Buffer.concat([batch[batch.length - 1][0], Buffer.from([0])]);
      }
    }
    await tx.commit();
    await out.sync();
    const size = out.size();
    await out.close();
    return { size, entries };
  } catch (err) {
    await out.close().catch(() => {});
    await rm(path, { force: true });
    throw err;
  }
}

/**
 * Reads a bbolt file with etcd's buckets (a snapshot from etcd or Plinth, or etcd's member/snap/db) and
 * gives its records, bucket by bucket, in batches. Buckets Plinth does not keep
 * (cluster) and the old cluster's membership (members, members_removed: a restored member takes its
 * membership from its flags, as etcdctl snapshot restore drops them) are left out.
 */
export async function readBoltSnapshot(
  path: string,
  onBatch: (bucket: BucketName, records: [Buffer, Buffer][]) => Promise<void>,
): Promise<{ entries: number }> {
  const db = await BoltDb.open(path, { readOnly: true });
  let entries = 0;
  try {
    const tx = db.beginRead();
    try {
      for (const bucket of BUCKETS) {
        if (bucket === 'members' || bucket === 'members_removed') continue;
        const b = tx.bucket(Buffer.from(bucket));
        if (!b) continue;
        let batch: [Buffer, Buffer][] = [];
        const c = b.cursor();
        for (let e = c.first(); e; e = c.next()) {
          if (e.value === undefined) continue; // etcd keeps no nested buckets
          // As they are: Plinth reads etcd's lease and alarm records (etcd-layout.ts).
          batch.push([Buffer.from(e.key), Buffer.from(e.value)]);
          if (batch.length >= BATCH) {
            entries += batch.length;
            await onBatch(bucket, batch);
            batch = [];
          }
        }
        entries += batch.length;
        if (batch.length) await onBatch(bucket, batch);
      }
    } finally {
      tx.close();
    }
  } finally {
    await db.close();
  }
  return { entries };
}
