// The one seam between Plinth and a storage engine. Everything above storage/ sees only Backend
// (backend.ts), which layers batching and a read-your-writes buffer over an Engine.

/** Buckets as etcd's backend has them; each engine keeps them apart in its own way. */
export const BUCKETS = ['key', 'meta', 'lease', 'members', 'members_removed', 'alarm', 'auth', 'authUsers', 'authRoles'] as const;
export type Bucket = (typeof BUCKETS)[number];

export interface WriteOp {
  bucket: Bucket;
  key: Buffer;
  /** undefined deletes the key. */
  value: Buffer | undefined;
}

export interface Engine {
  readonly kind: EngineKind;
  /** Point read of committed data. Synchronous: LMDB reads the memory map, LevelDB its cache/files. */
  get(bucket: Bucket, key: Buffer): Buffer | undefined;
  /** Applies ops atomically; resolves once they are durable (unless the engine was opened without sync). */
  write(ops: readonly WriteOp[]): Promise<void>;
  /**
   * Visits committed entries of a bucket in key order from start (inclusive) to end (exclusive; undefined
   * = to the end of the bucket). The visitor returns false to stop early.
   */
  scan(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (key: Buffer, value: Buffer) => boolean | void): Promise<void>;
  /** As scan, keys only (cheaper where the engine can skip the values: compaction's batches). */
  scanKeys(bucket: Bucket, start: Buffer, end: Buffer | undefined, visit: (key: Buffer) => boolean | void): Promise<void>;
  /** Bytes the engine occupies on disk (or in memory for the memory engine). */
  sizeBytes(): number;
  /** Bytes in use by live data (≤ sizeBytes); the difference is what defragment could give back. */
  sizeInUseBytes(): number;
  /** After a failed write: makes the engine writable again (LevelDB refuses all writes after one fails). */
  recover?(): Promise<void>;
  /** Gives free space back to the file system; no reads or writes may run meanwhile. */
  defragment(): Promise<void>;
  close(): Promise<void>;
}

export type EngineKind = 'lmdb' | 'leveldb' | 'memory' | 'bolt';
export const ENGINE_KINDS: readonly EngineKind[] = ['lmdb', 'leveldb', 'memory', 'bolt'];

export interface EngineOptions {
  /** Directory that holds the engine's files (ignored by the memory engine). */
  dir: string;
  /** Skip fsync on commit (etcd's --unsafe-no-fsync). */
  noSync?: boolean;
  /** The bolt engine's freelist (etcd's --experimental-backend-bbolt-freelist-type) and whether it is written each commit. */
  bolt?: { freelistType?: 'array' | 'map'; freelistSync?: boolean };
}
